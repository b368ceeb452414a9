"""MSCONS interchanges (EDIFACT D.04B) as the German market exchanges meter data: load profiles of a
metering point (Lastgang Messlokation, Prüfidentifikator 13018), register readings (Zählerstand
Strom, 13017) and the cancellation of a reading that a corrected one replaces (Storno, 13006).
Segments are built as pydifact ``Segment`` objects and written by pydifact's ``Serializer``.

What this module follows and what it chose. The reference was a transcription of the MSCONS AHB
3.1f (MIG 2.4c), not the official publication; every [choice] is a decision taken here without
it. Confirm each against the EDI@Energy publications (edi-energy.de, "MSCONS MIG" and "MSCONS AHB",
the version valid on the message date) before relying on it.

* [choice] ``MSCONS_VERSION`` = 2.4c, the MIG whose AHB (3.1f, October 2025) the segment layout
  below follows. EDI@Energy was reported to make MIG 2.5 binding from 2026-10-01; that report is
  not confirmed here. If it holds, recipients refuse 2.4c after that date: check the 2.5 MIG's
  changes to the segments below, then change the constant (UNH DE0057 is the only place it goes).
* [choice] One interchange per recipient, application and batch; one UNH message per (series, day)
  for load profiles and per (series, reading) for registers. The AHB puts one metering point in a
  message and repeats UNH for more; a message per series and day (one LIN) keeps the version of
  every (series, day) in a message of its own, so a correction replaces exactly what changed.
* UNA ``:+.? '`` (decimal point "."). [choice] UNB syntax UNOC:3, sender and recipient with code
  list 500 (BDEW codes, IDs starting 99), 502 (DVGW, 98) or 14 (GS1, otherwise), the creation time
  in UTC as YYMMDD:HHMM, the interchange reference (DE0020: digits and capitals only), and the
  application reference DE0026 ``TL`` (load profiles) or ``VL`` (register readings, cancellations).
* UNH: message reference (its number in the interchange) and ``MSCONS:D:04B:UN:<MSCONS_VERSION>``.
* BGM+7 (Prozessdatenbericht), document number, message function 9 (original) or 1 (cancellation).
  DTM+137 message date. RFF+Z13 Prüfidentifikator. NAD+MS / NAD+MR with code list 293 (BDEW),
  332 (DVGW) or 9 (GS1). UNS+D. NAD+DP. LOC+172 with the metering point (MeLo, 33 characters).
* Load profile: SG6 DTM+163/164 the day (transmission period); LIN+1; PIA+5+<OBIS>:SRW; for every
  quarter hour QTY+<qualifier>:<kWh> with DTM+163/164 its start and end, then the STS of its notes.
* Every time is UTC with format 303 (CCYYMMDDHHMM+00, the AHB demands ZZZ = +00): a day is local
  midnight to local midnight (Europe/Berlin) in UTC steps, 96 quarter hours, 92 on the last Sunday
  of March and 100 on the last Sunday of October.
* QTY: the qualifier of the value's quality (``Quality.mscons``); the quantity in kWh (kvarh, kVAh)
  for Wh (varh, VAh) series, scaler applied, at most 3 decimals ([choice] rounded half-even beyond),
  without trailing zeros. The AHB allows only 220, 67 and Z18 in a load profile of electricity, a
  value for every quarter hour and no negative value: a day that is not so is not written
  (``load_profile_problem`` says why; the export holds it back until VEE has completed it).
* STS from the value's note (VEE and manual corrections write them), in the AHB's order; a note
  value is sent only if it is a code (up to three capitals or digits):
  Z33 plausibility note: note key ``plausibility``, on a true value or a substitute;
  Z32 substitution method: ``method``, on a substitute (67), where the AHB makes it mandatory: a
  substitute without a method code (a manual correction names "manual") is not written, the day is
  held back as ``substitute_without_method``;
  Z34 correction reason: ``correction``, or ``reason`` when the note's ``reason_qualifier`` is Z34
  (how a manual correction files its reason);
  Z40 reason for substitution, mandatory on a substitute: ``reason_code``, or ``reason`` if it is a
  code filed under Z40 (the default qualifier). [choice] Where the note names none (VEE writes its
  reasons as text), the reason is derived: ZA1 (Messwert unplausibel) for a value a rule rejected
  (the note has ``rejected_by``), Z75 (Kommunikationsstörung) for a value that never arrived.
* Register reading: SG7 RFF+MG with the meter's device ID where known; QTY; DTM+9 (reading date) for
  a true value, DTM+60 (time of the change) instead for a meter exchange's closing or opening
  reading, DTM+7 (time of use) always, all 303 in UTC; then the STS as above. [choice] LOC+172
  carries the metering point; the AHB names the SMGW configuration ID (RFF+AGK) instead for values
  from a smart meter gateway, which master data does not hold yet. [choice] The OBIS code's channel
  B = 0 (as a meter names it) is written as B = 1, the channel of EDI@Energy's OBIS code list.
* Corrections, as the AHB (chapter 12) prescribes per use case: a load profile (13018) is corrected
  by overwriting: a new message for the same metering point and transmission period with a later
  message date replaces the earlier one (the version tuple is LOC, SG6 DTM+163/164 and DTM+137;
  BGM DE1225 stays 9 and the message carries no reference segment); the values carry Z34 where the
  note names a correction reason. A register reading (13017) is corrected by cancellation and new
  sending: a 13006 message (BGM+7 with function 1, RFF+ACW with the document number of the
  cancelled message) followed by the new reading in the same interchange.
* [choice] Document numbers (BGM DE1004) and interchange references are given by the caller
  (``domain.meterdata.export``): ``GG`` and the export's number, so they are unique per sender.
* Not written: SG1 RFF+AGI (a reference to a request by ORDERS: exports here are not answers to
  one), SG4 CTA/COM contact, SG10 STS DE4405 tariff per value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from itertools import chain
from typing import Any, cast

from pydifact.control import Characters
from pydifact.segments import Segment
from pydifact.serializer import Serializer

from domain.meterdata.days import SLOT, day_end, day_start, slots_in
from domain.meterdata.quality import (
    STS_CORRECTION_REASON,
    STS_PLAUSIBILITY_NOTE,
    STS_SUBSTITUTION_METHOD,
    STS_SUBSTITUTION_REASON,
    Quality,
)

# The message version in UNH DE0057 (see the module docstring before changing it).
MSCONS_VERSION = "2.4c"

PID_LOAD_PROFILE = "13018"  # Lastgang Messlokation, Netzkoppelpunkt, Netzlokation
PID_METER_READING = "13017"  # Zählerstand (Strom)
PID_CANCELLATION = "13006"  # Messwert Storno
APPLICATION_LOAD_PROFILE = "TL"  # UNB DE0026: Lastgang, beliebiger Zeitraum
APPLICATION_METER_READING = "VL"  # UNB DE0026: Verrechnungsliste, Zählerstand
ENCODING = "latin-1"  # UNOC: ISO 8859-1

# The quality a load profile or register reading of electricity may carry (AHB 3.1f, SG10 QTY).
SENDABLE = frozenset({Quality.TRUE, Quality.SUBSTITUTE, Quality.PROVISIONAL})
# DLMS unit codes of energy in Wh and its kin: the market counts in kilo.
KILO_UNITS = frozenset({30, 31, 32})  # Wh, VAh, varh
EXCHANGE_REASONS = frozenset({"meter_exchange_closing", "meter_exchange_opening"})
CODE_RE = re.compile(r"^[A-Z0-9]{1,3}$")
REFERENCE_RE = re.compile(r"^[A-Z0-9]{1,14}$")
THREE_PLACES = Decimal("0.001")

CHARACTERS = Characters(decimal_point=".")
_SERIALIZER = Serializer(CHARACTERS)

# STS categories (DE9015) in the AHB's segment order.
STS_ORDER = (STS_PLAUSIBILITY_NOTE, STS_SUBSTITUTION_METHOD, STS_CORRECTION_REASON, STS_SUBSTITUTION_REASON)
# Reasons for substitution (STS Z40) where a note names none: a value that was delivered and rejected
# by a rule is implausible (ZA1 Messwert unplausibel); one that never arrived was not communicated
# (Z75 Kommunikationsstörung).
REASON_IMPLAUSIBLE = "ZA1"
REASON_NOT_RECEIVED = "Z75"


def code_lists(mp_id: str) -> tuple[str, str]:
    """(UNB DE0007, NAD DE3055) of a market partner ID: BDEW, DVGW or GS1 numbering."""
    if mp_id.startswith("99"):
        return "500", "293"
    if mp_id.startswith("98"):
        return "502", "332"
    return "14", "9"


def market_obis(obis: str) -> str:
    """The OBIS code as EDI@Energy's code list writes it: an electricity meter's channel 0 is 1."""
    return "1-1:" + obis[4:] if obis.startswith("1-0:") else obis


def edifact_time(at: dt.datetime) -> str:
    """DTM format 303 in UTC (escaping of "+" is the serializer's)."""
    return at.astimezone(dt.UTC).strftime("%Y%m%d%H%M+00")


def quantity(value: int, unit: int, scaler: int) -> str:
    """The stored integer as the market's quantity: kWh for Wh, at most three decimals."""
    exponent = scaler - 3 if unit in KILO_UNITS else scaler
    if exponent == -3:  # the common case, exact without Decimal
        whole, part = divmod(abs(value), 1000)
        text = f"{whole}.{part:03d}".rstrip("0").rstrip(".")
        return "-" + text if value < 0 and text != "0" else text
    amount = Decimal(value).scaleb(exponent)
    places = amount.as_tuple().exponent
    if isinstance(places, int) and places < -3:
        amount = amount.quantize(THREE_PLACES, rounding=ROUND_HALF_EVEN)
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True, kw_only=True)
class Parties:
    """Who sends an interchange to whom, when, under which reference."""

    sender: str  # market partner ID (13 digits)
    recipient: str
    reference: str  # UNB DE0020
    created: dt.datetime  # aware; UNB and DTM+137

    def __post_init__(self) -> None:
        if not REFERENCE_RE.match(self.reference):
            raise ValueError(f"interchange reference {self.reference!r}: up to 14 digits or capitals")


