"""Throttling of gateway work per tenant and per network segment (mobile cell / APN group), with
priorities: lower number first (an EMT's on-demand readout before a bulk rollout).

* Sessions: how many gateways may be worked on at once (a command in flight, or a wake-up whose
  connection is awaited).
* Wake-ups: how many wake-up packets per second may be sent.

Both are granted in priority order, FIFO within a priority. A tenant slot is taken before a
segment slot, always in that order, so two requests cannot deadlock each other.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from headend.config import HeadendSettings
from headend.metrics import HeadendMetrics

_seq = itertools.count()


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class PrioritySemaphore:
    """At most ``limit`` holders (0 = unlimited); waiters are served by priority."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: list[_Waiter] = []

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.future.done())

    async def acquire(self, priority: int) -> None:
        if self.limit <= 0 or (self.in_use < self.limit and not self._waiters):
            self.in_use += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, _Waiter(priority, next(_seq), fut))
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # granted while being cancelled: hand it on
            raise

    def release(self) -> None:
        self.in_use -= 1
        while self._waiters and (self.limit <= 0 or self.in_use < self.limit):
            w = heapq.heappop(self._waiters)
            if not w.future.done():
                self.in_use += 1
                w.future.set_result(None)


class PriorityRateLimiter:
    """At most ``rate`` grants per second (0 = unlimited), smoothed (one grant every 1/rate s)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0
        self._waiters: list[_Waiter] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.future.done())

    async def acquire(self, priority: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        if not self._waiters and now >= self._next:
            self._next = max(self._next, now - 1.0 / self.rate) + 1.0 / self.rate
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, _Waiter(priority, next(_seq), fut))
        self._schedule()
        await fut

    def _schedule(self) -> None:
        if self._timer is not None or not self._waiters:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(0.0, self._next - time.monotonic()), self._grant)

    def _grant(self) -> None:
        self._timer = None
        now = time.monotonic()
        while self._waiters and now >= self._next:
            w = heapq.heappop(self._waiters)
            if w.future.done():
                continue
            w.future.set_result(None)
            self._next = max(self._next, now - 1.0 / self.rate) + 1.0 / self.rate
        self._schedule()


class Throttle:
    def __init__(self, settings: HeadendSettings, metrics: HeadendMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._sessions: dict[tuple[str, str | None], PrioritySemaphore] = {}
        self._wakeups: dict[tuple[str, str | None], PriorityRateLimiter] = {}
        s = settings
        for scope, kind, value in (("tenant", "sessions", s.tenant_max_sessions),
                                   ("segment", "sessions", s.segment_max_sessions),
                                   ("tenant", "wakeups_per_s", s.tenant_wakeups_per_s),
                                   ("segment", "wakeups_per_s", s.segment_wakeups_per_s)):
            metrics.throttle_limit.labels(scope=scope, kind=kind).set(value)

    def _session(self, tenant: str, segment: str | None) -> PrioritySemaphore:
        key = (tenant, segment)
        sem = self._sessions.get(key)
        if sem is None:
            limit = self.settings.tenant_max_sessions if segment is None else self.settings.segment_max_sessions
            sem = self._sessions[key] = PrioritySemaphore(limit)
        return sem

    def _wakeup(self, tenant: str, segment: str | None) -> PriorityRateLimiter:
        key = (tenant, segment)
        lim = self._wakeups.get(key)
        if lim is None:
            rate = self.settings.tenant_wakeups_per_s if segment is None else self.settings.segment_wakeups_per_s
            lim = self._wakeups[key] = PriorityRateLimiter(rate)
        return lim

    @asynccontextmanager
    async def session(self, tenant: str, segment: str | None, priority: int) -> AsyncIterator[None]:
        """Hold a session slot of the tenant and, if the gateway has one, of its segment."""
        sems = [self._session(tenant, None)] + ([self._session(tenant, segment)] if segment else [])
        taken: list[PrioritySemaphore] = []
        self.metrics.throttle_waiting.labels(scope="tenant", kind="sessions").inc()
        try:
            for sem in sems:
                await sem.acquire(priority)
                taken.append(sem)
        except BaseException:
            for sem in taken:
                sem.release()
            raise
        finally:
            self.metrics.throttle_waiting.labels(scope="tenant", kind="sessions").dec()
        self._gauge(tenant, segment)
        try:
            yield
        finally:
            for sem in taken:
                sem.release()
            self._gauge(tenant, segment)

    def _gauge(self, tenant: str, segment: str | None) -> None:
        self.metrics.throttle_in_use.labels(scope="tenant", key=tenant).set(self._session(tenant, None).in_use)
        if segment:
            self.metrics.throttle_in_use.labels(scope="segment", key=f"{tenant}/{segment}").set(
                self._session(tenant, segment).in_use)

    async def wakeup(self, tenant: str, segment: str | None, priority: int) -> None:
        """Wait until a wake-up may be sent for a gateway of ``tenant``/``segment``."""
        self.metrics.throttle_waiting.labels(scope="tenant", kind="wakeups").inc()
        try:
            await self._wakeup(tenant, None).acquire(priority)
            if segment:
                await self._wakeup(tenant, segment).acquire(priority)
        finally:
            self.metrics.throttle_waiting.labels(scope="tenant", kind="wakeups").dec()
