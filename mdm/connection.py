"""A gateway's connection to the receiver, as an asyncio protocol: TLS wired in after the TCP
accept (so failed handshakes are seen, counted and logged), admission of the client certificate,
then HTTP/1.1 with h11, the gateway the client: one request at a time (no pipelining; reading
pauses while a delivery is being stored), bodies bounded by ``max_body_bytes``."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, cast

import h11
import structlog

from mdm.config import MdmSettings
from mdm.endpoints import EmtEndpoint
from mdm.metrics import MdmMetrics
from pki import tls as pki_tls

log = structlog.get_logger("mdm.connection")

MAX_HEADER_BYTES = 16 * 1024
LINGER_S = 2.0  # after refusing an oversize body: read and drop what still comes, then close
ERROR_NS = "urn:gridgate:mdm:1"


@dataclass(frozen=True, slots=True)
class Admission:
    """Who is on a connection: the EMT identity it asked for (SNI) and the gateway of its client
    certificate."""

    endpoint: EmtEndpoint
    gateway_id: str
    serial: str


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str | None = None  # refusal code: the body is <error reason="..."/>
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False

    def encode(self) -> tuple[list[tuple[str, str]], bytes]:
        headers = list(self.headers)
        body = b""
        if self.reason is not None:
            body = f'<error xmlns="{ERROR_NS}" reason="{self.reason}"/>'.encode()
            headers.append(("Content-Type", "application/xml"))
        if self.close:
            headers.append(("Connection", "close"))
        return [*headers, ("Content-Length", str(len(body)))], body


class ConnectionHost(Protocol):
    """What a connection needs of the receiver (:class:`~mdm.receiver.Receiver`)."""

    @property
    def settings(self) -> MdmSettings: ...
    @property
    def metrics(self) -> MdmMetrics: ...

    def base_context(self) -> ssl.SSLContext | None: ...
    def admit(self, tls: asyncio.Transport, peer: str) -> Admission | None: ...
    def deliver(self, a: Admission, peer: str, request: Request) -> Coroutine[Any, Any, Answer]: ...
    def refused_early(self, a: Admission, peer: str, reason: str, detail: str, size: int,
                      headers: dict[str, str]) -> None: ...
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...
    def track(self, conn: DeliveryConnection) -> None: ...
    def untrack(self, conn: DeliveryConnection) -> None: ...


def _headers(raw: Any) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}


class DeliveryConnection(asyncio.Protocol):
    __slots__ = ("_body", "_discarding", "_h11", "_request", "_size", "_tls_started", "admission", "busy",
                 "closed", "host", "last_activity", "peer", "request_started", "transport")

    def __init__(self, host: ConnectionHost) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.admission: Admission | None = None
        self.closed = False
        self.busy = False  # a complete request is being handled
        self.peer = "?"
        self.last_activity = time.monotonic()
        self.request_started: float | None = None  # first event of the request being read
        self._tls_started = False
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._discarding = False

    # ---------------------------------------------------------------- TCP, TLS, admission
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._tls_started:  # the TLS application transport: the handshake is done
            tls = cast(asyncio.Transport, transport)
            self.transport = tls
            admission = self.host.admit(tls, self.peer)
            if admission is None:
                self.closed = True
                tls.abort()
                return
            self.admission = admission
            self.last_activity = time.monotonic()
            return
        self._tls_started = True
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        ctx = self.host.base_context()
        if ctx is None:
            cast(asyncio.Transport, transport).abort()
            return
        self.host.track(self)
        waiter = pki_tls.start_server_tls(transport, self, ctx, self.host.settings.handshake_timeout_s)
        waiter.add_done_callback(self._handshake_done)

    def _handshake_done(self, fut: asyncio.Future[None]) -> None:
        err = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
        if err is None:
            return
        reason = pki_tls.handshake_failure_reason(err)
        self.closed = True
        self.host.untrack(self)
        self.host.metrics.handshake_failures.labels(reason=reason).inc()
        log.info("mdm.handshake_failed", peer=self.peer, reason=reason, detail=str(err)[:200])

    # ---------------------------------------------------------------- HTTP
    def data_received(self, data: bytes) -> None:
        if self.closed or self._discarding:
            return
        self.last_activity = time.monotonic()
        if self.request_started is None:
            self.request_started = self.last_activity
        try:
            self._h11.receive_data(data)
            self._pump()
        except h11.RemoteProtocolError as err:
            self._reply_and_close(Answer(400, "malformed", close=True), f"bad HTTP: {err}")

    def _pump(self) -> None:
        limit = self.host.settings.max_body_bytes
        while not self.busy and not self.closed:
            event = self._h11.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request = event
                self._body, self._size = [], 0
                if self.request_started is None:
                    self.request_started = time.monotonic()
                if self._check_request(event, limit) is not None:
                    return
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > limit:
                    self._oversize(f"body exceeds {limit} bytes", self._size)
                    return
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                req = self._request
                assert req is not None
                request = Request(req.method.decode(), req.target.decode("latin-1"), _headers(req.headers),
                                  b"".join(self._body))
                self._body, self._request = [], None
                self.busy = True
                if self.transport is not None:
                    self.transport.pause_reading()
                self.host.spawn(self._handle(request))
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    def _check_request(self, req: h11.Request, limit: int) -> Answer | None:
        """Refuse what is not a delivery before reading its body: the answer sent, or None."""
        headers = _headers(req.headers)
        target = req.target.decode("latin-1").split("?", 1)[0]
        if req.method != b"POST":
            answer = Answer(405, "method_not_allowed", (("Allow", "POST"),), close=True)
            self._reply_and_close(answer, f"{req.method.decode()} {target}")
            return answer
        if target != self.host.settings.path:
            answer = Answer(404, "unknown_path", close=True)
            self._reply_and_close(answer, f"POST {target}")
            return answer
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self._oversize(f"declared body of {declared} bytes exceeds {limit}", int(declared))
            return Answer(413, "oversize")
        return None

    def _oversize(self, detail: str, size: int) -> None:
        """413 before the body is read: logged as a refused delivery, then what still comes is
        dropped for a moment (so the gateway can read the answer) and the connection closed."""
        a = self._request
        if self.admission is not None:
            self.host.refused_early(self.admission, self.peer, "oversize", detail, size,
                                    _headers(a.headers) if a is not None else {})
        self._send(Answer(413, "oversize", close=True))
        self._discarding = True
        if self.transport is not None and not self.closed:
            asyncio.get_running_loop().call_later(LINGER_S, self.close)

    async def _handle(self, request: Request) -> None:
        a = self.admission
        assert a is not None
        try:
            answer = await self.host.deliver(a, self.peer, request)
        except Exception as err:  # never leave the gateway without an answer
            log.exception("mdm.delivery_error", tenant=a.endpoint.tenant.name, gateway=a.gateway_id,
                          error=repr(err)[:300])
            answer = Answer(500)
        self._send(answer)
        self.busy = False
        self.request_started = None
        self.last_activity = time.monotonic()
        if self.closed:
            return
        if self.transport is not None:
            self.transport.resume_reading()
        try:
            self._pump()
        except h11.RemoteProtocolError as err:
            self._reply_and_close(Answer(400, "malformed", close=True), f"bad HTTP: {err}")

    def _send(self, answer: Answer) -> None:
        if self.closed or self.transport is None:
            return
        headers, body = answer.encode()
        try:
            data = self._h11.send(h11.Response(status_code=answer.status, headers=headers))
            if body:
                data += self._h11.send(h11.Data(data=body))
            data += self._h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self.close()
            return
        self.transport.write(data)
        if self._h11.our_state is h11.MUST_CLOSE or answer.close:
            if not self._discarding:
                self.close()
            return
        try:
            self._h11.start_next_cycle()
        except h11.LocalProtocolError:
            self.close()

    def _reply_and_close(self, answer: Answer, detail: str) -> None:
        a = self.admission
        log.info("mdm.request_refused", tenant=a.endpoint.tenant.name if a else None,
                 gateway=a.gateway_id if a else None, peer=self.peer, status=answer.status, reason=answer.reason,
                 detail=detail[:200])
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._send(answer)
        self.close()

    def timed_out(self, now: float) -> str | None:
        """Why the receiver should close this connection now (its sweep), or None."""
        s = self.host.settings
        if self.busy or self.closed:
            return None
        if self.request_started is not None and now - self.request_started > s.request_timeout_s:
            return "request_timeout"
        if self.request_started is None and s.idle_timeout_s and now - self.last_activity > s.idle_timeout_s:
            return "idle"
        return None

    def expire(self, why: str) -> None:
        if why == "request_timeout":
            self._reply_and_close(Answer(408, "timeout", close=True), "request not complete in time")
        else:
            self.close()

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()
        self.host.untrack(self)

    def eof_received(self) -> bool | None:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.host.untrack(self)
