"""A minimal HTTP/1.1 server loop on ``h11`` for asyncio streams.

Used twice with nothing shared with ``headend/``: by each simulated gateway as the HTTP *server*
on the TLS connection it opened to the head-end (TR-03109-1 Anl. II: the GWA is the client), and
by the simulator's local control API.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h11

MAX_HEADER_BYTES = 16 * 1024


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    http_version: str = "1.1"

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.target.split("?", 1)[1])) if "?" in self.target else {}


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False  # close the connection after sending
    drop: bool = False  # drop the connection instead of answering (fault injection)


class BodyTooLarge(Exception):
    pass


async def read_request(
    conn: h11.Connection, reader: asyncio.StreamReader, *, max_body: int, idle_timeout: float | None
) -> Request | None:
    """Read one request; None when the peer closed cleanly. Raises h11.RemoteProtocolError on bad
    HTTP, BodyTooLarge, or TimeoutError when nothing arrives within ``idle_timeout``."""
    method = target = ""
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await (asyncio.wait_for(reader.read(65536), idle_timeout) if idle_timeout else reader.read(65536))
            conn.receive_data(data)
            continue
        if isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Request):
            method = event.method.decode("ascii")
            target = event.target.decode("ascii", "replace")
            headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
            length = next((int(v) for k, v in headers if k == "content-length" and v.isdigit()), 0)
            if length > max_body:
                raise BodyTooLarge(f"content-length {length} exceeds {max_body}")
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > max_body:
                raise BodyTooLarge(f"body exceeds {max_body}")
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return Request(method, target, headers, b"".join(chunks))


async def send_response(conn: h11.Connection, writer: asyncio.StreamWriter, resp: Response) -> None:
    headers = [(k, v) for k, v in resp.headers if k.lower() != "content-length"]
    if resp.status not in (204, 304) and not 100 <= resp.status < 200:
        headers.append(("Content-Length", str(len(resp.body))))
    if resp.close:
        headers.append(("Connection", "close"))
    data = conn.send(h11.Response(status_code=resp.status, headers=headers))
    if resp.body and resp.status not in (204, 304):
        data += conn.send(h11.Data(data=resp.body))
    data += conn.send(h11.EndOfMessage())
    writer.write(data)
    await writer.drain()


Handler = Callable[[Request], Awaitable[Response]]


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    *,
    max_body: int = 16 * 1024 * 1024,
    idle_timeout: float | None = None,
    on_error: Callable[[str], None] | None = None,
) -> str:
    """Serve requests on one connection until it closes; returns why it ended."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
    reason = "closed"
    try:
        while True:
            try:
                req = await read_request(conn, reader, max_body=max_body, idle_timeout=idle_timeout)
            except TimeoutError:
                reason = "idle_timeout"
                break
            except BodyTooLarge as err:
                if on_error:
                    on_error(str(err))
                await _error(conn, writer, 413)
                reason = "body_too_large"
                break
            except h11.RemoteProtocolError as err:
                if on_error:
                    on_error(f"bad HTTP: {err}")
                await _error(conn, writer, 400)
                reason = "bad_http"
                break
            if req is None:
                break
            resp = await handler(req)
            if resp.drop:
                reason = "dropped"
                writer.transport.abort()
                return reason
            if conn.our_state is not h11.SEND_RESPONSE:
                break
            await send_response(conn, writer, resp)
            if resp.close or conn.our_state is h11.MUST_CLOSE:
                reason = "closed_by_us"
                break
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                break
    except (ConnectionError, asyncio.IncompleteReadError, OSError) as err:
        reason = f"connection_error: {type(err).__name__}"
    finally:
        await close_writer(writer)
    return reason


async def _error(conn: h11.Connection, writer: asyncio.StreamWriter, status: int) -> None:
    """Answer a request that could not be read at all: status only, empty body (the admin
    protocol's bodies are CMS containers; "the status alone speaks"), then close."""
    if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
        with contextlib.suppress(h11.LocalProtocolError, ConnectionError, OSError):
            await send_response(conn, writer, Response(status, close=True))


async def close_writer(writer: asyncio.StreamWriter) -> None:
    if writer.is_closing():
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (TimeoutError, ConnectionError, OSError, asyncio.CancelledError):
        writer.transport.abort()
