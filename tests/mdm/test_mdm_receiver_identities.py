"""EMT identities: imported with their keys (encrypted at rest, never in logs, outputs or the audit
log), linked to their market partner, a public import before gains the keys; loaded back for the
receiver, which picks up an identity imported while it runs; the CLI command; the demo's
provisioning (emt1 the grid operator's, emt2 the supplier's)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from core.config import Settings
from core.ids import demo_gateway_id
from domain.audit.models import AuditEntry
from domain.certificates import service
from domain.certificates.identity import load_emt_identities
from domain.certificates.models import Certificate
from domain.certificates.selection import emt_certificates
from domain.demo import DEMO_GRID_OPERATOR, DEMO_SUPPLIER, seed_demo_fleet
from domain.partners.models import MarketPartner
from domain.secrets import SecretBox
from domain.tenancy.service import TenantContext
from mdm.service import MdmService
from pki.testpki import TestPki
from tests.mdm.delivering import client_context
from tests.mdm.receiver_fixtures import NETZ, VERTRIEB, entity_pem, seed_crls, sni

if TYPE_CHECKING:
    from tests.conftest import GridgateCli, TenantFactory

TENANT = "emtid"


@pytest.fixture(scope="module")
async def emt_tenant(tenant_factory: TenantFactory, settings: Settings, rx_pki: TestPki) -> TenantContext:
    """A tenant with the demo partners, the PKI's trust, no EMT identity yet."""
    ctx = await tenant_factory(TENANT)
    seed_crls(ctx, rx_pki)
    async with ctx.sessions() as session, session.begin():
        await seed_demo_fleet(session, 1, box=SecretBox(settings, ctx.name))
        await service.import_trust(session, ctx, rx_pki.root_path.read_bytes() + rx_pki.subca_path.read_bytes())
    return ctx


async def _rows(ctx: TenantContext, mp_id: str | None = None) -> list[tuple[Certificate, str | None]]:
    async with ctx.sessions() as session:
        stmt = (select(Certificate, MarketPartner.mp_id)
                .outerjoin(MarketPartner, MarketPartner.id == Certificate.market_partner_id)
                .where(Certificate.owner == "emt"))
        if mp_id is not None:
            stmt = stmt.where(MarketPartner.mp_id == mp_id)
        return [(c, m) for c, m in await session.execute(stmt)]


async def _handshake(receiver: MdmService, pki: TestPki, name: str) -> bool:
    host, port = receiver.receiver.bound
    ctx = client_context(pki, pki.gateway(demo_gateway_id(0)))
    try:
        _, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=name)
    except (ssl.SSLError, ConnectionError):
        return False
    writer.close()
    return True


async def test_a_public_import_gains_the_keys_and_the_receiver_serves_the_identity(
        emt_tenant: TenantContext, settings: Settings, rx_pki: TestPki, receiver: MdmService) -> None:
    emt1 = rx_pki.emts["emt1"]
    name = sni(NETZ, TENANT)
    async with emt_tenant.sessions() as session, session.begin():
        await service.import_emt(session, emt_tenant, entity_pem(emt1, keys=False))
    assert [(c.private_key, mp) for c, mp in await _rows(emt_tenant)] == [(None, None)] * 3
    assert not await _handshake(receiver, rx_pki, name)  # no keys: not an identity

    async with emt_tenant.sessions() as session, session.begin():
        outcome = await service.import_emt_identity(session, settings, emt_tenant, entity_pem(emt1, keys=True), NETZ)
    assert len(outcome.imported) == 3 and not outcome.unchanged
    rows = await _rows(emt_tenant)
    assert len(rows) == 3 and all(mp == NETZ and c.private_key for c, mp in rows)
    assert not any(b"PRIVATE KEY" in (c.private_key or b"") for c, _ in rows)  # encrypted at rest
    async with emt_tenant.sessions() as session:
        audit = (await session.scalars(select(AuditEntry).where(AuditEntry.object_type == "certificate"))).all()
        identities = await load_emt_identities(session, settings, TENANT)
        installable, problems = await emt_certificates(session, [NETZ], dt.datetime.now(dt.UTC))
    assert not any("PRIVATE" in str(a.changes) for a in audit)
    assert list(identities) == [NETZ]
    ident = identities[NETZ]
    assert ident.tls.cert == emt1.tls.cert and ident.sig.cert == emt1.sig.cert
    assert [p.cert for p in ident.enc] == [emt1.enc.cert]
    for usage, pair in (("tls", ident.tls), ("sig", ident.sig), ("enc", ident.enc[0])):
        assert pair.key.private_numbers() == emt1.credential(usage).key.private_numbers()
    assert str(ident.enc[0].key.private_numbers().private_value) not in repr(ident)
    assert problems == [] and {i.usage for i in installable} == {"tls", "sig", "enc"}

    async with emt_tenant.sessions() as session, session.begin():
        again = await service.import_emt_identity(session, settings, emt_tenant, entity_pem(emt1, keys=True), NETZ)
    assert (len(again.imported), len(again.unchanged)) == (0, 3)

    for _ in range(50):  # the receiver polls every 0.5 s
        if await _handshake(receiver, rx_pki, name):
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"the receiver does not serve {name}")


