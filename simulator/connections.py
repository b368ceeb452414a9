"""The connections a simulated gateway opens (docs/protocol.md sections 1, 3, 7, 8).

* Management connection to the head-end's management port: TLS client, then HTTP *server* on the
  same connection (:class:`simulator.session.Session` answers the head-end's requests).
* Inbound connections to the head-end's inbound port: TLS client and HTTP *client*, POSTing
  Notifies (to the request's ``x-ContactURI``) and events (to the GWA's event URI), with retry
  (5 s doubling to 5 min, for up to 1 h).

Every connection checks the head-end's certificate: SM-PKI path, not revoked, role ``.GWA`` and
the same subject as the GWA certificates installed on the gateway. SNI is the host name of the
gateway's GWA endpoint (its GWA communication profile, else ``GRIDGATE_SIMULATOR_SNI``). Host names
in URIs are not resolved through DNS **[simulator choice]**: an IP literal or ``localhost`` is
connected as is, any other name goes to the host of ``GRIDGATE_SIMULATOR_HEADEND`` with the URI's
port, like an /etc/hosts entry.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import h11
import structlog

from pki.profile import Role
from pki.tls import MAX_SESSION_LIFETIME, validate_peer
from simulator.httpserver import close_writer, serve_connection

if TYPE_CHECKING:
    from simulator.fleet import Fleet, GatewayRuntime

log = structlog.get_logger("simulator.connections")

CONTENT_TYPE = "application/vnd.de-dke-k461-cosem+xml;encap=cms-tr03109"
RETRY_FIRST_S = 5.0
RETRY_MAX_S = 300.0
RETRY_GIVE_UP_S = 3600.0


class ContactFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def resolve(fleet: Fleet, uri: str, default_port: int) -> tuple[str, int, str]:
    """(connect host, port, path) for an https URI, per the no-DNS rule of the module doc."""
    parts = urlsplit(uri)
    host = parts.hostname or fleet.settings.headend_address[0]
    port = parts.port or default_port
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            host = fleet.settings.headend_address[0]
    return host, port, parts.path or "/"


async def open_tls(fleet: Fleet, rt: GatewayRuntime, host: str, port: int) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter]:
    """Open TLS to ``host:port`` as gateway ``rt`` and check the peer is its GWA."""
    s = fleet.settings
    variant = "normal"
    if fleet.effective_fault(rt.state, "revoked_certificate") is not None:
        variant = "revoked"
    elif fleet.effective_fault(rt.state, "foreign_certificate") is not None:
        variant = "foreign"
    async with fleet.handshakes:
        ctx = fleet.creds.client_context(rt.state.gateway_id, variant)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, server_hostname=fleet.sni(rt.state) or "",
                                        ssl_handshake_timeout=s.connect_timeout_s),
                s.connect_timeout_s + 1,
            )
        except (OSError, TimeoutError, ssl.SSLError) as err:
            raise ContactFailed(f"connect: {type(err).__name__}: {err}") from None
        ssl_obj = writer.get_extra_info("ssl_object")
        verdict = validate_peer(ssl_obj, fleet.creds.validator(), expected_role=Role.GWA)
        gwa = fleet.gwa_certificate(rt.state, "tls")
        peer = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
        if not verdict.valid or gwa is None or peer is None:
            writer.transport.abort()
            raise ContactFailed(f"head-end certificate refused: {verdict.reason.value}: {verdict.detail}")
        from cryptography import x509

        if x509.load_der_x509_certificate(peer).subject != gwa.subject:
            writer.transport.abort()
            raise ContactFailed("head-end certificate is not this gateway's GWA")
    return reader, writer


async def run_management(fleet: Fleet, rt: GatewayRuntime, reason: str) -> None:
    """Open the management connection and serve the head-end's requests until it ends."""
    from simulator.session import Session

    gw = rt.state
    rt.connecting = True
    try:
        host, port = fleet.settings.headend_address
        reader, writer = await open_tls(fleet, rt, host, port)
    except ContactFailed as err:
        gw.count("contact_failures")
        log.info("simulator.contact_failed", gateway=gw.gateway_id, reason=reason, error=err.reason)
        return
    finally:
        rt.connecting = False
    rt.management = writer
    rt.connected_since = time.time()
    gw.count("contacts", reason)
    fleet.connected_changed(rt, True)
    log.debug("simulator.connected", gateway=gw.gateway_id, reason=reason)
    try:
        serving = serve_connection(
            reader, writer, Session(fleet, rt).handle, max_body=fleet.settings.max_body_bytes,
            idle_timeout=fleet.settings.idle_timeout_s or None,
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
        fleet.connected_changed(rt, False)
        fleet.persist(gw)


@dataclass
class Delivery:
    """One POST waiting on the inbound side: a Notify or a batch of events."""

    ids: list[int]
    uri: str
    xml: bytes
    cid: str
    command_id: str | None
    first_at: float


class InboundClient:
    """HTTP/1.1 client on one inbound connection (several requests, one after the other)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host_header: str) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.CLIENT)
        self.host_header = host_header

    async def post(self, path: str, body: bytes, cid: str, command_id: str | None, timeout: float) -> int:
        headers = [("Host", self.host_header), ("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body))),
                   ("x-CID", cid)]
        if command_id:
            headers.append(("x-Command-ID", command_id))
        data = self.conn.send(h11.Request(method="POST", target=path, headers=headers))
        data += self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()
        status = 0
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
                self.conn.receive_data(chunk)
                if not chunk and self.conn.their_state is not h11.DONE:
                    raise ConnectionError("head-end closed the inbound connection")
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("head-end closed the inbound connection")
        if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
            raise _Closing(status)
        self.conn.start_next_cycle()
        return status

    async def close(self) -> None:
        await close_writer(self.writer)


class _Closing(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


async def deliver(fleet: Fleet, rt: GatewayRuntime) -> None:
    """Drain the gateway's outbox; one task per gateway at a time (``rt.delivering``)."""
    gw = rt.state
    attempt = 0
    try:
        while True:
            if fleet.effective_fault(gw, "offline") is not None:
                return  # resumed when the fault is cleared
            batch = fleet.next_deliveries(rt)
            if not batch:
                return
            now = time.time()
            expired = [d for d in batch if now - d.first_at > RETRY_GIVE_UP_S]
            if expired:
                fleet.deliveries_done(rt, expired, "gave_up")
                continue
            ok = await _send_batch(fleet, rt, batch)
            if ok:
                attempt = 0
                continue
            delay = min(RETRY_FIRST_S * 2**attempt, RETRY_MAX_S)
            attempt += 1
            await asyncio.sleep(delay)
    finally:
        rt.delivering = None


async def _send_batch(fleet: Fleet, rt: GatewayRuntime, batch: list[Delivery]) -> bool:
    """Send deliveries sharing the first one's URI over one connection; False to retry later."""
    uri = batch[0].uri
    host, port, _ = resolve(fleet, uri, fleet.settings.inbound_port)
    try:
        reader, writer = await open_tls(fleet, rt, host, port)
    except ContactFailed as err:
        log.info("simulator.inbound_failed", gateway=rt.state.gateway_id, error=err.reason)
        return False
    client = InboundClient(reader, writer, f"{urlsplit(uri).hostname}:{port}")
    try:
        for d in batch:
            if d.uri != uri:
                break
            path = urlsplit(d.uri).path or "/"
            body = fleet.seal(rt.state, d.xml)
            try:
                status = await client.post(path, body, d.cid or f"uuid:{uuid.uuid4()}", d.command_id,
                                           fleet.settings.connect_timeout_s * 2)
            except _Closing as c:
                fleet.delivery_answered(rt, d, c.status)
                return c.status < 500
            if not fleet.delivery_answered(rt, d, status):
                return False
        return True
    except (OSError, TimeoutError, ConnectionError, h11.ProtocolError) as err:
        log.info("simulator.inbound_failed", gateway=rt.state.gateway_id, error=f"{type(err).__name__}: {err}")
        return False
    finally:
        await client.close()
