"""Admission of a gateway-opened connection after its TLS handshake (docs/architecture.md,
"Admission of a gateway-opened connection"): which tenant's context the handshake ended in, SM-PKI
validation of the gateway's certificate, its DIN 43849 ID from the CN, and its master-data record
(state, active TLS fingerprints). The result, :class:`Admission`, is what a connection knows about
its gateway for the rest of its life."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from core.ids import InvalidId, parse_device_id
from headend.endpoints import Endpoints, TenantEndpoint
from headend.lookup import GatewayRecord
from headend.metrics import HeadendMetrics
from headend.records import GatewayRecords
from pki import tls as pki_tls
from pki.profile import Role, common_name_of
from pki.validation import fingerprint

log = structlog.get_logger("headend.admission")


@dataclass(frozen=True, slots=True)
class Admission:
    tenant: TenantEndpoint
    gateway_id: str
    serial: str
    fingerprint: str
    subject: bytes  # DER of the TLS certificate's subject (a parsed Name costs ~3 KB per session)
    record: GatewayRecord


class Admitter:
    def __init__(self, endpoints: Endpoints, records: GatewayRecords, metrics: HeadendMetrics) -> None:
        self.endpoints = endpoints
        self.records = records
        self.metrics = metrics

    def refuse(self, tenant: str | None, kind: str, peer: str, reason: str, **details: Any) -> None:
        self.metrics.admissions.labels(tenant=tenant or "-", kind=kind, outcome=reason).inc()
        log.warning("headend.connection_refused", tenant=tenant, kind=kind, peer=peer, reason=reason, **details)

    async def admit(self, tls: asyncio.Transport, kind: str, peer: str) -> Admission | None:
        """Who is on this connection: its admission, or None (refused: counted and logged)."""
        sslobj = tls.get_extra_info("ssl_object")
        ep = self.endpoints.for_context(sslobj.context) if sslobj is not None else None
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
            record = await self.records.get(ep, gateway_id)
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
