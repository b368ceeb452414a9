"""The XML of a meter data delivery (docs/protocol.md 14.2) read into a
:class:`~domain.meterdata.delivery.Delivery`. The payload comes from a gateway: it is parsed with
defusedxml (no DTD, no entities, no external references) and everything the receiver relies on is
checked; anything else is :class:`PayloadError` (reason ``malformed``). Unknown objects and
attributes are ignored (additive evolution, as in section 5.1)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any, TypeVar

from defusedxml import ElementTree as SafeET

from core.ids import InvalidId, parse_device_id, validate_market_partner_id
from domain.meterdata.delivery import GRID_PROFILE, LOAD_PROFILE, REASONS, Delivery, Entry, MeterData, Profile, Register

COSEM_NS = "urn:k461-dke-de:cor-1"
MDM_NS = "urn:gridgate:mdm:1"
_C = f"{{{COSEM_NS}}}"
_G = f"{{{MDM_NS}}}"

CLOCK = (8, "0-0:1.0.0")  # class, logical name of the clock column of a profile
STATUS_COLUMN = "0-0:97.97.0"  # the combined status word of an entry [choice, protocol 14.2]
PROFILE_CLASS, REGISTER_CLASS = 7, 4
PROFILES = (LOAD_PROFILE, GRID_PROFILE)

# COSEM typed data: element name -> (minimum, maximum) of its integer values.
INTEGERS: dict[str, tuple[int, int]] = {
    "integer": (-(2**7), 2**7 - 1), "long": (-(2**15), 2**15 - 1), "long-unsigned": (0, 2**16 - 1),
    "double-long": (-(2**31), 2**31 - 1), "double-long-unsigned": (0, 2**32 - 1),
    "long64": (-(2**63), 2**63 - 1), "long64-unsigned": (0, 2**64 - 1), "enum": (0, 255),
}
DB_MAX = 2**63 - 1  # values and status words are stored as bigint


class PayloadError(ValueError):
    """The payload is not a delivery of the documented shape (reason ``malformed``)."""


Value = int | bytes | dt.datetime | list[Any] | None


def obis_of(logical_name: bytes) -> str:
    """6 bytes A..F -> ``A-B:C.D.E`` (F = 255 omitted) or ``A-B:C.D.E.F``."""
    if len(logical_name) != 6:
        raise PayloadError(f"logical name of {len(logical_name)} bytes, expected 6")
    a, b, c, d, e, f = logical_name
    return f"{a}-{b}:{c}.{d}.{e}" + ("" if f == 255 else f".{f}")


def parse(data: bytes) -> Delivery:
    """The delivery in ``data`` (the opened CMS payload). Raises PayloadError."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception as err:  # ParseError, DefusedXmlException, ValueError, UnicodeDecodeError
        raise PayloadError(f"not well-formed XML: {str(err)[:200]}") from None
    if root.tag != _C + "cosem":
        raise PayloadError(f"root element is {root.tag!r}, expected cosem in {COSEM_NS}")
    gateway = _device(_root_attr(root, "gateway"), gateway=True)
    recipient = _root_attr(root, "recipient")
    try:
        validate_market_partner_id(recipient)
    except InvalidId:
        raise PayloadError(f"gg:recipient {recipient!r} is not a market partner ID") from None
    taf = _int(_root_attr(root, "taf"), "gg:taf")
    if not 1 <= taf <= 14:
        raise PayloadError(f"gg:taf {taf} is not a TAF")
    reason = _root_attr(root, "reason")
    if reason not in REASONS:
        raise PayloadError(f"gg:reason {reason!r} is not one of {', '.join(REASONS)}")
    profile_id = _root_attr(root, "profile")
    if not 0 < len(profile_id) <= 120:
        raise PayloadError("gg:profile must have 1 to 120 characters")
    created = _datetime(_root_attr(root, "created"), "gg:created")
    ldevs = _one(root, "ldevs")
    meters = tuple(_meter(ldev, threshold=reason == "threshold") for ldev in ldevs.findall(_C + "ldev"))
    ids = [m.meter_id for m in meters]
    if len(set(ids)) != len(ids):
        raise PayloadError("a meter appears in two logical devices")
    return Delivery(gateway_id=gateway, recipient=recipient, profile_id=profile_id, taf=taf, reason=reason,
                    created=created, meters=meters)


