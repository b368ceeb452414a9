"""Group commit: one writer per tenant stores the deliveries of all its connections in batches.

A batch starts with the first delivery waiting, takes what arrives within ``batch_wait_s`` (at
most ``batch_max``), and is stored in one transaction (``domain.meterdata.ingest``: checks, raw
versions, delivery log; refusals before parsing with ``log_refusal``). Only after the commit is
every delivery of the batch answered; while one batch commits, the next one collects. So a
thousand gateways delivering at once cost a few dozen commits, not a thousand, and nothing is
acknowledged that is not durable: a crash before the commit leaves the gateways without an
answer, they deliver again, and the SHA-256 of the payload keeps anything from being stored twice.

Batches of one tenant run one after the other, so two batches never race for the next version of
the same day. Another receiver process may: a batch whose transaction fails on a conflict is run
again (it then sees the other's rows), and a batch that keeps failing is split, so one delivery
that cannot be stored does not hold back the others (it is answered 503 and delivered again)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import deque
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError

from domain.meterdata.delivery import Delivery, Envelope
from domain.meterdata.ingest import Outcome, ingest, log_refusal
from domain.tenancy.service import TenantContext
from mdm.config import MdmSettings
from mdm.metrics import MdmMetrics

log = structlog.get_logger("mdm.writer")

ATTEMPTS = 3  # per batch, for transactions that fail on a conflict with a concurrent writer


class Busy(Exception):
    """The tenant's queue is full, or the writer has stopped: answer 503."""


@dataclass(slots=True)
class Job:
    envelope: Envelope
    delivery: Delivery | None  # None: refused before it could be parsed
    refusal: tuple[str, str] | None  # (reason, detail) of such a refusal
    future: asyncio.Future[Outcome]


class TenantWriter:
    def __init__(self, tenant: TenantContext, settings: MdmSettings, metrics: MdmMetrics,
                 max_queued: int = 0) -> None:
        self.tenant = tenant
        self.settings = settings
        self.metrics = metrics
        self.max_queued = max_queued or 32 * settings.batch_max
        self._queue: deque[Job] = deque()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._stopped = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"mdm-writer-{self.tenant.name}")

    def submit(self, envelope: Envelope, delivery: Delivery | None = None,
               refusal: tuple[str, str] | None = None) -> asyncio.Future[Outcome]:
        """Queue a delivery (parsed, or refused before parsing) for the next batch; the future is
        its outcome once committed. Raises Busy."""
        if self._stopped or len(self._queue) >= self.max_queued:
            raise Busy("stopped" if self._stopped else f"{len(self._queue)} deliveries waiting")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append(Job(envelope, delivery, refusal, future))
        self.metrics.queued.labels(tenant=self.tenant.name).set(len(self._queue))
        self._wake.set()
        return future

    async def stop(self) -> None:
        """Store what is queued, then stop (SIGTERM: the open batch is finished)."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        if self.task is not None:
            await self.task

    async def _run(self) -> None:
        s = self.settings
        while True:
            if not self._queue:
                if self._stopping:
                    break
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(self._queue) < s.batch_max and s.batch_wait_s > 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):  # let concurrent deliveries join the batch
                    await asyncio.wait_for(self._stop.wait(), s.batch_wait_s)
            batch = [self._queue.popleft() for _ in range(min(s.batch_max, len(self._queue)))]
            self.metrics.queued.labels(tenant=self.tenant.name).set(len(self._queue))
            await self._store(batch)
        self._stopped = True

    async def _store(self, batch: list[Job]) -> None:
        name = self.tenant.name
        t0 = time.monotonic()
        try:
            outcomes = await self._transaction(batch)
        except Exception as err:
            self.metrics.batch_failures.labels(tenant=name, error=type(err).__name__).inc()
            if len(batch) > 1:
                log.warning("mdm.batch_failed", tenant=name, size=len(batch), error=repr(err)[:300],
                            action="storing the deliveries one by one")
                for job in batch:
                    await self._store([job])
                return
            log.error("mdm.delivery_not_stored", tenant=name, gateway=batch[0].envelope.gateway_id,
                      sha256=batch[0].envelope.sha256[:16], error=repr(err)[:300])
            if not batch[0].future.done():
                batch[0].future.set_exception(err)
            return
        self.metrics.commit_seconds.labels(tenant=name).observe(time.monotonic() - t0)
        self.metrics.batch_size.labels(tenant=name).observe(len(batch))
        for job, outcome in zip(batch, outcomes, strict=True):
            if not job.future.done():
                job.future.set_result(outcome)

    async def _transaction(self, batch: list[Job]) -> list[Outcome]:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.tenant.sessions() as session, session.begin():
                    parsed = [(j.envelope, j.delivery) for j in batch if j.delivery is not None]
                    stored = iter(await ingest(session, parsed, dt.datetime.now(dt.UTC)) if parsed else [])
                    outcomes = []
                    for job in batch:
                        if job.delivery is not None:
                            outcomes.append(next(stored))
                        else:
                            assert job.refusal is not None
                            outcomes.append(await log_refusal(session, job.envelope, *job.refusal))
                return outcomes
            except (IntegrityError, DBAPIError) as err:
                if attempt == ATTEMPTS or not _conflict(err):
                    raise
                log.info("mdm.batch_retried", tenant=self.tenant.name, size=len(batch), attempt=attempt,
                         error=type(getattr(err, "orig", err)).__name__)
        raise AssertionError("unreachable")


def _conflict(err: DBAPIError) -> bool:
    """A unique violation, serialization failure or deadlock: another writer got there first."""
    code = getattr(getattr(err, "orig", None), "sqlstate", None) or getattr(getattr(err, "orig", None), "pgcode", None)
    return isinstance(err, IntegrityError) or code in ("23505", "40001", "40P01")
