"""A complete simulated fleet for end-to-end process tests: a tenant with the demo master data
(``domain.demo.seed_demo_fleet``: gateways at connection points, meters, MeLos, MaLos, two EMTs),
a test SM-PKI in its certificate store (trust, GWA identity, every gateway, the EMTs bound to the
demo market partners), wake-up addresses pointing at a simulator, one head-end node and the
simulator itself, all on real sockets.

Gateway i is ``domain.ids.demo_gateway_id(i)``. Tests take distinct gateways (``fleet.take``), so
modules sharing the fleet never see each other's effects. Build it with :func:`start_fleet`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from cryptography import x509
from sqlalchemy import update

from core.config import Settings
from core.ids import demo_gateway_id, demo_meter_count, demo_meter_id
from core.procs import free_port
from domain.demo import DEMO_GRID_OPERATOR, DEMO_SUPPLIER, demo_melo, seed_demo_fleet
from domain.tenancy.service import TenantContext
from pki.testpki import Entity, TestPki, init_test_pki

if TYPE_CHECKING:  # the head-end and the simulator are imported when a fleet starts
    from core.db import Databases
    from headend.config import HeadendSettings
    from headend.service import HeadendService
    from simulator.fleet import Fleet as SimulatedGateways
    from simulator.run import Simulator
    from simulator.state import GatewayState
    from tests.conftest import TenantFactory

# The test PKI's EMTs stand for the demo market partners (their certificates are imported for them).
EMT_OF_PARTNER = {DEMO_GRID_OPERATOR.mp_id: "emt1", DEMO_SUPPLIER.mp_id: "emt2"}
GRID_OPERATOR = DEMO_GRID_OPERATOR.mp_id
SUPPLIER = DEMO_SUPPLIER.mp_id
VENDOR_TAFS = {"THE": {1, 2, 6, 7, 9, 10}, "EMH": {1, 2, 6, 7, 8, 9, 10, 14}, "PPC": {1, 2, 6, 7}}

# Gateway lifecycle walk from in operation back to installed (test setup only).
_TO_INSTALLED = ("faulty", "in_stock", "pre_personalized", "personalized", "installed")


def meters_of(index: int) -> list[str]:
    return [demo_meter_id(index, s) for s in range(demo_meter_count(index))]


def melos_of(index: int) -> list[str]:
    return [demo_melo(index, s) for s in range(demo_meter_count(index))]


def vendor_of(index: int) -> str:
    return demo_gateway_id(index)[1:4]


@dataclass
class Fleet:
    tenant: str
    ctx: TenantContext
    settings: Settings
    pki: TestPki
    size: int
    headend: HeadendService | None = None
    sim: Simulator | None = None
    dbs: Databases | None = None
    hsettings: HeadendSettings | None = None
    taken: set[int] = field(default_factory=set)
    # the running head-end service (start_headend/stop_headend)
    _stop: asyncio.Event | None = field(default=None, init=False, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    # -- choosing gateways
    def take(self, n: int, where: Callable[[int], bool] = lambda i: True) -> list[int]:
        """``n`` gateway indices no other test has taken, matching ``where``."""
        chosen = [i for i in range(self.size) if i not in self.taken and where(i)][:n]
        assert len(chosen) == n, f"the fleet has no {n} more gateways of that kind (size {self.size})"
        self.taken.update(chosen)
        return chosen

    @staticmethod
    def gid(index: int) -> str:
        return demo_gateway_id(index)

    # -- the running parts (after start_fleet)
    @property
    def running_headend(self) -> HeadendService:
        assert self.headend is not None, "the fleet's head-end is not running"
        return self.headend

    @property
    def simulated(self) -> SimulatedGateways:
        """The simulator's gateways."""
        assert self.sim is not None and self.sim.fleet is not None, "the fleet's simulator is not running"
        return self.sim.fleet

    # -- the gateway side
    def gateway_state(self, gateway_id: str) -> GatewayState:
        return self.simulated.gateways[gateway_id].state

    def applied(self, gateway_id: str) -> dict[str, int]:
        """State-changing commands the simulated gateway applied, by kind (each command ID once)."""
        return dict(self.gateway_state(gateway_id).counters.get("applied_by_kind", {}))

    def repeated(self, gateway_id: str) -> int:
        return int(self.gateway_state(gateway_id).counters.get("repeated", 0))

    async def fault(self, gateway_id: str, kind: str, param: Any = None) -> None:
        from simulator.faults import set_fault

        await set_fault(self.simulated, gateway_id, kind, param)

    def clear_fault(self, gateway_id: str, kind: str) -> None:
        from simulator.faults import clear_fault

        clear_fault(self.simulated, gateway_id, kind)

    # -- master data
    async def move_to(self, gateway_ids: Sequence[str], state: str) -> None:
        """Walk gateways through the lifecycle to ``installed`` (the only setup tests need)."""
        from domain.devices.service import get_gateway, transition_gateway

        assert state == "installed"
        async with self.ctx.sessions() as session, session.begin():
            for gid in gateway_ids:
                gw = await get_gateway(session, gid, for_update=True)
                for step in _TO_INSTALLED:
                    await transition_gateway(session, gw, step, reason="test setup")

    async def gateway_db_state(self, gateway_id: str) -> str:
        from domain.devices.service import get_gateway

        async with self.ctx.sessions() as session:
            return (await get_gateway(session, gateway_id)).state


