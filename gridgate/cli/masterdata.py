"""Master data commands: ``gridgate gateway|meter|... list/count/export/show``, ``gridgate import``,
``gridgate filter ...``, ``gridgate assignment ...``. They talk to the tenant database directly
(like the platform commands) as the operator running them."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from domain.validators import aware
from gridgate.cli.common import databases, fail, load_settings, run

if TYPE_CHECKING:
    from core.config import Settings
    from domain.tenancy.service import TenantContext

T = TypeVar("T")
app = typer.Typer()
filter_app = typer.Typer(help="Saved named filters.", no_args_is_help=True)
assignment_app = typer.Typer(help="Assignments with validity periods (the topology over time).",
                             no_args_is_help=True)
app.add_typer(filter_app, name="filter")
app.add_typer(assignment_app, name="assignment")

TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", envvar="GRIDGATE_TENANT",
                                               help="tenant name (default: the demo tenant)")]
FilterOpt = Annotated[str | None, typer.Option("--filter", "-f", help="filter expression, see docs/masterdata.md")]
SavedOpt = Annotated[str | None, typer.Option("--saved", help="name of a saved filter")]
AsOfOpt = Annotated[datetime | None, typer.Option("--as-of", help="topology as of this moment (ISO 8601)")]


@asynccontextmanager
async def _tenant_session(tenant: str | None) -> AsyncIterator[tuple[Settings, TenantContext, AsyncSession]]:
    from domain.tenancy.service import resolve

    settings = load_settings()
    async with databases(settings) as dbs:
        ctx = await resolve(dbs, tenant or settings.demo_tenant)
        async with ctx.sessions() as session, session.begin():
            yield settings, ctx, session


def _in_tenant(tenant: str | None, fn: Callable[[Settings, TenantContext, AsyncSession], Awaitable[T]], *,
               returned: type[Exception] | None = None) -> T:
    """Run ``fn`` in one transaction of the tenant database (rolled back when it raises). An
    exception of type ``returned`` is handed back (after the rollback) instead of raised."""
    async def body() -> Any:
        try:
            async with _tenant_session(tenant) as (settings, ctx, session):
                return await fn(settings, ctx, session)
        except Exception as err:
            if returned is not None and isinstance(err, returned):
                return err
            raise
    return run(body)


def _table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    for row in [header, *cells]:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _jsonable(value: Any) -> Any:
    return json.loads(value.model_dump_json()) if hasattr(value, "model_dump_json") else value


# -- list / count / export / show per entity ---------------------------------------------------

_ENTITIES: dict[str, tuple[str, str, list[str]]] = {
    # command name: (filter entity, help, table columns)
    "gateway": ("gateway", "Smart meter gateways.",
                ["device_id", "device_type", "firmware_version", "state", "network_segment"]),
    "meter": ("meter", "Meters (Basiszähler).",
              ["device_id", "device_type", "firmware_version", "lmn_type", "calibration_valid_until", "has_mk0"]),
    "cls-module": ("cls_module", "CLS modules.", ["device_id", "device_type", "firmware_version", "controls"]),
    "connection-point": ("connection_point", "Connection points (Anschlussstellen).",
                         ["code", "street", "house_number", "postcode", "city", "grid_area"]),
    "metering-point": ("metering_point", "Metering points (MeLo).", ["melo", "direction", "grid_operator", "msb"]),
    "market-location": ("market_location", "Market locations (MaLo).", ["malo", "direction", "supplier"]),
    "market-partner": ("market_partner", "Market partners.", ["mp_id", "name", "roles"]),
}


def _out(entity: str, obj: Any) -> Any:
    from domain.devices.schemas import ClsModuleOut, GatewayOut, MeterOut
    from domain.locations.schemas import ConnectionPointOut, MarketLocationOut, MeteringPointOut
    from domain.partners.schemas import MarketPartnerOut

    return {"gateway": GatewayOut.of, "meter": MeterOut.of, "cls_module": ClsModuleOut.of,
            "connection_point": lambda o: ConnectionPointOut.model_validate(o, from_attributes=True),
            "metering_point": lambda o: MeteringPointOut.model_validate(o, from_attributes=True),
            "market_location": lambda o: MarketLocationOut.model_validate(o, from_attributes=True),
            "market_partner": lambda o: MarketPartnerOut.model_validate(o, from_attributes=True)}[entity](obj)


def _register(command: str, entity: str, help_text: str, columns: list[str]) -> None:
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=command)

    @group.command("list")
    def list_(tenant: TenantOpt = None, filter: FilterOpt = None, saved: SavedOpt = None,
              sort: Annotated[str | None, typer.Option(help="sort field, '-' for descending")] = None,
              limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
              after: Annotated[str | None, typer.Option(help="cursor printed after the previous page")] = None,
              as_of: AsOfOpt = None, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
        """One page, filtered and sorted; prints the cursor of the next page."""
        from domain import listing

        async def fn(settings: Settings, ctx: TenantContext, session: AsyncSession) -> tuple[list[Any], str | None]:
            items, nxt = await listing.page(session, entity, filter=filter, saved=saved, sort=sort, after=after,
                                            limit=limit, at=as_of)
            return [_out(entity, i) for i in items], nxt

        items, nxt = _in_tenant(tenant, fn)
        if json_out:
            typer.echo(json.dumps({"items": [_jsonable(i) for i in items], "next_after": nxt}, indent=2))
            return
        _table([c.upper() for c in columns], [[getattr(i, c) for c in columns] for i in items])
        if nxt:
            typer.echo(f"next page: --after {nxt}", err=True)

    @group.command("count")
    def count_(tenant: TenantOpt = None, filter: FilterOpt = None, saved: SavedOpt = None,
               as_of: AsOfOpt = None) -> None:
        """How many match the filter (before you run anything on them)."""
        from domain.filters import count

        async def fn(settings: Settings, ctx: TenantContext, session: AsyncSession) -> int:
            return await count(session, entity, filter, saved=saved, at=as_of)

        typer.echo(_in_tenant(tenant, fn))

    @group.command("export")
    def export_(tenant: TenantOpt = None, filter: FilterOpt = None, saved: SavedOpt = None, as_of: AsOfOpt = None,
                output: Annotated[Path | None, typer.Option("-o", "--output", help="file (default stdout)")] = None
                ) -> None:
        """The matching rows as CSV in the import format, streamed."""
        from domain.imports.export import export_csv

        async def fn(settings: Settings, ctx: TenantContext, session: AsyncSession) -> None:
            target = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
            try:
                async for chunk in export_csv(session, entity, filter, saved=saved, at=as_of):
                    target.write(chunk)
            finally:
                if output:
                    target.close()

        _in_tenant(tenant, fn)


for _command, (_entity, _help, _columns) in _ENTITIES.items():
    _register(_command, _entity, _help, _columns)


def _gateway_group() -> typer.Typer:
    for group in app.registered_groups:
        if group.name == "gateway" and group.typer_instance is not None:
            return group.typer_instance
    raise AssertionError("gateway group missing")


@_gateway_group().command("show")
def gateway_show(device_id: str, tenant: TenantOpt = None, as_of: AsOfOpt = None) -> None:
    """A gateway with its topology (as of a moment) and its assignment history."""
    from domain.devices.schemas import GatewayOut
    from domain.devices.service import get_gateway
    from domain.topology.service import gateway_assignment_history, gateway_topology

    async def fn(settings: Settings, ctx: TenantContext, session: AsyncSession) -> dict[str, Any]:
        gw = await get_gateway(session, device_id)
        return {"gateway": _jsonable(GatewayOut.of(gw)),
                "topology": _jsonable(await gateway_topology(session, gw, as_of)),
                "assignments": [_jsonable(a) for a in await gateway_assignment_history(session, gw)]}

    typer.echo(json.dumps(_in_tenant(tenant, fn), indent=2, ensure_ascii=False))


@_gateway_group().command("state")
def gateway_state(device_id: str, state: str, tenant: TenantOpt = None,
                  reason: Annotated[str | None, typer.Option(help="recorded in the change log")] = None) -> None:
    """Move a gateway through its lifecycle (checked transitions)."""
    from domain.devices.service import transition_gateway

    async def fn(settings: Settings, ctx: TenantContext, session: AsyncSession) -> str:
        return (await transition_gateway(session, device_id, state, reason=reason)).state

    typer.echo(f"{device_id.upper()}: {_in_tenant(tenant, fn)}")


# -- import -----------------------------------------------------------------------------------

@app.command("import")
def import_(
    kind: Annotated[str, typer.Argument(help="gateways, meters, cls-modules, connection-points, metering-points, "
                                             "market-locations, assignments, delivery")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    tenant: TenantOpt = None,
    dry_run: Annotated[bool, typer.Option(help="validate and count, store nothing")] = False,
    source: Annotated[str | None, typer.Option(help="the rows mirror this external system (read-only via API)")]
    = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Import a CSV file: validated as a whole, all or nothing, idempotent."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from domain.imports.errors import ImportRejected
    from domain.imports.service import run_import
    from domain.secrets import SecretBox

    total = file.stat().st_size
    progress = Progress(TextColumn(f"{kind}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[rows]} rows"),
                        TimeRemainingColumn(), disable=quiet or not sys.stderr.isatty(), transient=True)
    task = progress.add_task("import", total=total, rows=0)

    def report(done: int, rows: int) -> None:
        progress.update(task, completed=done, rows=f"{rows:,}")

    async def fn(settings: Settings, ctx: TenantContext, session: AsyncSession) -> Any:
        with file.open("rb") as stream, progress:
            return await run_import(session, kind, stream, file_name=file.name, source_system=source,
                                    dry_run=dry_run, box=SecretBox(settings, ctx.name), progress=report)

    result = _in_tenant(tenant, fn, returned=ImportRejected)
    if isinstance(result, ImportRejected):
        for err in result.errors[:50]:
            typer.echo(str(err), err=True)
        more = result.error_count - min(50, len(result.errors))
        if more > 0:
            typer.echo(f"... and {more} more", err=True)
        raise fail(f"{result.error_count} error(s) in {file.name}; nothing stored")
    rate = result.rows / result.seconds if result.seconds else 0
    verb = "would create" if dry_run else "created"
    typer.echo(f"{kind}: {result.rows} rows, {verb} {result.created}, updated {result.updated}, unchanged "
               f"{result.unchanged} in {result.seconds:.1f} s ({rate:,.0f} rows/s)" + (" [dry run]" if dry_run else ""))


# -- saved filters ----------------------------------------------------------------------------

@filter_app.command("save")
def filter_save(name: str, expression: str, tenant: TenantOpt = None,
                entity: Annotated[str, typer.Option(help="gateway, meter, ...")] = "gateway",
                description: Annotated[str, typer.Option()] = "") -> None:
    """Save (or replace) a named filter after checking it."""
    from domain.filters.service import save

    async def fn(settings: Settings, ctx: TenantContext, session: AsyncSession) -> bool:
        return (await save(session, name, entity, expression, description))[1]

    typer.echo(f"{'saved' if _in_tenant(tenant, fn) else 'replaced'} filter {name}")


@filter_app.command("list")
def filter_list(tenant: TenantOpt = None) -> None:
    from domain.filters.repository import list_all

    async def fn(settings: Settings, ctx: TenantContext, session: AsyncSession) -> list[list[str]]:
        return [[f.name, f.entity, f.expression] for f in await list_all(session)]

    _table(["NAME", "ENTITY", "EXPRESSION"], _in_tenant(tenant, fn))


@filter_app.command("delete")
def filter_delete(name: str, tenant: TenantOpt = None) -> None:
    from domain.filters.service import delete

    _in_tenant(tenant, lambda s, c, session: delete(session, name))
    typer.echo(f"deleted filter {name}")


@filter_app.command("check")
def filter_check(expression: str, tenant: TenantOpt = None,
                 entity: Annotated[str, typer.Option(help="gateway, meter, ...")] = "gateway") -> None:
    """Check a filter and print how many rows it selects now."""
    from domain.filters import count

    typer.echo(_in_tenant(tenant, lambda s, c, session: count(session, entity, expression)))


# -- assignments ------------------------------------------------------------------------------

@assignment_app.command("add")
def assignment_add(kind: str, subject: str, target: str, tenant: TenantOpt = None,
                   valid_from: Annotated[datetime | None, typer.Option("--from", help="default now")] = None,
                   valid_to: Annotated[datetime | None, typer.Option("--to", help="default open-ended")] = None
                   ) -> None:
    """Assign, e.g. ``assignment add meter-gateway 1EMH0005347102 EEMH0116909060``."""
    from domain.topology.service import assign

    result = _in_tenant(tenant, lambda s, c, session: assign(session, kind, subject, target,
                                                             valid_from=aware(valid_from),
                                                             valid_to=aware(valid_to)))
    typer.echo(f"assignment {result.id}: {result.subject} -> {result.target} from {result.valid_from.isoformat()}")


@assignment_app.command("end")
def assignment_end(kind: str, assignment_id: int, tenant: TenantOpt = None,
                   valid_to: Annotated[datetime | None, typer.Option("--to", help="default now")] = None) -> None:
    from domain.topology.service import end_assignment

    result = _in_tenant(tenant, lambda s, c, session: end_assignment(session, kind, assignment_id,
                                                                     valid_to=aware(valid_to)))
    typer.echo(f"assignment {result.id} ends {result.valid_to.isoformat() if result.valid_to else 'never'}")


@assignment_app.command("list")
def assignment_list(kind: str, tenant: TenantOpt = None, subject: str | None = None, target: str | None = None,
                    as_of: AsOfOpt = None) -> None:
    from domain.topology.service import list_assignments

    rows = _in_tenant(tenant, lambda s, c, session: list_assignments(session, kind, subject=subject, target=target,
                                                                     at=aware(as_of)))
    _table(["ID", "SUBJECT", "TARGET", "VALID_FROM", "VALID_TO"],
           [[a.id, a.subject, a.target, a.valid_from.isoformat(), a.valid_to.isoformat() if a.valid_to else ""]
            for a in rows])
