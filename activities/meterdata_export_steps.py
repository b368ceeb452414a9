"""Steps of a meter data export (``workflows/meterdata_export.py``): plan and record the next batch,
find batches recorded but not sent, send one (release an MSCONS interchange; POST a signed webhook
delivery), give one up. Every step is idempotent: a batch is found again by its key, a sent export
is not sent twice."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.steps_common import Steps, domain_refusals
from domain.meterdata import export
from domain.meterdata.export_webhook import SECRET_PURPOSE
from domain.secrets import SecretBox

WEBHOOK_TIMEOUT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class PlanExportInput:
    key: str
    kind: Literal["mscons", "webhook"]
    what: Literal["load_profiles", "readings"]
    recipient: str
    first_day: str  # ISO dates
    last_day: str
    sender: str | None = None
    cursor: str | None = None
    limit: int = 1000


@dataclass(frozen=True, kw_only=True)
class PlannedExport:
    export_id: int | None
    items: int
    corrections: int
    cursor: str | None
    exhausted: bool
    size: int
    held_back: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class OpenExportsInput:
    kind: Literal["mscons", "webhook"]
    recipient: str


@dataclass(frozen=True, kw_only=True)
class OpenExports:
    ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class SendExportInput:
    export_id: int
    kind: Literal["mscons", "webhook"]


@dataclass(frozen=True, kw_only=True)
class SentExport:
    export_id: int


@dataclass(frozen=True, kw_only=True)
class FailExportInput:
    export_id: int
    error: str


@dataclass(frozen=True, kw_only=True)
class CsvExportInput:
    key: str
    series_id: int
    first_day: str
    last_day: str
    layer: Literal["raw", "validated", "final"] = "final"
    as_of: str | None = None  # ISO time with offset
    recipient: str = "download"  # who asked for it


def _planned(p: export.Planned) -> PlannedExport:
    return PlannedExport(export_id=p.export_id, items=p.items, corrections=p.corrections, cursor=p.cursor,
                         exhausted=p.exhausted, size=p.size, held_back=p.held_back)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MeterDataExportSteps(Steps):
    @activity.defn
    @domain_refusals
    async def plan_meter_export(self, inp: PlanExportInput) -> PlannedExport:
        batch = export.Batch(key=inp.key, kind=inp.kind, what=inp.what, recipient=inp.recipient, sender=inp.sender,
                             first_day=dt.date.fromisoformat(inp.first_day),
                             last_day=dt.date.fromisoformat(inp.last_day), created=_now(), cursor=inp.cursor,
                             limit=inp.limit, workflow_id=activity.info().workflow_id)
        async with self._session() as session, session.begin():
            return _planned(await export.plan(session, batch))

    @activity.defn
    async def open_meter_exports(self, inp: OpenExportsInput) -> OpenExports:
        async with self._session() as session:
            return OpenExports(ids=await export.open_exports(session, inp.kind, inp.recipient))

    @activity.defn
    @domain_refusals
    async def send_meter_export(self, inp: SendExportInput) -> SentExport:
        """MSCONS: released. Webhook: POSTed; a failure is recorded on the export and raised, so the
        workflow's retry policy tries again with back-off."""
        if inp.kind == "mscons":
            async with self._session() as session, session.begin():
                await export.release(session, inp.export_id, _now())
            return SentExport(export_id=inp.export_id)
        box = SecretBox(self.runtime.settings, self.runtime.tenant.name, SECRET_PURPOSE)
        async with self._session() as session:
            call = await export.webhook_call(session, box, inp.export_id, _now())
        if call is None:
            return SentExport(export_id=inp.export_id)
        try:
            async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S) as client:
                response = await client.post(call.url, content=call.body, headers=call.headers)
            error = None if response.is_success else f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as err:
            error = f"{type(err).__name__}: {err}"
        async with self._session() as session, session.begin():
            if error is None:
                await export.delivered(session, inp.export_id, _now())
            else:
                await export.attempt_failed(session, inp.export_id, error)
        if error is not None:
            raise ApplicationError(f"webhook delivery of export {inp.export_id}: {error}", type="webhook_failed")
        return SentExport(export_id=inp.export_id)

    @activity.defn
    async def fail_meter_export(self, inp: FailExportInput) -> None:
        async with self._session() as session, session.begin():
            await export.give_up(session, inp.export_id, inp.error)

    @activity.defn
    @domain_refusals
    async def write_meter_csv(self, inp: CsvExportInput) -> PlannedExport:
        request = export.CsvRequest(key=inp.key, series_id=inp.series_id,
                                    first_day=dt.date.fromisoformat(inp.first_day),
                                    last_day=dt.date.fromisoformat(inp.last_day), layer=inp.layer,
                                    as_of=dt.datetime.fromisoformat(inp.as_of) if inp.as_of else None,
                                    created=_now(), recipient=inp.recipient,
                                    workflow_id=activity.info().workflow_id)
        async with self._session() as session, session.begin():
            return _planned(await export.write_csv(session, request))
