"""``gridgate mdm`` as a process of its own: SIGKILLed while deliveries are in flight and started
again, every delivery redelivered is stored exactly once (a gateway never got an answer for what
was not committed; what was committed is acknowledged again as a repeat); SIGTERM finishes the
open batch and answers it before the process ends."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
from sqlalchemy import func, select

from core.config import Settings
from core.ids import demo_gateway_id
from core.procs import free_port
from domain.meterdata.models import MeterDay, MeterDelivery, MeterSeries
from tests.helpers import gridgate_bin
from tests.mdm.delivering import Answer, GatewayConnection, client_context, seal, to_xml
from tests.mdm.receiver_fixtures import NETZ, RxTenant, sni
from tests.mdm.test_mdm_receiver import taf7_day

GATEWAYS = (0, 1, 2, 4, 5)  # in operation, each with a TAF 7 order of the grid operator


@contextmanager
def receiver_process(settings: Settings, port: int, log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """``gridgate mdm`` on ``port`` against the test databases (its output appended to ``log``)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GRIDGATE_")}
    environ.update(
        GRIDGATE_DATABASE_URL=settings.database_url or "", GRIDGATE_TEMPORAL_ADDRESS=settings.temporal_address,
        GRIDGATE_VAR_DIR=str(settings.var_dir), GRIDGATE_LOG_LEVEL="info", GRIDGATE_LOG_FORMAT="console",
        GRIDGATE_MASTER_KEY=os.environ["GRIDGATE_MASTER_KEY"], GRIDGATE_SECRET_KEY=os.environ["GRIDGATE_SECRET_KEY"],
        GRIDGATE_MDM_HOST="127.0.0.1", GRIDGATE_MDM_PORT=str(port), GRIDGATE_MDM_METRICS_PORT="0",
        GRIDGATE_MDM_TENANT_POLL_S="0.5")
    environ.update(env)
    with log.open("ab") as out:
        proc = subprocess.Popen([gridgate_bin(), "mdm"], env=environ, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def wait_ready(port: int, ctx: ssl.SSLContext, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni(NETZ))
        except (OSError, ssl.SSLError):
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return
    raise AssertionError(f"receiver not ready: {log.read_text()[-3000:]}")


async def open_all(port: int, rx: RxTenant, bodies: list[tuple[str, bytes, str]]) -> list[GatewayConnection]:
    """A connection of its own for each body's gateway (handshakes done)."""
    return list(await asyncio.gather(*(GatewayConnection.open("127.0.0.1", port, client_context(
        rx.pki, rx.gateway(gw)), sni(NETZ)) for gw, _, _ in bodies)))


async def post_on(conns: list[GatewayConnection], bodies: list[tuple[str, bytes, str]], *, spread_s: float = 0.0,
                  answered: asyncio.Event | None = None) -> list[Answer | BaseException]:
    """Each body on its connection, POSTed ``spread_s`` apart; an exception where no answer came.
    ``answered`` is set at the first answer."""
    async def one(i: int, conn: GatewayConnection, body: bytes, cid: str) -> Answer:
        await asyncio.sleep(i * spread_s)
        try:
            answer = await conn.post(body, cid=cid, sni=sni(NETZ), timeout=30)
        finally:
            await conn.close()
        if answered is not None:
            answered.set()
        return answer

    return await asyncio.gather(*(one(i, c, b, cid) for i, (c, (_, b, cid)) in enumerate(zip(conns, bodies,
                                                                                              strict=True))),
                                return_exceptions=True)


async def post_all(port: int, rx: RxTenant, bodies: list[tuple[str, bytes, str]]) -> list[Answer | BaseException]:
    return await post_on(await open_all(port, rx, bodies), bodies)


async def queued(metrics_port: int) -> float:
    """The receiver's gridgate_mdm_queued_deliveries of tenant mdmrx (its /metrics)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    for line in text.splitlines():
        if line.startswith('gridgate_mdm_queued_deliveries{tenant="mdmrx"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def deliveries(first: dt.date, n: int, rx: RxTenant) -> list[tuple[str, bytes, str]]:
    """(TLS gateway, sealed body, x-CID) of ``n`` TAF 7 days, no two adjacent."""
    out = []
    for i in range(n):
        d = taf7_day(first + dt.timedelta(days=2 * i), gateway=GATEWAYS[i % len(GATEWAYS)])
        out.append((d.gateway_id, seal(to_xml(d), rx.gateway(d.gateway_id), rx.emt(NETZ)), f"uuid:kill-{first}-{i}"))
    return out


async def test_sigkill_in_flight_then_redelivery_stores_everything_exactly_once(
        settings: Settings, rx_tenant: RxTenant, tmp_path: Path) -> None:
    rx = rx_tenant
    port = free_port()
    log = tmp_path / "mdm.log"
    first = dt.date(2024, 3, 1)
    todo = deliveries(first, 40, rx)
    ready_ctx = client_context(rx.pki, rx.gateway(demo_gateway_id(0)))
    acknowledged: set[str] = set()
    with receiver_process(settings, port, log, GRIDGATE_MDM_BATCH_WAIT_S="0.05") as proc:
        await wait_ready(port, ready_ctx, proc, log)
        for gw, body, cid in todo[:6]:  # delivered and answered before the crash
            (answer,) = await post_all(port, rx, [(gw, body, cid)])
            assert isinstance(answer, Answer) and answer.status == 201, answer
            acknowledged.add(cid)
        conns = await open_all(port, rx, todo[6:])
        first_answer = asyncio.Event()
        in_flight = asyncio.ensure_future(post_on(conns, todo[6:], spread_s=0.02, answered=first_answer))
        await asyncio.wait_for(first_answer.wait(), 20)
        os.killpg(proc.pid, signal.SIGKILL)  # some answered, some in a batch, some not sent yet
        results = await in_flight
    answered = {cid for (_, _, cid), r in zip(todo[6:], results, strict=True) if isinstance(r, Answer)}
    assert all(r.status == 201 for r in results if isinstance(r, Answer))
    lost = [r for r in results if not isinstance(r, Answer)]
    assert lost, "the kill came too late: nothing was in flight"
    acknowledged |= answered

    with receiver_process(settings, port, log) as proc:
        await wait_ready(port, ready_ctx, proc, log)
        again = await post_all(port, rx, todo)  # every gateway delivers again what it sent
    for (_, _, cid), answer in zip(todo, again, strict=True):
        assert isinstance(answer, Answer), answer
        # Acknowledged before: a repeat. Not acknowledged: stored now, or committed just before the kill.
        assert answer.status in ((200,) if cid in acknowledged else (200, 201)), (cid, answer)

    cids = [cid for _, _, cid in todo]
    days = [first + dt.timedelta(days=2 * i) for i in range(len(todo))]
    async with rx.ctx.sessions() as session:
        stored = {ref: n for ref, n in await session.execute(
            select(MeterDelivery.delivery_ref, func.count()).where(
                MeterDelivery.delivery_ref.in_(cids), MeterDelivery.outcome.in_(("stored", "conflict")))
            .group_by(MeterDelivery.delivery_ref))}
        conflicts = await session.scalar(select(func.count()).select_from(MeterDelivery).where(
            MeterDelivery.delivery_ref.in_(cids), MeterDelivery.outcome == "conflict"))
        versions = {day: n for day, n in await session.execute(
            select(MeterDay.day, func.count()).join(MeterSeries, MeterSeries.id == MeterDay.series_id)
            .where(MeterSeries.obis == "1-1:1.29.0", MeterDay.day.in_(days)).group_by(MeterDay.day))}
    assert stored == dict.fromkeys(cids, 1)
    assert conflicts == 0
    assert versions == dict.fromkeys(days, 1)


async def test_sigterm_finishes_the_open_batch(settings: Settings, rx_tenant: RxTenant, tmp_path: Path) -> None:
    rx = rx_tenant
    port = free_port()
    log = tmp_path / "mdm.log"
    todo = deliveries(dt.date(2024, 9, 1), 10, rx)
    metrics_port = free_port()
    with receiver_process(settings, port, log, GRIDGATE_MDM_BATCH_WAIT_S="3.0", GRIDGATE_MDM_BATCH_MAX="64",
                          GRIDGATE_MDM_METRICS_PORT=str(metrics_port)) as proc:
        await wait_ready(port, client_context(rx.pki, rx.gateway(demo_gateway_id(0))), proc, log)
        in_flight = asyncio.ensure_future(post_all(port, rx, todo))
        deadline = time.monotonic() + 20
        while await queued(metrics_port) < len(todo):  # received, waiting for the batch to close
            assert time.monotonic() < deadline and not in_flight.done(), log.read_text()[-3000:]
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        results = await in_flight
        code = await asyncio.to_thread(proc.wait, 30)
    assert [r.status if isinstance(r, Answer) else repr(r) for r in results] == [201] * len(todo)
    assert code == 0, log.read_text()[-3000:]
    with suppress(OSError, ssl.SSLError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        raise AssertionError("the listener is still open after the stop")
