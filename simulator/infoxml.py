"""The XML of a meter data delivery to an EMT (docs/protocol.md 14.2), written by hand.

The simulator's own encoder, on purpose: it shares nothing with the product's parser, so a
disagreement about the wire format shows up as a refused delivery instead of being hidden. Anl. II
COSEM skeleton in namespace ``urn:k461-dke-de:cor-1`` (``cosem`` > ``ldevs`` > ``ldev`` > ``objects``
> ``object`` > ``attributes`` > ``attribute``), typed data elements, the delivery's own facts in
``gg:`` attributes of the root (``urn:gridgate:mdm:1``). Integers are decimal, ``octet-string`` is
lower-case hex, ``date-time`` ISO 8601 UTC with ``Z``; a value the gateway has not is an empty
element.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

NS_COSEM = "urn:k461-dke-de:cor-1"
NS_GG = "urn:gridgate:mdm:1"

LOAD_PROFILE = "1-0:99.1.0"  # class 7: TAF 7 register profile
GRID_PROFILE = "1-0:99.97.0"  # class 7: TAF 10 grid state values
CLOCK = "0-0:1.0.0"  # class 8, attribute 2: the first column of a profile
STATUS = "0-0:97.97.0"  # class 1, attribute 2: the last column, the combined status word

CLASS_DATA, CLASS_REGISTER, CLASS_EXTENDED_REGISTER, CLASS_PROFILE, CLASS_CLOCK = 1, 3, 4, 7, 8
INTEGER_TYPES = frozenset({"integer", "long", "long-unsigned", "double-long", "double-long-unsigned", "long64",
                           "long64-unsigned", "enum"})


def obis_hex(obis: str) -> str:
    """``1-0:1.8.0`` -> ``0100010800ff`` (the 6 bytes A..F, F = 255 when not written)."""
    a, rest = obis.split("-", 1)
    b, rest = rest.split(":", 1)
    parts = [int(a), int(b), *(int(p) for p in rest.split("."))]
    if len(parts) == 5:
        parts.append(255)
    if len(parts) != 6 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"OBIS code {obis!r} not of the form A-B:C.D.E[.F]")
    return bytes(parts).hex()


def date_time(t: float) -> str:
    return dt.datetime.fromtimestamp(round(t), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def created_time(t: float) -> str:
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def typed(kind: str, value: object | None) -> str:
    """One typed data element; ``None`` gives the empty element (no value)."""
    if value is None or value == "":
        return f"<{kind}/>"
    return f"<{kind}>{escape(str(value))}</{kind}>"


def structure(*items: str) -> str:
    return "<structure>" + "".join(items) + "</structure>"


def array(items: Sequence[str]) -> str:
    return f'<array count="{len(items)}">' + "".join(items) + "</array>"


def attribute(n: int, content: str) -> str:
    return f'<attribute id="{n}">{content}</attribute>'


def cosem_object(class_id: int, obis: str, attributes: Sequence[str]) -> str:
    version = 1 if class_id == CLASS_PROFILE else 0
    return (f'<object class-id="{class_id}" version="{version}" id="{obis_hex(obis)}">'
            f'<attributes count="{len(attributes)}">' + "".join(attributes) + "</attributes></object>")


def scaler_unit(scaler: int, unit: int) -> str:
    return structure(typed("integer", scaler), typed("enum", unit))


@dataclass(frozen=True)
class Column:
    """A value column of a profile: the register object (class, OBIS), its scaler/unit and the
    typed-data element its values are written in."""

    obis: str
    scaler: int
    unit: int
    kind: str  # long64-unsigned, double-long, double-long-unsigned, ...
    class_id: int = CLASS_EXTENDED_REGISTER


def capture_object(class_id: int, obis: str, attr: int) -> str:
    return structure(typed("long-unsigned", class_id), typed("octet-string", obis_hex(obis)),
                     typed("integer", attr), typed("long-unsigned", 0))


def register_objects(columns: Sequence[Column]) -> list[str]:
    """One object per column carrying its scaler and unit (attribute 3)."""
    return [cosem_object(c.class_id, c.obis, [attribute(3, scaler_unit(c.scaler, c.unit))]) for c in columns]


def profile_generic(obis: str, period_s: int, columns: Sequence[Column],
                    entries: Sequence[tuple[float, Sequence[int | None], int]]) -> str:
    """A profile generic object: capture objects (clock, the columns, the status word), capture
    period, and the buffer with one ``structure`` per entry ``(capture time, values, status)``."""
    capture = [capture_object(CLASS_CLOCK, CLOCK, 2), *(capture_object(c.class_id, c.obis, 2) for c in columns),
               capture_object(CLASS_DATA, STATUS, 2)]
    buffer = [structure(typed("date-time", date_time(t)), *(typed(c.kind, v) for c, v in zip(columns, values,
                                                                                            strict=True)),
                        typed("long64-unsigned", status))
              for t, values, status in entries]
    return cosem_object(CLASS_PROFILE, obis, [
        attribute(3, array(capture)),
        attribute(4, typed("double-long-unsigned", period_s)),
        attribute(2, array(buffer)),
    ])


def extended_register(column: Column, value: int | None, status: int, captured: float) -> str:
    """An extended register (class 4): value, scaler/unit, status word, capture time."""
    return cosem_object(CLASS_EXTENDED_REGISTER, column.obis, [
        attribute(2, typed(column.kind, value)),
        attribute(3, scaler_unit(column.scaler, column.unit)),
        attribute(4, typed("long64-unsigned", status)),
        attribute(5, typed("date-time", date_time(captured))),
    ])


def document(*, gateway: str, recipient: str, profile: str, taf: int, reason: str, created: float, meter: str,
             objects: Sequence[str]) -> bytes:
    """The whole payload: one logical device (the meter) with ``objects``."""
    root = (f'<cosem xmlns="{NS_COSEM}" xmlns:gg="{NS_GG}" gg:gateway={quoteattr(gateway)} '
            f'gg:recipient={quoteattr(recipient)} gg:profile={quoteattr(profile)} gg:taf="{int(taf)}" '
            f'gg:reason={quoteattr(reason)} gg:created="{created_time(created)}">')
    ldev = f"{meter.lower()}.sm"
    body = (f'<ldevs count="1"><ldev id={quoteattr(ldev)}><objects count="{len(objects)}">' + "".join(objects)
            + "</objects></ldev></ldevs></cosem>")
    return (root + body).encode()
