"""gridgate's XML encoding of the admin protocol (docs/protocol.md section 5.1), gateway side.

Parsing goes through ``defusedxml`` (no DTD, no entities); building uses ElementTree with the one
namespace ``urn:gridgate:gwa:1`` as default namespace. Times are UTC ``xs:dateTime`` with ``Z`` and
milliseconds.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from collections.abc import Iterator

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

NS = "urn:gridgate:gwa:1"
ET.register_namespace("", NS)
_Q = "{" + NS + "}"
OBIS_RE = re.compile(r"^(\d{1,3})-(\d{1,3}):(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?$")


class Malformed(ValueError):
    """The XML (or a value in it) is not what the protocol allows."""


def q(tag: str) -> str:
    return _Q + tag


def element(tag: str, attrs: dict[str, object] | None = None, text: str | None = None,
            children: list[ET.Element] | None = None) -> ET.Element:
    el = ET.Element(q(tag), {k: _attr(v) for k, v in (attrs or {}).items() if v is not None})
    if text is not None:
        el.text = text
    for c in children or ():
        el.append(c)
    return el


def sub(parent: ET.Element, tag: str, attrs: dict[str, object] | None = None, text: str | None = None) -> ET.Element:
    el = element(tag, attrs, text)
    parent.append(el)
    return el


def _attr(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def to_bytes(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


def parse(data: bytes) -> ET.Element:
    """Parse a request payload; the root must be in gridgate's namespace."""
    try:
        root = DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as err:
        raise Malformed(f"XML not accepted: {err}") from None
    if not root.tag.startswith(_Q):
        raise Malformed(f"root element {root.tag} is not in namespace {NS}")
    return root


def local(el: ET.Element) -> str:
    return el.tag[len(_Q):] if el.tag.startswith(_Q) else el.tag


def children(el: ET.Element, tag: str) -> Iterator[ET.Element]:
    return iter(el.findall(q(tag)))


def req(el: ET.Element, name: str) -> str:
    v = el.get(name)
    if v is None or v == "":
        raise Malformed(f"<{local(el)}> lacks attribute {name}")
    return v


def req_int(el: ET.Element, name: str, lo: int | None = None, hi: int | None = None) -> int:
    v = req(el, name)
    try:
        n = int(v)
    except ValueError:
        raise Malformed(f"<{local(el)} {name}={v!r}> is not an integer") from None
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise Malformed(f"<{local(el)} {name}={n}> out of range")
    return n


def opt_bool(el: ET.Element, name: str, default: bool) -> bool:
    v = el.get(name)
    if v is None:
        return default
    if v not in ("true", "false"):
        raise Malformed(f"<{local(el)} {name}={v!r}> is not true/false")
    return v == "true"


def fmt_time(ts: float) -> str:
    t = dt.datetime.fromtimestamp(ts, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(text: str) -> float:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(f"time {text!r} is not xs:dateTime") from None
    if t.tzinfo is None:
        raise Malformed(f"time {text!r} has no zone")
    return t.timestamp()


def check_obis(text: str) -> str:
    """Validate an OBIS code written ``A-B:C.D.E`` or ``A-B:C.D.E.F``; returns the short form."""
    m = OBIS_RE.fullmatch(text or "")
    if not m or any(int(g) > 255 for g in m.groups() if g is not None):
        raise Malformed(f"OBIS code {text!r} not of the form A-B:C.D.E[.F]")
    if m.group(6) in (None, "255"):
        return f"{m.group(1)}-{m.group(2)}:{m.group(3)}.{m.group(4)}.{m.group(5)}"
    return text
