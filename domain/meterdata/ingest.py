"""Storing what gateways deliver (docs/mdm.md, "Receiving"): every check that can refuse a delivery,
then the raw versions it adds, in one transaction for a batch of deliveries.

A refused delivery stores nothing but its log entry. An accepted one adds a raw version to each
(series, day) it brings new values for; a value that differs from one stored before is a conflict:
the stored one stays, the delivered one is kept in the log entry, and the day is flagged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.meterdata import partitions
from domain.meterdata import repository as repo
from domain.meterdata.days import SLOT, local_day, slot_of, slots_in
from domain.meterdata.delivery import GRID_PROFILE, INTERVAL_OF_REGISTER, LOAD_PROFILE, Delivery, Envelope, Profile
from domain.meterdata.models import LAYERS
from domain.meterdata.quality import Quality
from domain.meterdata.repository import MeteringPointOfMeter, SeriesKey, SeriesSpec
from domain.meterdata.vee.queue import enqueue_validation

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
# A registration period may deviate by at most 1 % (DS; 9 s of 15 minutes): a capture time that close
# to a quarter-hour boundary is that boundary. One further off is a clock shift: not stored as a
# value, noted on the day (docs/mdm.md, VEE "clock shifts").
CAPTURE_TOLERANCE_S = 9
RAW = LAYERS["raw"]
WH = 30  # DLMS unit code of Wh

# Refusal reason codes (docs/mdm.md) -> HTTP status the receiver answers with.
REFUSALS = {
    "malformed": 400, "not_for_this_emt": 400, "bad_signature": 403, "signer_mismatch": 403,
    "unknown_gateway": 403, "gateway_not_in_operation": 403, "oversize": 413,
    "meter_not_assigned": 422, "taf_not_ordered": 422, "future_period": 422,
}


@dataclass(frozen=True, kw_only=True)
class Outcome:
    outcome: str  # stored | duplicate | conflict | refused
    delivery_id: int | None = None
    refusal: str | None = None
    detail: str | None = None
    values_stored: int = 0
    touched: tuple[tuple[int, dt.date], ...] = ()  # (series, day) given a new raw version

    @property
    def http_status(self) -> int:
        if self.outcome == "refused":
            return REFUSALS.get(self.refusal or "", 422)
        return 200 if self.outcome == "duplicate" else 201


class Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class _Context:
    """What one batch looked up, shared by its deliveries."""

    now: dt.datetime
    stored: set[str]
    gateways: dict[str, repo.GatewayRow]
    assignments: dict[tuple[str, int], list[repo.Period]]
    metering_points: dict[str, list[MeteringPointOfMeter]]
    orders: dict[str, dict[tuple[int, int], list[repo.Period]]] = field(default_factory=dict)  # by recipient


def refused(envelope: Envelope, reason: str, detail: str, *, delivery: Delivery | None = None) -> dict[str, Any]:
    """The log entry of a delivery refused before or after parsing."""
    period = delivery.period() if delivery else None
    return {"gateway_id": envelope.gateway_id or (delivery.gateway_id if delivery else None),
            "recipient": envelope.recipient, "delivery_ref": envelope.delivery_ref, "sha256": envelope.sha256,
            "size": envelope.size, "taf": delivery.taf if delivery else None,
            "profile_id": delivery.profile_id if delivery else None, "reason": delivery.reason if delivery else None,
            "outcome": "refused", "refusal": reason, "detail": detail[:2000], "values_stored": 0,
            "first_at": period[0] if period else None, "last_at": period[1] if period else None,
            "conflicts": None}


async def log_refusal(session: AsyncSession, envelope: Envelope, reason: str, detail: str) -> Outcome:
    """Record a delivery the receiver refused before it could be parsed (not for this EMT, bad CMS,
    malformed XML, oversize)."""
    (delivery_id,) = await repo.add_deliveries(session, [refused(envelope, reason, detail)])
    return Outcome(outcome="refused", delivery_id=delivery_id, refusal=reason, detail=detail)


async def ingest(session: AsyncSession, batch: Sequence[tuple[Envelope, Delivery]],
                 now: dt.datetime | None = None) -> list[Outcome]:
    """Check and store a batch of parsed deliveries (one outcome each, in order). The caller
    commits; nothing is acknowledged to a gateway before that. The batch costs a fixed number of
    statements, whatever its size: lookups, series, current versions, then one insert per table."""
    now = now or dt.datetime.now(dt.UTC)
    ctx = await _lookup(session, batch, now)
    log_rows: list[dict[str, Any]] = []
    results: list[tuple[str, str | None, str | None]] = []  # (outcome, refusal, detail) per delivery
    plans: list[_Plan | None] = []
    for envelope, delivery in batch:
        if envelope.sha256 in ctx.stored:
            plans.append(None)
            results.append(("duplicate", None, None))
            continue
        try:
            _check(ctx, envelope, delivery)
        except Refused as why:
            plans.append(None)
            results.append(("refused", why.reason, why.detail))
            continue
        ctx.stored.add(envelope.sha256)  # a second copy in the same batch is a redelivery
        plans.append(_plan(ctx, envelope, delivery))
        results.append(("stored", None, None))
    stored = await _store(session, [p for p in plans if p is not None])
    for (envelope, delivery), plan, (outcome, refusal, detail) in zip(batch, plans, results, strict=True):
        if outcome == "refused":
            log_rows.append(refused(envelope, refusal or "", detail or "", delivery=delivery))
            continue
        done = stored.get(id(plan)) if plan is not None else None
        if done is not None:
            outcome = "conflict" if done.conflicts else "stored" if done.values else "duplicate"
        log_rows.append(_log_row(envelope, delivery, outcome, done))
    ids = await repo.add_deliveries(session, log_rows)
    outcomes = []
    for delivery_id, plan, row in zip(ids, plans, log_rows, strict=True):
        done = stored.get(id(plan)) if plan is not None else None
        outcomes.append(Outcome(outcome=row["outcome"], delivery_id=delivery_id, refusal=row.get("refusal"),
                                detail=row.get("detail"), values_stored=done.values if done else 0,
                                touched=tuple(done.touched) if done else ()))
    await enqueue_validation(session, outcomes)  # the days it touched, validated by the VEE workflow
    return outcomes


async def _lookup(session: AsyncSession, batch: Sequence[tuple[Envelope, Delivery]], now: dt.datetime) -> _Context:
    gateways = await repo.gateways(session, {d.gateway_id for _, d in batch})
    pairs = {(m.meter_id, gateways[d.gateway_id].pk) for _, d in batch if d.gateway_id in gateways for m in d.meters}
    meters = {m.meter_id for _, d in batch for m in d.meters}
    ctx = _Context(now=now, stored=await repo.stored_hashes(session, [e.sha256 for e, _ in batch]),
                   gateways=gateways, assignments=await repo.meter_gateway_periods(session, pairs),
                   metering_points=await repo.metering_points_of_meters(session, meters))
    for recipient in {d.recipient for _, d in batch}:
        keys = {(mp.metering_point_id, d.taf) for _, d in batch if d.recipient == recipient
                for m in d.meters for mp in ctx.metering_points.get(m.meter_id, [])}
        ctx.orders[recipient] = await repo.order_periods(session, recipient, keys)
    return ctx


def _span(times: list[dt.datetime], profiles: Sequence[Profile]) -> tuple[dt.datetime, dt.datetime]:
    """From the start of the first period to the last capture time."""
    period = max((p.period_s for p in profiles), default=0)
    return min(times) - dt.timedelta(seconds=period), max(times)


def _check(ctx: _Context, envelope: Envelope, delivery: Delivery) -> None:
    if envelope.gateway_id and envelope.gateway_id != delivery.gateway_id:
        raise Refused("signer_mismatch", f"the payload names gateway {delivery.gateway_id}, the connection is "
                                         f"{envelope.gateway_id}")
    if delivery.recipient != envelope.recipient:
        raise Refused("not_for_this_emt", f"the payload is for {delivery.recipient}, not {envelope.recipient}")
    gw = ctx.gateways.get(delivery.gateway_id)
    if gw is None:
        raise Refused("unknown_gateway", f"gateway {delivery.gateway_id} is not in the master data")
    # A deinstalled gateway may still deliver what it measured before (it redelivers for days): the
    # meter assignments, which end at the deinstallation, decide which of its data is accepted.
    allowed = ("in_operation", "deinstalled", *(("installed",) if delivery.reason == "first_readout" else ()))
    if gw.state not in allowed:
        raise Refused("gateway_not_in_operation", f"gateway {delivery.gateway_id} is {gw.state}")
    period = delivery.period()
    if period is None or not delivery.meters:
        raise Refused("malformed", "the delivery carries no values")
    if period[1] > ctx.now + FUTURE_TOLERANCE:
        raise Refused("future_period", f"values for {period[1].isoformat()}, which is in the future")
    for meter in delivery.meters:
        first, last = _span(meter.times(), meter.profiles)
        periods = ctx.assignments.get((meter.meter_id, gw.pk), [])
        if not any(p.covers(first, last) for p in periods):
            raise Refused("meter_not_assigned", f"meter {meter.meter_id} was not assigned to gateway "
                          f"{delivery.gateway_id} from {first.isoformat()} to {last.isoformat()}")
        if not _routes(ctx, delivery, meter.meter_id, first, last):
            raise Refused("taf_not_ordered", f"{delivery.recipient} has no TAF {delivery.taf} order on a metering "
                          f"point of meter {meter.meter_id} from {first.isoformat()} to {last.isoformat()}")


def _routes(ctx: _Context, delivery: Delivery, meter_id: str, first: dt.datetime, last: dt.datetime
            ) -> list[MeteringPointOfMeter]:
    """The meter's metering points over the data's time that ``delivery.recipient`` has an order of
    ``delivery.taf`` on: where its values go."""
    orders = ctx.orders.get(delivery.recipient, {})
    return [mp for mp in ctx.metering_points.get(meter_id, []) if mp.period.covers(first, last)
            and any(o.covers(first, last) for o in orders.get((mp.metering_point_id, delivery.taf), []))]


def _metering_point_for(routes: list[MeteringPointOfMeter], obis: str) -> MeteringPointOfMeter | None:
    """A meter measuring two metering points (consumption and generation) sends import (C = 1) to
    the one and export (C = 2) to the other; with one metering point, everything goes there."""
    if len(routes) == 1:
        return routes[0]
    wanted = "feed_in" if obis.split(":")[1].startswith("2.") else "consumption"
    return next((r for r in routes if r.direction == wanted), None)


@dataclass
class _DayWork:
    """New values for one (series, day), slot by slot, and capture times off by a clock shift."""

    values: dict[int, int | None] = field(default_factory=dict)
    status: dict[int, int] = field(default_factory=dict)
    shifted: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Plan:
    """What one accepted delivery brings, in series keys (ids come from the batch)."""

    envelope: Envelope
    delivery: Delivery
    segment: str | None
    specs: dict[SeriesKey, SeriesSpec] = field(default_factory=dict)
    days: dict[tuple[SeriesKey, dt.date], _DayWork] = field(default_factory=dict)
    readings: list[tuple[SeriesKey, dt.datetime, int | None, int, str, str]] = field(default_factory=list)
    grid: list[tuple[SeriesKey, dt.datetime, int | None, int, bool]] = field(default_factory=list)


@dataclass
class _Stored:
    """What storing a plan did."""

    values: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    touched: list[tuple[int, dt.date]] = field(default_factory=list)


def _plan(ctx: _Context, envelope: Envelope, delivery: Delivery) -> _Plan:
    """Which series and days an accepted delivery adds values to (no database access)."""
    plan = _Plan(envelope=envelope, delivery=delivery, segment=ctx.gateways[delivery.gateway_id].network_segment)

    def series(mp: MeteringPointOfMeter, obis: str, kind: str, unit: int, scaler: int, period_s: int) -> SeriesKey:
        key = SeriesKey(metering_point_id=mp.metering_point_id, obis=obis, market_partner=delivery.recipient)
        plan.specs.setdefault(key, SeriesSpec(key=key, kind=kind, unit=unit, scaler=scaler, period_s=period_s))
        return key

    for meter in delivery.meters:
        first, last = _span(meter.times(), meter.profiles)
        routes = _routes(ctx, delivery, meter.meter_id, first, last)
        for profile in meter.profiles:
            for col, obis in enumerate(profile.columns):
                mp = _metering_point_for(routes, obis)
                if mp is None:
                    continue
                scaler, unit = meter.scaler_units.get(obis, (0, WH))
                if profile.obis == GRID_PROFILE:
                    key = series(mp, obis, "grid", unit, scaler, profile.period_s)
                    plan.grid += [(key, e.end, e.values[col], e.status, profile.threshold) for e in profile.entries]
                    continue
                if profile.obis != LOAD_PROFILE:
                    continue
                on_grid, shifted = aligned(profile)
                register = series(mp, obis, "register", unit, scaler, profile.period_s)
                _register_slots(plan.days, register, on_grid, col)
                _note_shifts(plan.days, register, shifted)
                if obis in INTERVAL_OF_REGISTER:
                    interval = series(mp, INTERVAL_OF_REGISTER[obis], "interval", unit, scaler, profile.period_s)
                    _interval_slots(plan.days, interval, on_grid, col)
                    _note_shifts(plan.days, interval, shifted)
        for reg in meter.registers:
            mp = _metering_point_for(routes, reg.obis)
            if mp is not None:
                key = series(mp, reg.obis, "register", reg.unit, reg.scaler, 0)
                plan.readings.append((key, reg.captured_at, reg.value, reg.status, delivery.reason, meter.meter_id))
    return plan


async def _store(session: AsyncSession, plans: list[_Plan]) -> dict[int, _Stored]:
    """Store the plans of a batch: one new raw version per (series, day) the batch adds values to
    (deliveries merged in their order), readings and grid values. Keyed by ``id(plan)``."""
    done = {id(p): _Stored() for p in plans}
    if not plans:
        return done
    specs = {k: s for p in plans for k, s in p.specs.items()}
    ids = await repo.series_ids(session, list(specs.values()))
    await repo.lock_series(session, sorted(set(ids.values())))  # one writer per series at a time (ingest, VEE)
    await _store_days(session, plans, ids, done)
    await _store_readings(session, plans, ids, done)
    grid = [(p, row) for p in plans for row in p.grid]
    if grid:
        times = [at for _, (_, at, *_) in grid]
        await partitions.ensure(session, "grid_measurements", min(times).date(), max(times).date())
        await repo.add_grid(session, [{"series_id": ids[k], "at": at, "value": v, "status": st, "threshold": th,
                                       "segment": p.segment} for p, (k, at, v, st, th) in grid])
        for p in plans:
            done[id(p)].values += len(p.grid)
    return done


@dataclass
class _Day:
    """A (series, day) being merged in memory: every slot's value and status word."""

    values: list[int | None]
    status: list[int]
    notes: dict[str, Any]
    version: int
    changed: bool = False
    source: str = ""


