"""What each import kind accepts and how it lands: columns, row checks, cross-row checks in SQL,
and the targets of the set-based apply. Adding a kind means adding a spec here."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain import validators as v
from domain.catalogue.models import DeviceType
from domain.devices.lifecycle import STATES, transition_pairs
from domain.devices.models import LMN_TYPES
from domain.devices.service import cls_snapshot, gateway_snapshot, meter_snapshot
from domain.imports.columns import DEVICE_TYPE, FIRMWARE, Column, text_of
from domain.imports.errors import ErrorLog
from domain.imports.upsert import Counts, Target, apply
from domain.locations.models import DIRECTIONS, ConnectionPoint, MarketLocation, MeteringPoint
from domain.locations.service import snapshot_fields
from domain.partners.models import MarketPartner
from domain.secrets import SecretBox


@dataclass
class Context:
    """What row checks need, loaded once before the file is read."""

    box: SecretBox | None
    device_types: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (kind, FLAG)
    partners: set[str] = field(default_factory=set)
    source_system: str | None = None

    @classmethod
    async def load(cls, session: AsyncSession, box: SecretBox | None, source_system: str | None = None) -> Context:
        types = {r.code: (r.kind, r.manufacturer_flag) for r in
                 (await session.execute(select(DeviceType.code, DeviceType.kind, DeviceType.manufacturer_flag))).all()}
        partners = set((await session.scalars(select(MarketPartner.mp_id))).all())
        return cls(box=box, device_types=types, partners=partners, source_system=source_system)


# The change-log entry of a row the import creates, built by the parser thread with the same
# snapshot functions and ``diff`` the API services use: one definition of what a create records,
# and the database only parses the JSON (building it in SQL cost ~10 us per row).
CreateAudit = Callable[[dict[str, Any], Context], dict[str, Any]]


_PLAIN = (str, bool, int, float)


def audit_json(snapshot: dict[str, Any], ctx: Context) -> str:
    """``diff(None, snapshot)`` as JSON, written out for speed (a test compares it with the API's)."""
    if ctx.source_system is not None:
        snapshot = {**snapshot, "leading": False, "source_system": ctx.source_system}
    changes = {k: {"old": None, "new": v if isinstance(v, _PLAIN) else str(v)}
               for k, v in snapshot.items() if v is not None}
    return json.dumps(changes, separators=(",", ":"), ensure_ascii=False)


def _ns(**values: Any) -> SimpleNamespace:
    return SimpleNamespace(**values)


def device_audit(kind: str) -> CreateAudit:
    """What the device services record when they create a gateway, meter or CLS module."""
    def build(row: dict[str, Any], ctx: Context) -> dict[str, Any]:
        device_type = _ns(code=row.get("device_type"))
        if kind == "gateway":
            return gateway_snapshot(_ns(device_type=device_type, firmware_version=row.get("firmware_version"),
                                        wan_address=row.get("wan_address"), wakeup_address=row.get("wakeup_address"),
                                        network_segment=row.get("network_segment"),
                                        state=row.get("state") or "in_stock"))
        if kind == "meter":
            return meter_snapshot(_ns(device_type=device_type, firmware_version=row.get("firmware_version"),
                                      calibration_date=row.get("calibration_date"),
                                      calibration_valid_until=row.get("calibration_valid_until"),
                                      lmn_type=row.get("lmn_type") or "wired",
                                      mk0_fingerprint=row.get("mk0_fingerprint")))
        return cls_snapshot(_ns(device_type=device_type, firmware_version=row.get("firmware_version"),
                                controls=row.get("controls")))
    return build


def location_audit(model: type) -> CreateAudit:
    defaults = {"direction": "consumption"}

    def build(row: dict[str, Any], ctx: Context) -> dict[str, Any]:
        return {f: row.get(f) or defaults.get(f) for f in snapshot_fields(model)}
    return build


def with_create_audit(build: CreateAudit, check: RowCheck | None) -> RowCheck:
    """Run ``check``, then put the create entry's JSON in the row (column ``audit_new``)."""
    def both(row: dict[str, Any], ctx: Context, line: int, errors: ErrorLog) -> None:
        before = errors.count
        if check is not None:
            check(row, ctx, line, errors)
        if errors.count == before:
            row["audit_new"] = audit_json(build(row, ctx), ctx)
    return both


RowCheck = Callable[[dict[str, Any], Context, int, ErrorLog], None]


@dataclass(frozen=True)
class Kind:
    name: str  # "gateways"
    table: str
    key: str
    object_type: str
    columns: tuple[Column, ...]
    targets: Callable[[set[str]], list[Target]]  # for the columns present in the file
    row_check: RowCheck | None = None
    derived: tuple[tuple[str, str], ...] = ()  # extra stage columns (name, type) filled by row_check
    source_joins: str = ""
    source_columns: str = ""
    lock_key: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def stage_columns(self, present: list[str]) -> list[tuple[str, str]]:
        by_name = {c.name: c for c in self.columns}
        return [(n, by_name[n].pg_type) for n in present] + list(self.derived)

    def source(self, stage: str, where: str = "") -> str:
        return f"SELECT s.*{self.source_columns} FROM {stage} s {self.source_joins} {where}"

    async def check(self, session: AsyncSession, stage: str, present: set[str], errors: ErrorLog) -> None:
        await duplicates(session, stage, self.key, errors)

    async def apply(self, session: AsyncSession, stage: str, present: set[str], params: dict[str, Any]) -> Counts:
        return await apply(session, table=self.table, key=self.key, object_type=self.object_type,
                           source=self.source(stage), targets=self.targets(present), params=params,
                           create_audit="audit_new")


async def duplicates(session: AsyncSession, stage: str, key: str, errors: ErrorLog, where: str = "",
                     *more: str) -> None:
    """Rows repeating ``key`` (and ``more`` columns): reported on every repetition."""
    columns = ", ".join((key, *more))
    rows = await session.execute(text(
        f"SELECT concat_ws(' ', {columns}), array_agg(line ORDER BY line) FROM {stage} {where} GROUP BY {columns} "
        f"HAVING count(*) > 1 ORDER BY min(line) LIMIT 1000"))
    for value, lines in rows:
        for line in lines[1:]:
            errors.add(line, key, "duplicate_row", f"{value} appears again (first on line {lines[0]})")


# -- shared targets ---------------------------------------------------------------------------

def ownership() -> list[Target]:
    return [Target("\"leading\"", "CAST(:leading AS boolean)", audit="leading", create_default="true"),
            Target("source_system", "CAST(:source_system AS varchar)", audit="source_system")]


def plain(present: set[str], *names: str) -> list[Target]:
    return [Target(n, f"s.{n}", audit=n) for n in names if n in present]


def _device_type_code(alias: str) -> str:
    return f"(SELECT code FROM device_types WHERE id = {alias}.device_type_id)"


def device_targets(present: set[str]) -> list[Target]:
    return [Target("device_type_id", "s.device_type_id", audit="device_type", audit_sql=_device_type_code),
            *plain(present, "firmware_version")]


DEVICE_SOURCE_JOINS = "JOIN device_types dt ON dt.code = s.device_type"
DEVICE_SOURCE_COLUMNS = ", dt.id AS device_type_id"


def check_device_type(kind: str) -> RowCheck:
    """The device type exists, is of the right kind, and its FLAG matches the device ID."""
    def check(row: dict[str, Any], ctx: Context, line: int, errors: ErrorLog) -> None:
        code = row.get("device_type")
        device_id = row.get("device_id")
        if code is None or device_id is None:
            return
        found = ctx.device_types.get(code)
        if found is None:
            errors.add(line, "device_type", "unknown_device_type", f"unknown device type {code!r}")
        elif found[0] != kind:
            errors.add(line, "device_type", "device_type_mismatch", f"{code!r} is a {found[0]} type, not {kind}")
        elif device_id[1:4] != found[1]:
            errors.add(line, "device_type", "device_type_mismatch",
                       f"device ID {device_id} carries manufacturer code {device_id[1:4]}, {code!r} is made by "
                       f"{found[1]}")
    return check


def check_partners(*names: str) -> RowCheck:
    def check(row: dict[str, Any], ctx: Context, line: int, errors: ErrorLog) -> None:
        for n in names:
            value = row.get(n)
            if value is not None and value not in ctx.partners:
                errors.add(line, n, "unknown_market_partner", f"unknown market partner {value}")
    return check


def checks(*fns: RowCheck) -> RowCheck:
    def check(row: dict[str, Any], ctx: Context, line: int, errors: ErrorLog) -> None:
        for fn in fns:
            fn(row, ctx, line, errors)
    return check


# -- gateways ---------------------------------------------------------------------------------

_TRANSITIONS = ", ".join(f"('{a}', '{b}')" for a, b in transition_pairs())


class GatewayKind(Kind):
    async def check(self, session: AsyncSession, stage: str, present: set[str], errors: ErrorLog) -> None:
        await super().check(session, stage, present, errors)
        if "state" not in present:
            return
        rows = await session.execute(text(
            f"SELECT s.line, g.state, s.state FROM {stage} s JOIN gateways g ON g.device_id = s.device_id "
            f"WHERE s.state IS NOT NULL AND s.state <> g.state "
            f"AND (g.state, s.state) NOT IN (VALUES {_TRANSITIONS}) ORDER BY s.line LIMIT 1000"))
        for line, old, new in rows:
            errors.add(line, "state", "illegal_state_transition", f"gateway is {old}; it cannot go to {new}")


def _gateway_targets(present: set[str]) -> list[Target]:
    targets = [*device_targets(present), *plain(present, "wan_address", "wakeup_address", "network_segment")]
    if "state" in present:
        targets += [Target("state", "COALESCE(s.state, t.state)", insert="COALESCE(s.state, 'in_stock')",
                           audit="state"),
                    Target("state_changed_at", "CASE WHEN s.state IS NOT NULL AND s.state <> t.state THEN now() "
                           "ELSE t.state_changed_at END", insert="now()", compare=False)]
    else:
        targets.append(Target("state", "t.state", insert="'in_stock'", compare=False))
    return targets + ownership()


GATEWAYS = GatewayKind(
    name="gateways", table="gateways", key="device_id", object_type="gateway",
    columns=(
        Column("device_id", "text", v.gateway_id, required=True, doc="DIN 43849 ID, Sparte E"),
        DEVICE_TYPE, FIRMWARE,
        Column("wan_address", "text", text_of(255, "wan_address")),
        Column("wakeup_address", "text", text_of(255, "wakeup_address")),
        Column("network_segment", "text", v.segment),
        Column("state", "text", lambda raw: v.choice(raw, STATES, "state"),
               doc="initial state of new gateways; for existing ones a checked transition"),
    ),
    targets=_gateway_targets, row_check=with_create_audit(device_audit("gateway"), check_device_type("gateway")),
    derived=(("audit_new", "text"),),
    source_joins=DEVICE_SOURCE_JOINS, source_columns=DEVICE_SOURCE_COLUMNS,
)


# -- meters -----------------------------------------------------------------------------------

def _mk0_marker(alias: str) -> str:
    return f"('hmac:' || encode(substring({alias}.mk0_fingerprint from 1 for 4), 'hex'))"


def mk0_targets() -> list[Target]:
    # An empty MK0 cell keeps the stored key: a file without keys never erases them.
    return [Target("mk0_ciphertext", "CASE WHEN s.mk0_fingerprint IS NULL OR s.mk0_fingerprint = t.mk0_fingerprint "
                   "THEN t.mk0_ciphertext ELSE s.mk0_ciphertext END", insert="s.mk0_ciphertext", compare=False),
            Target("mk0_fingerprint", "COALESCE(s.mk0_fingerprint, t.mk0_fingerprint)", insert="s.mk0_fingerprint",
                   audit="mk0", audit_sql=_mk0_marker)]


def encrypt_mk0(row: dict[str, Any], ctx: Context, line: int, errors: ErrorLog) -> None:
    key = row.pop("mk0", None)
    if key is None or row.get("device_id") is None:
        row["mk0_ciphertext"] = row["mk0_fingerprint"] = None
        return
    assert ctx.box is not None
    row["mk0_ciphertext"] = ctx.box.encrypt(key, row["device_id"])
    row["mk0_fingerprint"] = ctx.box.fingerprint(key, row["device_id"])


def _meter_targets(present: set[str]) -> list[Target]:
    targets = [*device_targets(present), *plain(present, "calibration_date", "calibration_valid_until")]
    if "lmn_type" in present:
        targets.append(Target("lmn_type", "COALESCE(s.lmn_type, t.lmn_type)", insert="COALESCE(s.lmn_type, 'wired')",
                              audit="lmn_type"))
    else:
        targets.append(Target("lmn_type", "t.lmn_type", insert="'wired'", compare=False))
    if "mk0" in present:
        targets += mk0_targets()
    return targets + ownership()


def _calibration(row: dict[str, Any], ctx: Context, line: int, errors: ErrorLog) -> None:
    start, end = row.get("calibration_date"), row.get("calibration_valid_until")
    if start and end and end < start:
        errors.add(line, "calibration_valid_until", "invalid_calibration_period", "before calibration_date")


METERS = Kind(
    name="meters", table="meters", key="device_id", object_type="meter",
    columns=(
        Column("device_id", "text", v.meter_id, required=True, doc="DIN 43849 ID, Sparte 1/6/7/8/9"),
        DEVICE_TYPE, FIRMWARE,
        Column("calibration_date", "date", v.iso_date),
        Column("calibration_valid_until", "date", v.iso_date, doc="end of calibration validity (Eichfrist)"),
        Column("lmn_type", "text", lambda raw: v.choice(raw, LMN_TYPES, "lmn_type")),
        Column("mk0", "bytea", v.mk0, doc="meter master key, 32 or 64 hex digits; stored encrypted"),
    ),
    targets=_meter_targets,
    row_check=with_create_audit(device_audit("meter"), checks(check_device_type("meter"), _calibration, encrypt_mk0)),
    derived=(("mk0_ciphertext", "bytea"), ("mk0_fingerprint", "bytea"), ("audit_new", "text")),
    source_joins=DEVICE_SOURCE_JOINS, source_columns=DEVICE_SOURCE_COLUMNS,
)

CLS_MODULES = Kind(
    name="cls-modules", table="cls_modules", key="device_id", object_type="cls_module",
    columns=(
        Column("device_id", "text", v.device_id, required=True), DEVICE_TYPE, FIRMWARE,
        Column("controls", "text", text_of(100, "controls")),
    ),
    targets=lambda present: [*device_targets(present), *plain(present, "controls"), *ownership()],
    row_check=with_create_audit(device_audit("cls"), check_device_type("cls")), derived=(("audit_new", "text"),),
    source_joins=DEVICE_SOURCE_JOINS, source_columns=DEVICE_SOURCE_COLUMNS,
)


# -- locations --------------------------------------------------------------------------------

CONNECTION_POINTS = Kind(
    name="connection-points", table="connection_points", key="code", object_type="connection_point",
    columns=(
        Column("code", "text", v.code, required=True),
        Column("street", "text", text_of(200, "street")),
        Column("house_number", "text", text_of(20, "house_number")),
        Column("postcode", "text", v.postcode),
        Column("city", "text", text_of(100, "city")),
        Column("grid_area", "text", v.segment),
        Column("grid_operator", "text", v.mp_id, doc="13-digit market partner ID (must exist)"),
    ),
    targets=lambda present: [*plain(present, "street", "house_number", "postcode", "city", "grid_area",
                                    "grid_operator"), *ownership()],
    row_check=with_create_audit(location_audit(ConnectionPoint), check_partners("grid_operator")),
    derived=(("audit_new", "text"),),
)


def _direction_targets(present: set[str], *partners: str) -> list[Target]:
    targets = plain(present, *partners)
    if "direction" in present:
        targets.append(Target("direction", "COALESCE(s.direction, t.direction)",
                              insert="COALESCE(s.direction, 'consumption')", audit="direction"))
    else:
        targets.append(Target("direction", "t.direction", insert="'consumption'", compare=False))
    return targets + ownership()


_DIRECTION = Column("direction", "text", lambda raw: v.choice(raw, DIRECTIONS, "direction"))

METERING_POINTS = Kind(
    name="metering-points", table="metering_points", key="melo", object_type="metering_point",
    columns=(Column("melo", "text", v.melo, required=True), _DIRECTION,
             Column("grid_operator", "text", v.mp_id), Column("msb", "text", v.mp_id)),
    targets=lambda present: _direction_targets(present, "grid_operator", "msb"),
    row_check=with_create_audit(location_audit(MeteringPoint), check_partners("grid_operator", "msb")),
    derived=(("audit_new", "text"),),
)

MARKET_LOCATIONS = Kind(
    name="market-locations", table="market_locations", key="malo", object_type="market_location",
    columns=(Column("malo", "text", v.malo, required=True), _DIRECTION, Column("supplier", "text", v.mp_id)),
    targets=lambda present: _direction_targets(present, "supplier"),
    row_check=with_create_audit(location_audit(MarketLocation), check_partners("supplier")),
    derived=(("audit_new", "text"),),
)
