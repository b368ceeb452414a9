"""Which certificates a gateway is given (the GWA's own and those of the EMTs it delivers to) and
whether the gateway's own certificates are usable: each with the problems that keep it from being so."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.ext.asyncio import AsyncSession

from domain.certificates import repository as repo
from domain.certificates.models import Certificate

USAGES = ("tls", "sig", "enc")


@dataclass(frozen=True)
class Installable:
    """A certificate as the gateway stores it: ``owner`` is the GWA name or the EMT's market partner ID."""

    owner: str
    role: str  # gwa | emt
    usage: str
    pem: str


def usable(c: Certificate, now: dt.datetime) -> bool:
    return c.status == "active" and c.revocation != "revoked" and c.not_before <= now < c.not_after


def _pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


async def gwa_certificates(session: AsyncSession, now: dt.datetime) -> tuple[list[Installable], list[str]]:
    """The tenant's GWA TLS/SIG/ENC certificates for the gateway (owner: the GWA name of the CN)."""
    rows = await repo.active_identity(session)
    out: list[Installable] = []
    problems: list[str] = []
    for usage in USAGES:
        c = next((r for r in rows if r.usage == usage and usable(r, now)), None)
        if c is None:
            problems.append(f"no valid GWA {usage.upper()} certificate in the certificate store")
            continue
        owner = (c.common_name or "").removesuffix(".GWA")
        out.append(Installable(owner=owner, role="gwa", usage=usage, pem=_pem(c.der)))
    return out, problems


async def emt_certificates(session: AsyncSession, emts: Sequence[str], now: dt.datetime
                           ) -> tuple[list[Installable], list[str]]:
    """Each EMT's valid certificates (owner on the gateway: its market partner ID); an EMT without a
    valid ENC certificate cannot receive data and is a problem."""
    if not emts:
        return [], []
    rows = await repo.active_emt(session, emts)
    out: list[Installable] = []
    problems: list[str] = []
    for emt in emts:
        mine = [c for c, mp in rows if mp == emt and usable(c, now)]
        chosen = {c.usage: c for c in sorted(mine, key=lambda c: c.not_after)}  # the newest per usage
        if "enc" not in chosen:
            problems.append(f"no valid ENC certificate of EMT {emt} in the certificate store")
            continue
        out.extend(Installable(owner=emt, role="emt", usage=u, pem=_pem(chosen[u].der))
                   for u in USAGES if u in chosen)
    return out, problems


async def gateway_certificate_problems(session: AsyncSession, gateway_pk: int, now: dt.datetime) -> list[str]:
    """Why the gateway's own TLS/SIG/ENC certificates are not usable (missing, revoked, expired,
    not yet valid); empty when each usage has a usable one."""
    rows = await repo.active_of_gateway(session, gateway_pk)
    problems = []
    for usage in USAGES:
        mine = [c for c in rows if c.usage == usage]
        if not mine:
            problems.append(f"no {usage.upper()} certificate of the gateway in the certificate store")
        elif not any(usable(c, now) for c in mine):
            c = mine[-1]  # the longest valid one says why
            why = "revoked" if c.revocation == "revoked" else "expired" if c.not_after <= now else "not yet valid"
            problems.append(f"the gateway's {usage.upper()} certificate is {why}")
    return problems
