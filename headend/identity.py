"""Where a tenant's GWA identity comes from. The product reads the tenant's certificate store
(``domain.certificates.identity.load_gwa_identity``: private keys encrypted at rest); benches and
tools without a populated store can read a test PKI directory instead. Both give the same
``GwaIdentity``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from core.config import Settings
from domain.certificates.identity import GwaIdentity, load_gwa_identity
from domain.tenancy.service import TenantContext


class IdentitySource(Protocol):
    async def load(self, tenant: TenantContext) -> GwaIdentity:
        """The tenant's GWA identity; raises (e.g. IdentityMissing) when there is none."""


class StoreIdentitySource:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def load(self, tenant: TenantContext) -> GwaIdentity:
        async with tenant.sessions() as session:
            return await load_gwa_identity(session, self.settings, tenant.name)


class TestPkiIdentitySource:
    """The GWA of a ``pki.testpki`` directory, for every tenant (development and benchmarks)."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def load(self, tenant: TenantContext) -> GwaIdentity:
        from pki.testpki import TestPki

        pki = TestPki(self.directory)
        gwa = pki.gwa
        return GwaIdentity(tenant=tenant.name, tls_cert=gwa.tls.cert, tls_key=gwa.tls.key, sig_cert=gwa.sig.cert,
                           sig_key=gwa.sig.key, enc_cert=gwa.enc.cert, enc_key=gwa.enc.key, chain=[pki.subca],
                           trust_anchors=[pki.root])