async def _store_days(session: AsyncSession, plans: list[_Plan], ids: dict[SeriesKey, int],
                      done: dict[int, _Stored]) -> None:
    keys = sorted({(ids[k], day) for p in plans for k, day in p.days})
    if not keys:
        return
    await partitions.ensure(session, "meter_days", min(d for _, d in keys), max(d for _, d in keys))
    current = await repo.latest_days(session, keys, layers=[RAW])
    versions = await repo.last_versions(session, keys)
    days: dict[tuple[int, dt.date], _Day] = {}
    for sid, day in keys:
        old = current.get((sid, day))
        n = slots_in(day)
        days[(sid, day)] = _Day(
            values=list(old.values) if old else [None] * n, status=old.statuses() if old else [0] * n,
            notes=dict(old.notes or {}) if old else {}, version=versions.get((sid, day), 0))
    for plan in plans:
        stored = done[id(plan)]
        for (key, day), work in plan.days.items():
            sid = ids[key]
            d = days[(sid, day)]
            changed = _merge(d, work, sid, day, stored.conflicts)
            if changed:
                stored.values += changed
                stored.touched.append((sid, day))
                d.changed = True
                d.source = d.source or f"delivery:{plan.envelope.sha256[:16]}"
    rows = []
    for (sid, day), d in days.items():
        if not d.changed:
            continue
        common, slots, words = repo.sparse_status(d.status)
        rows.append({"series_id": sid, "day": day, "version": d.version + 1, "layer": RAW, "values": d.values,
                     "quality": bytes(Quality.TRUE if v is not None else Quality.MISSING for v in d.values),
                     "status_common": common, "status_slots": slots, "status_words": words,
                     "notes": d.notes or None, "source": d.source, "reason": None})
    await repo.add_days(session, rows)


