"""Setting and clearing faults on simulated gateways, with the side effects a real fault has
(log entries, alarms, a dropped connection). See :data:`simulator.state.FAULT_KINDS` and
docs/simulator.md for what each fault does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from simulator import datafaults
from simulator.datafaults import DATA_FAULTS
from simulator.fleet import Fleet
from simulator.fleetfaults import FLEET_KINDS
from simulator.runtime import GatewayRuntime
from simulator.state import FAULT_KINDS, LEVEL_ERROR, LEVEL_INFO, LEVEL_WARNING, OUTCOME_FAILURE, OUTCOME_SUCCESS


class FaultError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _runtime(fleet: Fleet, gateway_id: str) -> GatewayRuntime:
    rt = fleet.gateways.get(gateway_id.upper())
    if rt is None:
        raise FaultError("unknown_gateway", f"gateway {gateway_id} is not simulated here")
    return rt


async def set_fault(fleet: Fleet, gateway_id: str, kind: str, param: Any = None,
                    since: float | None = None) -> dict[str, Any]:
    """Set fault ``kind``; ``since`` (Unix time, default now by the gateway's clock): from when a
    fault on values acts (a past ``since`` makes backfilled deliveries show it)."""
    if kind not in FAULT_KINDS:
        raise FaultError("unknown_fault", f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
    rt = _runtime(fleet, gateway_id)
    gw = rt.state
    s = fleet.settings
    if kind in DATA_FAULTS:
        try:
            param = datafaults.normalise(kind, param)
        except ValueError as err:
            raise FaultError("bad_param", str(err)) from None
    elif kind in ("missing_meter", "tamper_alarm"):
        param = param or next(iter(gw.meters), None)
        if param not in gw.meters:
            raise FaultError("unknown_meter", f"meter {param} is not on the LMN of {gw.gateway_id}")
    elif kind == "clock_drift":
        param = float(param if param not in (None, "") else s.drift_fault_s)
    elif kind == "slow":
        param = float(param if param not in (None, "") else s.slow_latency_s)
    elif kind == "flaky":
        param = float(param if param not in (None, "") else 1.0)
        if not 0 <= param <= 1:
            raise FaultError("bad_param", "flaky rate must be between 0 and 1")
    elif kind in ("revoked_certificate", "foreign_certificate"):
        variant = "revoked" if kind == "revoked_certificate" else "foreign"
        await asyncio.to_thread(fleet.creds.tls_paths, gw.gateway_id, variant)  # CA work off the loop
    gw.faults[kind] = {"param": param, "since": gw.gateway_time() if since is None else float(since)}
    if kind == "offline" and rt.management is not None:
        rt.management.transport.abort()  # an unreachable gateway loses its connection
    elif kind == "missing_meter":
        entry = gw.log("system", LEVEL_ERROR, OUTCOME_FAILURE, f"meter {param} does not answer on the LMN")
        fleet.outbox.raise_event(gw, "meter_missing", LEVEL_ERROR, entry.text, record=entry, meter=param)
    elif kind == "tamper_alarm":
        gw.log("calibration", LEVEL_ERROR, OUTCOME_FAILURE, f"meter {param}: terminal cover opened")
        entry = gw.log("system", LEVEL_ERROR, OUTCOME_FAILURE, f"meter {param}: tamper detected")
        fleet.outbox.raise_event(gw, "meter_tamper", LEVEL_ERROR, "terminal cover opened", record=entry, meter=param)
    elif kind == "clock_drift":
        entry = gw.log("system", LEVEL_WARNING, OUTCOME_FAILURE, f"clock deviates by {param:+.0f} s")
        code = "time_invalid" if abs(param) > s.max_clock_offset_s else "clock_drift"
        fleet.outbox.raise_event(gw, code, LEVEL_WARNING, entry.text, record=entry)
    gw.persist(fleet.store)
    fleet.deliveries.refresh(gw)  # held periods, clock shift, the voltage watch
    return gw.faults[kind]


def clear_fault(fleet: Fleet, gateway_id: str, kind: str) -> bool:
    rt = _runtime(fleet, gateway_id)
    gw = rt.state
    existed = gw.faults.pop(kind, None) is not None
    if existed and kind in ("missing_meter", "tamper_alarm"):
        gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"{kind.replace('_', ' ')} cleared")
    gw.persist(fleet.store)
    if kind == "offline":
        fleet.outbox.kick(rt)
    fleet.deliveries.refresh(gw)  # a `late` fault cleared: what it held back goes now
    return existed


def set_fleet_faults(fleet: Fleet, offline_pct: float | None = None, flaky_pct: float | None = None,
                     shares: dict[str, float] | None = None) -> dict[str, Any]:
    """The fleet-level switch: a deterministic X % of gateways offline / Y % flaky, and shares of
    the fleet with a data fault (``shares``: kind -> percent, default parameters, acting from
    now), chosen by a hash of seed and gateway ID, so the same gateways are affected every run."""
    wanted = dict(shares or {})
    for name, value in (("offline", offline_pct), ("flaky", flaky_pct)):
        if value is not None:
            wanted[name] = value
    for kind, value in wanted.items():
        if kind not in FLEET_KINDS:
            raise FaultError("unknown_fault", f"{kind} has no fleet share; one of {', '.join(FLEET_KINDS)}")
        if not 0 <= float(value) <= 100:
            raise FaultError("bad_param", f"{kind} share must be between 0 and 100 (%)")
    for kind, value in wanted.items():
        fleet.faults.set_share(kind, float(value))
    for rt in fleet.gateways.values():
        if fleet.faults.in_force(rt.state, "offline") is not None:
            if rt.management is not None:
                rt.management.transport.abort()
        elif rt.outbox:
            fleet.outbox.kick(rt)  # back online: deliver what waited
        if any(k in DATA_FAULTS for k in wanted):
            fleet.deliveries.refresh(rt.state)
    return {"offline_pct": fleet.faults.offline_pct, "flaky_pct": fleet.faults.flaky_pct,
            "shares": dict(fleet.faults.shares),
            "affected": {kind: sum(1 for rt in fleet.gateways.values() if fleet.faults.in_force(rt.state, kind))
                         for kind in fleet.faults.shares},
            "offline": sum(1 for rt in fleet.gateways.values() if fleet.faults.in_force(rt.state, "offline")),
            "flaky": sum(1 for rt in fleet.gateways.values() if fleet.faults.in_force(rt.state, "flaky"))}