def _root_attr(root: ET.Element, name: str) -> str:
    value = root.get(_G + name)
    if value is None:
        raise PayloadError(f"root element lacks gg:{name}")
    return value


def _one(el: ET.Element, tag: str) -> ET.Element:
    found = el.findall(_C + tag)
    if len(found) != 1:
        raise PayloadError(f"<{_local(el)}> must hold exactly one <{tag}>, holds {len(found)}")
    return found[0]


def _local(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else "?"


def _int(text: str | None, what: str) -> int:
    try:
        return int((text or "").strip(), 10)
    except ValueError:
        raise PayloadError(f"{what}: {text!r} is not an integer") from None


def _datetime(text: str | None, what: str) -> dt.datetime:
    value = (text or "").strip()
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"{what}: {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None or parsed.utcoffset() != dt.timedelta(0):
        raise PayloadError(f"{what}: {value!r} is not UTC (Z)")
    return parsed.astimezone(dt.UTC)


def _device(text: str, *, gateway: bool) -> str:
    try:
        return str(parse_device_id(text.strip().upper(), gateway=gateway))
    except InvalidId as err:
        raise PayloadError(err.message) from None


def typed(el: ET.Element) -> Value:
    """A COSEM typed data element as a Python value (an empty integer element: None)."""
    if not isinstance(el.tag, str) or not el.tag.startswith(_C):
        raise PayloadError(f"data element {el.tag!r} is not in {COSEM_NS}")
    name = _local(el)
    text = (el.text or "").strip()
    if name in INTEGERS:
        if not text:
            return None
        value = _int(text, f"<{name}>")
        low, high = INTEGERS[name]
        if not low <= value <= high:
            raise PayloadError(f"<{name}> {value} out of range")
        return value
    if name == "octet-string":
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise PayloadError(f"<octet-string> {text[:40]!r} is not hex") from None
    if name == "date-time":
        return _datetime(text, "<date-time>") if text else None
    if name in ("structure", "array"):
        items = [typed(child) for child in el]
        count = el.get("count")
        if name == "array" and count is not None and _int(count, "array count") != len(items):
            raise PayloadError(f"<array count={count}> holds {len(items)} elements")
        return items
    raise PayloadError(f"unknown data type <{name}>")


def _attributes(obj: ET.Element) -> dict[int, Value]:
    out: dict[int, Value] = {}
    for attr in _one(obj, "attributes").findall(_C + "attribute"):
        index = _int(attr.get("id"), "attribute id")
        kids = list(attr)
        if len(kids) != 1:
            raise PayloadError(f"attribute {index} must hold one data element, holds {len(kids)}")
        if index in out:
            raise PayloadError(f"attribute {index} appears twice")
        out[index] = typed(kids[0])
    return out


T = TypeVar("T")


def _expect(value: Value, kind: type[T], what: str) -> T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PayloadError(f"{what} is not {kind.__name__}")
    return value


def _stored_int(value: Value, what: str) -> int | None:
    if value is None:
        return None
    number = _expect(value, int, what)
    if number > DB_MAX:
        raise PayloadError(f"{what} {number} exceeds the stored range")
    return number


def _meter(ldev: ET.Element, *, threshold: bool) -> MeterData:
    ldev_id = ldev.get("id") or ""
    if not ldev_id.lower().endswith(".sm"):
        raise PayloadError(f"ldev id {ldev_id!r} is not <meter ID>.sm")
    meter_id = _device(ldev_id[:-3], gateway=False)
    scaler_units: dict[str, tuple[int, int]] = {}
    profiles: list[Profile] = []
    registers: list[Register] = []
    for obj in _one(ldev, "objects").findall(_C + "object"):
        class_id = _int(obj.get("class-id"), "class-id")
        logical_name = obj.get("id") or ""
        try:
            obis = obis_of(bytes.fromhex(logical_name))
        except ValueError:
            raise PayloadError(f"object id {logical_name!r} is not 12 hex digits") from None
        if class_id == REGISTER_CLASS:
            register = _register(obis, _attributes(obj), scaler_units)
            if register is not None:
                registers.append(register)
        elif class_id == PROFILE_CLASS and obis in PROFILES:
            profiles.append(_profile(obis, _attributes(obj), threshold=threshold and obis == GRID_PROFILE))
    return MeterData(meter_id=meter_id, scaler_units=scaler_units, profiles=tuple(profiles),
                     registers=tuple(registers))


def _register(obis: str, attrs: dict[int, Value], scaler_units: dict[str, tuple[int, int]]) -> Register | None:
    """An extended register: attribute 3 gives scaler and unit (of a profile column too); with a
    value (2) and a capture time (5) it is a reading."""
    if 3 in attrs:
        pair = _expect(attrs[3], list, f"{obis} attribute 3")
        if len(pair) != 2:
            raise PayloadError(f"{obis} attribute 3 must be structure{{scaler, unit}}")
        scaler_units[obis] = (_expect(pair[0], int, f"{obis} scaler"), _expect(pair[1], int, f"{obis} unit"))
    if 2 not in attrs and 5 not in attrs:
        return None
    if 2 not in attrs or 5 not in attrs or obis not in scaler_units:
        raise PayloadError(f"register {obis} needs value (2), scaler/unit (3) and capture time (5)")
    scaler, unit = scaler_units[obis]
    return Register(obis=obis, value=_stored_int(attrs[2], f"{obis} value"), scaler=scaler, unit=unit,
                    status=_stored_int(attrs.get(4), f"{obis} status") or 0,
                    captured_at=_expect(attrs[5], dt.datetime, f"{obis} capture time"))


def _profile(obis: str, attrs: dict[int, Value], *, threshold: bool) -> Profile:
    for needed in (2, 3, 4):
        if needed not in attrs:
            raise PayloadError(f"profile {obis} lacks attribute {needed}")
    columns: list[tuple[int, str]] = []
    for col in _expect(attrs[3], list, f"{obis} capture objects"):
        fields = _expect(col, list, f"{obis} capture object")
        if len(fields) != 4:
            raise PayloadError(f"{obis}: a capture object is structure{{class, logical name, attribute, data index}}")
        columns.append((_expect(fields[0], int, "capture object class"),
                        obis_of(_expect(fields[1], bytes, "capture object logical name"))))
    if not columns or columns[0] != CLOCK:
        raise PayloadError(f"{obis}: the first column must be the clock 0-0:1.0.0")
    has_status = len(columns) > 1 and columns[-1][1] == STATUS_COLUMN
    values = [name for _, name in columns[1:len(columns) - has_status]]
    if not values:
        raise PayloadError(f"{obis}: no value column")
    period = _expect(attrs[4], int, f"{obis} capture period")
    if period <= 0:
        raise PayloadError(f"{obis}: capture period {period}")
    entries = []
    for raw in _expect(attrs[2], list, f"{obis} buffer"):
        entry = _expect(raw, list, f"{obis} buffer entry")
        if len(entry) != len(columns):
            raise PayloadError(f"{obis}: an entry has {len(entry)} elements for {len(columns)} columns")
        end = _expect(entry[0], dt.datetime, f"{obis} entry time")
        cells = entry[1:len(entry) - has_status]
        status = _stored_int(entry[-1], f"{obis} status") if has_status else None
        entries.append(Entry(end=end, values=tuple(_stored_int(v, f"{obis} value") for v in cells),
                             status=status or 0))
    ends = [e.end for e in entries]
    if len(set(ends)) != len(ends):
        raise PayloadError(f"{obis}: two entries for the same time")
    return Profile(obis=obis, period_s=period, columns=tuple(values), entries=tuple(entries), threshold=threshold)
