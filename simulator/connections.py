"""The connections a gateway opens (docs/protocol.md 1, 3, 7, 8, 14): to its head-end, TLS with the
check that the peer is its GWA, and to its EMTs' endpoints, TLS with the check that the peer is the
EMT; and the HTTP client of an inbound or delivery connection.

Every connection to the head-end checks its certificate: SM-PKI path, not revoked, role ``.GWA`` and
the same subject as the GWA certificates installed on the gateway. A delivery connection checks the
SM-PKI path, role ``.EMT`` and that it is the very TLS certificate installed for the recipient
(SNI: the host of the endpoint URI). SNI is the host name of the
gateway's GWA endpoint (its GWA communication profile, else ``GRIDGATE_SIMULATOR_SNI``). Host names
in URIs are not resolved through DNS **[simulator choice]**: an IP literal or ``localhost`` is
connected as is, any other name goes to the host of ``GRIDGATE_SIMULATOR_HEADEND`` with the URI's
port, like an /etc/hosts entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
from cryptography import x509

from pki.profile import Role
from pki.tls import validate_peer
from simulator.certificates import Certificates
from simulator.config import SimulatorSettings
from simulator.credentials import FleetCredentials
from simulator.fleetfaults import FleetFaults
from simulator.httpserver import close_writer
from simulator.runtime import GatewayRuntime
from simulator.state import GatewayState

CONTENT_TYPE = "application/vnd.de-dke-k461-cosem+xml;encap=cms-tr03109"


class ContactFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UntrustedPeer(ContactFailed):
    """The server's certificate is not the one the gateway trusts for that peer."""


class Dialer:
    """Opens TLS connections to the head-end as a gateway, at most ``contact_concurrency``
    handshakes at a time (a wake-up burst must not start 10,000 of them at once)."""

    def __init__(self, settings: SimulatorSettings, creds: FleetCredentials, certificates: Certificates,
                 faults: FleetFaults) -> None:
        self.settings = settings
        self.creds = creds
        self.certificates = certificates
        self.faults = faults
        self.handshakes = asyncio.Semaphore(settings.contact_concurrency)

    def resolve(self, uri: str, default_port: int) -> tuple[str, int, str]:
        """(connect host, port, path) for an https URI, per the no-DNS rule of the module doc."""
        parts = urlsplit(uri)
        host = parts.hostname or self.settings.headend_address[0]
        port = parts.port or default_port
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                host = self.settings.headend_address[0]
        return host, port, parts.path or "/"

    def sni(self, gw: GatewayState) -> str:
        endpoint = gw.gwa_profile().get("endpoint")
        return (urlsplit(endpoint).hostname or self.settings.sni) if endpoint else self.settings.sni

    def _variant(self, gw: GatewayState) -> str:
        if self.faults.in_force(gw, "revoked_certificate") is not None:
            return "revoked"
        if self.faults.in_force(gw, "foreign_certificate") is not None:
            return "foreign"
        return "normal"

    async def _connect(self, rt: GatewayRuntime, host: str, port: int, sni: str) -> tuple[
            asyncio.StreamReader, asyncio.StreamWriter]:
        s = self.settings
        ctx = self.creds.client_context(rt.state.gateway_id, self._variant(rt.state))
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, server_hostname=sni or "",
                                        ssl_handshake_timeout=s.connect_timeout_s),
                s.connect_timeout_s + 1,
            )
        except (OSError, TimeoutError, ssl.SSLError) as err:
            raise ContactFailed(f"connect: {type(err).__name__}: {err}") from None

    async def open_emt(self, rt: GatewayRuntime, host: str, port: int, sni: str, trusted_sha256: str | None) -> tuple[
            asyncio.StreamReader, asyncio.StreamWriter]:
        """Open TLS to an EMT's endpoint (docs/protocol.md 14.1) as gateway ``rt``: the server must
        present a valid SM-PKI ``.EMT`` TLS certificate, and exactly the one installed on the
        gateway for that recipient (SHA-256 ``trusted_sha256``). Raises :class:`UntrustedPeer`
        otherwise, :class:`ContactFailed` when no connection could be had."""
        async with self.handshakes:
            reader, writer = await self._connect(rt, host, port, sni)
            ssl_obj = writer.get_extra_info("ssl_object")
            verdict = validate_peer(ssl_obj, self.creds.validator(), expected_role=Role.EMT)
            peer = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
            if not verdict.valid or peer is None:
                writer.transport.abort()
                raise UntrustedPeer(f"EMT certificate refused: {verdict.reason.value}: {verdict.detail}")
            if trusted_sha256 is None:
                writer.transport.abort()
                raise UntrustedPeer("no TLS certificate of this EMT is installed on the gateway")
            if hashlib.sha256(peer).hexdigest() != trusted_sha256:
                writer.transport.abort()
                raise UntrustedPeer("EMT certificate is not the one installed for this recipient")
        return reader, writer

    async def open_tls(self, rt: GatewayRuntime, host: str, port: int) -> tuple[
            asyncio.StreamReader, asyncio.StreamWriter]:
        """Open TLS to ``host:port`` as gateway ``rt`` and check the peer is its GWA."""
        async with self.handshakes:
            reader, writer = await self._connect(rt, host, port, self.sni(rt.state))
            ssl_obj = writer.get_extra_info("ssl_object")
            verdict = validate_peer(ssl_obj, self.creds.validator(), expected_role=Role.GWA)
            gwa = self.certificates.gwa(rt.state, "tls")
            peer = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
            if not verdict.valid or gwa is None or peer is None:
                writer.transport.abort()
                raise ContactFailed(f"head-end certificate refused: {verdict.reason.value}: {verdict.detail}")
            if x509.load_der_x509_certificate(peer).subject != gwa.subject:
                writer.transport.abort()
                raise ContactFailed("head-end certificate is not this gateway's GWA")
        return reader, writer


class InboundClient:
    """HTTP/1.1 client on one inbound connection (several requests, one after the other)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host_header: str) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.CLIENT)
        self.host_header = host_header

    async def post(self, path: str, body: bytes, cid: str, command_id: str | None, timeout: float) -> int:
        """POST ``body``; the status of the answer. Raises :class:`Closing` when the connection
        cannot carry another request after this one."""
        answer = await self.request(path, body, cid, timeout, [("x-Command-ID", command_id)] if command_id else [])
        if answer.closing:
            raise Closing(answer.status)
        return answer.status

    async def request(self, path: str, body: bytes, cid: str, timeout: float,
                      extra: list[tuple[str, str]] | None = None, max_answer: int = 64 * 1024) -> Answer:
        """POST ``body`` and read the whole answer (body up to ``max_answer`` bytes)."""
        headers = [("Host", self.host_header), ("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body))),
                   ("x-CID", cid), *(extra or [])]
        data = self.conn.send(h11.Request(method="POST", target=path, headers=headers))
        data += self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()
        status, answer_headers, chunks, size = 0, {}, [], 0
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
                self.conn.receive_data(chunk)
                if not chunk and self.conn.their_state is not h11.DONE:
                    raise ConnectionError("the server closed the connection")
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                answer_headers = {k.decode().lower(): v.decode(errors="replace") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size <= max_answer:
                    chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection")
        closing = self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE
        if not closing:
            self.conn.start_next_cycle()
        return Answer(status, answer_headers, b"".join(chunks), closing)

    async def close(self) -> None:
        await close_writer(self.writer)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closing: bool  # the connection cannot carry another request


class Closing(Exception):
    """The head-end answered ``status`` and closes the inbound connection."""

    def __init__(self, status: int) -> None:
        self.status = status
