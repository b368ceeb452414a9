"""Wake-ups (docs/protocol.md section 2): :class:`Waker` signs the packet with the tenant's GWA key,
paces and throttles it and records it; the transport delivers it to the gateway's wake-up address
as one UDP datagram. :class:`WakeupTransport` is the adapter interface an SMS gateway transport
will implement later."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Protocol

import structlog

from headend.config import HeadendSettings
from headend.endpoints import Endpoints
from headend.errors import UnknownGateway, Unreachable
from headend.lookup import GatewayRecord
from headend.metrics import HeadendMetrics
from headend.store import HeadendStore
from headend.throttle import Throttle
from pki import wakeup as pki_wakeup

log = structlog.get_logger("headend.wakeup")


class WakeupTransport(Protocol):
    async def send(self, address: str, packet: bytes) -> None:
        """Deliver ``packet`` to ``address`` (transport-specific form). Raises OSError on failure."""


def parse_address(address: str, default_port: int) -> tuple[str, int]:
    """``host:port``, ``host``, ``[v6]:port`` or ``udp://host:port``."""
    text = address.strip()
    if text.startswith("udp://"):
        text = text[6:]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"wake-up address {address!r} has no host")
    return host, int(port) if port else default_port


class UdpWakeupTransport:
    """One unconnected UDP socket for every wake-up of the process."""

    def __init__(self, default_port: int) -> None:
        self.default_port = default_port
        self._transport: asyncio.DatagramTransport | None = None
        self._transport6: asyncio.DatagramTransport | None = None

    async def send(self, address: str, packet: bytes) -> None:
        host, port = parse_address(address, self.default_port)
        v6 = ":" in host
        transport = self._transport6 if v6 else self._transport
        if transport is None or transport.is_closing():
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, family=socket.AF_INET6 if v6 else socket.AF_INET)
            if v6:
                self._transport6 = transport
            else:
                self._transport = transport
        transport.sendto(packet, (host, port))

    def close(self) -> None:
        for t in (self._transport, self._transport6):
            if t is not None:
                t.close()


class Waker:
    """Sends wake-ups for the tenants of one node."""

    def __init__(self, settings: HeadendSettings, endpoints: Endpoints, throttle: Throttle, store: HeadendStore,
                 metrics: HeadendMetrics, transport: WakeupTransport) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.throttle = throttle
        self.store = store
        self.metrics = metrics
        self.transport = transport
        self._last_wakeup: dict[tuple[str, str], float] = {}

    async def wake(self, tenant: str, record: GatewayRecord, priority: int) -> None:
        """One wake-up of the gateway (throttled by priority). Raises UnknownGateway, Unreachable."""
        ep = self.endpoints.by_name[tenant]
        if not record.wakeup_address:
            raise UnknownGateway(f"gateway {record.gateway_id} has no wake-up address")
        key = (tenant, record.gateway_id)
        # Never two wake-ups of one gateway within the same second: the gateway drops a repeated
        # timestamp as a replay (docs/protocol.md 2.3).
        gap = time.time() - self._last_wakeup.get(key, 0.0)
        if gap < 1.05:
            await asyncio.sleep(1.05 - gap)
        await self.throttle.wakeup(tenant, record.network_segment, priority)
        packet = pki_wakeup.build(record.gateway_id, ep.identity.sig_key, byteorder=self.settings.wakeup_byteorder)
        self._last_wakeup[key] = time.time()
        try:
            await self.transport.send(record.wakeup_address, packet)
        except (OSError, ValueError) as err:
            self.metrics.wakeups.labels(tenant=tenant, outcome="send_failed").inc()
            log.warning("headend.wakeup_failed", tenant=tenant, gateway=record.gateway_id,
                        address=record.wakeup_address, error=str(err))
            raise Unreachable(f"wake-up to {record.wakeup_address} failed: {err}") from err
        self.metrics.wakeups.labels(tenant=tenant, outcome="sent").inc()
        self.store.communication(tenant, gateway_id=record.gateway_id, direction="out", command="wakeup",
                                 method="UDP", path=record.wakeup_address[:400], result="sent",
                                 bytes_out=len(packet))
        log.debug("headend.wakeup_sent", tenant=tenant, gateway=record.gateway_id, address=record.wakeup_address)
