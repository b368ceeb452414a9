"""Gateway command activities, served by the head-end process (not the main worker): one instance
per tenant and node, registered on task queue ``headend`` (ensure_gateway_connected) and
``headend-<node_id>`` (every command). Names, inputs and results: ``gateway_commands_models``.

Each command: take a session slot (throttle: tenant and network segment, by priority), get this
node's connection to the gateway (wake it and wait if there is none), run the command
(``headend.commands``), map failures to ``ApplicationError`` with the error type as ``type``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.config import Settings
from core.temporal import activity_methods
from domain.tenancy.service import TenantContext
from headend import commands as C
from headend import contract as M
from headend.client import AdminClient
from headend.errors import HeadendError, Unreachable
from headend.node import HeadendNode
from headend.service import ActivitiesFor

log = structlog.get_logger("activities.gateway_commands")

R = TypeVar("R")
I = TypeVar("I", bound=M.GatewayCommand)  # noqa: E741
_WIRE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,40}$")


def wire_command_id(command_id: str) -> str:
    """The x-Command-ID for ``command_id``: itself when short and plain, else a stable digest
    (the header allows 64 characters of ``[A-Za-z0-9._:-]``, and steps append suffixes)."""
    if _WIRE_ID.fullmatch(command_id):
        return command_id
    return "h-" + hashlib.sha256(command_id.encode()).hexdigest()[:38]


# A command's exchanges heartbeat only once its activity has run this long (or when the workflow
# set a heartbeat timeout). No workflow sets one for commands, so a heartbeat serves to deliver a
# cancellation; each is an RPC and a write of the workflow's state in Temporal, and a command of a
# few exchanges ends sooner than a cancellation could reach it anyway (docs/architecture.md).
HEARTBEAT_AFTER_S = 5.0


def _heartbeater(started: float) -> Callable[[], None]:
    def beat() -> None:
        if not activity.in_activity():
            return
        if activity.info().heartbeat_timeout or time.monotonic() - started >= HEARTBEAT_AFTER_S:
            activity.heartbeat()
    return beat


def application_error(err: HeadendError) -> ApplicationError:
    return ApplicationError(err.detail, type=err.error_type, non_retryable=not err.retryable)


class GatewayCommandActivities:
    def __init__(self, node: HeadendNode, tenant: str, *, secrets_settings: Any = None,
                 firmware_dir: Path | None = None) -> None:
        self.node = node
        self.tenant = tenant
        self.secrets_settings = secrets_settings  # gridgate Settings (master key) for MK0 decryption
        self.firmware_dir = firmware_dir or Path(node.settings.firmware_dir or "var/firmware")

    # ------------------------------------------------------------------ plumbing
    async def _run(self, name: str, inp: I, fn: Callable[[AdminClient, I], Awaitable[R]]) -> R:
        node = self.node
        inp = dataclasses.replace(inp, command_id=wire_command_id(inp.command_id))
        t0 = time.monotonic()
        outcome = "ok"
        try:
            conn = node.registry.get(self.tenant, inp.gateway_id)
            segment = conn.admission.record.network_segment if conn and conn.admission else \
                (await node.gateway(self.tenant, inp.gateway_id)).network_segment
            async with node.throttle.session(self.tenant, segment, inp.priority):
                conn, _ = await node.connection(self.tenant, inp.gateway_id, priority=inp.priority,
                                                timeout=node.settings.connect_timeout_s)
                return await fn(AdminClient(node, conn, on_progress=_heartbeater(t0)), inp)
        except HeadendError as err:
            outcome = err.error_type
            log.info("headend.command_failed", tenant=self.tenant, gateway=inp.gateway_id, command=name,
                     command_id=inp.command_id, error=err.error_type, detail=err.detail[:300])
            raise application_error(err) from None
        finally:
            node.metrics.commands.labels(tenant=self.tenant, command=name, outcome=outcome).inc()
            node.metrics.command_seconds.labels(command=name).observe(time.monotonic() - t0)

    # ------------------------------------------------------------------ connection
    @activity.defn
    async def ensure_gateway_connected(self, inp: M.EnsureConnectedInput) -> M.EnsureConnectedResult:
        """Where the gateway's management connection is (this or another node); if nowhere, wake
        it (throttled, by priority) and wait up to ``timeout_s`` for it to connect to any node."""
        node, tenant = self.node, self.tenant
        t0 = time.monotonic()
        timeout = inp.timeout_s or node.settings.connect_timeout_s
        ep = node.endpoints.get(tenant)
        if ep is None:
            raise ApplicationError(f"tenant {tenant} has no head-end endpoint", type=M.ERROR_UNREACHABLE)

        async def locate() -> str | None:
            if node.registry.get(tenant, inp.gateway_id) is not None:
                return node.node_id
            other = await node.store.locate(ep.context, inp.gateway_id, node.settings.node_stale_s)
            # This node's own rows may lag behind its memory (batched writes): memory decides.
            return other if other != node.node_id else None

        def result(node_id: str, woken: bool) -> M.EnsureConnectedResult:
            return M.EnsureConnectedResult(gateway_id=inp.gateway_id, node_id=node_id,
                                           task_queue=M.node_task_queue(node_id), woken=woken,
                                           waited_s=round(time.monotonic() - t0, 3))

        found = await locate()
        if found:
            return result(found, False)
        try:
            record = await node.gateway(tenant, inp.gateway_id)
            async with node.throttle.session(tenant, record.network_segment, inp.priority):
                deadline = t0 + timeout
                next_wake = 0.0
                while time.monotonic() < deadline:
                    if time.monotonic() >= next_wake:
                        await node.wake(tenant, record, inp.priority)
                        next_wake = time.monotonic() + node.settings.wakeup_retry_s
                    wait = min(1.0, max(0.0, deadline - time.monotonic()))
                    if await node.registry.wait(tenant, inp.gateway_id, wait) is not None:
                        return result(node.node_id, True)
                    found = await locate()
                    if found:
                        return result(found, True)
                    activity.heartbeat()
        except HeadendError as err:
            raise application_error(err) from None
        node.metrics.wakeups.labels(tenant=tenant, outcome="unanswered").inc()
        raise application_error(Unreachable(f"gateway {inp.gateway_id} did not connect within {timeout:.0f}s"))

    # ------------------------------------------------------------------ commands
    @activity.defn
    async def read_device_info(self, inp: M.ReadDeviceInfoInput) -> M.DeviceInfoResult:
        return await self._run("read_device_info", inp, C.read_device_info)

    @activity.defn
    async def measure_clock_offset(self, inp: M.MeasureClockOffsetInput) -> M.ClockOffsetResult:
        return await self._run("measure_clock_offset", inp, C.measure_clock_offset)

    @activity.defn
    async def set_time(self, inp: M.SetTimeInput) -> M.SetTimeResult:
        return await self._run("set_time", inp, C.set_time)

    @activity.defn
    async def install_certificates(self, inp: M.InstallCertificatesInput) -> M.InstallCertificatesResult:
        return await self._run("install_certificates", inp, C.install_certificates)

    @activity.defn
    async def request_certificate_signing(
            self, inp: M.RequestCertificateSigningInput) -> M.RequestCertificateSigningResult:
        return await self._run("request_certificate_signing", inp, C.request_certificate_signing)

    @activity.defn
    async def write_meter_profile(self, inp: M.WriteMeterProfileInput) -> M.ProfileWriteResult:
        return await self._run("write_meter_profile", inp, C.write_meter_profile)

    @activity.defn
    async def delete_meter_profile(self, inp: M.DeleteMeterProfileInput) -> M.ProfileDeleteResult:
        return await self._run("delete_meter_profile", inp, C.delete_meter_profile)

    @activity.defn
    async def write_communication_profile(self, inp: M.WriteCommunicationProfileInput) -> M.ProfileWriteResult:
        return await self._run("write_communication_profile", inp, C.write_communication_profile)

    @activity.defn
    async def delete_communication_profile(self, inp: M.DeleteCommunicationProfileInput) -> M.ProfileDeleteResult:
        return await self._run("delete_communication_profile", inp, C.delete_communication_profile)

    @activity.defn
    async def write_evaluation_profile(self, inp: M.WriteEvaluationProfileInput) -> M.ProfileWriteResult:
        return await self._run("write_evaluation_profile", inp, C.write_evaluation_profile)

    @activity.defn
    async def delete_evaluation_profile(self, inp: M.DeleteEvaluationProfileInput) -> M.ProfileDeleteResult:
        return await self._run("delete_evaluation_profile", inp, C.delete_evaluation_profile)

    @activity.defn
    async def deactivate_profiles(self, inp: M.DeactivateProfilesInput) -> M.DeactivateProfilesResult:
        return await self._run("deactivate_profiles", inp, C.deactivate_profiles)

    @activity.defn
    async def pair_meter(self, inp: M.PairMeterInput) -> M.PairMeterResult:
        mk0, interface = await self._meter_key(inp)
        return await self._run("pair_meter", inp, lambda c, i: C.pair_meter(c, i, mk0, interface))

    async def _meter_key(self, inp: M.PairMeterInput) -> tuple[bytes, str]:
        from core.errors import NotFound
        from domain.devices.service import MasterKeyMissing, meter_mk0
        from domain.secrets import SecretBox
        from headend.lookup import meter_lmn_type

        ep = self.node.endpoints[self.tenant]
        if self.secrets_settings is None:
            raise ApplicationError("no master key configured for MK0 decryption", type=M.ERROR_NO_METER_KEY,
                                   non_retryable=True)
        try:
            async with ep.context.sessions() as session:
                mk0 = await meter_mk0(session, SecretBox(self.secrets_settings, self.tenant), inp.meter_id)
                lmn = await meter_lmn_type(session, inp.meter_id)
        except MasterKeyMissing as err:
            raise ApplicationError(str(err), type=M.ERROR_NO_METER_KEY, non_retryable=True) from None
        except NotFound as err:
            raise ApplicationError(str(err), type=M.ERROR_REJECTED, non_retryable=True) from None
        interface = inp.interface or ("lmn-wireless" if lmn == "wireless" else "lmn-wired")
        return mk0, interface

    @activity.defn
    async def unpair_meter(self, inp: M.UnpairMeterInput) -> M.UnpairMeterResult:
        return await self._run("unpair_meter", inp, C.unpair_meter)

    @activity.defn
    async def read_logbook(self, inp: M.ReadLogbookInput) -> M.LogbookResult:
        return await self._run("read_logbook", inp, C.read_logbook)

    @activity.defn
    async def download_firmware(self, inp: M.DownloadFirmwareInput) -> M.DownloadFirmwareResult:
        return await self._run("download_firmware", inp, lambda c, i: C.download_firmware(
            c, i, self.firmware_dir, self.node.settings.firmware_block_bytes))

    @activity.defn
    async def activate_firmware(self, inp: M.ActivateFirmwareInput) -> M.ActivateFirmwareResult:
        return await self._run("activate_firmware", inp, C.activate_firmware)

    @activity.defn
    async def trigger_readout(self, inp: M.TriggerReadoutInput) -> M.TriggerReadoutResult:
        return await self._run("trigger_readout", inp, C.trigger_readout)

    @activity.defn
    async def final_readout(self, inp: M.FinalReadoutInput) -> M.FinalReadoutResult:
        return await self._run("final_readout", inp, C.final_readout)

    @activity.defn
    async def reboot(self, inp: M.RebootInput) -> M.RebootResult:
        return await self._run("reboot", inp, C.reboot)


def headend_activities(settings: Settings) -> ActivitiesFor:
    """What a head-end node's Temporal workers run for one tenant: ``ensure_gateway_connected`` on
    the shared queue, every command on the node's own queue."""

    def for_tenant(node: HeadendNode, tenant: TenantContext) -> dict[str, list[Callable[..., Any]]]:
        firmware_dir = Path(node.settings.firmware_dir) if node.settings.firmware_dir else \
            settings.var_dir / "firmware"
        acts = GatewayCommandActivities(node, tenant.name, secrets_settings=settings, firmware_dir=firmware_dir)
        commands = [a for a in activity_methods(acts) if a.__name__ != "ensure_gateway_connected"]
        return {M.TASK_QUEUE: [acts.ensure_gateway_connected], M.node_task_queue(node.node_id): commands}

    return for_tenant
