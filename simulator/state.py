"""The state of one simulated SMGW: what it remembers across connections and restarts.

A :class:`GatewayState` is a plain dataclass serialised to a JSON document (:mod:`simulator.store`).
Gateway ``index`` i of the fleet is ``domain.ids.demo_gateway_id(i)`` with the meters
``domain.ids.demo_meter_id(i, slot)`` for ``slot in meter_slots(i)``, the same IDs the demo master
data uses.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.ids import demo_gateway_id, demo_meter_id

try:
    from core.ids import demo_meter_count
except ImportError:  # pragma: no cover - older domain/ids.py: the same rule

    def demo_meter_count(gateway_index: int) -> int:
        return 2 if gateway_index % 4 == 0 else 1
from simulator.meters import unit
from simulator.store import CommandRecord, DeliveryRow, LogEntry, Store
from simulator.vendors import vendor_for

LOGS = ("system", "calibration", "consumer")
LEVEL_INFO, LEVEL_WARNING, LEVEL_ERROR, LEVEL_FATAL = 1, 2, 3, 4
OUTCOME_SUCCESS, OUTCOME_FAILURE = 0, 1

FAULT_KINDS = (
    "offline",  # ignores wake-ups, makes no contact of its own
    "flaky",  # drops the connection after applying a command, before answering (once per command ID)
    "slow",  # answers every request after `param` seconds (default GRIDGATE_SIMULATOR_SLOW_LATENCY_S)
    "reject",  # answers state-changing commands (or the command kind in `param`) with an error
    "firmware_verification_failure",  # the next firmware check fails; activation falls back
    "clock_drift",  # clock jumps by `param` seconds (default GRIDGATE_SIMULATOR_DRIFT_FAULT_S)
    "missing_meter",  # meter `param` (default: the first) stops answering on the LMN: NoValue + alarm
    "tamper_alarm",  # tamper on meter `param` (default: the first): status bit + alarm
    "revoked_certificate",  # connects with a TLS certificate the Sub-CA has revoked
    "foreign_certificate",  # connects with a TLS certificate of a foreign CA
    # faults in the meter data delivered to EMTs (simulator.datafaults)
    "gaps",  # share `param` of quarter hours without value (NoValue)
    "duplicates",  # share `param` of deliveries sent twice
    "late",  # a period held back until `param` later periods were delivered (late, out of order)
    "spikes",  # one register value a day jumps by `param` Wh
    "zero_periods",  # `param` hours a day without consumption
    "register_reset",  # the import register restarts at `param` Wh (meter exchange)
    "status_error",  # status bits (DS Tab. 15.1) by name, e.g. tamper, time_invalid
    "clock_shift",  # capture times shifted by `param` minutes
    "voltage_excursion",  # a phase voltage at `param` (L1:200): TAF 10 threshold delivery
)


def meter_slots(index: int) -> list[int]:
    """LMN slots of gateway ``index``: as many meters as the demo master data gives it
    (``domain.ids.demo_meter_count``)."""
    return list(range(demo_meter_count(index)))


def meter_ids(index: int) -> list[str]:
    return [demo_meter_id(index, s) for s in meter_slots(index)]


def index_of(gateway_id: str) -> int | None:
    """Fleet index of a demo gateway ID (inverse of ``demo_gateway_id``), None for other IDs."""
    try:
        i = int(gateway_id[-8:]) - 16_900_000
    except ValueError:
        return None
    return i if i >= 0 and demo_gateway_id(i) == gateway_id else None


def _new_counters() -> dict[str, Any]:
    return {
        "requests": 0,  # HTTP requests served
        "applied": 0,  # state-changing commands applied (each command ID at most once)
        "applied_by_kind": {},
        "repeated": 0,  # repeated command IDs answered from the stored result
        "rejected": 0,  # commands refused (fault `reject`, bad input, unsupported)
        "dropped": 0,  # connections dropped on purpose (fault `flaky`)
        "wakeups_accepted": 0,
        "wakeups_ignored": {},  # reason -> count
        "contacts": {},  # reason (wakeup, cyclic, alarm, control) -> successful TLS connections
        "contact_failures": 0,
        "alarms_sent": 0,
        "notifies_sent": 0,
        # meter data deliveries to EMTs: built, delivered, refused, retried, untrusted (EMT server
        # certificate refused), gave_up, duplicates, threshold
        "deliveries": {},
    }


@dataclass
class GatewayState:
    gateway_id: str
    index: int | None
    vendor: str
    seed: int = 0
    boot_count: int = 1
    device_state: str = "operational"
    firmware: dict[str, Any] = field(default_factory=dict)  # active, fallback, images{id: {...}}
    clock: dict[str, float] = field(default_factory=dict)  # offset_s, set_at, drift_ppm
    meters: dict[str, dict[str, Any]] = field(default_factory=dict)  # meter id -> slot, paired, ...
    profiles: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "meter": {}, "communication": {}, "evaluation": {}})
    certificates: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> {param, since}
    counters: dict[str, Any] = field(default_factory=_new_counters)
    wakeup: dict[str, Any] = field(default_factory=lambda: {"last_ts": None, "last_digest": None})
    log_recno: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOGS, 0))
    alarms: list[dict[str, Any]] = field(default_factory=list)  # raised, not yet delivered
    extra: dict[str, Any] = field(default_factory=dict)  # attributes written by the head-end
    # Own key renewal (docs/protocol.md 10.4, request_certificate_signing). Keys as PKCS#8 PEM: the
    # simulated gateway's secure element is its state document.
    # usage -> {command_id, key, csr (base64 DER), key_id, at}: generated, waiting for its certificate
    pending_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    # usage -> {sha256 (certificate, in the fleet's certificate store), key, since}: renewed, active
    own_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    # ENC keys replaced by a renewal, still used for decrypting until not_after: [{sha256, key, not_after}]
    previous_enc: list[dict[str, Any]] = field(default_factory=list)
    # evaluation profile ID -> delivery cursor: {"next": start of the next period to deliver,
    # "seq": periods delivered, "held": [[start, end, remaining]] (fault late), "outside": TAF 10
    # voltage outside the band}
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_logs: list[LogEntry] = field(default_factory=list, repr=False)

    # -- creation / serialisation
    @classmethod
    def new(cls, gateway_id: str, *, seed: int = 0, now: float | None = None,
            meters_paired: bool = False) -> GatewayState:
        now = time.time() if now is None else now
        index = index_of(gateway_id)
        vendor = vendor_for(gateway_id)
        st = cls(gateway_id=gateway_id, index=index, vendor=vendor.flag, seed=seed)
        st.firmware = {"active": vendor.initial_firmware, "fallback": None, "images": {}}
        st.clock = {
            "offset_s": round(4 * (unit(seed, gateway_id, "clock") - 0.5), 3),
            "set_at": now,
            "drift_ppm": round(40 * (unit(seed, gateway_id, "drift") - 0.5), 2),
        }
        for slot, mid in enumerate(meter_ids(index) if index is not None else []):
            st.meters[mid] = {"slot": slot, "paired": False, "present": True, "paired_at": None}
            if meters_paired:
                st.meters[mid].update(paired=True, interface="lmn-wired", paired_at=now)
        st.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"gateway started, firmware {vendor.initial_firmware}", now)
        return st

    def to_doc(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "pending_logs"}
        return d

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> GatewayState:
        names = {f.name for f in dataclasses.fields(cls)} - {"pending_logs"}
        st = cls(**{k: v for k, v in doc.items() if k in names})
        fresh = _new_counters()
        fresh.update(st.counters)
        st.counters = fresh
        return st

    def persist(self, store: Store, *, result: CommandRecord | None = None,
                chunks: Iterable[tuple[str, int, bytes]] = (), drop_image: str | None = None,
                deliveries: Iterable[DeliveryRow] = ()) -> list[DeliveryRow]:
        """Write the document with the log entries written since, and the command result, firmware
        chunks and meter data deliveries of the same change, in one transaction. Returns the
        deliveries as stored (with their IDs, without their XML) for the EMT outbox."""
        rows = list(deliveries)
        ids = store.save(self.gateway_id, self.to_doc(), logs=self.take_logs(), result=result, chunks=chunks,
                         drop_image=drop_image, deliveries=rows)
        return [dataclasses.replace(r, id=i, xml=b"") for r, i in zip(rows, ids, strict=True)]

    def flush(self, store: Store) -> None:
        """Persist if log entries are pending: a logbook read must see what this connection wrote."""
        if self.pending_logs:
            self.persist(store)

    # -- clock
    def gateway_time(self, now: float | None = None) -> float:
        """The gateway's clock: real time + offset + drift since it was last set (+ drift fault)."""
        now = time.time() if now is None else now
        c = self.clock
        t = now + c["offset_s"] + c["drift_ppm"] * 1e-6 * (now - c["set_at"])
        fault = self.faults.get("clock_drift")
        if fault is not None:
            t += float(fault["param"])
        return t

    def clock_offset(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        return self.gateway_time(now) - now

    def set_clock(self, gateway_time: float, now: float | None = None) -> float:
        """Set the clock so it reads ``gateway_time`` now; returns the correction applied (s).
        A running ``clock_drift`` fault is cleared: the correction is what the GWA wanted."""
        now = time.time() if now is None else now
        before = self.gateway_time(now)
        self.faults.pop("clock_drift", None)
        self.clock = {"offset_s": gateway_time - now, "set_at": now, "drift_ppm": self.clock["drift_ppm"]}
        return gateway_time - before

    # -- logbooks
    def log(self, log: str, level: int, outcome: int, text: str, at: float | None = None) -> LogEntry:
        at = self.gateway_time() if at is None else at
        self.log_recno[log] = self.log_recno.get(log, 0) + 1
        entry = LogEntry(log, self.log_recno[log], level, outcome, text, at)
        self.pending_logs.append(entry)
        return entry

    def take_logs(self) -> list[LogEntry]:
        out, self.pending_logs = self.pending_logs, []
        return out

    # -- counters
    def count(self, name: str, key: str | None = None, n: int = 1) -> None:
        if key is None:
            self.counters[name] = self.counters.get(name, 0) + n
        else:
            bucket = self.counters.setdefault(name, {})
            bucket[key] = bucket.get(key, 0) + n

    def fault(self, kind: str) -> dict[str, Any] | None:
        return self.faults.get(kind)

    # -- profiles
    def gwa_profile(self) -> dict[str, Any]:
        """The communication profile for the GWA (endpoint, event URI, contact interval), or {}."""
        for p in self.profiles.get("communication", {}).values():
            if p.get("role") == "gwa":
                return p
        return {}
