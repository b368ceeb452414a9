"""Configuration refuses production mode with default secrets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr, ValidationError

from core.config import Settings

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True)
def _no_secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the defaults: the suite's own secrets must not leak in."""
    monkeypatch.delenv("GRIDGATE_MASTER_KEY", raising=False)
    monkeypatch.delenv("GRIDGATE_SECRET_KEY", raising=False)


def test_production_refuses_default_secrets() -> None:
    with pytest.raises(ValidationError, match="GRIDGATE_SECRET_KEY"):
        Settings(mode="production", database_url="postgresql://db/gridgate")


def test_production_refuses_short_secrets_and_missing_database() -> None:
    strong = "x" * 40
    with pytest.raises(ValidationError, match="GRIDGATE_MASTER_KEY"):
        Settings(mode="production", secret_key=SecretStr(strong), master_key=SecretStr("short"),
                 database_url="postgresql://db/g")
    with pytest.raises(ValidationError, match="GRIDGATE_DATABASE_URL"):
        Settings(mode="production", secret_key=SecretStr(strong), master_key=SecretStr(strong))
    ok = Settings(mode="production", secret_key=SecretStr(strong), master_key=SecretStr(strong),
                  database_url="postgresql://db/g")
    assert ok.resolved_secret("secret_key") == strong.encode()


def test_development_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    s = Settings(var_dir=tmp_path)
    first = s.resolved_secret("secret_key")
    assert len(first) >= 32 and first == Settings(var_dir=tmp_path).resolved_secret("secret_key")
    assert oct((tmp_path / ".secret_key").stat().st_mode)[-3:] == "600"


def test_cli_refuses_to_start_in_production_with_defaults() -> None:
    import os
    import subprocess

    from tests.helpers import gridgate_bin

    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDGATE_")}
    env["GRIDGATE_MODE"] = "production"
    result = subprocess.run([gridgate_bin(), "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "GRIDGATE_SECRET_KEY" in lines[0]
