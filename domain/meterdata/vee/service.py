"""The VEE service: validate a batch of (series, day) against the chain of each series' market role
and write a validated version where the result differs from the current final one; the queue and
range passes the workflows drive; manual corrections (edited versions); "explain this value"; the
chain versions. Nothing here commits: the caller owns the transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, NotFound
from domain.meterdata import partitions
from domain.meterdata import repository as days_repo
from domain.meterdata.days import SLOT, day_end, day_start, days_between, slot_of, slots_in
from domain.meterdata.delivery import INTERVAL_OF_REGISTER
from domain.meterdata.models import LAYERS
from domain.meterdata.quality import STS_CORRECTION_REASON, Quality
from domain.meterdata.vee import chain as chains
from domain.meterdata.vee import queue
from domain.meterdata.vee import repository as repo
from domain.meterdata.vee.calendar import by_quarter, comparable_days
from domain.meterdata.vee.engine import Capacity, DayInput, DayResult, Edit, validate_day
from domain.meterdata.vee.models import VeeChain
from domain.meterdata.vee.repository import SeriesFilter, SeriesInfo, Version
from domain.meterdata.vee.rules import advances

RAW, VALIDATED, EDITED = LAYERS["raw"], LAYERS["validated"], LAYERS["edited"]
REGISTER_OF_INTERVAL = {v: k for k, v in INTERVAL_OF_REGISTER.items()}
PROFILE_KINDS = ("interval", "register")
METHOD_MANUAL = "manual"  # the method of a manual correction (its MSCONS reason goes under STS Z34)
CORRECTION_REASONS = ("customer_reading", "meter_fault", "meter_exchange", "transmission_error", "plausibility",
                      "estimate_replaced", "other")


class ChainNotFound(NotFound):
    code = "vee_chain_not_found"


class ValueNotFound(NotFound):
    code = "meter_value_not_found"


# -- chains ----------------------------------------------------------------------------------------

_PARSED: dict[tuple[str, int, str], list[chains.Rule]] = {}


def _rules_of(chain: VeeChain) -> list[chains.Rule]:
    """The parsed rules of a chain version (rows never change; keyed by content, not by row ID, as
    row IDs are per tenant)."""
    digest = hashlib.sha256(json.dumps(chain.rules, sort_keys=True).encode()).hexdigest()
    key = (chain.role, chain.version, digest)
    if key not in _PARSED:
        _PARSED[key] = chains.parse(list(chain.rules))
    return _PARSED[key]


async def active_chains(session: AsyncSession, roles: Sequence[str]) -> dict[str, VeeChain]:
    """The active chain of each role; a role validated for the first time gets the shipped default
    as its version 1."""
    found = await repo.active_chains(session, roles)
    missing = [r for r in sorted(set(roles)) if r not in found]
    for role in missing:
        await repo.add_default_chain(session, role, chains.default_rules(role))
    if missing:
        found = await repo.active_chains(session, roles)
    return found


async def publish_chain(session: AsyncSession, role: str, rules: list[dict[str, Any]], *, user: str,
                        note: str | None = None) -> VeeChain:
    """Store ``rules`` as the next version of ``role``'s chain and make it the active one."""
    try:
        parsed = chains.parse(rules)
    except chains.InvalidChain as err:
        raise InvalidInput(str(err), code="invalid_vee_chain") from None
    await repo.lock_role(session, role)
    await active_chains(session, [role])  # version 1 is the shipped default, also when a role starts edited
    return await repo.add_chain_version(session, role, chains.dump(parsed), user, note)


async def activate_chain_version(session: AsyncSession, role: str, version: int) -> None:
    """Make an earlier (or later) version active again, e.g. to undo a change."""
    await repo.lock_role(session, role)
    if not await repo.activate_chain(session, role, version):
        raise ChainNotFound(f"no version {version} of the {role} chain")


# -- validating a batch ----------------------------------------------------------------------------

