"""The fleet over time: assignments with periods, overlaps refused, topology as of a date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from domain.locations.models import MarketLocation, MeteringPoint
from domain.locations.schemas import MarketLocationCreate, MeteringPointCreate
from domain.locations.service import create
from domain.partners.schemas import MarketPartnerCreate
from domain.partners.service import create as create_partner
from domain.records import AssignmentOverlap
from domain.secrets import SecretBox
from domain.topology.errors import InvalidPeriod, UnknownReference
from domain.topology.service import assign, end_assignment, gateway_assignment_history, gateway_topology
from tests.domain.conftest import make_connection_point, make_gateway, make_meter, malo, melo, mp_id

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


async def test_a_meter_cannot_hang_on_two_gateways_at_once(session: AsyncSession, box: SecretBox) -> None:
    g1, g2 = await make_gateway(session), await make_gateway(session)
    meter = await make_meter(session, box)
    first = await assign(session, "meter-gateway", meter.device_id, g1.device_id, valid_from=day(0))
    with pytest.raises(AssignmentOverlap) as caught:
        await assign(session, "meter-gateway", meter.device_id, g2.device_id, valid_from=day(10))
    assert caught.value.status_code == 409
    assert caught.value.details["conflicting_assignment"]["id"] == first.id
    # Ending the first assignment makes room: the swap is history, not an overwrite.
    await end_assignment(session, "meter-gateway", first.id, valid_to=day(10))
    await assign(session, "meter-gateway", meter.device_id, g2.device_id, valid_from=day(10))
    # Re-dating the end into the second period is an overlap too.
    with pytest.raises(AssignmentOverlap):
        await end_assignment(session, "meter-gateway", first.id, valid_to=day(11))


async def test_periods_and_references_are_validated(session: AsyncSession, box: SecretBox) -> None:
    gw = await make_gateway(session)
    meter = await make_meter(session, box)
    with pytest.raises(InvalidPeriod):
        await assign(session, "meter-gateway", meter.device_id, gw.device_id, valid_from=day(5), valid_to=day(5))
    with pytest.raises(UnknownReference) as caught:
        await assign(session, "meter-gateway", meter.device_id, "EEMH0199999999", valid_from=day(0))
    assert caught.value.details["field"] == "gateway"
    with pytest.raises(Exception, match="invalid device ID"):
        await assign(session, "meter-gateway", "nonsense", gw.device_id)


async def test_topology_as_of_a_date_shows_what_was_installed_then(session: AsyncSession, box: SecretBox) -> None:
    netz, vertrieb = mp_id(), mp_id()
    await create_partner(session, MarketPartnerCreate(mp_id=netz, name="Netz", roles=["VNB", "MSB"]))
    await create_partner(session, MarketPartnerCreate(mp_id=vertrieb, name="Vertrieb", roles=["LF"]))
    gw = await make_gateway(session)
    cp = await make_connection_point(session, grid_operator=netz)
    old_meter, new_meter = await make_meter(session, box), await make_meter(session, box)
    mp = await create(session, MeteringPoint, MeteringPointCreate(melo=melo(), grid_operator=netz, msb=netz))
    ml = await create(session, MarketLocation, MarketLocationCreate(malo=malo(), supplier=vertrieb))
    await assign(session, "gateway-connection-point", gw.device_id, cp.code, valid_from=day(0))
    await assign(session, "meter-gateway", old_meter.device_id, gw.device_id, valid_from=day(0), valid_to=day(100))
    await assign(session, "meter-gateway", new_meter.device_id, gw.device_id, valid_from=day(100))
    await assign(session, "meter-metering-point", old_meter.device_id, mp.melo, valid_from=day(0), valid_to=day(100))
    await assign(session, "meter-metering-point", new_meter.device_id, mp.melo, valid_from=day(100))
    await assign(session, "metering-point-market-location", mp.melo, ml.malo, valid_from=day(0))

    before = await gateway_topology(session, gw, day(50))
    after = await gateway_topology(session, gw, day(150))
    assert [m.device_id for m in before.meters] == [old_meter.device_id]
    assert [m.device_id for m in after.meters] == [new_meter.device_id]
    node = after.meters[0].metering_points[0]
    assert node.melo == mp.melo and node.market_locations[0].malo == ml.malo
    assert after.connection_point is not None and after.connection_point.code == cp.code
    served = {p.mp_id: p.serves_as for p in after.market_partners}
    assert served == {netz: ["grid_operator", "msb"], vertrieb: ["supplier"]}
    assert (await gateway_topology(session, gw, day(-1))).connection_point is None
    history = await gateway_assignment_history(session, gw)
    assert {a.kind for a in history} == {"gateway-connection-point", "meter-gateway"} and len(history) == 3


async def test_timestamps_without_offset_are_german_local_time(session: AsyncSession, box: SecretBox) -> None:
    gw, meter = await make_gateway(session), await make_meter(session, box)
    made = await assign(session, "meter-gateway", meter.device_id, gw.device_id, valid_from=datetime(2024, 7, 1))
    assert made.valid_from == datetime(2024, 6, 30, 22, tzinfo=UTC)  # CEST = UTC+2
    then = await gateway_topology(session, gw, datetime(2024, 7, 1))
    assert [m.device_id for m in then.meters] == [meter.device_id]
    assert (await gateway_topology(session, gw, datetime(2024, 6, 30, 23, 59))).meters == []
