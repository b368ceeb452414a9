"""MSCONS as it leaves: each case is planned from stored days or readings, compared byte for byte with
its golden file in tests/data/mscons/, and read back with pydifact segment by segment.

Regenerate the golden files after an intended change of the output (then read the diff of every
file before committing it):

    GRIDGATE_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/mdm/test_mdm_export_mscons.py -p no:cacheprovider

Export numbers and the message date are fixed (``Batch.export_id``, ``Batch.created``), so the
output depends on nothing but the data and the code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pydifact.exceptions import MissingImplementationWarning
from pydifact.segmentcollection import Interchange, Message
from pydifact.segments import Segment
from sqlalchemy.ext.asyncio import AsyncSession

from domain.meterdata import export
from domain.meterdata.days import SLOT, day_end, day_start
from domain.meterdata.mscons import MSCONS_VERSION, LoadProfileDay, load_profile_problem, sts_of
from domain.meterdata.quality import Quality
from tests.mdm.test_mdm_export import (
    CREATED,
    EDITED,
    LF,
    MSB,
    REGISTER,
    VALIDATED,
    batch,
    export_master_data,
    profile,
    series_of,
    substituted,
    write_day,
    write_reading,
)

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mscons"
REGENERATE = os.environ.get("GRIDGATE_REGENERATE_GOLDEN") == "1"
HEAD = ["BGM", "DTM", "RFF", "NAD", "NAD", "UNS", "NAD", "LOC"]


def edifact_time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y%m%d%H%M+00")


def check_golden(name: str, content: bytes) -> None:
    path = GOLDEN / f"{name}.edi"
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    expected = path.read_bytes()
    if content != expected:  # name the first segment that differs, not a 30 kB blob
        for n, (got, want) in enumerate(zip(content.split(b"'"), expected.split(b"'"), strict=False)):
            assert got == want, f"{path.name}, segment {n}: {got!r} != {want!r}"
        assert len(content) == len(expected), f"{path.name}: {len(content)} bytes, the golden file has {len(expected)}"


async def planned_content(session: AsyncSession, planned: export.Planned) -> bytes:
    assert planned.export_id is not None
    content_type, content = await export.content(session, planned.export_id)
    assert content_type == "application/edifact"
    return content


def read(content: bytes, *, application: str, reference: str, created: dt.datetime = CREATED) -> list[Message]:
    """The interchange's envelope checked, its messages (each with UNH and UNT checked)."""
    text = content.decode("latin-1")
    assert text.startswith("UNA:+.? '")
    with warnings.catch_warnings():  # pydifact ships no syntax 3 directory to validate UNB against
        warnings.simplefilter("ignore", MissingImplementationWarning)
        ic = Interchange.from_str(text)
    assert ic.syntax_identifier == ("UNOC", 3)
    assert (ic.sender, ic.recipient) == ([MSB, "500"], [LF, "500"])
    assert (ic.control_reference, ic.extra_header_elements) == (reference, ["", application])
    assert ic.timestamp == created.replace(tzinfo=None)
    messages = list(ic.get_messages())
    unz = text.rstrip("'").rsplit("'", 1)[1]
    assert unz == f"UNZ+{len(messages)}+{reference}"
    for n, (message, unt) in enumerate(zip(messages, ic.get_segments("UNT"), strict=True), 1):
        assert (message.reference_number, message.identifier) == (str(n), ["MSCONS", "D", "04B", "UN", MSCONS_VERSION])
        assert unt.elements == [str(len(message.segments) + 2), str(n)]
    return messages


def check_head(message: Message, *, pid: str, melo: str, document: str, created: dt.datetime = CREATED,
               function: str = "9") -> list[Segment]:
    """BGM to LOC as every message of a Prüfidentifikator has them; returns the segments after LOC."""
    segments = message.segments
    assert [s.tag for s in segments[:8]] == HEAD
    bgm, dtm, rff, ms, mr, uns, dp, loc = segments[:8]
    assert bgm.elements == ["7", document, function]
    assert dtm.elements == [["137", edifact_time(created), "303"]]
    assert rff.elements == [["Z13", pid]]
    assert (ms.elements, mr.elements) == (["MS", [MSB, "", "293"]], ["MR", [LF, "", "293"]])
    assert (uns.elements, dp.elements, loc.elements) == (["D"], ["DP"], ["172", melo])
    return segments[8:]


@dataclass(frozen=True)
class Slot:
    qualifier: str
    amount: Decimal
    start: str
    end: str
    sts: list[tuple[str, str]]


