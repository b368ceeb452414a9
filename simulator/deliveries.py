"""Meter data deliveries: each gateway delivers the data of its active evaluation profiles to the
EMT each names (docs/protocol.md 14; docs/simulator.md "Deliveries").

* Scheduled, per delivery period: TAF 7 (register profile, a local day by default), TAF 10 (grid
  state per interval), TAF 2 (tariff registers at the end of each local day), TAF 1 (registers at
  the end of each billing period of ``interval`` whole days, counted from ``validFrom``).
* On request: :meth:`Deliveries.deliver_now` (TAF 6 ``on_demand``, TAF 9 ``feed_in``, or any other
  profile: its registers now, or its current period so far).
* Threshold: a TAF 10 profile whose phase voltage leaves 230 V +- 10 % delivers at once
  (``threshold``, SMGW status bit 16).

Each profile has a cursor in the gateway's state (``deliveries``): the start of the next period
to deliver. A period is built when the simulated clock (:class:`simulator.periods.Pace`: starts
``backfill_days`` back, runs ``time_scale`` times as fast until it meets the real clock) has passed
its end plus the gateway's jitter; never before the real clock has. Building a period, moving the
cursor and queueing the delivery are one SQLite transaction; :mod:`simulator.emtoutbox` sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import heapq
import itertools
import time
import uuid
from typing import Any

import structlog

from simulator import xmlcodec as X
from simulator.config import SimulatorSettings
from simulator.datafaults import normalise
from simulator.emtoutbox import EmtOutbox
from simulator.fleetfaults import FleetFaults
from simulator.meters import MeterModel, unit
from simulator.periods import DAY, ORIGIN, QUARTER, Pace, ceil_quarter, floor_quarter, local_date, period_bounds
from simulator.readings import Recorder
from simulator.runtime import GatewayRuntime
from simulator.state import LEVEL_INFO, OUTCOME_SUCCESS, GatewayState
from simulator.store import DeliveryRow, Store
from simulator.tafdata import Builder, Built

log = structlog.get_logger("simulator.deliveries")

SCHEDULED_TAFS = (1, 2, 7, 10)
REASONS = ("scheduled", "on_demand", "feed_in", "threshold", "final", "meter_exchange_closing",
           "meter_exchange_opening", "first_readout")
KEEP_CURSOR_S = 7 * DAY  # a restarted simulator delivers what it missed, at most this far back (or the backfill)
VOLTAGE_BAND = (207.0, 253.0)  # 230 V +- 10 %
GRID_INTERVALS = (60, 180, 300, 900)


class DeliveryError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _time(text: object) -> float | None:
    if not text:
        return None
    try:
        return X.parse_time(str(text))
    except X.Malformed:
        return None


def schedule_of(ep: dict[str, Any]) -> tuple[int, dt.date]:
    """(delivery period in seconds, origin of whole-day periods) of an evaluation profile."""
    taf, interval, period = int(ep["taf"]), int(ep.get("interval") or 0), int(ep.get("deliveryPeriod") or 0)
    if taf == 1:  # the billing period: whole days, counted from the profile's validFrom
        vf = _time(ep.get("validFrom"))
        days = interval if interval >= DAY and interval % DAY == 0 else 30 * DAY
        return days, local_date(vf) if vf is not None else ORIGIN
    if taf == 2:
        return (period if period >= DAY and period % DAY == 0 else DAY), ORIGIN
    if taf == 10:
        iv = grid_interval(ep)
        return (period if iv <= period <= DAY and period % iv == 0 else iv), ORIGIN
    ok = period >= QUARTER and period % QUARTER == 0 and (period <= DAY or period % DAY == 0)
    return (period if ok else DAY), ORIGIN


def grid_interval(ep: dict[str, Any]) -> int:
    iv = int(ep.get("interval") or QUARTER)
    return iv if iv in GRID_INTERVALS else QUARTER


class Deliveries:
    def __init__(self, settings: SimulatorSettings, store: Store, gateways: dict[str, GatewayRuntime],
                 faults: FleetFaults, outbox: EmtOutbox) -> None:
        self.settings = settings
        self.store = store
        self.gateways = gateways
        self.faults = faults
        self.outbox = outbox
        self.pace = Pace(time.time(), settings.backfill_days * DAY, settings.time_scale)
        # (due on the simulated clock, tie breaker, gateway, profile, generation)
        self._heap: list[tuple[float, int, str, str, int]] = []
        self._gen: dict[tuple[str, str], int] = {}
        self._n = itertools.count()
        self._grid: set[tuple[str, str]] = set()  # TAF 10 profiles watched for the voltage band
        self._watch_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self.built = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if not self.settings.deliveries:
            return
        now = time.time()
        self.pace = Pace(now, self.settings.backfill_days * DAY, self.settings.time_scale)
        self.outbox.restore()
        for rt in self.gateways.values():
            self._clamp_cursors(rt.state, now)
            self.refresh(rt.state)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self.outbox.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # a bug in one gateway's data must not stop every delivery
                log.exception("simulator.delivery_tick_failed")
            await asyncio.sleep(self.settings.delivery_tick_s)

    def tick(self, real: float | None = None) -> None:
        """Build what is due, watch the TAF 10 voltage bands, start sending what waits."""
        real = time.time() if real is None else real
        v = self.pace.now(real)
        budget = self.settings.delivery_build_budget
        while self._heap and self._heap[0][0] <= v and budget > 0:
            _due, _n, gid, pid, gen = heapq.heappop(self._heap)
            if self._gen.get((gid, pid)) != gen:
                continue  # replaced by a later refresh
            budget -= self._work(gid, pid, v, real, budget)
        if real >= self._watch_at:
            self._watch_at = real + 1.0
            self._watch(real)
        self.outbox.pump(real)

    # ------------------------------------------------------------------ schedule
    def refresh(self, gw: GatewayState) -> None:
        """(Re)plan a gateway's deliveries after its profiles or faults changed: new cursors for
        new profiles, none for deleted or inactive ones, held periods released."""
        gid = gw.gateway_id
        if gid not in self.gateways or not self.settings.deliveries:
            return
        evals = gw.profiles.get("evaluation", {})
        for pid in list(gw.deliveries):
            ep = evals.get(pid)
            if ep is None or not ep.get("active") or int(ep.get("taf", 0)) not in SCHEDULED_TAFS:
                del gw.deliveries[pid]
                self._gen[(gid, pid)] = self._gen.get((gid, pid), 0) + 1
                self._grid.discard((gid, pid))
        for pid, ep in evals.items():
            if not ep.get("active") or int(ep.get("taf", 0)) not in SCHEDULED_TAFS:
                continue
            cursor = gw.deliveries.get(pid)
            if cursor is None:
                cursor = gw.deliveries[pid] = self._new_cursor(gw, ep, time.time())
            if int(ep["taf"]) == 10:
                self._grid.add((gid, pid))
            self._plan(gw, pid, ep, cursor, now=bool(cursor.get("held")))
        self._watch_at = 0.0  # a voltage fault may have changed: look at once

    def _new_cursor(self, gw: GatewayState, ep: dict[str, Any], now: float) -> dict[str, Any]:
        """Where a profile's deliveries begin: the period that contains ``now - backfill``, not
        before ``validFrom`` (TAF 2: not before its tariff registers started counting)."""
        period, origin = schedule_of(ep)
        start = period_bounds(now - self.settings.backfill_days * DAY, period, origin)[0]
        vf = _time(ep.get("validFrom"))
        if vf is not None:
            start = max(start, ceil_quarter(vf))
        if ep.get("switchingTimes"):
            start = max(start, ceil_quarter(float(ep.get("since") or 0.0)))
        return {"next": start, "seq": 0}

    def _clamp_cursors(self, gw: GatewayState, now: float) -> None:
        """On start: a cursor left further back than the backfill window (at least 7 days) moves up to it."""
        back = max(self.settings.backfill_days * DAY, KEEP_CURSOR_S)
        evals = gw.profiles.get("evaluation", {})
        for pid, cursor in gw.deliveries.items():
            ep = evals.get(pid)
            if ep is not None and cursor["next"] < now - back:
                period, origin = schedule_of(ep)
                cursor["next"] = period_bounds(now - back, period, origin)[0]

    def _next_period(self, ep: dict[str, Any], cursor: dict[str, Any]) -> tuple[float, float] | None:
        """The next period [a, b) to deliver, None when the profile has ended (``validTo``)."""
        period, origin = schedule_of(ep)
        a = float(cursor["next"])
        b = period_bounds(a, period, origin)[1]
        vt = _time(ep.get("validTo"))
        if vt is not None:
            end = floor_quarter(vt)
            if a >= end:
                return None
            b = min(b, end)
        return a, b

    def _due(self, gw: GatewayState, ep: dict[str, Any], a: float, b: float) -> float:
        """When period [a, b) is delivered on the simulated clock: after its end, plus this
        gateway's share of the jitter, plus a forward clock shift (captures must not lie ahead)."""
        jitter = unit(gw.seed, gw.gateway_id, "delivery-jitter") * min(self.settings.delivery_jitter_s, (b - a) / 2)
        shift = self.faults.in_force(gw, "clock_shift")
        ahead = max(0.0, float(normalise("clock_shift", shift.get("param"))) * 60) if shift is not None else 0.0
        return b + jitter + ahead

    def _plan(self, gw: GatewayState, pid: str, ep: dict[str, Any], cursor: dict[str, Any], *,
              now: bool = False) -> None:
        key = (gw.gateway_id, pid)
        gen = self._gen[key] = self._gen.get(key, 0) + 1
        nxt = self._next_period(ep, cursor)
        if nxt is None and not now:
            return
        due = float("-inf") if now or nxt is None else self._due(gw, ep, *nxt)
        heapq.heappush(self._heap, (due, next(self._n), gw.gateway_id, pid, gen))

    # ------------------------------------------------------------------ building
    def _work(self, gid: str, pid: str, v: float, real: float, budget: int) -> int:
        """Build the due periods of one profile (at most ``budget``); returns how many were built."""
        rt = self.gateways.get(gid)
        if rt is None:
            return 0
        gw = rt.state
        ep = gw.profiles.get("evaluation", {}).get(pid)
        cursor = gw.deliveries.get(pid)
        if ep is None or not ep.get("active") or cursor is None:
            return 0
        late = self.faults.in_force(gw, "late")
        held: list[list[float]] = cursor.setdefault("held", [])
        rows: list[DeliveryRow] = []
        built = 0
        if late is None and held:  # the fault is off: what was held back goes now
            for a, b, _left in held:
                rows += self._build(gw, pid, ep, a, b)
            held.clear()
        while built < budget:
            nxt = self._next_period(ep, cursor)
            if nxt is None:
                break
            a, b = nxt
            if self._due(gw, ep, a, b) > v or b > real:
                break
            cursor["next"] = b
            built += 1
            seq = int(cursor.get("seq", 0))
            cursor["seq"] = seq + 1
            if late is not None:
                n = int(normalise("late", late.get("param")))
                if seq % (n + 1) == 0:
                    held.append([a, b, n])  # late: delivered after the next n periods
                    continue
                rows += self._build(gw, pid, ep, a, b)
                for h in held:
                    h[2] -= 1
                for h in [h for h in held if h[2] <= 0]:
                    rows += self._build(gw, pid, ep, h[0], h[1])
                    held.remove(h)
            else:
                rows += self._build(gw, pid, ep, a, b)
        if not held:
            cursor.pop("held", None)
        if built or rows:
            self._queue(rt, rows)
        self._plan(gw, pid, ep, cursor)
        return max(built, 1)

    def _builder(self, gw: GatewayState, pid: str, ep: dict[str, Any]) -> tuple[Builder, str] | None:
        mp = gw.profiles.get("meter", {}).get(ep.get("meterProfile", ""))
        cp = gw.profiles.get("communication", {}).get(ep.get("communicationProfile", ""))
        if mp is None or cp is None or not cp.get("endpoint"):
            return None
        rec = Recorder(gw, MeterModel(str(mp["meter"]), gw.seed), self.faults.all_in_force(gw),
                       self.settings.max_clock_offset_s)
        return Builder(rec, gw.gateway_id, pid, ep, mp), str(cp["endpoint"])

    def _build(self, gw: GatewayState, pid: str, ep: dict[str, Any], a: float, b: float,
               reason: str = "scheduled") -> list[DeliveryRow]:
        """The delivery of period [a, b) of profile ``pid`` (twice under the ``duplicates`` fault)."""
        made = self._builder(gw, pid, ep)
        if made is None:
            log.info("simulator.delivery_skipped", gateway=gw.gateway_id, profile=pid, why="profile incomplete")
            return []
        builder, uri = made
        created = gw.gateway_time()
        taf = int(ep["taf"])
        if taf == 7:
            built = builder.load_profile(a, b, reason, created)
        elif taf == 10:
            built = builder.grid_profile(a, b, grid_interval(ep), reason, created)
        else:
            built = builder.registers(b, reason, created)
        rows = [self._row(gw, pid, ep, uri, built, reason, a, b)]
        dup = self.faults.in_force(gw, "duplicates")
        if dup is not None and unit(gw.seed, gw.gateway_id, "duplicate", pid, a) < float(
                normalise("duplicates", dup.get("param"))):
            rows.append(self._row(gw, pid, ep, uri, built, reason, a, b))  # the same payload, another delivery
            gw.count("deliveries", "duplicates")
        return rows

    def _row(self, gw: GatewayState, pid: str, ep: dict[str, Any], uri: str, built: Built, reason: str,
             a: float | None, b: float | None) -> DeliveryRow:
        gw.count("deliveries", "built")
        self.built += 1
        return DeliveryRow(gateway=gw.gateway_id, profile=pid, recipient=str(ep["recipient"]), taf=int(ep["taf"]),
                           reason=reason, uri=uri, cid=f"uuid:{uuid.uuid4()}", period_start=a, period_end=b,
                           entries=built.entries, xml=built.xml, created=time.time(), next_at=time.time())

    def _queue(self, rt: GatewayRuntime, rows: list[DeliveryRow]) -> list[int]:
        """Persist the gateway (its cursors) with the new deliveries in one transaction, then hand
        them to the outbox."""
        gw = rt.state
        ids = self.store.save_with_deliveries(gw.gateway_id, gw.to_doc(), gw.take_logs(), rows)
        stored = [dataclasses.replace(r, id=i, xml=b"") for r, i in zip(rows, ids, strict=True)]
        self.outbox.add(rt, stored)
        return ids

    # ------------------------------------------------------------------ on request, threshold
    def deliver_now(self, gateway_id: str, profile_id: str, reason: str | None = None) -> list[int]:
        """Deliver the data of evaluation profile ``profile_id`` of gateway ``gateway_id`` now, to
        its EMT (TAF 6 "on demand", TAF 9 "actual feed-in"; the control API and CLI call this): the
        delivery of :meth:`build_now`, queued and sent at once. Returns the IDs of the queued
        deliveries; raises :class:`DeliveryError` as :meth:`build_now` does."""
        rt = self.gateways.get(gateway_id.upper())
        if rt is None:
            raise DeliveryError("unknown_gateway", f"gateway {gateway_id} is not simulated here")
        ids = self._queue(rt, [self.build_now(rt.state, profile_id, reason)])
        self.outbox.pump(time.time())
        return ids

    def build_now(self, gw: GatewayState, profile_id: str, reason: str | None = None,
                  now: float | None = None) -> DeliveryRow:
        """The delivery of evaluation profile ``profile_id`` now, built but not queued: the admin
        commands ``trigger_readout`` / ``final_readout`` persist it with their command result in
        one transaction (:meth:`queued` then hands it to the outbox).
        Register TAFs (1, 2, 6, 9): the registers at the last quarter-hour boundary; TAF 7 / 10:
        the current delivery period so far. ``reason`` (docs/protocol.md 14.2 ``gg:reason``)
        defaults to ``feed_in`` for TAF 9, else ``on_demand``. Raises :class:`DeliveryError`
        (``unknown_profile``, ``inactive_profile``, ``bad_reason``, ``incomplete_profile``,
        ``deliveries_off``)."""
        if not self.settings.deliveries:
            raise DeliveryError("deliveries_off", "deliveries are switched off (GRIDGATE_SIMULATOR_DELIVERIES)")
        ep = gw.profiles.get("evaluation", {}).get(profile_id)
        if ep is None:
            raise DeliveryError("unknown_profile", f"evaluation profile {profile_id} not present on {gw.gateway_id}")
        if not ep.get("active"):
            raise DeliveryError("inactive_profile", f"evaluation profile {profile_id} is not active")
        taf = int(ep["taf"])
        reason = reason or ("feed_in" if taf == 9 else "on_demand")
        if reason not in REASONS:
            raise DeliveryError("bad_reason", f"reason is one of {', '.join(REASONS)}")
        made = self._builder(gw, profile_id, ep)
        if made is None:
            raise DeliveryError("incomplete_profile", f"meter or communication profile of {profile_id} missing")
        builder, uri = made
        now = time.time() if now is None else now
        t = floor_quarter(now)
        created = gw.gateway_time(now)
        a: float | None
        b: float | None
        if taf == 7:
            period, origin = schedule_of(ep)
            a, b = period_bounds(t - 1, period, origin)[0], t
            built = builder.load_profile(a, b, reason, created)
        elif taf == 10:
            iv = grid_interval(ep)
            b = float(int(now) // iv * iv)
            period, origin = schedule_of(ep)
            a = min(period_bounds(b - 1, period, origin)[0], b - iv)
            built = builder.grid_profile(a, b, iv, reason, created)
        else:
            a, b = None, t
            built = builder.registers(t, reason, created)
        row = self._row(gw, profile_id, ep, uri, built, reason, a, b)
        gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"delivery of {profile_id} to {ep['recipient']} ({reason})")
        return row

    def queued(self, rt: GatewayRuntime, rows: list[DeliveryRow]) -> None:
        """Deliveries stored by someone else (a command's transaction, with their IDs): send them."""
        self.outbox.add(rt, rows)
        self.outbox.pump(time.time())

    def _watch(self, real: float) -> None:
        """TAF 10 threshold mode: a voltage of a watched profile left the band -> deliver at once."""
        for gid, pid in list(self._grid):
            rt = self.gateways.get(gid)
            if rt is None:
                continue
            gw = rt.state
            ep = gw.profiles.get("evaluation", {}).get(pid)
            cursor = gw.deliveries.get(pid)
            if ep is None or cursor is None:
                self._grid.discard((gid, pid))
                continue
            if self.faults.in_force(gw, "voltage_excursion") is None and not cursor.get("outside"):
                continue  # the meter model alone stays inside the band
            made = self._builder(gw, pid, ep)
            if made is None:
                continue
            builder, uri = made
            phases = {p for p in (1, 2, 3) if ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0")[p - 1] in ep["registers"]}
            volts = builder.rec.voltages(real)
            outside = any(not VOLTAGE_BAND[0] <= volts[p] <= VOLTAGE_BAND[1] for p in phases if p in volts)
            if outside == bool(cursor.get("outside")):
                continue
            cursor["outside"] = outside
            rows = []
            if outside:
                built = builder.threshold(real, gw.gateway_time(real))
                rows.append(self._row(gw, pid, ep, uri, built, "threshold", None, float(int(real))))
                gw.count("deliveries", "threshold")
                gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"voltage outside 230 V +- 10 %: {pid} delivers at once")
            self._queue(rt, rows)
