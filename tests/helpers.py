"""Small helpers shared by test modules (fixtures live in conftest.py files)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx


def gridgate_bin() -> str:
    """The installed ``gridgate`` console script (beside the interpreter running the tests)."""
    path = Path(sys.executable).parent / "gridgate"
    return str(path) if path.exists() else (shutil.which("gridgate") or "gridgate")


def error_code(response: httpx.Response) -> str:
    """The machine-readable code of an API error response."""
    body = response.json()
    assert "error" in body, body
    return str(body["error"]["code"])


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Assert a CLI failure is exit code 2 with exactly one ``error: ...`` line; return it."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])
