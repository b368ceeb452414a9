"""Which faults are in force on a gateway: its own (set through the control API, kept in its state)
plus the fleet-level switch that makes a fixed share of the fleet offline or flaky."""

from __future__ import annotations

from typing import Any

from simulator.meters import unit
from simulator.state import GatewayState


class FleetFaults:
    def __init__(self, offline_pct: float, flaky_pct: float) -> None:
        self.offline_pct = offline_pct
        self.flaky_pct = flaky_pct

    def in_force(self, gw: GatewayState, kind: str) -> dict[str, Any] | None:
        f = gw.faults.get(kind)
        if f is not None:
            return f
        pct = self.offline_pct if kind == "offline" else self.flaky_pct if kind == "flaky" else 0.0
        # a hash of seed and ID, not a random draw: the same gateways are affected every run
        if pct and unit(gw.seed, gw.gateway_id, f"fleet-{kind}") * 100 < pct:
            return {"param": None, "fleet": True}
        return None

    def all_in_force(self, gw: GatewayState) -> dict[str, Any]:
        out = dict(gw.faults)
        for kind in ("offline", "flaky"):
            f = self.in_force(gw, kind)
            if f is not None and kind not in out:
                out[kind] = f
        return out
