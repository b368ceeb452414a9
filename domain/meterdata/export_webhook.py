"""Forwarding meter data to a billing or EDM system by webhook: the receivers (a tenant's
configuration, the secret encrypted at rest), the JSON body of a delivery, and its signature.

A delivery is ``POST <url>`` with ``Content-Type: application/json`` and

* ``X-Gridgate-Delivery``: the export's key, the same on every retry (a receiver that saw it
  already answers 2xx and ignores it: the one window where a delivery can repeat is a crash after
  the receiver answered and before gridgate recorded it),
* ``X-Gridgate-Timestamp``: Unix seconds when this attempt was signed,
* ``X-Gridgate-Signature``: ``sha256=`` and the hex HMAC-SHA256 under the receiver's secret of
  ``<timestamp>.`` followed by the body bytes (so a captured body cannot be replayed with a fresh
  timestamp). A receiver should refuse a timestamp more than a few minutes off its clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, InvalidInput, NotFound
from domain.meterdata import export_repository as repo
from domain.meterdata.days import SLOT_S
from domain.meterdata.export_models import WebhookReceiver
from domain.meterdata.quality import Quality
from domain.partners import repository as partners
from domain.secrets import SecretBox

SECRET_PURPOSE = "webhook"
SIGNATURE_HEADER = "X-Gridgate-Signature"
TIMESTAMP_HEADER = "X-Gridgate-Timestamp"
DELIVERY_HEADER = "X-Gridgate-Delivery"
CONTENT_TYPE = "application/json"
LAYER_NAMES = {0: "raw", 1: "validated", 2: "edited"}
UNIT_SYMBOLS = {27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 35: "V", 44: "Hz"}


class InvalidReceiver(InvalidInput):
    code = "invalid_webhook_receiver"


class ReceiverExists(Conflict):
    code = "webhook_receiver_exists"


class ReceiverNotFound(NotFound):
    code = "webhook_receiver_not_found"


def recipient_of(name: str) -> str:
    """How a receiver appears as the recipient of its exports."""
    return f"webhook:{name}"


def _object_id(name: str) -> str:
    return f"webhook:{name}"


async def add_receiver(session: AsyncSession, box: SecretBox, *, name: str, url: str, secret: bytes,
                       market_partner: str, series_ids: Sequence[int] | None = None) -> WebhookReceiver:
    """A receiver of ``market_partner``'s meter data (all its series, or ``series_ids``). ``box``
    is the tenant's SecretBox of purpose ``webhook``."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InvalidReceiver(f"{url!r} is not an http(s) URL")
    if len(secret) < 16:
        raise InvalidReceiver("the secret must have at least 16 bytes")
    if not name or len(name) > 64:
        raise InvalidReceiver("the name must have 1 to 64 characters")
    if await partners.by_mp_id(session, market_partner) is None:
        raise InvalidReceiver(f"market partner {market_partner} does not exist")
    if await repo.receiver_by_name(session, name) is not None:
        raise ReceiverExists(f"webhook receiver {name!r} exists")
    receiver = WebhookReceiver(name=name, url=url, secret=box.encrypt(secret, _object_id(name)),
                               market_partner=market_partner,
                               series_ids=sorted(set(series_ids)) if series_ids is not None else None)
    session.add(receiver)
    await session.flush()
    return receiver


async def set_active(session: AsyncSession, name: str, active: bool) -> WebhookReceiver:
    receiver = await repo.receiver_by_name(session, name)
    if receiver is None:
        raise ReceiverNotFound(f"webhook receiver {name!r} does not exist")
    receiver.active = active
    await session.flush()
    return receiver


def secret_of(box: SecretBox, receiver: WebhookReceiver) -> bytes:
    return box.decrypt(receiver.secret, _object_id(receiver.name))


def body(*, key: str, export_id: int, sender: str, days: Sequence[repo.Due]) -> bytes:
    """The JSON of a delivery: one entry per (series, day, version), values in the series' unit
    with its scaler (value x 10^scaler), quality as the MSCONS qualifier."""
    items = [{
        "series": d.series_id, "metering_point": d.melo, "obis": d.obis,
        "unit": UNIT_SYMBOLS.get(d.unit, str(d.unit)), "scaler": d.scaler,
        "day": d.day.isoformat(), "start": d.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "period_s": SLOT_S, "version": d.version, "layer": LAYER_NAMES.get(d.layer, str(d.layer)),
        "corrects": d.sent_version, "values": d.values, "quality": [Quality(q).mscons for q in d.quality],
        "notes": _slot_notes(d.notes),
    } for d in days]
    return json.dumps({"export": key, "id": export_id, "sender": sender, "items": items},
                      separators=(",", ":"), sort_keys=True).encode()


def _slot_notes(notes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (notes or {}).items() if k.isdigit()}


def signature(secret: bytes, timestamp: int, payload: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + payload, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def headers(secret: bytes, payload: bytes, *, delivery: str, now: dt.datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {"Content-Type": CONTENT_TYPE, DELIVERY_HEADER: delivery, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(secret, timestamp, payload)}


def verify(secret: bytes, received: Mapping[str, str], payload: bytes, *, now: dt.datetime,
           tolerance: dt.timedelta = dt.timedelta(minutes=5)) -> bool:
    """What a receiver checks (``received``: its request headers, any case)."""
    lower = {k.lower(): v for k, v in received.items()}
    try:
        timestamp = int(lower.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        return False
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(lower.get(SIGNATURE_HEADER.lower(), ""), signature(secret, timestamp, payload))