@dataclass(kw_only=True)
class BatchResult:
    days: int = 0
    values: int = 0
    versions: int = 0
    findings: int = 0
    substitutes: int = 0
    missing: int = 0
    chains: dict[str, int] = field(default_factory=dict)  # role -> version applied

    def add(self, other: BatchResult) -> None:
        for f in ("days", "values", "versions", "findings", "substitutes", "missing"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.chains.update(other.chains)

    def counts(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in ("days", "values", "versions", "findings", "substitutes", "missing")}


_TRUE = int(Quality.TRUE)


def _true(row: Version | None) -> list[int | None] | None:
    """The row's true values (None elsewhere)."""
    if row is None:
        return None
    q = row.quality
    if q.count(_TRUE) == len(q) == len(row.values):
        return list(row.values)
    return [v if q_ == _TRUE else None for v, q_ in zip(row.values, q, strict=False)]


def _first(row: Version | None) -> int | None:
    return row.values[0] if row and row.values and row.quality[:1] == bytes([_TRUE]) else None


def _last(row: Version | None) -> int | None:
    return row.values[-1] if row and row.values and row.quality[-1:] == bytes([_TRUE]) else None


def _capacity(periods: list[repo.MeterCapacity] | None, day: dt.date) -> Capacity | None:
    if not periods:
        return None
    start, end = day_start(day), day_end(day)
    covering = [p for p in periods if p.valid_from < end and (p.valid_to is None or p.valid_to > start)]
    if not covering:
        return None
    caps = max(covering, key=lambda p: p.valid_from).capabilities
    amps = next((float(c.split(":", 1)[1]) for c in caps if c.startswith("imax:")
                 and c.split(":", 1)[1].replace(".", "", 1).isdigit()), None)
    return Capacity(max_current_a=amps, phases=3 if "three_phase" in caps else 1)


def _edits(final: Version | None) -> dict[int, Edit]:
    if final is None or not final.notes:
        return {}
    return {int(slot): Edit(value=final.values[int(slot)] if int(slot) < len(final.values) else None, note=note)
            for slot, note in final.notes.items() if isinstance(note, dict) and "user" in note}


def _same(result: DayResult, final: Version, raw: Version | None) -> bool:
    return (result.values == list(final.values) and result.quality == bytes(final.quality)
            and (result.notes or None) == (final.notes or None)
            and (raw.status() if raw else {}) == final.status())


async def validate(session: AsyncSession, run_id: int, keys: Sequence[tuple[int, dt.date]]) -> BatchResult:
    """Validate the (series, day) ``keys`` in one go: one query per kind of data for the whole batch,
    the pure engine per day, one insert of the versions and one of the findings."""
    wanted = sorted(set(keys))
    info = {s: i for s, i in (await repo.series_info(session, {s for s, _ in wanted})).items()
            if i.kind in PROFILE_KINDS and i.period_s > 0}
    wanted = [(s, d) for s, d in wanted if s in info]
    out = BatchResult()
    if not wanted:
        return out
    active = await active_chains(session, [i.role for i in info.values()])
    rules = {role: _rules_of(c) for role, c in active.items()}
    weeks = max((chains.history_weeks(r) for r in rules.values()), default=0)

    siblings = await repo.sibling_series(session, {(i.metering_point_id, REGISTER_OF_INTERVAL[i.obis],
                                                    i.market_partner) for i in info.values()
                                                   if i.kind == "interval" and i.obis in REGISTER_OF_INTERVAL})
    register_of = {s: siblings.get((i.metering_point_id, REGISTER_OF_INTERVAL.get(i.obis, ""), i.market_partner))
                   for s, i in info.items() if i.kind == "interval"}
    one = dt.timedelta(days=1)
    history_days = {d: comparable_days(d, weeks) for d in {d for _, d in wanted}} if weeks else {}
    raw_keys = set(wanted) | {(r, d) for s, d in wanted if (r := register_of.get(s)) is not None}
    other_keys: set[tuple[int, dt.date]] = set()
    for s, d in wanted:
        other_keys |= {(s, d - one), (s, d + one)} | {(s, h) for h in history_days.get(d, [])}
        if (r := register_of.get(s)) is not None:
            other_keys.add((r, d - one))
    by_layer = await repo.newest_by_layer(session, raw_keys)
    raw = {k: v[RAW] for k, v in by_layer.items() if RAW in v}
    final: dict[tuple[int, dt.date], Version] = {}
    versions: dict[tuple[int, dt.date], int] = {}
    for k, layers in by_layer.items():
        versions[k] = max(v.version for v in layers.values())
        done = [v for layer, v in layers.items() if layer != RAW]
        if done:
            final[k] = max(done, key=lambda v: v.version)
    other = await repo.newest(session, other_keys - raw_keys)
    other.update({k: max(v.values(), key=lambda x: x.version) for k, v in by_layer.items() if k in other_keys})
    first, last = min(d for _, d in wanted), max(d for _, d in wanted)
    point = await repo.readings(session, [s for s, i in info.items() if i.kind == "register"], first, last)
    conflicted = await repo.conflicts(session, wanted)
    capacities = await repo.meter_capabilities(session, {i.metering_point_id for i in info.values()}, first, last)

    readings_at: dict[tuple[int, dt.date], dict[int, int]] = {}
    for s, found in point.items():
        for at, value in found:
            day, slot = slot_of(at - SLOT)
            readings_at.setdefault((s, day), {})[slot] = value
    history_cache: dict[tuple[int, dt.date], list[int | None] | None] = {}

    def history_of(s: SeriesInfo, h: dt.date) -> list[int | None] | None:
        key = (s.id, h)
        if key not in history_cache:
            vals = _true(other.get(key))
            if vals is not None and s.kind == "register":
                vals = advances(vals, None)
            history_cache[key] = by_quarter(h, vals) if vals is not None and any(v is not None for v in vals) \
                else None
        return history_cache[key]

    rows: list[dict[str, Any]] = []
    finding_rows: list[dict[str, Any]] = []
    source = f"vee:{run_id}"
    for s, d in wanted:
        si = info[s]
        chain = active[si.role]
        n = slots_in(d)
        got = raw.get((s, d))
        hist_days, hist = [], []
        for h in history_days.get(d, []):
            vals = history_of(si, h)
            if vals is not None:
                hist_days.append(h)
                hist.append(vals)
        reg = register_of.get(s)
        cur = final.get((s, d))
        inp = DayInput(
            series_id=s, day=d, kind=si.kind, unit=si.unit, scaler=si.scaler,
            values=list(got.values) if got else [None] * n,
            status=got.status() if got else {},
            raw_notes=got.notes if got else None, before=_last(other.get((s, d - one))),
            after=_first(other.get((s, d + one))), history=hist, history_days=hist_days,
            register=list(raw[(reg, d)].values) if reg is not None and (reg, d) in raw else None,
            register_start=_last(other.get((reg, d - one))) if reg is not None else None,
            readings=readings_at.get((s, d), {}), conflicts=conflicted.get((s, d), []),
            capacity=_capacity(capacities.get(si.metering_point_id), d), edits=_edits(cur))
        result = validate_day(inp, rules[si.role], n)
        out.days += 1
        out.values += n
        out.substitutes += result.substitutes
        out.missing += result.missing
        out.chains[si.role] = chain.version
        for f in result.findings:
            finding_rows.append({"run_id": run_id, "series_id": s, "day": d, "rule_id": f.rule_id,
                                 "severity": f.severity, "slots": list(f.slots) if f.slots is not None else None,
                                 "detail": f.detail[:2000], "data": f.data})
        if cur is not None and _same(result, cur, got):
            if cur.source == source:
                out.versions += 1  # written by an earlier attempt of this batch
            continue
        rows.append({"series_id": s, "day": d, "version": versions.get((s, d), 0) + 1, "layer": VALIDATED,
                     "values": result.values, "quality": result.quality,
                     "status_common": got.status_common if got else 0,
                     "status_slots": got.status_slots if got else None,
                     "status_words": got.status_words if got else None,
                     "notes": result.notes, "source": source, "reason": f"chain {si.role} v{chain.version}"})
    if rows:
        await partitions.ensure(session, "meter_days", first, last)
        await repo.copy_days(session, rows)
    await repo.replace_findings(session, run_id, wanted, finding_rows)
    out.versions += len(rows)
    out.findings = len(finding_rows)
    await repo.add_to_run(session, run_id, out.counts(), out.chains)
    return out



# -- runs: after deliveries, nightly, over a range -------------------------------------------------

async def open_run(session: AsyncSession, *, trigger: str, workflow_id: str | None, initiator: str,
                   reason: str | None = None, first: dt.date | None = None, last: dt.date | None = None,
                   flt: SeriesFilter | None = None) -> int:
    described = {k: v for k, v in dataclasses.asdict(flt).items() if v is not None} if flt else None
    return await repo.open_run(session, {
        "trigger": trigger, "workflow_id": workflow_id, "initiator": initiator, "reason": reason, "first_day": first,
        "last_day": last, "filter": described, "chain_versions": {}, "state": "running"})


async def close_run(session: AsyncSession, run_id: int, *, state: str = "completed",
                    totals: BatchResult | None = None) -> None:
    await repo.close_run(session, run_id, state, totals.counts() if totals else None)


@dataclass(kw_only=True)
class QueueBatch:
    taken: int
    last: tuple[int, dt.date] | None  # the keyset cursor after this batch
    result: BatchResult


async def validate_queued(session: AsyncSession, run_id: int, after: tuple[int, dt.date] | None,
                          limit: int) -> QueueBatch:
    """Validate the next ``limit`` queued days after ``after`` and take them off the queue (those a
    delivery queued again meanwhile stay)."""
    rows = await queue.next_queued(session, after, limit)
    if not rows:
        return QueueBatch(taken=0, last=None, result=BatchResult())
    result = await validate(session, run_id, [(r.series_id, r.day) for r in rows])
    await queue.done(session, rows)
    return QueueBatch(taken=len(rows), last=(rows[-1].series_id, rows[-1].day), result=result)


def _covers(periods: list[tuple[dt.datetime, dt.datetime | None]], day: dt.date) -> bool:
    start, end = day_start(day), day_end(day)
    return any(a < end and (b is None or b > start) for a, b in periods)


async def expected_days(session: AsyncSession, series_ids: Sequence[int], first: dt.date, last: dt.date
                        ) -> list[tuple[int, dt.date]]:
    """The (series, day) of a range worth validating: every day that has a stored version, and every
    day the series' market partner had a TAF 7 order on its metering point (a day nobody delivered
    for becomes a gap to estimate)."""
    keys = await repo.stored_days(session, series_ids, first, last)
    orders = await repo.ordered_periods(session, series_ids, first, last)
    for s, periods in orders.items():
        keys |= {(s, d) for d in days_between(first, last) if _covers(periods, d)}
    return sorted(keys)


@dataclass(kw_only=True)
class RangePage:
    series: int  # series in this page
    last_series: int | None  # the keyset cursor after this page (None: no more series)
    result: BatchResult


async def validate_range_page(session: AsyncSession, run_id: int, flt: SeriesFilter, first: dt.date, last: dt.date,
                              after_series: int, max_days: int) -> RangePage:
    """The next page of series after ``after_series`` (as many as fit ``max_days`` days of the
    range), each validated over the range."""
    per_series = (last - first).days + 1
    series = await repo.profile_series_page(session, flt, after_series, max(1, max_days // per_series))
    if not series:
        return RangePage(series=0, last_series=None, result=BatchResult())
    keys = await expected_days(session, series, first, last)
    result = await validate(session, run_id, keys)
    return RangePage(series=len(series), last_series=series[-1], result=result)


async def count_series(session: AsyncSession, flt: SeriesFilter) -> int:
    return await repo.count_profile_series(session, flt)


# -- manual correction -----------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Corrected:
    series_id: int
    day: dt.date
    version: int
    slots: tuple[int, ...]


async def correct(session: AsyncSession, series_id: int, day: dt.date, changes: dict[int, int | None], *,
                  user: str, reason: str, note: str | None = None) -> Corrected:
    """A manual correction: a new edited version of the day, the current final one (or the raw one
    where none exists) with ``changes`` (slot -> value; None: no value). Each changed slot becomes a
    substitute (missing for None) noting the user, the correction reason (MSCONS STS Z34), the note,
    the value it replaced and the value delivered. Permission checks are the caller's."""
    if reason not in CORRECTION_REASONS:
        raise InvalidInput(f"unknown correction reason {reason!r}; one of {', '.join(CORRECTION_REASONS)}",
                           code="invalid_correction_reason")
    if not changes:
        raise InvalidInput("no values to correct", code="invalid_correction")
    n = slots_in(day)
    bad = sorted(s for s in changes if not 0 <= s < n)
    if bad:
        raise InvalidInput(f"slots {bad} are not in {day} ({n} quarter hours)", code="invalid_correction")
    info = (await repo.series_info(session, [series_id])).get(series_id)
    if info is None:
        raise ValueNotFound(f"no series {series_id}")
    negative = sorted(s for s, v in changes.items() if v is not None and v < 0)
    if negative and info.kind in PROFILE_KINDS:
        raise InvalidInput(f"negative values at slots {negative}", code="invalid_correction")
    key = (series_id, day)
    base = (await repo.latest_versions(session, [key], [VALIDATED, EDITED])).get(key)
    raw = (await repo.latest_versions(session, [key], [RAW])).get(key)
    source = base or raw
    values: list[int | None] = list(source.values) if source else [None] * n
    quality = bytearray(source.quality) if source else bytearray([Quality.MISSING] * n)
    notes: dict[str, Any] = dict(source.notes or {}) if source and source.layer != RAW else {}
    delivered = raw.values if raw else [None] * n
    for slot, value in sorted(changes.items()):
        notes[str(slot)] = {"rule": METHOD_MANUAL, "method": METHOD_MANUAL, "user": user, "reason": reason,
                            "reason_qualifier": STS_CORRECTION_REASON, "note": note, "was": values[slot],
                            "raw": delivered[slot] if slot < len(delivered) else None}
        values[slot] = value
        quality[slot] = Quality.SUBSTITUTE if value is not None else Quality.MISSING
    version = (await days_repo.last_versions(session, [key])).get(key, 0) + 1
    await partitions.ensure(session, "meter_days", day, day)
    await days_repo.add_days(session, [{
        "series_id": series_id, "day": day, "version": version, "layer": EDITED, "values": values,
        "quality": bytes(quality), "status_common": raw.status_common if raw else 0,
        "status_slots": raw.status_slots if raw else None, "status_words": raw.status_words if raw else None,
        "notes": dict(sorted(notes.items(), key=lambda x: int(x[0]))),
        "source": f"user:{user}"[:120], "reason": f"{reason}: {note}"[:300] if note else reason}])
    return Corrected(series_id=series_id, day=day, version=version, slots=tuple(sorted(changes)))


# -- explain this value ----------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SlotVersion:
    """One version's view of the slot."""

    version: int
    layer: str
    recorded_at: dt.datetime
    value: int | None
    quality: str  # Quality name
    mscons: str  # its QTY qualifier
    source: str
    note: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class Explanation:
    series_id: int
    day: dt.date
    slot: int
    starts_at: dt.datetime
    view: str  # raw | validated | final
    value: int | None
    quality: str
    mscons: str
    version: int | None  # the version holding the value (None: nothing stored)
    layer: str | None
    written_by: str | None  # "delivery <sha>", "rule <id> in run <n>", "user <name>"
    rule: str | None
    method: str | None
    reason: str | None
    user: str | None
    run: dict[str, Any] | None  # trigger, chain versions, started
    findings: list[dict[str, Any]]  # of that run on this slot (or on the whole day)
    delivered: int | None  # the newest raw value of the slot
    history: list[SlotVersion]


_LAYER_NAMES = {v: k for k, v in LAYERS.items()}
_VIEWS = {"raw": (RAW,), "validated": (VALIDATED,), "final": (VALIDATED, EDITED)}


async def explain(session: AsyncSession, series_id: int, day: dt.date, slot: int, *, view: str = "final",
                  as_of: dt.datetime | None = None) -> Explanation:
    """Where the value of one slot comes from: the version holding it in ``view`` (``validated``
    falls back to raw where nothing is validated yet, ``final`` too), its layer, the rule and run or
    the user that wrote it and why, with the slot's history over every version known at ``as_of``."""
    if view not in _VIEWS:
        raise InvalidInput(f"unknown view {view!r}; one of raw, validated, final", code="invalid_view")
    n = slots_in(day)
    if not 0 <= slot < n:
        raise InvalidInput(f"slot {slot} is not in {day} ({n} quarter hours)", code="invalid_slot")
    versions = await repo.versions_of(session, series_id, day, as_of)
    history = [_slot_version(v, slot) for v in versions]
    raws = [v for v in versions if v.layer == RAW]
    holding = next((v for v in reversed(versions) if v.layer in _VIEWS[view]), None)
    if holding is None and view != "raw":
        holding = raws[-1] if raws else None
    delivered = raws[-1].values[slot] if raws and slot < len(raws[-1].values) else None
    starts = day_start(day) + slot * SLOT
    if holding is None:
        return Explanation(series_id=series_id, day=day, slot=slot, starts_at=starts, view=view, value=None,
                           quality=Quality.MISSING.name.lower(), mscons=Quality.MISSING.mscons, version=None,
                           layer=None, written_by=None, rule=None, method=None, reason="nothing stored for this day",
                           user=None, run=None, findings=[], delivered=None, history=history)
    here = _slot_version(holding, slot)
    note = here.note or {}
    run_info, found, written_by = None, [], holding.source
    if holding.source.startswith("vee:"):
        run_id = int(holding.source.split(":", 1)[1])
        run = await repo.get_run(session, run_id)
        if run is not None:
            run_info = {"id": run.id, "trigger": run.trigger, "chain_versions": dict(run.chain_versions),
                        "started_at": run.started_at.isoformat(), "workflow_id": run.workflow_id}
        found = [{"rule": f.rule_id, "severity": f.severity, "detail": f.detail}
                 for f in await repo.findings(session, series_id, day, run_id)
                 if f.slots is None or slot in f.slots]
        written_by = f"rule {note['rule']} in run {run_id}" if note.get("rule") else f"run {run_id}"
        if note.get("user"):
            written_by = f"user {note['user']} (carried over by run {run_id})"
    elif holding.source.startswith("user:"):
        written_by = f"user {holding.source.split(':', 1)[1]}"
    elif holding.source.startswith("delivery:"):
        written_by = f"delivery {holding.source.split(':', 1)[1]}"
    reason = note.get("reason")
    if not note and here.quality == Quality.TRUE.name.lower():
        reason = "true value as delivered" + (" and validated" if holding.layer != RAW else "")
    return Explanation(series_id=series_id, day=day, slot=slot, starts_at=starts, view=view, value=here.value,
                       quality=here.quality, mscons=here.mscons, version=holding.version,
                       layer=_LAYER_NAMES[holding.layer], written_by=written_by, rule=note.get("rule"),
                       method=note.get("method"), reason=reason, user=note.get("user"), run=run_info,
                       findings=found, delivered=delivered, history=history)


def _slot_version(v: repo.Version, slot: int) -> SlotVersion:
    value = v.values[slot] if slot < len(v.values) else None
    q = Quality(v.quality[slot]) if slot < len(v.quality) else Quality.MISSING
    note = (v.notes or {}).get(str(slot)) if v.layer != RAW else None
    return SlotVersion(version=v.version, layer=_LAYER_NAMES[v.layer], recorded_at=v.recorded_at, value=value,
                       quality=q.name.lower(), mscons=q.mscons, source=v.source,
                       note=note if isinstance(note, dict) else None)
