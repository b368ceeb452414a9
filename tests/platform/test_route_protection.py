"""Every registered route is protected, except the few that are public by design.

Walks the application's routes (those of later areas included), so a new unprotected route fails
here: statically (no permission dependency declared) and dynamically (a request without a token
does not get 401).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.app import iter_api_routes
from api.deps import current_caller

if TYPE_CHECKING:
    from fastapi import FastAPI

# (method, path): why it is public.
PUBLIC = {
    ("GET", "/healthz"): "liveness probe",
    ("GET", "/readyz"): "readiness probe",
    ("GET", "/metrics"): "Prometheus scrape; bearer GRIDGATE_METRICS_TOKEN when configured, no tenant data",
    ("POST", "/api/v1/auth/token"): "login",
}
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _calls(dependant: Dependant) -> set[object]:
    found: set[object] = set()
    for dep in dependant.dependencies:
        found.add(dep.call)
        found |= _calls(dep)
    return found


def _api_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    return iter_api_routes(app)


def test_every_route_declares_authentication_and_tenant_routes_a_permission(app: FastAPI) -> None:
    routes = _api_routes(app)
    assert len(routes) > 10
    for method, path, route in routes:
        if (method, path) in PUBLIC:
            continue
        calls = _calls(route.dependant)
        authenticated = current_caller in calls or any(getattr(c, "gridgate_auth", False) for c in calls)
        assert authenticated, f"{method} {path} does not require a bearer token"
        if path.startswith("/api/v1/tenants/{tenant}"):
            perms = [getattr(c, "gridgate_permission", None) for c in calls]
            assert any(perms), f"{method} {path} declares no tenant permission (use api.deps.require)"
    for method, path in PUBLIC:
        assert any(m == method and p == path for m, p, _ in routes), f"stale PUBLIC entry {method} {path}"


async def test_every_route_answers_401_without_a_token(app: FastAPI, api: httpx.AsyncClient) -> None:
    for method, template, _ in _api_routes(app):
        if (method, template) in PUBLIC or template in DOCS:
            continue
        path = re.sub(r"\{tenant\}", "alpha", template)
        path = re.sub(r"\{[^}:]+(:path)?\}", "x1", path)
        response = await api.request(method, path)
        assert response.status_code == 401, f"{method} {path} -> {response.status_code}"
        assert response.json()["error"]["code"] == "not_authenticated"


async def test_public_routes_work_without_a_token(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "temporal": "ok"}
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200 and "gridgate_http_requests_total" in metrics.text