async def provision(settings: Settings, ctx: TenantContext, pki: TestPki, size: int, udp_port: int) -> None:
    """Master data and certificates of the fleet tenant (see the module docstring)."""
    from domain.certificates import service as certs
    from domain.devices.models import Gateway
    from domain.secrets import SecretBox
    from pki.profile import crl_urls

    cache = certs.crl_cache(ctx)
    for ca_name, cert in (("root", pki.subca), ("subca", pki.gwa.tls.cert)):
        crl = x509.load_der_x509_crl(pki.crl_path(ca_name).read_bytes())
        for url in crl_urls(cert):
            cache.put(url, crl)

    def pem(entity: Entity, keys: bool) -> bytes:
        out = b""
        for usage in ("tls", "sig", "enc"):
            cred = entity.credential(usage)
            out += cred.cert_path.read_bytes() + (cred.key_path.read_bytes() if keys else b"")
        return out

    box = SecretBox(settings, ctx.name)
    gateways = [demo_gateway_id(i) for i in range(size)]
    async with ctx.sessions() as session, session.begin():
        await seed_demo_fleet(session, size, box=box)
        await certs.import_trust(session, ctx, pki.root_path.read_bytes() + pki.subca_path.read_bytes())
        await certs.import_identity(session, settings, ctx, pem(pki.gwa, True))
        for mp_id, emt in EMT_OF_PARTNER.items():
            await certs.import_emt(session, ctx, pem(pki.emts[emt], False), mp_id)
        for gid in gateways:
            await certs.import_gateway(session, ctx, pem(pki.gateway(gid), False), gid)
        await session.execute(update(Gateway).where(Gateway.device_id.in_(gateways))
                              .values(wakeup_address=f"127.0.0.1:{udp_port}"))


