"""The former readout outbox: sealed containers from admin answers, stored for the EMT.

Kept only for workflows started before the gateway delivered readouts to the EMT itself
(docs/processes.md, "Readouts before the gateway delivered them itself"): replaying such a workflow
on its old branch may still run ``ReadoutSteps.deliver_readouts_to_outbox``, which lands here.
Nothing reads the table any more. Remove this module, the activity and the table
``readout_outbox`` together once no such workflow can be running.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.readouts.models import ReadoutContainer
from domain.tariffs import repository as tariffs


@dataclass(frozen=True)
class Container:
    recipient: str
    meter_id: str
    container_b64: str
    profile_id: str | None = None
    metering_point: str | None = None


async def store_containers(session: AsyncSession, gateway_id: str, reason: str, containers: list[Container], *,
                           workflow_id: str, process_id: str | None = None) -> list[int]:
    """Put sealed containers into the outbox once each (by hash); returns their outbox ids. A container
    named by its profile only (a final readout) gets the metering point of the profile's order."""
    melos = await tariffs.metering_points_of_profiles(
        session, [c.profile_id for c in containers if c.profile_id and not c.metering_point])
    ids: list[int] = []
    for c in containers:
        raw = base64.b64decode(c.container_b64)
        sha = hashlib.sha256(raw).hexdigest()
        await session.execute(insert(ReadoutContainer).values(
            recipient=c.recipient, gateway_id=gateway_id, meter_id=c.meter_id,
            metering_point=c.metering_point or melos.get(c.profile_id or ""),
            profile_id=c.profile_id, reason=reason, container=raw, sha256=sha, workflow_id=workflow_id,
            process_id=process_id).on_conflict_do_nothing(index_elements=["sha256"]))
        found = await session.scalar(select(ReadoutContainer.id).where(ReadoutContainer.sha256 == sha))
        assert found is not None
        ids.append(int(found))
    return ids
