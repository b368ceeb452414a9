"""The simulator's control API: JSON over HTTP/1.1 on 127.0.0.1 (h11, no framework needed).

Routes (docs/simulator.md has examples):

    GET    /status                                   fleet summary, process CPU time and RSS
    GET    /gateways?offset=0&limit=100&connected=1  gateways with connection state and faults
    GET    /gateways/{id}                            one gateway: state, faults, counters, wake-up address
    GET    /gateways/{id}/commands                   remembered command IDs (newest first)
    GET    /gateways/{id}/logs/{log}?from=1&limit=100
    GET    /gateways/{id}/meters/{meter}/readings?from=<time>&to=<time>   15-minute values
    PUT    /gateways/{id}/faults/{kind}              body {"param": ..., "since": <time>} (both optional)
    DELETE /gateways/{id}/faults/{kind}
    PUT    /fleet/faults                             body {"offline_pct": X, "flaky_pct": Y, "shares": {kind: pct}}
    GET    /gateways/{id}/deliveries?limit=&state=   meter data deliveries to EMTs, newest first
    POST   /gateways/{id}/deliveries                 body {"profile": ID, "reason": R}: deliver now (TAF 6/9)
    POST   /gateways/{id}/contact                    body {"reason": "cyclic"}: connect now
    POST   /gateways/{id}/events                     body {"code", "level", "text", "meter"}: raise an alarm
    GET    /counters                                 applied/repeated counters of every gateway
    GET    /firmware/{FLAG}/{version}?size=N&product=P&signer=FLAG   a signed firmware image (bytes)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil

from simulator.deliveries import DeliveryError
from simulator.faults import FaultError, clear_fault, set_fault, set_fleet_faults
from simulator.firmware import build_image, image_id
from simulator.fleet import Fleet
from simulator.httpserver import Request, Response, serve_connection
from simulator.meters import INTERVAL_S, MeterModel
from simulator.readings import reading
from simulator.runtime import GatewayRuntime
from simulator.state import LOGS
from simulator.vendors import VENDORS
from simulator.xmlcodec import Malformed, fmt_time, parse_time

Route = Callable[[Request, re.Match[str]], Awaitable[Response]]


def _json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data, default=str).encode(), [("Content-Type", "application/json")])


def _err(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": {"code": code, "message": message}})


def _time(text: str | None, default: float) -> float:
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        return parse_time(text)


def process_stats(started_at: float) -> dict[str, Any]:
    p = psutil.Process(os.getpid())
    cpu = p.cpu_times()
    return {"pid": p.pid, "cpu_user_s": round(cpu.user, 3), "cpu_system_s": round(cpu.system, 3),
            "cpu_s": round(cpu.user + cpu.system, 3), "rss_bytes": p.memory_info().rss,
            "uptime_s": round(time.time() - started_at, 1)}


class ControlApi:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.routes: list[tuple[str, re.Pattern[str], Route]] = [
            ("GET", re.compile(r"^/status$"), self.status),
            ("GET", re.compile(r"^/counters$"), self.counters),
            ("GET", re.compile(r"^/gateways$"), self.list_gateways),
            ("GET", re.compile(r"^/gateways/(?P<gid>[^/]+)$"), self.gateway),
            ("GET", re.compile(r"^/gateways/(?P<gid>[^/]+)/commands$"), self.commands),
            ("GET", re.compile(r"^/gateways/(?P<gid>[^/]+)/logs/(?P<log>[a-z]+)$"), self.logs),
            ("GET", re.compile(r"^/gateways/(?P<gid>[^/]+)/meters/(?P<meter>[^/]+)/readings$"), self.readings),
            ("PUT", re.compile(r"^/gateways/(?P<gid>[^/]+)/faults/(?P<kind>[a-z_]+)$"), self.put_fault),
            ("DELETE", re.compile(r"^/gateways/(?P<gid>[^/]+)/faults/(?P<kind>[a-z_]+)$"), self.delete_fault),
            ("PUT", re.compile(r"^/fleet/faults$"), self.fleet_faults),
            ("GET", re.compile(r"^/gateways/(?P<gid>[^/]+)/deliveries$"), self.list_deliveries),
            ("POST", re.compile(r"^/gateways/(?P<gid>[^/]+)/deliveries$"), self.deliver_now),
            ("POST", re.compile(r"^/gateways/(?P<gid>[^/]+)/contact$"), self.contact),
            ("POST", re.compile(r"^/gateways/(?P<gid>[^/]+)/events$"), self.event),
            ("GET", re.compile(r"^/firmware/(?P<flag>[A-Z]{3})/(?P<version>[0-9A-Za-z.\-]+)$"), self.firmware),
        ]
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._serve, host, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, self.dispatch, max_body=1024 * 1024, idle_timeout=60)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def dispatch(self, req: Request) -> Response:
        allowed = False
        for method, pattern, route in self.routes:
            m = pattern.fullmatch(req.path)
            if m is None:
                continue
            allowed = True
            if method == req.method:
                try:
                    return await route(req, m)
                except (FaultError, DeliveryError) as err:
                    return _err(404 if err.code.startswith("unknown") else 422, err.code, str(err))
                except (ValueError, Malformed) as err:
                    return _err(422, "bad_request", str(err))
        return _err(405, "method_not_allowed", req.method) if allowed else _err(404, "not_found", req.path)

    def _rt(self, gid: str) -> GatewayRuntime:
        rt = self.fleet.gateways.get(gid.upper())
        if rt is None:
            raise FaultError("unknown_gateway", f"gateway {gid} is not simulated here")
        return rt

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        if not req.body:
            return {}
        data = json.loads(req.body)
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        return data

    # -- routes
    async def status(self, req: Request, m: re.Match[str]) -> Response:
        f = self.fleet
        totals: dict[str, int] = {}
        for rt in f.gateways.values():
            for k in ("applied", "repeated", "rejected", "dropped", "wakeups_accepted", "contact_failures",
                      "alarms_sent", "notifies_sent", "requests"):
                totals[k] = totals.get(k, 0) + int(rt.state.counters.get(k, 0))
        return _json(200, {
            "gateways": len(f.gateways), "connected": f.contacts.connected,
            "wakeup_mode": f.settings.wakeup_mode, "wakeup_address": f"{f.settings.udp_host}:{f.wakeup_port}"
            if f.wakeup_port else None, "headend": f.settings.headend,
            "fleet_faults": {"offline_pct": f.faults.offline_pct, "flaky_pct": f.faults.flaky_pct,
                             "shares": dict(f.faults.shares)},
            "faulty": sum(1 for rt in f.gateways.values() if rt.state.faults),
            "unrouted_wakeups": f.unrouted_wakeups, "outbox": sum(len(rt.outbox) for rt in f.gateways.values()),
            "totals": totals, "deliveries": self._delivery_summary(), "process": process_stats(f.started_at),
            "store": f.store.stats(),
            "startup_s": f.startup_s,
        })

    def _delivery_summary(self) -> dict[str, Any]:
        f = self.fleet
        now = time.time()
        by_kind: dict[str, int] = {}
        for rt in f.gateways.values():
            for k, n in rt.state.counters.get("deliveries", {}).items():
                by_kind[k] = by_kind.get(k, 0) + int(n)
        pace = f.deliveries.pace
        return {"enabled": f.settings.deliveries, "pending": sum(len(rt.emt_pending) for rt in f.gateways.values()),
                "connections": f.emt_outbox.open_connections, "counters": by_kind,
                "time_scale": pace.scale, "backfill_days": f.settings.backfill_days,
                "simulated_time": fmt_time(pace.now(now)), "caught_up": pace.caught_up(now)}

    async def counters(self, req: Request, m: re.Match[str]) -> Response:
        return _json(200, {gid: {k: rt.state.counters.get(k) for k in ("applied", "applied_by_kind", "repeated",
                                                                        "wakeups_accepted", "wakeups_ignored")}
                           for gid, rt in self.fleet.gateways.items()})

    def _summary(self, rt: GatewayRuntime) -> dict[str, Any]:
        gw, f = rt.state, self.fleet
        return {"id": gw.gateway_id, "index": gw.index, "vendor": rt.vendor.name, "state": gw.device_state,
                "firmware": gw.firmware.get("active"), "connected": rt.management is not None,
                "faults": f.faults.all_in_force(gw), "meters": list(gw.meters),
                "wakeup_address": f"{f.settings.udp_host}:{rt.wakeup_port or f.wakeup_port}"}

    async def list_gateways(self, req: Request, m: re.Match[str]) -> Response:
        q = req.query
        offset, limit = int(q.get("offset", 0)), min(int(q.get("limit", 100)), 10_000)
        rts = list(self.fleet.gateways.values())
        if q.get("connected") in ("1", "true"):
            rts = [rt for rt in rts if rt.management is not None]
        return _json(200, {"total": len(rts), "items": [self._summary(rt) for rt in rts[offset:offset + limit]]})

    async def gateway(self, req: Request, m: re.Match[str]) -> Response:
        rt = self._rt(m["gid"])
        gw = rt.state
        doc = gw.to_doc()
        doc.pop("wakeup", None)
        t = doc.get("firmware", {}).get("transfer")
        return _json(200, {**self._summary(rt), **doc, "firmware": {**gw.firmware, "transfer": t},
                           "clock_offset_s": round(gw.clock_offset(), 3), "gateway_time": fmt_time(gw.gateway_time()),
                           "vendor_capabilities": rt.vendor.to_dict(), "outbox": len(rt.outbox),
                           "deliveries_pending": len(rt.emt_pending),
                           "connected_since": rt.connected_since})

    async def commands(self, req: Request, m: re.Match[str]) -> Response:
        rt = self._rt(m["gid"])
        return _json(200, self.fleet.store.commands(rt.state.gateway_id, int(req.query.get("limit", 100))))

    async def logs(self, req: Request, m: re.Match[str]) -> Response:
        rt = self._rt(m["gid"])
        if m["log"] not in LOGS:
            raise FaultError("unknown_log", f"log is one of {', '.join(LOGS)}")
        rt.state.flush(self.fleet.store)
        entries = self.fleet.store.logs(rt.state.gateway_id, m["log"], from_recno=int(req.query.get("from", 1)),
                                        limit=int(req.query.get("limit", 100)))
        return _json(200, [e.to_dict() for e in entries])

    async def readings(self, req: Request, m: re.Match[str]) -> Response:
        rt = self._rt(m["gid"])
        gw, meter = rt.state, m["meter"].upper()
        if meter not in gw.meters:
            raise FaultError("unknown_meter", f"meter {meter} is not on the LMN of {gw.gateway_id}")
        now = gw.gateway_time()
        start = _time(req.query.get("from"), now - 86400)
        end = _time(req.query.get("to"), now)
        k0, k1 = int(start // INTERVAL_S), int(end // INTERVAL_S)
        if k1 - k0 > 96 * 62:
            raise ValueError("at most 62 days per request")
        model = MeterModel(meter, gw.seed)
        faults = self.fleet.faults.all_in_force(gw)
        out = []
        for k in range(k0, k1):
            r = reading(gw, model, k, faults)
            out.append({"time": fmt_time(k * INTERVAL_S), "import_wh": r.import_wh, "export_wh": r.export_wh,
                        "status": f"{r.status:016x}"})
        return _json(200, {"meter": meter, "prosumer": model.prosumer, "annual_kwh": round(model.annual_kwh),
                           "readings": out})

    async def put_fault(self, req: Request, m: re.Match[str]) -> Response:
        body = self._body(req)
        since = _time(str(body["since"]), 0.0) if body.get("since") not in (None, "") else None
        fault = await set_fault(self.fleet, m["gid"], m["kind"], body.get("param"), since=since)
        return _json(200, {"gateway": m["gid"].upper(), "fault": m["kind"], **fault})

    async def delete_fault(self, req: Request, m: re.Match[str]) -> Response:
        existed = clear_fault(self.fleet, m["gid"], m["kind"])
        return _json(200, {"gateway": m["gid"].upper(), "fault": m["kind"], "cleared": existed})

    async def fleet_faults(self, req: Request, m: re.Match[str]) -> Response:
        b = self._body(req)
        shares = b.get("shares") or {}
        if not isinstance(shares, dict):
            raise ValueError("shares must be an object {kind: percent}")
        return _json(200, set_fleet_faults(self.fleet, b.get("offline_pct"), b.get("flaky_pct"),
                                           {str(k): float(v) for k, v in shares.items()}))

    async def list_deliveries(self, req: Request, m: re.Match[str]) -> Response:
        rt = self._rt(m["gid"])
        rows = self.fleet.store.deliveries(rt.state.gateway_id, min(int(req.query.get("limit", 100)), 10_000),
                                           req.query.get("state") or None)
        return _json(200, [{"id": r.id, "profile": r.profile, "recipient": r.recipient, "taf": r.taf,
                            "reason": r.reason, "uri": r.uri, "cid": r.cid, "entries": r.entries,
                            "period_start": fmt_time(r.period_start) if r.period_start is not None else None,
                            "period_end": fmt_time(r.period_end) if r.period_end is not None else None,
                            "created": fmt_time(r.created), "state": r.state, "attempts": r.attempts,
                            "status": r.status, "detail": r.detail, "next_at": fmt_time(r.next_at),
                            "done_at": fmt_time(r.done_at) if r.done_at is not None else None} for r in rows])

    async def deliver_now(self, req: Request, m: re.Match[str]) -> Response:
        b = self._body(req)
        if not b.get("profile"):
            raise ValueError("body needs {\"profile\": <evaluation profile ID>}")
        ids = self.fleet.deliveries.deliver_now(m["gid"], str(b["profile"]), b.get("reason") or None)
        return _json(202, {"gateway": m["gid"].upper(), "profile": b["profile"], "deliveries": ids})

    async def contact(self, req: Request, m: re.Match[str]) -> Response:
        rt = self._rt(m["gid"])
        started = self.fleet.contacts.contact(rt, str(self._body(req).get("reason", "control")))
        return _json(202 if started else 200, {"gateway": rt.state.gateway_id, "started": started,
                                               "connected": rt.management is not None})

    async def event(self, req: Request, m: re.Match[str]) -> Response:
        rt = self._rt(m["gid"])
        b = self._body(req)
        code, level = str(b.get("code", "other")), int(b.get("level", 3))
        text = str(b.get("text", code.replace("_", " ")))
        entry = rt.state.log("system", level, 1, text)
        self.fleet.outbox.raise_event(rt.state, code, level, text, record=entry, meter=b.get("meter"))
        return _json(202, {"gateway": rt.state.gateway_id, "queued": len(rt.outbox)})

    async def firmware(self, req: Request, m: re.Match[str]) -> Response:
        vendor = VENDORS.get(m["flag"])
        if vendor is None:
            raise FaultError("unknown_vendor", f"vendor flag is one of {', '.join(VENDORS)}")
        q = req.query
        size = int(q.get("size", 256 * 1024))
        if not 1 <= size <= 16 * 1024 * 1024:
            raise ValueError("size must be 1..16 MiB")
        signer = VENDORS.get(q["signer"]) if q.get("signer") else None
        data = await asyncio.to_thread(build_image, self.fleet.creds, vendor, m["version"], size,
                                       product=q.get("product"), signer=signer)
        return Response(200, data, [("Content-Type", "application/octet-stream"),
                                    ("x-Image-ID", image_id(vendor, m["version"]))])
