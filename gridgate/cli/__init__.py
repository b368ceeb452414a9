"""The ``gridgate`` command line: process entry points and operator commands.

Each command module of this package (and the simulator's own CLI) exposes a ``typer.Typer`` named
``app`` and is listed in ``_SUBAPPS``; what they share is in ``gridgate.cli.common``. Errors: exit
code 2 and one line on stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from core.errors import GridgateError


class _LazyRoot(TyperGroup):
    """Named command groups of other packages are imported only when invoked (or listed in help),
    so `gridgate pki ...` does not pay for importing the database and Temporal layers."""

    lazy: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *sorted(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module_name, help_text = self.lazy[cmd_name]
            module = importlib.import_module(module_name)
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

# (module, command name, help). Named groups are imported only when used.
_SUBAPPS: list[tuple[str, str, str]] = [
    ("gridgate.cli.platform", "", ""),  # up, api, worker, migrate, tenant, user
    ("gridgate.cli.pki", "pki", "SM-PKI: test PKI, verification, CMS, wake-up packets"),
    ("gridgate.cli.certificates", "cert", "Certificates of a tenant (trust, GWA identity, EMT, gateways)"),
    ("gridgate.cli.masterdata", "", ""),  # master data commands (gateways, meters, imports, filters)
    ("gridgate.cli.headend", "", ""),  # gridgate headend
    ("gridgate.cli.mdm", "", ""),  # gridgate mdm
    ("simulator.cli", "simulate", "Simulated SMGW fleet"),
    ("gridgate.cli.processes", "", ""),  # gridgate process ..., gridgate schedule ...
]


def _register() -> None:
    for module_name, name, help_text in _SUBAPPS:
        if name:
            _LazyRoot.lazy[name] = (module_name, help_text)
            continue
        sub: Any = importlib.import_module(module_name).app
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