def load_profile(message: Message, *, pid: str = "13018", melo: str, document: str, day: dt.date,
                 created: dt.datetime = CREATED) -> list[Slot]:
    """Check a load profile message down to the quantities; returns its quarter hours."""
    rest = check_head(message, pid=pid, melo=melo, document=document, created=created)
    period, lin, pia, body = rest[:2], rest[2], rest[3], rest[4:]
    assert [p.elements for p in period] == [[["163", edifact_time(day_start(day)), "303"]],
                                            [["164", edifact_time(day_end(day)), "303"]]]
    assert (lin.elements, pia.elements) == (["1"], ["5", ["1-1:1.29.0", "SRW"]])
    slots: list[Slot] = []
    for segment in body:
        first = segment.elements[0]
        if segment.tag == "QTY":
            assert isinstance(first, list)
            qualifier, amount = first
            slots.append(Slot(qualifier, Decimal(amount), "", "", []))
        elif segment.tag == "DTM":
            assert isinstance(first, list) and first[2] == "303"
            slot = slots[-1]
            slots[-1] = (dataclasses.replace(slot, start=first[1]) if first[0] == "163"
                         else dataclasses.replace(slot, end=first[1]))
        else:
            assert segment.tag == "STS" and segment.elements[1] == ""
            slots[-1].sts.append((str(first), str(segment.elements[2])))
    start = day_start(day)
    assert [(s.start, s.end) for s in slots] == [(edifact_time(start + i * SLOT), edifact_time(start + (i + 1) * SLOT))
                                                 for i in range(len(slots))]
    assert slots[-1].end == edifact_time(day_end(day))
    return slots


def kwh(values: list[int | None]) -> list[Decimal]:
    return [Decimal(v or 0) / 1000 for v in values]


async def test_a_normal_day_of_two_metering_points(mdm_session: AsyncSession) -> None:
    s = mdm_session
    places = await export_master_data(s)
    day = dt.date(2026, 1, 15)
    for n, place in enumerate(places):
        await write_day(s, await series_of(s, place), day, profile(day, base=100 + 1000 * n))
    content = await planned_content(s, await export.plan(s, batch("g1", day, export_id=9_100_001)))
    check_golden("normal_day", content)
    messages = read(content, application="TL", reference="GG000009100001")
    for n, (message, place) in enumerate(zip(messages, places, strict=True)):
        slots = load_profile(message, melo=place.melo, document=f"GG000009100001M{n + 1}", day=day)
        assert len(slots) == 96 and {s.qualifier for s in slots} == {"220"}
        assert [s.amount for s in slots] == kwh(profile(day, base=100 + 1000 * n))
        assert all(not s.sts for s in slots)
    assert slots[0].start == "202601142300+00"  # local midnight is 23:00 UTC in winter


