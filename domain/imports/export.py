"""CSV export of a filtered entity list, streamed from a server-side cursor in batches: memory
holds one batch, whatever the fleet size. The columns are those of the import, so an exported
file re-imports without changes (secrets such as MK0 are never exported)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.catalogue.models import DeviceType
from domain.devices.models import ClsModule, Gateway, Meter
from domain.filters.iterate import FilterArg, resolve
from domain.locations.models import ConnectionPoint, MarketLocation, MeteringPoint

BATCH = 2000


def _device(model: Any, *columns: str) -> tuple[list[str], Any]:
    names = ["device_id", "device_type", "firmware_version", *columns]
    stmt = (select(model.device_id, DeviceType.code, model.firmware_version, *[getattr(model, c) for c in columns])
            .join(DeviceType, DeviceType.id == model.device_type_id))
    return names, stmt


def _plain(model: Any, *columns: str) -> tuple[list[str], Any]:
    return list(columns), select(*[getattr(model, c) for c in columns])


EXPORTS: dict[str, tuple[Any, Any]] = {
    "gateway": (Gateway, lambda: _device(Gateway, "wan_address", "wakeup_address", "network_segment", "state")),
    "meter": (Meter, lambda: _device(Meter, "calibration_date", "calibration_valid_until", "lmn_type")),
    "cls_module": (ClsModule, lambda: _device(ClsModule, "controls")),
    "connection_point": (ConnectionPoint, lambda: _plain(ConnectionPoint, "code", "street", "house_number",
                                                         "postcode", "city", "grid_area", "grid_operator")),
    "metering_point": (MeteringPoint, lambda: _plain(MeteringPoint, "melo", "direction", "grid_operator", "msb")),
    "market_location": (MarketLocation, lambda: _plain(MarketLocation, "malo", "direction", "supplier")),
}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


async def export_csv(session: AsyncSession, entity: str, filter: FilterArg = None, *, saved: str | None = None,
                     at: datetime | None = None) -> AsyncIterator[str]:
    """CSV text chunks (header first) of the ``entity`` rows matching the filter, ordered by id."""
    model, build = EXPORTS[entity]
    names, stmt = build()
    cond = await resolve(session, entity, filter, saved=saved, at=at)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    result = await session.stream(stmt.where(cond).order_by(model.id).execution_options(yield_per=BATCH))
    async for batch in result.partitions(BATCH):
        writer.writerows([[_cell(v) for v in row] for row in batch])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # the header of an empty export
        yield buffer.getvalue()
