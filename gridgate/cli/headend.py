"""``gridgate headend``: run the head-end (gateway TLS listeners, wake-ups, admin protocol)."""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(add_completion=False)


@app.command("headend")
def headend(
    host: str = typer.Option(None, help="listen address (GRIDGATE_HEADEND_HOST)"),
    port: int = typer.Option(None, help="management port (GRIDGATE_HEADEND_PORT)"),
    inbound_port: int = typer.Option(None, help="Notify/event port (GRIDGATE_HEADEND_INBOUND_PORT)"),
    node_id: str = typer.Option(None, help="node ID (GRIDGATE_HEADEND_NODE_ID)"),
) -> None:
    """Run the head-end: TLS listeners for gateway connections, wake-ups, the admin protocol and
    the Temporal workers of the gateway command activities (docs/protocol.md)."""
    from activities.gateway_commands import headend_activities
    from core.config import get_settings
    from headend.config import HeadendSettings
    from headend.service import main

    given = {"host": host, "port": port, "inbound_port": inbound_port, "node_id": node_id}
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    settings = get_settings()
    main(settings, HeadendSettings(**overrides), headend_activities(settings))