def _merge(d: _Day, work: _DayWork, sid: int, day: dt.date, conflicts: list[dict[str, Any]]) -> int:
    """Put a delivery's slots into the day: a missing value is filled (with its status word), an
    equal one changes nothing, a different one is a conflict and the stored one stays. A status
    word for a slot still without value (NoValue) replaces the one before. Returns what changed."""
    n = len(d.values)
    changed = 0
    for slot, value in work.values.items():
        if slot >= n:
            continue
        word = work.status.get(slot)
        if value is None:
            if d.values[slot] is None and word is not None and d.status[slot] != word:
                d.status[slot] = word
                changed += 1
            continue
        if d.values[slot] is None:
            d.values[slot] = value
            if word is not None:
                d.status[slot] = word
            changed += 1
        elif d.values[slot] != value:
            conflicts.append({"series": sid, "day": day.isoformat(), "slot": slot, "stored": d.values[slot],
                              "delivered": value})
    if work.shifted:
        d.notes["clock_shift"] = [*d.notes.get("clock_shift", []), *work.shifted]
        changed += 1
    return changed


async def _store_readings(session: AsyncSession, plans: list[_Plan], ids: dict[SeriesKey, int],
                          done: dict[int, _Stored]) -> None:
    keys = [(ids[k], at) for p in plans for k, at, *_ in p.readings]
    if not keys:
        return
    known = await repo.latest_readings(session, keys)
    rows = []
    for plan in plans:
        stored = done[id(plan)]
        for key, at, value, status, reason, meter in plan.readings:
            sid = ids[key]
            version, raw = known.get((sid, at), (0, None))
            if version and raw is not None:
                if value is not None and raw != value:
                    stored.conflicts.append({"series": sid, "at": at.isoformat(), "stored": raw, "delivered": value})
                continue
            if value is None and version:
                continue
            known[(sid, at)] = (version + 1, value)
            rows.append({"series_id": sid, "at": at, "version": version + 1, "layer": RAW, "value": value,
                         "status": status, "quality": int(Quality.TRUE if value is not None else Quality.MISSING),
                         "reason": reason, "meter_id": meter, "source": f"delivery:{plan.envelope.sha256[:16]}",
                         "notes": None})
            stored.values += 1
    await repo.add_readings(session, rows)