@dataclass(frozen=True, kw_only=True)
class LoadProfileDay:
    """One series' day for 13018: ``values[i]`` and ``quality[i]`` of quarter hour ``i``."""

    document: str  # BGM DE1004
    melo: str
    obis: str
    unit: int
    scaler: int
    day: dt.date
    values: Sequence[int | None]
    quality: bytes
    notes: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class RegisterReading:
    """One register reading for 13017."""

    document: str
    melo: str
    obis: str
    unit: int
    scaler: int
    at: dt.datetime  # time of use (Nutzungszeitpunkt)
    value: int | None
    quality: int
    meter_id: str | None = None
    reason: str | None = None  # the gateway's reason (docs/protocol.md 14.2); meter exchanges get DTM+60
    notes: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Cancellation:
    """A 13006 message cancelling the message ``cancels`` (its document number)."""

    document: str
    melo: str
    cancels: str


Message = LoadProfileDay | RegisterReading | Cancellation


def load_profile_problem(day: LoadProfileDay) -> str | None:
    """Why the AHB does not allow ``day`` as a load profile (None: it does)."""
    if len(day.values) != slots_in(day.day) or len(day.quality) != len(day.values):
        return "slot_count"
    if None in day.values:
        return "missing_values"
    qualities = set(day.quality)
    if not qualities <= SENDABLE:
        return "quality_not_sendable"
    if day.values and min(cast(Sequence[int], day.values)) < 0:
        return "negative_value"
    if Quality.SUBSTITUTE in qualities:
        for slot, q in enumerate(day.quality):
            if q == Quality.SUBSTITUTE and _code(_note(day.notes, slot), "method") is None:
                return "substitute_without_method"
    return None


