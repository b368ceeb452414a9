"""Wake-up transport (docs/protocol.md section 2): the signed packet goes to the gateway's wake-up
address as one UDP datagram. :class:`WakeupTransport` is the adapter interface an SMS gateway
transport will implement later."""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol


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