def aligned(profile: Profile) -> tuple[Profile, list[tuple[dt.datetime, int]]]:
    """The profile with capture times on quarter-hour boundaries (within CAPTURE_TOLERANCE_S), and
    the entries left out because their clock was further off: (capture time, offset in seconds)."""
    kept, shifted = [], []
    for e in profile.entries:
        seconds = e.end.timestamp()
        boundary = round(seconds / SLOT.total_seconds()) * SLOT.total_seconds()
        offset = round(seconds - boundary)
        if abs(offset) > CAPTURE_TOLERANCE_S:
            shifted.append((e.end, offset))
        else:
            kept.append(dataclasses.replace(e, end=dt.datetime.fromtimestamp(boundary, dt.UTC)))
    return dataclasses.replace(profile, entries=tuple(kept)), shifted


def _register_slots(days: dict[tuple[SeriesKey, dt.date], _DayWork], key: SeriesKey, profile: Profile,
                    col: int) -> None:
    """A register value captured at the end of a quarter hour belongs to that quarter hour."""
    for e in profile.entries:
        day, slot = slot_of(e.end - SLOT)
        work = days.setdefault((key, day), _DayWork())
        work.values[slot] = e.values[col]
        if e.status:
            work.status[slot] = e.status


def _note_shifts(days: dict[tuple[SeriesKey, dt.date], _DayWork], key: SeriesKey,
                 shifted: list[tuple[dt.datetime, int]]) -> None:
    for end, offset in shifted:
        work = days.setdefault((key, local_day(end - SLOT)), _DayWork())
        work.shifted.append({"captured": end.isoformat(), "offset_s": offset})


