"""The ``gridgate`` command line: process entry points and operator commands.

Sub-command groups of other packages (``pki``, ``simulate``, ...) register in ``_SUBAPPS``; each
module exposes a ``typer.Typer`` named ``app``. Errors: exit code 2 and one line on stderr.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from gridgate.errors import GridgateError


class _LazyRoot(TyperGroup):
    """Named command groups of other packages are imported only when invoked (or listed in help),
    so `gridgate pki ...` does not pay for importing the database and Temporal layers."""

    lazy: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *sorted(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module_name, help_text = self.lazy[cmd_name]
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as err:
                if err.name == module_name or module_name.startswith(f"{err.name}."):
                    return None
                raise
            group = typer.main.get_command(module.app)
            group.name = cmd_name
            group.help = group.help or help_text
            self.add_command(group, cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=_LazyRoot,
    name="gridgate",
    help="gridgate: Gateway Administrator and Meter Data Manager for BSI TR-03109 smart metering.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module, command name, help). Imported lazily so a broken optional area cannot break the CLI.
_SUBAPPS: list[tuple[str, str, str]] = [
    ("gridgate.cli_platform", "", ""),  # up, api, worker, migrate, tenant, user
    ("pki.cli", "pki", "SM-PKI: test PKI, verification, CMS, wake-up packets"),
    ("domain.certificates.cli", "cert", "Certificates of a tenant (trust, GWA identity, EMT, gateways)"),
    ("domain.cli", "", ""),  # master data commands (gateways, meters, imports, filters)
    ("headend.cli", "", ""),  # gridgate headend
    ("simulator.cli", "simulate", "Simulated SMGW fleet"),
    ("gridgate.cli_processes", "", ""),  # gridgate process ..., gridgate schedule ...
]

T = TypeVar("T")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line to stderr and return an Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def fail_error(err: GridgateError) -> typer.Exit:
    """The one-line form of a GridgateError: message and machine-readable code."""
    return fail(f"{err.message} ({err.code})")


def run_async(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async CLI body; GridgateErrors become exit code 2 with one line on stderr."""
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except GridgateError as err:
        raise fail_error(err) from None


def _register() -> None:
    for module_name, name, help_text in _SUBAPPS:
        if name:
            _LazyRoot.lazy[name] = (module_name, help_text)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name or (err.name and module_name.startswith(err.name + ".")):
                continue  # area not built yet
            raise
        sub: Any = getattr(module, "app", None)
        if sub is None:
            continue
        # Commands and groups of the module join the top level.
        for cmd in sub.registered_commands:
            app.registered_commands.append(cmd)
        for group in sub.registered_groups:
            app.registered_groups.append(group)


_register()


def main() -> None:
    code: int | str | None = 0
    try:
        app()
    except GridgateError as err:
        typer.echo(f"error: {err.message} ({err.code})", err=True)
        code = 2
    except SystemExit as done:
        code = done.code
    # Temporal's native runtime keeps threads that may call into Python while the interpreter
    # finalizes ("PyGILState_Release ... finalizing" aborts). Everything is closed by now, so leave
    # without finalizing once it was loaded.
    if "temporalio.bridge" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else (0 if code is None else 1))
    sys.exit(code)
