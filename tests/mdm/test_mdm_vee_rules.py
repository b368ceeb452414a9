"""The VEE rules as pure functions (no database): properties over generated days (hypothesis),
DST days of 92 and 100 quarter hours, the status word bits of DS Tab. 15.1, the calendar and the
standard load profile."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.meterdata.days import slot_start, slots_in
from domain.meterdata.quality import METHOD_INTERPOLATION, METHOD_STATISTICAL, Quality
from domain.meterdata.vee import bits, calendar, rules, slp
from domain.meterdata.vee import chain as chains
from domain.meterdata.vee.engine import Capacity, DayInput, Edit, validate_day

SPRING, AUTUMN, WINTER = dt.date(2026, 3, 29), dt.date(2026, 10, 25), dt.date(2026, 1, 15)
CHAIN = chains.parse(chains.default_rules("VNB"))
MAX_SLOTS = 8  # 2 hours

maybe = st.one_of(st.none(), st.integers(min_value=0, max_value=5000))
days = st.lists(maybe, min_size=1, max_size=100)


def _interior_short_gaps(values: list[int | None], max_slots: int, before: int | None, after: int | None
                         ) -> list[tuple[int, int]]:
    n = len(values)
    return [(a, b) for a, b in rules.gaps(values) if b - a <= max_slots
            and (a > 0 or before is not None) and (b < n or after is not None)]


# -- interpolation ---------------------------------------------------------------------------------

@given(days, maybe, maybe)
def test_interpolation_fills_every_short_gap_and_changes_no_true_value(values: list[int | None], before: int | None,
                                                                      after: int | None) -> None:
    filled = rules.interpolate(values, MAX_SLOTS, before=before, after=after)
    assert all(values[i] is None for i in filled), "a true value was changed"
    merged = [filled.get(i, v) for i, v in enumerate(values)]
    assert _interior_short_gaps(merged, MAX_SLOTS, before, after) == []
    for a, b in rules.gaps(values):  # only gaps of at most 2 hours, and within their neighbours
        inside = [filled[i] for i in range(a, b) if i in filled]
        if b - a > MAX_SLOTS:
            assert not inside
        elif inside:
            left = values[a - 1] if a > 0 else before
            right = values[b] if b < len(values) else after
            assert left is not None and right is not None
            assert all(min(left, right) <= v <= max(left, right) for v in inside)


@given(st.lists(st.integers(min_value=0, max_value=400), min_size=2, max_size=100), st.data())
def test_interpolating_a_register_keeps_it_monotonic(steps: list[int], data: st.DataObject) -> None:
    register: list[int | None] = []
    total = 10_000
    for s in steps:
        total += s
        register.append(total)
    holes = data.draw(st.sets(st.integers(min_value=0, max_value=len(register) - 1)))
    with_gaps = [None if i in holes else v for i, v in enumerate(register)]
    filled = rules.interpolate(with_gaps, MAX_SLOTS, before=10_000, after=total + 5)
    merged = [filled.get(i, v) for i, v in enumerate(with_gaps)]
    known = [v for v in merged if v is not None]
    assert known == sorted(known)
    assert rules.decreasing(merged, 10_000) == []


def test_interpolation_is_linear() -> None:
    assert rules.interpolate([100, None, None, None, 140], MAX_SLOTS) == {1: 110, 2: 120, 3: 130}
    assert rules.interpolate([None, None, 40], MAX_SLOTS, before=10) == {0: 20, 1: 30}
    assert rules.interpolate([None, None, 40], MAX_SLOTS) == {}  # nothing on the left side
    assert rules.interpolate([1] + [None] * 9 + [1], MAX_SLOTS) == {}  # 9 quarter hours: longer than 2 h


# -- other pure rules ------------------------------------------------------------------------------

@given(days)
def test_gaps_are_exactly_the_slots_without_value(values: list[int | None]) -> None:
    found = rules.gaps(values)
    assert [i for a, b in found for i in range(a, b)] == [i for i, v in enumerate(values) if v is None]
    assert rules.runs_of([i for a, b in found for i in range(a, b)]) == found


@given(st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)), max_size=100),
       st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)))
def test_removing_decreasing_readings_leaves_a_monotonic_register(values: list[int | None], start: int | None) -> None:
    bad = set(rules.decreasing(values, start))
    kept = [v for i, v in enumerate(values) if v is not None and i not in bad]
    assert kept == sorted(kept)
    if start is not None:
        assert all(v >= start for v in kept)


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**5),
       st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=30),
       st.lists(st.floats(min_value=0, max_value=100), min_size=100, max_size=100))
def test_a_shaped_register_gap_is_monotonic_and_ends_at_the_reading_after(left: int, advance: int, length: int,
                                                                          at: int, shape: list[float]) -> None:
    n = at + length + 1
    values: list[int | None] = [None] * n
    values[at + length] = left + advance
    if at > 0:
        values[at - 1] = left
    got = rules.shaped_register(values, (at, at + length), shape[:n], before=left if at == 0 else None, after=None)
    filled = [got[i] for i in range(at, at + length)]
    assert filled == sorted(filled)
    assert all(left <= v <= left + advance for v in filled)


def test_register_sum_against_intervals() -> None:
    register = [110, 120, None, 145, 150]
    intervals: list[int | None] = [10, 10, 10, 15, 5]
    assert rules.mismatches(intervals, register, 100, 0) == []
    intervals[3] = 99
    assert rules.mismatches(intervals, register, 100, 0) == [(2, 4, 109, 25)]


def test_spikes_against_a_robust_maximum_of_the_history() -> None:
    quarters = list(range(96))
    history = [[100] * 96 for _ in range(4)]
    history[0][40] = 5000  # one outlier in the history does not raise the median
    day: list[int | None] = [100] * 96
    day[41], day[60] = 301, 2000
    assert rules.spikes(day, quarters, history, k=3, window_hours=1, min_days=3, floor=250) == [41, 60]
    assert rules.spikes(day, quarters, history[:2], k=3, window_hours=1, min_days=3, floor=250) == []
    assert rules.spikes(day, quarters, history, k=3, window_hours=1, min_days=3, floor=2500) == []


def test_zero_runs_longer_than_the_limit() -> None:
    assert rules.zero_runs([0] * 49 + [5] + [0] * 48, 48) == [(0, 49)]


# -- status word (DS Tab. 15.1) ---------------------------------------------------------------------

def test_status_bits_of_the_combined_word() -> None:
    assert bits.flags(0) == []
    assert bits.flags(bits.word(smgw_bits=(13,))) == ["no_value"]
    assert bits.flags(bits.word(smgw_bits=(8, 9, 12, 14))) == ["smgw_error", "time_not_valid", "smgw_warning", "tamper"]
    base = (bits.METER_BASE_METER, 18, 19, 20)
    assert bits.flags(bits.word(meter_bits=base)) == []
    assert bits.flags(bits.word(meter_bits=(*base, 9, 10, 17))) == ["meter_magnetic", "meter_mechanical",
                                                                     "meter_fatal"]
    assert bits.flags(bits.word(meter_bits=(bits.METER_BASE_METER, 18, 19))) == ["voltage_missing"]
    assert bits.flags(bits.word(meter_bits=(bits.METER_BASE_METER, 18)), phases=1) == []
    # the protocol example's normal word (SMGW bits 0 and 2, meter bit 8): nothing; no base meter, no voltage check
    assert bits.flags(0x0000000500000100) == []
    assert bits.flags(0x0000000500000100 | bits.word(meter_bits=(10,))) == ["meter_mechanical"]
    # a wireless (OMS) or gas meter's word means other things: its bits are not read as an electricity meter's
    assert bits.flags(bits.word(smgw_bits=(17,), meter_bits=(bits.METER_BASE_METER, 9))) == []
    assert bits.flags(bits.word(meter_bits=(bits.METER_GAS, 9, 10))) == []


# -- calendar and standard load profile ------------------------------------------------------------

def test_dst_days_have_92_and_100_slots_on_the_local_clock() -> None:
    spring, autumn = calendar.local_quarters(SPRING), calendar.local_quarters(AUTUMN)
    assert len(spring) == 92 and 8 not in spring and spring[8] == 12  # 02:00-03:00 does not exist
    assert len(autumn) == 100 and autumn[8:16] == (8, 9, 10, 11, 8, 9, 10, 11)  # ... or twice
    assert calendar.by_quarter(SPRING, list(range(92)))[8:12] == [None] * 4
    assert calendar.by_quarter(AUTUMN, list(range(100)))[8:12] == [8, 9, 10, 11]


def test_holidays_and_comparable_days() -> None:
    assert calendar.easter(2026) == dt.date(2026, 4, 5)
    assert calendar.day_type(dt.date(2026, 5, 25)) == "sunday"  # Whit Monday
    assert calendar.day_type(dt.date(2026, 12, 24)) == "saturday"
    tuesdays = calendar.comparable_days(dt.date(2026, 5, 12), 4)
    assert tuesdays == [dt.date(2026, 5, 5), dt.date(2026, 4, 28), dt.date(2026, 4, 21), dt.date(2026, 4, 14)]
    fridays = calendar.comparable_days(dt.date(2026, 4, 17), 2)  # Good Friday 3 April is no Friday to compare with
    assert fridays == [dt.date(2026, 4, 10), dt.date(2026, 3, 27)]
    assert dt.date(2026, 5, 14) in calendar.comparable_days(dt.date(2026, 5, 25), 4)  # Ascension like a Sunday


def test_the_h0_profile_is_about_1000_kwh_a_year() -> None:
    year = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(365)]
    assert 990 < sum(sum(slp.day_profile(d)) for d in year) / 1000 < 1010
    assert len(slp.day_profile(SPRING)) == 92 and len(slp.day_profile(AUTUMN)) == 100


# -- the engine on one day -------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.sampled_from([WINTER, SPRING, AUTUMN]), st.data())
def test_the_engine_never_changes_a_true_value_and_names_every_substitute(day: dt.date, data: st.DataObject) -> None:
    n = slots_in(day)
    values = data.draw(st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=400)), min_size=n, max_size=n))
    history = [data.draw(st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=400)), min_size=96,
                                  max_size=96)) for _ in range(data.draw(st.integers(min_value=0, max_value=4)))]
    result = validate_day(DayInput(series_id=1, day=day, kind="interval", values=values, history=history,
                                   history_days=calendar.comparable_days(day, len(history))), CHAIN)
    assert len(result.values) == len(result.quality) == n
    for i, (v, q) in enumerate(zip(result.values, result.quality, strict=True)):
        note = (result.notes or {}).get(str(i))
        if values[i] is not None and q in (Quality.TRUE, Quality.PROVISIONAL):
            assert v == values[i]
        if q == Quality.SUBSTITUTE:
            assert v is not None and note and note["method"] in (METHOD_INTERPOLATION, METHOD_STATISTICAL)
        if q == Quality.MISSING:
            assert v is None and note and note["rule"]
        if v is None:
            assert q == Quality.MISSING
    assert _interior_short_gaps(result.values, MAX_SLOTS, None, None) == []


@pytest.mark.parametrize("day", [SPRING, AUTUMN])
def test_a_missing_dst_day_is_estimated_from_comparable_days_on_the_local_clock(day: dt.date) -> None:
    n = len(calendar.local_quarters(day))
    history = [[q for q in range(96)] for _ in range(3)]
    result = validate_day(DayInput(series_id=1, day=day, kind="interval", values=[None] * n, history=history,
                                   history_days=calendar.comparable_days(day, 3)), CHAIN)
    assert result.substitutes == n and result.values == list(calendar.local_quarters(day))
    assert {note["rule"] for note in (result.notes or {}).values()} == {"comparable_days"}


def test_estimation_order_interpolation_comparable_days_profile() -> None:
    values: list[int | None] = [50] * 96
    values[10:13] = [None] * 3  # 45 minutes: interpolation
    values[40:60] = [None] * 20  # 5 hours: comparable days
    history = [[80] * 96 for _ in range(3)]
    result = validate_day(DayInput(series_id=1, day=WINTER, kind="interval", values=values, history=history,
                                   history_days=calendar.comparable_days(WINTER, 3)), CHAIN)
    notes = result.notes or {}
    assert {notes[str(i)]["rule"] for i in range(10, 13)} == {"interpolate"}
    assert {notes[str(i)]["method"] for i in range(10, 13)} == {METHOD_INTERPOLATION}
    assert {notes[str(i)]["rule"] for i in range(40, 60)} == {"comparable_days"} and result.values[45] == 80
    # without history the long gap comes from the standard load profile, scaled to the day's values
    result = validate_day(DayInput(series_id=1, day=WINTER, kind="interval", values=values), CHAIN)
    notes = result.notes or {}
    assert {notes[str(i)]["rule"] for i in range(40, 60)} == {"standard_load_profile"}
    assert {notes[str(i)]["method"] for i in range(40, 60)} == {METHOD_STATISTICAL}
    profile = slp.day_profile(WINTER)
    factor = sum(50 for v in values if v is not None) / sum(p for p, v in zip(profile, values, strict=True) if v)
    assert result.values[50] == round(profile[50] * factor)
    # and nothing at all known: missing (Z30), unless the chain names an annual consumption
    result = validate_day(DayInput(series_id=1, day=WINTER, kind="interval", values=[None] * 96), CHAIN)
    assert result.missing == 96 and result.quality == bytes([Quality.MISSING]) * 96
    with_annual = chains.parse([*(r for r in chains.default_rules("VNB") if r["type"] != "standard_load_profile"),
                                {"id": "slp", "type": "standard_load_profile", "annual_kwh": 3500}])
    result = validate_day(DayInput(series_id=1, day=WINTER, kind="interval", values=[None] * 96), with_annual)
    assert result.substitutes == 96 and 8000 < sum(v or 0 for v in result.values) < 14000  # ~ 3500 kWh / 365


def test_rejections_are_estimated_and_keep_the_original() -> None:
    values: list[int | None] = [100] * 96
    values[20] = 50_000  # above 3 x 60 A x 230 V over a quarter hour (10,350 Wh)
    status = {30: bits.word(smgw_bits=(8,)), 31: bits.word(smgw_bits=(14,)), 32: bits.word(smgw_bits=(9,))}
    result = validate_day(DayInput(series_id=1, day=WINTER, kind="interval", values=values, status=status,
                                   capacity=Capacity(max_current_a=60, phases=3)), CHAIN)
    notes = result.notes or {}
    assert result.values[20] == 100 and notes["20"]["rejected_by"] == "limits" and notes["20"]["was"] == 50_000
    assert notes["20"]["rule"] == "interpolate" and result.quality[20] == Quality.SUBSTITUTE
    assert notes["30"]["rejected_by"] == "status" and result.quality[30] == Quality.SUBSTITUTE
    assert result.quality[31] == Quality.PROVISIONAL and notes["31"]["rule"] == "status"  # tamper
    assert result.quality[32] == Quality.PROVISIONAL and notes["32"]["rule"] == "clock"
    assert {f.rule_id for f in result.findings} >= {"limits", "status", "clock", "interpolate"}
    one_phase = validate_day(DayInput(series_id=1, day=WINTER, kind="interval", values=[3000] * 96,
                                      capacity=Capacity(max_current_a=40, phases=1)), CHAIN)
    assert one_phase.substitutes == 0 and one_phase.missing == 96  # above 1 x 40 A x 230 V / 4 = 2,300 Wh


def test_a_decreasing_register_reading_is_rejected_and_refilled() -> None:
    register: list[int | None] = [1000 + 10 * i for i in range(96)]
    register[50] = 5
    result = validate_day(DayInput(series_id=1, day=WINTER, kind="register", values=register, before=995), CHAIN)
    assert result.values[50] == 1500 and (result.notes or {})["50"]["rejected_by"] == "monotonic"


def test_a_manual_edit_is_carried_until_a_delivery_changes_what_it_corrected() -> None:
    values: list[int | None] = [100] * 96
    note = {"rule": "manual", "method": "manual", "user": "anna", "reason": "customer_reading", "raw": 100}
    kept = validate_day(DayInput(series_id=1, day=WINTER, kind="interval", values=values,
                                 edits={5: Edit(value=90, note=note)}), CHAIN)
    assert kept.values[5] == 90 and (kept.notes or {})["5"]["user"] == "anna"
    values[5] = 120
    dropped = validate_day(DayInput(series_id=1, day=WINTER, kind="interval", values=values,
                                    edits={5: Edit(value=90, note=note)}), CHAIN)
    assert dropped.values[5] == 120 and any(f.rule_id == "manual" for f in dropped.findings)


def test_a_chain_is_checked() -> None:
    with pytest.raises(chains.InvalidChain, match="used twice"):
        chains.parse([{"id": "c", "type": "completeness"}, {"id": "c", "type": "interpolate"}])
    with pytest.raises(chains.InvalidChain, match="completeness"):
        chains.parse([{"id": "i", "type": "interpolate"}])
    with pytest.raises(chains.InvalidChain, match="unknown status flags"):
        chains.parse([{"id": "c", "type": "completeness"}, {"id": "s", "type": "status", "actions": {"x": "flag"}}])
    with pytest.raises(chains.InvalidChain, match="Extra inputs"):
        chains.parse([{"id": "c", "type": "completeness", "bogus": 1}])
    assert next(r for r in chains.default_rules("LF") if r["id"] == "spike")["action"] == "flag"


def test_clock_shifts_the_ingest_noted_are_findings_on_their_slots() -> None:
    values: list[int | None] = [100] * 96
    values[20] = values[21] = None  # the reading at the end of slot 20 came 40 s late: not stored
    captured = (slot_start(WINTER, 21) + dt.timedelta(seconds=40)).isoformat()
    result = validate_day(DayInput(series_id=1, day=WINTER, kind="interval", values=values,
                                   raw_notes={"clock_shift": [{"captured": captured, "offset_s": 40}]}), CHAIN)
    (clock,) = [f for f in result.findings if f.rule_id == "clock"]
    assert clock.slots == (20,) and clock.data == {"clock_shift": [{"captured": captured, "offset_s": 40}]}
    assert result.values[20] == result.values[21] == 100  # the gap is interpolated as any other
