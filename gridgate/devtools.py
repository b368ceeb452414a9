"""Developer tools. ``python -m gridgate.devtools makemigration KIND REV "message" [--head H]``

Autogenerates an Alembic revision for the ``control`` or ``tenant`` tree against a throw-away
embedded PostgreSQL upgraded to the current heads. Review the generated file before committing.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import make_url

from core.db import ensure_control_database_sync
from core.pg import EmbeddedPostgres
from domain.migrate import alembic_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def makemigration(kind: str, rev: str, message: str, head: str | None, branch_label: str | None) -> None:
    port = _free_port()
    pg = EmbeddedPostgres(Path(tempfile.mkdtemp()) / "pg", port)
    pg.start()
    try:
        url = make_url(f"postgresql+psycopg://postgres@127.0.0.1:{port}/autogen")
        ensure_control_database_sync(url)
        cfg = alembic_config(kind, url)
        command.upgrade(cfg, "heads")
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev, head=head or "head",
                         branch_label=branch_label)
    finally:
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gridgate.devtools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("makemigration")
    mk.add_argument("kind", choices=["control", "tenant"])
    mk.add_argument("rev")
    mk.add_argument("message")
    mk.add_argument("--head", default=None, help="parent revision (default: the single head)")
    mk.add_argument("--branch-label", default=None)
    args = parser.parse_args()
    makemigration(args.kind, args.rev, args.message, args.head, args.branch_label)


if __name__ == "__main__":
    main()
