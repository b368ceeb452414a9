"""Starting and steering processes: the bridge between the tenant's process records (domain) and
their workflows (Temporal). Used by the API, the CLI and schedules."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from core.errors import ServiceUnavailable
from domain.processes import repository as repo
from domain.processes import service
from domain.processes.ids import mass_workflow_id
from domain.processes.models import Process
from domain.processes.types import process_type
from domain.tenancy.service import TenantContext
from workflows.common import MassProcessInput, PauseRequest, search_attributes

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Initiator:
    username: str
    ref: str  # pseudonymous reference for Temporal (no personal data in search attributes)


@dataclass(frozen=True)
class LinkOptions:
    connect_timeout_s: float = 120.0
    attempts: int = 4
    starts_per_run: int = 1000


async def start(tenant: TenantContext, client: Client, task_queue: str, type_name: str, target: service.Target,
                params: dict[str, object] | None, reason: str, initiator: Initiator,
                options: service.StartOptions = service.StartOptions(),
                link: LinkOptions = LinkOptions()) -> Process:
    async with tenant.sessions() as session, session.begin():
        process = await service.start(session, type_name, target, params, reason, initiator.username, options)
    ptype = process_type(type_name)
    try:
        await client.start_workflow(
            "MassProcess",
            MassProcessInput(process.id, ptype.name, ptype.workflow, dict(process.params), process.concurrency,
                             process.failure_threshold, process.failure_min_samples, initiator.ref,
                             connect_timeout_s=link.connect_timeout_s, attempts=link.attempts,
                             starts_per_run=link.starts_per_run),
            id=mass_workflow_id(process.id),
            task_queue=task_queue,
            search_attributes=search_attributes(ptype.name, process.id, initiator.ref),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except RPCError as err:
        async with tenant.sessions() as session, session.begin():
            await service.discard(session, process.id)
        raise ServiceUnavailable(f"Temporal did not accept the process: {err.message}",
                                 code="temporal_unavailable") from None
    log.info("process.started", tenant=tenant.name, process=process.id, type=ptype.name, total=process.total)
    return process


def _handle(client: Client, process_id: str) -> WorkflowHandle[object, object]:
    return client.get_workflow_handle(mass_workflow_id(process_id))


async def steer(tenant: TenantContext, client: Client, process_id: str, action: str, reason: str | None = None
                ) -> Process:
    """pause | resume | cancel. Refused (409) for a process that already ended."""
    async with tenant.sessions() as session:
        process = await service.get(session, process_id)
    if process.state in ("completed", "failed", "cancelled"):
        raise service.ProcessStateConflict(f"process {process_id} has already ended ({process.state})")
    if action == "resume" and process.state != "paused":
        raise service.ProcessStateConflict(f"process {process_id} is {process.state}, not paused")
    if action == "pause" and process.state == "paused":
        return process
    handle = _handle(client, process_id)
    try:
        if action == "pause":
            await handle.signal("pause", PauseRequest(reason or "paused by operator"))
        elif action == "resume":
            await handle.signal("resume")
        else:
            await handle.signal("cancel")
    except RPCError as err:
        raise ServiceUnavailable(f"could not reach the process workflow: {err.message}",
                                 code="temporal_unavailable") from None
    return process


async def counts(tenant: TenantContext, process_id: str, client: Client | None = None
                 ) -> tuple[Process, dict[str, int]]:
    """The process and its counts. With ``client``, a process still marked running whose workflow
    ended abnormally (failed, terminated, timed out) is recorded as ``failed``."""
    async with tenant.sessions() as session:
        process = await service.get(session, process_id)
        found = await repo.counts(session, process_id)
    if client is not None and process.state in ("running", "paused"):
        try:
            desc = await _handle(client, process_id).describe()
        except RPCError:
            return process, found
        if desc.status in (WorkflowExecutionStatus.FAILED, WorkflowExecutionStatus.TERMINATED,
                           WorkflowExecutionStatus.TIMED_OUT):
            async with tenant.sessions() as session, session.begin():
                process = await service.set_state(session, process_id, "failed")
            log.error("process.workflow_ended_abnormally", process=process_id, status=desc.status.name)
    return process, found