async def test_the_spring_day_has_92_quarter_hours(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    day = dt.date(2026, 3, 29)
    await write_day(s, await series_of(s, place), day, profile(day))
    content = await planned_content(s, await export.plan(s, batch("g2", day, export_id=9_100_002)))
    check_golden("dst_spring", content)
    (message,) = read(content, application="TL", reference="GG000009100002")
    slots = load_profile(message, melo=place.melo, document="GG000009100002M1", day=day)
    assert len(slots) == 92
    # 02:00 local does not exist: 00:45 UTC (02:45 CEST) follows 00:30 UTC (01:30 CET) seamlessly.
    assert (slots[0].start, slots[-1].end) == ("202603282300+00", "202603292200+00")
    assert [s.amount for s in slots] == kwh(profile(day))


async def test_the_autumn_day_has_100_quarter_hours(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    day = dt.date(2026, 10, 25)
    await write_day(s, await series_of(s, place), day, profile(day))
    content = await planned_content(s, await export.plan(s, batch("g3", day, export_id=9_100_003)))
    check_golden("dst_autumn", content)
    (message,) = read(content, application="TL", reference="GG000009100003")
    slots = load_profile(message, melo=place.melo, document="GG000009100003M1", day=day)
    assert len(slots) == 100
    # The hour from 02:00 to 03:00 local comes twice: 00:00 to 01:00 UTC (CEST) and 01:00 to 02:00 UTC (CET).
    assert (slots[0].start, slots[8].start, slots[12].start, slots[-1].end) == (
        "202610242200+00", "202610250000+00", "202610250100+00", "202610252300+00")


async def test_substitutes_carry_method_and_reason(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    day = dt.date(2026, 2, 10)
    raw = profile(day)
    raw[20] = raw[21] = None
    series = await series_of(s, place)
    await write_day(s, series, day, raw)
    values, quality, notes = substituted(raw, [20, 21])
    values[50:60] = [0] * 10
    qualities = bytearray(quality)
    qualities[40] = Quality.PROVISIONAL
    notes["7"] = {"rule": "spike", "plausibility": "Z86"}  # a true value checked and found plausible
    notes["8"] = {"rule": "spike", "reason": "a text is no code"}  # kept in the database, not sent
    notes["clock_shift"] = [{"captured": "2026-02-10T10:00:20+00:00", "offset_s": 20}]  # a day note: not a slot
    await write_day(s, series, day, values, layer=VALIDATED, quality=bytes(qualities), notes=notes)
    planned = await export.plan(s, batch("g4", day, export_id=9_100_004))
    assert (planned.items, planned.corrections) == (1, 0)  # the raw version never went out
    content = await planned_content(s, planned)
    check_golden("substitutes", content)
    (message,) = read(content, application="TL", reference="GG000009100004")
    slots = load_profile(message, melo=place.melo, document="GG000009100004M1", day=day)
    assert (slots[20].qualifier, slots[20].sts) == ("67", [("Z32", "Z92"), ("Z40", "Z75")])
    assert slots[21].sts == [("Z32", "Z92"), ("Z40", "Z75")]
    assert (slots[40].qualifier, slots[40].sts) == ("Z18", [])
    assert (slots[7].qualifier, slots[7].sts) == ("220", [("Z33", "Z86")])
    assert slots[8].sts == [] and slots[55].amount == 0
    assert sum(1 for x in slots if x.sts) == 3


async def test_a_changed_day_goes_again_as_a_correction(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    day = dt.date(2026, 2, 11)
    series = await series_of(s, place)
    values = profile(day)
    await write_day(s, series, day, values)
    original = await export.plan(s, batch("g5a", day, export_id=9_100_005))
    assert original.export_id is not None
    await export.release(s, original.export_id, CREATED)
    # A meter fault found later: an operator replaces four quarter hours (edited layer) and names why.
    fixed, quality, notes = substituted(values, [60, 61, 62, 63], method="ZJ2", reason="Z81", correction="Z81")
    fixed[60:64] = [400, 410, 420, 430]
    await write_day(s, series, day, fixed, layer=EDITED, quality=quality, notes=notes)
    later = CREATED + dt.timedelta(days=1)
    planned = await export.plan(s, dataclasses.replace(batch("g5b", day, export_id=9_100_006), created=later))
    assert (planned.items, planned.corrections) == (1, 1)
    content = await planned_content(s, planned)
    check_golden("correction", content)
    (message,) = read(content, application="TL", reference="GG000009100006", created=later)
    # Overwriting (AHB chapter 12 for 13018): the same metering point and transmission period, a later
    # message date, message function 9, the corrected values with their correction reason.
    slots = load_profile(message, melo=place.melo, document="GG000009100006M1", day=day, created=later)
    assert [x.sts for x in slots[60:64]] == [[("Z32", "ZJ2"), ("Z34", "Z81"), ("Z40", "Z81")]] * 4
    assert [x.amount for x in slots[59:65]] == kwh([fixed[59], 400, 410, 420, 430, fixed[64]])
    (item,) = await export.items_of(s, 9_100_006)
    assert (item.version, item.corrects) == (2, 1)


async def test_register_readings(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    series = await series_of(s, place, REGISTER, kind="register", period_s=0)
    day = dt.date(2026, 2, 1)
    midnight = day_start(day)
    await write_reading(s, series, midnight, 12_345_678)
    exchange = midnight + dt.timedelta(hours=10, minutes=15)
    await write_reading(s, series, exchange, 12_350_000, reason="meter_exchange_closing")
    content = await planned_content(s, await export.plan(s, batch("g6", day, what="readings", export_id=9_100_007)))
    check_golden("register_readings", content)
    first, second = read(content, application="VL", reference="GG000009100007")
    tail = check_head(first, pid="13017", melo=place.melo, document="GG000009100007M1")
    assert [x.elements for x in tail] == [
        [["MG", "1EMH0099000001"]], ["1"], ["5", ["1-1:1.8.0", "SRW"]], [["220", "12345.678"]],
        [["9", "202601312300+00", "303"]], [["7", "202601312300+00", "303"]]]
    tail = check_head(second, pid="13017", melo=place.melo, document="GG000009100007M2")
    # A meter exchange's closing reading: the time of the change (DTM+60) instead of a reading date.
    assert [x.elements for x in tail[3:]] == [
        [["220", "12350"]], [["7", "202602010915+00", "303"]], [["60", "202602010915+00", "303"]]]


async def test_a_changed_reading_is_cancelled_and_sent_again(mdm_session: AsyncSession) -> None:
    s = mdm_session
    place, _ = await export_master_data(s)
    series = await series_of(s, place, REGISTER, kind="register", period_s=0)
    day = dt.date(2026, 3, 1)
    midnight = day_start(day)
    await write_reading(s, series, midnight, 22_000_000)
    first = await export.plan(s, batch("g7a", day, what="readings", export_id=9_100_008))
    assert first.export_id is not None
    await export.release(s, first.export_id, CREATED)
    await write_reading(s, series, midnight, 22_000_500, layer=EDITED, quality=Quality.SUBSTITUTE,
                        notes={"method": "ZJ2", "reason": "ZA4", "correction": "ZA4"})
    later = CREATED + dt.timedelta(days=1)
    planned = await export.plan(s, dataclasses.replace(batch("g7b", day, what="readings", export_id=9_100_009),
                                                       created=later))
    content = await planned_content(s, planned)
    check_golden("register_correction", content)
    storno, reading = read(content, application="VL", reference="GG000009100009", created=later)
    # Cancellation and new sending (AHB chapter 12 for 13017): 13006 names the cancelled message.
    assert [x.tag for x in storno.segments] == ["BGM", "DTM", "RFF", "RFF", "NAD", "NAD", "UNS", "NAD", "LOC"]
    assert storno.segments[0].elements == ["7", "GG000009100009S1", "1"]
    assert [x.elements for x in storno.segments[2:4]] == [[["ACW", "GG000009100008M1"]], [["Z13", "13006"]]]
    assert storno.segments[8].elements == ["172", place.melo]
    tail = check_head(reading, pid="13017", melo=place.melo, document="GG000009100009M1", created=later)
    assert [x.elements for x in tail[3:]] == [
        [["67", "22000.5"]], [["7", "202602282300+00", "303"]],
        ["Z32", "", "ZJ2"], ["Z34", "", "ZA4"], ["Z40", "", "ZA4"]]


def test_the_notes_vee_writes_become_sts_codes() -> None:
    interpolated = {"rule": "interpolate", "method": "Z92", "reason": "linear between neighbours, gap up to 2 h"}
    assert sts_of(interpolated, Quality.SUBSTITUTE) == (("Z32", "Z92"), ("Z40", "Z75"))  # never arrived
    rejected = {**interpolated, "rejected_by": "spike", "was": 9000, "why": "above 4 x the robust maximum"}
    assert sts_of(rejected, Quality.SUBSTITUTE) == (("Z32", "Z92"), ("Z40", "ZA1"))  # implausible
    coded = {"method": "ZJ2", "reason": "Z77", "plausibility": "Z86"}
    assert sts_of(coded, Quality.SUBSTITUTE) == (("Z33", "Z86"), ("Z32", "ZJ2"), ("Z40", "Z77"))
    assert sts_of(coded, Quality.PROVISIONAL) == ()  # Z33 only on true values and substitutes
    manual = {"rule": "manual", "method": "manual", "reason": "ZA7", "reason_qualifier": "Z34"}
    assert sts_of({**manual, "method": "ZJ2"}, Quality.SUBSTITUTE) == (("Z32", "ZJ2"), ("Z34", "ZA7"),
                                                                      ("Z40", "Z75"))
    day = dt.date(2026, 2, 12)
    quality = bytearray(Quality.TRUE for _ in range(96))
    quality[5] = Quality.SUBSTITUTE
    lp = LoadProfileDay(document="D1", melo="DE00000999990GRIDGATEEXPORT000000", obis="1-1:1.29.0", unit=30,
                        scaler=0, day=day, values=[1] * 96, quality=bytes(quality), notes={"5": manual})
    assert load_profile_problem(lp) == "substitute_without_method"  # the AHB has no code for "manual"
    assert load_profile_problem(dataclasses.replace(lp, notes={"5": interpolated})) is None
    assert load_profile_problem(dataclasses.replace(lp, values=[1] * 95 + [-1])) == "negative_value"
    assert load_profile_problem(dataclasses.replace(lp, values=[1] * 95)) == "slot_count"
    quality[6] = Quality.PROPOSED
    assert load_profile_problem(dataclasses.replace(lp, quality=bytes(quality))) == "quality_not_sendable"