async def test_what_is_not_an_emt_identity_is_refused(emt_tenant: TenantContext, settings: Settings,
                                                      rx_pki: TestPki) -> None:
    emt2 = rx_pki.emts["emt2"]
    cases = {
        "key_missing": (entity_pem(emt2, keys=False), VERTRIEB),
        "wrong_role": (entity_pem(rx_pki.gwa, keys=True), VERTRIEB),
        "incomplete_identity": (emt2.tls.cert_path.read_bytes() + emt2.tls.key_path.read_bytes(), VERTRIEB),
    }
    for code, (data, mp_id) in cases.items():
        async with emt_tenant.sessions() as session:
            with pytest.raises(service.CertificateRejected) as err:
                await service.import_emt_identity(session, settings, emt_tenant, data, mp_id)
        assert err.value.code == code
    async with emt_tenant.sessions() as session:
        with pytest.raises(service.MarketPartnerNotFound):
            await service.import_emt_identity(session, settings, emt_tenant, entity_pem(emt2, keys=True),
                                              "9900000000031")
        # The public import still takes no keys.
        with pytest.raises(service.CertificateRejected) as err:
            await service.import_emt(session, emt_tenant, entity_pem(emt2, keys=True), VERTRIEB)
    assert err.value.code == "key_not_allowed"
    assert await _rows(emt_tenant, VERTRIEB) == []


def test_the_cli_imports_an_emt_identity(gridgate_cli: GridgateCli, emt_tenant: TenantContext, rx_pki: TestPki,
                                         tmp_path: Path) -> None:
    bundle = tmp_path / "emt2.pem"
    bundle.write_bytes(entity_pem(rx_pki.emts["emt2"], keys=True))
    done = gridgate_cli("cert", "import-emt-identity", str(bundle), "--tenant", TENANT, "--market-partner", VERTRIEB)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("imported") == 3 and "EMT2-TEST.EMT" in done.stdout
    assert "PRIVATE" not in done.stdout + done.stderr
    listed = gridgate_cli("cert", "list", "--tenant", TENANT, "--owner", "emt", "--json")
    assert listed.returncode == 0
    assert listed.stdout.count('"has_private_key": true') == 6 and listed.stdout.count(VERTRIEB) == 3


async def test_the_demo_provisions_emt1_and_emt2_as_identities_of_its_partners(
        tenant_factory: TenantFactory, settings: Settings) -> None:
    from domain.certificates.demo import DEMO_EMT_IDENTITIES, provision_demo_pki

    assert {"emt1": DEMO_GRID_OPERATOR.mp_id, "emt2": DEMO_SUPPLIER.mp_id} == DEMO_EMT_IDENTITIES
    ctx = await tenant_factory("emtdemo")
    async with ctx.sessions() as session, session.begin():
        await seed_demo_fleet(session, 1, box=SecretBox(settings, ctx.name))
    assert await provision_demo_pki(settings, ctx, 1) > 0
    assert await provision_demo_pki(settings, ctx, 1) == 0  # idempotent
    async with ctx.sessions() as session:
        identities = await load_emt_identities(session, settings, ctx.name)
        _, problems = await emt_certificates(session, [NETZ, VERTRIEB], dt.datetime.now(dt.UTC))
    assert problems == []  # profile rollouts find both EMTs' ENC certificates
    assert set(identities) == {NETZ, VERTRIEB}
    assert "CN=EMT1-TEST.EMT" in identities[NETZ].tls.cert.subject.rfc4514_string()
    assert "CN=EMT2-TEST.EMT" in identities[VERTRIEB].tls.cert.subject.rfc4514_string()
