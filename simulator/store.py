"""Persistence of the simulated fleet: one SQLite database in WAL mode under the state dir.

Why SQLite rather than a JSON file per gateway: a command's effect, its stored result (for
command-ID idempotency) and its logbook entries must land together or not at all, which one
SQLite transaction gives for free; 10,000 gateways are then one file instead of 10,000, and a
commit in WAL mode with ``synchronous=NORMAL`` costs tens of microseconds (no fsync per commit;
the WAL is synced at checkpoints, which is enough to survive a process crash, only a power loss
could lose the last commits). Logbooks and firmware chunks are rows, so appending is O(1) and a
logbook range is an index scan. Gateway documents are JSON (the simulator's own state model,
see docs/simulator.md).

The store is used from the event loop thread only; calls are short and synchronous.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS gateway (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS command (
    gateway TEXT NOT NULL,
    command_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER NOT NULL,
    xml BLOB NOT NULL,
    cid TEXT NOT NULL,
    contact_uri TEXT NOT NULL,
    request BLOB NOT NULL,
    PRIMARY KEY (gateway, command_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway TEXT NOT NULL,
    kind TEXT NOT NULL,
    command_id TEXT,
    xml BLOB NOT NULL,
    first_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS certstore (
    sha256 TEXT PRIMARY KEY,
    der BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS command_at ON command (gateway, at);
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway TEXT NOT NULL,
    profile TEXT NOT NULL,
    recipient TEXT NOT NULL,
    taf INTEGER NOT NULL,
    reason TEXT NOT NULL,
    uri TEXT NOT NULL,
    cid TEXT NOT NULL,
    period_start REAL,
    period_end REAL,
    entries INTEGER NOT NULL,
    xml BLOB NOT NULL,
    created REAL NOT NULL,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    status INTEGER,
    detail TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS delivery_state ON delivery (state, gateway, id);
CREATE TABLE IF NOT EXISTS logentry (
    gateway TEXT NOT NULL,
    log TEXT NOT NULL,
    recno INTEGER NOT NULL,
    level INTEGER NOT NULL,
    outcome INTEGER NOT NULL,
    text TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (gateway, log, recno)
);
CREATE TABLE IF NOT EXISTS fwchunk (
    gateway TEXT NOT NULL,
    image TEXT NOT NULL,
    offset INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (gateway, image, offset)
);
"""


@dataclass(frozen=True)
class CommandRecord:
    """What the gateway remembers per command ID (docs/protocol.md section 6): the request digest,
    whether it is ``running`` (a 202 was given) or ``completed``, and the outcome (HTTP status and
    XML before sealing) that a repeat is answered with. ``cid``/``contact_uri``: where the Notify
    of a running command goes (the latest request's)."""

    command_id: str
    kind: str
    digest: str
    state: str
    status: int
    xml: bytes
    cid: str
    contact_uri: str
    at: float
    request: bytes = b""  # the request's XML payload, to resume a running command after a restart


@dataclass(frozen=True)
class DeliveryRow:
    """A meter data delivery to an EMT (docs/protocol.md 14) kept until the EMT has it: its XML
    payload (zlib, sealed anew for each attempt), where it goes and its ``x-CID`` (the same on
    every redelivery). ``state``: ``pending`` | ``delivered`` | ``refused`` | ``gave_up``."""

    gateway: str
    profile: str
    recipient: str
    taf: int
    reason: str
    uri: str
    cid: str
    period_start: float | None
    period_end: float | None
    entries: int
    xml: bytes
    created: float
    next_at: float
    id: int = 0
    attempts: int = 0
    state: str = "pending"
    status: int | None = None
    detail: str | None = None
    done_at: float | None = None