async def start_fleet(settings: Settings, dbs: Databases, tenant_factory: TenantFactory, directory: Path, *,
                      tenant: str, size: int) -> Fleet:
    """Provision the tenant, then start a head-end node and the simulator for it."""
    from headend.config import HeadendSettings
    from simulator.config import SimulatorSettings
    from simulator.run import Simulator

    pki = await asyncio.to_thread(init_test_pki, directory / "pki", gateways=0)
    gateways = [demo_gateway_id(i) for i in range(size)]
    await asyncio.to_thread(pki.issue_gateways, gateway_ids=gateways)
    ctx = await tenant_factory(tenant)
    udp_port = free_port()
    await provision(settings, ctx, pki, size, udp_port)
    fleet = Fleet(tenant, ctx, settings, pki, size)

    # Fixed ports, so a restarted head-end node is where the simulated gateways look for it.
    hs = HeadendSettings(host="127.0.0.1", port=free_port(), inbound_port=free_port(), metrics_port=0,
                         node_id=f"{tenant}-n1", tenant_poll_s=0.5, history_flush_s=0.1, connect_timeout_s=15,
                         wakeup_retry_s=2, response_timeout_s=5, firmware_dir=str(directory / "firmware"))
    fleet.dbs, fleet.hsettings = dbs, hs
    await start_headend(fleet)
    _, port, inbound = fleet.running_headend.node.bound
    sim_settings = SimulatorSettings(
        gateways=size, headend=f"127.0.0.1:{port}", inbound_port=inbound, pki_dir=pki.directory,
        state_dir=directory / "sim-state", udp_port=udp_port, control_port=0, sni=f"{tenant}.gwa.gridgate.test",
        cyclic_contact_s=0, idle_timeout_s=0, async_delay_s=0.1)
    fleet.sim = Simulator(sim_settings, directory / "sim", gateway_ids=gateways)
    await fleet.sim.start()
    return fleet


async def start_headend(fleet: Fleet) -> None:
    from activities.gateway_commands import headend_activities
    from core.temporal_clients import TemporalClients
    from headend.identity import StoreIdentitySource
    from headend.service import HeadendService

    settings = fleet.settings
    assert fleet.hsettings is not None and fleet.dbs is not None, "start_fleet sets them"
    service = HeadendService(settings, fleet.hsettings, fleet.dbs, TemporalClients(settings.temporal_address),
                             StoreIdentitySource(settings), headend_activities(settings))
    fleet.headend = service
    fleet._stop = asyncio.Event()
    fleet._task = asyncio.create_task(service.run(fleet._stop))
    await asyncio.wait_for(service.ready.wait(), 60)


async def stop_headend(fleet: Fleet) -> None:
    assert fleet._stop is not None and fleet._task is not None, "start_headend first"
    fleet._stop.set()
    await asyncio.wait_for(fleet._task, 30)


async def stop_fleet(fleet: Fleet) -> None:
    if fleet.sim is not None:
        await fleet.sim.stop()
    if fleet.headend is not None:
        await stop_headend(fleet)


# -- driving processes through the API ---------------------------------------------------------

FAST = {"connect_timeout_s": 8, "attempts": 2}


async def run_process(api: httpx.AsyncClient, headers: dict[str, str], tenant: str, type_: str,
                      gateway_ids: Sequence[str], params: dict[str, Any] | None = None, *,
                      options: dict[str, Any] | None = None, timeout: float = 120) -> dict[str, Any]:
    """Start a process and wait until it ended; returns the process with its targets by gateway."""
    body = {"type": type_, "target": {"gateway_ids": list(gateway_ids)}, "params": params or {},
            "reason": f"test: {type_}", "options": {**FAST, **(options or {})}}
    started = await api.post(f"/api/v1/tenants/{tenant}/processes", json=body, headers=headers)
    assert started.status_code == 202, started.text
    return await wait_process(api, headers, tenant, started.json()["id"], timeout=timeout)


async def wait_process(api: httpx.AsyncClient, headers: dict[str, str], tenant: str, pid: str, *,
                       timeout: float = 120) -> dict[str, Any]:
    url = f"/api/v1/tenants/{tenant}/processes/{pid}"
    body: dict[str, Any] = {}
    for _ in range(int(timeout * 5)):
        body = (await api.get(url, headers=headers)).json()
        if body["state"] in ("completed", "failed", "cancelled", "paused"):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"process {pid} did not end: {body}")
    targets = (await api.get(f"{url}/targets?limit=1000", headers=headers)).json()["items"]
    body["targets"] = {t["gateway_id"]: t for t in targets}
    return body