def reading_problem(reading: RegisterReading) -> str | None:
    """Why the AHB does not allow ``reading`` as a register reading (None: it does)."""
    if reading.value is None:
        return "missing_values"
    if reading.quality not in SENDABLE:
        return "quality_not_sendable"
    if reading.value < 0:
        return "negative_value"
    if reading.quality == Quality.SUBSTITUTE and _code(reading.notes, "method") is None:
        return "substitute_without_method"
    return None


def _note(notes: Mapping[str, Any] | None, slot: int) -> Mapping[str, Any] | None:
    found = notes.get(str(slot)) if notes else None
    return found if isinstance(found, Mapping) else None


def _code(note: Mapping[str, Any] | None, key: str) -> str | None:
    value = note.get(key) if note else None
    return value if isinstance(value, str) and CODE_RE.match(value) else None


def _substitution_reason(note: Mapping[str, Any] | None) -> str:
    explicit = _code(note, "reason_code")
    if explicit is None and (note or {}).get("reason_qualifier", STS_SUBSTITUTION_REASON) == STS_SUBSTITUTION_REASON:
        explicit = _code(note, "reason")
    if explicit is not None:
        return explicit
    return REASON_IMPLAUSIBLE if note and note.get("rejected_by") else REASON_NOT_RECEIVED


