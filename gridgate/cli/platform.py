"""Platform commands: ``up``, ``api``, ``worker``, ``migrate``, ``tenant ...``, ``user ...``."""

from __future__ import annotations

import sys
from typing import Annotated, TypeVar

import typer
from sqlalchemy.exc import OperationalError

from core.errors import GridgateError
from gridgate.cli.common import databases, fail, fail_error, load_settings, run, temporal_root

app = typer.Typer()
tenant_app = typer.Typer(help="Tenants: each with its own database, Temporal namespace and keys.",
                         no_args_is_help=True)
user_app = typer.Typer(help="Users and their roles in tenants.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")

T = TypeVar("T")


# -- processes --------------------------------------------------------------------------------

@app.command()
def up() -> None:
    """Start everything (PostgreSQL, Temporal, API, worker, ...) and supervise it; Ctrl-C stops."""
    from gridgate.supervisor import run_up

    settings = load_settings()
    try:
        code = run_up(settings)
    except GridgateError as err:
        raise fail_error(err) from None
    raise typer.Exit(code)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="default GRIDGATE_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default GRIDGATE_API_PORT")] = None,
) -> None:
    """Run the HTTP API."""
    import uvicorn

    from api.app import create_app
    from core.procs import port_in_use

    settings = load_settings()
    host = host or settings.api_host
    port = port or settings.api_port
    if port_in_use(host, port):
        raise fail(f"port {port} on {host} (API) is already in use; set GRIDGATE_API_PORT or --port")
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False,
                proxy_headers=True, timeout_graceful_shutdown=10)


@app.command()
def worker() -> None:
    """Run the Temporal worker (one worker per tenant namespace)."""
    import worker as worker_module

    load_settings()
    try:
        worker_module.main()
    except (OperationalError, OSError) as err:
        raise fail(f"worker cannot start: {err}") from None


@app.command()
def migrate() -> None:
    """Create the control database if needed and migrate it and every tenant database."""
    from operations.bootstrap import migrate_everything

    settings = load_settings()

    async def body() -> list[str]:
        async with databases(settings) as dbs:
            return await migrate_everything(dbs)

    tenants = run(body)
    typer.echo(f"migrated control database and {len(tenants)} tenant database(s)")


# -- tenants ----------------------------------------------------------------------------------

@tenant_app.command("create")
def tenant_create(
    name: str,
    display_name: Annotated[str, typer.Option(help="human-readable name")] = "",
) -> None:
    """Create a tenant: database + migrations, Temporal namespace, key folder."""
    from domain.tenancy.service import validate_tenant_name
    from operations.tenants import create_tenant

    settings = load_settings()
    try:
        validate_tenant_name(name)
    except GridgateError as err:
        raise fail_error(err) from None

    async def body() -> str:
        async with databases(settings) as dbs:
            client = await temporal_root(settings)
            tenant = await create_tenant(dbs, settings, client, name, display_name=display_name)
            return f"created tenant {tenant.name}: database {tenant.db_name}, namespace {tenant.namespace}"

    typer.echo(run(body))


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants."""
    from domain.tenancy.service import list_tenants

    settings = load_settings()

    async def body() -> list[tuple[str, str, str, str]]:
        async with databases(settings) as dbs, dbs.control_sessions() as session:
            return [(t.name, t.namespace, t.db_name, t.created_at.isoformat(timespec="seconds"))
                    for t in await list_tenants(session)]

    rows = run(body)
    header = ("NAME", "NAMESPACE", "DATABASE", "CREATED")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# -- users ------------------------------------------------------------------------------------

def _read_password(from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    return sys.stdin.readline().rstrip("\n")


@user_app.command("create")
def user_create(
    username: str,
    tenant: Annotated[str | None, typer.Option(help="grant a role in this tenant")] = None,
    role: Annotated[str, typer.Option(help="admin, operator, auditor or emt")] = "operator",
    superadmin: Annotated[bool, typer.Option(help="platform administrator")] = False,
    market_partner_id: Annotated[str | None, typer.Option(help="for role emt: 13-digit market partner ID")] = None,
    password_stdin: Annotated[bool, typer.Option(help="read the password from stdin instead of generating")] = False,
) -> None:
    """Create a user (the generated password is printed once)."""
    from domain.iam.service import create_user, generate_password, grant, validate_role
    from domain.tenancy.service import get_tenant

    settings = load_settings()
    given = _read_password(password_stdin)
    password = given or generate_password()
    if tenant:
        try:
            validate_role(role)
        except GridgateError as err:
            raise fail_error(err) from None

    async def body() -> None:
        async with databases(settings) as dbs, dbs.control_sessions() as session, session.begin():
            user = await create_user(session, username, password, superadmin=superadmin)
            if tenant:
                await grant(session, user, await get_tenant(session, tenant), role,
                            market_partner_id=market_partner_id)

    run(body)
    typer.echo(f"created user {username}" + (f" ({role} in {tenant})" if tenant else ""))
    if not given:
        typer.echo(f"password: {password}")


@user_app.command("grant")
def user_grant(
    username: str,
    tenant: Annotated[str, typer.Option(help="tenant name")],
    role: Annotated[str, typer.Option(help="admin, operator, auditor or emt")],
    market_partner_id: Annotated[str | None, typer.Option(help="for role emt")] = None,
) -> None:
    """Give a user a role in a tenant (replaces the current role there)."""
    from domain.iam.service import get_user, grant
    from domain.tenancy.service import get_tenant

    settings = load_settings()

    async def body() -> None:
        async with databases(settings) as dbs, dbs.control_sessions() as session, session.begin():
            await grant(session, await get_user(session, username), await get_tenant(session, tenant), role,
                        market_partner_id=market_partner_id)

    run(body)
    typer.echo(f"{username} is {role} in {tenant}")


@user_app.command("reset-password")
def user_reset_password(
    username: str,
    password_stdin: Annotated[bool, typer.Option(help="read the password from stdin instead of generating")] = False,
) -> None:
    """Set a new password (generated and printed once unless read from stdin)."""
    from domain.iam.service import generate_password, get_user, set_password

    settings = load_settings()
    given = _read_password(password_stdin)
    password = given or generate_password()

    async def body() -> None:
        async with databases(settings) as dbs, dbs.control_sessions() as session, session.begin():
            await set_password(session, await get_user(session, username), password)

    run(body)
    typer.echo(f"password of {username} reset")
    if not given:
        typer.echo(f"password: {password}")


@user_app.command("list")
def user_list() -> None:
    """List users and their tenants."""
    from sqlalchemy import select

    from domain.iam.models import User
    from domain.iam.service import tenants_of

    settings = load_settings()

    async def body() -> list[str]:
        out = []
        async with databases(settings) as dbs, dbs.control_sessions() as session:
            for user in (await session.scalars(select(User).order_by(User.username))).all():
                roles = ", ".join(f"{t.name}:{r}" for t, r in await tenants_of(session, user) if r)
                flag = " superadmin" if user.is_superadmin else ""
                out.append(f"{user.username}{flag}  {roles}".rstrip())
        return out

    for line in run(body):
        typer.echo(line)
