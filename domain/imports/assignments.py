"""Importing assignments: ``kind,subject,target,valid_from,valid_to`` rows.

A row equal to a stored assignment (same kind, subject, target and start) is that assignment: a
different ``valid_to`` re-dates its end (that is how a file ends an installation), an equal one
changes nothing. Every other row is a new assignment. Overlaps with stored assignments (as they
will be after the file) and between rows of the file are reported per line before anything is
written.

Large files take a bulk path: when a kind brings at least ``BULK_MIN_ROWS`` new assignments and at
least a third of what its table holds, the table's exclusion and foreign key constraints are
dropped for the insert and added again afterwards in the same transaction. Building the GiST
exclusion index once costs about a quarter of maintaining it row by row (~40 us per row), and
adding a foreign key validates with one join instead of a trigger per row. Adding them back checks
every row, so nothing inconsistent can commit; the price is that the table is locked (readers
wait) and the referenced tables take no writes until the import commits.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ForeignKeyConstraint, text
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.schema import AddConstraint, DropConstraint

from core.errors import InvalidInput
from domain import validators as v
from domain.imports.columns import Column
from domain.imports.errors import ErrorLog
from domain.imports.kinds import Context, Kind, duplicates
from domain.imports.upsert import Counts
from domain.topology.kinds import KINDS, AssignmentKind
from domain.topology.service import assignment_changes

BULK_MIN_ROWS = 20_000


def _kind(raw: str) -> str:
    value = raw.strip().lower()
    if value not in KINDS:
        raise InvalidInput(f"unknown assignment kind {raw!r}; one of: {', '.join(KINDS)}",
                           code="unknown_assignment_kind")
    return value


def _row(row: dict[str, Any], ctx: Context, line: int, errors: ErrorLog) -> None:
    k = KINDS.get(row.get("kind") or "")
    if k is not None:
        for col, side in (("subject", k.subject), ("target", k.target)):
            if row.get(col) is not None:
                try:
                    row[col] = side.normalise(row[col])
                except InvalidInput as err:
                    errors.add(line, col, err.code, f"{side.name}: {err.message}")
    start, end = row.get("valid_from"), row.get("valid_to")
    if start and end and end <= start:
        errors.add(line, "valid_to", "invalid_period", "valid_to must be after valid_from")
    if k is not None and start is not None:
        row["audit_new"] = json.dumps(assignment_changes(k, row["subject"], row["target"], start, end),
                                      separators=(",", ":"))


def _stage_col(k: AssignmentKind, column: str) -> str:
    return "subject_id" if column == k.subject.column else "target_id"


class AssignmentImport(Kind):
    """Rows are resolved once into ``<stage>_r`` (ids of both sides), then checked and applied."""

    async def check(self, session: AsyncSession, stage: str, present: set[str], errors: ErrorLog) -> None:
        resolved = f"{stage}_r"
        await session.execute(text(
            f"CREATE TEMP TABLE {resolved} ON COMMIT DROP AS SELECT line, kind, subject, target, valid_from, valid_to, "
            f"audit_new, NULL::bigint AS subject_id, NULL::bigint AS target_id FROM {stage} WHERE false"))
        kinds = [r[0] for r in await session.execute(text(f"SELECT DISTINCT kind FROM {stage}"))]
        for name in kinds:
            k = KINDS[name]
            await session.execute(text(
                f"INSERT INTO {resolved} SELECT s.line, s.kind, s.subject, s.target, s.valid_from, s.valid_to, "
                f"s.audit_new, x.id, y.id FROM {stage} s "
                f"LEFT JOIN {k.subject.model.__tablename__} x ON x.{k.subject.key} = s.subject "
                f"LEFT JOIN {k.target.model.__tablename__} y ON y.{k.target.key} = s.target WHERE s.kind = :k"),
                {"k": name})
        for col, label in (("subject", "subject_id"), ("target", "target_id")):
            missing = await session.execute(text(
                f"SELECT line, kind, {col} FROM {resolved} WHERE {label} IS NULL ORDER BY line LIMIT 1000"))
            for line, name, value in missing:
                side = KINDS[name].subject if col == "subject" else KINDS[name].target
                errors.add(line, col, "unknown_reference", f"no {side.name.replace('_', ' ')} {value}")
        await duplicates(session, resolved, "subject", errors, "", "kind", "target", "valid_from")
        if errors:
            return
        await session.execute(text(f"ANALYZE {resolved}"))
        for name in kinds:
            await _overlaps(session, resolved, KINDS[name], errors)

    async def apply(self, session: AsyncSession, stage: str, present: set[str], params: dict[str, Any]) -> Counts:
        resolved = f"{stage}_r"
        kinds = [r[0] for r in await session.execute(text(f"SELECT DISTINCT kind FROM {resolved}"))]
        total = Counts()
        for name in kinds:
            total = total + await _apply(session, resolved, KINDS[name], params)
        return total


async def _overlaps(session: AsyncSession, stage: str, k: AssignmentKind, errors: ErrorLog) -> None:
    a = k.model.__tablename__
    subj, tgt = k.subject.column, k.target.column
    excl = [_stage_col(k, c) for c in k.exclusive]
    same_excl = " AND ".join(f"c1.{c} = c2.{c}" for c in excl)
    sql = f"""
        WITH f AS (SELECT line, subject_id, target_id, valid_from, valid_to FROM {stage} WHERE kind = :k),
        ex AS (SELECT a.id, a.{subj} AS subject_id, a.{tgt} AS target_id, a.valid_from, a.valid_to FROM {a} a
               WHERE ({", ".join(f"a.{c}" for c in k.exclusive)}) IN (SELECT {", ".join(excl)} FROM f)),
        cand AS (
            SELECT e.id, e.subject_id, e.target_id, e.valid_from,
                   CASE WHEN f.line IS NULL THEN e.valid_to ELSE f.valid_to END AS valid_to, f.line
            FROM ex e LEFT JOIN f ON f.subject_id = e.subject_id AND f.target_id = e.target_id
                                 AND f.valid_from = e.valid_from
            UNION ALL
            SELECT NULL, f.subject_id, f.target_id, f.valid_from, f.valid_to, f.line FROM f
            WHERE NOT EXISTS (SELECT 1 FROM ex e WHERE e.subject_id = f.subject_id AND e.target_id = f.target_id
                              AND e.valid_from = f.valid_from)
        )
        SELECT DISTINCT ON (c1.line) c1.line, c2.line, c2.id, c2.valid_from, c2.valid_to
        FROM cand c1 JOIN cand c2 ON {same_excl}
             AND tstzrange(c1.valid_from, c1.valid_to, '[)') && tstzrange(c2.valid_from, c2.valid_to, '[)')
             AND NOT (c1.id IS NOT DISTINCT FROM c2.id AND c1.line IS NOT DISTINCT FROM c2.line)
        WHERE c1.line IS NOT NULL
        ORDER BY c1.line, c2.line NULLS FIRST
        LIMIT 1000"""
    side = " and ".join(c.removesuffix("_id").replace("_", " ") for c in k.exclusive)
    for line, other_line, other_id, start, end in await session.execute(text(sql), {"k": k.name}):
        period = f"{start.isoformat()} .. {end.isoformat() if end else 'open'}"
        other = f"line {other_line}" if other_line else f"stored assignment {other_id}"
        errors.add(line, "valid_from", "assignment_overlap",
                   f"{k.name}: overlaps {other} ({period}); the same {side} cannot be assigned twice at a time")


async def _apply(session: AsyncSession, stage: str, k: AssignmentKind, params: dict[str, Any]) -> Counts:
    a = k.model.__tablename__
    subj, tgt = k.subject.column, k.target.column
    match = f"a.{subj} = f.subject_id AND a.{tgt} = f.target_id AND a.valid_from = f.valid_from"
    f_sql = f"SELECT * FROM {stage} WHERE kind = :k"
    ts = "{}"  # to_jsonb of a timestamptz is ISO 8601 in the session's time zone, UTC during imports
    update_sql = f"""
        WITH f AS ({f_sql}),
        old AS (SELECT a.id, a.valid_to FROM {a} a JOIN f ON {match}),
        up AS (
            UPDATE {a} a SET valid_to = f.valid_to, "leading" = CAST(:leading AS boolean),
                source_system = CAST(:source_system AS varchar), updated_at = now(), updated_by = :actor
            FROM f WHERE {match}
              AND (a.valid_to, a."leading", a.source_system)
                  IS DISTINCT FROM (f.valid_to, CAST(:leading AS boolean), CAST(:source_system AS varchar))
            RETURNING a.id, a.valid_to
        ),
        aud AS (
            INSERT INTO audit_log (actor, action, object_type, object_id, changes, request_id)
            SELECT :actor, 'end', :k, up.id::text, jsonb_build_object('valid_to', jsonb_build_object(
                'old', {ts.format("old.valid_to")}, 'new', {ts.format("up.valid_to")})), :request_id
            FROM up JOIN old ON old.id = up.id
        )
        SELECT count(*) FROM up"""
    insert_sql = f"""
        WITH f AS ({f_sql}),
        ins AS (
            INSERT INTO {a} ({subj}, {tgt}, valid_from, valid_to, "leading", source_system, created_by, updated_by)
            SELECT f.subject_id, f.target_id, f.valid_from, f.valid_to, CAST(:leading AS boolean),
                   CAST(:source_system AS varchar), :actor, :actor
            FROM f WHERE NOT EXISTS (SELECT 1 FROM {a} a WHERE {match})
            RETURNING id, {subj} AS subject_id, {tgt} AS target_id, valid_from, valid_to
        ),
        aud AS (
            INSERT INTO audit_log (actor, action, object_type, object_id, changes, request_id)
            SELECT :actor, 'assign', :k, ins.id::text, CAST(f.audit_new AS jsonb), :request_id
            FROM ins JOIN f ON f.subject_id = ins.subject_id AND f.target_id = ins.target_id
                           AND f.valid_from = ins.valid_from
        )
        SELECT count(*) FROM ins"""
    bind = {**params, "k": k.name}
    updated = int((await session.execute(text(update_sql), bind)).scalar_one())
    new_rows, stored = (await session.execute(text(
        f"SELECT (SELECT count(*) FROM {stage} f WHERE kind = :k AND NOT EXISTS (SELECT 1 FROM {a} a WHERE {match})), "
        f"(SELECT count(*) FROM {a})"), bind)).one()
    bulk = new_rows >= BULK_MIN_ROWS and new_rows * 3 >= stored
    constraints = _bulk_constraints(k) if bulk else []
    if constraints:
        await session.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))  # for the index build
    for constraint in constraints:
        await session.execute(DropConstraint(constraint))
    created = int((await session.execute(text(insert_sql), bind)).scalar_one())
    for constraint in constraints:  # builds the exclusion index / validates the keys over every row
        await session.execute(AddConstraint(constraint))
    return Counts(created=created, updated=updated)


def _bulk_constraints(k: AssignmentKind) -> list[Any]:
    """The exclusion and foreign key constraints of the kind's table, for the bulk path."""
    return [c for c in k.model.__table__.constraints if isinstance(c, ExcludeConstraint | ForeignKeyConstraint)]





ASSIGNMENTS = AssignmentImport(
    name="assignments", table="", key="", object_type="assignment",
    columns=(
        Column("kind", "text", _kind, required=True, doc=", ".join(KINDS)),
        Column("subject", "text", str, required=True, doc="natural key of the first side (e.g. the meter ID)"),
        Column("target", "text", str, required=True, doc="natural key of the second side (e.g. the gateway ID)"),
        Column("valid_from", "timestamptz", v.iso_datetime, required=True, doc="ISO 8601; without offset: German time"),
        Column("valid_to", "timestamptz", v.iso_datetime, doc="exclusive end; empty: open-ended"),
    ),
    targets=lambda present: [], row_check=_row, derived=(("audit_new", "text"),),
)
