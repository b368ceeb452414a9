"""Whether a gateway's own certificates are usable, and why not: one problem per usage, told by its
longest valid certificate."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from domain.certificates.models import Certificate
from domain.certificates.selection import gateway_certificate_problems, usable
from tests.domain.conftest import make_gateway

NOW = datetime.now(UTC)


def _cert(usage: str, *, days_left: int, revoked: bool = False, starts_in: int = -30, gateway: int | None = None,
          status: str = "active") -> Certificate:
    return Certificate(fingerprint=secrets.token_hex(32), owner="gateway", role="SMGW", usage=usage, subject="CN=x",
                       issuer="CN=ca", serial=secrets.token_hex(8), der=b"-", crl_urls=[], gateway_id=gateway,
                       not_before=NOW + timedelta(days=starts_in), not_after=NOW + timedelta(days=days_left),
                       status=status, revocation="revoked" if revoked else "good")


def test_usable_means_active_unrevoked_and_inside_its_validity() -> None:
    assert usable(_cert("tls", days_left=10), NOW)
    assert not usable(_cert("tls", days_left=10, revoked=True), NOW)
    assert not usable(_cert("tls", days_left=-1), NOW)
    assert not usable(_cert("tls", days_left=10, starts_in=1), NOW)
    assert not usable(_cert("tls", days_left=10, status="superseded"), NOW)


async def test_each_usage_without_a_usable_certificate_is_one_problem(session: AsyncSession) -> None:
    gw = await make_gateway(session)
    assert await gateway_certificate_problems(session, gw.id, NOW) == [
        f"no {u} certificate of the gateway in the certificate store" for u in ("TLS", "SIG", "ENC")]
    session.add_all([
        _cert("tls", days_left=-5, gateway=gw.id), _cert("tls", days_left=100, revoked=True, gateway=gw.id),
        _cert("sig", days_left=-1, gateway=gw.id),
        _cert("enc", days_left=100, starts_in=2, gateway=gw.id),
    ])
    await session.flush()
    assert await gateway_certificate_problems(session, gw.id, NOW) == [
        "the gateway's TLS certificate is revoked", "the gateway's SIG certificate is expired",
        "the gateway's ENC certificate is not yet valid"]
    session.add(_cert("tls", days_left=30, gateway=gw.id))
    await session.flush()
    assert len(await gateway_certificate_problems(session, gw.id, NOW)) == 2