def sts_of(note: Mapping[str, Any] | None, quality: int) -> tuple[tuple[str, str], ...]:
    """(category, code) of the STS segments a value with ``note`` carries, in the AHB's order."""
    found: dict[str, str] = {}
    plausibility = _code(note, "plausibility")
    if plausibility is not None and quality in (Quality.TRUE, Quality.SUBSTITUTE):
        found[STS_PLAUSIBILITY_NOTE] = plausibility
    if quality == Quality.SUBSTITUTE:
        method = _code(note, "method")
        if method is not None:
            found[STS_SUBSTITUTION_METHOD] = method
        found[STS_SUBSTITUTION_REASON] = _substitution_reason(note)
    correction = _code(note, "correction")
    if correction is None and (note or {}).get("reason_qualifier") == STS_CORRECTION_REASON:
        correction = _code(note, "reason")  # a manual correction names its reason for Z34
    if correction is not None:
        found[STS_CORRECTION_REASON] = correction
    return tuple((category, found[category]) for category in STS_ORDER if category in found)


def _segments(*segments: Segment) -> str:
    return _SERIALIZER.serialize(list(segments), with_una_header=False)


# The writing is memoised per distinct segment text: a day's quarter-hour times are the same for
# every series, and quantities, qualifiers and STS codes repeat. Each entry is still pydifact's
# serialization of its Segment objects, written once.

@lru_cache(maxsize=64)
def _interval_times(day: dt.date) -> tuple[str, ...]:
    start = day_start(day)
    return tuple(_segments(Segment("DTM", ["163", edifact_time(start + i * SLOT), "303"]),
                           Segment("DTM", ["164", edifact_time(start + (i + 1) * SLOT), "303"]))
                 for i in range(slots_in(day)))


@lru_cache(maxsize=64)
def _period(day: dt.date) -> str:
    return _segments(Segment("DTM", ["163", edifact_time(day_start(day)), "303"]),
                     Segment("DTM", ["164", edifact_time(day_end(day)), "303"]))


@lru_cache(maxsize=256)
def _sts(codes: tuple[tuple[str, str], ...]) -> str:
    return _segments(*(Segment("STS", category, "", code) for category, code in codes))


_QUALIFIERS = tuple(Quality(code).mscons for code in range(len(Quality)))
_QTY_CACHE_MAX = 100_000


@lru_cache(maxsize=16)
def _quantities(unit: int, scaler: int) -> dict[int, str]:
    """QTY segments of one unit and scaler, by ``value << 3 | quality`` (values are not negative)."""
    return {}


def _qty(table: dict[int, str], quality: int, value: int, unit: int, scaler: int) -> str:
    if len(table) >= _QTY_CACHE_MAX:
        table.clear()
    found = table[value << 3 | quality] = _segments(
        Segment("QTY", [_QUALIFIERS[quality], quantity(value, unit, scaler)]))
    return found


@lru_cache(maxsize=8192)
def _location(melo: str) -> str:
    return _segments(Segment("LOC", "172", melo))


@lru_cache(maxsize=64)
def _product(obis: str) -> str:
    return _segments(Segment("LIN", "1"), Segment("PIA", "5", [market_obis(obis), "SRW"]))


