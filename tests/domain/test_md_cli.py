"""The operator's command line: import a file, see every error of a bad one. (Two process starts:
the commands themselves are thin over the services the other tests cover.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from domain.filters import count
from tests.domain.conftest import gateway_id, serial
from tests.helpers import gridgate_bin


async def _gridgate(settings, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "GRIDGATE_DATABASE_URL": settings.database_url, "GRIDGATE_VAR_DIR": str(settings.var_dir),
           "GRIDGATE_TENANT": "alpha", "GRIDGATE_LOG_LEVEL": "warning"}
    return await asyncio.to_thread(subprocess.run, [gridgate_bin(), *args], env=env, capture_output=True, text=True,
                                   timeout=60)


async def test_import_count_and_rejected_file_from_the_command_line(settings, tenant_a, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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
