"""EMT identities as TLS endpoints: :class:`EmtEndpoint` (one EMT identity of one tenant: its TLS
server context, the tenant's validator, opening the containers gateways seal for it) and
:class:`Directory`, the receiver's endpoints by SNI ``<mp-id>.<tenant>.<suffix>``, which picks a
connection's identity before the server certificate is sent (docs/protocol.md 14.1)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import structlog

from domain.certificates.identity import EmtIdentity
from domain.tenancy.service import TenantContext
from pki import cms
from pki import tls as pki_tls
from pki.cms_common import DECRYPT_FAILED, FORBIDDEN_ALGORITHM, MALFORMED, WRONG_RECIPIENT, CmsError
from pki.profile import common_name
from pki.validation import Reason, Validator

log = structlog.get_logger("mdm.endpoints")

# Verdicts on the signer's certificate that say nothing about the container but about our CRLs:
# the delivery is not refused (a refusal is final for the gateway) but answered 503.
TRANSIENT = frozenset({Reason.CRL_UNAVAILABLE.value, Reason.CRL_EXPIRED.value})


class Refusal(Exception):
    """A delivery refused before it reached the ingest: ``reason`` is a code of docs/mdm.md (or
    ``unavailable``: answer 503, the gateway delivers again later)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class EmtEndpoint:
    """One EMT identity of one tenant, as the receiver serves it."""

    tenant: TenantContext
    identity: EmtIdentity
    sni: str
    ssl_context: ssl.SSLContext
    validator: Validator

    @property
    def key(self) -> tuple[str, str]:
        return self.tenant.name, self.identity.market_partner

    @property
    def market_partner(self) -> str:
        return self.identity.market_partner

    def open(self, body: bytes, gateway_id: str, max_payload: int) -> bytes:
        """The payload of a gateway's container: signed by the SIG certificate of ``gateway_id``
        (the TLS client), valid with revocation, encrypted for one of this EMT's ENC
        certificates. Raises :class:`Refusal` (``malformed``, ``bad_signature``,
        ``signer_mismatch``, ``not_for_this_emt``, ``unavailable``)."""
        try:
            signed = cms.verify(body, validator=self.validator)
        except CmsError as err:
            raise _refusal(err) from None
        if signed.content_type != "authenticated_enveloped_data":
            raise Refusal("malformed", f"signed content is {signed.content_type}, expected AuthEnvelopedData")
        signer = common_name(signed.signer)
        if signer != f"{gateway_id}.SMGW":
            raise Refusal("signer_mismatch", f"container signed by {signer!r}, the TLS client is {gateway_id}")
        wrong: CmsError | None = None
        for pair in self.identity.enc:  # the newest ENC certificate first
            try:
                dec = cms.decrypt_auth_enveloped(signed.content, pair.key, pair.cert)
            except CmsError as err:
                if err.reason != WRONG_RECIPIENT:
                    raise _refusal(err) from None
                wrong = err
                continue
            if dec.content_type != "compressed_data":
                return dec.content
            try:
                return cms.decompress(dec.content, max_payload=max_payload)
            except CmsError as err:
                raise _refusal(err) from None
        assert wrong is not None
        raise Refusal("not_for_this_emt", f"not encrypted for an ENC certificate of {self.market_partner}: "
                                          f"{wrong.detail}")


def _refusal(err: CmsError) -> Refusal:
    if err.reason in TRANSIENT:
        return Refusal("unavailable", f"cannot check the signer now: {err.detail}")
    if err.reason == WRONG_RECIPIENT:
        return Refusal("not_for_this_emt", err.detail)
    if err.reason in (MALFORMED, FORBIDDEN_ALGORITHM, DECRYPT_FAILED):
        return Refusal("malformed", f"{err.reason}: {err.detail}")
    return Refusal("bad_signature", f"{err.reason}: {err.detail}")  # bad_signature, unknown_signer, expired, ...


def build_endpoint(tenant: TenantContext, identity: EmtIdentity, sni: str, validator: Validator) -> EmtEndpoint:
    """The endpoint of ``identity``: its TLS files in the tenant's key folder (key encrypted with a
    one-time password), a TR-03116-3 server context on them; ``validator``: the tenant's."""
    files = identity.write_tls_files(tenant.keys_dir / "mdm" / identity.market_partner)
    ctx = pki_tls.server_context(files.cert, files.key, [files.trust],
                                 intermediates=[files.chain] if identity.chain else [],
                                 key_password=files.key_password)
    # As the head-end: OpenSSL may stop at a known Sub-CA; the full path to the root with
    # revocation is validated in Python for every connection (admission).
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    pki_tls.disable_session_cache(ctx)
    return EmtEndpoint(tenant=tenant, identity=identity, sni=sni, ssl_context=ctx, validator=validator)


class Directory:
    """The endpoints served, by SNI and by (tenant, market partner); the TLS context a handshake
    ended in tells which endpoint a connection belongs to."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], EmtEndpoint] = {}
        self._by_sni: dict[str, EmtEndpoint] = {}
        # id(context) -> (context, key). Contexts of replaced endpoints stay (a handshake may still
        # be running on one) and map to the endpoint now serving the same identity.
        self._contexts: dict[int, tuple[ssl.SSLContext, tuple[str, str]]] = {}
        self._base: ssl.SSLContext | None = None

    def __len__(self) -> int:
        return len(self.by_key)

    def put(self, ep: EmtEndpoint) -> None:
        """Serve ``ep`` (or replace the endpoint of the same identity)."""
        self.by_key[ep.key] = ep
        self._by_sni[ep.sni.lower()] = ep
        self._contexts[id(ep.ssl_context)] = (ep.ssl_context, ep.key)
        if self._base is None:
            self._base = self._make_base(ep.ssl_context)

    def remove(self, key: tuple[str, str]) -> EmtEndpoint | None:
        ep = self.by_key.pop(key, None)
        if ep is not None:
            self._by_sni.pop(ep.sni.lower(), None)
        return ep

    def for_sni(self, server_name: str | None) -> EmtEndpoint | None:
        return self._by_sni.get(server_name.lower().rstrip(".")) if server_name else None

    def for_context(self, ctx: ssl.SSLContext) -> EmtEndpoint | None:
        hit = self._contexts.get(id(ctx))
        return self.by_key.get(hit[1]) if hit is not None and hit[0] is ctx else None

    def tenants(self) -> set[str]:
        return {tenant for tenant, _ in self.by_key}

    def _make_base(self, first: ssl.SSLContext) -> ssl.SSLContext:
        # The listener's context only runs the ClientHello: the SNI callback switches each
        # connection to its identity's context (certificate, trust store) before the server
        # answers, so a gateway only ever sees the certificate of the EMT it asked for.
        def choose(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
            target = self.for_sni(server_name)
            if target is None:
                log.info("mdm.sni_refused", server_name=server_name)
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME if server_name else \
                    ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
            if sslobj.context is not target.ssl_context:
                sslobj.context = target.ssl_context
            return None

        first.sni_callback = choose
        return first

    def base_context(self) -> ssl.SSLContext | None:
        """The listener's context (None while no identity is served)."""
        return self._base
