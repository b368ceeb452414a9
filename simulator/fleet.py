"""The simulated fleet: N gateways in one asyncio process, their wake-up sockets, connections,
asynchronous jobs, outboxes (Notifies and events) and faults.

Per gateway the process holds a :class:`GatewayRuntime` (a few hundred bytes plus the state
document); TLS contexts and keys are created only while connecting. Everything that must survive a
restart goes through :meth:`Fleet.persist` into the SQLite store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509

from core.ids import parse_device_id
from pki import cms
from simulator import xmlcodec as X
from simulator.commands import HANDLERS, CommandError, Ctx, Later, error_element
from simulator.config import SimulatorSettings
from simulator.connections import Delivery, deliver, resolve, run_management
from simulator.credentials import FleetCredentials, with_key_identifier
from simulator.credentials import load_private_key_pem as load_key
from simulator.meters import INTERVAL_S, MeterModel, Reading, tariff_register_wh, unit
from simulator.state import LEVEL_INFO, LEVEL_WARNING, OUTCOME_FAILURE, OUTCOME_SUCCESS, GatewayState
from simulator.store import LogEntry, Store
from simulator.vendors import Vendor, vendor_for
from simulator.wakeup import check, listen

log = structlog.get_logger("simulator.fleet")



@dataclass(eq=False, slots=True)
class OutboxItem:
    id: int
    kind: str  # notify | event
    command_id: str | None
    xml: bytes
    first_at: float


@dataclass(eq=False, slots=True)
class GatewayRuntime:
    state: GatewayState
    vendor: Vendor
    management: asyncio.StreamWriter | None = None
    connecting: bool = False
    connected_since: float | None = None
    cyclic: asyncio.TimerHandle | None = None
    delivering: asyncio.Task[None] | None = None
    last_read_dropped: bool = False
    last_reject_log: float = 0.0
    outbox: list[OutboxItem] = field(default_factory=list)
    wakeup_port: int | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class Fleet:
    def __init__(self, settings: SimulatorSettings, pki_dir: Path, state_dir: Path) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.creds = FleetCredentials(pki_dir, state_dir, group=settings.tls_group)
        self.store = Store(state_dir / "fleet.db")
        self.gateways: dict[str, GatewayRuntime] = {}
        self.by_recipient: dict[bytes, GatewayRuntime] = {}
        self.handshakes = asyncio.Semaphore(settings.contact_concurrency)
        self.offline_pct = settings.offline_pct
        self.flaky_pct = settings.flaky_pct
        self.connected = 0
        self.unrouted_wakeups = 0
        self.started_at = time.time()
        self.startup_s: float | None = None
        self.wakeup_port: int | None = None
        self._certs: dict[str, x509.Certificate] = {}
        self._factory_gwa: tuple[str, dict[str, str]] | None = None
        self._transports: list[asyncio.DatagramTransport] = []
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle
    def load(self, gateway_ids: list[str]) -> list[str]:
        """Load the gateways' states (creating new ones); returns the IDs created."""
        docs = self.store.load_all()
        created: dict[str, dict[str, Any]] = {}
        now = time.time()
        for gid in gateway_ids:
            doc = docs.get(gid)
            if doc is not None:
                state = GatewayState.from_doc(doc)
                del docs[gid]
            else:
                state = GatewayState.new(gid, seed=self.settings.seed, now=now,
                                         meters_paired=self.settings.meters_paired)
                self._personalise(state, now)
            state.extra["boot_time"] = state.extra.get("boot_time", now)
            self._use_own_keys(state)
            rt = GatewayRuntime(state, vendor_for(gid))
            self.gateways[gid] = rt
            self.by_recipient[parse_device_id(gid).recipient] = rt
            if doc is None:
                created[gid] = state.to_doc()
        if created:
            self.store.save_many(created, {gid: self.gateways[gid].state.take_logs() for gid in created})
        self.store.prune_commands(now=now)
        for _id, gid, kind, cmd, xml, first_at in self.store.outbox():
            if gid in self.gateways:
                self.gateways[gid].outbox.append(OutboxItem(_id, kind, cmd, xml, first_at))
        return list(created)

    def _use_own_keys(self, state: GatewayState) -> None:
        """Renewed own keys of a loaded gateway become its active credentials again."""
        for usage, own in state.own_keys.items():
            self.creds.use_own(state.gateway_id, usage, self.certificate(own["sha256"]), load_key(own["key"]))

    def decryption_keys(self, gw: GatewayState) -> list[tuple[x509.Certificate, Any]]:
        """ENC keys the gateway decrypts with, the active one first: then a pending ENC key and the
        ENC keys a renewal replaced, until their certificates expire (docs/protocol.md 10.4)."""
        active = self.creds.keys(gw.gateway_id, "enc")
        out: list[tuple[x509.Certificate, Any]] = [(active.cert, active.key)]
        pending = gw.pending_keys.get("enc")
        if pending is not None:
            key = load_key(pending["key"])
            # cms.open matches the recipient by the SKI of ``cert``: a stand-in with the pending key's SKI
            out.append((with_key_identifier(active.cert, key), key))
        now = time.time()
        for old in reversed(gw.previous_enc):
            if old["not_after"] > now:
                out.append((self.certificate(old["sha256"]), load_key(old["key"])))
        return out

    def reconnect(self, gw: GatewayState, reason: str) -> None:
        """Open a new management connection once the current one has closed (a renewed TLS
        certificate is presented from the next connection on)."""
        rt = self.gateways.get(gw.gateway_id)
        if rt is None or self._stopping:
            return

        async def again() -> None:
            for _ in range(200):
                if rt.management is None or rt.management.is_closing():
                    break
                await asyncio.sleep(0.05)
            self.contact(rt, reason)

        self._spawn(rt, again())

    def _personalise(self, state: GatewayState, now: float) -> None:
        """A new gateway trusts the test PKI's GWA (its certificates installed at the factory)."""
        if self._factory_gwa is None:
            gwa = self.creds.pki.gwa
            self._factory_gwa = (gwa.name, {u: self.remember_certificate_obj(gwa.credential(u).cert)
                                            for u in ("tls", "sig", "enc")})
        name, shas = self._factory_gwa
        for usage, sha in shas.items():
            state.certificates[f"gwa:{usage}"] = {"owner": name, "role": "gwa", "usage": usage, "sha256": sha,
                                                  "installed_at": now}
        state.device_state = "personalized"

    async def start(self) -> None:
        s = self.settings
        if s.wakeup_mode == "per_gateway":
            for rt in self.gateways.values():
                transport, port = await listen(s.udp_host, 0, self._own_socket(rt), shared=False)
                self._transports.append(transport)
                rt.wakeup_port = port
        else:
            transport, self.wakeup_port = await listen(s.udp_host, s.udp_port, self._route_wakeup)
            self._transports.append(transport)
        for rt in self.gateways.values():
            self.schedule_cyclic(rt.state, first=True)
            if rt.outbox:
                self.kick_delivery(rt)
        self._resume_running()

    def _own_socket(self, rt: GatewayRuntime) -> Callable[[bytes, bytes, Any], None]:
        """Per-gateway mode: the socket belongs to one gateway, whatever the recipient says."""
        return lambda _recipient, data, _addr: self._wakeup(rt, data)

    async def stop(self) -> None:
        self._stopping = True
        for transport in self._transports:
            transport.close()
        tasks: list[asyncio.Task[Any]] = []
        for rt in self.gateways.values():
            if rt.cyclic:
                rt.cyclic.cancel()
            if rt.management is not None:
                rt.management.transport.abort()
            tasks += list(rt.tasks)
            if rt.delivering:
                tasks.append(rt.delivering)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for rt in self.gateways.values():
            self.persist(rt.state)
        self.store.close()

    def _spawn(self, rt: GatewayRuntime, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        rt.tasks.add(task)
        task.add_done_callback(rt.tasks.discard)
        return task

    # ------------------------------------------------------------------ services for handlers
    def vendor(self, gw: GatewayState) -> Vendor:
        return self.gateways[gw.gateway_id].vendor if gw.gateway_id in self.gateways else vendor_for(gw.gateway_id)

    @staticmethod
    def now() -> float:
        return time.time()

    def persist(self, gw: GatewayState, **kw: Any) -> None:
        self.store.save(gw.gateway_id, gw.to_doc(), logs=gw.take_logs(), **kw)

    def flush(self, gw: GatewayState) -> None:
        if gw.pending_logs:
            self.persist(gw)

    def drop_image(self, gw: GatewayState, image: str) -> None:
        self.persist(gw, drop_image=image)

    def remember_certificate(self, sha: str, der: bytes) -> None:
        self.store.put_certificate(sha, der)
        self._certs.setdefault(sha, x509.load_der_x509_certificate(der))

    def remember_certificate_obj(self, cert: x509.Certificate) -> str:
        import hashlib

        from cryptography.hazmat.primitives import serialization

        der = cert.public_bytes(serialization.Encoding.DER)
        sha = hashlib.sha256(der).hexdigest()
        if sha not in self._certs:
            self.remember_certificate(sha, der)
        return sha

    def certificate(self, sha: str) -> x509.Certificate:
        cert = self._certs.get(sha)
        if cert is None:
            der = self.store.get_certificate(sha)
            if der is None:
                raise CommandError("internal", f"certificate {sha[:12]} missing from the store")
            cert = self._certs[sha] = x509.load_der_x509_certificate(der)
        return cert

    def gwa_certificate(self, gw: GatewayState, usage: str) -> x509.Certificate | None:
        entry = gw.certificates.get(f"gwa:{usage}")
        return self.certificate(entry["sha256"]) if entry else None

    def seal(self, gw: GatewayState, xml: bytes) -> bytes:
        sig = self.creds.keys(gw.gateway_id, "sig")
        enc = self.gwa_certificate(gw, "enc")
        if enc is None:
            raise CommandError("internal", "no GWA ENC certificate installed")
        return cms.seal(xml, sign_key=sig.key, sign_cert=sig.cert, recipient_cert=enc)

    def _gwa_profile(self, gw: GatewayState) -> dict[str, Any]:
        for p in gw.profiles.get("communication", {}).values():
            if p.get("role") == "gwa":
                return p  # type: ignore[no-any-return]
        return {}

    def sni(self, gw: GatewayState) -> str:
        from urllib.parse import urlsplit

        endpoint = self._gwa_profile(gw).get("endpoint")
        return (urlsplit(endpoint).hostname or self.settings.sni) if endpoint else self.settings.sni

    def events_uri(self, gw: GatewayState) -> str:
        uri = self._gwa_profile(gw).get("eventUri")
        host = self.settings.headend_address[0]
        return uri or f"https://{host}:{self.settings.inbound_port}/gwa/events"

    # -- meters
    def _fault_meter(self, gw: GatewayState, kind: str) -> tuple[str, int] | None:
        f = gw.faults.get(kind)
        if f is None:
            return None
        meter = f.get("param") or next(iter(gw.meters), "")
        return meter, int(f.get("since", 0) // INTERVAL_S)

    def meter_missing(self, gw: GatewayState, meter: str) -> bool:
        m = gw.meters.get(meter)
        fm = self._fault_meter(gw, "missing_meter")
        return m is None or not m.get("present", True) or (fm is not None and fm[0] == meter)

    def reading(self, gw: GatewayState, model: MeterModel, k: int) -> Reading:
        missing = self._fault_meter(gw, "missing_meter")
        tamper = self._fault_meter(gw, "tamper_alarm")
        return model.reading(
            k,
            missing_since=missing[1] if missing and missing[0] == model.meter_id else None,
            tamper_since=tamper[1] if tamper and tamper[0] == model.meter_id else None,
        )

    @staticmethod
    def register_value(model: MeterModel, obis: str, k: int, reading: Reading,
                       tariffs: tuple[list[dict[str, str]], float] | None = None) -> int | None:
        """The value of register ``obis`` at interval ``k``. ``tariffs``: the daily schedule and
        start of an active TAF 2 profile on this meter; the tariff registers it names are derived
        from 1-0:1.8.0 by it (``tariff_register_wh``), otherwise the meter's own 70/30 split."""
        if reading.import_wh is None:
            return None
        if obis == "1-0:1.8.0":
            return reading.import_wh
        if obis == "1-0:2.8.0":
            return reading.export_wh
        if tariffs is not None and any(s["register"] == obis for s in tariffs[0]):
            return tariff_register_wh(model, obis, tariffs[0], tariffs[1], k)
        if obis == "1-0:1.8.1":  # high tariff share
            return reading.import_wh * 7 // 10
        if obis == "1-0:1.8.2":
            return reading.import_wh - reading.import_wh * 7 // 10
        if obis == "1-0:16.7.0":
            return model.power_w(k - 1)
        if obis in ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0"):
            return int(model.voltage_v(k, int(obis[4]) // 2) * 10)  # scaler -1
        if obis == "1-1:1.29.0":
            return model.import_wh(k) - model.import_wh(k - 1)
        return None

    # ------------------------------------------------------------------ faults
    def effective_fault(self, gw: GatewayState, kind: str) -> dict[str, Any] | None:
        f = gw.faults.get(kind)
        if f is not None:
            return f
        pct = self.offline_pct if kind == "offline" else self.flaky_pct if kind == "flaky" else 0.0
        if pct and unit(gw.seed, gw.gateway_id, f"fleet-{kind}") * 100 < pct:
            return {"param": None, "fleet": True}
        return None

    def effective_faults(self, gw: GatewayState) -> dict[str, Any]:
        out = dict(gw.faults)
        for kind in ("offline", "flaky"):
            f = self.effective_fault(gw, kind)
            if f is not None and kind not in out:
                out[kind] = f
        return out

    # ------------------------------------------------------------------ wake-up and contacts
    def _route_wakeup(self, recipient: bytes, data: bytes, _addr: Any) -> None:
        rt = self.by_recipient.get(recipient)
        if rt is None:
            self.unrouted_wakeups += 1  # wrong_recipient: addressed to no gateway this simulator runs
            return
        self._wakeup(rt, data)

    def _wakeup(self, rt: GatewayRuntime, data: bytes) -> None:
        gw = rt.state
        if self.effective_fault(gw, "offline") is not None:
            gw.count("wakeups_ignored", "offline")
            return
        gwa_sig = self.gwa_certificate(gw, "sig")
        if gwa_sig is None:
            gw.count("wakeups_ignored", "no_gwa")
            return
        s = self.settings
        verdict = check(gw, data, gwa_sig.public_key(), window=s.wakeup_window_s,  # type: ignore[arg-type]
                        byteorder=s.wakeup_byteorder)
        if not verdict.accepted:
            gw.count("wakeups_ignored", verdict.reason)
            now = time.time()
            if now - rt.last_reject_log >= 60:  # rate-limited logbook entry
                rt.last_reject_log = now
                gw.log("system", LEVEL_WARNING, OUTCOME_FAILURE, f"wake-up rejected: {verdict.reason}")
                self.persist(gw)
            return
        gw.count("wakeups_accepted")
        gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, "wake-up accepted")
        self.persist(gw)  # the replay state must survive a restart
        self.contact(rt, "wakeup")

    def contact(self, rt: GatewayRuntime, reason: str) -> bool:
        """Open a management connection unless one is open (or opening) or the gateway is offline."""
        if self._stopping or self.effective_fault(rt.state, "offline") is not None:
            return False
        if (rt.management is not None and not rt.management.is_closing()) or rt.connecting:
            return False  # keep the open connection (a closing one does not count)
        rt.connecting = True
        self._spawn(rt, run_management(self, rt, reason))
        return True

    def connected_changed(self, rt: GatewayRuntime, up: bool) -> None:
        self.connected += 1 if up else -1

    def schedule_cyclic(self, gw: GatewayState, *, first: bool = False) -> None:
        rt = self.gateways.get(gw.gateway_id)
        if rt is None or self._stopping:
            return
        if rt.cyclic is not None:
            rt.cyclic.cancel()
            rt.cyclic = None
        interval = float(self._gwa_profile(gw).get("contactInterval") or self.settings.cyclic_contact_s)
        if interval <= 0:
            return
        delay = interval * (unit(gw.seed, gw.gateway_id, "cyclic") if first else 1.0)
        loop = asyncio.get_running_loop()
        rt.cyclic = loop.call_later(max(delay, 1.0), self._cyclic_fire, rt)

    def _cyclic_fire(self, rt: GatewayRuntime) -> None:
        rt.cyclic = None
        self.contact(rt, "cyclic")
        self.schedule_cyclic(rt.state)

    async def restart(self, gw: GatewayState, reason: str) -> float:
        """Reboot: the management connection closes, the gateway is away for a while, then boots
        and opens a new management connection of its own."""
        rt = self.gateways[gw.gateway_id]
        gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"restart: {reason}")
        for _ in range(50):
            if rt.management is None:
                break
            await asyncio.sleep(0.1)
        if rt.management is not None:
            rt.management.transport.abort()
        await asyncio.sleep(self.settings.restart_delay_s)
        boot = time.time()
        gw.boot_count += 1
        gw.extra["boot_time"] = boot
        entry = gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS,
                       f"gateway started, firmware {gw.firmware['active']} (boot {gw.boot_count})")
        self.raise_event(gw, "reboot", LEVEL_INFO, f"gateway restarted ({reason})", record=entry)
        self.contact(rt, "restart")
        return boot

    # ------------------------------------------------------------------ asynchronous commands
    def start_job(self, rt: GatewayRuntime, command_id: str, name: str, later: Later) -> None:
        self._spawn(rt, self._job(rt, command_id, name, later))

    async def _job(self, rt: GatewayRuntime, command_id: str, name: str, later: Later) -> None:
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
        self.complete(rt, command_id, name, status, child)

    def complete(self, rt: GatewayRuntime, command_id: str, name: str, status: int, child: ET.Element) -> None:
        gw = rt.state
        rec = self.store.command(gw.gateway_id, command_id)
        if rec is None or rec.state != "running":
            return
        if 200 <= status < 300:
            gw.count("applied")
            gw.count("applied_by_kind", name)
        self.persist(gw, result=dataclasses.replace(rec, state="completed", status=status, xml=X.to_bytes(child)))
        notify = X.element("notify", {"gateway": gw.gateway_id, "status": status, "commandId": command_id,
                                      "completed": X.fmt_time(gw.gateway_time())}, children=[child])
        self._enqueue(rt, "notify", X.to_bytes(notify), command_id)

    def _resume_running(self) -> None:
        """Commands that had answered 202 when the simulator stopped run again (their effect was
        not persisted as completed; a handler seeing its work done answers as for a repeat)."""
        by_name = {name: fn for name, fn in HANDLERS.values()}
        for gid, rec in self.store.running_commands():
            rt = self.gateways.get(gid)
            fn = by_name.get(rec.kind)
            if rt is None or fn is None:
                continue
            ctx = Ctx(gw=rt.state, fleet=self, method="POST", query={}, command_id=rec.command_id)
            try:
                out = fn(ctx, X.parse(rec.request) if rec.request else None)
            except (CommandError, X.Malformed) as err:
                e = err if isinstance(err, CommandError) else CommandError("malformed", str(err))
                self.complete(rt, rec.command_id, rec.kind, e.status, error_element(gid, e))
                continue
            if out.later is not None:
                self.start_job(rt, rec.command_id, rec.kind, out.later)
            elif out.xml is not None:
                self.complete(rt, rec.command_id, rec.kind, out.status, out.xml)

    # ------------------------------------------------------------------ outbox
    def raise_event(self, gw: GatewayState, code: str, level: int, text: str, *, record: LogEntry | None = None,
                    meter: str | None = None) -> None:
        ev = X.element("event", {"id": str(uuid.uuid4()), "code": code, "level": level,
                                 "time": X.fmt_time(gw.gateway_time()), "meter": meter,
                                 "record": record.recno if record else None, "log": record.log if record else None},
                       text)
        rt = self.gateways.get(gw.gateway_id)
        if rt is not None:
            self.persist(gw)
            self._enqueue(rt, "event", X.to_bytes(ev), None)

    def _enqueue(self, rt: GatewayRuntime, kind: str, xml: bytes, command_id: str | None) -> None:
        now = time.time()
        item_id = self.store.outbox_add(rt.state.gateway_id, kind, xml, now, command_id)
        rt.outbox.append(OutboxItem(item_id, kind, command_id, xml, now))
        self.kick_delivery(rt)

    def kick_delivery(self, rt: GatewayRuntime) -> None:
        if rt.delivering is None and rt.outbox and not self._stopping:
            rt.delivering = asyncio.get_running_loop().create_task(deliver(self, rt))

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
        return [Delivery([i.id for i in events], self.events_uri(gw), X.to_bytes(root), f"uuid:{uuid.uuid4()}",
                         None, events[0].first_at)]

    def delivery_answered(self, rt: GatewayRuntime, d: Delivery, status: int) -> bool:
        """Record the head-end's answer; False when the delivery must be retried."""
        if 200 <= status < 300 or status in (400, 403, 404, 413):
            self.deliveries_done(rt, [d], "delivered" if status < 300 else f"refused_{status}")
            return True
        return False

    def deliveries_done(self, rt: GatewayRuntime, ds: Iterable[Delivery], why: str) -> None:
        ids = {i for d in ds for i in d.ids}
        for item in rt.outbox:
            if item.id in ids and why == "delivered":
                rt.state.count("notifies_sent" if item.kind == "notify" else "alarms_sent")
        rt.outbox = [i for i in rt.outbox if i.id not in ids]
        self.store.outbox_done(ids)
        if why != "delivered":
            log.info("simulator.delivery_dropped", gateway=rt.state.gateway_id, why=why)

    def resolve(self, uri: str) -> tuple[str, int, str]:
        return resolve(self, uri, self.settings.inbound_port)
