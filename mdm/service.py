"""The MDM receiver process (``gridgate mdm``): tenant discovery (every tenant of the control
database, polled; a tenant's EMT identities are served once imported with their keys), the
:class:`~mdm.receiver.Receiver`, Prometheus metrics, housekeeping, a graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import suppress
from dataclasses import dataclass, field

import structlog

from core.config import Settings
from core.db import Databases
from domain.certificates.identity import load_emt_identities
from domain.certificates.service import tenant_validator
from domain.tenancy.service import TenantContext, context_for, list_tenants
from mdm.config import MdmSettings
from mdm.endpoints import EmtEndpoint, build_endpoint
from mdm.receiver import Receiver
from pki.validation import Validator

log = structlog.get_logger("mdm.service")

VALIDATOR_REFRESH_S = 60.0  # trust anchors imported at run time; CRLs kept fresh from a thread


@dataclass
class MdmService:
    settings: Settings
    msettings: MdmSettings
    dbs: Databases
    receiver: Receiver = field(init=False)
    ready: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _validators: dict[str, Validator] = field(default_factory=dict)
    _failing: set[str] = field(default_factory=set)
    _told_waiting: bool = False
    _validator_refresh: float = 0.0

    def __post_init__(self) -> None:
        self.receiver = Receiver(self.msettings)

    async def sync_tenants(self) -> None:
        """Serve every EMT identity of every tenant: new ones, renewed ones (new certificates: a new
        TLS context), and stop serving withdrawn ones."""
        async with self.dbs.control_sessions() as session:
            tenants = [context_for(self.dbs, t) for t in await list_tenants(session)]
        refresh = time.monotonic() > self._validator_refresh
        if refresh:
            self._validator_refresh = time.monotonic() + VALIDATOR_REFRESH_S
        names = {t.name for t in tenants}
        for key in [k for k in self.receiver.directory.by_key if k[0] not in names]:
            self._withdraw(key, "tenant_removed")
        for tenant in tenants:
            try:
                await self._sync_tenant(tenant, refresh)
            except Exception as err:  # one tenant's trouble does not stop the others
                if tenant.name not in self._failing:
                    self._failing.add(tenant.name)
                    log.warning("mdm.tenant_sync_failed", tenant=tenant.name, error=repr(err)[:300])
            else:
                self._failing.discard(tenant.name)

    async def _sync_tenant(self, tenant: TenantContext, refresh_validator: bool) -> None:
        directory = self.receiver.directory
        known = {mp: ep.identity for (t, mp), ep in directory.by_key.items() if t == tenant.name}
        async with tenant.sessions() as session:
            identities = await load_emt_identities(session, self.settings, tenant.name, known=known)
            validator = self._validators.get(tenant.name)
            if identities and (validator is None or refresh_validator):
                fresh = await tenant_validator(session, tenant)
                validator = self._validators[tenant.name] = fresh if fresh.anchors or validator is None else validator
        for mp in set(known) - set(identities):
            self._withdraw((tenant.name, mp), "identity_withdrawn")
        for mp, identity in identities.items():
            assert validator is not None
            current = directory.by_key.get((tenant.name, mp))
            if current is not None and current.identity is identity:
                current.validator = validator
                continue
            sni = self.msettings.sni_name(tenant.name, mp)
            ep = build_endpoint(tenant, identity, sni, validator)
            self.receiver.serve(ep)
            log.info("mdm.identity_served", tenant=tenant.name, emt=mp, sni=sni,
                     tls_certificate=f"{identity.tls.cert.serial_number:x}", enc_certificates=len(identity.enc),
                     renewed=current is not None)
        self.receiver.metrics.identities.labels(tenant=tenant.name).set(len(identities))

    def _withdraw(self, key: tuple[str, str], why: str) -> None:
        if self.receiver.directory.remove(key) is not None:
            log.info("mdm.identity_withdrawn", tenant=key[0], emt=key[1], reason=why)

    async def housekeeping(self, stop: asyncio.Event) -> None:
        """Idle and stuck connections closed every second; every minute each tenant's CRLs are
        looked at from a thread (the validator fetches what is due), so no handshake waits for a
        CRL download on the event loop."""
        next_crl = 0.0
        while not stop.is_set():
            self.receiver.sweep()
            if time.monotonic() >= next_crl:
                next_crl = time.monotonic() + VALIDATOR_REFRESH_S
                seen: set[str] = set()
                for ep in list(self.receiver.directory.by_key.values()):
                    if ep.tenant.name not in seen:
                        seen.add(ep.tenant.name)
                        self.receiver.spawn(asyncio.to_thread(_touch_crls, ep))
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def run(self, stop: asyncio.Event) -> None:
        housekeeping = asyncio.create_task(self.housekeeping(stop))
        try:
            while not stop.is_set():
                try:
                    await self.sync_tenants()
                except Exception as err:  # control database away: keep serving who is known
                    log.warning("mdm.sync_failed", error=repr(err)[:300])
                if len(self.receiver.directory) and not self.receiver.serving:
                    await self.receiver.start_server()
                    self.ready.set()
                elif not self.receiver.serving and not self._told_waiting:
                    self._told_waiting = True
                    log.info("mdm.waiting_for_identities", hint="gridgate cert import-emt-identity")
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.msettings.tenant_poll_s)
        finally:
            log.info("mdm.stopping", connections=len(self.receiver.connections))
            stop.set()
            await self.receiver.stop()
            await asyncio.gather(housekeeping, return_exceptions=True)


def _touch_crls(ep: EmtEndpoint) -> None:
    ep.validator.validate(ep.identity.tls.cert, "tls")


async def run(settings: Settings, msettings: MdmSettings, stop: asyncio.Event | None = None) -> None:
    from core.logging import configure_logging

    configure_logging(msettings.log_level or settings.log_level, settings.log_format)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    dbs = Databases(settings)
    service = MdmService(settings, msettings, dbs)
    if msettings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(msettings.metrics_port, addr=msettings.host, registry=service.receiver.metrics.registry)
    log.info("mdm.starting", host=msettings.host, port=msettings.port, sni=f"<mp-id>.<tenant>.{msettings.sni_suffix}",
             metrics_port=msettings.metrics_port or None)
    try:
        await service.run(stop)
    finally:
        await dbs.dispose()


def main(settings: Settings, msettings: MdmSettings) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(run(settings, msettings))
    else:
        uvloop.run(run(settings, msettings))
