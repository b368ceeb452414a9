"""Fixtures of the receiver tests (imported by the ``test_mdm_receiver*`` modules): a test SM-PKI,
tenant ``mdmrx`` with the demo fleet's master data and TAF orders (as ``mdm_tenant``, but a tenant
of its own: these tests commit), the PKI's trust, the EMT identities emt1 (demo grid operator) and
emt2 (demo supplier) with keys, the gateways' certificates, and a receiver running in-process on a
free port. Gateway 3 is faulty (not in operation); gateway 9 has certificates but no master data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from cryptography import x509

from core.config import Settings
from core.db import Databases
from core.ids import demo_gateway_id
from domain.demo import DEMO_GRID_OPERATOR, DEMO_SUPPLIER, seed_demo_fleet, seed_demo_orders
from domain.secrets import SecretBox
from domain.tenancy.service import TenantContext
from mdm.config import MdmSettings
from mdm.service import MdmService
from pki.testpki import Entity, TestPki, init_test_pki
from tests.conftest import TenantFactory

TENANT = "mdmrx"
FLEET = 6
GATEWAYS = [demo_gateway_id(i) for i in range(FLEET)]
FAULTY = demo_gateway_id(3)
UNKNOWN = demo_gateway_id(9)  # certificates of the PKI, no master data
NETZ, VERTRIEB = DEMO_GRID_OPERATOR.mp_id, DEMO_SUPPLIER.mp_id
EMT_OF = {NETZ: "emt1", VERTRIEB: "emt2"}


def sni(mp_id: str, tenant: str = TENANT) -> str:
    return MdmSettings().sni_name(tenant, mp_id)


def entity_pem(entity: Entity, *, keys: bool) -> bytes:
    out = b""
    for usage in ("tls", "sig", "enc"):
        cred = entity.credential(usage)
        out += cred.cert_path.read_bytes() + (cred.key_path.read_bytes() if keys else b"")
    return out


def seed_crls(ctx: TenantContext, pki: TestPki) -> None:
    """The tenant's CRL cache (also on disk, for receivers in other processes) from the PKI's CRLs."""
    from domain.certificates import service
    from pki.profile import crl_urls

    cache = service.crl_cache(ctx)
    for ca_name, cert in (("root", pki.subca), ("subca", pki.gwa.tls.cert)):
        crl = x509.load_der_x509_crl(pki.crl_path(ca_name).read_bytes())
        for url in crl_urls(cert):
            cache.put(url, crl)


@pytest.fixture(scope="session")
def rx_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    pki = init_test_pki(tmp_path_factory.mktemp("mdm-rx-pki") / "pki", gateways=0)
    pki.issue_gateways(gateway_ids=[*GATEWAYS, UNKNOWN])
    return pki


@dataclass
class RxTenant:
    ctx: TenantContext
    pki: TestPki

    def emt(self, mp_id: str) -> Entity:
        return self.pki.emts[EMT_OF[mp_id]]

    def gateway(self, gateway_id: str) -> Entity:
        return self.pki.gateway(gateway_id)


@pytest.fixture(scope="session")
async def rx_tenant(tenant_factory: TenantFactory, settings: Settings, rx_pki: TestPki) -> RxTenant:
    from domain.certificates import service
    from domain.devices.service import transition_gateway

    ctx = await tenant_factory(TENANT)
    seed_crls(ctx, rx_pki)
    async with ctx.sessions() as session, session.begin():
        await seed_demo_fleet(session, FLEET, box=SecretBox(settings, ctx.name))
        await seed_demo_orders(session, FLEET)
        await service.import_trust(session, ctx, rx_pki.root_path.read_bytes() + rx_pki.subca_path.read_bytes())
        for mp_id, name in EMT_OF.items():
            await service.import_emt_identity(session, settings, ctx, entity_pem(rx_pki.emts[name], keys=True), mp_id)
        for gid in [*GATEWAYS, UNKNOWN]:
            link = gid if gid in GATEWAYS else None
            await service.import_gateway(session, ctx, entity_pem(rx_pki.gateway(gid), keys=False), link)
        await transition_gateway(session, FAULTY, "faulty", reason="test setup")
    return RxTenant(ctx, rx_pki)


def receiver_settings(**overrides: object) -> MdmSettings:
    values: dict[str, object] = {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "tenant_poll_s": 0.5,
                                 "batch_wait_s": 0.005, **overrides}
    return MdmSettings.model_validate(values)


@pytest.fixture(scope="session")
async def receiver(settings: Settings, dbs: Databases, rx_tenant: RxTenant) -> AsyncIterator[MdmService]:
    """A receiver in this process (the test's event loop), serving every tenant of the session."""
    service = MdmService(settings, receiver_settings(max_body_bytes=256 * 1024), dbs)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.ready.wait(), 60)
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
