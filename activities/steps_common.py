"""What the process step activities share: a tenant session bound to the workflow as actor, domain
refusals as typed non-retryable failures, and certificates in the shape the gateway installs them."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.runtime import TenantRuntime
from core.context import set_actor
from core.errors import GridgateError
from domain.certificates.models import Certificate
from domain.partners.models import MarketPartner
from headend import contract as gc

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def refusal(code: str, message: str) -> ApplicationError:
    """A business refusal: the process of this gateway ends with ``code`` (no retry helps)."""
    return ApplicationError(message, type=code, non_retryable=True)


def domain_refusals(fn: F) -> F:
    """Domain errors (4xx) become non-retryable failures with their reason code."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except GridgateError as err:
            raise refusal(err.code, err.message) from None

    return wrapper  # type: ignore[return-value]


class Steps:
    def __init__(self, runtime: TenantRuntime) -> None:
        self.runtime = runtime

    def _session(self):  # type: ignore[no-untyped-def]
        set_actor("workflow:" + activity.info().workflow_id)
        return self.runtime.tenant.sessions()


def _pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


def usable(c: Certificate, now: dt.datetime) -> bool:
    return c.status == "active" and c.revocation != "revoked" and c.not_before <= now < c.not_after


async def gwa_certificates(session: AsyncSession, now: dt.datetime) -> tuple[list[gc.CertificateToInstall], list[str]]:
    """The tenant's GWA TLS/SIG/ENC certificates for the gateway (owner: the GWA name of the CN)."""
    rows = (await session.scalars(select(Certificate).where(Certificate.owner == "identity",
                                                            Certificate.status == "active"))).all()
    out: list[gc.CertificateToInstall] = []
    problems: list[str] = []
    for usage in ("tls", "sig", "enc"):
        c = next((r for r in rows if r.usage == usage and usable(r, now)), None)
        if c is None:
            problems.append(f"no valid GWA {usage.upper()} certificate in the certificate store")
            continue
        owner = (c.common_name or "").removesuffix(".GWA")
        out.append(gc.CertificateToInstall(owner=owner, role="gwa", usage=usage, pem=_pem(c.der)))
    return out, problems


async def emt_certificates(session: AsyncSession, emts: Sequence[str], now: dt.datetime
                           ) -> tuple[list[gc.CertificateToInstall], list[str]]:
    """Each EMT's valid certificates (owner on the gateway: its market partner ID); an EMT without a
    valid ENC certificate cannot receive data and is a problem."""
    if not emts:
        return [], []
    rows = (await session.execute(
        select(Certificate, MarketPartner.mp_id).join(MarketPartner, MarketPartner.id == Certificate.market_partner_id)
        .where(Certificate.owner == "emt", Certificate.status == "active", MarketPartner.mp_id.in_(list(emts)))
        .order_by(Certificate.id))).all()
    out: list[gc.CertificateToInstall] = []
    problems: list[str] = []
    for emt in emts:
        mine = [c for c, mp in rows if mp == emt and usable(c, now)]
        chosen = {c.usage: c for c in sorted(mine, key=lambda c: c.not_after)}  # the newest per usage
        if "enc" not in chosen:
            problems.append(f"no valid ENC certificate of EMT {emt} in the certificate store")
            continue
        out.extend(gc.CertificateToInstall(owner=emt, role="emt", usage=u, pem=_pem(chosen[u].der))
                   for u in ("tls", "sig", "enc") if u in chosen)
    return out, problems


async def gateway_certificate_problems(session: AsyncSession, gateway_pk: int, now: dt.datetime) -> list[str]:
    rows = (await session.scalars(select(Certificate).where(Certificate.owner == "gateway",
                                                            Certificate.gateway_id == gateway_pk,
                                                            Certificate.status == "active"))).all()
    problems = []
    for usage in ("tls", "sig", "enc"):
        mine = [c for c in rows if c.usage == usage]
        if not mine:
            problems.append(f"no {usage.upper()} certificate of the gateway in the certificate store")
        elif not any(usable(c, now) for c in mine):
            c = mine[-1]
            why = "revoked" if c.revocation == "revoked" else "expired" if c.not_after <= now else "not yet valid"
            problems.append(f"the gateway's {usage.upper()} certificate is {why}")
    return problems
