"""Filters over stored data: semantic versions, complements with NULLs, fields of current
assignments, as-of, keyset pages, counts and the batch iterator of mass processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from domain import listing
from domain.filters import count, iterate_gateway_ids, iterate_gateway_refs
from domain.filters.service import save
from domain.secrets import SecretBox
from domain.topology.service import assign, end_assignment
from tests.domain.conftest import make_connection_point, make_gateway, make_meter, serial


async def test_firmware_compares_as_versions_not_text(session: AsyncSession) -> None:
    seg = f"V{serial()}"
    for fw in ("2.1", "2.1.0", "2.10.0", "2.9.9", "V3.04.0100", None):
        await make_gateway(session, firmware=fw, segment=seg)

    async def n(expr: str) -> int:
        return await count(session, "gateway", f"segment = {seg} and ({expr})")

    assert await n("firmware < 2.1") == 0
    assert await n("firmware = 2.1") == 2  # 2.1 == 2.1.0
    assert await n("firmware > 2.9") == 3  # 2.9.9, 2.10.0, 3.4.100
    assert await n("firmware >= 3.4.100") == 1
    assert await n("firmware in (2.10, 2.9.9)") == 2
    assert await n("firmware is null") == 1
    # The complement of a condition includes gateways without a firmware version.
    assert await n("firmware != 2.1") == 4
    assert await n("not firmware < 3") == 2


async def test_fields_of_current_assignments_and_as_of(session: AsyncSession, box: SecretBox) -> None:
    area = f"AREA{serial()}"
    gw = await make_gateway(session)
    other = await make_gateway(session)
    meter = await make_meter(session, box)
    cp = await make_connection_point(session, grid_area=area)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    a = await assign(session, "gateway-connection-point", gw.device_id, cp.code, valid_from=t0)
    await assign(session, "meter-gateway", meter.device_id, gw.device_id, valid_from=t0)

    assert await count(session, "gateway", f"grid_area = {area}") == 1
    assert await count(session, "gateway", f"grid_area = {area.lower()}") == 0  # codes compare exactly (indexed)
    assert await count(session, "gateway", f"grid_area = {area} and city = BERLIN") == 1  # names ignore case
    assert await count(session, "meter", f"grid_area = {area} and gateway = {gw.device_id}") == 1
    assert await count(session, "gateway", f"device_id in ({gw.device_id}, {other.device_id}) and meter_count = 1") == 1
    assert await count(session, "gateway", f"device_id = {other.device_id} and grid_area != {area}") == 1
    assert await count(session, "connection_point", f"code = {cp.code} and gateway = {gw.device_id}") == 1

    # The installation ends: the gateway is no longer in the area now, but was in 2024.
    await end_assignment(session, "gateway-connection-point", a.id, valid_to=t0 + timedelta(days=365))
    assert await count(session, "gateway", f"grid_area = {area}") == 0
    assert await count(session, "gateway", f"grid_area = {area}", at=t0 + timedelta(days=30)) == 1


async def test_keyset_pages_cover_every_row_once_in_both_directions(session: AsyncSession) -> None:
    seg = f"P{serial()}"
    made = {(await make_gateway(session, segment=seg, firmware=f"1.{i % 4}")).device_id for i in range(11)}
    for sort in ("device_id", "-device_id", "firmware", "-firmware", "-updated_at", "state"):
        seen: list[str] = []
        after = None
        while True:
            items, after = await listing.page(session, "gateway", filter=f"segment = {seg}", sort=sort, limit=4,
                                              after=after)
            seen += [g.device_id for g in items]
            if after is None:
                break
        assert sorted(seen) == sorted(made) and len(seen) == 11, sort
    items, _ = await listing.page(session, "gateway", filter=f"segment = {seg}", sort="-device_id", limit=3)
    assert [g.device_id for g in items] == sorted(made, reverse=True)[:3]


async def test_mass_processes_iterate_in_batches_and_resume(session: AsyncSession) -> None:
    seg = f"M{serial()}"
    ids = sorted([(await make_gateway(session, segment=seg)).id for _ in range(7)])
    batches = [b async for b in iterate_gateway_ids(session, f"segment = {seg}", batch=3)]
    assert batches == [ids[:3], ids[3:6], ids[6:]]
    resumed = [b async for b in iterate_gateway_ids(session, f"segment = {seg}", batch=3, after=ids[3])]
    assert resumed == [ids[4:7]]
    refs = [r async for batch in iterate_gateway_refs(session, f"segment = {seg}", batch=5) for r in batch]
    assert [r.id for r in refs] == ids and refs[0].network_segment == seg and refs[0].state == "in_stock"


async def test_saved_filters_are_checked_and_combine_with_text(session: AsyncSession) -> None:
    seg = f"S{serial()}"
    await make_gateway(session, segment=seg, state="in_operation")
    await make_gateway(session, segment=seg, state="faulty")
    name = f"seg-{seg}"
    await save(session, name, "gateway", f"segment = {seg}")
    assert await count(session, "gateway", saved=name) == 2
    assert await count(session, "gateway", "state = faulty", saved=name) == 1
    items, _ = await listing.page(session, "gateway", saved=name, filter="state = in_operation")
    assert len(items) == 1


async def test_a_cursor_only_continues_its_own_sort(session: AsyncSession) -> None:
    import pytest

    from domain.records import InvalidCursor

    seg = f"C{serial()}"
    for _ in range(3):
        await make_gateway(session, segment=seg)
    _, after = await listing.page(session, "gateway", filter=f"segment = {seg}", sort="-updated_at", limit=1)
    assert after is not None
    for sort, cursor in (("firmware", after), ("-updated_at", "bm9wZQ"), ("-updated_at", after[:-3])):
        with pytest.raises(InvalidCursor):
            await listing.page(session, "gateway", filter=f"segment = {seg}", sort=sort, limit=1, after=cursor)