class InterchangeWriter:
    """Writes one interchange piece by piece: ``header()``, ``message()`` for each message, then
    ``trailer()``. Pieces are text; ``encode`` turns them into the bytes that are sent."""

    def __init__(self, parties: Parties, *, application: str, version: str = MSCONS_VERSION) -> None:
        self.parties = parties
        self.application = application
        self.version = version
        self.messages = 0
        sender_list, self._sender_nad = code_lists(parties.sender)
        recipient_list, self._recipient_nad = code_lists(parties.recipient)
        self._unb = Segment("UNB", ["UNOC", "3"], [parties.sender, sender_list], [parties.recipient, recipient_list],
                            [f"{parties.created.astimezone(dt.UTC):%y%m%d}",
                             f"{parties.created.astimezone(dt.UTC):%H%M}"], parties.reference, "", application)
        self._date = Segment("DTM", ["137", edifact_time(parties.created), "303"])
        self._parties: dict[str, str] = {}

    def header(self) -> str:
        return _SERIALIZER.serialize([self._unb], with_una_header=True)

    def trailer(self) -> str:
        return _segments(Segment("UNZ", str(self.messages), self.parties.reference))

    def _head(self, pid: str) -> str:
        """DTM+137 to NAD+DP: the same in every message of a Prüfidentifikator."""
        found = self._parties.get(pid)
        if found is None:
            found = self._parties[pid] = _segments(
                self._date, Segment("RFF", ["Z13", pid]),
                Segment("NAD", "MS", [self.parties.sender, "", self._sender_nad]),
                Segment("NAD", "MR", [self.parties.recipient, "", self._recipient_nad]),
                Segment("UNS", "D"), Segment("NAD", "DP"))
        return found

    def message(self, body: Message) -> str:
        self.messages += 1
        reference = str(self.messages)
        if isinstance(body, LoadProfileDay):
            begin, (pieces, count) = [Segment("BGM", "7", body.document, "9")], self._load_profile(body)
        elif isinstance(body, RegisterReading):
            begin, (pieces, count) = [Segment("BGM", "7", body.document, "9")], self._reading(body)
        else:
            begin, (pieces, count) = [], self._cancellation(body)
        unh = _segments(Segment("UNH", reference, ["MSCONS", "D", "04B", "UN", self.version]), *begin)
        unt = _segments(Segment("UNT", str(count + 2 + len(begin)), reference))
        return "".join((unh, *pieces, unt))

    def _load_profile(self, day: LoadProfileDay) -> tuple[list[str], int]:
        problem = load_profile_problem(day)
        if problem is not None:
            raise ValueError(f"{day.melo} {day.obis} {day.day}: not a load profile the AHB allows ({problem})")
        times = _interval_times(day.day)
        pieces = [self._head(PID_LOAD_PROFILE), _location(day.melo), _period(day.day), _product(day.obis)]
        count = 11 + 3 * len(day.values)
        unit, scaler = day.unit, day.scaler
        table = _quantities(unit, scaler)
        cached = table.get
        values = cast(Sequence[int], day.values)  # no None: checked above
        quantities = [cached(v << 3 | q) or _qty(table, q, v, unit, scaler)
                      for v, q in zip(values, day.quality, strict=True)]
        if not any(key.isdigit() for key in day.notes or ()):  # no value has a note: no STS
            pieces.extend(chain.from_iterable(zip(quantities, times, strict=True)))
            return pieces, count
        for slot, (qty, period) in enumerate(zip(quantities, times, strict=True)):
            pieces += (qty, period)
            codes = sts_of(_note(day.notes, slot), day.quality[slot])
            if codes:
                pieces.append(_sts(codes))
                count += len(codes)
        return pieces, count

    def _reading(self, reading: RegisterReading) -> tuple[list[str], int]:
        problem = reading_problem(reading)
        if problem is not None:
            raise ValueError(f"{reading.melo} {reading.obis} {reading.at}: not a reading the AHB allows ({problem})")
        q = Quality(reading.quality)
        tail = [Segment("LOC", "172", reading.melo)]
        if reading.meter_id:
            tail.append(Segment("RFF", ["MG", reading.meter_id]))
        tail += [Segment("LIN", "1"), Segment("PIA", "5", [market_obis(reading.obis), "SRW"]),
                 Segment("QTY", [q.mscons, quantity(reading.value or 0, reading.unit, reading.scaler)])]
        at = edifact_time(reading.at)
        exchange = reading.reason in EXCHANGE_REASONS
        if q == Quality.TRUE and not exchange:
            tail.append(Segment("DTM", ["9", at, "303"]))
        tail.append(Segment("DTM", ["7", at, "303"]))
        if exchange:
            tail.append(Segment("DTM", ["60", at, "303"]))
        tail += [Segment("STS", category, "", code) for category, code in sts_of(reading.notes, q)]
        return [self._head(PID_METER_READING), _segments(*tail)], 6 + len(tail)

    def _cancellation(self, body: Cancellation) -> tuple[list[str], int]:
        return [_segments(Segment("BGM", "7", body.document, "1"), self._date, Segment("RFF", ["ACW", body.cancels]),
                          Segment("RFF", ["Z13", PID_CANCELLATION]),
                          Segment("NAD", "MS", [self.parties.sender, "", self._sender_nad]),
                          Segment("NAD", "MR", [self.parties.recipient, "", self._recipient_nad]),
                          Segment("UNS", "D"), Segment("NAD", "DP"), Segment("LOC", "172", body.melo))], 9


def write(parties: Parties, application: str, messages: Iterable[Message], *,
          version: str = MSCONS_VERSION) -> Iterator[bytes]:
    """The interchange in chunks of bytes (one per message, header and trailer)."""
    writer = InterchangeWriter(parties, application=application, version=version)
    yield writer.header().encode(ENCODING)
    for body in messages:
        yield writer.message(body).encode(ENCODING)
    yield writer.trailer().encode(ENCODING)


def interchange(parties: Parties, application: str, messages: Iterable[Message], *,
                version: str = MSCONS_VERSION) -> bytes:
    return b"".join(write(parties, application, messages, version=version))
