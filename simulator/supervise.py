"""`gridgate up` runs the simulated demo fleet: ``settings.demo_fleet_size`` gateways (default 50)
with the demo test PKI (var/testpki, created and imported into the demo tenant by the bootstrap),
connecting to the head-end. Its control API port is checked before start."""

from __future__ import annotations

from gridgate.config import Settings
from gridgate.supervisor import AppProcess
from simulator.config import SimulatorSettings


def apps(settings: Settings) -> list[AppProcess]:
    sim = SimulatorSettings()
    args = ["simulate", "run", "--gateways", str(settings.demo_fleet_size), "--pki", str(settings.testpki_path),
            "--state", str(sim.resolved_state_dir(settings.var_dir)), "--control-port", str(sim.control_port),
            "--meters-paired"]  # the demo's master data has every gateway in operation
    return [AppProcess("simulator", args, [(sim.control_host, sim.control_port, "GRIDGATE_SIMULATOR_CONTROL_PORT")])]


def banner(settings: Settings) -> list[tuple[str, str]]:
    sim = SimulatorSettings()
    return [("Simulator", f"{settings.demo_fleet_size} gateways -> head-end {sim.headend}; wake-ups udp://"
                          f"{sim.udp_host}:{sim.udp_port}; control http://{sim.control_host}:{sim.control_port}"
                          "  (gridgate simulate status)")]


async def prepare(settings: Settings, dbs: object) -> None:
    """Point the demo gateways' wake-up address at the simulator's UDP socket (where master data has
    none yet), so the head-end can wake them."""
    from sqlalchemy import update

    from domain.devices.models import Gateway
    from domain.ids import demo_gateway_id
    from domain.tenancy.service import resolve

    sim = SimulatorSettings()
    tenant = await resolve(dbs, settings.demo_tenant)  # type: ignore[arg-type]
    ids = [demo_gateway_id(i) for i in range(settings.demo_fleet_size)]
    async with tenant.sessions() as session, session.begin():
        await session.execute(update(Gateway).where(Gateway.device_id.in_(ids), Gateway.wakeup_address.is_(None))
                              .values(wakeup_address=f"{sim.udp_host}:{sim.udp_port}"))
