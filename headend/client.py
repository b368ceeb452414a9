"""The admin client: one request to a gateway over its management connection, as docs/protocol.md
sections 4-7 and 9 say: CMS-sealed XML body, ``x-CID``, ``x-Command-ID``, ``x-ContactURI``, the
answer opened and checked, ``202`` completed by the Notify, error answers turned into
:class:`~headend.errors.CommandFailed`. Every exchange lands in the communication history."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import structlog
from cryptography import x509

from headend import xmlcodec as X
from headend.admission import Admission
from headend.config import HeadendSettings
from headend.connection import ManagementConnection
from headend.endpoints import GatewayMismatch
from headend.errors import CommandFailed, ConnectionLost, HeadendError, ProtocolViolation
from headend.lookup import gateway_enc_certificate
from headend.metrics import protocol_violation
from headend.node import HeadendNode

log = structlog.get_logger("headend.client")

CONTENT_TYPE = "application/vnd.de-dke-k461-cosem+xml;encap=cms-tr03109"
OBJ_CERTIFICATES = "64-00002b0000ff"


@dataclass(frozen=True)
class Answer:
    status: int
    root: X.ET.Element | None
    sent_at: float  # wall clock, seconds
    received_at: float
    cid: str


class AdminClient:
    def __init__(self, node: HeadendNode, conn: ManagementConnection,
                 on_progress: Callable[[], None] | None = None) -> None:
        assert conn.admission is not None
        self.on_progress = on_progress  # called after every exchange (activity heartbeats)
        self.node = node
        self.conn = conn
        self.admission: Admission = conn.admission
        self.ep = conn.admission.tenant
        self.gateway_id = conn.admission.gateway_id
        self.ldev = f"{self.gateway_id.lower()}.sm"

    @property
    def settings(self) -> HeadendSettings:
        return self.node.settings

    async def call(self, command: str, method: str, resource: str, xml: bytes | None = None, *,
                   command_id: str | None = None, query: dict[str, object] | None = None,
                   timeout: float | None = None, notify_timeout: float = 300.0) -> Answer:
        node, ep = self.node, self.ep
        reception = node.reception
        timeout = timeout or self.settings.response_timeout_s
        cid = f"uuid:{uuid.uuid4()}"
        target = f"/cosem/ldevs/{self.ldev}/{resource}"
        if query:
            target += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        body = b""
        if xml is not None:
            body = ep.seal(xml, await self.enc_certificate())
        headers = [("Host", self.ldev), ("Accept", CONTENT_TYPE), ("x-CID", cid),
                   ("x-ContactURI", node.contact_uri)]
        if body:
            headers.append(("Content-Type", CONTENT_TYPE))
        if command_id:
            headers.append(("x-Command-ID", command_id))
        pending = reception.expect_notify(ep.name, self.gateway_id, command, cid)
        sent_at, m0 = time.time(), time.monotonic()
        history = dict(gateway_id=self.gateway_id, direction="out", command=command[:40], method=method,
                       path=target[:400], correlation_id=cid, command_id=command_id, bytes_out=len(body))
        try:
            resp = await self.conn.request(method, target, headers, body, timeout)
        except ConnectionLost as err:
            reception.forget_notify(cid)
            node.store.communication(ep.name, **history, result="connection_lost",
                                     duration_ms=int((time.monotonic() - m0) * 1000))
            log.info("headend.command_connection_lost", tenant=ep.name, gateway=self.gateway_id, command=command,
                     cid=cid, detail=err.detail)
            raise
        received_at = time.time()
        duration_ms = int((time.monotonic() - m0) * 1000)
        if self.on_progress is not None:
            self.on_progress()
        node.registry.touch(self.conn)
        if resp.status != 202:
            reception.forget_notify(cid)
        echoed = resp.headers.get("x-cid")
        if echoed is not None and echoed.replace(" ", "") != cid:
            reception.forget_notify(cid)
            self._violation("cid_mismatch", f"answer carries x-CID {echoed!r}, request had {cid}")
            node.store.communication(ep.name, **history, status=resp.status, result="cid_mismatch",
                                     duration_ms=duration_ms, bytes_in=len(resp.body))
            raise ConnectionLost(f"answer to {command} carried another x-CID")
        try:
            root = self._open(resp.body) if resp.body else None
        except ProtocolViolation as err:
            reception.forget_notify(cid)
            node.store.communication(ep.name, **history, status=resp.status, result=err.reason,
                                     duration_ms=duration_ms, bytes_in=len(resp.body))
            if resp.status >= 400:
                raise CommandFailed(resp.status, None, f"unreadable error body ({err.detail})") from None
            raise ConnectionLost(f"{command}: {err.detail}") from None
        result = "accepted" if resp.status == 202 else "ok" if resp.status < 400 else _reason(root, resp.status)
        node.store.communication(ep.name, **history, status=resp.status, result=result[:40], duration_ms=duration_ms,
                                 bytes_in=len(resp.body))
        if resp.status >= 400:
            raise _failure(resp.status, root)
        if resp.status != 202:
            return Answer(resp.status, root, sent_at, received_at, cid)
        # 202: the result comes as a Notify on an inbound connection (docs/protocol.md 7).
        try:
            status, child = await asyncio.wait_for(asyncio.shield(pending.future), notify_timeout)
        except TimeoutError:
            raise HeadendError(f"no Notify for {command} ({cid}) within {notify_timeout:.0f}s",
                               error_type="connection_lost") from None
        finally:
            reception.forget_notify(cid)
        if status >= 400:
            raise _failure(status, child)
        return Answer(status, child, sent_at, time.time(), cid)

    def _open(self, body: bytes) -> X.ET.Element:
        try:
            return self.ep.open(body, self.gateway_id, self.settings.max_body_bytes)
        except GatewayMismatch as err:
            self._violation("gateway_mismatch", str(err))
            raise ProtocolViolation("gateway_mismatch", str(err)) from None
        except Exception as err:  # CmsError, XmlError
            self._violation("bad_body", str(err))
            raise ProtocolViolation("bad_body", str(err)) from None

    def _violation(self, reason: str, detail: str) -> None:
        protocol_violation(self.node.metrics, self.ep.name, self.gateway_id, self.conn.peer, reason, detail)
        self.conn.abort()

    async def enc_certificate(self) -> x509.Certificate:
        """The gateway's ENC certificate: from the cache, the certificate store, or the gateway."""
        cached = self.ep.enc_certs.get(self.gateway_id)
        if cached is not None:
            return cached
        async with self.ep.context.sessions() as session:
            cert = await gateway_enc_certificate(session, self.gateway_id)
        if cert is None:
            answer = await self.call("read_certificates", "GET", f"objects/{OBJ_CERTIFICATES}/attributes/6")
            cert = self._enc_from(answer.root)
        self.ep.remember_enc(self.gateway_id, cert)
        return cert

    def _enc_from(self, root: X.ET.Element | None) -> x509.Certificate:
        if root is None:
            raise ConnectionLost("certificate list without body")
        for el in X.children(root, "certificate"):
            if el.get("usage") == "enc" and el.get("role") == "smgw":
                import base64

                try:
                    cert = x509.load_der_x509_certificate(base64.b64decode(X.text(el)))
                except ValueError as err:
                    raise HeadendError(f"gateway's ENC certificate unreadable: {err}", error_type="rejected") from None
                verdict = self.ep.validator.validate(cert, "enc")
                if not verdict.valid:
                    raise HeadendError(f"gateway's ENC certificate invalid: {verdict.reason} {verdict.detail}",
                                       error_type="rejected")
                if cert.subject.public_bytes() != self.admission.subject:
                    raise HeadendError("gateway's ENC certificate has another subject than its TLS certificate",
                                       error_type="rejected")
                return cert
        raise HeadendError("gateway lists no ENC certificate", error_type="rejected")


def _reason(root: X.ET.Element | None, status: int) -> str:
    if root is not None and X.local(root) == "error":
        return root.get("reason") or f"http_{status}"
    return f"http_{status}"


def _failure(status: int, root: X.ET.Element | None) -> CommandFailed:
    if root is not None and X.local(root) == "error":
        extra = {k: v for k, v in root.attrib.items() if k not in ("reason", "gateway")}
        return CommandFailed(status, root.get("reason"), X.text(root), **extra)
    return CommandFailed(status, None, "no error detail")
