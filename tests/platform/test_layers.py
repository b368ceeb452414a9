"""The layers of docs/architecture.md beyond what import-linter sees: `worker.py` is a module, not
a package, so the contracts in pyproject.toml cannot name it; nothing may import it (it is the top
of the layers, like the CLI). The contracts themselves run in `make test` (`lint-imports`)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("core", "pki", "domain", "headend", "activities", "workflows", "operations", "api", "simulator")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_package_below_the_entry_points_imports_the_worker() -> None:
    offenders = [str(p.relative_to(ROOT)) for package in PRODUCT for p in (ROOT / package).rglob("*.py")
                 if "worker" in _imports(p)]
    assert not offenders, offenders
