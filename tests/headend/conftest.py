"""Head-end fixtures: one test SM-PKI, one tenant ("hetest") with that PKI in its certificate store
and a few gateways in master data, one head-end node, and the simulator as the gateways' side, all
on real sockets. Built once per session (the tests share the fleet and use distinct gateways or
distinct command IDs, so nothing one test does hides another's effect)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509

from core.config import Settings
from core.db import Databases
from core.ids import demo_gateway_id
from core.procs import free_port
from domain.tenancy.service import TenantContext
from headend import contract as M
from pki.testpki import TestPki, init_test_pki

if TYPE_CHECKING:
    from temporalio.testing import ActivityEnvironment

    from activities.gateway_commands import GatewayCommandActivities
    from headend.service import HeadendService
    from pki.testpki import Entity
    from simulator.fleet import Fleet
    from simulator.run import Simulator
    from tests.conftest import TenantFactory

TENANT = "hetest"
SNI = f"{TENANT}.gwa.gridgate.test"
# gateway indices of the demo sequence (vendor i % 3: Theben, EMH, PPC)
GATEWAYS = [demo_gateway_id(i) for i in range(6)]
UNKNOWN_GATEWAY = demo_gateway_id(7)  # has certificates, but no master data record


def meters_of(index: int) -> list[str]:
    """The meters on gateway ``index``'s LMN (the simulator and master data agree on them)."""
    from simulator.state import meter_ids

    return meter_ids(index)


@pytest.fixture(scope="session")
def he_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    directory = tmp_path_factory.mktemp("he-pki") / "pki"
    pki = init_test_pki(directory, gateways=0)
    pki.issue_gateways(gateway_ids=[*GATEWAYS, UNKNOWN_GATEWAY])
    return pki


@dataclass
class HeTenant:
    ctx: TenantContext
    pki: TestPki
    udp_port: int


async def _provision(settings: Settings, ctx: TenantContext, pki: TestPki, udp_port: int) -> None:
    from pydantic import SecretStr

    from domain.certificates import service
    from domain.devices.schemas import GatewayCreate, MeterCreate
    from domain.devices.service import create_gateway, create_meter
    from domain.secrets import SecretBox
    from pki.profile import crl_urls
    from simulator.meters import demo_mk0

    cache = service.crl_cache(ctx)
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
    async with ctx.sessions() as session, session.begin():
        await service.import_trust(session, ctx, pki.root_path.read_bytes() + pki.subca_path.read_bytes())
        await service.import_identity(session, settings, ctx, pem(pki.gwa, True))
        for i, gid in enumerate(GATEWAYS):
            device_type = ("theben-conexa-3.0", "emh-casa", "ppc-smgw")[i % 3]
            await create_gateway(session, GatewayCreate(
                device_id=gid, device_type=device_type, wakeup_address=f"127.0.0.1:{udp_port}",
                network_segment=f"cell-{i % 2}", state="in_operation"))
            # Only some gateways' certificates are imported: the others' ENC certificate is read
            # from the gateway itself (docs/protocol.md 5).
            if i % 2 == 0:
                await service.import_gateway(session, ctx, pem(pki.gateway(gid), False), gid)
            for meter in meters_of(i):
                meter_type = "emh-ebzd" if meter[1:4] == "EMH" else "iskra-mt631"
                await create_meter(session, box, MeterCreate(device_id=meter, device_type=meter_type,
                                                             mk0=SecretStr(demo_mk0(meter).hex())))


@pytest.fixture(scope="session")
async def he_tenant(tenant_factory: TenantFactory, settings: Settings, he_pki: TestPki) -> HeTenant:
    ctx = await tenant_factory(TENANT)
    udp_port = free_port()
    await _provision(settings, ctx, he_pki, udp_port)
    return HeTenant(ctx, he_pki, udp_port)


@pytest.fixture(scope="session")
async def headend(settings: Settings, dbs: Databases, he_tenant: HeTenant,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HeadendService]:
    """A running head-end node (real listeners on free ports, Temporal workers per tenant)."""
    from activities.gateway_commands import headend_activities
    from core.temporal_clients import TemporalClients
    from headend.config import HeadendSettings
    from headend.identity import StoreIdentitySource
    from headend.service import HeadendService

    firmware_dir = tmp_path_factory.mktemp("he-firmware")
    hs = HeadendSettings(host="127.0.0.1", port=0, inbound_port=0, metrics_port=0, node_id="n1",
                         tenant_poll_s=0.5, history_flush_s=0.1, connect_timeout_s=15, wakeup_retry_s=3,
                         response_timeout_s=5, firmware_dir=str(firmware_dir), default_tenant=TENANT)
    service = HeadendService(settings, hs, dbs, TemporalClients(settings.temporal_address, settings),
                             StoreIdentitySource(settings), headend_activities(settings))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.ready.wait(), 60)
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def firmware_dir(headend: HeadendService) -> Path:
    """Where the head-end reads firmware images (the ``headend`` fixture sets a directory)."""
    assert headend.hsettings.firmware_dir is not None
    return Path(headend.hsettings.firmware_dir)


@dataclass
class HeSim:
    """The simulated gateways: the simulator and its running fleet."""

    simulator: Simulator
    fleet: Fleet


@pytest.fixture(scope="session")
async def sim(headend: HeadendService, he_tenant: HeTenant,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HeSim]:
    """The simulated gateways, pointed at the head-end."""
    from simulator.config import SimulatorSettings
    from simulator.run import Simulator

    _, port, inbound = headend.node.bound
    var = tmp_path_factory.mktemp("he-sim")
    s = SimulatorSettings(gateways=len(GATEWAYS), headend=f"127.0.0.1:{port}", inbound_port=inbound,
                          pki_dir=Path(he_tenant.pki.directory), state_dir=var / "state",
                          udp_port=he_tenant.udp_port, control_port=0, sni=SNI, cyclic_contact_s=0,
                          idle_timeout_s=0, slow_latency_s=1.0)
    simulator = Simulator(s, var, gateway_ids=list(GATEWAYS))
    await simulator.start()
    assert simulator.fleet is not None
    try:
        yield HeSim(simulator, simulator.fleet)
    finally:
        await simulator.stop()


class Acts:
    """``await acts("read_device_info", inp)``: the command activity of that name, run in an
    activity context (results differ by name, hence ``Any``)."""

    def __init__(self, activities: GatewayCommandActivities, env: ActivityEnvironment) -> None:
        self.activities = activities
        self.env = env

    async def __call__(self, name: str, inp: M.GatewayCommand) -> Any:
        return await self.env.run(getattr(self.activities, name), inp)


@pytest.fixture
def acts(headend: HeadendService) -> Acts:
    """The command activities of tenant hetest on this node, run in an activity context."""
    from temporalio.testing import ActivityEnvironment

    from activities.gateway_commands import GatewayCommandActivities

    a = GatewayCommandActivities(headend.node, TENANT, secrets_settings=headend.settings,
                                 firmware_dir=firmware_dir(headend))
    return Acts(a, ActivityEnvironment())
