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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec

from core.ids import parse_device_id
from pki import wakeup as pki_wakeup
from simulator.certificates import Certificates
from simulator.config import SimulatorSettings
from simulator.contacts import Contacts
from simulator.fleetfaults import FleetFaults
from simulator.runtime import GatewayRuntime
from simulator.state import LEVEL_INFO, LEVEL_WARNING, OUTCOME_FAILURE, OUTCOME_SUCCESS, GatewayState
from simulator.store import Store

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
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

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


class WakeupReceiver:
    """The fleet's wake-up sockets (in the mode of the module doc): a datagram goes to the gateway
    it is for, which checks it and, when it accepts it, contacts its head-end."""

    def __init__(self, settings: SimulatorSettings, gateways: dict[str, GatewayRuntime], faults: FleetFaults,
                 certificates: Certificates, store: Store, contacts: Contacts) -> None:
        self.settings = settings
        self.gateways = gateways
        self.faults = faults
        self.certificates = certificates
        self.store = store
        self.contacts = contacts
        self.port: int | None = None  # of the shared socket
        self.unrouted = 0  # datagrams for a gateway this simulator does not run
        self._by_recipient: dict[bytes, GatewayRuntime] = {}
        self._transports: list[asyncio.DatagramTransport] = []

    async def start(self) -> None:
        s = self.settings
        self._by_recipient = {parse_device_id(gid).recipient: rt for gid, rt in self.gateways.items()}
        if s.wakeup_mode == "per_gateway":
            for rt in self.gateways.values():
                transport, port = await listen(s.udp_host, 0, self._own_socket(rt), shared=False)
                self._transports.append(transport)
                rt.wakeup_port = port
        else:
            transport, self.port = await listen(s.udp_host, s.udp_port, self._route)
            self._transports.append(transport)

    def close(self) -> None:
        for transport in self._transports:
            transport.close()

    def _own_socket(self, rt: GatewayRuntime) -> Callable[[bytes, bytes, Any], None]:
        """Per-gateway mode: the socket belongs to one gateway, whatever the recipient says."""
        return lambda _recipient, data, _addr: self._wakeup(rt, data)

    def _route(self, recipient: bytes, data: bytes, _addr: Any) -> None:
        rt = self._by_recipient.get(recipient)
        if rt is None:
            self.unrouted += 1  # wrong_recipient: addressed to no gateway this simulator runs
            return
        self._wakeup(rt, data)

    def _wakeup(self, rt: GatewayRuntime, data: bytes) -> None:
        gw = rt.state
        if self.faults.in_force(gw, "offline") is not None:
            gw.count("wakeups_ignored", "offline")
            return
        gwa_sig = self.certificates.gwa(gw, "sig")
        gwa_key = gwa_sig.public_key() if gwa_sig is not None else None
        # installed certificates have EC keys (the SM-PKI validator refuses others): only None fails here
        if not isinstance(gwa_key, ec.EllipticCurvePublicKey):
            gw.count("wakeups_ignored", "no_gwa")
            return
        s = self.settings
        verdict = check(gw, data, gwa_key, window=s.wakeup_window_s, byteorder=s.wakeup_byteorder)
        if not verdict.accepted:
            gw.count("wakeups_ignored", verdict.reason)
            now = time.time()
            if now - rt.last_reject_log >= 60:  # rate-limited logbook entry
                rt.last_reject_log = now
                gw.log("system", LEVEL_WARNING, OUTCOME_FAILURE, f"wake-up rejected: {verdict.reason}")
                gw.persist(self.store)
            return
        gw.count("wakeups_accepted")
        gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, "wake-up accepted")
        gw.persist(self.store)  # the replay state must survive a restart
        self.contacts.contact(rt, "wakeup")
