"""The FastAPI application: state, middleware (request id, logging, metrics), errors, routers."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from prometheus_client import Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import AppState
from api.errors import install_error_handlers
from api.routers import (
    auth,
    certificates,
    codec,
    communications,
    emt,
    health,
    logbooks,
    masterdata,
    members,
    meterdata,
    platform,
    processes,
    schedules,
    tariffs,
)
from core import __version__
from core.config import Settings, get_settings
from core.context import set_actor, set_request_id
from core.db import Databases
from core.logging import configure_logging
from core.temporal_clients import TemporalClients

log = structlog.get_logger("gridgate.api")

HTTP_REQUESTS = Counter("gridgate_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram("gridgate_http_request_seconds", "HTTP request latency", ["method", "route"])

# Routers of later areas register here: (module, attribute).


ROUTERS = (health.router, auth.router, platform.router, members.router, certificates.router, masterdata.router,
           communications.router, processes.router, emt.router, tariffs.router, logbooks.router, codec.router,
           schedules.router, meterdata.router)


class RequestContextMiddleware:
    """Binds a request id (from ``X-Request-ID`` or new) to logs and audit, and records metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = raw if raw and raw.replace("-", "").isalnum() else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        set_request_id(request_id)
        set_actor("anonymous")
        route = _route_template(scope)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            status = status_holder["status"]
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], route).observe(elapsed)
            if route not in ("/healthz", "/readyz", "/metrics"):
                log.info("http.request", method=scope["method"], route=route, status=status,
                         ms=round(elapsed * 1000, 1))


def _route_template(scope: Scope) -> str:
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", scope["path"]))
    return "unmatched"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState(
            settings=settings,
            dbs=Databases(settings),
            temporal=TemporalClients(settings.temporal_address, settings),
            token_secret=settings.resolved_secret("secret_key"),
        )
        app.state.gridgate = state
        log.info("api.started", version=__version__)
        try:
            yield
        finally:
            await state.dbs.dispose()

    app = FastAPI(
        title="gridgate API",
        version=__version__,
        description="Gateway Administrator and Meter Data Manager for BSI TR-03109 smart metering.",
        lifespan=lifespan,
    )
    app.add_middleware(RequestContextMiddleware)
    # The Temporal UI calls the codec endpoint from the browser (another origin, same site).
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=True,
                       allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type", "X-Namespace"])
    install_error_handlers(app)
    for r in ROUTERS:
        app.include_router(r)
    return app


def iter_api_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """Every (method, full path, route) of the app, through included routers of any depth.

    FastAPI >= 0.160 keeps included routers as wrappers instead of copying their routes; this walks
    both shapes. Include-time dependencies would bypass route-level checks, so they are refused.
    """
    out: list[tuple[str, str, APIRoute]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
                    out.append((method, prefix + route.path, route))
                continue
            original = getattr(route, "original_router", None)
            if original is not None:
                context = route.include_context
                if context.dependencies:
                    raise RuntimeError("declare permissions on routes, not on include_router()")
                walk(original.routes, prefix + context.prefix)

    walk(app.routes, "")
    return out
