"""The two kinds of gateway-opened TLS connection (docs/protocol.md section 1), as asyncio
protocols (no stream objects or reader task per idle connection: 10,000 idle sessions must stay
cheap).

* :class:`ManagementConnection`: the head-end is the HTTP/1.1 client (h11). One request at a time
  (no pipelining, Anl. II 7.1); data from the gateway with no request outstanding is a violation.
* :class:`InboundConnection`: the gateway is the HTTP client and POSTs Notifies and events; the
  head-end answers (h11 server).

TLS is wired in explicitly after accepting TCP, so handshake failures (garbage on the port,
foreign certificates) are seen, counted and logged with the peer address.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, cast

import h11
import structlog

from headend.admission import Admission
from headend.config import HeadendSettings
from headend.errors import ConnectionLost, ProtocolViolation
from headend.metrics import HeadendMetrics, protocol_violation
from headend.registry import Registry
from pki import tls as pki_tls

log = structlog.get_logger("headend.connection")

MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class ConnectionHost(Protocol):
    """What a connection needs of its node (:class:`~headend.node.HeadendNode`)."""

    @property
    def settings(self) -> HeadendSettings: ...
    @property
    def metrics(self) -> HeadendMetrics: ...
    @property
    def registry(self) -> Registry[ManagementConnection]: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    def base_ssl_context(self) -> ssl.SSLContext:
        """The listener's context (raises AssertionError while no tenant is served)."""

    def admit(self, tls: asyncio.Transport, kind: str, peer: str) -> Awaitable[Admission | None]: ...

    def handle_inbound(self, a: Admission, peer: str,
                       req: HttpRequest) -> Awaitable[tuple[int, list[tuple[str, str]], bytes]]: ...


def _headers(raw: Any) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}


