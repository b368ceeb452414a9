"""Reception of what gateways POST on inbound connections (docs/protocol.md sections 7 and 8):
Notifies, which complete a command the gateway answered with ``202`` (matched by ``x-CID`` to the
:class:`PendingNotify` the admin client registered), and events, stored before they are
acknowledged. Every inbound request lands in the communication history."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from core.ids import InvalidId, parse_device_id
from headend import xmlcodec as X
from headend.admission import Admission
from headend.config import HeadendSettings
from headend.connection import HttpRequest
from headend.endpoints import GatewayMismatch
from headend.metrics import HeadendMetrics, protocol_violation
from headend.store import HeadendStore

log = structlog.get_logger("headend.reception")


@dataclass
class PendingNotify:
    tenant: str
    gateway_id: str
    command: str
    future: asyncio.Future[tuple[int, X.ET.Element | None]]


class Reception:
    def __init__(self, settings: HeadendSettings, store: HeadendStore, metrics: HeadendMetrics) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.pending: dict[str, PendingNotify] = {}

    # ------------------------------------------------------------------ Notifies awaited
    def expect_notify(self, tenant: str, gateway_id: str, command: str, cid: str) -> PendingNotify:
        fut: asyncio.Future[tuple[int, X.ET.Element | None]] = asyncio.get_running_loop().create_future()
        p = PendingNotify(tenant, gateway_id, command, fut)
        self.pending[cid] = p
        return p

    def forget_notify(self, cid: str) -> None:
        self.pending.pop(cid, None)

    # ------------------------------------------------------------------ inbound requests
    async def handle(self, a: Admission, peer: str, req: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one request of an inbound connection: (status, headers, body)."""
        t0 = time.monotonic()
        ep = a.tenant
        cid = req.headers.get("x-cid", "")
        path = req.target.split("?", 1)[0].rstrip("/")
        kind = "notify" if path.endswith("/notify") else "event" if path.endswith("/events") else "unknown"
        status, result = await self._inbound(a, peer, req, kind, cid)
        self.store.communication(ep.name, gateway_id=a.gateway_id, direction="in", command=kind, method=req.method,
                                 path=req.target[:400], correlation_id=cid[:45] or None,
                                 command_id=(req.headers.get("x-command-id") or None), status=status, result=result,
                                 duration_ms=int((time.monotonic() - t0) * 1000), bytes_in=len(req.body))
        headers = [("x-CID", cid)] if cid else []
        return status, headers, b""

    def _violation(self, tenant: str, gateway_id: str, peer: str, reason: str, detail: str) -> None:
        protocol_violation(self.metrics, tenant, gateway_id, peer, reason, detail)

    async def _inbound(self, a: Admission, peer: str, req: HttpRequest, kind: str, cid: str) -> tuple[int, str]:
        ep = a.tenant
        if req.method != "POST" or kind == "unknown":
            return 404, "not_found"
        if not req.body:
            self._violation(ep.name, a.gateway_id, peer, "malformed", f"{kind} without body")
            return 400, "malformed"
        try:
            root = ep.open(req.body, a.gateway_id, self.settings.max_body_bytes)
        except GatewayMismatch as err:
            self._violation(ep.name, a.gateway_id, peer, "gateway_mismatch", str(err))
            return 403, "gateway_mismatch"
        except Exception as err:  # CmsError, XmlError
            self._violation(ep.name, a.gateway_id, peer, "malformed", f"{kind}: {err}")
            return 400, "malformed"
        if kind == "notify":
            return self._notify(a, peer, root, cid)
        return await self._events(a, peer, root, cid)

    def _notify(self, a: Admission, peer: str, root: X.ET.Element, cid: str) -> tuple[int, str]:
        tenant = a.tenant.name
        if X.local(root) != "notify":
            self._violation(tenant, a.gateway_id, peer, "malformed", f"<{X.local(root)}> is not <notify>")
            return 400, "malformed"
        pending = self.pending.get(cid)
        if pending is None:
            self.metrics.notifies.labels(tenant=tenant, outcome="unknown_cid").inc()
            self._violation(tenant, a.gateway_id, peer, "unknown_cid", f"Notify for unknown CID {cid!r}")
            return 404, "unknown_cid"
        if pending.tenant != tenant or pending.gateway_id != a.gateway_id:
            self.metrics.notifies.labels(tenant=tenant, outcome="gateway_mismatch").inc()
            self._violation(tenant, a.gateway_id, peer, "gateway_mismatch",
                            f"Notify for CID {cid} of gateway {pending.gateway_id}")
            return 403, "gateway_mismatch"
        try:
            status = X.req_int(root, "status")
        except X.XmlError as err:
            self._violation(tenant, a.gateway_id, peer, "malformed", str(err))
            return 400, "malformed"
        if not pending.future.done():
            pending.future.set_result((status, X.only_child(root)))
        self.metrics.notifies.labels(tenant=tenant, outcome="accepted").inc()
        return 204, "ok"

    async def _events(self, a: Admission, peer: str, root: X.ET.Element, cid: str) -> tuple[int, str]:
        tenant = a.tenant.name
        if X.local(root) != "events":
            self._violation(tenant, a.gateway_id, peer, "malformed", f"<{X.local(root)}> is not <events>")
            return 400, "malformed"
        rows: list[dict[str, Any]] = []
        try:
            for ev in X.children(root, "event")[:100]:
                event_id = X.req(ev, "id")
                uuid.UUID(event_id)
                level = X.req_int(ev, "level")
                if not 1 <= level <= 4:
                    raise X.XmlError(f"level {level} outside 1..4")
                meter = ev.get("meter")
                if meter:
                    parse_device_id(meter)
                rows.append(dict(event_id=event_id, gateway_id=a.gateway_id, code=X.req(ev, "code")[:40],
                                 vendor_code=(ev.get("vendorCode") or None), level=level,
                                 occurred_at=X.parse_time(X.req(ev, "time")), meter_id=meter or None,
                                 log=(ev.get("log") or None), record=X.opt_int(ev, "record"), text=X.text(ev)[:4000],
                                 correlation_id=cid[:45] or None))
        except (X.XmlError, ValueError, InvalidId) as err:
            self._violation(tenant, a.gateway_id, peer, "malformed", f"events: {err}")
            return 400, "malformed"
        await self.store.store_events(a.tenant.context, rows)
        for r in rows:
            self.metrics.events.labels(tenant=tenant, code=r["code"]).inc()
        log.info("headend.events_received", tenant=tenant, gateway=a.gateway_id, count=len(rows),
                 codes=sorted({str(r["code"]) for r in rows}))
        return 204, "ok"
