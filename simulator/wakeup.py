"""Wake-up reception (TR-03109-1 DS 2.1) for the simulated fleet.

Two addressing modes:

* ``shared`` (default): one UDP socket for the whole simulator. The 9-byte recipient field of the
  datagram routes it to the gateway with that ID; that gateway then checks the packet exactly as a
  real one would (signature with its GWA's SIG certificate, recipient, time window against its own
  clock, replay). A datagram for an ID the simulator does not run is dropped and counted as
  ``wrong_recipient`` at fleet level. The wake-up address of every simulated gateway in master
  data is therefore the simulator's ``host:port`` (default ``127.0.0.1:9700``).
* ``per_gateway``: each gateway has its own socket (ephemeral port, listed by the control API),
  for tests that send one gateway a packet addressed to another. Meant for small fleets.

Checks (:func:`check`), cheapest first so a flood of junk costs no ECDSA: layout, recipient, time
window (``|gateway clock - timestamp| <= window``, default 300 s), signature, replay
(docs/protocol.md 2.3). Replay: the timestamp must be strictly greater than the last accepted one;
that timestamp is persisted, so a restart does not reopen the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec

from pki import wakeup as pki_wakeup
from simulator.state import GatewayState

RECIPIENT = slice(3, 12)


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str  # ok, wrong_recipient, stale, bad_signature, malformed, replay, offline
    detail: str = ""


def check(
    state: GatewayState,
    data: bytes,
    gwa_sig_key: ec.EllipticCurvePublicKey,
    *,
    window: int,
    byteorder: Literal["big", "little"] = "big",
    now: float | None = None,
) -> Verdict:
    """Verify ``data`` as gateway ``state`` and, when accepted, record it against replay."""
    gw_now = int(state.gateway_time(now))
    v = pki_wakeup.verify(data, state.gateway_id, gwa_sig_key, now=gw_now, window=window, byteorder=byteorder)
    if not v.valid:
        return Verdict(False, v.reason.value, v.detail)
    last_ts = state.wakeup.get("last_ts")
    if last_ts is not None and v.timestamp is not None and v.timestamp <= last_ts:
        return Verdict(False, "replay", f"timestamp {v.timestamp} not after last accepted {last_ts}")
    state.wakeup = {"last_ts": v.timestamp, "last_digest": hashlib.sha256(data).hexdigest()}
    return Verdict(True, "ok")


class WakeupProtocol(asyncio.DatagramProtocol):
    """UDP endpoint. ``route(recipient9, data, addr)`` handles a datagram; in per-gateway mode the
    route ignores the recipient and hands the packet to the socket's own gateway."""

    def __init__(self, route: Callable[[bytes, bytes, Any], None]) -> None:
        self.route = route
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.route(bytes(data[RECIPIENT]), bytes(data), addr)

    def error_received(self, exc: Exception) -> None:  # ICMP errors on an unconnected socket: ignore
        pass


RECEIVE_BUFFER = 4 * 1024 * 1024


async def listen(
    host: str, port: int, route: Callable[[bytes, bytes, Any], None], *, shared: bool = True
) -> tuple[asyncio.DatagramTransport, int]:
    """Bind a wake-up socket. The shared socket gets a large receive buffer (best effort; the
    kernel caps it at net.core.rmem_max): a burst of wake-ups waits there while the loop verifies
    signatures instead of being dropped."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: WakeupProtocol(route), local_addr=(host, port))
    if shared:
        sock = transport.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    bound = transport.get_extra_info("sockname")[1]
    return transport, int(bound)
