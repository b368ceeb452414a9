"""The rules as pure functions over one day's values: plain lists, ``None`` for a slot without a
(usable) value, no I/O. Each validation answers which slots it concerns; each estimation answers
``{slot: value}`` for slots it can fill and never touches a slot that has a value.

Conventions: ``values[i]`` is slot ``i`` of the day (``domain.meterdata.days``); a register value
is the reading at the end of its slot, so a register day "starts" with the previous day's last
reading (``start``). History comes on the 96 quarter hours of the local clock
(``calendar.by_quarter``) and is mapped back with the day's ``quarters`` (``calendar.local_quarters``),
which is what makes a 92- or 100-slot day comparable with an ordinary one."""

from __future__ import annotations

from collections.abc import Sequence

Values = Sequence[int | None]


# -- shape of the day ------------------------------------------------------------------------------

def gaps(values: Values) -> list[tuple[int, int]]:
    """Runs of slots without a value, as ``[start, end)``."""
    if None not in values:
        return []
    found, start = [], None
    for i, v in enumerate(values):
        if v is None:
            if start is None:
                start = i
        elif start is not None:
            found.append((start, i))
            start = None
    if start is not None:
        found.append((start, len(values)))
    return found


def runs_of(slots: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted slot numbers as runs ``[start, end)``."""
    found: list[tuple[int, int]] = []
    for s in sorted(slots):
        if found and found[-1][1] == s:
            found[-1] = (found[-1][0], s + 1)
        else:
            found.append((s, s + 1))
    return found


def advances(values: Values, start: int | None) -> list[int | None]:
    """A register's advance into each slot (reading minus the reading before); None where either
    reading is missing."""
    out: list[int | None] = []
    before = start
    for v in values:
        out.append(v - before if v is not None and before is not None else None)
        before = v
    return out


# -- validations -----------------------------------------------------------------------------------

def decreasing(values: Values, start: int | None, tolerance: int = 0) -> list[int]:
    """Slots whose register reading is below the last reading before it (by more than
    ``tolerance``). The last reading is the last one that was not itself too low, so one bad
    reading flags one slot, not the rest of the day."""
    found, last = [], start
    for i, v in enumerate(values):
        if v is None:
            continue
        if last is not None and v < last - tolerance:
            found.append(i)
        else:
            last = v
    return found


def outside(values: Values, low: float | None, high: float | None) -> tuple[list[int], list[int]]:
    """Slots below ``low`` and above ``high`` (either None: no bound)."""
    known = [v for v in values if v is not None]
    if not known or ((low is None or min(known) >= low) and (high is None or max(known) <= high)):
        return [], []
    below = [i for i, v in enumerate(values) if v is not None and low is not None and v < low]
    above = [i for i, v in enumerate(values) if v is not None and high is not None and v > high]
    return below, above


def zero_runs(values: Values, longer_than: int) -> list[tuple[int, int]]:
    """Runs of zero values longer than ``longer_than`` slots, as ``[start, end)``."""
    found, start = [], None
    for i, v in enumerate([*values, None]):
        if v == 0:
            if start is None:
                start = i
        elif start is not None:
            if i - start > longer_than:
                found.append((start, i))
            start = None
    return found


def _median(xs: list[int]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return float(xs[mid]) if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def robust_max(history: Sequence[Sequence[int | None]], window_hours: int, min_days: int) -> list[float | None]:
    """Per local hour (24): the median over the history days of each day's maximum within
    ``window_hours`` of that hour; None where fewer than ``min_days`` days have a value there. One
    outlier in one day's history moves the median of several days little."""
    per_day: list[list[int | None]] = []
    for day in history:
        hours: list[int | None] = []
        for h in range(24):
            known = [v for v in day[4 * h:4 * h + 4] if v is not None]
            hours.append(max(known) if known else None)
        around: list[int | None] = []
        for h in range(24):
            near = [x for x in hours[max(0, h - window_hours):h + window_hours + 1] if x is not None]
            around.append(max(near) if near else None)
        per_day.append(around)
    out: list[float | None] = []
    for h in range(24):
        seen = [d[h] for d in per_day if d[h] is not None]
        out.append(_median([x for x in seen if x is not None]) if len(seen) >= min_days else None)
    return out


def spikes(values: Values, quarters: Sequence[int], history: Sequence[Sequence[int | None]], *, k: float,
           window_hours: int, min_days: int, floor: float) -> list[int]:
    """Slots whose value exceeds ``k`` times the robust maximum of the comparable history around
    its hour, and ``floor``. Without enough history nothing is a spike."""
    if not history or all(v is None for v in values):
        return []
    peak = max(v for v in values if v is not None)
    if peak <= floor:
        return []
    ref = robust_max(history, window_hours, min_days)
    found = []
    for i, v in enumerate(values):
        if v is None or v <= floor:
            continue
        r = ref[quarters[i] // 4]
        if r is not None and v > k * r:
            found.append(i)
    return found


def mismatches(intervals: Values, register: Values, start: int | None, tolerance: int
               ) -> list[tuple[int, int, int, int]]:
    """Where intervals and register disagree: between two consecutive known register readings
    (``start`` is the reading at the day's start), the sum of the intervals in between (all known)
    against the register's advance. ``(first slot, end slot, interval sum, register advance)``."""
    found = []
    last_slot, last = -1, start
    for q, r in enumerate(register):
        if r is None:
            continue
        if last is not None:
            span = intervals[last_slot + 1:q + 1]
            if None not in span:
                total = sum(v for v in span if v is not None)
                if abs(total - (r - last)) > tolerance:
                    found.append((last_slot + 1, q + 1, total, r - last))
        last_slot, last = q, r
    return found


# -- estimations -----------------------------------------------------------------------------------

def interpolate(values: Values, max_slots: int, *, before: int | None = None, after: int | None = None
                ) -> dict[int, int]:
    """Linear interpolation of every gap of at most ``max_slots`` slots that has a value on both
    sides (``before``/``after``: the neighbouring days' values next to the day's edges)."""
    out: dict[int, int] = {}
    n = len(values)
    for a, b in gaps(values):
        if b - a > max_slots:
            continue
        left = values[a - 1] if a > 0 else before
        right = values[b] if b < n else after
        if left is None or right is None:
            continue
        steps = b - a + 1
        for j in range(a, b):
            out[j] = left + ((right - left) * (j - a + 1)) // steps  # floor: monotonic between the ends
    return out


def comparable(missing: Sequence[int], quarters: Sequence[int], history: Sequence[Sequence[int | None]],
               min_days: int) -> dict[int, int]:
    """For each missing slot, the mean of the comparable days' values at the same quarter hour of the
    local clock, where at least ``min_days`` of them have one."""
    out: dict[int, int] = {}
    for i in missing:
        q = quarters[i]
        seen = [v for day in history if (v := day[q]) is not None]
        if len(seen) >= min_days:
            out[i] = round(sum(seen) / len(seen))
    return out


def scaled_profile(missing: Sequence[int], profile: Sequence[float], factor: float) -> dict[int, int]:
    """The profile's energy at each missing slot times ``factor`` (the meter's level)."""
    return {i: round(profile[i] * factor) for i in missing}


def level(values: Values, profile: Sequence[float], min_known: int) -> float | None:
    """How much this meter uses relative to the profile, from the day's own known values: their sum
    over the profile's sum at the same slots (None: fewer than ``min_known`` values)."""
    known = [(v, p) for v, p in zip(values, profile, strict=False) if v is not None]
    if len(known) < min_known:
        return None
    ref = sum(p for _, p in known)
    return sum(v for v, _ in known) / ref if ref > 0 else None


def shaped_register(values: Values, missing_run: tuple[int, int], shape: Sequence[float], *,
                    before: int | None, after: int | None) -> dict[int, int]:
    """Register readings for a gap ``[a, b)`` from the advances ``shape`` (one per slot of the day):
    with readings on both sides the gap's advance is exact and ``shape`` only distributes it (over
    the slots ``a`` to ``b``, the last advance leading to the reading after the gap); with a reading
    before it only, the shape's advances are added up from there. Readings never decrease."""
    a, b = missing_run
    n = len(values)
    left = values[a - 1] if a > 0 else before
    right = values[b] if b < n else after
    if left is None:
        return {}
    weights = [max(0.0, shape[j]) if j < len(shape) else 0.0 for j in range(a, min(b + 1, n))]
    out: dict[int, int] = {}
    if right is not None:
        if right < left:
            return {}
        if b == n:  # the reading after the gap is the next day's first: its advance is not in shape
            weights.append(weights[-1] if weights else 1.0)
        total = sum(weights)
        if total <= 0:
            weights, total = [1.0] * len(weights), float(len(weights))
        acc = 0.0
        for j in range(a, b):
            acc += weights[j - a]
            out[j] = left + int((right - left) * acc / total)
        return out
    acc = 0.0
    for j in range(a, b):
        acc += weights[j - a]
        out[j] = left + round(acc)
    return out
