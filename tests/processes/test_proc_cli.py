"""`gridgate process ...` and `gridgate schedule ...` against the real services."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from tests.helpers import one_error_line

if TYPE_CHECKING:
    from domain.tenancy.service import TenantContext
    from tests.conftest import GridgateCli
    from tests.processes.conftest import GatewayFactory


async def test_process_cli_starts_watches_and_refuses_bad_input(gridgate_cli: GridgateCli,
                                                                make_gateways: GatewayFactory,
                                                                procs: TenantContext) -> None:
    # The worker runs in this test's event loop: the CLI runs in a thread so the loop stays free.
    def cli(*args: str) -> Coroutine[Any, Any, subprocess.CompletedProcess[str]]:
        return asyncio.to_thread(gridgate_cli, *args)

    ids = await make_gateways(2)
    run = await cli("process", "start", "logbook_readout", "--tenant", "procs", "--reason", "cli check",
                       "-g", ids[0], "-g", ids[1], "--params", '{"logs": ["system"]}', "--wait",
                       "--connect-timeout", "1", "--attempts", "1")
    assert run.returncode == 0, run.stderr
    assert "started logbook_readout" in run.stdout
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["total"] == 2 and summary["failed"] == 2 and summary["state"] in ("completed", "paused")

    failures = await cli("process", "failures", summary["id"], "--tenant", "procs")
    assert failures.stdout.count("unreachable") == 2

    assert "unknown_process_type" in one_error_line(await cli(
        "process", "start", "teleport", "--tenant", "procs", "--reason", "x", "-g", ids[0]))
    assert "--params is not JSON" in one_error_line(await cli(
        "process", "start", "time_sync", "--tenant", "procs", "--reason", "x", "-g", ids[0], "--params", "{"))
    assert "not both or neither" in one_error_line(await cli(
        "process", "start", "time_sync", "--tenant", "procs", "--reason", "x"))
    assert "invalid_filter" in one_error_line(await cli(
        "process", "start", "time_sync", "--tenant", "procs", "--reason", "xyz", "-f", "state = ("))
    assert "process_not_found" in one_error_line(await cli("process", "show", "p-nope", "--tenant", "procs"))

    listed = await cli("schedule", "list", "--tenant", "procs")
    assert listed.returncode == 0 and "crl_refresh" in listed.stdout, listed.stderr[:3000]
    assert "invalid_interval" in one_error_line(await cli("schedule", "set", "crl_refresh", "--tenant", "procs",
                                                            "--interval", "5"))
