"""Domain steps of readouts: the outcome of an EMT's on-demand readout request, and the
acknowledgements of readouts the gateway delivered to the EMTs itself (docs/protocol.md 10.9,
10.10, 14) as workflow results.

``deliver_readouts_to_outbox`` is kept only for workflows started before the gateway delivered
readouts itself (their old branch stores the containers the gateway then returned; see
docs/processes.md, "Readouts before the gateway delivered them itself"). Remove it together with
``domain.readouts.legacy_outbox`` and the table ``readout_outbox``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import activity

import headend.contract as gc
from activities.steps_common import Steps, domain_refusals
from domain.readouts import legacy_outbox
from domain.readouts import service as readouts


def acknowledged(d: gc.ReadoutDelivery) -> dict[str, Any]:
    """A delivery the gateway started, as a process result records it (pure: workflows use it)."""
    return {"profile": d.profile_id, "taf": d.taf, "recipient": d.recipient, "meter": d.meter_id,
            "reason": d.reason, "delivery_ref": d.delivery_ref, "values_at": d.values_at}


# ---------------------------------------------------------------------------- EMT readout requests
@dataclass(frozen=True, kw_only=True)
class FinishEmtReadoutInput:
    request_id: str
    container_id: int | None = None  # requests of workflows started before the change only
    error_type: str | None = None
    error_message: str | None = None
    delivery: gc.ReadoutDelivery | None = None  # what the gateway acknowledged


# ---------------------------------------------------------------------------- kept for old workflows
@dataclass(frozen=True, kw_only=True)
class SealedReadout:
    """Before the change: a container the gateway returned, sealed for the EMT."""

    recipient: str
    meter_id: str
    container_b64: str
    profile_id: str | None = None
    metering_point: str | None = None


@dataclass(frozen=True, kw_only=True)
class StoreReadoutsInput:
    gateway_id: str
    reason: str  # on_demand | first_readout | final_readout | meter_exchange_final | meter_exchange_initial
    readouts: list[SealedReadout] = field(default_factory=list)
    process_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class StoredReadouts:
    ids: list[int]


class ReadoutSteps(Steps):
    @activity.defn
    async def finish_emt_readout_request(self, inp: FinishEmtReadoutInput) -> None:
        ack = None
        if inp.delivery is not None:
            d = inp.delivery
            ack = readouts.Acknowledged(profile_id=d.profile_id, taf=d.taf, reason=d.reason,
                                        delivery_ref=d.delivery_ref,
                                        values_at=datetime.fromisoformat(d.values_at.replace("Z", "+00:00")))
        async with self._session() as session, session.begin():
            await readouts.finish_request(session, inp.request_id, delivery=ack, container_id=inp.container_id,
                                          error_type=inp.error_type, error_message=inp.error_message)

    # ------------------------------------------------------------------------ kept for old workflows
    @activity.defn
    @domain_refusals
    async def deliver_readouts_to_outbox(self, inp: StoreReadoutsInput) -> StoredReadouts:
        """Kept only for workflows started before the gateway delivered readouts itself."""
        async with self._session() as session, session.begin():
            ids = await legacy_outbox.store_containers(session, inp.gateway_id, inp.reason, [
                legacy_outbox.Container(r.recipient, r.meter_id, r.container_b64, r.profile_id, r.metering_point)
                for r in inp.readouts], workflow_id=activity.info().workflow_id or "", process_id=inp.process_id)
        return StoredReadouts(ids=ids)
