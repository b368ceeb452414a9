"""Exports of meter data (docs/mdm.md, "Export"): what a recipient gets, recorded before it leaves.

One export is one batch for one recipient: an MSCONS interchange, a webhook delivery (JSON), or a
CSV file of one series. ``plan`` selects what is due in keyset pages (the final version of each
(series, day) or reading that the recipient does not have), claims every item in
``meter_export_items``, writes the content and records the export, all in the caller's
transaction: a crash before the commit leaves nothing, a retry after it finds the export by its key.
The unique index on the items makes "once per (series, day, version) and recipient" hold against
concurrent runs too. A day the recipient had in an older version goes out again as a correction.

[choice] Who gets what (MSCONS): the series of ``sender`` (the market partner whose data they are)
go to a recipient that master data makes, on the day in question, the metering point's grid
operator or metering point operator, or the supplier of a market location assigned to it. A
webhook receiver gets the series of its market partner (or the ones it names).
[choice] An MSCONS export holds back what the AHB does not allow (``mscons.load_profile_problem``):
incomplete days, values of a quality a load profile may not carry, substitutes without a method
code. They are counted per reason in the export's ``details`` and the plan's result, and go
out once VEE has completed them. A webhook gets the final version as it is.
[choice] ``sent`` means: MSCONS released to the export outbox (no market transport is built: the
content is kept for download), webhook acknowledged with 2xx by the receiver.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, NotFound
from core.ids import MARKET_PARTNER_RE
from domain.meterdata import export_csv, export_webhook, mscons
from domain.meterdata import export_repository as repo
from domain.meterdata.days import day_start
from domain.meterdata.export_models import MeterExport
from domain.meterdata.export_repository import Audience, Due, SentItem
from domain.meterdata.export_webhook import ReceiverNotFound
from domain.meterdata.models import LAYERS
from domain.secrets import SecretBox

What = Literal["load_profiles", "readings"]
Layer = Literal["raw", "validated", "final"]
WHAT: tuple[What, ...] = ("load_profiles", "readings")
MAX_DAYS = 400  # one export covers at most this many days
MAX_ITEMS = 5000  # and carries at most this many (series, day or reading)
STORED_LEVEL = 3  # gzip level of the kept content: fast, and most of the gain
LAYERS_OF: dict[str, tuple[int, ...]] = {
    "raw": (LAYERS["raw"],),
    "validated": (LAYERS["raw"], LAYERS["validated"]),
    "final": (LAYERS["raw"], LAYERS["validated"], LAYERS["edited"]),
}


class ExportRefused(InvalidInput):
    code = "export_refused"


class ExportNotFound(NotFound):
    code = "export_not_found"


@dataclass(frozen=True, kw_only=True)
class Batch:
    """One export to plan. ``key`` makes it idempotent (a workflow passes ``<workflow id>#<n>``)."""

    key: str
    kind: Literal["mscons", "webhook"]
    what: What
    recipient: str  # MSCONS: market partner ID; webhook: the receiver's name
    first_day: dt.date
    last_day: dt.date
    created: dt.datetime  # aware; the message date
    sender: str | None = None  # MSCONS: whose series
    cursor: str | None = None  # where the previous batch of the same run stopped
    limit: int = 1000
    page: int = 500
    workflow_id: str | None = None
    export_id: int | None = None  # a fixed number, for reproducible output (tests, golden files)


@dataclass(frozen=True, kw_only=True)
class Planned:
    export_id: int | None  # None: nothing was due
    items: int
    corrections: int
    held_back: dict[str, int]
    cursor: str | None
    exhausted: bool  # nothing after this batch
    size: int


def _stored(content: bytes) -> dict[str, Any]:
    """The columns that keep ``content``: compressed (the database would otherwise compress the
    same bytes more slowly, and write them to its log uncompressed), with size and hash of the
    bytes as they leave."""
    return {"content": gzip.compress(content, compresslevel=STORED_LEVEL, mtime=0), "content_encoding": "gzip",
            "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}


def _unstored(export: MeterExport) -> bytes:
    content = export.content or b""
    return gzip.decompress(content) if export.content_encoding == "gzip" else content


def reference_of(export_id: int) -> str:
    """The interchange reference (UNB DE0020) of an export: unique per installation, so per sender."""
    return f"GG{export_id:012d}"


def _check_period(first: dt.date, last: dt.date) -> None:
    if last < first:
        raise ExportRefused(f"the period ends ({last}) before it starts ({first})")
    if (last - first).days >= MAX_DAYS:
        raise ExportRefused(f"an export covers at most {MAX_DAYS} days")


def _planned_of(export: MeterExport) -> Planned:
    details = export.details or {}
    return Planned(export_id=export.id, items=export.items, corrections=export.corrections,
                   held_back=dict(details.get("held_back", {})), cursor=details.get("cursor"),
                   exhausted=bool(details.get("exhausted")), size=export.size)


# A cursor names the last (series, day or reading time) a batch looked at; "<series>|" means the
# whole series.
Cursor = tuple[int, Any]  # (series ID, day | reading time | None)


def _encode(after: Cursor) -> str:
    return f"{after[0]}|{after[1].isoformat() if after[1] is not None else ''}"


def _decode(cursor: str | None, what: What) -> Cursor | None:
    if not cursor:
        return None
    series, _, rest = cursor.partition("|")
    if not rest:
        return int(series), None
    return int(series), dt.date.fromisoformat(rest) if what == "load_profiles" else dt.datetime.fromisoformat(rest)


@dataclass(frozen=True, kw_only=True)
class _Scope:
    audience: Audience
    recipient: str  # as items and exports name it
    receiver_id: int | None = None


async def _scope(session: AsyncSession, batch: Batch) -> _Scope:
    if batch.kind == "mscons":
        sender, recipient = batch.sender or "", batch.recipient
        if not MARKET_PARTNER_RE.match(sender) or not MARKET_PARTNER_RE.match(recipient):
            raise ExportRefused("MSCONS needs the sender's and the recipient's 13-digit market partner IDs")
        if sender == recipient:
            raise ExportRefused(f"{sender} would send to itself")
        return _Scope(audience=Audience(sender=sender, route_to=recipient), recipient=recipient)
    receiver = await repo.receiver_by_name(session, batch.recipient)
    if receiver is None:
        raise ReceiverNotFound(f"webhook receiver {batch.recipient!r} does not exist")
    if not receiver.active:
        raise ExportRefused(f"webhook receiver {batch.recipient!r} is not active")
    if batch.what != "load_profiles":
        raise ExportRefused("webhooks carry days of interval series")
    series = tuple(receiver.series_ids) if receiver.series_ids is not None else None
    return _Scope(audience=Audience(sender=receiver.market_partner, series_ids=series),
                  recipient=export_webhook.recipient_of(receiver.name), receiver_id=receiver.id)


Series = Callable[[int | None, int], Awaitable[list[int]]]
Fetch = Callable[[Sequence[int], Cursor | None], Awaitable[list[Due]]]


def _problem(batch: Batch, due: Due) -> str | None:
    if batch.kind != "mscons":
        return None
    if batch.what == "load_profiles":
        return mscons.load_profile_problem(_load_profile(due, ""))
    return mscons.reading_problem(_reading(due, ""))


async def _gather(batch: Batch, series: Series, fetch: Fetch) -> tuple[list[Due], Counter[str], str | None, bool]:
    """Up to ``batch.limit`` due items from the cursor on, and what was held back on the way. Goes a
    page of series at a time (about ``batch.page`` days each)."""
    after = _decode(batch.cursor, batch.what)
    due, held = list[Due](), Counter[str]()
    chunk = max(1, batch.page // ((batch.last_day - batch.first_day).days + 1))
    while True:
        start = None if after is None else after[0] + 1 if after[1] is None else after[0]
        ids = await series(start, chunk)
        if not ids:
            return due, held, _encode(after) if after else None, True
        for row in await fetch(ids, after if after is not None and after[1] is not None else None):
            after = (row.series_id, row.day if batch.what == "load_profiles" else row.at)
            if row.current:
                continue
            problem = _problem(batch, row)
            if problem is not None:
                held[problem] += 1
                continue
            due.append(row)
            if len(due) >= batch.limit:
                return due, held, _encode(after), False
        after = (ids[-1], None)
        if len(ids) < chunk:
            return due, held, _encode(after), True


def _load_profile(due: Due, document: str) -> mscons.LoadProfileDay:
    return mscons.LoadProfileDay(document=document, melo=due.melo, obis=due.obis, unit=due.unit, scaler=due.scaler,
                                 day=due.day, values=due.values, quality=due.quality, notes=due.notes)


def _reading(due: Due, document: str) -> mscons.RegisterReading:
    return mscons.RegisterReading(document=document, melo=due.melo, obis=due.obis, unit=due.unit,
                                  scaler=due.scaler, at=due.at, value=due.values[0], quality=due.quality[0],
                                  meter_id=due.meter_id, reason=due.reason, notes=due.notes)


def _render_mscons(batch: Batch, reference: str, due: Sequence[tuple[Due, str]]) -> tuple[bytes, int]:
    parties = mscons.Parties(sender=batch.sender or "", recipient=batch.recipient, reference=reference,
                             created=batch.created)
    messages: list[mscons.Message] = []
    if batch.what == "load_profiles":
        messages = [_load_profile(d, document) for d, document in due]
        application = mscons.APPLICATION_LOAD_PROFILE
    else:
        for n, (d, document) in enumerate(due, 1):
            if d.sent_document is not None:  # Stornierung und Neuversand (AHB chapter 12)
                messages.append(mscons.Cancellation(document=f"{reference}S{n}", melo=d.melo, cancels=d.sent_document))
            messages.append(_reading(d, document))
        application = mscons.APPLICATION_METER_READING
    return mscons.interchange(parties, application, messages), len(messages)


async def plan(session: AsyncSession, batch: Batch) -> Planned:
    """Select, claim, write and record the next export of ``batch`` (the caller commits)."""
    existing = await repo.export_by_key(session, batch.key)
    if existing is not None:
        return _planned_of(existing)
    _check_period(batch.first_day, batch.last_day)
    if not 0 < batch.limit <= MAX_ITEMS:
        raise ExportRefused(f"an export carries 1 to {MAX_ITEMS} items")
    scope = await _scope(session, batch)

    async def series(start: int | None, limit: int) -> list[int]:
        kind = "interval" if batch.what == "load_profiles" else "register"
        return await repo.next_series(session, scope.audience, kind=kind, from_id=start, limit=limit)

    async def fetch(ids: Sequence[int], after: Cursor | None) -> list[Due]:
        if batch.what == "load_profiles":
            return await repo.due_days(session, scope.audience, recipient=scope.recipient, kind=batch.kind,
                                       series_ids=ids, first=batch.first_day, last=batch.last_day, after=after)
        return await repo.due_readings(session, scope.audience, recipient=scope.recipient, kind=batch.kind,
                                       series_ids=ids, first=batch.first_day, last=batch.last_day, after=after)

    due, held, cursor, exhausted = await _gather(batch, series, fetch)
    result = Planned(export_id=None, items=0, corrections=0, held_back=dict(held), cursor=cursor,
                     exhausted=exhausted, size=0)
    if not due:
        return result
    export_id = batch.export_id or await repo.next_export_id(session)
    reference = reference_of(export_id)
    await repo.add_export(session, {
        "id": export_id, "key": batch.key, "kind": batch.kind, "sender": scope.audience.sender,
        "recipient": scope.recipient, "receiver_id": scope.receiver_id, "first_day": batch.first_day,
        "last_day": batch.last_day, "created_at": batch.created, "state": "ready",
        "interchange_ref": reference if batch.kind == "mscons" else None, "messages": 0, "items": 0,
        "corrections": 0, "size": 0, "attempts": 0, "workflow_id": batch.workflow_id})
    item = "day" if batch.what == "load_profiles" else "reading"
    documents = {(d.series_id, d.at, d.version): f"{reference}M{n}" for n, d in enumerate(due, 1)}
    claimed = await repo.claim(session, export_id=export_id, recipient=scope.recipient, kind=batch.kind, item=item,
                               claims=[repo.Claim(series_id=d.series_id, day=d.day, at=d.at, version=d.version,
                                                  corrects=d.sent_version,
                                                  document=documents[(d.series_id, d.at, d.version)]
                                                  if batch.kind == "mscons" else None) for d in due])
    mine = [(d, documents[(d.series_id, d.at, d.version)]) for d in due if (d.series_id, d.at, d.version) in claimed]
    if not mine:  # a concurrent export claimed all of them first
        await repo.delete_export(session, export_id)
        return result
    if batch.kind == "mscons":
        content, messages = _render_mscons(batch, reference, mine)
        content_type = "application/edifact"
    else:
        content = export_webhook.body(key=batch.key, export_id=export_id, sender=scope.audience.sender,
                                      days=[d for d, _ in mine])
        messages, content_type = 1, export_webhook.CONTENT_TYPE
    corrections = sum(1 for d, _ in mine if d.sent_version is not None)
    details = {"cursor": cursor, "exhausted": exhausted, "held_back": dict(held)}
    await repo.update_export(session, export_id, {
        **_stored(content), "content_type": content_type, "messages": messages, "items": len(mine),
        "corrections": corrections, "details": details})
    return dataclasses.replace(result, export_id=export_id, items=len(mine), corrections=corrections,
                               size=len(content))


async def open_exports(session: AsyncSession, kind: str, recipient: str) -> list[int]:
    """Exports for ``recipient`` (market partner ID or webhook receiver name) recorded but not sent."""
    key = export_webhook.recipient_of(recipient) if kind == "webhook" else recipient
    return await repo.open_exports(session, kind, key)


async def release(session: AsyncSession, export_id: int, now: dt.datetime) -> None:
    """An MSCONS export leaves: into the outbox, for the transport or download."""
    await repo.mark_sent(session, export_id, now)


@dataclass(frozen=True, kw_only=True)
class WebhookCall:
    export_id: int
    url: str
    headers: dict[str, str]
    body: bytes


async def webhook_call(session: AsyncSession, box: SecretBox, export_id: int, now: dt.datetime) -> WebhookCall | None:
    """The signed request that delivers a webhook export (None: it was delivered already)."""
    export = await repo.export_by_id(session, export_id)
    if export is None or export.kind != "webhook" or export.receiver_id is None:
        raise ExportNotFound(f"webhook export {export_id} does not exist")
    if export.state == "sent":
        return None
    receiver = await repo.receiver_by_id(session, export.receiver_id)
    if receiver is None:
        raise ReceiverNotFound(f"the receiver of export {export_id} does not exist")
    content = _unstored(export)
    secret = export_webhook.secret_of(box, receiver)
    return WebhookCall(export_id=export_id, url=receiver.url, body=content,
                       headers=export_webhook.headers(secret, content, delivery=export.key, now=now))


async def delivered(session: AsyncSession, export_id: int, now: dt.datetime) -> None:
    await repo.mark_sent(session, export_id, now)


async def attempt_failed(session: AsyncSession, export_id: int, error: str, *, final: bool = False) -> None:
    """A delivery attempt failed (visible as ``attempts`` and ``last_error``); ``final``: no more
    attempts in this run, the export is ``failed`` until a later run delivers it."""
    await repo.record_attempt(session, export_id, error, failed=final)


async def give_up(session: AsyncSession, export_id: int, error: str) -> None:
    await repo.mark_failed(session, export_id, error)


@dataclass(frozen=True, kw_only=True)
class CsvRequest:
    key: str
    series_id: int
    first_day: dt.date
    last_day: dt.date
    created: dt.datetime
    layer: Layer = "final"
    as_of: dt.datetime | None = None
    recipient: str = "download"
    workflow_id: str | None = None
    export_id: int | None = None


class SeriesNotFound(NotFound):
    code = "series_not_found"


async def write_csv(session: AsyncSession, request: CsvRequest) -> Planned:
    """A series' quarter hours as CSV, recorded as an export (kept for download; CSV files repeat
    freely, they do not count as delivered versions)."""
    existing = await repo.export_by_key(session, request.key)
    if existing is not None:
        return _planned_of(existing)
    _check_period(request.first_day, request.last_day)
    if request.layer not in LAYERS_OF:
        raise ExportRefused(f"layer {request.layer!r}: raw, validated or final")
    found = await repo.series_info(session, request.series_id)
    if found is None:
        raise SeriesNotFound(f"series {request.series_id} does not exist")
    series, _ = found
    days = await repo.days_of_series(session, request.series_id, request.first_day, request.last_day,
                                     layers=LAYERS_OF[request.layer], as_of=request.as_of)
    content = export_csv.write({d.day: d for d in days}, request.first_day, request.last_day, unit=series.unit,
                               scaler=series.scaler)
    export_id = request.export_id or await repo.next_export_id(session)
    await repo.add_export(session, {
        "id": export_id, "key": request.key, "kind": "csv", "sender": series.market_partner,
        "recipient": request.recipient, "first_day": request.first_day, "last_day": request.last_day,
        "created_at": request.created, "state": "ready", "messages": 0, "items": len(days), "corrections": 0,
        **_stored(content), "content_type": export_csv.CONTENT_TYPE, "attempts": 0, "workflow_id": request.workflow_id,
        "details": {"series": request.series_id, "layer": request.layer,
                    "as_of": request.as_of.isoformat() if request.as_of else None, "exhausted": True}})
    await repo.claim(session, export_id=export_id, recipient=request.recipient, kind="csv", item="day",
                     claims=[repo.Claim(series_id=d.series_id, day=d.day, at=day_start(d.day), version=d.version)
                             for d in days])
    return Planned(export_id=export_id, items=len(days), corrections=0, held_back={}, cursor=None, exhausted=True,
                   size=len(content))


async def content(session: AsyncSession, export_id: int) -> tuple[str, bytes]:
    """(content type, bytes) of an export, for download."""
    export = await repo.export_by_id(session, export_id)
    if export is None or export.content is None:
        raise ExportNotFound(f"export {export_id} does not exist")
    return export.content_type or "application/octet-stream", _unstored(export)


async def sent_items(session: AsyncSession, series_id: int, first: dt.date, last: dt.date) -> list[SentItem]:
    """What of a series went to whom, in which version, in which export, and when."""
    return await repo.items_of_series(session, series_id, first, last)


async def items_of(session: AsyncSession, export_id: int) -> list[SentItem]:
    return await repo.items_of_export(session, export_id)


async def exports(session: AsyncSession, *, recipient: str | None = None, kind: str | None = None,
                  before_id: int | None = None, limit: int = 100) -> list[MeterExport]:
    """Exports newest first (without their content), a page at a time."""
    return await repo.exports(session, recipient=recipient, kind=kind, before_id=before_id, limit=min(limit, 500))
