"""Throttling: an EMT's on-demand readout gets the next free session before a bulk rollout that
queued earlier; wake-ups per second are spread; limits per segment hold."""

from __future__ import annotations

import asyncio
import time

from headend import contract as M
from headend.config import HeadendSettings
from headend.metrics import HeadendMetrics
from headend.throttle import PriorityRateLimiter, Throttle


async def test_priority_first_within_session_limit() -> None:
    throttle = Throttle(HeadendSettings(tenant_max_sessions=1, segment_max_sessions=0), HeadendMetrics())
    order: list[str] = []
    release = asyncio.Event()

    async def job(name: str, priority: int) -> None:
        async with throttle.session("t", None, priority):
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(job("first", M.PRIORITY_BULK))
    await asyncio.sleep(0.01)
    bulk = [asyncio.create_task(job(f"bulk-{i}", M.PRIORITY_BULK)) for i in range(3)]
    await asyncio.sleep(0.01)
    emt = asyncio.create_task(job("emt", M.PRIORITY_EMT_ON_DEMAND))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(first, emt, *bulk)
    assert order == ["first", "emt", "bulk-0", "bulk-1", "bulk-2"]


async def test_segment_limit_and_cancellation() -> None:
    metrics = HeadendMetrics()
    throttle = Throttle(HeadendSettings(tenant_max_sessions=10, segment_max_sessions=2), metrics)
    held = asyncio.Event()
    active = {"cell-a": 0, "max": 0}

    async def job() -> None:
        async with throttle.session("t", "cell-a", 2):
            active["cell-a"] += 1
            active["max"] = max(active["max"], active["cell-a"])
            await held.wait()
            active["cell-a"] -= 1

    tasks = [asyncio.create_task(job()) for _ in range(5)]
    await asyncio.sleep(0.02)
    assert active["max"] == 2
    tasks[4].cancel()  # a waiter that gives up must not leak a slot
    held.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert throttle._session("t", "cell-a").in_use == 0
    assert throttle._session("t", None).in_use == 0
    assert metrics.registry.get_sample_value("gridgate_headend_throttle_limit",
                                             {"scope": "segment", "kind": "sessions"}) == 2


async def test_wakeup_rate_is_spread_and_prioritised() -> None:
    limiter = PriorityRateLimiter(50.0)
    order: list[int] = []
    t0 = time.monotonic()

    async def one(i: int, priority: int) -> None:
        await limiter.acquire(priority)
        order.append(i)

    await asyncio.gather(*(one(i, 3) for i in range(10)), one(99, 0))
    elapsed = time.monotonic() - t0
    assert 0.15 <= elapsed < 1.0  # 11 grants at 50/s: about 0.2 s
    assert order.index(99) <= 2  # the urgent one goes right after the immediate grants (burst of 2)
