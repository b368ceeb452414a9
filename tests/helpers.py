"""Small helpers shared by test modules (fixtures live in conftest.py files)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def gridgate_bin() -> str:
    """The installed ``gridgate`` console script (beside the interpreter running the tests)."""
    path = Path(sys.executable).parent / "gridgate"
    return str(path) if path.exists() else (shutil.which("gridgate") or "gridgate")


def error_code(response) -> str:  # type: ignore[no-untyped-def]
    """The machine-readable code of an API error response."""
    body = response.json()
    assert "error" in body, body
    return str(body["error"]["code"])
