"""`gridgate cert ...` against the real services."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pki.testpki import TestPki
from tests.helpers import one_error_line

if TYPE_CHECKING:
    from tests.conftest import GridgateCli


def test_cert_cli_imports_lists_and_refuses_garbage(gridgate_cli: GridgateCli, test_pki: TestPki,
                                                    tmp_path: Path) -> None:
    trust = tmp_path / "trust.pem"
    trust.write_bytes(test_pki.root_path.read_bytes() + test_pki.subca_path.read_bytes())
    created = gridgate_cli("tenant", "create", "certcli")
    assert created.returncode == 0, created.stderr
    ok = gridgate_cli("cert", "import-trust", str(trust), "--tenant", "certcli")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("imported") == 2
    again = gridgate_cli("cert", "import-trust", str(trust), "--tenant", "certcli")
    assert "unchanged 2" in again.stdout

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert "(malformed)" in one_error_line(gridgate_cli("cert", "import-emt", str(garbage), "--tenant", "certcli"))
    assert "cannot read" in one_error_line(gridgate_cli("cert", "import-emt", str(tmp_path / "missing.pem"),
                                                        "--tenant", "certcli"))
    assert "tenant_not_found" in one_error_line(gridgate_cli("cert", "list", "--tenant", "nope"))
    listed = gridgate_cli("cert", "list", "--tenant", "certcli", "--owner", "trust")
    assert listed.returncode == 0 and listed.stdout.count("trust") == 2
