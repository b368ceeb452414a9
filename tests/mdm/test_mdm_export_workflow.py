"""The export workflow with its real activities against a tenant database, on Temporal's
time-skipping test server (the fast tier's harness, tests/workflows/harness.py):

* MSCONS to a supplier, the step that records a batch and the step that sends one each "crash"
  once after their commit (the worker's answer is lost, Temporal retries): every (series, day,
  version) is recorded and sent once; a second run finds nothing; a later version goes out alone,
  as a correction.
* A webhook to a billing system listening on a real socket: the first POST gets a 500, the retry
  gets through; both attempts are signed (HMAC-SHA256 over timestamp and body) and carry the same
  delivery ID. A receiver that keeps failing leaves a failed export with its last error, which the
  next run delivers first.
* A CSV file of a series.

The tenant is this module's own (``mdmexport``): its data is committed."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.meterdata_export_steps import (
    MeterDataExportSteps,
    PlanExportInput,
    PlannedExport,
    SendExportInput,
    SentExport,
)
from activities.runtime import TenantRuntime
from core.config import Settings
from core.db import Databases
from core.temporal import activity_methods
from core.temporal import test_server_binary as temporal_test_server
from domain.meterdata import export, export_webhook
from domain.meterdata.export_models import MeterExport, MeterExportItem
from domain.secrets import SecretBox
from domain.tenancy.service import TenantContext
from tests.conftest import TenantFactory
from tests.mdm.test_mdm_export import (
    LF,
    MSB,
    VALIDATED,
    Place,
    export_master_data,
    profile,
    series_of,
    substituted,
    write_day,
)
from tests.workflows.harness import running
from workflows.meterdata_export import MeterDataExportInput, MeterDataExportWorkflow, export_workflow_id


@pytest.fixture(scope="module")
async def export_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=temporal_test_server())
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def export_tenant(tenant_factory: TenantFactory) -> TenantContext:
    ctx = await tenant_factory("mdmexport")
    async with ctx.sessions() as session, session.begin():
        await export_master_data(session)
    return ctx


@pytest.fixture
def steps(settings: Settings, dbs: Databases, export_tenant: TenantContext) -> MeterDataExportSteps:
    return MeterDataExportSteps(TenantRuntime(settings=settings, dbs=dbs, tenant=export_tenant))


async def places(tenant: TenantContext) -> list[Place]:
    async with tenant.sessions() as session:
        return await export_master_data(session)


async def write_days(tenant: TenantContext, days: list[dt.date]) -> list[int]:
    async with tenant.sessions() as session, session.begin():
        series = [await series_of(session, place) for place in await export_master_data(session)]
        for s in series:
            for day in days:
                await write_day(session, s, day, profile(day, base=100 + s))
    return series


async def run_export(env: WorkflowEnvironment, activities: list[Callable[..., Any]], inp: MeterDataExportInput,
                     n: int) -> Any:
    async with running(env.client, activities) as queue:
        return await env.client.execute_workflow(
            MeterDataExportWorkflow.run, inp, id=export_workflow_id(inp.recipient, inp.first_day, inp.last_day, n),
            task_queue=queue)


def lose_first_answers(steps: MeterDataExportSteps, lost: list[str]) -> list[Callable[..., Any]]:
    """The real activities, but the second batch's recording and the first sending each fail once
    after their transaction committed: the worker died before Temporal heard of the result."""

    @activity.defn(name="plan_meter_export")
    async def plan_meter_export(inp: PlanExportInput) -> PlannedExport:
        result = await steps.plan_meter_export(inp)
        if inp.key.endswith("#2") and "plan" not in lost:
            lost.append("plan")
            raise RuntimeError("worker died after recording the batch")
        return result

    @activity.defn(name="send_meter_export")
    async def send_meter_export(inp: SendExportInput) -> SentExport:
        result = await steps.send_meter_export(inp)
        if "send" not in lost:
            lost.append("send")
            raise RuntimeError("worker died after sending")
        return result

    replaced = {"plan_meter_export", "send_meter_export"}
    return [plan_meter_export, send_meter_export, *(m for m in activity_methods(steps) if m.__name__ not in replaced)]


async def test_mscons_goes_exactly_once_across_lost_answers_and_a_later_version_as_a_correction(
        export_env: WorkflowEnvironment, export_tenant: TenantContext, steps: MeterDataExportSteps) -> None:
    days = [dt.date(2026, 5, 1) + dt.timedelta(days=n) for n in range(3)]
    series = await write_days(export_tenant, days)
    inp = MeterDataExportInput(kind="mscons", recipient=LF, sender=MSB, first_day=days[0].isoformat(),
                               last_day=days[-1].isoformat(), batch_items=4, retry_initial_s=0.2)
    lost: list[str] = []
    result = await run_export(export_env, lose_first_answers(steps, lost), inp, 1)
    assert lost == ["send", "plan"]
    assert (result.outcome, len(result.exports), result.items, result.corrections) == ("succeeded", 2, 6, 0)
    assert result.sent == result.exports

    async with export_tenant.sessions() as session:
        items = (await session.execute(select(MeterExportItem.series_id, MeterExportItem.day, MeterExportItem.version)
                                       .where(MeterExportItem.recipient == LF,
                                              MeterExportItem.day.between(days[0], days[-1])))).all()
        assert sorted(items) == sorted((s, d, 1) for s in series for d in days)
        rows = (await session.scalars(select(MeterExport).where(MeterExport.id.in_(result.exports))
                                      .order_by(MeterExport.id))).all()
        assert [(e.state, e.items, e.messages, e.attempts) for e in rows] == [("sent", 4, 4, 1), ("sent", 2, 2, 1)]
        for e in rows:
            _, content = await export.content(session, e.id)
            assert content.count(b"UNH+") == e.items and len(content) == e.size
            assert e.content_encoding == "gzip" and e.content is not None and len(e.content) < e.size / 5

    again = await run_export(export_env, activity_methods(steps), inp, 2)
    assert (again.outcome, again.exports, again.items) == ("succeeded", [], 0)

    async with export_tenant.sessions() as session, session.begin():
        values, quality, notes = substituted(profile(days[1], base=100 + series[0]), [30], correction="ZA1")
        await write_day(session, series[0], days[1], values, layer=VALIDATED, quality=quality, notes=notes)
    corrected = await run_export(export_env, activity_methods(steps), inp, 3)
    assert (len(corrected.exports), corrected.items, corrected.corrections) == (1, 1, 1)
    async with export_tenant.sessions() as session:
        sent = await export.sent_items(session, series[0], days[1], days[1])
    assert [(i.version, i.corrects, i.state) for i in sent] == [(1, None, "sent"), (2, 1, "sent")]


@dataclass
class Billing:
    """A billing system's webhook endpoint on a real socket: answers ``statuses`` in turn, then 200."""

    statuses: list[int]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        billing = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                billing.requests.append((dict(self.headers.items()), body))
                status = billing.statuses.pop(0) if billing.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def billing() -> Iterator[tuple[Billing, str]]:
    endpoint = Billing(statuses=[])
    server = ThreadingHTTPServer(("127.0.0.1", 0), endpoint.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint, f"http://127.0.0.1:{server.server_address[1]}/meter-data"
    finally:
        server.shutdown()
        server.server_close()


SECRET = b"billing-shared-secret-0123456789"


async def add_receiver(tenant: TenantContext, settings: Settings, name: str, url: str) -> None:
    box = SecretBox(settings, tenant.name, export_webhook.SECRET_PURPOSE)
    async with tenant.sessions() as session, session.begin():
        await export_webhook.add_receiver(session, box, name=name, url=url, secret=SECRET, market_partner=MSB)


async def test_a_webhook_delivery_is_signed_and_retried_after_a_500(
        export_env: WorkflowEnvironment, export_tenant: TenantContext, steps: MeterDataExportSteps,
        settings: Settings, billing: tuple[Billing, str]) -> None:
    endpoint, url = billing
    endpoint.statuses = [500]
    day = dt.date(2026, 6, 1)
    series = await write_days(export_tenant, [day])
    await add_receiver(export_tenant, settings, "billing", url)
    inp = MeterDataExportInput(kind="webhook", recipient="billing", first_day=day.isoformat(), last_day=day.isoformat(),
                               retry_initial_s=0.2)
    result = await run_export(export_env, activity_methods(steps), inp, 1)
    assert (result.outcome, result.items, result.sent) == ("succeeded", 2, result.exports)

    assert len(endpoint.requests) == 2  # the 500, then the retry
    (first_headers, first_body), (headers, body) = endpoint.requests
    now = dt.datetime.now(dt.UTC)
    for h, b in endpoint.requests:
        assert export_webhook.verify(SECRET, h, b, now=now)
        assert not export_webhook.verify(b"another secret of 32 bytes......", h, b, now=now)
        assert not export_webhook.verify(SECRET, h, b + b" ", now=now)
    assert first_body == body and first_headers["X-Gridgate-Delivery"] == headers["X-Gridgate-Delivery"]
    assert headers["X-Gridgate-Signature"].startswith("sha256=")
    payload = json.loads(body)
    assert payload["sender"] == MSB and payload["export"] == headers["X-Gridgate-Delivery"]
    assert sorted((i["series"], i["day"], i["version"]) for i in payload["items"]) == [
        (s, "2026-06-01", 1) for s in sorted(series)]
    item = next(i for i in payload["items"] if i["series"] == series[0])
    assert item["values"] == profile(day, base=100 + series[0]) and set(item["quality"]) == {"220"}
    assert (item["unit"], item["scaler"], item["period_s"], item["start"]) == ("Wh", 0, 900, "2026-05-31T22:00:00Z")

    async with export_tenant.sessions() as session:
        (row,) = (await session.scalars(select(MeterExport).where(MeterExport.id.in_(result.exports)))).all()
    assert (row.state, row.attempts, row.recipient) == ("sent", 2, "webhook:billing")
    assert row.last_error is not None and row.last_error.startswith("HTTP 500")  # the failure stays visible


async def test_a_receiver_that_keeps_failing_leaves_a_failed_export_the_next_run_delivers(
        export_env: WorkflowEnvironment, export_tenant: TenantContext, steps: MeterDataExportSteps,
        settings: Settings, billing: tuple[Billing, str]) -> None:
    endpoint, url = billing
    endpoint.statuses = [503] * 3
    day = dt.date(2026, 6, 2)
    await write_days(export_tenant, [day])
    await add_receiver(export_tenant, settings, "billing-down", url)
    inp = MeterDataExportInput(kind="webhook", recipient="billing-down", first_day=day.isoformat(),
                               last_day=day.isoformat(), send_attempts=3, retry_initial_s=0.1)
    failed = await run_export(export_env, activity_methods(steps), inp, 1)
    assert (failed.outcome, failed.failed, failed.sent) == ("failed", failed.exports, [])
    async with export_tenant.sessions() as session:
        row = await session.get(MeterExport, failed.exports[0])
        assert row is not None and (row.state, row.attempts) == ("failed", 3)
        assert row.last_error is not None and "HTTP 503" in row.last_error

    retried = await run_export(export_env, activity_methods(steps), inp, 2)
    assert (retried.outcome, retried.sent, retried.exports) == ("succeeded", failed.exports, [])
    assert len(endpoint.requests) == 4
    async with export_tenant.sessions() as session:
        row = await session.get(MeterExport, failed.exports[0])
        assert row is not None and (row.state, row.attempts) == ("sent", 4)


async def test_a_csv_export_of_a_series(export_env: WorkflowEnvironment, export_tenant: TenantContext,
                                        steps: MeterDataExportSteps) -> None:
    day = dt.date(2026, 7, 1)
    series = await write_days(export_tenant, [day])
    inp = MeterDataExportInput(kind="csv", recipient="operator", first_day=day.isoformat(), last_day=day.isoformat(),
                               series_id=series[0], layer="raw")
    result = await run_export(export_env, activity_methods(steps), inp, 1)
    assert (result.outcome, result.items) == ("succeeded", 1)
    async with export_tenant.sessions() as session:
        content_type, data = await export.content(session, result.exports[0])
        csv_items = await session.scalar(select(func.count()).select_from(MeterExportItem)
                                         .where(MeterExportItem.export_id == result.exports[0]))
        row = await session.get(MeterExport, result.exports[0])
    assert content_type.startswith("text/csv") and data.count(b"\n") == 97 and csv_items == 1
    assert row is not None and (row.kind, row.recipient, row.state) == ("csv", "operator", "ready")
