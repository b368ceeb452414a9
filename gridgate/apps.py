"""The application processes ``gridgate up`` runs after the infrastructure, their banner lines, and
the demo preparation they need. (Infrastructure and order: ``gridgate.supervisor``.)"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from core.config import Settings
from core.db import Databases
from core.temporal_clients import TemporalClients
from headend.config import HeadendSettings
from mdm.config import MdmSettings
from operations.bootstrap import point_demo_wakeups, start_demo_rollout
from simulator.config import SimulatorSettings


@dataclass
class AppProcess:
    """An application child: ``gridgate <args>`` in its own process."""

    name: str
    args: list[str]
    ports: list[tuple[str, int, str]] = field(default_factory=list)  # (host, port, setting)
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


DEMO_BACKFILL_DAYS = 7
DEMO_TIME_SCALE = 1440


def default_apps(settings: Settings) -> list[AppProcess]:
    h, sim = HeadendSettings(), SimulatorSettings()
    headend_ports = [(h.host, h.port, "GRIDGATE_HEADEND_PORT"),
                     (h.host, h.inbound_port, "GRIDGATE_HEADEND_INBOUND_PORT")]
    if h.metrics_port:
        headend_ports.append((h.host, h.metrics_port, "GRIDGATE_HEADEND_METRICS_PORT"))
    m = MdmSettings()
    mdm_ports = [(m.host, m.port, "GRIDGATE_MDM_PORT")]
    if m.metrics_port:
        mdm_ports.append((m.host, m.metrics_port, "GRIDGATE_MDM_METRICS_PORT"))
    return [
        AppProcess("api", ["api"], [(settings.api_host, settings.api_port, "GRIDGATE_API_PORT")]),
        AppProcess("worker", ["worker"]),
        # The test CA stands in for the SM-PKI Sub-CA: the CRL distribution points of the demo
        # certificates resolve, and renewals can be requested.
        AppProcess("testca", ["pki", "testca", "serve", str(settings.testpki_path),
                              "--port", str(settings.testca_port)],
                   [("127.0.0.1", settings.testca_port, "GRIDGATE_TESTCA_PORT")]),
        AppProcess("headend", ["headend"], headend_ports),
        # Receives the meter data the simulated gateways deliver to the demo EMTs.
        AppProcess("mdm", ["mdm"], mdm_ports),
        AppProcess("simulator", [
            "simulate", "run", "--gateways", str(settings.demo_fleet_size), "--pki", str(settings.testpki_path),
            "--state", str(sim.resolved_state_dir(settings.var_dir)), "--control-port", str(sim.control_port),
            "--meters-paired",  # the demo's master data has every gateway in operation
            # Meter data: the last week at one simulated day per minute, then in real time.
            "--backfill-days", str(DEMO_BACKFILL_DAYS), "--time-scale", str(DEMO_TIME_SCALE),
        ], [(sim.control_host, sim.control_port, "GRIDGATE_SIMULATOR_CONTROL_PORT")]),
    ]


def banner_rows(settings: Settings) -> list[tuple[str, str]]:
    h, m, sim = HeadendSettings(), MdmSettings(), SimulatorSettings()
    return [
        ("Test CA", f"{settings.testca_url}  (test SM-PKI in {settings.testpki_path})"),
        ("Head-end", f"tls://{h.host}:{h.port} (management), tls://{h.host}:{h.inbound_port} (Notify/events), "
                     f"node {h.node_id}; tenant by SNI <tenant>.{h.sni_suffix}"),
        ("Head-end metrics", f"http://{h.host}:{h.metrics_port}/metrics" if h.metrics_port else "off"),
        ("MDM receiver", f"tls://{m.host}:{m.port}{m.path}; EMT identity by SNI <mp-id>.<tenant>.{m.sni_suffix}"
                         + (f"; metrics http://{m.host}:{m.metrics_port}/metrics" if m.metrics_port else "")),
        ("Simulator", f"{settings.demo_fleet_size} gateways -> head-end {sim.headend}; wake-ups udp://"
                      f"{sim.udp_host}:{sim.udp_port}; control http://{sim.control_host}:{sim.control_port}"
                      "  (gridgate simulate status)"),
    ]


async def prepare(settings: Settings, dbs: Databases) -> None:
    """Point the demo gateways' wake-up address at the simulator's UDP socket (where master data has
    none yet), so the head-end can wake them."""
    sim = SimulatorSettings()
    await point_demo_wakeups(settings, dbs, f"{sim.udp_host}:{sim.udp_port}")


async def after_ready(settings: Settings, dbs: Databases) -> None:
    """Once everything answers: the demo's profile rollout (once), so the simulated gateways get
    their evaluation profiles and deliver meter data."""
    await start_demo_rollout(settings, dbs, TemporalClients(settings.temporal_address, settings))
