"""A minimal GWA head-end for the simulator tests, written from docs/protocol.md alone (not from
``headend/``): the management port accepts gateway TLS connections and acts as HTTP client on
them; the inbound port accepts Notifies and events. Bodies are sealed/opened with ``pki.cms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

import defusedxml.ElementTree as DET
import h11
from cryptography.x509.oid import NameOID

from pki import cms, tls
from pki.testpki import TestPki

CT = "application/vnd.de-dke-k461-cosem+xml;encap=cms-tr03109"
NS = "urn:gridgate:gwa:1"
Q = "{" + NS + "}"


def xml(tag: str, attrs: dict[str, object] | None = None, *children: ET.Element, text: str | None = None) -> bytes:
    el = ET.Element(Q + tag, {k: str(v) for k, v in (attrs or {}).items()})
    el.text = text
    for c in children:
        el.append(c)
    ET.register_namespace("", NS)
    return ET.tostring(el)


def child(tag: str, attrs: dict[str, object] | None = None, text: str | None = None) -> ET.Element:
    el = ET.Element(Q + tag, {k: str(v) for k, v in (attrs or {}).items()})
    el.text = text
    return el


def local(el: ET.Element) -> str:
    return el.tag.split("}", 1)[-1]


def child_of(el: ET.Element, tag: str) -> ET.Element:
    """The first child ``tag`` (local name) of ``el``; the test fails when there is none."""
    found = el.find(Q + tag)
    assert found is not None, f"<{local(el)}> has no <{tag}>"
    return found


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    root: ET.Element | None
    signer_cn: str | None = None

    @property
    def reason(self) -> str | None:
        return self.root.get("reason") if self.root is not None and local(self.root) == "error" else None

    @property
    def element(self) -> ET.Element:
        """The answer's XML; the test fails when the answer had no body."""
        assert self.root is not None, f"{self.status} answer without a body"
        return self.root


class Link:
    """One management connection from a gateway; the stub is the HTTP client."""

    def __init__(self, stub: GwaStub, gateway_id: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.stub, self.gateway_id = stub, gateway_id
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.CLIENT)
        self.closed = asyncio.Event()

    @property
    def ldev(self) -> str:
        return f"{self.gateway_id.lower()}.sm"

    async def request(self, method: str, obj_path: str, body: bytes | None = None, *, command_id: str | None = None,
                      query: str = "", host: str | None = None, raw_body: bytes | None = None,
                      timeout: float = 10) -> Reply:
        """``obj_path`` like ``objects/1-0000600100ff/attributes/2``. Raises ConnectionError when
        the gateway drops the connection."""
        target = f"/cosem/ldevs/{self.ldev}/{obj_path}" + (f"?{query}" if query else "")
        payload = raw_body if raw_body is not None else (self.stub.seal_for(self.gateway_id, body) if body else b"")
        headers = [("Host", host or self.ldev), ("Accept", CT), ("x-CID", f"uuid:{uuid.uuid4()}"),
                   ("x-ContactURI", f"https://127.0.0.1:{self.stub.inbound_port}/gwa/notify"),
                   ("Content-Length", str(len(payload)))]
        if payload:
            headers.append(("Content-Type", CT))
        if command_id:
            headers.append(("x-Command-ID", command_id))
        data = self.conn.send(h11.Request(method=method, target=target, headers=headers))
        if payload:
            data += self.conn.send(h11.Data(data=payload))
        data += self.conn.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()
        status, rh, chunks = 0, {}, []
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA:
                got = await asyncio.wait_for(self.reader.read(65536), timeout)
                if not got:
                    self.closed.set()
                    raise ConnectionError("gateway closed the connection")
                self.conn.receive_data(got)
            elif isinstance(ev, h11.Response):
                status = ev.status_code
                rh = {k.decode().lower(): v.decode() for k, v in ev.headers}
            elif isinstance(ev, h11.Data):
                chunks.append(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage):
                break
        if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
            self.closed.set()
        else:
            self.conn.start_next_cycle()
        body_bytes = b"".join(chunks)
        if not body_bytes:
            return Reply(status, rh, None)
        root, cn = self.stub.open_from_gateway(body_bytes)
        return Reply(status, rh, root, cn)

    async def close(self) -> None:
        self.closed.set()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


@dataclass
class Inbound:
    path: str
    headers: dict[str, str]
    root: ET.Element
    signer_cn: str | None


