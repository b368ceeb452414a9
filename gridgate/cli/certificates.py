"""``gridgate cert ...``: the tenant's certificate store from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from domain.certificates import repository as repo
from domain.certificates import service
from domain.certificates.schemas import CertificateOut
from domain.tenancy.service import resolve
from gridgate.cli.common import databases, fail, load_settings, run

app = typer.Typer(help="Certificates of a tenant: trust anchors, GWA identity, EMT identities, EMT and gateway "
                       "certificates.",
                  no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="tenant name")]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise fail(f"cannot read {path}: {err.strerror}") from None


def _print_outcome(outcome: service.ImportOutcome) -> None:
    for row in outcome.imported:
        typer.echo(f"imported  {row.usage or 'ca':4} {row.subject}  (until {row.not_after:%Y-%m-%d})")
    if outcome.unchanged:
        typer.echo(f"unchanged {len(outcome.unchanged)} certificate(s)")


def _import(tenant: str, kind: str, data: bytes, *, password: bytes | None = None,
            market_partner: str | None = None, gateway: str | None = None) -> None:
    settings = load_settings()

    async def body() -> service.ImportOutcome:
        async with databases(settings) as dbs:
            ctx = await resolve(dbs, tenant)
            async with ctx.sessions() as session, session.begin():
                if kind == "trust":
                    return await service.import_trust(session, ctx, data)
                if kind == "identity":
                    return await service.import_identity(session, settings, ctx, data, password)
                if kind == "emt":
                    return await service.import_emt(session, ctx, data, market_partner)
                if kind == "emt-identity":
                    assert market_partner is not None
                    return await service.import_emt_identity(session, settings, ctx, data, market_partner, password)
                return await service.import_gateway(session, ctx, data, gateway)

    _print_outcome(run(body))


@app.command("import-trust")
def import_trust(file: Path, tenant: TenantOpt) -> None:
    """Import root CA (trust anchor) and Sub-CA certificates (PEM or DER)."""
    _import(tenant, "trust", _read(file))


@app.command("import-identity")
def import_identity(
    file: Path, tenant: TenantOpt,
    password_stdin: Annotated[bool, typer.Option(help="read the key password from stdin")] = False,
) -> None:
    """Import the tenant's GWA identity: TLS, SIG, ENC certificates with their private keys."""
    password = input().encode() if password_stdin else None
    _import(tenant, "identity", _read(file), password=password)


@app.command("import-emt")
def import_emt(
    file: Path, tenant: TenantOpt,
    market_partner: Annotated[str | None, typer.Option(help="13-digit market partner ID to link")] = None,
) -> None:
    """Import a market participant's certificates."""
    _import(tenant, "emt", _read(file), market_partner=market_partner)


@app.command("import-emt-identity")
def import_emt_identity(
    file: Path, tenant: TenantOpt,
    market_partner: Annotated[str, typer.Option(help="13-digit market partner ID the identity belongs to")],
    password_stdin: Annotated[bool, typer.Option(help="read the key password from stdin")] = False,
) -> None:
    """Import an EMT identity of the tenant: a market partner's TLS, SIG and ENC certificates with
    their private keys (encrypted at rest). The MDM receiver (`gridgate mdm`) then serves it."""
    password = input().encode() if password_stdin else None
    _import(tenant, "emt-identity", _read(file), password=password, market_partner=market_partner)


@app.command("import-gateway")
def import_gateway(file: Path, gateway: str, tenant: TenantOpt) -> None:
    """Import a gateway's certificates and link them to the gateway record."""
    _import(tenant, "gateway", _read(file), gateway=gateway)


@app.command("list")
def list_certificates(
    tenant: TenantOpt,
    owner: Annotated[str | None, typer.Option(help="trust, identity, emt or gateway")] = None,
    expiring_within_days: Annotated[int | None, typer.Option(help="only those expiring within N days")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """List active certificates with expiry, revocation status and purpose."""
    from datetime import UTC, datetime, timedelta

    settings = load_settings()
    before = datetime.now(UTC) + timedelta(days=expiring_within_days) if expiring_within_days is not None else None

    async def body() -> list[CertificateOut]:
        out: list[CertificateOut] = []
        async with databases(settings) as dbs:
            ctx = await resolve(dbs, tenant)
            after = 0
            async with ctx.sessions() as session:
                while True:
                    rows = (await session.execute(repo.listing(owner=owner, expiring_before=before, after=after,
                                                               limit=500))).all()
                    out += [CertificateOut.of(c, g, m) for c, g, m in rows]
                    if len(rows) < 500:
                        return out
                    after = rows[-1][0].id

    for cert in run(body):
        if as_json:
            typer.echo(json.dumps(cert.model_dump(mode="json")))
        else:
            link = cert.gateway or cert.market_partner or ""
            typer.echo(f"{cert.owner:8} {cert.usage or 'ca':4} {cert.days_left:5}d {cert.revocation:7} "
                       f"{cert.common_name or cert.subject} {link}".rstrip())


@app.command("revocation-check")
def revocation_check(tenant: TenantOpt) -> None:
    """Fetch every CRL now and update the revocation status of the tenant's certificates."""
    settings = load_settings()

    async def body() -> service.RevocationRun:
        async with databases(settings) as dbs:
            ctx = await resolve(dbs, tenant)
            async with ctx.sessions() as session, session.begin():
                return await service.refresh_revocation(session, ctx)

    done = run(body)
    typer.echo(f"CRLs refreshed: {len(done.refreshed)}, failed: {len(done.failed)}; "
               f"revoked: {done.revoked}, good: {done.good}")
    for url, why in done.failed.items():
        typer.echo(f"  failed {url}: {why}", err=True)
    if done.failed:
        raise typer.Exit(1)
