"""The demo tenant's SM-PKI material: a test PKI under var/testpki (created once), its root and
Sub-CA as trust anchors, the GWA identity, the EMT identities (the test PKI's ``emt1`` of the demo
grid operator, ``emt2`` of the demo supplier: with keys, so the MDM receiver serves them, and
linked, so profile rollouts install them on the gateways) and the demo gateways' certificates.

Idempotent: a second `gridgate up` imports nothing new. The test CA is not running yet while this
runs, so the tenant's CRL cache is seeded from the CRL files the test PKI wrote (signed CRLs,
verified like fetched ones).
"""

from __future__ import annotations

import asyncio

import structlog
from cryptography import x509

from core.config import Settings
from core.ids import demo_gateway_id
from domain.certificates import service
from domain.certificates.repository import gateway_pk, market_partner_pk
from domain.tenancy.service import TenantContext
from pki.profile import crl_urls
from pki.testpki import Entity, TestPki, init_test_pki

log = structlog.get_logger(__name__)

# Test PKI EMT -> the market partner ID of the demo partner it is the identity of: emt1 the grid
# operator (domain.demo.DEMO_GRID_OPERATOR), emt2 the supplier (DEMO_SUPPLIER). Written out because
# domain.demo reaches this package through the tariffs (an import would be a cycle);
# tests/mdm/test_mdm_receiver_identities.py checks that both name the same partners.
DEMO_EMT_IDENTITIES = {"emt1": "9900000000017", "emt2": "9900000000024"}


def ensure_test_pki(settings: Settings, gateways: int) -> TestPki:
    directory = settings.testpki_path
    pki = TestPki(directory) if (directory / "pki.json").exists() else init_test_pki(
        directory, base_url=settings.testca_url)
    missing = [demo_gateway_id(i) for i in range(gateways) if not pki.gateway(demo_gateway_id(i)).exists]
    if missing:
        pki.issue_gateways(gateway_ids=missing)
    return pki


def _entity_pem(entity: Entity, *, keys: bool) -> bytes:
    out = b""
    for usage in ("tls", "sig", "enc"):
        cred = entity.credential(usage)
        out += cred.cert_path.read_bytes() + (cred.key_path.read_bytes() if keys else b"")
    return out


def _seed_crl_cache(tenant: TenantContext, pki: TestPki) -> None:
    cache = service.crl_cache(tenant)
    for ca_name, cert in (("root", pki.subca), ("subca", pki.gwa.tls.cert)):
        crl = x509.load_der_x509_crl(pki.crl_path(ca_name).read_bytes())
        for url in crl_urls(cert):
            cache.put(url, crl)


async def provision_demo_pki(settings: Settings, tenant: TenantContext, gateways: int) -> int:
    """Returns the number of certificates imported now."""
    pki = await asyncio.to_thread(ensure_test_pki, settings, gateways)
    _seed_crl_cache(tenant, pki)
    imported = 0
    async with tenant.sessions() as session, session.begin():
        imported += len((await service.import_trust(session, tenant, pki.root_path.read_bytes()
                                                    + pki.subca_path.read_bytes())).imported)
        imported += len((await service.import_identity(session, settings, tenant,
                                                       _entity_pem(pki.gwa, keys=True))).imported)
        for name, emt in pki.emts.items():
            mp_id = DEMO_EMT_IDENTITIES.get(name)
            if mp_id is not None and await market_partner_pk(session, mp_id) is not None:
                outcome = await service.import_emt_identity(session, settings, tenant, _entity_pem(emt, keys=True),
                                                            mp_id)
            else:  # no such partner (a demo without a fleet): the certificates only
                outcome = await service.import_emt(session, tenant, _entity_pem(emt, keys=False))
            imported += len(outcome.imported)
        for i in range(gateways):
            gid = demo_gateway_id(i)
            link = gid if await gateway_pk(session, gid) is not None else None
            outcome = await service.import_gateway(session, tenant, _entity_pem(pki.gateway(gid), keys=False), link)
            imported += len(outcome.imported)
    log.info("demo.pki_ready", tenant=tenant.name, imported=imported, directory=str(pki.directory))
    return imported