@dataclass
class GwaStub:
    pki: TestPki
    links: dict[str, Link] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (CN, reason)
    inbound: list[Inbound] = field(default_factory=list)
    inbound_status: int = 204
    port: int = 0
    inbound_port: int = 0

    def __post_init__(self) -> None:
        self._link_events: dict[str, asyncio.Event] = {}
        self._inbound_event = asyncio.Event()
        self._servers: list[asyncio.Server] = []

    async def start(self) -> GwaStub:
        gwa = self.pki.gwa
        ctx = tls.server_context(gwa.tls.cert_path, gwa.tls.key_path, [self.pki.root_path],
                                 intermediates=[self.pki.subca_path])
        mgmt = await asyncio.start_server(self._on_management, "127.0.0.1", 0, ssl=ctx)
        inb = await asyncio.start_server(self._on_inbound, "127.0.0.1", 0, ssl=ctx)
        self._servers = [mgmt, inb]
        self.port = mgmt.sockets[0].getsockname()[1]
        self.inbound_port = inb.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for link in list(self.links.values()):
            link.closed.set()
            await link.close()
        for s in self._servers:
            s.close()

    # -- crypto
    def seal_for(self, gateway_id: str, body: bytes) -> bytes:
        gwa = self.pki.gwa
        return cms.seal(body, sign_key=gwa.sig.key, sign_cert=gwa.sig.cert,
                        recipient_cert=self.pki.gateway(gateway_id).enc.cert)

    def open_from_gateway(self, data: bytes) -> tuple[ET.Element, str | None]:
        gwa = self.pki.gwa
        opened = cms.open(data, key=gwa.enc.key, cert=gwa.enc.cert, validator=self.pki.validator())
        cn = opened.signer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return DET.fromstring(opened.payload), str(cn)

    # -- management port
    def _peer_gateway(self, writer: asyncio.StreamWriter) -> tuple[str | None, str]:
        ssl_obj = writer.get_extra_info("ssl_object")
        verdict = tls.validate_peer(ssl_obj, self.pki.validator())
        cert = tls.peer_certificate(ssl_obj)
        cn = str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value) if cert else "?"
        if not verdict.valid:
            return None, f"{cn}: {verdict.reason.value}"
        if not cn.endswith(".SMGW"):
            return None, f"{cn}: not an SMGW"
        return cn[: -len(".SMGW")], cn

    async def _on_management(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        gid, info = self._peer_gateway(writer)
        if gid is None:
            self.refused.append((info.split(":")[0], info))
            writer.transport.abort()
            return
        link = Link(self, gid, reader, writer)
        old = self.links.get(gid)
        self.links[gid] = link
        if old is not None:
            await old.close()
        self._link_events.setdefault(gid, asyncio.Event()).set()
        await link.closed.wait()

    async def wait_link(self, gateway_id: str, timeout: float = 10, *, probe: bool = True) -> Link:
        """Wait for the gateway's management connection; with ``probe`` make one request on it
        (so the gateway side has finished setting the connection up when this returns)."""
        ev = self._link_events.setdefault(gateway_id, asyncio.Event())
        await asyncio.wait_for(ev.wait(), timeout)
        link = self.links[gateway_id]
        if probe:
            await link.request("GET", "objects/8-0000010000ff/attributes/2")
        return link

    def forget(self, gateway_id: str) -> None:
        self.links.pop(gateway_id, None)
        self._link_events.pop(gateway_id, None)

    # -- inbound port
    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                path, headers, chunks = "", {}, []
                while True:
                    ev = conn.next_event()
                    if ev is h11.NEED_DATA:
                        conn.receive_data(await reader.read(65536))
                        continue
                    if isinstance(ev, h11.ConnectionClosed):
                        return
                    if isinstance(ev, h11.Request):
                        path = ev.target.decode()
                        headers = {k.decode().lower(): v.decode() for k, v in ev.headers}
                    elif isinstance(ev, h11.Data):
                        chunks.append(bytes(ev.data))
                    elif isinstance(ev, h11.EndOfMessage):
                        break
                root, cn = self.open_from_gateway(b"".join(chunks))
                self.inbound.append(Inbound(path, headers, root, cn))
                self._inbound_event.set()
                writer.write(conn.send(h11.Response(status_code=self.inbound_status,
                                                    headers=[("x-CID", headers.get("x-cid", "")),
                                                             ("Content-Length", "0")]))
                             + conn.send(h11.EndOfMessage()))
                await writer.drain()
                conn.start_next_cycle()
        except (ConnectionError, ssl.SSLError, h11.ProtocolError):
            return
        finally:
            writer.close()

    async def wait_inbound(self, predicate: Callable[[Inbound], bool], timeout: float = 10) -> Inbound:
        async def find() -> Inbound:
            while True:
                for item in self.inbound:
                    if predicate(item):
                        return item
                self._inbound_event.clear()
                await self._inbound_event.wait()

        return await asyncio.wait_for(find(), timeout)

    async def wait_notify(self, command_id: str, timeout: float = 10) -> ET.Element:
        item = await self.wait_inbound(lambda i: i.path == "/gwa/notify" and local(i.root) == "notify"
                                       and i.root.get("commandId") == command_id, timeout)
        return item.root
