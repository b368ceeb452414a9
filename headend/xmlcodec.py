"""gridgate's XML encoding of the COSEM objects it uses (docs/protocol.md 5.1 and 10): building
request bodies and reading gateway answers. Gateway XML is untrusted: parsed with defusedxml (no
DTDs, no entities)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from defusedxml import ElementTree as SafeET

NS = "urn:gridgate:gwa:1"
_Q = f"{{{NS}}}"


class XmlError(ValueError):
    """A body that is not gridgate XML."""


def _attr(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def element(tag: str, attrs: dict[str, object] | None = None, text: str | None = None,
            children: list[ET.Element] | None = None) -> ET.Element:
    el = ET.Element(_Q + tag, {k: _attr(v) for k, v in (attrs or {}).items() if v is not None})
    if text is not None:
        el.text = text
    for c in children or ():
        el.append(c)
    return el


def child(tag: str, attrs: dict[str, object] | None = None, text: str | None = None) -> ET.Element:
    return element(tag, attrs, text)


def dumps(root: ET.Element) -> bytes:
    ET.register_namespace("", NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


def loads(data: bytes) -> ET.Element:
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception as err:  # ParseError, DefusedXmlException, ValueError
        raise XmlError(f"not well-formed XML: {err}") from None
    if not isinstance(root.tag, str) or not root.tag.startswith(_Q):
        raise XmlError(f"root element {root.tag!r} is not in namespace {NS}")
    return root


def local(el: ET.Element) -> str:
    return el.tag[len(_Q):] if el.tag.startswith(_Q) else el.tag


def children(el: ET.Element, tag: str) -> list[ET.Element]:
    return el.findall(_Q + tag)


def first(el: ET.Element, tag: str) -> ET.Element | None:
    return el.find(_Q + tag)


def only_child(el: ET.Element) -> ET.Element | None:
    kids = list(el)
    return kids[0] if kids else None


def req(el: ET.Element, name: str) -> str:
    value = el.get(name)
    if value is None:
        raise XmlError(f"<{local(el)}> lacks attribute {name!r}")
    return value


def req_int(el: ET.Element, name: str) -> int:
    try:
        return int(req(el, name))
    except ValueError:
        raise XmlError(f"<{local(el)}> attribute {name!r} is not an integer") from None


def opt_int(el: ET.Element, name: str) -> int | None:
    value = el.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise XmlError(f"<{local(el)}> attribute {name!r} is not an integer") from None


def boolean(el: ET.Element, name: str, default: bool = False) -> bool:
    value = el.get(name)
    return default if value is None else value.strip().lower() == "true"


def text(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def timestamp(value: dt.datetime | None = None) -> str:
    value = (value or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_time(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise XmlError(f"not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
