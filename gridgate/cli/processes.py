"""``gridgate process ...`` and ``gridgate schedule ...``: start and steer processes from a shell."""

from __future__ import annotations

import asyncio
import getpass
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridgate.cli.common import databases, fail, load_settings, run, temporal_root

if TYPE_CHECKING:  # the command modules import the application layers only when a command runs
    from temporalio.client import Client

    from core.config import Settings
    from core.db import Databases
    from domain.tenancy.service import TenantContext
    from operations.processes import Initiator

app = typer.Typer()
process_app = typer.Typer(help="Processes (commissioning, rollouts, readouts, ...): start, watch, steer.",
                          no_args_is_help=True)
schedule_app = typer.Typer(help="Cyclic processes of a tenant (time sync, logbook readout, CRL refresh).",
                           no_args_is_help=True)
app.add_typer(process_app, name="process")
app.add_typer(schedule_app, name="schedule")

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="tenant name")]


async def _tenant_and_client(settings: Settings, dbs: Databases, tenant: str) -> tuple[TenantContext, Client]:
    from core.temporal_clients import TemporalClients
    from domain.tenancy.service import resolve

    ctx = await resolve(dbs, tenant)
    clients = TemporalClients(settings.temporal_address, settings)
    await temporal_root(settings)
    return ctx, await clients.for_namespace(ctx.namespace)


def _summary(process: Any, counts: dict[str, int]) -> dict[str, Any]:
    return {"id": process.id, "type": process.type, "state": process.state, "total": process.total,
            **{k: counts.get(k, 0) for k in ("pending", "running", "succeeded", "failed", "cancelled")},
            "pause_reason": process.pause_reason, "reason": process.reason}


async def _watch(ctx: Any, process_id: str, interval: float = 1.0) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from operations import processes

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[detail]}"), transient=False) as bar:
        task = None
        while True:
            process, counts = await processes.counts(ctx, process_id)
            done = sum(counts.get(k, 0) for k in ("succeeded", "failed", "cancelled"))
            detail = f"ok {counts.get('succeeded', 0)}  failed {counts.get('failed', 0)}  {process.state}"
            if task is None:
                task = bar.add_task(f"{process.type} {process.id}", total=process.total, detail=detail)
            bar.update(task, completed=done, detail=detail)
            if process.state in ("completed", "failed", "cancelled", "paused"):
                return _summary(process, counts)
            await asyncio.sleep(interval)


@process_app.command("start")
def start(
    type_: Annotated[str, typer.Argument(metavar="TYPE", help="commissioning, time_sync, logbook_readout, ...")],
    tenant: TenantOpt,
    reason: Annotated[str, typer.Option(help="why this process runs (recorded)")],
    gateway: Annotated[list[str] | None, typer.Option("--gateway", "-g", help="a gateway ID (repeatable)")] = None,
    filter_: Annotated[str | None, typer.Option("--filter", "-f", help="filter expression selecting gateways")] = None,
    params: Annotated[str, typer.Option(help="JSON object of the type's parameters")] = "{}",
    concurrency: Annotated[int, typer.Option(help="gateways in flight at once")] = 50,
    skip_busy: Annotated[bool, typer.Option(help="leave out gateways held by another process")] = False,
    connect_timeout: Annotated[float, typer.Option(help="seconds to wait for a woken gateway, per attempt")] = 120,
    attempts: Annotated[int, typer.Option(help="attempts per step on retryable errors")] = 4,
    wait: Annotated[bool, typer.Option(help="show a progress bar until it ends or pauses")] = False,
) -> None:
    """Start a process for gateways (-g ...) or a filter (-f ...)."""
    from domain.processes import service
    from operations import processes

    if (gateway is None) == (filter_ is None):
        raise fail("give gateways (--gateway) or a filter (--filter), not both or neither")
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError as err:
        raise fail(f"--params is not JSON: {err.msg}") from None
    if not isinstance(parsed, dict):
        raise fail("--params must be a JSON object")
    settings = load_settings()

    async def body() -> dict[str, Any]:
        async with databases(settings) as dbs:
            ctx, client = await _tenant_and_client(settings, dbs, tenant)
            process = await processes.start(
                ctx, client, settings.temporal_task_queue, type_,
                service.Target(gateway_ids=gateway, filter=filter_), parsed, reason,
                _initiator(), service.StartOptions(concurrency=concurrency, skip_busy=skip_busy),
                processes.LinkOptions(connect_timeout_s=connect_timeout, attempts=attempts))
            typer.echo(f"started {process.type} {process.id} for {process.total} gateway(s)")
            if wait:
                return await _watch(ctx, process.id)
            return {}

    result = run(body)
    if result:
        typer.echo(json.dumps(result))


def _initiator() -> Initiator:
    from operations.processes import Initiator

    return Initiator(username=f"cli:{getpass.getuser()}", ref="cli")


@process_app.command("list")
def list_processes(tenant: TenantOpt, limit: Annotated[int, typer.Option()] = 20) -> None:
    """The newest processes."""
    from domain.processes import repository as repo

    settings = load_settings()

    async def body() -> list[dict[str, Any]]:
        from domain.tenancy.service import resolve

        async with databases(settings) as dbs:
            ctx = await resolve(dbs, tenant)
            async with ctx.sessions() as session:
                rows = (await session.scalars(repo.listing(limit=limit))).all()
                return [_summary(p, await repo.counts(session, p.id)) for p in rows]

    for p in run(body):
        typer.echo(f"{p['id']}  {p['type']:20} {p['state']:10} {p['succeeded']}/{p['total']} ok, {p['failed']} failed"
                   f"  {p['reason']}")