@dataclass(frozen=True)
class LogEntry:
    log: str
    recno: int
    level: int
    outcome: int
    text: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {"log": self.log, "recno": self.recno, "level": self.level, "outcome": self.outcome,
                "text": self.text, "at": self.at}


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- gateways
    def load_all(self) -> dict[str, dict[str, Any]]:
        return {gid: json.loads(doc) for gid, doc in self.db.execute("SELECT id, doc FROM gateway")}

    def save(
        self,
        gateway_id: str,
        doc: dict[str, Any],
        *,
        result: CommandRecord | None = None,
        logs: Iterable[LogEntry] = (),
        chunks: Iterable[tuple[str, int, bytes]] = (),
        drop_image: str | None = None,
        deliveries: Iterable[DeliveryRow] = (),
    ) -> list[int]:
        """Write a gateway's document with the command result, log entries, firmware chunks and
        meter data deliveries (a readout command's) that belong to the same change, in one
        transaction. Returns the IDs of the deliveries."""
        with self._tx() as db:
            db.execute("INSERT INTO gateway(id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                       (gateway_id, json.dumps(doc, separators=(",", ":"))))
            if result is not None:
                db.execute(
                    "INSERT OR REPLACE INTO command(gateway, command_id, at, kind, digest, state, status, xml, cid, "
                    "contact_uri, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (gateway_id, result.command_id, result.at, result.kind, result.digest, result.state,
                     result.status, result.xml, result.cid, result.contact_uri, result.request),
                )
            db.executemany(
                "INSERT INTO logentry(gateway, log, recno, level, outcome, text, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(gateway_id, e.log, e.recno, e.level, e.outcome, e.text, e.at) for e in logs],
            )
            if drop_image is not None:
                db.execute("DELETE FROM fwchunk WHERE gateway = ? AND image = ?", (gateway_id, drop_image))
            db.executemany(
                "INSERT OR REPLACE INTO fwchunk(gateway, image, offset, data) VALUES (?, ?, ?, ?)",
                [(gateway_id, image, offset, data) for image, offset, data in chunks],
            )
            return [_insert_delivery(db, r) for r in deliveries]

    def save_many(self, docs: dict[str, dict[str, Any]], logs: dict[str, list[LogEntry]] | None = None) -> None:
        """Write many gateway documents (and their log entries) in one transaction."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO gateway(id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                [(gid, json.dumps(doc, separators=(",", ":"))) for gid, doc in docs.items()],
            )
            db.executemany(
                "INSERT INTO logentry(gateway, log, recno, level, outcome, text, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(gid, e.log, e.recno, e.level, e.outcome, e.text, e.at) for gid, es in (logs or {}).items()
                 for e in es],
            )

    # -- commands
    _COLS = "command_id, kind, digest, state, status, xml, cid, contact_uri, at, request"

    def command(self, gateway_id: str, command_id: str) -> CommandRecord | None:
        row = self.db.execute(
            f"SELECT {self._COLS} FROM command WHERE gateway = ? AND command_id = ?", (gateway_id, command_id)
        ).fetchone()
        return None if row is None else _record(row)

    def running_commands(self) -> list[tuple[str, CommandRecord]]:
        """Commands answered with 202 whose Notify is not delivered yet (resumed after a restart)."""
        rows = self.db.execute(f"SELECT gateway, {self._COLS} FROM command WHERE state = 'running'")
        return [(r[0], _record(r[1:])) for r in rows]

    def commands(self, gateway_id: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT command_id, kind, state, status, at FROM command WHERE gateway = ? ORDER BY at DESC LIMIT ?",
            (gateway_id, limit),
        )
        return [{"command_id": r[0], "kind": r[1], "state": r[2], "status": r[3], "at": r[4]} for r in rows]

    def prune_commands(self, *, keep: int = 1000, max_age_s: float = 7 * 86400, now: float) -> int:
        """Forget command IDs older than ``max_age_s`` beyond the newest ``keep`` per gateway
        (docs/protocol.md section 6: at least 1,000 IDs and at least 7 days are kept)."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM command WHERE state = 'completed' AND at < ? AND rowid NOT IN ("
                " SELECT rowid FROM (SELECT rowid, row_number() OVER (PARTITION BY gateway ORDER BY at DESC) AS n"
                " FROM command) WHERE n <= ?)",
                (now - max_age_s, keep),
            )
            return cur.rowcount

    def update_contact(self, gateway_id: str, command_id: str, cid: str, contact_uri: str) -> None:
        """A repeat of a running command: its Notify goes to the latest request's CID and URI."""
        with self._tx() as db:
            db.execute("UPDATE command SET cid = ?, contact_uri = ? WHERE gateway = ? AND command_id = ?",
                       (cid, contact_uri, gateway_id, command_id))

    # -- outbox (Notifies and events not yet acknowledged by the head-end)
    def outbox_add(self, gateway_id: str, kind: str, xml: bytes, first_at: float, command_id: str | None = None) -> int:
        with self._tx() as db:
            cur = db.execute("INSERT INTO outbox(gateway, kind, command_id, xml, first_at) VALUES (?, ?, ?, ?, ?)",
                             (gateway_id, kind, command_id, xml, first_at))
            return int(cur.lastrowid or 0)

    def outbox(self, gateway_id: str | None = None) -> list[tuple[int, str, str, str | None, bytes, float]]:
        sql = "SELECT id, gateway, kind, command_id, xml, first_at FROM outbox"
        rows = self.db.execute(sql + " WHERE gateway = ? ORDER BY id" if gateway_id else sql + " ORDER BY id",
                               (gateway_id,) if gateway_id else ())
        return [(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]

    def outbox_done(self, ids: Iterable[int]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    # -- deliveries to EMTs (docs/protocol.md 14)
    def save_with_deliveries(self, gateway_id: str, doc: dict[str, Any], logs: Iterable[LogEntry],
                             rows: Iterable[DeliveryRow]) -> list[int]:
        """Write a gateway's document (its delivery cursors), log entries and new deliveries in one
        transaction: a period is either queued and past the cursor, or neither. Returns the IDs."""
        with self._tx() as db:
            db.execute("INSERT INTO gateway(id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                       (gateway_id, json.dumps(doc, separators=(",", ":"))))
            db.executemany(
                "INSERT INTO logentry(gateway, log, recno, level, outcome, text, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(gateway_id, e.log, e.recno, e.level, e.outcome, e.text, e.at) for e in logs],
            )
            ids = [_insert_delivery(db, r) for r in rows]
        return ids

    _DCOLS = ("gateway, profile, recipient, taf, reason, uri, cid, period_start, period_end, entries, created, "
              "next_at, id, attempts, state, status, detail, done_at")

    def pending_deliveries(self) -> list[DeliveryRow]:
        """Deliveries not yet acknowledged (without their XML), oldest first."""
        rows = self.db.execute(f"SELECT {self._DCOLS} FROM delivery WHERE state = 'pending' ORDER BY id")
        return [_delivery(r) for r in rows]

    def deliveries(self, gateway_id: str, limit: int = 100, state: str | None = None) -> list[DeliveryRow]:
        """A gateway's deliveries, newest first (without their XML)."""
        sql = f"SELECT {self._DCOLS} FROM delivery WHERE gateway = ?"
        args: list[Any] = [gateway_id]
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit])
        return [_delivery(r) for r in rows]

    def delivery_xml(self, delivery_id: int) -> bytes | None:
        row = self.db.execute("SELECT xml FROM delivery WHERE id = ?", (delivery_id,)).fetchone()
        return None if row is None or not row[0] else zlib.decompress(bytes(row[0]))

    def delivery_attempted(self, delivery_id: int, *, next_at: float, attempts: int, status: int | None,
                           detail: str | None) -> None:
        """An attempt that did not end the delivery: when to try again."""
        with self._tx() as db:
            db.execute("UPDATE delivery SET next_at = ?, attempts = ?, status = ?, detail = ? WHERE id = ?",
                       (next_at, attempts, status, detail, delivery_id))

    def delivery_done(self, delivery_id: int, *, state: str, attempts: int, status: int | None, detail: str | None,
                      at: float) -> None:
        """The delivery ended (``delivered``, ``refused``, ``gave_up``): its XML is dropped, the
        record is kept a while for inspection (:meth:`prune_deliveries`)."""
        with self._tx() as db:
            db.execute("UPDATE delivery SET state = ?, attempts = ?, status = ?, detail = ?, done_at = ?, xml = x''"
                       " WHERE id = ?", (state, attempts, status, detail, at, delivery_id))

    def prune_deliveries(self, *, max_age_s: float = 7 * 86400, now: float) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM delivery WHERE state != 'pending' AND done_at < ?",
                              (now - max_age_s,)).rowcount

    # -- certificates installed on gateways, by SHA-256 (documents hold only the hash)
    def put_certificate(self, sha256: str, der: bytes) -> None:
        self.db.execute("INSERT OR IGNORE INTO certstore(sha256, der) VALUES (?, ?)", (sha256, der))

    def get_certificate(self, sha256: str) -> bytes | None:
        row = self.db.execute("SELECT der FROM certstore WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else bytes(row[0])

    # -- logbooks
    def logs(
        self,
        gateway_id: str,
        log: str,
        *,
        from_recno: int | None = None,
        to_recno: int | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[LogEntry]:
        sql = "SELECT log, recno, level, outcome, text, at FROM logentry WHERE gateway = ? AND log = ?"
        args: list[Any] = [gateway_id, log]
        for cond, value in (("recno >= ?", from_recno), ("recno <= ?", to_recno), ("at >= ?", since),
                            ("at < ?", until)):
            if value is not None:
                sql += f" AND {cond}"
                args.append(value)
        sql += " ORDER BY recno LIMIT ?"
        args.append(limit)
        return [LogEntry(*r) for r in self.db.execute(sql, args)]

    # -- firmware
    def chunks(self, gateway_id: str, image: str) -> list[tuple[int, bytes]]:
        rows = self.db.execute("SELECT offset, data FROM fwchunk WHERE gateway = ? AND image = ? ORDER BY offset",
                               (gateway_id, image))
        return [(r[0], bytes(r[1])) for r in rows]

    # -- plumbing
    def _tx(self) -> _Tx:
        return _Tx(self.db)

    def stats(self) -> dict[str, int]:
        size = self.path.stat().st_size if self.path.exists() else 0
        wal = self.path.with_name(self.path.name + "-wal")
        return {"db_bytes": size, "wal_bytes": wal.stat().st_size if wal.exists() else 0}


def _insert_delivery(db: sqlite3.Connection, r: DeliveryRow) -> int:
    cur = db.execute(
        "INSERT INTO delivery(gateway, profile, recipient, taf, reason, uri, cid, period_start,"
        " period_end, entries, xml, created, next_at, attempts, state)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'pending')",
        (r.gateway, r.profile, r.recipient, r.taf, r.reason, r.uri, r.cid, r.period_start, r.period_end,
         r.entries, zlib.compress(r.xml), r.created, r.next_at))
    return int(cur.lastrowid or 0)


def _delivery(r: Any) -> DeliveryRow:
    return DeliveryRow(gateway=r[0], profile=r[1], recipient=r[2], taf=r[3], reason=r[4], uri=r[5], cid=r[6],
                       period_start=r[7], period_end=r[8], entries=r[9], xml=b"", created=r[10], next_at=r[11],
                       id=r[12], attempts=r[13], state=r[14], status=r[15], detail=r[16], done_at=r[17])


def _record(row: Any) -> CommandRecord:
    return CommandRecord(row[0], row[1], row[2], row[3], row[4], bytes(row[5]), row[6], row[7], row[8], bytes(row[9]))


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def iter_chunks(data: bytes, size: int) -> Iterator[tuple[int, bytes]]:
    for off in range(0, len(data), size):
        yield off, data[off : off + size]
