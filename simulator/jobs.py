"""Asynchronous commands (answered 202, docs/protocol.md 7): running their work, recording the
outcome and queueing its Notify, and running again those a stopped simulator left running."""

from __future__ import annotations

import asyncio
import dataclasses
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml

import structlog

from simulator import xmlcodec as X
from simulator.commands import Ctx, GatewayServices, Later
from simulator.errors import CommandError, error_element
from simulator.outbox import Outbox
from simulator.runtime import GatewayRuntime
from simulator.session import handler_of_kind
from simulator.store import DeliveryRow

log = structlog.get_logger("simulator.jobs")


class Jobs:
    def __init__(self, fleet: GatewayServices, gateways: dict[str, GatewayRuntime], outbox: Outbox) -> None:
        self.fleet = fleet  # what the handlers of resumed commands use
        self.store = fleet.store
        self.gateways = gateways
        self.outbox = outbox

    def start(self, rt: GatewayRuntime, command_id: str, name: str, later: Later,
              deliveries: list[DeliveryRow] | None = None) -> None:
        rt.spawn(self._run(rt, command_id, name, later, deliveries if deliveries is not None else []))

    async def _run(self, rt: GatewayRuntime, command_id: str, name: str, later: Later,
                   deliveries: list[DeliveryRow]) -> None:
        gw = rt.state
        try:
            status, child = await later()
        except CommandError as err:
            status, child = err.status, error_element(gw.gateway_id, err)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug must still produce an answer
            log.exception("simulator.job_failed", gateway=gw.gateway_id, command=name)
            status, child = 500, error_element(gw.gateway_id, CommandError("internal", type(err).__name__))
        self.complete(rt, command_id, name, status, child, deliveries if 200 <= status < 300 else [])

    def complete(self, rt: GatewayRuntime, command_id: str, name: str, status: int, child: ET.Element,
                 deliveries: list[DeliveryRow] | None = None) -> None:
        """Record the outcome (with the meter data deliveries the work started, in the same
        transaction) and queue the Notify."""
        gw = rt.state
        rec = self.store.command(gw.gateway_id, command_id)
        if rec is None or rec.state != "running":
            return
        if 200 <= status < 300:
            gw.count("applied")
            gw.count("applied_by_kind", name)
        stored = gw.persist(self.store, result=dataclasses.replace(rec, state="completed", status=status,
                                                                   xml=X.to_bytes(child)), deliveries=deliveries or ())
        if stored:
            self.fleet.deliveries_queued(gw, stored)
        notify = X.element("notify", {"gateway": gw.gateway_id, "status": status, "commandId": command_id,
                                      "completed": X.fmt_time(gw.gateway_time())}, children=[child])
        self.outbox.enqueue(rt, "notify", X.to_bytes(notify), command_id)

    def resume_running(self) -> None:
        """Commands that had answered 202 when the simulator stopped run again (their effect was
        not persisted as completed; a handler seeing its work done answers as for a repeat)."""
        for gid, rec in self.store.running_commands():
            rt = self.gateways.get(gid)
            fn = handler_of_kind(rec.kind)
            if rt is None or fn is None:
                continue
            ctx = Ctx(gw=rt.state, fleet=self.fleet, method="POST", query={}, command_id=rec.command_id)
            try:
                out = fn(ctx, X.parse(rec.request) if rec.request else None)
            except (CommandError, X.Malformed) as err:
                e = err if isinstance(err, CommandError) else CommandError("malformed", str(err))
                self.complete(rt, rec.command_id, rec.kind, e.status, error_element(gid, e))
                continue
            if out.later is not None:
                self.start(rt, rec.command_id, rec.kind, out.later, ctx.deliveries)
            elif out.xml is not None:
                self.complete(rt, rec.command_id, rec.kind, out.status, out.xml, ctx.deliveries)
