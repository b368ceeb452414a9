"""The tenants of a head-end node as TLS endpoints: :class:`TenantEndpoint` (a tenant's GWA
identity, server context and validator; seals requests for and opens answers from its gateways)
and :class:`Endpoints`, the node's directory of them, which picks a connection's tenant by SNI
before the server answers the ClientHello (docs/architecture.md, "Reaching a gateway")."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import structlog
from cryptography import x509

from domain.certificates.identity import GwaIdentity
from domain.tenancy.service import TenantContext
from headend import xmlcodec as X
from pki import cms
from pki.profile import common_name
from pki.validation import Validator, fingerprint

log = structlog.get_logger("headend.endpoints")

ENC_CACHE_MAX = 5_000  # per tenant: a miss costs one indexed query (the certificate store)


class GatewayMismatch(ValueError):
    pass


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


class Endpoints:
    """The tenant endpoints of one node: by name, by TLS context (admission: which tenant's context
    did the handshake end in) and by SNI (the listener's callback)."""

    def __init__(self, sni_suffix: str, default_tenant: str | None) -> None:
        self.sni_suffix = sni_suffix
        self.default_tenant = default_tenant
        self.by_name: dict[str, TenantEndpoint] = {}
        self._by_ctx: dict[int, TenantEndpoint] = {}
        self._by_sni: dict[str, TenantEndpoint] = {}
        self._base_ctx: ssl.SSLContext | None = None

    def add(self, ep: TenantEndpoint) -> None:
        """Serve ``ep`` (or replace the tenant's endpoint, keeping its ENC certificate cache)."""
        old = self.by_name.get(ep.name)
        if old is not None:
            self._by_ctx.pop(id(old.ssl_context), None)
            ep.enc_certs.update(old.enc_certs)
        self.by_name[ep.name] = ep
        self._by_ctx[id(ep.ssl_context)] = ep
        self._rebuild_sni()
        if self._base_ctx is None:
            self._base_ctx = self._make_base_context(ep)

    def for_context(self, ctx: ssl.SSLContext) -> TenantEndpoint | None:
        """The tenant whose server context a handshake ended in."""
        return self._by_ctx.get(id(ctx))

    def _rebuild_sni(self) -> None:
        counts: dict[str, int] = {}
        for ep in self.by_name.values():
            for n in ep.sni_names:
                counts[n] = counts.get(n, 0) + 1
        by_sni: dict[str, TenantEndpoint] = {}
        for ep in self.by_name.values():
            by_sni[f"{ep.name}.{self.sni_suffix}".lower()] = ep
        for ep in self.by_name.values():
            for n in ep.sni_names:
                if counts[n] == 1:
                    by_sni.setdefault(n.lower(), ep)
        self._by_sni = by_sni

    def for_sni(self, server_name: str | None) -> TenantEndpoint | None:
        if server_name:
            return self._by_sni.get(server_name.lower().rstrip("."))
        if self.default_tenant:
            return self.by_name.get(self.default_tenant)
        if len(self.by_name) == 1:
            return next(iter(self.by_name.values()))
        return None

    def _make_base_context(self, ep: TenantEndpoint) -> ssl.SSLContext:
        # The listener's context only runs the ClientHello: the SNI callback switches every
        # connection to its tenant's context (certificate, trust store) before the server answers.
        base = ep.ssl_context

        def choose(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
            target = self.for_sni(server_name)
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

    def base_context(self) -> ssl.SSLContext:
        assert self._base_ctx is not None, "no tenant with a GWA identity yet"
        return self._base_ctx


def identity_fingerprint(identity: GwaIdentity) -> str:
    return "".join(fingerprint(c)[:16] for c in (identity.tls_cert, identity.sig_cert, identity.enc_cert))


def san_dns_names(cert: x509.Certificate) -> frozenset[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(n.lower() for n in ext.value.get_values_for_type(x509.DNSName))
