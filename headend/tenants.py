"""Building a :class:`~headend.endpoints.TenantEndpoint` for each tenant: its GWA identity, a TR-03116-3
server context on it (pki.tls), and the tenant's certificate validator (trust anchors, CRL cache)."""

from __future__ import annotations

import ssl

import structlog

from domain.certificates.service import tenant_validator
from domain.tenancy.service import TenantContext
from headend.endpoints import TenantEndpoint, identity_fingerprint, san_dns_names
from headend.identity import IdentitySource
from pki import tls as pki_tls

log = structlog.get_logger("headend.tenants")


async def build_endpoint(tenant: TenantContext, source: IdentitySource, node_id: str) -> TenantEndpoint:
    identity = await source.load(tenant)
    files = identity.write_tls_files(tenant.keys_dir / "headend" / node_id)
    ctx = pki_tls.server_context(files.cert, files.key, [files.trust],
                                 intermediates=[files.chain] if identity.chain else [],
                                 key_password=files.key_password)
    # OpenSSL's chain check may stop at a known Sub-CA (imported and validated with the trust store):
    # that spares a brainpoolP384r1 verification of the Sub-CA per handshake. validate_peer still
    # validates the full path to the root, with revocation, for every connection.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    pki_tls.disable_session_cache(ctx)
    async with tenant.sessions() as session:
        validator = await tenant_validator(session, tenant)
    if not validator.anchors:
        # No trust anchors imported: trust what the identity itself chains to.
        from pki.validation import Validator

        validator = Validator(identity.trust_anchors, identity.chain, crl_cache=validator.crl_cache)
    return TenantEndpoint(name=tenant.name, context=tenant, identity=identity, ssl_context=ctx, validator=validator,
                          sni_names=san_dns_names(identity.tls_cert), identity_fp=identity_fingerprint(identity))


async def refresh_validator(ep: TenantEndpoint) -> None:
    """Trust anchors may change at run time (imports): rebuild the validator, keep the CRL cache."""
    async with ep.context.sessions() as session:
        validator = await tenant_validator(session, ep.context)
    if validator.anchors:
        ep.validator = validator
