"""A scheduled run freezes its targets like any process; a run with nothing to do (no gateway, or
every one held by another process) is no error and leaves nothing behind."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.processes.models import Process
from domain.processes.service import start_scheduled
from tests.domain.conftest import make_gateway


async def _processes(session: AsyncSession, schedule: str) -> int:
    found = await session.scalar(select(func.count()).select_from(Process)
                                 .where(Process.initiator == f"schedule:{schedule}"))
    return int(found or 0)


async def test_a_scheduled_run_with_nothing_to_do_stores_nothing(session: AsyncSession) -> None:
    gw = await make_gateway(session, state="installed")
    first = await start_scheduled(session, "clock-check", "time_sync", f"device_id = {gw.device_id}", {}, 5)
    assert first.process is not None and first.process.total == 1 and first.why == ""

    busy = await start_scheduled(session, "clock-check", "time_sync", f"device_id = {gw.device_id}", {}, 5)
    assert busy.process is None and busy.why == "every matching gateway is held by another active process"
    empty = await start_scheduled(session, "clock-check", "time_sync", "device_id = EXYZ0000000000", {}, 5)
    assert empty.process is None and empty.why == "the filter matches no gateway"
    assert await _processes(session, "clock-check") == 1  # the refused runs rolled back to their savepoints
