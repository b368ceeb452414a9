"""One head-end node: the gateway listeners of every tenant (SNI picks the tenant), admission of
gateway connections, the connection registry, wake-ups, Notify and event reception, and the admin
client the command activities use. docs/protocol.md is the wire contract; docs/architecture.md
("Reaching a gateway") the routing."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from core.ids import InvalidId, parse_device_id
from domain.certificates.identity import GwaIdentity
from domain.tenancy.service import TenantContext
from headend import xmlcodec as X
from headend.config import HeadendSettings
from headend.connection import HttpRequest, InboundConnection, ManagementConnection
from headend.errors import UnknownGateway, Unreachable
from headend.lookup import GatewayRecord, RecordLoader
from headend.metrics import HeadendMetrics
from headend.registry import Registry
from headend.store import HeadendStore, utcnow
from headend.throttle import Throttle
from headend.wakeup import UdpWakeupTransport, WakeupTransport
from pki import cms
from pki import tls as pki_tls
from pki import wakeup as pki_wakeup
from pki.profile import Role, common_name, common_name_of
from pki.validation import Validator, fingerprint

log = structlog.get_logger("headend.node")

CONTENT_TYPE = "application/vnd.de-dke-k461-cosem+xml;encap=cms-tr03109"
MAX_LIFETIME_S = pki_tls.MAX_SESSION_LIFETIME.total_seconds()


ENC_CACHE_MAX = 5_000  # per tenant: a miss costs one indexed query (the certificate store)


@dataclass
class TenantEndpoint:
    """A tenant as the head-end sees it: its GWA identity, TLS context, validator."""

    name: str
    context: TenantContext
    identity: GwaIdentity
    ssl_context: ssl.SSLContext
    validator: Validator
    sni_names: frozenset[str]
    identity_fp: str
    # Gateways' ENC certificates (recipients of sealed requests), most recently stored last; bounded
    # so that a fleet of 100,000 does not keep one parsed certificate per gateway for ever.
    enc_certs: dict[str, x509.Certificate] = field(default_factory=dict)

    def remember_enc(self, gateway_id: str, cert: x509.Certificate) -> None:
        self.enc_certs.pop(gateway_id, None)
        self.enc_certs[gateway_id] = cert
        while len(self.enc_certs) > ENC_CACHE_MAX:
            del self.enc_certs[next(iter(self.enc_certs))]

    def seal(self, payload: bytes, recipient: x509.Certificate) -> bytes:
        return cms.seal(payload, sign_key=self.identity.sig_key, sign_cert=self.identity.sig_cert,
                        recipient_cert=recipient)

    def open(self, data: bytes, gateway_id: str, max_payload: int) -> X.ET.Element:
        """Open a gateway's container: signer must be that gateway's SIG certificate, the XML root
        must name that gateway. Raises CmsError / XmlError / GatewayMismatch."""
        opened = cms.open(data, key=self.identity.enc_key, cert=self.identity.enc_cert, validator=self.validator,
                          max_payload=max_payload)
        signer_cn = common_name(opened.signer)
        if signer_cn != f"{gateway_id}.SMGW":
            raise GatewayMismatch(f"body signed by {signer_cn!r}, connection belongs to {gateway_id}")
        root = X.loads(opened.payload)
        claimed = root.get("gateway")
        if claimed is not None and claimed.upper() != gateway_id:
            raise GatewayMismatch(f"answer names gateway {claimed}, connection belongs to {gateway_id}")
        return root


class GatewayMismatch(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Admission:
    tenant: TenantEndpoint
    gateway_id: str
    serial: str
    fingerprint: str
    subject: bytes  # DER of the TLS certificate's subject (a parsed Name costs ~3 KB per session)
    record: GatewayRecord


@dataclass
class PendingNotify:
    tenant: str
    gateway_id: str
    command: str
    future: asyncio.Future[tuple[int, X.ET.Element | None]]


class HeadendNode:
    def __init__(self, settings: HeadendSettings, *, metrics: HeadendMetrics | None = None,
                 wakeup_transport: WakeupTransport | None = None) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.metrics = metrics or HeadendMetrics()
        self.store = HeadendStore(self.node_id, settings.history_flush_s)
        self.registry = Registry(self.store, self.metrics)
        self.throttle = Throttle(settings, self.metrics)
        self.wakeup_transport: WakeupTransport = wakeup_transport or UdpWakeupTransport(settings.wakeup_port)
        self.endpoints: dict[str, TenantEndpoint] = {}
        self._by_ctx: dict[int, TenantEndpoint] = {}
        self._by_sni: dict[str, TenantEndpoint] = {}
        self._base_ctx: ssl.SSLContext | None = None
        self.pending: dict[str, PendingNotify] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._last_wakeup: dict[tuple[str, str], float] = {}
        # Gateway records for admission and wake-up, briefly cached: a burst of wake-ups and the
        # admissions that follow cost one query per gateway, not three.
        self._records: dict[tuple[str, str], tuple[float, GatewayRecord]] = {}
        # Bounded database concurrency for lookups: a burst of thousands of wake-ups queues here
        # instead of timing out on the connection pool; lookups are coalesced per tenant.
        self._db_slots = asyncio.Semaphore(settings.db_concurrency)
        self._loaders: dict[str, RecordLoader] = {}
        self.started_at = utcnow()
        self.bound: tuple[str, int, int] = (settings.host, settings.port, settings.inbound_port)

    # ------------------------------------------------------------------ tenants
    def add_endpoint(self, ep: TenantEndpoint) -> None:
        old = self.endpoints.get(ep.name)
        if old is not None:
            self._by_ctx.pop(id(old.ssl_context), None)
            ep.enc_certs.update(old.enc_certs)
        self.endpoints[ep.name] = ep
        self._by_ctx[id(ep.ssl_context)] = ep
        self.store.attach(ep.context)
        self._rebuild_sni()
        if self._base_ctx is None:
            self._base_ctx = self._make_base_context(ep)

    def _rebuild_sni(self) -> None:
        counts: dict[str, int] = {}
        for ep in self.endpoints.values():
            for n in ep.sni_names:
                counts[n] = counts.get(n, 0) + 1
        by_sni: dict[str, TenantEndpoint] = {}
        for ep in self.endpoints.values():
            by_sni[f"{ep.name}.{self.settings.sni_suffix}".lower()] = ep
        for ep in self.endpoints.values():
            for n in ep.sni_names:
                if counts[n] == 1:
                    by_sni.setdefault(n.lower(), ep)
        self._by_sni = by_sni

    def endpoint_for_sni(self, server_name: str | None) -> TenantEndpoint | None:
        if server_name:
            return self._by_sni.get(server_name.lower().rstrip("."))
        if self.settings.default_tenant:
            return self.endpoints.get(self.settings.default_tenant)
        if len(self.endpoints) == 1:
            return next(iter(self.endpoints.values()))
        return None

    def _make_base_context(self, ep: TenantEndpoint) -> ssl.SSLContext:
        # The listener's context only runs the ClientHello: the SNI callback switches every
        # connection to its tenant's context (certificate, trust store) before the server answers.
        base = ep.ssl_context

        def choose(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
            target = self.endpoint_for_sni(server_name)
            if target is None:
                log.info("headend.sni_refused", server_name=server_name)
                if server_name:
                    return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
                return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
            if sslobj.context is not target.ssl_context:
                sslobj.context = target.ssl_context
            return None

        base.sni_callback = choose
        return base

    def base_ssl_context(self) -> ssl.SSLContext:
        assert self._base_ctx is not None, "no tenant with a GWA identity yet"
        return self._base_ctx

    # ------------------------------------------------------------------ servers
    async def start_servers(self) -> tuple[int, int]:
        """Open the management and inbound listeners; returns the bound ports."""
        loop = asyncio.get_running_loop()
        s = self.settings
        mgmt = await loop.create_server(lambda: ManagementConnection(self), s.host, s.port, backlog=4096,
                                        reuse_address=True)
        inbound = await loop.create_server(lambda: InboundConnection(self), s.host, s.inbound_port, backlog=1024,
                                           reuse_address=True)
        self._servers = [mgmt, inbound]
        port = mgmt.sockets[0].getsockname()[1]
        inbound_port = inbound.sockets[0].getsockname()[1]
        self.bound = (s.host, port, inbound_port)
        log.info("headend.listening", host=s.host, port=port, inbound_port=inbound_port, node=self.node_id)
        return port, inbound_port

    @property
    def contact_uri(self) -> str:
        host, _, inbound_port = self.bound
        return self.settings.contact(host, inbound_port)

    async def stop_servers(self) -> None:
        for srv in self._servers:
            srv.close()
        for conn in self.registry.connections():
            conn.close()
        for srv in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(srv.wait_closed(), 2)
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ admission
    def refuse(self, tenant: str | None, kind: str, peer: str, reason: str, **details: Any) -> None:
        self.metrics.admissions.labels(tenant=tenant or "-", kind=kind, outcome=reason).inc()
        log.warning("headend.connection_refused", tenant=tenant, kind=kind, peer=peer, reason=reason, **details)

    async def admit(self, tls: asyncio.Transport, kind: str, peer: str) -> Admission | None:
        sslobj = tls.get_extra_info("ssl_object")
        ep = self._by_ctx.get(id(sslobj.context)) if sslobj is not None else None
        if ep is None:
            self.refuse(None, kind, peer, "no_tenant")
            return None
        try:
            cert = pki_tls.peer_certificate(sslobj)
        except ValueError:
            cert = None
        # OpenSSL verified the chain the gateway sent; keeping it parsed for the life of an idle
        # session would cost ~14 KB per certificate (docs/benchmarks.md, head-end).
        pki_tls.release_peer_chain(sslobj)
        subject = cert.subject if cert is not None else None  # parsed once (~50 us each time)
        cn = common_name_of(subject) if subject is not None else None
        serial = f"{cert.serial_number:x}" if cert is not None else "-"
        verdict = pki_tls.validate_peer(sslobj, ep.validator, expected_role=Role.SMGW, cert=cert, subject=subject)
        if not verdict.valid or cert is None or subject is None or cn is None:
            self.refuse(ep.name, kind, peer, str(verdict.reason), cn=cn, serial=serial, detail=verdict.detail)
            return None
        try:
            gateway_id = str(parse_device_id(cn.rsplit(".", 1)[0], gateway=True))
        except InvalidId:
            self.refuse(ep.name, kind, peer, "bad_gateway_id", cn=cn, serial=serial)
            return None
        try:
            record = await self._record(ep, gateway_id)
        except Exception as err:
            self.refuse(ep.name, kind, peer, "lookup_failed", gateway=gateway_id, error=repr(err)[:200])
            return None
        fp = fingerprint(cert)
        if record is None:
            self.refuse(ep.name, kind, peer, "unknown_gateway", gateway=gateway_id, serial=serial)
            return None
        if record.state == "deinstalled":
            self.refuse(ep.name, kind, peer, "gateway_deinstalled", gateway=gateway_id, serial=serial)
            return None
        if record.tls_fingerprints and fp not in record.tls_fingerprints:
            self.refuse(ep.name, kind, peer, "certificate_mismatch", gateway=gateway_id, serial=serial)
            return None
        self.metrics.admissions.labels(tenant=ep.name, kind=kind, outcome="admitted").inc()
        log.debug("headend.connection_admitted", tenant=ep.name, kind=kind, gateway=gateway_id, peer=peer,
                  serial=serial)
        return Admission(ep, gateway_id, serial, fp, subject.public_bytes(), record)

    def protocol_violation(self, tenant: str | None, gateway_id: str | None, peer: str, reason: str,
                           detail: str) -> None:
        self.metrics.violations.labels(tenant=tenant or "-", reason=reason).inc()
        log.warning("headend.protocol_violation", tenant=tenant, gateway=gateway_id, peer=peer, reason=reason,
                    detail=detail[:300])

    # ------------------------------------------------------------------ wake-up and waiting
    async def _record(self, ep: TenantEndpoint, gateway_id: str) -> GatewayRecord | None:
        key = (ep.name, gateway_id)
        now = time.monotonic()
        hit = self._records.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        loader = self._loaders.get(ep.name)
        if loader is None or loader.sessions is not ep.context.sessions:
            loader = self._loaders[ep.name] = RecordLoader(ep.context.sessions, self._db_slots,
                                                          gather_s=self.settings.lookup_gather_s)
        record = await loader.get(gateway_id)
        if record is None:
            self._records.pop(key, None)
            return None
        if len(self._records) > 200_000:
            self._records.clear()
        self._records[key] = (now + self.settings.record_cache_s, record)
        return record

    async def gateway(self, tenant: str, gateway_id: str) -> GatewayRecord:
        record = await self._record(self.endpoints[tenant], gateway_id)
        if record is None:
            raise UnknownGateway(f"gateway {gateway_id} is not in tenant {tenant}'s master data")
        return record

    async def wake(self, tenant: str, record: GatewayRecord, priority: int) -> None:
        ep = self.endpoints[tenant]
        if not record.wakeup_address:
            raise UnknownGateway(f"gateway {record.gateway_id} has no wake-up address")
        key = (tenant, record.gateway_id)
        # Never two wake-ups of one gateway within the same second: the gateway drops a repeated
        # timestamp as a replay (docs/protocol.md 2.3).
        gap = time.time() - self._last_wakeup.get(key, 0.0)
        if gap < 1.05:
            await asyncio.sleep(1.05 - gap)
        await self.throttle.wakeup(tenant, record.network_segment, priority)
        packet = pki_wakeup.build(record.gateway_id, ep.identity.sig_key, byteorder=self.settings.wakeup_byteorder)
        self._last_wakeup[key] = time.time()
        try:
            await self.wakeup_transport.send(record.wakeup_address, packet)
        except (OSError, ValueError) as err:
            self.metrics.wakeups.labels(tenant=tenant, outcome="send_failed").inc()
            log.warning("headend.wakeup_failed", tenant=tenant, gateway=record.gateway_id,
                        address=record.wakeup_address, error=str(err))
            raise Unreachable(f"wake-up to {record.wakeup_address} failed: {err}") from err
        self.metrics.wakeups.labels(tenant=tenant, outcome="sent").inc()
        self.store.communication(tenant, gateway_id=record.gateway_id, direction="out", command="wakeup",
                                 method="UDP", path=record.wakeup_address[:400], result="sent",
                                 bytes_out=len(packet))
        log.debug("headend.wakeup_sent", tenant=tenant, gateway=record.gateway_id, address=record.wakeup_address)

    async def connection(self, tenant: str, gateway_id: str, *, priority: int, timeout: float,
                         wake: bool = True) -> tuple[ManagementConnection, bool]:
        """This node's management connection of the gateway, waking it if needed and waiting up to
        ``timeout``. Returns (connection, woken). Raises Unreachable."""
        conn = self.registry.get(tenant, gateway_id)
        if conn is not None:
            return conn, False
        if not wake:
            raise Unreachable(f"gateway {gateway_id} is not connected to node {self.node_id}")
        record = await self.gateway(tenant, gateway_id)
        deadline = time.monotonic() + timeout
        woken = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self.wake(tenant, record, priority)
            woken = True
            remaining = deadline - time.monotonic()
            conn = await self.registry.wait(tenant, gateway_id, min(self.settings.wakeup_retry_s, max(0.0, remaining)))
            if conn is not None:
                return conn, woken
        self.metrics.wakeups.labels(tenant=tenant, outcome="unanswered").inc()
        raise Unreachable(f"gateway {gateway_id} did not connect within {timeout:.0f}s of its wake-up")

    # ------------------------------------------------------------------ Notify / events
    def expect_notify(self, tenant: str, gateway_id: str, command: str, cid: str) -> PendingNotify:
        fut: asyncio.Future[tuple[int, X.ET.Element | None]] = asyncio.get_running_loop().create_future()
        p = PendingNotify(tenant, gateway_id, command, fut)
        self.pending[cid] = p
        return p

    def forget_notify(self, cid: str) -> None:
        self.pending.pop(cid, None)

    async def handle_inbound(self, a: Admission, peer: str,
                             req: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        t0 = time.monotonic()
        ep = a.tenant
        cid = req.headers.get("x-cid", "")
        path = req.target.split("?", 1)[0].rstrip("/")
        kind = "notify" if path.endswith("/notify") else "event" if path.endswith("/events") else "unknown"
        status, result = await self._inbound(a, peer, req, kind, cid)
        self.store.communication(ep.name, gateway_id=a.gateway_id, direction="in", command=kind, method=req.method,
                                 path=req.target[:400], correlation_id=cid[:45] or None,
                                 command_id=(req.headers.get("x-command-id") or None), status=status, result=result,
                                 duration_ms=int((time.monotonic() - t0) * 1000), bytes_in=len(req.body))
        headers = [("x-CID", cid)] if cid else []
        return status, headers, b""

    async def _inbound(self, a: Admission, peer: str, req: HttpRequest, kind: str, cid: str) -> tuple[int, str]:
        ep = a.tenant
        if req.method != "POST" or kind == "unknown":
            return 404, "not_found"
        if not req.body:
            self.protocol_violation(ep.name, a.gateway_id, peer, "malformed", f"{kind} without body")
            return 400, "malformed"
        try:
            root = ep.open(req.body, a.gateway_id, self.settings.max_body_bytes)
        except GatewayMismatch as err:
            self.protocol_violation(ep.name, a.gateway_id, peer, "gateway_mismatch", str(err))
            return 403, "gateway_mismatch"
        except Exception as err:  # CmsError, XmlError
            self.protocol_violation(ep.name, a.gateway_id, peer, "malformed", f"{kind}: {err}")
            return 400, "malformed"
        if kind == "notify":
            return self._notify(a, peer, root, cid)
        return await self._events(a, peer, root, cid)

    def _notify(self, a: Admission, peer: str, root: X.ET.Element, cid: str) -> tuple[int, str]:
        tenant = a.tenant.name
        if X.local(root) != "notify":
            self.protocol_violation(tenant, a.gateway_id, peer, "malformed", f"<{X.local(root)}> is not <notify>")
            return 400, "malformed"
        pending = self.pending.get(cid)
        if pending is None:
            self.metrics.notifies.labels(tenant=tenant, outcome="unknown_cid").inc()
            self.protocol_violation(tenant, a.gateway_id, peer, "unknown_cid", f"Notify for unknown CID {cid!r}")
            return 404, "unknown_cid"
        if pending.tenant != tenant or pending.gateway_id != a.gateway_id:
            self.metrics.notifies.labels(tenant=tenant, outcome="gateway_mismatch").inc()
            self.protocol_violation(tenant, a.gateway_id, peer, "gateway_mismatch",
                                    f"Notify for CID {cid} of gateway {pending.gateway_id}")
            return 403, "gateway_mismatch"
        try:
            status = X.req_int(root, "status")
        except X.XmlError as err:
            self.protocol_violation(tenant, a.gateway_id, peer, "malformed", str(err))
            return 400, "malformed"
        if not pending.future.done():
            pending.future.set_result((status, X.only_child(root)))
        self.metrics.notifies.labels(tenant=tenant, outcome="accepted").inc()
        return 204, "ok"

    async def _events(self, a: Admission, peer: str, root: X.ET.Element, cid: str) -> tuple[int, str]:
        tenant = a.tenant.name
        if X.local(root) != "events":
            self.protocol_violation(tenant, a.gateway_id, peer, "malformed", f"<{X.local(root)}> is not <events>")
            return 400, "malformed"
        rows = []
        try:
            for ev in X.children(root, "event")[:100]:
                event_id = X.req(ev, "id")
                uuid.UUID(event_id)
                level = X.req_int(ev, "level")
                if not 1 <= level <= 4:
                    raise X.XmlError(f"level {level} outside 1..4")
                meter = ev.get("meter")
                if meter:
                    parse_device_id(meter)
                rows.append(dict(event_id=event_id, gateway_id=a.gateway_id, code=X.req(ev, "code")[:40],
                                 vendor_code=(ev.get("vendorCode") or None), level=level,
                                 occurred_at=X.parse_time(X.req(ev, "time")), meter_id=meter or None,
                                 log=(ev.get("log") or None), record=X.opt_int(ev, "record"), text=X.text(ev)[:4000],
                                 correlation_id=cid[:45] or None))
        except (X.XmlError, ValueError, InvalidId) as err:
            self.protocol_violation(tenant, a.gateway_id, peer, "malformed", f"events: {err}")
            return 400, "malformed"
        await self.store.store_events(a.tenant.context, rows)
        for r in rows:
            self.metrics.events.labels(tenant=tenant, code=r["code"]).inc()
        log.info("headend.events_received", tenant=tenant, gateway=a.gateway_id, count=len(rows),
                 codes=sorted({str(r["code"]) for r in rows}))
        return 204, "ok"

    # ------------------------------------------------------------------ housekeeping
    async def housekeeping(self, stop: asyncio.Event) -> None:
        """Heartbeats per tenant, idle/lifetime sweeps."""
        next_beat = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.settings.heartbeat_s
                for ep in list(self.endpoints.values()):
                    try:
                        await self.store.heartbeat(ep.context, self.started_at, self.contact_uri)
                    except Exception as err:
                        log.warning("headend.heartbeat_failed", tenant=ep.name, error=repr(err)[:200])
                # Validation runs inline on the event loop (a thread hop per handshake costs more
                # than the check); keep the CRLs it needs fresh from a thread, so no handshake
                # waits for a CRL download.
                for ep in list(self.endpoints.values()):
                    self.spawn(asyncio.to_thread(ep.validator.validate, ep.identity.tls_cert, "tls"))
            closed = self.registry.sweep(self.settings.idle_timeout_s, MAX_LIFETIME_S)
            if closed:
                log.info("headend.idle_connections_closed", count=closed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def identity_fingerprint(identity: GwaIdentity) -> str:
    return "".join(fingerprint(c)[:16] for c in (identity.tls_cert, identity.sig_cert, identity.enc_cert))


def san_dns_names(cert: x509.Certificate) -> frozenset[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(n.lower() for n in ext.value.get_values_for_type(x509.DNSName))


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def now_iso() -> str:
    return X.timestamp(dt.datetime.now(dt.UTC))