@process_app.command("show")
def show(process_id: str, tenant: TenantOpt,
         watch: Annotated[bool, typer.Option(help="progress bar until it ends or pauses")] = False) -> None:
    """State and counts of a process (one JSON object)."""
    from operations import processes

    settings = load_settings()

    async def body() -> dict[str, Any]:
        from domain.tenancy.service import resolve

        async with databases(settings) as dbs:
            ctx = await resolve(dbs, tenant)
            if watch:
                return await _watch(ctx, process_id)
            return _summary(*await processes.counts(ctx, process_id))

    typer.echo(json.dumps(run(body)))


@process_app.command("failures")
def failures(process_id: str, tenant: TenantOpt) -> None:
    """The gateways that failed, with their reasons."""
    from domain.processes import repository as repo

    settings = load_settings()

    async def body() -> list[str]:
        from domain.processes.service import get
        from domain.tenancy.service import resolve

        out, after = [], 0
        async with databases(settings) as dbs:
            ctx = await resolve(dbs, tenant)
            async with ctx.sessions() as session:
                await get(session, process_id)
                while True:
                    rows = (await session.scalars(repo.targets(process_id, state="failed", after=after,
                                                               limit=500))).all()
                    out += [f"{t.gateway_id}  {t.error_type}  {t.error_message or ''}" for t in rows]
                    if len(rows) < 500:
                        return out
                    after = rows[-1].seq

    for line in run(body):
        typer.echo(line)


def _steer(action: str, process_id: str, tenant: str, reason: str | None = None) -> None:
    from operations import processes

    settings = load_settings()

    async def body() -> None:
        async with databases(settings) as dbs:
            ctx, client = await _tenant_and_client(settings, dbs, tenant)
            await processes.steer(ctx, client, process_id, action, reason)

    run(body)
    typer.echo(f"{action} requested for {process_id}")


@process_app.command("pause")
def pause(process_id: str, tenant: TenantOpt, reason: Annotated[str, typer.Option()] = "paused by operator") -> None:
    """Stop starting gateways; those in flight finish."""
    _steer("pause", process_id, tenant, reason)


@process_app.command("resume")
def resume(process_id: str, tenant: TenantOpt) -> None:
    _steer("resume", process_id, tenant)


@process_app.command("cancel")
def cancel(process_id: str, tenant: TenantOpt) -> None:
    """Cancel the gateways in flight and every pending one."""
    _steer("cancel", process_id, tenant)


@process_app.command("retry-failed")
def retry_failed(process_id: str, tenant: TenantOpt, reason: Annotated[str, typer.Option()],
                 wait: Annotated[bool, typer.Option()] = False) -> None:
    """A new process of the same type over the gateways that failed in PROCESS_ID."""
    from operations import processes

    settings = load_settings()

    async def body() -> dict[str, Any]:
        async with databases(settings) as dbs:
            ctx, client = await _tenant_and_client(settings, dbs, tenant)
            process = await processes.retry_failed(ctx, client, settings.temporal_task_queue, process_id, reason,
                                                   _initiator())
            typer.echo(f"started {process.type} {process.id} for {process.total} gateway(s)")
            return await _watch(ctx, process.id) if wait else {}

    result = run(body)
    if result:
        typer.echo(json.dumps(result))


@schedule_app.command("list")
def schedule_list(tenant: TenantOpt) -> None:
    from operations import schedules

    settings = load_settings()

    async def body() -> list[schedules.ScheduleInfo]:
        async with databases(settings) as dbs:
            _, client = await _tenant_and_client(settings, dbs, tenant)
            return [await schedules.describe(client, n) for n in schedules.DEFAULTS]

    for s in run(body):
        nxt = s.next_runs[0].isoformat(timespec="seconds") if s.next_runs and not s.paused else "-"
        typer.echo(f"{s.name:16} every {s.interval_s:>7}s  {'paused ' if s.paused else 'active '} next {nxt}  "
                   f"{s.filter or ''}".rstrip())


@schedule_app.command("set")
def schedule_set(
    name: str, tenant: TenantOpt,
    interval: Annotated[int | None, typer.Option(help="seconds between runs")] = None,
    pause: Annotated[bool | None, typer.Option("--pause/--unpause", help="pause or resume the schedule")] = None,
    filter_: Annotated[str | None, typer.Option("--filter", help="gateways a run takes")] = None,
) -> None:
    """Change a schedule's interval, pause state or filter."""
    from operations import schedules

    settings = load_settings()

    async def body() -> schedules.ScheduleInfo:
        async with databases(settings) as dbs:
            _, client = await _tenant_and_client(settings, dbs, tenant)
            return await schedules.update(client, settings.temporal_task_queue, name, interval_s=interval,
                                          paused=pause, filter_=filter_, note=f"by cli:{getpass.getuser()}")

    s = run(body)
    typer.echo(f"{s.name}: every {s.interval_s}s, {'paused' if s.paused else 'active'}")


@schedule_app.command("trigger")
def schedule_trigger(name: str, tenant: TenantOpt) -> None:
    """Run a schedule's action now."""
    from operations import schedules

    settings = load_settings()

    async def body() -> None:
        async with databases(settings) as dbs:
            _, client = await _tenant_and_client(settings, dbs, tenant)
            await schedules.trigger(client, name)

    run(body)
    typer.echo(f"{name} triggered")
