"""A gateway's life: from stock to operation and out again, every step checked and recorded."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.models import AuditEntry
from domain.devices.lifecycle import IllegalTransition, allowed_next
from domain.devices.service import transition_gateway
from tests.domain.conftest import make_gateway

PATH = ["pre_personalized", "personalized", "installed", "in_operation", "deinstalled"]


async def test_a_gateway_walks_its_lifecycle_and_every_step_is_logged(session: AsyncSession) -> None:
    gw = await make_gateway(session)
    for state in PATH:
        await transition_gateway(session, gw, state, reason=f"step {state}")
        assert gw.state == state
    entries = (await session.scalars(select(AuditEntry).where(
        AuditEntry.object_type == "gateway", AuditEntry.object_id == gw.device_id, AuditEntry.action == "transition")
        .order_by(AuditEntry.id))).all()
    assert [e.changes["state"]["new"] for e in entries] == PATH
    assert entries[0].changes["state"]["old"] == "in_stock" and entries[0].changes["reason"] == "step pre_personalized"


async def test_illegal_transitions_are_refused_with_the_allowed_ones(session: AsyncSession) -> None:
    gw = await make_gateway(session)
    with pytest.raises(IllegalTransition) as caught:
        await transition_gateway(session, gw.device_id, "in_operation")
    assert caught.value.status_code == 409 and caught.value.code == "illegal_state_transition"
    assert caught.value.details["allowed"] == ["faulty", "pre_personalized"]
    assert gw.state == "in_stock"


@pytest.mark.parametrize("start", ["in_stock", "personalized", "in_operation", "deinstalled"])
async def test_any_state_can_become_faulty_and_go_back_to_stock(session: AsyncSession, start: str) -> None:
    gw = await make_gateway(session, state=start)
    await transition_gateway(session, gw, "faulty", reason="tamper alarm")
    await transition_gateway(session, gw, "in_stock", reason="repaired")
    assert gw.state == "in_stock"


async def test_repeating_a_transition_is_a_no_op_for_retried_activities(session: AsyncSession) -> None:
    gw = await make_gateway(session, state="installed")
    await transition_gateway(session, gw, "in_operation")
    changed_at = gw.state_changed_at
    await transition_gateway(session, gw, "in_operation")
    assert gw.state_changed_at == changed_at
    count = len((await session.scalars(select(AuditEntry).where(AuditEntry.object_id == gw.device_id,
                                                                AuditEntry.action == "transition"))).all())
    assert count == 1


def test_only_operation_leads_to_deinstallation() -> None:
    assert "deinstalled" in allowed_next("in_operation")
    assert all("deinstalled" not in allowed_next(s) for s in ("in_stock", "personalized", "installed"))