class _TlsAccepting(asyncio.Protocol):
    """Shared: accept TCP, run the TLS handshake, then admission (who is this gateway?)."""

    kind = "management"
    __slots__ = ("_tls_started", "admission", "closed", "node", "opened", "peer", "transport")

    def __init__(self, node: ConnectionHost) -> None:
        self.node = node
        self.transport: asyncio.Transport | None = None
        self.admission: Admission | None = None
        self.closed = False
        self._tls_started = False
        self.peer = "?"
        self.opened = time.monotonic()

    # TCP accepted: wire the TLS layer in synchronously (pki.tls.start_server_tls: no byte can slip
    # past it; why not loop.start_tls is explained there).
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._tls_started:
            tls = cast(asyncio.Transport, transport)  # the TLS application transport
            self.transport = tls
            self.node.spawn(self._admit(tls))
            return
        self._tls_started = True
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        node = self.node
        try:
            ctx = node.base_ssl_context()
        except AssertionError:
            cast(asyncio.Transport, transport).abort()  # TCP as accepted: a full transport
            return
        waiter = pki_tls.start_server_tls(transport, self, ctx, node.settings.handshake_timeout_s)
        waiter.add_done_callback(self._handshake_done)

    def _handshake_done(self, fut: asyncio.Future[None]) -> None:
        err = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
        if err is None:
            return
        reason = pki_tls.handshake_failure_reason(err)
        self.closed = True
        self.node.metrics.handshake_failures.labels(reason=reason).inc()
        log.info("headend.handshake_failed", peer=self.peer, kind=self.kind, reason=reason, detail=str(err)[:200])

    async def _admit(self, tls: asyncio.Transport) -> None:
        admission = await self.node.admit(tls, self.kind, self.peer)
        if admission is None:
            self.closed = True
            tls.abort()
            return
        if self.closed:
            return  # the peer went away while we looked it up
        self.admission = admission
        self.admitted()

    def admitted(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def violation(self, reason: str, detail: str) -> None:
        a = self.admission
        protocol_violation(self.node.metrics, a.tenant.name if a else None, a.gateway_id if a else None, self.peer,
                           reason, detail)
        self.abort()


class ManagementConnection(_TlsAccepting):
    """A management connection: the head-end sends requests, the gateway answers."""

    kind = "management"
    __slots__ = ("_body", "_h11", "_lock", "_resp_headers", "_size", "_status", "_waiter", "connected_at",
                 "last_activity")

    def __init__(self, node: ConnectionHost) -> None:
        super().__init__(node)
        self.connected_at = time.time()
        self.last_activity = time.monotonic()
        self._lock: asyncio.Lock | None = None
        self._h11: h11.Connection | None = None
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._status = 0
        self._resp_headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0

    @property
    def gateway_id(self) -> str | None:
        return self.admission.gateway_id if self.admission else None

    @property
    def busy(self) -> bool:
        """A request is outstanding."""
        return self._waiter is not None

    def admitted(self) -> None:
        assert self.admission is not None
        self.node.registry.add(self)

    # ---------------------------------------------------------------- requests
    async def request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                      timeout: float) -> HttpResponse:
        """Send one request and wait for its complete response. Raises ConnectionLost."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.closed or self.transport is None or self.transport.is_closing():
                raise ConnectionLost("connection is closed")
            conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
            hdrs = [*headers, ("Content-Length", str(len(body)))] if body or method in ("PUT", "POST") else headers
            data = conn.send(h11.Request(method=method, target=target, headers=hdrs))
            if body:
                data += conn.send(h11.Data(data=body))
            data += conn.send(h11.EndOfMessage())
            self._h11 = conn
            self._status, self._resp_headers, self._body, self._size = 0, {}, [], 0
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            self.last_activity = time.monotonic()
            self.transport.write(data)
            try:
                response = await asyncio.wait_for(asyncio.shield(self._waiter), timeout)
            except TimeoutError:
                # Anl. II 7.1.1: no response within the timeout -> both sides drop the connection.
                protocol_violation(self.node.metrics, self.admission.tenant.name if self.admission else None,
                                   self.gateway_id, self.peer, "response_timeout",
                                   f"{method} {target} unanswered after {timeout:.1f}s")
                self.abort()
                raise ConnectionLost(f"no response to {method} {target} within {timeout:.1f}s") from None
            finally:
                self._waiter = None
                self._h11 = None
                self.last_activity = time.monotonic()
            if response.headers.get("connection", "").lower() == "close":
                self.close()
            return response

    def data_received(self, data: bytes) -> None:
        conn, waiter = self._h11, self._waiter
        if conn is None or waiter is None or waiter.done():
            self.violation("unsolicited_data", f"{len(data)} bytes with no request outstanding")
            return
        try:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                    self._resp_headers = _headers(event.headers)
                    declared = self._resp_headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > self.node.settings.max_body_bytes:
                        raise ProtocolViolation("oversize", f"declared body of {declared} bytes")
                elif isinstance(event, h11.Data):
                    self._size += len(event.data)
                    if self._size > self.node.settings.max_body_bytes:
                        raise ProtocolViolation("oversize", f"body exceeds {self.node.settings.max_body_bytes} bytes")
                    self._body.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    waiter.set_result(HttpResponse(self._status, self._resp_headers, b"".join(self._body)))
                    self._h11 = None
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except h11.RemoteProtocolError as err:
            self._fail(ProtocolViolation("bad_http", str(err)))
        except ProtocolViolation as err:
            self._fail(err)

    def _fail(self, err: ProtocolViolation) -> None:
        waiter = self._waiter
        self.violation(err.reason, err.detail)
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionLost(f"protocol violation: {err.detail}"))

    def eof_received(self) -> bool | None:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionLost(f"connection lost{': ' + str(exc) if exc else ''}"))
        if self.admission is not None:
            self.node.registry.remove(self)


class InboundConnection(_TlsAccepting):
    """An inbound connection: the gateway POSTs Notifies and events, the head-end answers."""

    kind = "inbound"
    __slots__ = ("_body", "_busy", "_h11", "_pending", "_request", "_size")

    def __init__(self, node: ConnectionHost) -> None:
        super().__init__(node)
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._pending: list[bytes] = []
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._busy = False

    def admitted(self) -> None:
        pending, self._pending = self._pending, []
        for chunk in pending:
            self.data_received(chunk)

    def data_received(self, data: bytes) -> None:
        if self.admission is None:
            self._pending.append(data)
            if sum(map(len, self._pending)) > self.node.settings.max_body_bytes:
                self.violation("oversize", "data before admission")
            return
        try:
            self._h11.receive_data(data)
            self._pump()
        except h11.RemoteProtocolError as err:
            self._reply_error(400, "bad_http", str(err))
        except ProtocolViolation as err:
            self._reply_error(413, err.reason, err.detail)

    def _pump(self) -> None:
        while not self._busy:
            event = self._h11.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request = event
                self._body, self._size = [], 0
                declared = _headers(event.headers).get("content-length")
                if declared and declared.isdigit() and int(declared) > self.node.settings.max_body_bytes:
                    raise ProtocolViolation("oversize", f"declared body of {declared} bytes")
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > self.node.settings.max_body_bytes:
                    raise ProtocolViolation("oversize", f"body exceeds {self.node.settings.max_body_bytes} bytes")
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                req = self._request
                assert req is not None
                request = HttpRequest(req.method.decode(), req.target.decode("latin-1"), _headers(req.headers),
                                      b"".join(self._body))
                self._busy = True
                self.node.spawn(self._handle(request))
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    async def _handle(self, request: HttpRequest) -> None:
        assert self.admission is not None
        try:
            status, headers, body = await self.node.handle_inbound(self.admission, self.peer, request)
        except Exception as err:  # never leave the gateway without an answer
            log.exception("headend.inbound_error", error=repr(err))
            status, headers, body = 500, [], b""
        self._send(status, headers, body)
        self._busy = False
        if not self.closed:
            try:
                self._pump()
            except (h11.RemoteProtocolError, ProtocolViolation) as err:
                self._reply_error(400, "bad_http", str(err))

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        if self.closed or self.transport is None:
            return
        try:
            data = self._h11.send(h11.Response(status_code=status,
                                               headers=[*headers, ("Content-Length", str(len(body)))]))
            if body:
                data += self._h11.send(h11.Data(data=body))
            data += self._h11.send(h11.EndOfMessage())
            self.transport.write(data)
            if self._h11.our_state is h11.MUST_CLOSE:
                self.close()
            else:
                self._h11.start_next_cycle()
        except h11.LocalProtocolError:
            self.close()

    def _reply_error(self, status: int, reason: str, detail: str) -> None:
        a = self.admission
        protocol_violation(self.node.metrics, a.tenant.name if a else None, a.gateway_id if a else None, self.peer,
                           reason, detail)
        if self.transport is not None and not self.closed:
            try:
                if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    data = self._h11.send(h11.Response(status_code=status,
                                                       headers=[("Content-Length", "0"), ("Connection", "close")]))
                    data += self._h11.send(h11.EndOfMessage())
                    self.transport.write(data)
            except h11.LocalProtocolError:
                pass
        self.close()

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
