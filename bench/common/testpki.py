"""The test SM-PKI of a bench: kept under ``var/bench/<bench>-pki`` and completed on demand."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pki.testpki import TestPki


def gateway_ids(n: int) -> list[str]:
    """The demo gateways 0..n-1 (``core.ids.demo_gateway_id``)."""
    from core.ids import demo_gateway_id

    return [demo_gateway_id(i) for i in range(n)]


def _say(msg: str) -> None:
    print(msg, flush=True)


def ensure_pki(directory: Path, n: int, *, say: Callable[[str], None] = _say, workers: int | None = None,
               copy_from: Sequence[Path] = ()) -> TestPki:
    """The test PKI in ``directory`` with the gateway triples of gateways 0..n-1, issuing what is
    missing (``workers`` processes; default one per core). A new ``directory`` starts as a copy of
    the first test PKI of ``copy_from`` that exists, otherwise as a new test PKI."""
    from pki.testpki import TestPki, init_test_pki

    if not (directory / "pki.json").exists():
        for src in copy_from:
            if (src / "pki.json").exists():
                say(f"copying the test PKI from {src}")
                shutil.copytree(src, directory)
                break
    pki = TestPki(directory) if (directory / "pki.json").exists() else init_test_pki(directory)
    have = set(pki.gateway_ids())
    missing = [g for g in gateway_ids(n) if g not in have]
    if missing:
        t0 = time.perf_counter()
        say(f"issuing {len(missing)} gateway certificate triples into {directory} ...")
        pki.issue_gateways(gateway_ids=missing, workers=workers)
        say(f"  done in {time.perf_counter() - t0:.0f} s")
    return pki
