"""The platform CLI against the real services: success paths, and exit code 2 + one line on errors."""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

import pytest

from core.config import Settings
from tests.helpers import gridgate_bin, one_error_line

if TYPE_CHECKING:
    from domain.tenancy.service import TenantContext
    from tests.conftest import GridgateCli


@pytest.fixture
def run(gridgate_cli: GridgateCli) -> GridgateCli:
    return gridgate_cli


_one_error_line = one_error_line


def test_tenant_create_list_and_duplicate(run: GridgateCli) -> None:
    created = run("tenant", "create", "gamma", "--display-name", "Stadtwerke Gamma")
    assert created.returncode == 0, created.stderr
    assert "namespace" in created.stdout
    listed = run("tenant", "list")
    assert listed.returncode == 0 and "gamma" in listed.stdout
    assert "tenant_exists" in _one_error_line(run("tenant", "create", "gamma"))
    assert "invalid tenant name" in _one_error_line(run("tenant", "create", "Gamma_1"))


def test_user_create_grant_reset_and_errors(run: GridgateCli, tenant_a: TenantContext) -> None:
    created = run("user", "create", "cli-operator", "--tenant", "alpha", "--role", "operator")
    assert created.returncode == 0, created.stderr
    assert "password: " in created.stdout
    assert "user_exists" in _one_error_line(run("user", "create", "cli-operator"))
    assert "invalid_role" in _one_error_line(run("user", "create", "cli-x", "--tenant", "alpha", "--role", "boss"))
    assert "tenant_not_found" in _one_error_line(
        run("user", "grant", "cli-operator", "--tenant", "nope", "--role", "admin")
    )
    given = run("user", "reset-password", "cli-operator", "--password-stdin", stdin="a-long-enough-password\n")
    assert given.returncode == 0 and "password:" not in given.stdout
    assert "weak_password" in _one_error_line(
        run("user", "reset-password", "cli-operator", "--password-stdin", stdin="short\n")
    )
    listed = run("user", "list")
    assert "cli-operator  alpha:operator" in listed.stdout


def test_unreachable_database_is_one_line_not_a_traceback(run: GridgateCli, settings: Settings) -> None:
    env_url = "postgresql://postgres@127.0.0.1:1/gridgate"
    result = subprocess.run(
        [gridgate_bin(), "tenant", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GRIDGATE_DATABASE_URL": env_url},
    )
    assert "database unreachable" in _one_error_line(result)


def test_migrate_is_idempotent(run: GridgateCli) -> None:
    first = run("migrate")
    assert first.returncode == 0, first.stderr
    assert run("migrate").returncode == 0
