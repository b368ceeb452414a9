"""A gateway at its site: what keeps it from being commissioned, which meters it pairs, a meter
exchange checked and carried out twice with the same result, and what deinstallation ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from domain.devices.models import Gateway
from domain.installation import meters
from domain.installation.deinstallation import record_deinstallation
from domain.installation.errors import (
    InvalidExchange,
    MeterAssignedElsewhere,
    MeterNotAssigned,
    NoMeterAssigned,
    NoMeterKey,
)
from domain.installation.readiness import check_commissioning_readiness
from domain.locations.models import MeteringPoint
from domain.locations.schemas import MeteringPointCreate
from domain.locations.service import create
from domain.secrets import SecretBox
from domain.tariffs.rollout import MasterDataIncomplete
from domain.topology.service import assign, gateway_topology
from tests.domain.conftest import make_connection_point, make_gateway, make_meter, melo

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MK0 = "f0e1d2c3b4a5968778695a4b3c2d1e0f"


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


async def _on_gateway(session: AsyncSession, box: SecretBox, gw: Gateway, *, mk0: str | None = MK0,
                      with_melo: bool = True) -> tuple[str, str | None]:
    meter = await make_meter(session, box, mk0=mk0)
    await assign(session, "meter-gateway", meter.device_id, gw.device_id, valid_from=day(0))
    if not with_melo:
        return meter.device_id, None
    mp = await create(session, MeteringPoint, MeteringPointCreate(melo=melo()))
    await assign(session, "meter-metering-point", meter.device_id, mp.melo, valid_from=day(0))
    return meter.device_id, mp.melo


async def test_readiness_lists_everything_missing_in_one_refusal(session: AsyncSession, box: SecretBox) -> None:
    gw = await make_gateway(session)
    with pytest.raises(MasterDataIncomplete) as bare:
        await check_commissioning_readiness(session, gw.device_id, datetime.now(UTC))
    assert bare.value.code == "master_data_incomplete"
    assert bare.value.message.startswith("master data incomplete: the gateway is in_stock, not installed; "
                                         "not installed at a connection point; no meter assigned; "
                                         "no TLS certificate of the gateway in the certificate store; ")

    meter, _ = await _on_gateway(session, box, gw, mk0=None, with_melo=False)
    with pytest.raises(MasterDataIncomplete) as caught:
        await check_commissioning_readiness(session, gw.device_id, datetime.now(UTC))
    assert "no meter assigned" not in caught.value.message
    assert (f"connection point; meter {meter} measures no metering point; meter {meter} has no MK0 for LMN "
            "pairing; ") in caught.value.message


async def test_meters_to_pair_must_be_on_the_gateway_and_keyed(session: AsyncSession, box: SecretBox) -> None:
    gw = await make_gateway(session)
    with pytest.raises(NoMeterAssigned, match=f"no meter is assigned to {gw.device_id}"):
        await meters.meters_to_pair(session, gw.device_id)
    keyed, _ = await _on_gateway(session, box, gw)
    assert await meters.meters_to_pair(session, gw.device_id) == [meters.LmnMeter(keyed, "lmn-wired")]
    stranger = await make_meter(session, box, mk0=MK0)
    with pytest.raises(MeterNotAssigned) as foreign:
        await meters.meters_to_pair(session, gw.device_id, [keyed, stranger.device_id])
    assert foreign.value.code == "meter_not_assigned"
    keyless, _ = await _on_gateway(session, box, gw, mk0=None)
    with pytest.raises(NoMeterKey, match=f"meter\\(s\\) {keyless} have no MK0 in master data"):
        await meters.meters_to_pair(session, gw.device_id)


async def test_a_meter_exchange_moves_the_assignments_once(session: AsyncSession, box: SecretBox) -> None:
    gw = await make_gateway(session, state="in_operation")
    old, old_melo = await _on_gateway(session, box, gw)
    new = (await make_meter(session, box, mk0=MK0)).device_id
    at = day(100).isoformat()

    plan = await meters.check_meter_exchange(session, gw.device_id, old, new, at)
    assert (plan.old.meter_id, plan.new.meter_id, plan.metering_points) == (old, new, [old_melo])
    assert plan.already_moved is False and plan.final_readouts == [] and plan.profiles_to_delete == []
    assert await meters.move_meter_assignments(session, gw.device_id, old, new, at) == meters.MovedAssignments(2, 2)

    # A retried step finds the work done: the check says so, the move changes nothing.
    again = await meters.check_meter_exchange(session, gw.device_id, old, new, at)
    assert again.already_moved is True and again.metering_points == [old_melo]
    assert await meters.move_meter_assignments(session, gw.device_id, old, new, at) == meters.MovedAssignments(0, 0)
    after = await gateway_topology(session, gw, day(150))
    assert [m.device_id for m in after.meters] == [new]
    assert [p.melo for p in after.meters[0].metering_points] == [old_melo]


async def test_a_meter_exchange_that_does_not_fit_is_refused(session: AsyncSession, box: SecretBox) -> None:
    gw, other = await make_gateway(session), await make_gateway(session)
    old, _ = await _on_gateway(session, box, gw)
    elsewhere, _ = await _on_gateway(session, box, other)
    keyless = (await make_meter(session, box)).device_id
    new = (await make_meter(session, box, mk0=MK0)).device_id
    at = day(100).isoformat()
    cases = [
        (old, new, "2024-04-10T00:00:00", InvalidExchange, "exchanged_at needs a UTC offset"),
        (old, new, (datetime.now(UTC) + timedelta(days=1)).isoformat(), InvalidExchange,
         "exchanged_at lies in the future"),
        (old, keyless, at, NoMeterKey, f"meter {keyless} has no MK0 in master data"),
        (old, elsewhere, at, MeterAssignedElsewhere, f"meter {elsewhere} is already assigned to a gateway at "),
        (elsewhere, new, at, MeterNotAssigned, f"meter {elsewhere} is not on gateway {gw.device_id} at "),
    ]
    for old_id, new_id, when, error, message in cases:
        with pytest.raises(error) as caught:
            await meters.check_meter_exchange(session, gw.device_id, old_id, new_id, when)
        assert caught.value.message.startswith(message), caught.value.message
    assert InvalidExchange.code == "invalid_params"


async def test_deinstallation_ends_place_and_meters_and_repeats_as_a_no_op(session: AsyncSession,
                                                                           box: SecretBox) -> None:
    gw = await make_gateway(session, state="in_operation")
    cp = await make_connection_point(session)
    await assign(session, "gateway-connection-point", gw.device_id, cp.code, valid_from=day(0))
    await _on_gateway(session, box, gw)
    first = await record_deinstallation(session, gw.device_id, by="test")
    assert (first.assignments_ended, first.profiles_ended, first.certificates_marked) == (2, 0, 0)
    assert gw.state == "deinstalled"
    now = await gateway_topology(session, gw)
    assert now.connection_point is None and now.meters == []
    again = await record_deinstallation(session, gw.device_id, by="test")
    assert again.assignments_ended == 0 and gw.state == "deinstalled"
