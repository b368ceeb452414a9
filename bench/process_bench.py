"""Process benchmark (issue 6, "Speed and scale"; results: docs/benchmarks.md, ## Processes).

Everything runs as its own process on this machine, as in production: embedded PostgreSQL, the
Temporal dev server (``core.temporal.TemporalDevServer`` on a fresh SQLite file; ``--temporal``
picks WAL mode (default), SQLite's defaults as gridgate starts it, or memory), ``gridgate worker``,
``gridgate headend`` and the simulator (``gridgate simulate run``). This process provisions the
tenants (``tests.fleet.provision``: demo master data, test SM-PKI in the certificate store, wake-up
addresses), starts the mass processes with ``operations.processes.start`` and samples RSS and CPU of
every process (psutil).

1. Profile rollout to N gateways (``--gateways 1000,10000``): a tenant per size whose fleet is in
   operation with its meters paired (as commissioning leaves them; the simulator runs with
   ``--meters-paired``) and one TAF 7 order (register profile, supplier) on each gateway's consumption
   metering point, created in bulk. The rollout wakes each gateway, connects over TLS, installs
   the supplier's certificates and writes the meter, communication and evaluation profiles.
   Wall time from ``processes.start`` to the process state ``completed``, gateways per second,
   peak RSS of worker and head-end, CPU seconds of every process. Fresh worker and head-end per
   size, so the peaks are comparable.
2. Temporal floor (unless ``--skip-floor``): the same number of trivial workflows on the same
   Temporal server (``bench/process_floor.py``), restarted on an empty store like every rollout
   (``--shared-temporal`` keeps one store for all phases, as before 2026-11-28 evening): a
   parent with the same sliding window, children
   running as many no-op activities as gridgate's workflow ran for that gateway (counted from
   sampled workflow histories). Target: rollout wall time <= 1.5 x floor; worker RSS at the
   largest size within 20 % of the smallest.
3. Commissioning of ``--commissioning`` gateways (default 200) with 10 % offline and 5 % flaky
   (the simulator's fleet-level switch): time, outcomes by reason, and the simulator's
   applied-command counters of every gateway compared with the commands its workflow had to send.

The worker is ``gridgate worker`` as committed. (This bench found the defect of MassProcess at its
first continue-as-new with children in flight, fixed in ``workflows/mass.py`` with ``@workflow.init``.)

Usage::

    python bench/process_bench.py                      # make bench: 200,1000 + floor, commissioning 200
    python bench/process_bench.py --gateways 1000,10000 --commissioning 1000   # the issue's sizes (~1 h)
    python bench/process_bench.py --gateways 200 --skip-floor --commissioning 0 --json out.json

The test PKI (gateway triples) is kept under ``var/bench/process-pki`` (copied from another bench's
PKI when one exists, otherwise issued: about a minute per 10,000 on 2 cores). Everything else lives
in a temporary directory under ``var/bench/`` that is removed at the end, with every process this
script started. Loopback only; every wait is bounded.

This file is the command line; the bench itself is the package ``bench/process/`` (processes and
sampling, the stack, the scenarios, the report), with code shared by the benches in ``bench/common/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common.host import raise_nofile  # noqa: E402
from bench.process.report import table  # noqa: E402
from bench.process.run import run  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gateways", default=os.environ.get("PROCBENCH_GATEWAYS", "200,1000"),
                   help="rollout sizes, comma-separated (the issue's: 1000,10000)")
    p.add_argument("--skip-floor", action="store_true", help="no Temporal floor run")
    p.add_argument("--shared-temporal", action="store_true",
                   help="one Temporal store for all phases (default: each rollout and floor starts on an empty one)")
    p.add_argument("--commissioning", type=int, default=int(os.environ.get("PROCBENCH_COMMISSIONING", "200")),
                   help="gateways to commission with offline/flaky ones (0: skip; the issue's: 1000)")
    p.add_argument("--offline-pct", type=float, default=10.0)
    p.add_argument("--flaky-pct", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=50, help="sliding window of the mass processes and the floor")
    p.add_argument("--connect-timeout", type=float, default=20.0, help="commissioning: wake-up + wait per attempt")
    p.add_argument("--attempts", type=int, default=3, help="commissioning: attempts per step")
    p.add_argument("--temporal", choices=("wal", "file", "memory"), default="wal",
                   help="Temporal dev server store: a fresh SQLite file in WAL mode with synchronous=normal "
                        "(default), the same file with SQLite's defaults (as gridgate.temporal starts it), or memory")
    p.add_argument("--max-wait-s", type=float, default=0,
                   help="stop waiting for a process after this long and report what was done (0: size-based)")
    p.add_argument("--pki", default=str(ROOT / "var" / "bench" / "process-pki"))
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment of the gridgate worker (e.g. to compare allocator settings)")
    p.add_argument("--json", type=Path, help="write the full report here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    args = p.parse_args()
    raise_nofile()
    report = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report["machine"]))
    print(table(report))


if __name__ == "__main__":
    main()
