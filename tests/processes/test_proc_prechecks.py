"""Master-data checks of process parameters that can refuse a start before anything runs
(domain/tariffs/prechecks.py; the same checks run inside the workflows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import GridgateError
from domain.devices.models import Gateway
from domain.tariffs.prechecks import PRECHECKS
from tests.fleet import Fleet, meters_of


async def _check(fleet: Fleet, type_: str, gid: str, params: dict[str, Any]) -> None:
    async with fleet.ctx.sessions() as session:
        await PRECHECKS[type_](session, Gateway.device_id == gid, params)


async def test_bad_parameters_are_named_before_a_process_starts(fleet: Fleet) -> None:
    a, b = fleet.take(2, where=lambda i: i % 4 != 0)
    gid = fleet.gid(a)
    own, foreign = meters_of(a)[0], meters_of(b)[0]
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("profile_rollout", {"taf_order_ids": [987654321]}, "unknown_taf_order"),
        ("meter_pairing", {"meter_ids": ["1EMH0599999999"]}, "unknown_meters"),
        ("meter_exchange", {"old_meter_id": foreign, "new_meter_id": own}, "meter_not_assigned"),
        ("meter_exchange", {"old_meter_id": own, "new_meter_id": foreign}, "meter_assigned_elsewhere"),
        ("meter_exchange", {"old_meter_id": own, "new_meter_id": "1EMH0599999999"}, "unknown_meters"),
        ("meter_exchange", {"old_meter_id": own, "new_meter_id": foreign,
                            "exchanged_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "invalid_params"),
    ]
    for type_, params, code in cases:
        with pytest.raises(GridgateError) as err:
            await _check(fleet, type_, gid, params)
        assert err.value.code == code, (type_, params, err.value.message)
    await _check(fleet, "meter_pairing", gid, {"meter_ids": [own]})
    await _check(fleet, "profile_rollout", gid, {"taf_order_ids": []})
