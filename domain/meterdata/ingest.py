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
    return {"gateway_id": (delivery.gateway_id if delivery else None) or envelope.gateway_id,
            "recipient": envelope.recipient, "delivery_ref": envelope.delivery_ref, "sha256": envelope.sha256,
            "size": envelope.size, "taf": delivery.taf if delivery else None,
            "profile_id": delivery.profile_id if delivery else None, "reason": delivery.reason if delivery else None,
            "outcome": "refused", "refusal": reason, "detail": detail[:2000], "values_stored": 0,
            "first_at": period[0] if period else None, "last_at": period[1] if period else None}


async def log_refusal(session: AsyncSession, envelope: Envelope, reason: str, detail: str) -> Outcome:
    """Record a delivery the receiver refused before it could be parsed (not for this EMT, bad CMS,
    malformed XML, oversize)."""
    delivery_id = await repo.add_delivery(session, refused(envelope, reason, detail))
    return Outcome(outcome="refused", delivery_id=delivery_id, refusal=reason, detail=detail)


async def ingest(session: AsyncSession, batch: Sequence[tuple[Envelope, Delivery]],
                 now: dt.datetime | None = None) -> list[Outcome]:
    """Check and store a batch of parsed deliveries (one outcome each, in order). The caller
    commits; nothing is acknowledged to a gateway before that."""
    now = now or dt.datetime.now(dt.UTC)
    ctx = await _lookup(session, batch, now)
    outcomes = []
    for envelope, delivery in batch:
        if envelope.sha256 in ctx.stored:
            outcomes.append(await _log(session, envelope, delivery, "duplicate", 0, ()))
            continue
        try:
            await _check(session, ctx, envelope, delivery)
        except Refused as why:
            delivery_id = await repo.add_delivery(session, refused(envelope, why.reason, why.detail, delivery=delivery))
            outcomes.append(Outcome(outcome="refused", delivery_id=delivery_id, refusal=why.reason,
                                    detail=why.detail))
            continue
        ctx.stored.add(envelope.sha256)  # a second copy in the same batch is a redelivery
        outcomes.append(await _store(session, ctx, envelope, delivery))
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


async def _check(session: AsyncSession, ctx: _Context, envelope: Envelope, delivery: Delivery) -> None:
    if envelope.gateway_id and envelope.gateway_id != delivery.gateway_id:
        raise Refused("signer_mismatch", f"the payload names gateway {delivery.gateway_id}, the connection is "
                                         f"{envelope.gateway_id}")
    if delivery.recipient != envelope.recipient:
        raise Refused("not_for_this_emt", f"the payload is for {delivery.recipient}, not {envelope.recipient}")
    gw = ctx.gateways.get(delivery.gateway_id)
    if gw is None:
        raise Refused("unknown_gateway", f"gateway {delivery.gateway_id} is not in the master data")
    allowed = ("in_operation",) if delivery.reason != "first_readout" else ("in_operation", "installed")
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


async def _store(session: AsyncSession, ctx: _Context, envelope: Envelope, delivery: Delivery) -> Outcome:
    gw = ctx.gateways[delivery.gateway_id]
    specs: dict[SeriesKey, SeriesSpec] = {}
    days: dict[tuple[SeriesKey, dt.date], _DayWork] = {}
    readings: list[tuple[SeriesKey, dt.datetime, int | None, int, str]] = []
    grid: list[tuple[SeriesKey, dt.datetime, int | None, int, bool]] = []

    def series(mp: MeteringPointOfMeter, obis: str, kind: str, unit: int, scaler: int, period_s: int) -> SeriesKey:
        key = SeriesKey(metering_point_id=mp.metering_point_id, obis=obis, market_partner=delivery.recipient)
        specs.setdefault(key, SeriesSpec(key=key, kind=kind, unit=unit, scaler=scaler, period_s=period_s))
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
                    grid += [(key, e.end, e.values[col], e.status, profile.threshold) for e in profile.entries]
                    continue
                if profile.obis != LOAD_PROFILE:
                    continue
                on_grid, shifted = aligned(profile)
                register = series(mp, obis, "register", unit, scaler, profile.period_s)
                _register_slots(days, register, on_grid, col)
                _note_shifts(days, register, shifted)
                if obis in INTERVAL_OF_REGISTER:
                    interval = series(mp, INTERVAL_OF_REGISTER[obis], "interval", unit, scaler, profile.period_s)
                    _interval_slots(days, interval, on_grid, col)
                    _note_shifts(days, interval, shifted)
        for reg in meter.registers:
            mp = _metering_point_for(routes, reg.obis)
            if mp is not None:
                key = series(mp, reg.obis, "register", reg.unit, reg.scaler, 0)
                readings.append((key, reg.captured_at, reg.value, reg.status, delivery.reason))

    ids = await repo.series_ids(session, list(specs.values()))
    stored, conflicts, touched = await _add_day_versions(session, envelope, ids, days)
    stored += await _add_readings(session, envelope, delivery, ids, readings, conflicts)
    if grid:
        times = [at for _, at, *_ in grid]
        await partitions.ensure(session, "grid_measurements", min(times).date(), max(times).date())
        stored += await repo.add_grid(session, [{"series_id": ids[k], "at": at, "value": v, "status": st,
                                                 "threshold": th, "segment": gw.network_segment}
                                                for k, at, v, st, th in grid])
    outcome = "conflict" if conflicts else "stored" if stored else "duplicate"
    return await _log(session, envelope, delivery, outcome, stored, touched, conflicts)


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


