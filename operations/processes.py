"""Starting and steering processes: the bridge between the tenant's process records (domain) and
their workflows (Temporal). Used by the API, the CLI and the scheduled processes' worker side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from core.errors import ServiceUnavailable
from domain.processes import repository as repo
from domain.processes import service
from domain.processes.ids import mass_workflow_id
from domain.processes.models import Process
from domain.tenancy.service import TenantContext
from workflows.common import MassProcessInput, MassProcessResult, PauseRequest, search_attributes
from workflows.mass import MassProcessWorkflow

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class Initiator:
    username: str
    ref: str  # pseudonymous reference for Temporal (no personal data in search attributes)


@dataclass(frozen=True, kw_only=True)
class LinkOptions:
    connect_timeout_s: float = 120.0
    attempts: int = 4
    starts_per_run: int = 1000


async def start(tenant: TenantContext, client: Client, task_queue: str, type_name: str, target: service.Target,
                params: dict[str, Any] | None, reason: str, initiator: Initiator,
                options: service.StartOptions = service.StartOptions(),
                link: LinkOptions = LinkOptions()) -> Process:
    """Store the process and its frozen target set, then start its mass workflow; if Temporal
    refuses, the stored process is discarded again (nothing half-started)."""
    async with tenant.sessions() as session, session.begin():
        process = await service.start(session, type_name, target, params, reason, initiator.username, options)
    try:
        await client.start_workflow(
            MassProcessWorkflow.run,
            MassProcessInput(process_id=process.id, process_type=process.type, params=dict(process.params),
                             concurrency=process.concurrency, failure_threshold=process.failure_threshold,
                             failure_min_samples=process.failure_min_samples, initiator_ref=initiator.ref,
                             connect_timeout_s=link.connect_timeout_s, attempts=link.attempts,
                             starts_per_run=link.starts_per_run),
            id=mass_workflow_id(process.id),
            task_queue=task_queue,
            search_attributes=search_attributes(process.type, process.id, initiator.ref),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except RPCError as err:
        async with tenant.sessions() as session, session.begin():
            await service.discard(session, process.id)
        raise ServiceUnavailable(f"Temporal did not accept the process: {err.message}",
                                 code="temporal_unavailable") from None
    log.info("process.started", tenant=tenant.name, process=process.id, type=process.type, total=process.total)
    return process


async def retry_failed(tenant: TenantContext, client: Client, task_queue: str, process_id: str, reason: str,
                       initiator: Initiator, options: service.StartOptions = service.StartOptions(),
                       link: LinkOptions = LinkOptions()) -> Process:
    """A new process of the same type and params over the gateways that failed in ``process_id``."""
    async with tenant.sessions() as session:
        old = await service.get(session, process_id)
        service.check_retryable(old)
    return await start(tenant, client, task_queue, old.type, service.Target(retry_of=process_id), dict(old.params),
                       reason, initiator, options, link)


def _handle(client: Client, process_id: str) -> WorkflowHandle[MassProcessWorkflow, MassProcessResult]:
    return client.get_workflow_handle_for(MassProcessWorkflow.run, mass_workflow_id(process_id))


async def steer(tenant: TenantContext, client: Client, process_id: str, action: str, reason: str | None = None
                ) -> Process:
    """pause | resume | cancel. Refused (409) for a process that already ended."""
    async with tenant.sessions() as session:
        process = await service.get(session, process_id)
    if not service.check_steerable(process, action):
        return process
    handle = _handle(client, process_id)
    try:
        if action == "pause":
            await handle.signal(MassProcessWorkflow.pause, PauseRequest(reason=reason or "paused by operator"))
        elif action == "resume":
            await handle.signal(MassProcessWorkflow.resume)
        else:
            await handle.signal(MassProcessWorkflow.cancel)
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
