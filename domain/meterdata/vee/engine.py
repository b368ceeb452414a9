"""Applying a rule chain to one (series, day): pure, everything it needs comes in ``DayInput``
(loaded in batches by the service), everything it decides goes out in ``DayResult``.

Order: validations in chain order (a rejected value is gone for the rules after it), then the
estimations in chain order for every slot without a value, then what is left is missing. Manual
corrections of the current final version are carried over last, as long as the delivered value
they corrected is still the one delivered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.meterdata.days import BERLIN, SLOT_S, day_start, slot_start
from domain.meterdata.quality import METHOD_INTERPOLATION, METHOD_STATISTICAL, Quality
from domain.meterdata.vee import bits, rules
from domain.meterdata.vee.calendar import by_quarter, local_quarters
from domain.meterdata.vee.chain import (
    ClockShift,
    ComparableDays,
    Completeness,
    Duplicates,
    Interpolate,
    Limits,
    Monotonic,
    RegisterConsistency,
    Rule,
    Spike,
    StandardLoadProfile,
    StatusFlags,
    ZeroStretch,
)
from domain.meterdata.vee.slp import day_profile

WH = 30  # DLMS unit code
MANUAL_RULE = "manual"  # the rule id findings about manual corrections carry
_TRUE, _MISSING = int(Quality.TRUE), int(Quality.MISSING)


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """What master data says about the meter: rated maximum current and phases (None: unknown)."""

    max_current_a: float | None = None
    phases: int | None = None


@dataclass(frozen=True, kw_only=True)
class Edit:
    """A manual correction in the current final version: its value and note (with ``user`` and
    ``raw``, the delivered value it replaced)."""

    value: int | None
    note: dict[str, Any]


@dataclass(kw_only=True)
class DayInput:
    series_id: int
    day: dt.date
    kind: str  # interval | register
    unit: int = WH
    scaler: int = 0
    values: list[int | None]  # the newest raw version (all None: nothing delivered)
    status: dict[int, int] = field(default_factory=dict)
    raw_notes: dict[str, Any] | None = None
    before: int | None = None  # the previous day's last value (register: the reading at the day's start)
    after: int | None = None  # the next day's first value
    history: Sequence[Sequence[int | None]] = ()  # comparable days, 96 local quarters, newest first
    history_days: Sequence[dt.date] = ()  # (interval: true values; register: advances)
    register: list[int | None] | None = None  # interval series: the register series' raw readings
    register_start: int | None = None
    readings: dict[int, int] = field(default_factory=dict)  # register: slot -> point reading at its end
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # {slot, stored, delivered}
    capacity: Capacity | None = None
    edits: dict[int, Edit] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Finding:
    rule_id: str
    severity: str
    slots: tuple[int, ...] | None
    detail: str
    data: dict[str, Any] | None = None


@dataclass(kw_only=True)
class DayResult:
    values: list[int | None]
    quality: bytes
    notes: dict[str, Any] | None
    findings: list[Finding]
    substitutes: int = 0
    missing: int = 0
    provisional: int = 0


def _hhmm(day: dt.date, slot: int) -> str:
    return slot_start(day, slot).astimezone(BERLIN).strftime("%H:%M")


class _Day:
    """The working state of one day while the chain runs."""

    def __init__(self, d: DayInput, n: int) -> None:
        self.d = d
        self.n = n
        self.values: list[int | None] = (list(d.values) + [None] * n)[:n]
        self.quality = bytearray(_TRUE if v is not None else _MISSING for v in self.values)
        self.notes: dict[int, dict[str, Any]] = {}
        self.rejected: dict[int, dict[str, Any]] = {}
        self.findings: list[Finding] = []
        self.units = 10.0 ** d.scaler  # Wh per unit of the series (for unit 30)

    def find(self, rule: Rule, slots: Sequence[int] | None, detail: str, data: dict[str, Any] | None = None,
             severity: str | None = None) -> None:
        self.findings.append(Finding(rule_id=rule.id, severity=severity or rule.severity,
                                     slots=tuple(sorted(set(slots))) if slots is not None else None,
                                     detail=detail, data=data))

    def act(self, rule: Rule, action: str, slots: Sequence[int], reason: str) -> None:
        for i in slots:
            v = self.values[i]
            if v is None:
                continue
            if action == "reject":
                self.rejected[i] = {"rejected_by": rule.id, "was": v, "why": reason}
                self.values[i] = None
                self.quality[i] = Quality.MISSING
                self.notes.pop(i, None)
            elif action == "provisional" and self.quality[i] == Quality.TRUE:
                self.quality[i] = Quality.PROVISIONAL
                self.notes[i] = {"rule": rule.id, "reason": reason}

    def fill(self, rule: Rule, found: dict[int, int], method: str, reason: str) -> int:
        filled = 0
        for i, v in found.items():
            if self.values[i] is not None:
                continue
            self.values[i] = v
            self.quality[i] = Quality.SUBSTITUTE
            self.notes[i] = {"rule": rule.id, "method": method, "reason": reason, **self.rejected.get(i, {})}
            filled += 1
        return filled

    def missing(self) -> list[int]:
        return [i for i, v in enumerate(self.values) if v is None]


def validate_day(d: DayInput, chain: Sequence[Rule], n: int | None = None) -> DayResult:
    """Apply ``chain`` to one day (``n`` slots, default from the day)."""
    n = n if n is not None else len(local_quarters(d.day))
    w = _Day(d, n)
    for rule in chain:
        if not rule.estimates:
            _VALIDATIONS[type(rule)](w, rule)
    completeness = next((r for r in chain if isinstance(r, Completeness)), None)
    for rule in chain:
        if rule.estimates and None in w.values:
            _ESTIMATIONS[type(rule)](w, rule)
    left = w.missing()
    for i in left:
        w.quality[i] = Quality.MISSING
        w.notes[i] = {"rule": completeness.id if completeness else "completeness",
                      "reason": "no value and no estimate", **w.rejected.get(i, {})}
    _carry_edits(w)
    notes = {str(i): w.notes[i] for i in sorted(w.notes)}
    q = bytes(w.quality)
    return DayResult(values=w.values, quality=q, notes=notes or None, findings=w.findings,
                     substitutes=q.count(Quality.SUBSTITUTE), missing=q.count(Quality.MISSING),
                     provisional=q.count(Quality.PROVISIONAL))


# -- validations -----------------------------------------------------------------------------------

def _completeness(w: _Day, rule: Completeness) -> None:
    runs = rules.gaps(w.values)
    if not runs:
        return
    slots = [i for a, b in runs for i in range(a, b)]
    spans = ", ".join(f"{_hhmm(w.d.day, a)}+{b - a}" for a, b in runs[:8]) + (" ..." if len(runs) > 8 else "")
    w.find(rule, slots, f"{len(slots)} of {w.n} quarter hours without a value ({spans})",
           {"expected": w.n, "missing": len(slots), "gaps": [[a, b] for a, b in runs]},
           severity="error" if len(slots) == w.n else None)


def _status(w: _Day, rule: StatusFlags) -> None:
    phases = (w.d.capacity.phases if w.d.capacity else None) or 3
    by_flag: dict[str, list[int]] = {}
    for slot, word in w.d.status.items():
        if 0 <= slot < w.n:
            for name in bits.flags(word, phases):
                by_flag.setdefault(name, []).append(slot)
    # NoValue says the gateway had no value; on a slot that has one (delivered later, the earlier
    # delivery's status word kept) it explains nothing any more.
    by_flag["no_value"] = [s for s in by_flag.get("no_value", []) if w.values[s] is None]
    for name, slots in sorted(by_flag.items()):
        action = rule.actions.get(name)
        if action is None or not slots:
            continue
        w.find(rule, slots, f"status {name} on {len(slots)} quarter hours ({action})", {"flag": name},
               severity="warning" if action == "flag" else None)
        w.act(rule, action, slots, f"status {name}")


def _clock(w: _Day, rule: ClockShift) -> None:
    invalid = sorted(s for s, word in w.d.status.items() if 0 <= s < w.n and bits.smgw(word, bits.SMGW_TIME_NOT_VALID))
    if invalid:
        w.find(rule, invalid, f"gateway time not valid on {len(invalid)} quarter hours ({rule.action})",
               {"flag": "time_not_valid"})
        w.act(rule, rule.action, invalid, "gateway time not valid")
    shifts = (w.d.raw_notes or {}).get("clock_shift") or []
    if shifts:
        start = day_start(w.d.day).timestamp()
        slots = []
        for s in shifts:
            captured = dt.datetime.fromisoformat(str(s.get("captured"))).timestamp()
            slots.append(min(w.n - 1, max(0, round((captured - start) / SLOT_S) - 1)))
        w.find(rule, slots, f"{len(shifts)} reading(s) off the quarter-hour grid by a clock shift, not stored",
               {"clock_shift": shifts})


def _duplicates(w: _Day, rule: Duplicates) -> None:
    if not w.d.conflicts:
        return
    slots = [int(c["slot"]) for c in w.d.conflicts if 0 <= int(c["slot"]) < w.n]
    w.find(rule, slots, f"{len(w.d.conflicts)} later deliveries differed from the stored value (kept)",
           {"conflicts": w.d.conflicts[:20]})
    w.act(rule, rule.action, slots, "a later delivery differed")


def _monotonic(w: _Day, rule: Monotonic) -> None:
    if w.d.kind != "register":
        return
    slots = rules.decreasing(w.values, w.d.before, rule.tolerance)
    if slots:
        w.find(rule, slots, f"register reading below the one before on {len(slots)} quarter hours ({rule.action})")
        w.act(rule, rule.action, slots, "register reading below the one before")


def _limits(w: _Day, rule: Limits) -> None:
    if w.d.unit != WH:
        return
    cap = w.d.capacity or Capacity()
    amps = cap.max_current_a or rule.default_max_current_a
    phases = cap.phases or rule.default_phases
    high_wh = phases * rule.voltage_v * amps * 0.25 * rule.headroom
    high, low = high_wh / w.units, rule.low_wh / w.units
    series = w.values if w.d.kind != "register" else rules.advances(w.values, w.d.before)
    below, above = rules.outside(series, low, high)
    if above:
        w.find(rule, above, f"{len(above)} quarter hours above {high_wh:.0f} Wh ({phases} x {amps:g} A at "
                            f"{rule.voltage_v:g} V) ({rule.action})", {"high_wh": high_wh, "phases": phases,
                                                                       "max_current_a": amps})
        w.act(rule, rule.action, above, f"above {high_wh:.0f} Wh per quarter hour")
    if below:
        w.find(rule, below, f"{len(below)} quarter hours below {rule.low_wh:g} Wh ({rule.action})",
               {"low_wh": rule.low_wh})
        w.act(rule, rule.action, below, f"below {rule.low_wh:g} Wh per quarter hour")


def _register_consistency(w: _Day, rule: RegisterConsistency) -> None:
    if w.d.kind == "register":
        bad = [s for s, r in sorted(w.d.readings.items())
               if 0 <= s < w.n and (v := w.values[s]) is not None and abs(v - r) > rule.tolerance]
        if bad:
            w.find(rule, bad, f"{len(bad)} register readings differ from point readings at the same time",
                   {"readings": {str(s): [w.values[s], w.d.readings[s]] for s in bad}})
            w.act(rule, rule.action, bad, "differs from a point reading")
        return
    if w.d.register is None:
        return
    register = (list(w.d.register) + [None] * w.n)[:w.n]
    found = rules.mismatches(w.values, register, w.d.register_start, rule.tolerance)
    if found:
        slots = [i for a, b, _, _ in found for i in range(a, b)]
        w.find(rule, slots, f"sum of quarter hours differs from the register's advance in {len(found)} spans",
               {"spans": [[a, b, total, advance] for a, b, total, advance in found[:20]]})
        w.act(rule, rule.action, slots, "differs from the register's advance")


def _spike(w: _Day, rule: Spike) -> None:
    if w.d.kind != "interval" or not w.d.history:
        return
    history = w.d.history[:rule.weeks]
    slots = rules.spikes(w.values, local_quarters(w.d.day), history, k=rule.k, window_hours=rule.window_hours,
                         min_days=rule.min_days, floor=rule.floor_wh / w.units)
    if slots:
        w.find(rule, slots, f"{len(slots)} values above {rule.k:g} x the robust maximum of "
                            f"{len(history)} comparable days ({rule.action})",
               {"days": [d.isoformat() for d in w.d.history_days[:rule.weeks]]})
        w.act(rule, rule.action, slots, f"above {rule.k:g} x the comparable days' robust maximum")


def _zero_stretch(w: _Day, rule: ZeroStretch) -> None:
    if w.d.kind != "interval":
        return
    found = rules.zero_runs(w.values, int(rule.max_hours * 4))
    if found:
        slots = [i for a, b in found for i in range(a, b)]
        w.find(rule, slots, f"zero consumption for more than {rule.max_hours:g} h "
                            f"({', '.join(f'{_hhmm(w.d.day, a)}+{b - a}' for a, b in found)})")
        w.act(rule, rule.action, slots, f"zero for more than {rule.max_hours:g} h")


# -- estimations -----------------------------------------------------------------------------------

def _interpolate(w: _Day, rule: Interpolate) -> None:
    max_slots = int(rule.max_hours * 4)
    found = rules.interpolate(w.values, max_slots, before=w.d.before, after=w.d.after)
    reason = f"linear between neighbours, gap up to {rule.max_hours:g} h"
    if found and w.fill(rule, found, METHOD_INTERPOLATION, reason):
        w.find(rule, list(found), f"{len(found)} quarter hours interpolated", severity="info")


def _comparable(w: _Day, rule: ComparableDays) -> None:
    history = w.d.history[:rule.weeks]
    if len(history) < rule.min_days:
        return
    quarters = local_quarters(w.d.day)
    days = [d.isoformat() for d in w.d.history_days[:rule.weeks]]
    found: dict[int, int] = {}
    if w.d.kind == "register":
        for a, b in rules.gaps(w.values):
            shape = rules.comparable(range(a, min(b + 1, w.n)), quarters, history, rule.min_days)
            if len(shape) < min(b + 1, w.n) - a:
                continue
            found.update(rules.shaped_register(w.values, (a, b), [float(shape.get(i, 0)) for i in range(w.n)],
                                               before=w.d.before, after=w.d.after))
    else:
        found = rules.comparable(w.missing(), quarters, history, rule.min_days)
    if found and w.fill(rule, found, METHOD_STATISTICAL, f"mean of comparable days ({len(history)})"):
        w.find(rule, list(found), f"{len(found)} quarter hours from comparable days", {"days": days},
               severity="info")


def _slp(w: _Day, rule: StandardLoadProfile) -> None:
    profile = day_profile(w.d.day, rule.profile)
    found: dict[int, int] = {}
    if w.d.kind == "register":
        for a, b in rules.gaps(w.values):
            if (b < w.n and w.values[b] is not None) or (b == w.n and w.d.after is not None):
                found.update(rules.shaped_register(w.values, (a, b), list(profile), before=w.d.before,
                                                   after=w.d.after))
        basis = "shape between two readings"
    else:
        factor, basis = _level(w, rule, profile)
        if factor is None:
            return
        found = rules.scaled_profile(w.missing(), profile, factor)
    if found and w.fill(rule, found, METHOD_STATISTICAL, f"standard load profile {rule.profile}, {basis}"):
        w.find(rule, list(found), f"{len(found)} quarter hours from the standard load profile {rule.profile} "
                                  f"({basis})", severity="info")


def _level(w: _Day, rule: StandardLoadProfile, profile: Sequence[float]) -> tuple[float | None, str]:
    """Series units per profile Wh: from the day, else the history loaded for it, else annual_kwh."""
    measured = [v if q in (Quality.TRUE, Quality.PROVISIONAL) else None
                for v, q in zip(w.values, w.quality, strict=True)]
    own = rules.level(measured, profile, rule.min_known_slots)
    if own is not None:
        return own, "scaled to the day's known values"
    used = ref = 0.0
    for day, values in zip(w.d.history_days, w.d.history, strict=False):
        for v, p in zip(values, by_quarter(day, day_profile(day, rule.profile)), strict=True):
            if v is not None and p is not None:
                used += v
                ref += p
    if ref > 0 and used > 0:
        return used / ref, "scaled to the comparable days"
    if rule.annual_kwh is not None and w.d.unit == WH:
        return rule.annual_kwh / 1000 / w.units, f"scaled to {rule.annual_kwh:g} kWh a year"
    return None, ""


def _carry_edits(w: _Day) -> None:
    superseded = []
    for i, edit in sorted(w.d.edits.items()):
        if not 0 <= i < w.n:
            continue
        delivered = w.d.values[i] if i < len(w.d.values) else None
        if edit.note.get("raw") != delivered:
            superseded.append(i)
            continue
        w.values[i] = edit.value
        w.quality[i] = Quality.SUBSTITUTE if edit.value is not None else Quality.MISSING
        w.notes[i] = dict(edit.note)
    if superseded:
        w.findings.append(Finding(rule_id=MANUAL_RULE, severity="info", slots=tuple(superseded),
                                  detail=f"{len(superseded)} manual corrections dropped: a delivery changed the "
                                         "value they corrected"))


_VALIDATIONS: dict[type, Any] = {
    Completeness: _completeness, StatusFlags: _status, ClockShift: _clock, Duplicates: _duplicates,
    Monotonic: _monotonic, Limits: _limits, RegisterConsistency: _register_consistency, Spike: _spike,
    ZeroStretch: _zero_stretch,
}
_ESTIMATIONS: dict[type, Any] = {Interpolate: _interpolate, ComparableDays: _comparable, StandardLoadProfile: _slp}
