"""docker-compose.yml is the documented production topology: valid Compose, and every gridgate
service runs a command the gridgate CLI really has."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.helpers import gridgate_bin

ROOT = Path(__file__).resolve().parents[2]
ENV = {"POSTGRES_PASSWORD": "pw", "GRIDGATE_SECRET_KEY": "s" * 40, "GRIDGATE_MASTER_KEY": "m" * 40}


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:?message}`` (required) and ``${NAME:-default}``."""
    def sub(m: re.Match[str]) -> str:
        name, modifier, default = m.group(1), m.group(2), m.group(3)
        if name in env:
            return env[name]
        if modifier in (":-", "-"):
            return default
        raise AssertionError(f"compose file needs ${name}")

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:?[?-])([^}]*))?\}", sub, text)


def _compose() -> dict[str, Any]:
    return yaml.safe_load(_interpolate((ROOT / "docker-compose.yml").read_text(), ENV))


def test_compose_file_validates_against_the_compose_spec() -> None:
    schema = json.loads((ROOT / "tests" / "data" / "compose_spec.json").read_text())
    jsonschema.validate(_compose(), schema)


def test_compose_has_the_production_services_and_real_commands() -> None:
    services = _compose()["services"]
    assert {"postgres", "temporal", "temporal-ui", "api", "worker", "migrate", "mdm"} <= set(services)
    assert services["temporal"]["image"].startswith("temporalio/auto-setup")
    for name, svc in services.items():
        if svc.get("image", "").startswith("gridgate"):
            assert svc["environment"]["GRIDGATE_MODE"] == "production"
            command = svc["command"][0]
            result = subprocess.run([gridgate_bin(), command, "--help"], capture_output=True, text=True,
                                    timeout=60, env={**os.environ, **ENV})
            assert result.returncode == 0, f"service {name}: `gridgate {command}` does not exist"
        for mount in svc.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["gridgate"]' in dockerfile