async def _add_day_versions(session: AsyncSession, envelope: Envelope, ids: dict[SeriesKey, int],
                            days: dict[tuple[SeriesKey, dt.date], _DayWork]
                            ) -> tuple[int, list[dict[str, Any]], tuple[tuple[int, dt.date], ...]]:
    keys = [(ids[k], day) for k, day in days]
    if not keys:
        return 0, [], ()
    await partitions.ensure(session, "meter_days", min(d for _, d in keys), max(d for _, d in keys))
    current = await repo.latest_days(session, keys, layers=[RAW])
    versions = await repo.last_versions(session, keys)
    rows, conflicts, touched, stored = [], [], [], 0
    for (key, day), work in days.items():
        sid = ids[key]
        n = slots_in(day)
        old = current.get((sid, day))
        values: list[int | None] = list(old.values) if old else [None] * n
        status = dict(zip(old.status_slots or [], old.status_words or [], strict=True)) if old else {}
        changed = 0
        for slot, value in work.values.items():
            if value is None or slot >= n:
                continue
            if values[slot] is None:
                values[slot] = value
                changed += 1
                if slot in work.status:
                    status[slot] = work.status[slot]
            elif values[slot] != value:
                conflicts.append({"series": sid, "day": day.isoformat(), "slot": slot, "stored": values[slot],
                                  "delivered": value})
        for slot, word in work.status.items():  # a status on a slot without value (NoValue) is kept too
            if work.values.get(slot) is None and slot < n and values[slot] is None and status.get(slot) != word:
                status[slot] = word
                changed += 1
        notes = dict(old.notes or {}) if old else {}
        if work.shifted:
            notes["clock_shift"] = [*notes.get("clock_shift", []), *work.shifted]
            changed += 1
        if not changed:
            continue
        stored += changed
        slots = sorted(status)
        rows.append({"series_id": sid, "day": day, "version": versions.get((sid, day), 0) + 1, "layer": RAW,
                     "values": values,
                     "quality": bytes(Quality.TRUE if v is not None else Quality.MISSING for v in values),
                     "status_slots": slots or None, "status_words": [status[s] for s in slots] or None,
                     "notes": notes or None, "source": f"delivery:{envelope.sha256[:16]}", "reason": None})
        touched.append((sid, day))
    await repo.add_days(session, rows)
    return stored, conflicts, tuple(touched)


async def _add_readings(session: AsyncSession, envelope: Envelope, delivery: Delivery, ids: dict[SeriesKey, int],
                        readings: list[tuple[SeriesKey, dt.datetime, int | None, int, str]],
                        conflicts: list[dict[str, Any]]) -> int:
    if not readings:
        return 0
    known = await repo.latest_readings(session, [(ids[k], at) for k, at, *_ in readings])
    rows = []
    for key, at, value, status, reason in readings:
        sid = ids[key]
        version, raw = known.get((sid, at), (0, None))
        if version and raw is not None:
            if value is not None and raw != value:
                conflicts.append({"series": sid, "at": at.isoformat(), "stored": raw, "delivered": value})
            continue
        if value is None and version:
            continue
        rows.append({"series_id": sid, "at": at, "version": version + 1, "layer": RAW, "value": value,
                     "status": status, "quality": int(Quality.TRUE if value is not None else Quality.MISSING),
                     "reason": reason, "meter_id": _meter_of(delivery, at), "source":
                     f"delivery:{envelope.sha256[:16]}", "notes": None})
    await repo.add_readings(session, rows)
    return len(rows)


def _meter_of(delivery: Delivery, at: dt.datetime) -> str | None:
    return next((m.meter_id for m in delivery.meters if any(r.captured_at == at for r in m.registers)), None)


async def _log(session: AsyncSession, envelope: Envelope, delivery: Delivery, outcome: str, stored: int,
               touched: tuple[tuple[int, dt.date], ...], conflicts: list[dict[str, Any]] | None = None) -> Outcome:
    period = delivery.period()
    delivery_id = await repo.add_delivery(session, {
        "gateway_id": delivery.gateway_id, "recipient": envelope.recipient, "delivery_ref": envelope.delivery_ref,
        "sha256": envelope.sha256, "size": envelope.size, "taf": delivery.taf, "profile_id": delivery.profile_id,
        "reason": delivery.reason, "outcome": outcome, "values_stored": stored,
        "first_at": period[0] if period else None, "last_at": period[1] if period else None,
        "conflicts": conflicts or None})
    return Outcome(outcome=outcome, delivery_id=delivery_id, values_stored=stored, touched=touched)
