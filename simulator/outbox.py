"""Notifies and events a gateway owes its head-end: kept in the store until delivered, POSTed over
inbound connections (docs/protocol.md 7, 8) with retry, 5 s doubling to 5 min, for up to 1 h."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
import structlog

from simulator import xmlcodec as X
from simulator.certificates import Certificates
from simulator.config import SimulatorSettings
from simulator.connections import Closing, ContactFailed, Dialer, InboundClient
from simulator.fleetfaults import FleetFaults
from simulator.runtime import GatewayRuntime, OutboxItem
from simulator.state import GatewayState
from simulator.store import LogEntry, Store

log = structlog.get_logger("simulator.outbox")

RETRY_FIRST_S = 5.0
RETRY_MAX_S = 300.0
RETRY_GIVE_UP_S = 3600.0


@dataclass
class Delivery:
    """One POST waiting on the inbound side: a Notify or a batch of events."""

    ids: list[int]
    uri: str
    xml: bytes
    cid: str
    command_id: str | None
    first_at: float


class Outbox:
    def __init__(self, settings: SimulatorSettings, store: Store, gateways: dict[str, GatewayRuntime],
                 faults: FleetFaults, certificates: Certificates, dialer: Dialer) -> None:
        self.settings = settings
        self.store = store
        self.gateways = gateways
        self.faults = faults
        self.certificates = certificates
        self.dialer = dialer
        self._stopping = False

    def restore(self) -> None:
        """Put what was not delivered before the simulator stopped back into the gateways' outboxes."""
        for _id, gid, kind, cmd, xml, first_at in self.store.outbox():
            if gid in self.gateways:
                self.gateways[gid].outbox.append(OutboxItem(_id, kind, cmd, xml, first_at))

    def stop(self) -> None:
        self._stopping = True

    def raise_event(self, gw: GatewayState, code: str, level: int, text: str, *, record: LogEntry | None = None,
                    meter: str | None = None) -> None:
        ev = X.element("event", {"id": str(uuid.uuid4()), "code": code, "level": level,
                                 "time": X.fmt_time(gw.gateway_time()), "meter": meter,
                                 "record": record.recno if record else None, "log": record.log if record else None},
                       text)
        rt = self.gateways.get(gw.gateway_id)
        if rt is not None:
            gw.persist(self.store)
            self.enqueue(rt, "event", X.to_bytes(ev), None)

    def enqueue(self, rt: GatewayRuntime, kind: str, xml: bytes, command_id: str | None) -> None:
        now = time.time()
        item_id = self.store.outbox_add(rt.state.gateway_id, kind, xml, now, command_id)
        rt.outbox.append(OutboxItem(item_id, kind, command_id, xml, now))
        self.kick(rt)

    def kick(self, rt: GatewayRuntime) -> None:
        """Start delivering unless a delivery runs already (one task per gateway, ``rt.delivering``)."""
        if rt.delivering is None and rt.outbox and not self._stopping:
            rt.delivering = asyncio.get_running_loop().create_task(self._deliver(rt))

    # -- what goes next, and the head-end's answers
    def next_deliveries(self, rt: GatewayRuntime) -> list[Delivery]:
        if not rt.outbox:
            return []
        first = rt.outbox[0]
        gw = rt.state
        if first.kind == "notify":
            rec = self.store.command(gw.gateway_id, first.command_id or "")
            host = self.settings.headend_address[0]
            uri = (rec.contact_uri if rec else "") or f"https://{host}:{self.settings.inbound_port}/gwa/notify"
            return [Delivery([first.id], uri, first.xml, rec.cid if rec else "", first.command_id, first.first_at)]
        events = [i for i in rt.outbox[:100] if i.kind == "event"]
        events = events[: next((n for n, i in enumerate(rt.outbox[:100]) if i.kind != "event"), len(events))]
        root = X.element("events", {"gateway": gw.gateway_id}, children=[X.parse(i.xml) for i in events])
        return [Delivery([i.id for i in events], self._events_uri(gw), X.to_bytes(root), f"uuid:{uuid.uuid4()}",
                         None, events[0].first_at)]

    def _events_uri(self, gw: GatewayState) -> str:
        uri = gw.gwa_profile().get("eventUri")
        host = self.settings.headend_address[0]
        return uri or f"https://{host}:{self.settings.inbound_port}/gwa/events"

    def answered(self, rt: GatewayRuntime, d: Delivery, status: int) -> bool:
        """Record the head-end's answer; False when the delivery must be retried."""
        if 200 <= status < 300 or status in (400, 403, 404, 413):
            self.done(rt, [d], "delivered" if status < 300 else f"refused_{status}")
            return True
        return False

    def done(self, rt: GatewayRuntime, ds: Iterable[Delivery], why: str) -> None:
        ids = {i for d in ds for i in d.ids}
        for item in rt.outbox:
            if item.id in ids and why == "delivered":
                rt.state.count("notifies_sent" if item.kind == "notify" else "alarms_sent")
        rt.outbox = [i for i in rt.outbox if i.id not in ids]
        self.store.outbox_done(ids)
        if why != "delivered":
            log.info("simulator.delivery_dropped", gateway=rt.state.gateway_id, why=why)

    # -- delivery
    async def _deliver(self, rt: GatewayRuntime) -> None:
        """Drain the gateway's outbox."""
        gw = rt.state
        attempt = 0
        try:
            while True:
                if self.faults.in_force(gw, "offline") is not None:
                    return  # resumed when the fault is cleared
                batch = self.next_deliveries(rt)
                if not batch:
                    return
                now = time.time()
                expired = [d for d in batch if now - d.first_at > RETRY_GIVE_UP_S]
                if expired:
                    self.done(rt, expired, "gave_up")
                    continue
                ok = await self._send_batch(rt, batch)
                if ok:
                    attempt = 0
                    continue
                delay = min(RETRY_FIRST_S * 2**attempt, RETRY_MAX_S)
                attempt += 1
                await asyncio.sleep(delay)
        finally:
            rt.delivering = None

    async def _send_batch(self, rt: GatewayRuntime, batch: list[Delivery]) -> bool:
        """Send deliveries sharing the first one's URI over one connection; False to retry later."""
        uri = batch[0].uri
        host, port, _ = self.dialer.resolve(uri, self.settings.inbound_port)
        try:
            reader, writer = await self.dialer.open_tls(rt, host, port)
        except ContactFailed as err:
            log.info("simulator.inbound_failed", gateway=rt.state.gateway_id, error=err.reason)
            return False
        client = InboundClient(reader, writer, f"{urlsplit(uri).hostname}:{port}")
        try:
            for d in batch:
                if d.uri != uri:
                    break
                path = urlsplit(d.uri).path or "/"
                body = self.certificates.seal(rt.state, d.xml)
                try:
                    status = await client.post(path, body, d.cid or f"uuid:{uuid.uuid4()}", d.command_id,
                                               self.settings.connect_timeout_s * 2)
                except Closing as c:
                    self.answered(rt, d, c.status)
                    return c.status < 500
                if not self.answered(rt, d, status):
                    return False
            return True
        except (OSError, TimeoutError, ConnectionError, h11.ProtocolError) as err:
            log.info("simulator.inbound_failed", gateway=rt.state.gateway_id, error=f"{type(err).__name__}: {err}")
            return False
        finally:
            await client.close()
