"""Domain steps of readouts: sealed containers from the gateway into the EMTs' outbox, and the
outcome of an EMT's on-demand readout request."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import activity

from activities.steps_common import Steps, domain_refusals
from domain.readouts import service as readouts


@dataclass(frozen=True, kw_only=True)
class SealedReadout:
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


@dataclass(frozen=True, kw_only=True)
class FinishEmtReadoutInput:
    request_id: str
    container_id: int | None = None
    error_type: str | None = None
    error_message: str | None = None


class ReadoutSteps(Steps):
    @activity.defn
    @domain_refusals
    async def deliver_readouts_to_outbox(self, inp: StoreReadoutsInput) -> StoredReadouts:
        async with self._session() as session, session.begin():
            ids = await readouts.store_containers(session, inp.gateway_id, inp.reason, [
                readouts.Container(r.recipient, r.meter_id, r.container_b64, r.profile_id, r.metering_point)
                for r in inp.readouts], workflow_id=activity.info().workflow_id or "", process_id=inp.process_id)
        return StoredReadouts(ids=ids)

    @activity.defn
    async def finish_emt_readout_request(self, inp: FinishEmtReadoutInput) -> None:
        async with self._session() as session, session.begin():
            await readouts.finish_request(session, inp.request_id, container_id=inp.container_id,
                                          error_type=inp.error_type, error_message=inp.error_message)
