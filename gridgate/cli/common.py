"""What every command module shares: configuration, running an async body, failing with exit 2."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from temporalio.client import Client

from core.config import Settings, get_settings
from core.context import set_actor
from core.db import Databases
from core.errors import GridgateError, ServiceUnavailable
from core.logging import configure_logging

T = TypeVar("T")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line to stderr and return an Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def fail_error(err: GridgateError) -> typer.Exit:
    """The one-line form of a GridgateError: message and machine-readable code."""
    return fail(f"{err.message} ({err.code})")


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async CLI body; GridgateErrors become exit code 2 with one line on stderr."""
    try:
        return asyncio.run(coro_fn())
    except GridgateError as err:
        raise fail_error(err) from None


def load_settings() -> Settings:
    try:
        settings = get_settings()
    except ValidationError as err:  # bad or missing (production) configuration
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
        raise fail(f"configuration: {reasons}") from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def run(body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async command body; every expected failure becomes exit 2 with one line."""
    set_actor(f"cli:{getpass.getuser()}")
    try:
        return asyncio.run(body())
    except GridgateError as err:
        raise fail_error(err) from None
    except OperationalError as err:
        raise fail(f"database unreachable: {str(err.orig or err).splitlines()[0]} "
                   "(is `gridgate up` running, or GRIDGATE_DATABASE_URL set?)") from None


@asynccontextmanager
async def databases(settings: Settings) -> AsyncIterator[Databases]:
    dbs = Databases(settings)
    try:
        yield dbs
    finally:
        await dbs.dispose()


async def temporal_root(settings: Settings) -> Client:
    from core.temporal_clients import TemporalClients

    clients = TemporalClients(settings.temporal_address, settings)
    if not await clients.healthy():
        raise ServiceUnavailable(f"Temporal at {settings.temporal_address} is not reachable "
                                 "(is `gridgate up` running, or GRIDGATE_TEMPORAL_ADDRESS set?)",
                                 code="temporal_unreachable")
    return await clients.root()
