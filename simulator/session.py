"""One request on a gateway's management connection, as the gateway's HTTP server sees it
(docs/protocol.md sections 4-7 and 9): Host and URI checks, CMS opening with the signer check,
the ``x-Command-ID`` table, faults, dispatch to the handler, persistence, sealing the answer.

Only what the gateway understood is remembered per command ID: a request whose URI, CMS container
or XML cannot be understood is answered with its error but not stored (nothing was executed, and
storing it would turn a later correct request with that ID into a ``command_conflict``). Errors the
handler raises (the command was understood and refused) are stored and replayed, except
``503 busy``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import xml.etree.ElementTree as ET  # types only; parsing goes through defusedxml
from typing import Protocol

from pki import cms
from pki.profile import Role, role_of
from simulator import imagetransfer, profiles  # noqa: F401 - register their handlers
from simulator import xmlcodec as X
from simulator.commands import HANDLERS, Ctx, GatewayServices, Handler, Later, Outcome
from simulator.errors import CommandError, error_element
from simulator.fleetfaults import FleetFaults
from simulator.httpserver import Request, Response
from simulator.meters import unit
from simulator.runtime import GatewayRuntime
from simulator.store import CommandRecord, DeliveryRow

CONTENT_TYPE = "application/vnd.de-dke-k461-cosem+xml;encap=cms-tr03109"
TARGET_RE = re.compile(r"^/cosem/ldevs/([^/?]+)/objects/(\d{1,5}-[0-9a-f]{12})/(attributes|methods)/(-?\d{1,3})$")
COMMAND_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_OBJECTS = {key[1] for key in HANDLERS}
_BY_KIND = {name: fn for name, fn in HANDLERS.values()}


def handler_of_kind(kind: str) -> Handler | None:
    """The handler of a command kind (``pair_meter``, ...): a running command resumed after a
    restart has its stored request and kind, not a route."""
    return _BY_KIND.get(kind)


class SessionServices(GatewayServices, Protocol):
    """What serving a management connection needs of the fleet beyond what its handlers use."""

    faults: FleetFaults

    def start_job(self, rt: GatewayRuntime, command_id: str, name: str, later: Later,
                  deliveries: list[DeliveryRow] | None = None) -> None:
        """Run the work of a command answered with 202; its Notify follows. ``deliveries``: the
        list its work fills with the meter data deliveries it starts (stored with its result)."""


class Session:
    """Serves the management connection of one gateway."""

    def __init__(self, fleet: SessionServices, rt: GatewayRuntime) -> None:
        self.fleet = fleet
        self.rt = rt

    async def handle(self, req: Request) -> Response:
        fleet, gw = self.fleet, self.rt.state
        gw.count("requests")
        cid = req.header("x-cid") or ""
        slow = fleet.faults.in_force(gw, "slow")
        if slow is not None:
            await asyncio.sleep(float(slow.get("param") or fleet.settings.slow_latency_s))
        now = time.time()
        changing = req.method in ("PUT", "POST")
        command_id = req.header("x-command-id")
        digest = payload = None
        try:
            name, fn = self._route(req)
            if changing and (not command_id or not COMMAND_ID_RE.fullmatch(command_id)):
                raise CommandError("malformed", "x-Command-ID missing or not 1-64 of [A-Za-z0-9._:-]")
            payload, body = self._open(req)
        except CommandError as err:
            return self._answer(cid, Outcome(err.status, error_element(gw.gateway_id, err)))
        if changing:
            assert command_id is not None
            digest = hashlib.sha256(f"{req.method} {req.path}\n".encode() + (payload or b"")).hexdigest()
            rec = fleet.store.command(gw.gateway_id, command_id)
            if rec is not None:
                return self._repeat(req, cid, rec, digest)
        ctx = Ctx(gw=gw, fleet=fleet, method=req.method, query=req.query, command_id=command_id, now=now)
        try:
            rejected = fleet.faults.in_force(gw, "reject")
            if changing and rejected is not None and rejected.get("param") in (None, "", name):
                raise CommandError("rejected", f"{name} refused by the gateway (fault reject)")
            outcome = fn(ctx, body)
        except CommandError as err:
            gw.count("rejected")
            outcome = Outcome(err.status, error_element(gw.gateway_id, err))
        except X.Malformed as err:
            gw.count("rejected")
            outcome = Outcome(400, error_element(gw.gateway_id, CommandError("malformed", str(err))))
        if changing and outcome.status != 503:
            assert command_id is not None and digest is not None
            if 200 <= outcome.status < 300 and outcome.status != 202:
                gw.count("applied")
                gw.count("applied_by_kind", name)
            record = CommandRecord(
                command_id=command_id, kind=name, digest=digest,
                state="running" if outcome.status == 202 else "completed", status=outcome.status,
                xml=X.to_bytes(outcome.xml) if outcome.xml is not None else b"", cid=cid,
                contact_uri=req.header("x-contacturi") or "", at=now, request=payload or b"",
            )
            stored = gw.persist(fleet.store, result=record, chunks=ctx.chunks, drop_image=ctx.drop_image,
                                deliveries=ctx.deliveries if outcome.later is None and outcome.status < 300 else ())
            if stored:
                fleet.deliveries_queued(gw, stored)
            if outcome.later is not None:
                fleet.start_job(self.rt, command_id, name, outcome.later, ctx.deliveries)
            if self._flaky_drop(command_id):
                gw.count("dropped")
                gw.persist(fleet.store)
                return Response(0, drop=True)
        else:
            if gw.pending_logs:
                gw.persist(fleet.store)
            if not changing and self._flaky_drop(None):
                gw.count("dropped")
                return Response(0, drop=True)
        return self._answer(cid, outcome)

    # -- steps
    def _route(self, req: Request) -> tuple[str, Handler]:
        gw = self.rt.state
        ldev = f"{gw.gateway_id.lower()}.sm"
        host = req.header("host")
        if host is not None and host.lower() != ldev:
            raise CommandError("rejected", f"Host {host} is not this gateway")
        m = TARGET_RE.fullmatch(req.path)
        if not m or m.group(1) != ldev or m.group(2) not in _OBJECTS:
            raise CommandError("not_found", f"{req.path} is not exposed on this connection")
        if req.method not in ("GET", "PUT", "POST", "DELETE"):
            raise CommandError("unsupported", f"method {req.method} not implemented", status=501)
        entry = HANDLERS.get((req.method, m.group(2), m.group(3), int(m.group(4))))
        if entry is None:
            if req.method == "DELETE" or any(k[1:] == (m.group(2), m.group(3), int(m.group(4))) for k in HANDLERS):
                raise CommandError("unsupported", f"{req.method} not allowed on {req.path}", status=405)
            raise CommandError("not_found", f"{req.path} is not exposed on this connection")
        return entry

    def _open(self, req: Request) -> tuple[bytes | None, ET.Element | None]:
        """Open the CMS body (signer must be this gateway's GWA) and parse its XML."""
        if not req.body:
            return None, None
        fleet, gw = self.fleet, self.rt.state
        enc = fleet.creds.keys(gw.gateway_id, "enc")
        try:
            opened = cms.open(req.body, key=enc.key, cert=enc.cert, validator=fleet.creds.validator())
        except cms.CmsError as err:
            opened = self._open_other_keys(req.body, err)
        gwa = fleet.certificates.gwa(gw, "sig")
        if role_of(opened.signer) is not Role.GWA or gwa is None or opened.signer.subject != gwa.subject:
            raise CommandError("cms_invalid", "signer is not this gateway's GWA")
        try:
            return opened.payload, X.parse(opened.payload)
        except X.Malformed as err:
            raise CommandError("malformed", str(err)) from None

    def _open_other_keys(self, body: bytes, err: cms.CmsError) -> cms.Opened:
        """Not for the active ENC key: a pending or a replaced ENC key may be the recipient
        (docs/protocol.md 10.4, request_certificate_signing)."""
        fleet = self.fleet
        if err.reason == "wrong_recipient":
            for cert, key in fleet.certificates.decryption_keys(self.rt.state)[1:]:
                try:
                    return cms.open(body, key=key, cert=cert, validator=fleet.creds.validator())
                except cms.CmsError as again:
                    if again.reason != "wrong_recipient":
                        err = again
                        break
        raise CommandError("cms_invalid", f"container refused: {err.reason}") from None

    def _repeat(self, req: Request, cid: str, rec: CommandRecord, digest: str) -> Response:
        fleet, gw = self.fleet, self.rt.state
        if rec.digest != digest:
            err = CommandError("command_conflict", f"command ID {rec.command_id} was used for another request")
            return self._answer(cid, Outcome(409, error_element(gw.gateway_id, err)))
        gw.count("repeated")
        if rec.state == "running":
            fleet.store.update_contact(gw.gateway_id, rec.command_id, cid, req.header("x-contacturi") or "")
            gw.persist(fleet.store)
            return self._answer(cid, Outcome(202))
        gw.persist(fleet.store)
        return self._answer(cid, Outcome(rec.status, X.parse(rec.xml) if rec.xml else None))

    def _flaky_drop(self, command_id: str | None) -> bool:
        """Fault ``flaky``: drop the connection after executing, before answering. A command ID is
        dropped only on its first execution (the repeat gets the stored answer); reads alternate,
        so a retried read succeeds. ``param``: share of requests affected (default 1.0)."""
        fleet, rt = self.fleet, self.rt
        fault = fleet.faults.in_force(rt.state, "flaky")
        if fault is None:
            return False
        rate = float(fault.get("param") or 1.0)
        if command_id is None:
            if rt.last_read_dropped:
                rt.last_read_dropped = False
                return False
            n = rt.state.counters["requests"]
            rt.last_read_dropped = unit(rt.state.seed, rt.state.gateway_id, "flaky", n) < rate
            return rt.last_read_dropped
        return unit(rt.state.seed, rt.state.gateway_id, "flaky", command_id) < rate

    def _answer(self, cid: str, outcome: Outcome) -> Response:
        headers = [("x-CID", cid)] if cid else []
        body = b""
        if outcome.xml is not None and outcome.status not in (202, 204):
            body = self.fleet.certificates.seal(self.rt.state, X.to_bytes(outcome.xml))
            headers.append(("Content-Type", CONTENT_TYPE))
        return Response(outcome.status, body, headers, close=outcome.close)
