"""``gridgate mdm``: run the MDM receiver (meter data deliveries of gateways to the tenants' EMTs)."""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(add_completion=False)


@app.command("mdm")
def mdm(
    host: str = typer.Option(None, help="listen address (GRIDGATE_MDM_HOST)"),
    port: int = typer.Option(None, help="delivery port (GRIDGATE_MDM_PORT)"),
    metrics_port: int = typer.Option(None, help="Prometheus port, 0 = off (GRIDGATE_MDM_METRICS_PORT)"),
) -> None:
    """Run the MDM receiver: one TLS endpoint for every EMT identity of every tenant, chosen by SNI
    <mp-id>.<tenant>.<suffix>; stores what gateways deliver and answers once it is durable
    (docs/mdm.md, docs/protocol.md section 14)."""
    from core.config import get_settings
    from mdm.config import MdmSettings
    from mdm.service import main

    given = {"host": host, "port": port, "metrics_port": metrics_port}
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    main(get_settings(), MdmSettings(**overrides))
