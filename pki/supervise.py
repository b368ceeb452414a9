"""`gridgate up` runs the test CA (stand-in for the SM-PKI Sub-CA) over the demo's test PKI, so the
CRL distribution points in the demo certificates resolve and renewals can be requested."""

from __future__ import annotations

from gridgate.config import Settings
from gridgate.supervisor import AppProcess


def apps(settings: Settings) -> list[AppProcess]:
    return [AppProcess("testca", ["pki", "testca", "serve", str(settings.testpki_path),
                                  "--port", str(settings.testca_port)],
                       [("127.0.0.1", settings.testca_port, "GRIDGATE_TESTCA_PORT")])]


def banner(settings: Settings) -> list[tuple[str, str]]:
    return [("Test CA", f"{settings.testca_url}  (test SM-PKI in {settings.testpki_path})")]