def _interval_slots(days: dict[tuple[SeriesKey, dt.date], _DayWork], key: SeriesKey, profile: Profile,
                    col: int) -> None:
    """Energy of a quarter hour: the register at its end minus the register at its start (the entry
    before). A missing reading on either side leaves the quarter hour without a value."""
    by_end = {e.end: e for e in profile.entries}
    for e in profile.entries:
        before = by_end.get(e.end - SLOT)
        if before is None:
            continue  # the first entry opens the period: it has no quarter hour of its own here
        day, slot = slot_of(e.end - SLOT)
        work = days.setdefault((key, day), _DayWork())
        end, start = e.values[col], before.values[col]
        work.values[slot] = end - start if end is not None and start is not None else None
        status = e.status | before.status if start is None else e.status
        if status:
            work.status[slot] = status


def _log_row(envelope: Envelope, delivery: Delivery, outcome: str, done: _Stored | None) -> dict[str, Any]:
    period = delivery.period()
    return {"gateway_id": delivery.gateway_id, "recipient": envelope.recipient,
            "delivery_ref": envelope.delivery_ref, "sha256": envelope.sha256, "size": envelope.size,
            "taf": delivery.taf, "profile_id": delivery.profile_id, "reason": delivery.reason, "outcome": outcome,
            "refusal": None, "detail": None, "values_stored": done.values if done else 0,
            "first_at": period[0] if period else None, "last_at": period[1] if period else None,
            "conflicts": (done.conflicts or None) if done else None}
