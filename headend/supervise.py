"""Contract with ``gridgate up`` (gridgate/supervisor.py OPTIONAL_AREAS): the head-end process and
its banner lines."""

from __future__ import annotations

from gridgate.config import Settings
from gridgate.supervisor import AppProcess
from headend.config import HeadendSettings


def apps(settings: Settings) -> list[AppProcess]:
    h = HeadendSettings()
    ports = [(h.host, h.port, "GRIDGATE_HEADEND_PORT"), (h.host, h.inbound_port, "GRIDGATE_HEADEND_INBOUND_PORT")]
    if h.metrics_port:
        ports.append((h.host, h.metrics_port, "GRIDGATE_HEADEND_METRICS_PORT"))
    return [AppProcess("headend", ["headend"], ports)]


def banner(settings: Settings) -> list[tuple[str, str]]:
    h = HeadendSettings()
    return [
        ("Head-end", f"tls://{h.host}:{h.port} (management), tls://{h.host}:{h.inbound_port} (Notify/events), "
                     f"node {h.node_id}; tenant by SNI <tenant>.{h.sni_suffix}"),
        ("Head-end metrics", f"http://{h.host}:{h.metrics_port}/metrics" if h.metrics_port else "off"),
    ]
