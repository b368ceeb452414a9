"""The receiver: one listener for every EMT identity of every tenant, admission of gateway
connections, and what happens to a delivery (docs/mdm.md, "Receiving"; wire: docs/protocol.md 14):

1. TLS: the identity by SNI (:class:`~mdm.endpoints.Directory`); the client certificate is
   validated with the tenant's SM-PKI validator, revocation included, and must be an SMGW's
   (otherwise the connection is closed: ``mdm.connection_refused``).
2. The body: at most ``max_body_bytes`` (413 ``oversize``, refused before it is read).
3. The container (in a worker thread, off the event loop): signed by the SIG certificate of the
   same gateway, encrypted for one of the EMT's ENC certificates; then the XML is parsed.
4. The tenant's writer (:mod:`mdm.writer`) checks and stores it with the others of its batch and
   commits; only then is the gateway answered (protocol 14.3)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from core.ids import InvalidId, parse_device_id
from domain.meterdata.delivery import Delivery, Envelope
from domain.tenancy.service import TenantContext
from mdm.config import MdmSettings
from mdm.connection import Admission, Answer, DeliveryConnection, Request
from mdm.endpoints import Directory, EmtEndpoint, Refusal
from mdm.metrics import MdmMetrics
from mdm.payload import PayloadError, parse
from mdm.writer import Busy, TenantWriter
from pki import tls as pki_tls
from pki.profile import Role, common_name_of

log = structlog.get_logger("mdm.receiver")

RETRY_AFTER_S = "30"
CID_MAX = 64  # meter_deliveries.delivery_ref


@dataclass(frozen=True, slots=True)
class Opened:
    """A body after step 3: the SHA-256 and the delivery, or why it was refused."""

    sha256: str  # of the payload when the container opened, else of the body
    delivery: Delivery | None
    refusal: Refusal | None


class Receiver:
    def __init__(self, settings: MdmSettings, metrics: MdmMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or MdmMetrics()
        self.directory = Directory()
        self.writers: dict[str, TenantWriter] = {}
        self.connections: set[DeliveryConnection] = set()
        self.stopping = False
        self.bound: tuple[str, int] = (settings.host, settings.port)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.open_workers), thread_name_prefix="mdm-open")

    # ------------------------------------------------------------------ identities, writers
    def serve(self, ep: EmtEndpoint) -> None:
        self.directory.put(ep)
        self.writer_for(ep.tenant)

    def writer_for(self, tenant: TenantContext) -> TenantWriter:
        writer = self.writers.get(tenant.name)
        if writer is None:
            writer = self.writers[tenant.name] = TenantWriter(tenant, self.settings, self.metrics)
            writer.start()
        return writer

    # ------------------------------------------------------------------ listener
    async def start_server(self) -> int:
        loop = asyncio.get_running_loop()
        s = self.settings
        self._server = await loop.create_server(lambda: DeliveryConnection(self), s.host, s.port, backlog=4096,
                                                reuse_address=True)
        port = int(self._server.sockets[0].getsockname()[1])
        self.bound = (s.host, port)
        log.info("mdm.listening", host=s.host, port=port, identities=len(self.directory))
        return port

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def stop(self) -> None:
        """Graceful stop: no new connections, new requests are answered 503, the deliveries already
        received are stored and answered (up to ``stop_timeout_s``), then everything closes."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + self.settings.stop_timeout_s
        while self._tasks and (left := deadline - time.monotonic()) > 0:  # deliveries being handled
            await asyncio.wait(list(self._tasks), timeout=left)
        # The writers store what is queued; a batch not committed in time is not answered (the
        # gateways deliver it again).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(w.stop() for w in self.writers.values()), return_exceptions=True),
                                   max(1.0, deadline - time.monotonic()))
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        for task in list(self._tasks):
            task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        log.info("mdm.stopped")

    def sweep(self) -> int:
        """Close connections idle or stuck in a request for too long; returns how many."""
        now = time.monotonic()
        closed = 0
        for conn in list(self.connections):
            why = conn.timed_out(now)
            if why is not None:
                conn.expire(why)
                closed += 1
        return closed

    # ------------------------------------------------------------------ ConnectionHost
    def base_context(self) -> ssl.SSLContext | None:
        return None if self.stopping else self.directory.base_context()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def track(self, conn: DeliveryConnection) -> None:
        self.connections.add(conn)
        self.metrics.connections.set(len(self.connections))

    def untrack(self, conn: DeliveryConnection) -> None:
        self.connections.discard(conn)
        self.metrics.connections.set(len(self.connections))

    def admit(self, tls: asyncio.Transport, peer: str) -> Admission | None:
        """Which EMT identity the handshake chose and which gateway the client certificate names;
        None (counted, logged) when the certificate is not a valid SMGW TLS certificate."""
        sslobj = tls.get_extra_info("ssl_object")
        ep = self.directory.for_context(sslobj.context) if sslobj is not None else None
        if ep is None:
            self._refuse(None, peer, "no_identity")
            return None
        try:
            cert = pki_tls.peer_certificate(sslobj)
        except ValueError:
            cert = None
        pki_tls.release_peer_chain(sslobj)  # verified; not kept parsed for the connection's life
        verdict = pki_tls.validate_peer(sslobj, ep.validator, expected_role=Role.SMGW, cert=cert)
        cn = common_name_of(cert.subject) if cert is not None else None
        serial = f"{cert.serial_number:x}" if cert is not None else "-"
        if not verdict.valid or cn is None:
            self._refuse(ep, peer, str(verdict.reason), cn=cn, serial=serial, detail=verdict.detail)
            return None
        try:
            gateway_id = str(parse_device_id(cn.rsplit(".", 1)[0], gateway=True))
        except InvalidId:
            self._refuse(ep, peer, "bad_gateway_id", cn=cn, serial=serial)
            return None
        log.debug("mdm.connection_admitted", tenant=ep.tenant.name, emt=ep.market_partner, gateway=gateway_id,
                  peer=peer, serial=serial)
        return Admission(ep, gateway_id, serial)

    def _refuse(self, ep: EmtEndpoint | None, peer: str, reason: str, **details: Any) -> None:
        tenant = ep.tenant.name if ep is not None else None
        self.metrics.refused_connections.labels(tenant=tenant or "-", reason=reason).inc()
        log.warning("mdm.connection_refused", tenant=tenant, emt=ep.market_partner if ep else None, peer=peer,
                    reason=reason, **details)

    def refused_early(self, a: Admission, peer: str, reason: str, detail: str, size: int,
                      headers: dict[str, str]) -> None:
        """A delivery refused before its body was read (oversize): logged like any refusal."""
        envelope = self._envelope(a, hashlib.sha256(b"").hexdigest(), size, headers)
        try:
            future = self.writer_for(a.endpoint.tenant).submit(envelope, refusal=(reason, detail))
        except Busy:
            future = None
        self._count(a, "refused", reason, 0)
        self._log_refusal(a, peer, envelope, reason, detail)
        if future is not None:
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no warning

    # ------------------------------------------------------------------ deliveries
    async def deliver(self, a: Admission, peer: str, req: Request) -> Answer:
        t0 = time.monotonic()
        ep = a.endpoint
        echo = (("x-CID", req.headers["x-cid"]),) if "x-cid" in req.headers else ()
        if self.stopping:
            self._count(a, "unavailable", "stopping", 0)
            return Answer(503, headers=(*echo, ("Retry-After", RETRY_AFTER_S)), close=True)
        opened = await asyncio.get_running_loop().run_in_executor(self._pool, self._open, ep, a.gateway_id, req.body)
        envelope = self._envelope(a, opened.sha256, len(req.body), req.headers)
        if opened.refusal is not None and opened.refusal.reason == "unavailable":
            log.warning("mdm.delivery_deferred", tenant=ep.tenant.name, emt=ep.market_partner, gateway=a.gateway_id,
                        detail=opened.refusal.detail[:300])
            self._count(a, "unavailable", "crl", 0)
            return Answer(503, headers=(*echo, ("Retry-After", RETRY_AFTER_S)))
        refusal = (opened.refusal.reason, opened.refusal.detail) if opened.refusal is not None else None
        try:
            outcome = await self.writer_for(ep.tenant).submit(envelope, opened.delivery, refusal)
        except Busy as why:
            self._count(a, "unavailable", "busy", 0)
            log.warning("mdm.busy", tenant=ep.tenant.name, detail=str(why))
            return Answer(503, headers=(*echo, ("Retry-After", RETRY_AFTER_S)))
        except Exception:  # not stored (logged by the writer): the gateway delivers again
            self._count(a, "failed", "", 0)
            return Answer(503, headers=(*echo, ("Retry-After", RETRY_AFTER_S)))
        self._count(a, outcome.outcome, outcome.refusal or "", outcome.values_stored)
        self.metrics.delivery_seconds.labels(tenant=ep.tenant.name).observe(time.monotonic() - t0)
        if outcome.outcome == "refused":
            self._log_refusal(a, peer, envelope, outcome.refusal or "", outcome.detail or "")
            return Answer(outcome.http_status, outcome.refusal, echo)
        log.debug("mdm.delivery_stored", tenant=ep.tenant.name, emt=ep.market_partner, gateway=a.gateway_id,
                  outcome=outcome.outcome, values=outcome.values_stored, delivery_id=outcome.delivery_id)
        if outcome.outcome == "conflict":
            log.info("mdm.delivery_conflict", tenant=ep.tenant.name, emt=ep.market_partner, gateway=a.gateway_id,
                     delivery_id=outcome.delivery_id)
        return Answer(outcome.http_status, headers=echo)

    def _open(self, ep: EmtEndpoint, gateway_id: str, body: bytes) -> Opened:
        """Step 3, in a worker thread: open the container, parse the XML."""
        try:
            payload = ep.open(body, gateway_id, self.settings.max_payload_bytes)
        except Refusal as refusal:
            return Opened(hashlib.sha256(body).hexdigest(), None, refusal)
        digest = hashlib.sha256(payload).hexdigest()
        try:
            return Opened(digest, parse(payload), None)
        except PayloadError as err:
            return Opened(digest, None, Refusal("malformed", str(err)))

    @staticmethod
    def _envelope(a: Admission, sha256: str, size: int, headers: dict[str, str]) -> Envelope:
        cid = headers.get("x-cid")
        return Envelope(recipient=a.endpoint.market_partner, sha256=sha256, size=size,
                        delivery_ref=cid[:CID_MAX] if cid else None, gateway_id=a.gateway_id)

    def _count(self, a: Admission, outcome: str, reason: str, values: int) -> None:
        tenant = a.endpoint.tenant.name
        self.metrics.deliveries.labels(tenant=tenant, outcome=outcome, reason=reason).inc()
        if values:
            self.metrics.values.labels(tenant=tenant).inc(values)

    @staticmethod
    def _log_refusal(a: Admission, peer: str, envelope: Envelope, reason: str, detail: str) -> None:
        log.info("mdm.delivery_refused", tenant=a.endpoint.tenant.name, emt=a.endpoint.market_partner,
                 gateway=a.gateway_id, peer=peer, reason=reason, detail=detail[:300], size=envelope.size,
                 sha256=envelope.sha256[:16], cid=envelope.delivery_ref)

