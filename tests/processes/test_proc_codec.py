"""Workflow payloads are encrypted per tenant in Temporal's store, and the codec endpoint shows them
to users who may read that tenant, and to nobody else."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
from google.protobuf import json_format
from temporalio.client import Client

from tests.helpers import error_code

if TYPE_CHECKING:
    from core.config import Settings
    from core.temporal_clients import TemporalClients
    from domain.tenancy.service import TenantContext
    from tests.conftest import UserFactory
    from tests.processes.conftest import GatewayFactory


async def test_payloads_are_sealed_and_only_readers_of_the_tenant_can_open_them(
    api: httpx.AsyncClient, make_user: UserFactory, make_gateways: GatewayFactory, procs: TenantContext,
    tenant_a: TenantContext, settings: Settings, temporal_clients: TemporalClients
) -> None:
    (gateway,) = await make_gateways(1)
    operator = await make_user(tenant="procs", role="operator")
    started = await api.post("/api/v1/tenants/procs/processes", headers=operator.headers, json={
        "type": "time_sync", "target": {"gateway_ids": [gateway]}, "reason": "codec check",
        "options": {"connect_timeout_s": 1, "attempts": 1}})
    assert started.status_code == 202
    pid = started.json()["id"]

    # Read the gateway workflow's history without any codec, as Temporal stores it.
    raw = Client((await temporal_clients.root()).service_client, namespace=procs.namespace)
    handle = raw.get_workflow_handle(f"time_sync/{gateway}/{pid}")
    history = None
    for _ in range(100):
        try:
            history = await handle.fetch_history()
            break
        except Exception:
            await asyncio.sleep(0.2)
    assert history is not None
    payload = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert gateway.encode() not in payload.data and b"codec check" not in payload.data
    as_json = json_format.MessageToDict(payload)

    auditor = await make_user(tenant="procs", role="auditor")
    headers = {**auditor.headers, "X-Namespace": procs.namespace}
    decoded = await api.post("/api/v1/codec/decode", json={"payloads": [as_json]}, headers=headers)
    assert decoded.status_code == 200, decoded.text
    data = decoded.json()["payloads"][0]
    import base64

    assert gateway in base64.b64decode(data["data"]).decode()

    stranger = await make_user(tenant="alpha", role="admin")
    denied = await api.post("/api/v1/codec/decode", json={"payloads": [as_json]},
                            headers={**stranger.headers, "X-Namespace": procs.namespace})
    assert denied.status_code == 404 and error_code(denied) == "tenant_not_found"
    emt = await make_user(tenant="procs", role="emt", market_partner_id="9900000000017")
    forbidden = await api.post("/api/v1/codec/decode", json={"payloads": [as_json]},
                               headers={**emt.headers, "X-Namespace": procs.namespace})
    assert forbidden.status_code == 403
    no_ns = await api.post("/api/v1/codec/decode", json={"payloads": [as_json]}, headers=auditor.headers)
    assert no_ns.status_code == 400 and error_code(no_ns) == "namespace_required"
    anonymous = await api.post("/api/v1/codec/decode", json={"payloads": [as_json]},
                               headers={"X-Namespace": procs.namespace})
    assert anonymous.status_code == 401

    # The Temporal UI cannot attach a bearer token; the login cookie (codec path only) works.
    login = await api.post("/api/v1/auth/token", data={"username": auditor.username, "password": auditor.password})
    cookie = login.cookies.get("gridgate_codec")
    assert cookie and "Path=/api/v1/codec" in login.headers["set-cookie"] and "HttpOnly" in login.headers["set-cookie"]
    via_cookie = await api.post("/api/v1/codec/decode", json={"payloads": [as_json]},
                                headers={"X-Namespace": procs.namespace, "Cookie": f"gridgate_codec={cookie}"})
    assert via_cookie.status_code == 200
    api.cookies.clear()

    # A payload of one tenant does not open with another tenant's key.
    admin_alpha = await make_user(tenant="alpha", role="admin")

    wrong = await api.post("/api/v1/codec/decode", json={"payloads": [as_json]},
                           headers={**admin_alpha.headers, "X-Namespace": f"{settings.temporal_namespace_prefix}alpha"})
    assert wrong.status_code == 400 and error_code(wrong) == "payload_not_of_this_namespace"
    await api.post(f"/api/v1/tenants/procs/processes/{pid}/cancel", headers=operator.headers)
