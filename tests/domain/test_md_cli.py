"""The operator's command line: import a file, see every error of a bad one. (Two process starts:
the commands themselves are thin over the services the other tests cover.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from core.config import Settings
from domain.filters import count
from domain.tenancy.service import TenantContext
from tests.domain.conftest import gateway_id, serial
from tests.helpers import gridgate_bin


def _cli_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url is not None  # the test settings always name their database
    return {"GRIDGATE_DATABASE_URL": settings.database_url, "GRIDGATE_VAR_DIR": str(settings.var_dir),
            "GRIDGATE_TENANT": "alpha", "GRIDGATE_LOG_LEVEL": "warning"}


async def _gridgate(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **_cli_env(settings)}
    return await asyncio.to_thread(subprocess.run, [gridgate_bin(), *args], env=env, capture_output=True, text=True,
                                   timeout=60)


async def test_import_count_and_rejected_file_from_the_command_line(settings: Settings, tenant_a: TenantContext,
                                                                    tmp_path: Path) -> None:
    seg = f"CLI{serial()}"
    good = tmp_path / "gateways.csv"
    good.write_text("device_id,device_type,network_segment\n"
                    + "".join(f"{gateway_id()},emh-casa,{seg}\n" for _ in range(3)))
    done = await _gridgate(settings, "import", "gateways", str(good))
    assert done.returncode == 0, done.stderr
    assert "3 rows, created 3, updated 0, unchanged 0" in done.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text(f"device_id,device_type,network_segment\n{gateway_id()},emh-casa,{seg}\nEEMH,emh-casa,{seg}\n")
    rejected = await _gridgate(settings, "import", "gateways", str(bad))
    assert rejected.returncode == 2
    assert "line 3, column device_id" in rejected.stderr and "nothing stored" in rejected.stderr

    async with tenant_a.sessions() as session:
        assert await count(session, "gateway", f"segment = {seg}") == 3


async def test_list_show_state_filters_and_assignments_from_the_command_line(
        settings: Settings, tenant_a: TenantContext, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner, Result

    from core.config import reset_settings_cache
    from domain.secrets import SecretBox
    from gridgate.cli import app
    from tests.domain.conftest import make_gateway, make_meter

    seg = f"CL{serial()}"
    async with tenant_a.sessions() as session, session.begin():
        gw = await make_gateway(session, segment=seg)
        meter = await make_meter(session, SecretBox(settings, "alpha"))
    for key, value in _cli_env(settings).items():
        monkeypatch.setenv(key, value)
    reset_settings_cache()
    runner = CliRunner()

    async def cli(*args: str) -> Result:
        return await asyncio.to_thread(lambda: runner.invoke(app, list(args)))

    try:
        listed = await cli("gateway", "list", "--filter", f"segment = {seg}", "--json")
        assert listed.exit_code == 0, listed.output
        assert [g["device_id"] for g in json.loads(listed.stdout)["items"]] == [gw.device_id]
        table = await cli("gateway", "list", "--filter", f"segment = {seg}")
        assert gw.device_id in table.stdout and "DEVICE_ID" in table.stdout
        bad = await cli("gateway", "count", "--filter", "segment = ;")
        assert bad.exit_code == 2 and "invalid_filter" in bad.output
        moved = await cli("gateway", "state", gw.device_id, "pre_personalized", "--reason", "delivered")
        assert moved.exit_code == 0 and "pre_personalized" in moved.stdout
        assert (await cli("gateway", "state", gw.device_id, "in_operation")).exit_code == 2
        added = await cli("assignment", "add", "meter-gateway", meter.device_id, gw.device_id, "--from", "2024-01-01")
        assert added.exit_code == 0, added.output
        shown = json.loads((await cli("gateway", "show", gw.device_id)).stdout)
        assert [m["device_id"] for m in shown["topology"]["meters"]] == [meter.device_id]
        name = f"cli-{seg}"
        assert (await cli("filter", "save", name, f"segment = {seg}")).exit_code == 0
        assert (await cli("gateway", "count", "--saved", name)).stdout.strip() == "1"
        exported = await cli("meter", "export", "--filter", f"gateway = {gw.device_id}")
        assert exported.stdout.startswith("device_id,device_type") and meter.device_id in exported.stdout
    finally:
        reset_settings_cache()
