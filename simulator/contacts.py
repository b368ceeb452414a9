"""When a gateway contacts its head-end (on a wake-up, cyclically, on request, after a restart or
a renewed TLS certificate) and the management connection it then serves as HTTP server."""

from __future__ import annotations

import asyncio
import time

import structlog

from pki.tls import MAX_SESSION_LIFETIME
from simulator.connections import ContactFailed, Dialer
from simulator.httpserver import serve_connection
from simulator.meters import unit
from simulator.outbox import Outbox
from simulator.runtime import GatewayRuntime
from simulator.session import Session, SessionServices
from simulator.state import LEVEL_INFO, OUTCOME_SUCCESS, GatewayState

log = structlog.get_logger("simulator.contacts")


class Contacts:
    def __init__(self, fleet: SessionServices, gateways: dict[str, GatewayRuntime], dialer: Dialer,
                 outbox: Outbox) -> None:
        self.fleet = fleet  # what the session on each management connection serves from
        self.settings = fleet.settings
        self.store = fleet.store
        self.faults = fleet.faults
        self.gateways = gateways
        self.dialer = dialer
        self.outbox = outbox
        self.connected = 0
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    def contact(self, rt: GatewayRuntime, reason: str) -> bool:
        """Open a management connection unless one is open (or opening) or the gateway is offline."""
        if self._stopping or self.faults.in_force(rt.state, "offline") is not None:
            return False
        if (rt.management is not None and not rt.management.is_closing()) or rt.connecting:
            return False  # keep the open connection (a closing one does not count)
        rt.connecting = True
        rt.spawn(self._manage(rt, reason))
        return True

    def reconnect(self, gw: GatewayState, reason: str) -> None:
        """Open a new management connection once the current one has closed (a renewed TLS
        certificate is presented from the next connection on)."""
        rt = self.gateways.get(gw.gateway_id)
        if rt is None or self._stopping:
            return

        async def again() -> None:
            for _ in range(200):
                if rt.management is None or rt.management.is_closing():
                    break
                await asyncio.sleep(0.05)
            self.contact(rt, reason)

        rt.spawn(again())

    def schedule_cyclic(self, gw: GatewayState, *, first: bool = False) -> None:
        """Plan the next cyclic contact: every ``contactInterval`` of the GWA profile, else the
        configured default; the first one at a seeded point within it, so a fleet does not contact at once."""
        rt = self.gateways.get(gw.gateway_id)
        if rt is None or self._stopping:
            return
        if rt.cyclic is not None:
            rt.cyclic.cancel()
            rt.cyclic = None
        interval = float(gw.gwa_profile().get("contactInterval") or self.settings.cyclic_contact_s)
        if interval <= 0:
            return
        delay = interval * (unit(gw.seed, gw.gateway_id, "cyclic") if first else 1.0)
        loop = asyncio.get_running_loop()
        rt.cyclic = loop.call_later(max(delay, 1.0), self._cyclic_fire, rt)

    def _cyclic_fire(self, rt: GatewayRuntime) -> None:
        rt.cyclic = None
        self.contact(rt, "cyclic")
        self.schedule_cyclic(rt.state)

    async def restart(self, gw: GatewayState, reason: str) -> float:
        """Reboot: the management connection closes, the gateway is away for a while, then boots
        and opens a new management connection of its own."""
        rt = self.gateways[gw.gateway_id]
        gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"restart: {reason}")
        for _ in range(50):
            if rt.management is None:
                break
            await asyncio.sleep(0.1)
        if rt.management is not None:
            rt.management.transport.abort()
        await asyncio.sleep(self.settings.restart_delay_s)
        boot = time.time()
        gw.boot_count += 1
        gw.extra["boot_time"] = boot
        entry = gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS,
                       f"gateway started, firmware {gw.firmware['active']} (boot {gw.boot_count})")
        self.outbox.raise_event(gw, "reboot", LEVEL_INFO, f"gateway restarted ({reason})", record=entry)
        self.contact(rt, "restart")
        return boot

    async def _manage(self, rt: GatewayRuntime, reason: str) -> None:
        """Open the management connection and serve the head-end's requests until it ends."""
        gw = rt.state
        rt.connecting = True
        try:
            host, port = self.settings.headend_address
            reader, writer = await self.dialer.open_tls(rt, host, port)
        except ContactFailed as err:
            gw.count("contact_failures")
            log.info("simulator.contact_failed", gateway=gw.gateway_id, reason=reason, error=err.reason)
            return
        finally:
            rt.connecting = False
        rt.management = writer
        rt.connected_since = time.time()
        gw.count("contacts", reason)
        self.connected += 1
        log.debug("simulator.connected", gateway=gw.gateway_id, reason=reason)
        try:
            serving = serve_connection(
                reader, writer, Session(self.fleet, rt).handle, max_body=self.settings.max_body_bytes,
                idle_timeout=self.settings.idle_timeout_s or None,
                on_error=lambda e: log.info("simulator.bad_request", gateway=gw.gateway_id, error=e),
            )
            try:  # TR-03116-3: a connection lives at most 48 h
                why = await asyncio.wait_for(serving, MAX_SESSION_LIFETIME.total_seconds())
            except TimeoutError:
                why = "lifetime"
                writer.transport.abort()
            log.debug("simulator.disconnected", gateway=gw.gateway_id, why=why)
        finally:
            if rt.management is writer:
                rt.management = None
                rt.connected_since = None
            self.connected -= 1
            gw.persist(self.store)
