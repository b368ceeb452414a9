"""Liveness, readiness and Prometheus metrics. Public by design (no tenant data)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.deps import StateDep
from core.errors import Unauthorized

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: StateDep) -> JSONResponse:
    """Ready to serve: the control database and Temporal answer. 503 otherwise."""

    async def database() -> bool:
        try:
            async with asyncio.timeout(3), state.dbs.control.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    db_ok, temporal_ok = await asyncio.gather(database(), state.temporal.healthy())
    checks = {"database": "ok" if db_ok else "unavailable", "temporal": "ok" if temporal_ok else "unavailable"}
    ready = db_ok and temporal_ok
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(state: StateDep, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus metrics. Requires ``Bearer <GRIDGATE_METRICS_TOKEN>`` when that is configured."""
    expected = state.settings.metrics_token.get_secret_value() if state.settings.metrics_token else None
    if expected and authorization != f"Bearer {expected}":
        raise Unauthorized("metrics token required", code="not_authenticated")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
