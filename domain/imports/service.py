"""Running an import: stream-parse and validate the file, COPY valid rows into a temporary stage
table, check what needs the whole file (duplicates, references, overlaps) in SQL, then apply
set-based. Any error anywhere: nothing is stored and every problem is reported by line and column.

Parsing runs in a worker thread one chunk ahead of the COPY, so Python and PostgreSQL work at the
same time and the process holds one chunk of rows, whatever the file size. The caller owns the
transaction (commit or roll back); ``dry_run`` applies inside a savepoint and rolls it back, so
the counts are exact.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import current_actor, current_request_id
from core.errors import InvalidInput, NotFound
from domain.audit.repository import record
from domain.imports.assignments import ASSIGNMENTS
from domain.imports.columns import copy_text
from domain.imports.delivery import DELIVERY
from domain.imports.errors import ErrorLog, ImportRejected, RowError
from domain.imports.kinds import (
    CLS_MODULES,
    CONNECTION_POINTS,
    GATEWAYS,
    MARKET_LOCATIONS,
    METERING_POINTS,
    METERS,
    Context,
    Kind,
)
from domain.imports.models import ImportRun
from domain.imports.reader import CsvSource, Progress, check_header
from domain.secrets import SecretBox

KINDS: dict[str, Kind] = {k.name: k for k in (GATEWAYS, METERS, CLS_MODULES, CONNECTION_POINTS, METERING_POINTS,
                                             MARKET_LOCATIONS, ASSIGNMENTS, DELIVERY)}
CHUNK_ROWS = 5000
_stage_ids = itertools.count(1)


class UnknownImportKind(NotFound):
    code = "unknown_import_kind"


@dataclass(frozen=True)
class ImportResult:
    kind: str
    file_name: str
    sha256: str
    rows: int
    created: int
    updated: int
    unchanged: int
    dry_run: bool
    seconds: float
    import_id: int | None


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownImportKind(f"unknown import kind {name!r}; one of: {', '.join(KINDS)}") from None


class _Rows:
    """Turns CSV records into COPY lines, chunk by chunk (called from a worker thread)."""

    def __init__(self, kind: Kind, source: CsvSource, positions: dict[str, int], present: list[str],
                 ctx: Context, errors: ErrorLog) -> None:
        by_name = {c.name: c for c in kind.columns}
        self.cells = [(n, positions[n], by_name[n].parse, by_name[n].required) for n in present]
        self.order = present + [name for name, _ in kind.derived]
        self.width = len(source.header)
        self.rows = source.rows_iter()
        self.check = kind.row_check
        self.ctx = ctx
        self.errors = errors
        self.count = 0

    def chunk(self) -> tuple[bytes, bool]:
        """The next chunk of COPY lines and whether the file is done."""
        out: list[str] = []
        errors, check, ctx, order = self.errors, self.check, self.ctx, self.order
        for line, fields in self.rows:
            self.count += 1
            if len(fields) != self.width:
                errors.add(line, None, "wrong_field_count", f"{len(fields)} fields, the header has {self.width}")
                continue
            before = errors.count
            row: dict[str, Any] = {}
            for name, index, parse, required in self.cells:
                raw = fields[index].strip()
                if not raw:
                    if required:
                        errors.add(line, name, "missing_value", f"{name} is required")
                    row[name] = None
                    continue
                try:
                    row[name] = parse(raw)
                except InvalidInput as err:
                    errors.add(line, name, err.code, err.message)
            if errors.count == before and check is not None:
                check(row, ctx, line, errors)
            if not errors:
                out.append(f"{line}\t" + "\t".join([copy_text(row.get(n)) for n in order]) + "\n")
            if len(out) >= CHUNK_ROWS:
                return "".join(out).encode(), False
        return "".join(out).encode(), True


async def run_import(session: AsyncSession, kind_name: str, stream: Iterable[bytes], *, file_name: str = "upload.csv",
                     source_system: str | None = None, dry_run: bool = False, box: SecretBox | None = None,
                     progress: Progress | None = None, max_errors: int = 1000) -> ImportResult:
    """Import ``stream`` (CSV bytes) as ``kind_name``; raises ImportRejected listing every problem.

    ``source_system``: the rows mirror that external system (their mirrored fields become
    read-only through the API); omitted: gridgate leads them.
    """
    kind = kind_of(kind_name)
    started = time.perf_counter()
    # One import per kind at a time in a tenant: concurrent files would race on the same keys.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"gridgate-import:{kind.name}"})
    # Set-based statements over 100,000 rows hash and materialise more than the 4 MB default.
    await session.execute(text("SET LOCAL work_mem = '64MB'"))
    # Timestamps in audit entries come out of to_jsonb in UTC (as the API writes them).
    await session.execute(text("SET LOCAL timezone = 'UTC'"))
    ctx = await Context.load(session, box, source_system)
    errors = ErrorLog(max_errors)
    source = await asyncio.to_thread(CsvSource, kind.name, stream, errors, progress)
    positions = check_header(kind.name, source.header, kind.column_names, kind.required)
    present = [c for c in kind.column_names if c in positions]
    rows = _Rows(kind, source, positions, present, ctx, errors)

    stage = f"import_stage_{next(_stage_ids)}"
    columns = [("line", "integer"), *kind.stage_columns(present)]
    await session.execute(text(f"CREATE TEMP TABLE {stage} ({', '.join(f'{n} {t}' for n, t in columns)}) "
                               "ON COMMIT DROP"))
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    async with raw.cursor() as cursor, cursor.copy(
            f"COPY {stage} ({', '.join(n for n, _ in columns)}) FROM STDIN") as copy:
        pending = asyncio.create_task(asyncio.to_thread(rows.chunk))
        while True:
            data, done = await pending
            if not done:  # parse the next chunk while PostgreSQL takes this one
                pending = asyncio.create_task(asyncio.to_thread(rows.chunk))
            if data:
                await copy.write(data)
            if done:
                break
    if progress is not None:
        progress(source.bytes_read, rows.count)
    if errors:
        raise ImportRejected(kind.name, errors, rows.count)
    if rows.count == 0:
        raise ImportRejected(kind.name, [RowError(2, None, "no_rows", "the file has a header but no rows")])
    await session.execute(text(f"ANALYZE {stage}"))
    await kind.check(session, stage, set(present), errors)
    if errors:
        raise ImportRejected(kind.name, errors, rows.count)

    params = {"actor": current_actor(), "request_id": current_request_id(), "leading": source_system is None,
              "source_system": source_system}
    if dry_run:
        savepoint = await session.begin_nested()
        counts = await kind.apply(session, stage, set(present), params)
        await savepoint.rollback()
        run_id = None
    else:
        counts = await kind.apply(session, stage, set(present), params)
        run = ImportRun(actor=params["actor"], kind=kind.name, file_name=file_name[:500],
                        sha256=source.sha256.hexdigest(), source_system=source_system, rows=rows.count,
                        created=counts.created, updated=counts.updated,
                        unchanged=rows.count - counts.created - counts.updated)
        session.add(run)
        await session.flush()
        if counts.created or counts.updated:  # a file that changes nothing leaves only its import_runs row
            record(session, "import", "import", str(run.id), {"kind": kind.name, "file": file_name,
                                                              "rows": rows.count, "created": counts.created,
                                                              "updated": counts.updated})
        run_id = run.id
    await session.execute(text(f"DROP TABLE IF EXISTS {stage}, {stage}_r"))
    return ImportResult(kind=kind.name, file_name=file_name, sha256=source.sha256.hexdigest(), rows=rows.count,
                        created=counts.created, updated=counts.updated,
                        unchanged=rows.count - counts.created - counts.updated, dry_run=dry_run,
                        seconds=round(time.perf_counter() - started, 3), import_id=run_id)
