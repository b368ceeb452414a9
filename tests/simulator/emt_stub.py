"""An EMT's meter data receiver for the simulator tests, written from docs/protocol.md section 14
alone (not from ``mdm/``): HTTPS with the EMT's TLS certificate from the test PKI, the CMS opened
with the EMT's ENC key (``pki.cms.open``), the COSEM XML read with ``defusedxml`` into plain
values. What it answers is up to the test (``answers``: a status per request, then ``default``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import defusedxml.ElementTree as DET
import h11
from cryptography.x509.oid import NameOID

from pki import cms, tls
from pki.testpki import TestPki

COR = "{urn:k461-dke-de:cor-1}"
GG = "{urn:gridgate:mdm:1}"
PATH = "/mdm/info-report"
CT = "application/vnd.de-dke-k461-cosem+xml;encap=cms-tr03109"
INTEGERS = {"integer", "long", "long-unsigned", "double-long", "double-long-unsigned", "long64", "long64-unsigned",
            "enum"}


def _local(el: ET.Element) -> str:
    return el.tag.split("}", 1)[-1]


def data_value(el: ET.Element) -> Any:
    """COSEM typed data (docs/protocol.md 14.2) as Python: integers, hex strings, times, lists."""
    kind = _local(el)
    if kind in INTEGERS:
        return int(el.text) if el.text else None
    if kind == "octet-string":
        return el.text or ""
    if kind == "date-time":
        assert el.text and el.text.endswith("Z"), el.text
        return el.text
    if kind in ("structure", "array"):
        items = [data_value(c) for c in el]
        if kind == "array":
            assert int(el.get("count", -1)) == len(items)
        return items
    raise AssertionError(f"unknown typed data <{kind}>")


@dataclass
class CosemObject:
    class_id: int
    version: int
    obis_hex: str
    attributes: dict[int, Any]


@dataclass
class Delivery:
    """One POST as received and opened."""

    path: str
    headers: dict[str, str]
    sni: str | None
    client_cn: str
    signer_cn: str
    root: ET.Element
    payload: bytes
    received_at: float
    status: int  # what the stub answered

    @property
    def cid(self) -> str:
        return self.headers.get("x-cid", "")

    def gg(self, name: str) -> str:
        return self.root.get(GG + name, "")

    @property
    def ldevs(self) -> dict[str, list[CosemObject]]:
        out: dict[str, list[CosemObject]] = {}
        ldevs = self.root.find(COR + "ldevs")
        assert ldevs is not None and int(ldevs.get("count", -1)) == len(ldevs)
        for ldev in ldevs:
            objects_el = ldev.find(COR + "objects")
            assert objects_el is not None and int(objects_el.get("count", -1)) == len(objects_el)
            objects = []
            for obj in objects_el:
                attrs_el = obj.find(COR + "attributes")
                assert attrs_el is not None and int(attrs_el.get("count", -1)) == len(attrs_el)
                attrs = {int(a.get("id", -1)): data_value(a[0]) for a in attrs_el}
                objects.append(CosemObject(int(obj.get("class-id", -1)), int(obj.get("version", -1)),
                                           obj.get("id", ""), attrs))
            out[ldev.get("id", "")] = objects
        return out

    def objects(self) -> list[CosemObject]:
        (objects,) = self.ldevs.values()
        return objects

    def object(self, class_id: int, obis_hex: str) -> CosemObject:
        found = [o for o in self.objects() if o.class_id == class_id and o.obis_hex == obis_hex]
        assert len(found) == 1, f"{len(found)} objects {class_id}-{obis_hex}"
        return found[0]

    def profile(self, obis_hex: str) -> tuple[list[list[Any]], int, list[list[Any]]]:
        """(capture objects, capture period, buffer) of profile generic ``obis_hex``."""
        p = self.object(7, obis_hex)
        return p.attributes[3], p.attributes[4], p.attributes[2]


@dataclass
class EmtStub:
    pki: TestPki
    name: str = "emt1"  # whose TLS certificate the server presents
    answers: list[int] = field(default_factory=list)  # statuses for the next requests, in order
    default: int = 201
    reasons: dict[int, str] = field(default_factory=lambda: {400: "malformed", 403: "signer_mismatch",
                                                             413: "oversize", 422: "taf_not_ordered"})
    retry_after: str | None = None
    received: list[Delivery] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._event = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._sni: dict[int, str | None] = {}

    async def start(self, port: int = 0) -> EmtStub:
        ent = self.pki.emts[self.name]
        ctx = tls.server_context(ent.tls.cert_path, ent.tls.key_path, [self.pki.root_path],
                                 intermediates=[self.pki.subca_path])

        def remember(obj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
            self._sni[id(obj)] = name

        ctx.sni_callback = remember
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def endpoint(self, host: str = "emt1.gridgate.test") -> str:
        return f"https://{host}:{self.port}{PATH}"

    # -- serving
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        ssl_obj = writer.get_extra_info("ssl_object")
        sni = self._sni.pop(id(ssl_obj), None)
        peer = tls.peer_certificate(ssl_obj)
        client_cn = str(peer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value) if peer else "?"
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
                status = self.answers.pop(0) if self.answers else self.default
                emt = self.pki.emts[self.name]
                opened = cms.open(b"".join(chunks), key=emt.enc.key, cert=emt.enc.cert, validator=self.pki.validator())
                signer = str(opened.signer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
                root = DET.fromstring(opened.payload, forbid_dtd=True, forbid_entities=True, forbid_external=True)
                self.received.append(Delivery(path, headers, sni, client_cn, signer, root, opened.payload,
                                              time.time(), status))
                self._event.set()
                body = b""
                out_headers = [("x-CID", headers.get("x-cid", ""))]
                if status in self.reasons:
                    body = f'<error xmlns="urn:gridgate:mdm:1" reason="{self.reasons[status]}"/>'.encode()
                    out_headers.append(("Content-Type", "application/xml"))
                if status in (429, 503) and self.retry_after is not None:
                    out_headers.append(("Retry-After", self.retry_after))
                out_headers.append(("Content-Length", str(len(body))))
                data = conn.send(h11.Response(status_code=status, headers=out_headers))
                writer.write(data + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                await writer.drain()
                conn.start_next_cycle()
        except (ConnectionError, ssl.SSLError, h11.ProtocolError):
            return
        finally:
            writer.close()

    async def wait(self, predicate: Callable[[list[Delivery]], bool], timeout: float = 10) -> list[Delivery]:
        """Wait until ``predicate(received)`` holds; returns ``received``."""
        async def until() -> list[Delivery]:
            while not predicate(self.received):
                self._event.clear()
                await self._event.wait()
            return self.received

        return await asyncio.wait_for(until(), timeout)
