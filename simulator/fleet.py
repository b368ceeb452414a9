"""The simulated fleet, N gateways in one asyncio process: loading, starting and stopping them, and
the parts that do the work (wake-ups, contacts, jobs, outbox, certificates, faults) put together."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from simulator.certificates import Certificates
from simulator.commands import Later
from simulator.config import SimulatorSettings
from simulator.connections import Dialer
from simulator.contacts import Contacts
from simulator.credentials import FleetCredentials
from simulator.deliveries import Deliveries
from simulator.emtoutbox import EmtOutbox
from simulator.fleetfaults import FleetFaults
from simulator.jobs import Jobs
from simulator.outbox import Outbox
from simulator.runtime import GatewayRuntime
from simulator.state import GatewayState
from simulator.store import DeliveryRow, LogEntry, Store
from simulator.vendors import Vendor, vendor_for
from simulator.wakeup import WakeupReceiver


class Fleet:
    def __init__(self, settings: SimulatorSettings, pki_dir: Path, state_dir: Path) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.creds = FleetCredentials(pki_dir, state_dir, group=settings.tls_group)
        self.store = Store(state_dir / "fleet.db")
        self.certificates = Certificates(self.store, self.creds)
        self.faults = FleetFaults(settings.offline_pct, settings.flaky_pct)
        self.gateways: dict[str, GatewayRuntime] = {}  # the parts share this dict: fill it, never rebind it
        dialer = Dialer(settings, self.creds, self.certificates, self.faults)
        self.outbox = Outbox(settings, self.store, self.gateways, self.faults, self.certificates, dialer)
        self.emt_outbox = EmtOutbox(settings, self.store, self.gateways, self.faults, self.certificates, self.creds,
                                    dialer)
        self.deliveries = Deliveries(settings, self.store, self.gateways, self.faults, self.emt_outbox)
        self.contacts = Contacts(self, self.gateways, dialer, self.outbox)
        self.jobs = Jobs(self, self.gateways, self.outbox)
        self.wakeups = WakeupReceiver(settings, self.gateways, self.faults, self.certificates, self.store,
                                      self.contacts)
        self.started_at = time.time()
        self.startup_s: float | None = None

    # ------------------------------------------------------------------ lifecycle
    def load(self, gateway_ids: list[str]) -> list[str]:
        """Load the gateways' states (creating new ones); returns the IDs created."""
        docs = self.store.load_all()
        created: dict[str, dict[str, Any]] = {}
        now = time.time()
        for gid in gateway_ids:
            doc = docs.get(gid)
            if doc is not None:
                state = GatewayState.from_doc(doc)
                del docs[gid]
            else:
                state = GatewayState.new(gid, seed=self.settings.seed, now=now,
                                         meters_paired=self.settings.meters_paired)
                self.certificates.personalise(state, now)
            state.extra["boot_time"] = state.extra.get("boot_time", now)
            self.certificates.use_own_keys(state)
            self.gateways[gid] = GatewayRuntime(state, vendor_for(gid))
            if doc is None:
                created[gid] = state.to_doc()
        if created:
            self.store.save_many(created, {gid: self.gateways[gid].state.take_logs() for gid in created})
        self.store.prune_commands(now=now)
        self.store.prune_deliveries(now=now)
        self.outbox.restore()
        return list(created)

    async def start(self) -> None:
        await self.wakeups.start()
        for rt in self.gateways.values():
            self.contacts.schedule_cyclic(rt.state, first=True)
            if rt.outbox:
                self.outbox.kick(rt)
        self.jobs.resume_running()
        self.deliveries.start()

    async def stop(self) -> None:
        self.contacts.stop()
        self.outbox.stop()
        await self.deliveries.stop()
        self.wakeups.close()
        tasks: list[asyncio.Task[Any]] = []
        for rt in self.gateways.values():
            if rt.cyclic:
                rt.cyclic.cancel()
            if rt.management is not None:
                rt.management.transport.abort()
            tasks += list(rt.tasks)
            if rt.delivering:
                tasks.append(rt.delivering)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for rt in self.gateways.values():
            rt.state.persist(self.store)
        self.store.close()

    # ------------------------------------------------------------------ for handlers and sessions
    # (commands.GatewayServices, session.SessionServices): each is the job of one part
    def vendor(self, gw: GatewayState) -> Vendor:
        return self.gateways[gw.gateway_id].vendor if gw.gateway_id in self.gateways else vendor_for(gw.gateway_id)

    @staticmethod
    def now() -> float:
        return time.time()

    def reconnect(self, gw: GatewayState, reason: str) -> None:
        self.contacts.reconnect(gw, reason)

    def schedule_cyclic(self, gw: GatewayState) -> None:
        self.contacts.schedule_cyclic(gw)

    async def restart(self, gw: GatewayState, reason: str) -> float:
        return await self.contacts.restart(gw, reason)

    def raise_event(self, gw: GatewayState, code: str, level: int, text: str, *, record: LogEntry | None = None,
                    meter: str | None = None) -> None:
        self.outbox.raise_event(gw, code, level, text, record=record, meter=meter)

    def start_job(self, rt: GatewayRuntime, command_id: str, name: str, later: Later,
                  deliveries: list[DeliveryRow] | None = None) -> None:
        self.jobs.start(rt, command_id, name, later, deliveries)

    def profiles_changed(self, gw: GatewayState) -> None:
        self.deliveries.refresh(gw)

    def build_delivery(self, gw: GatewayState, profile_id: str, reason: str) -> DeliveryRow:
        return self.deliveries.build_now(gw, profile_id, reason)

    def deliveries_queued(self, gw: GatewayState, rows: list[DeliveryRow]) -> None:
        rt = self.gateways.get(gw.gateway_id)
        if rt is not None:
            self.deliveries.queued(rt, rows)

    # ------------------------------------------------------------------ for the control API, tests and benchmarks
    def contact(self, rt: GatewayRuntime, reason: str) -> bool:
        return self.contacts.contact(rt, reason)

    @property
    def wakeup_port(self) -> int | None:
        """The shared wake-up socket's port (None in per-gateway mode)."""
        return self.wakeups.port

    @property
    def unrouted_wakeups(self) -> int:
        return self.wakeups.unrouted
