"""Which faults are in force on a gateway: its own (set through the control API, kept in its state)
plus the fleet-level switch that makes a fixed share of the fleet offline or flaky, or gives a share
of the fleet a data fault (gaps, duplicates, ...; :mod:`simulator.datafaults`, default parameters)."""

from __future__ import annotations

import time
from typing import Any

from simulator.datafaults import DATA_FAULTS
from simulator.meters import unit
from simulator.state import GatewayState

FLEET_KINDS = ("offline", "flaky", *DATA_FAULTS)


class FleetFaults:
    def __init__(self, offline_pct: float, flaky_pct: float) -> None:
        self.shares: dict[str, float] = {}  # kind -> percent of the fleet
        self.since: dict[str, float] = {}  # kind -> when its share was set (data faults act from then)
        self.offline_pct = offline_pct
        self.flaky_pct = flaky_pct

    @property
    def offline_pct(self) -> float:
        return self.shares.get("offline", 0.0)

    @offline_pct.setter
    def offline_pct(self, value: float) -> None:
        self.set_share("offline", value)

    @property
    def flaky_pct(self) -> float:
        return self.shares.get("flaky", 0.0)

    @flaky_pct.setter
    def flaky_pct(self, value: float) -> None:
        self.set_share("flaky", value)

    def set_share(self, kind: str, pct: float, now: float | None = None) -> None:
        if kind not in FLEET_KINDS:
            raise ValueError(f"{kind} has no fleet share; one of {', '.join(FLEET_KINDS)}")
        if pct:
            if not self.shares.get(kind):
                self.since[kind] = time.time() if now is None else now
            self.shares[kind] = float(pct)
        else:
            self.shares.pop(kind, None)
            self.since.pop(kind, None)

    def in_force(self, gw: GatewayState, kind: str) -> dict[str, Any] | None:
        f = gw.faults.get(kind)
        if f is not None:
            return f
        pct = self.shares.get(kind, 0.0)
        # a hash of seed and ID, not a random draw: the same gateways are affected every run
        if pct and unit(gw.seed, gw.gateway_id, f"fleet-{kind}") * 100 < pct:
            return {"param": None, "fleet": True, "since": self.since.get(kind, 0.0)}
        return None

    def all_in_force(self, gw: GatewayState) -> dict[str, Any]:
        out = dict(gw.faults)
        for kind in self.shares:
            f = self.in_force(gw, kind)
            if f is not None and kind not in out:
                out[kind] = f
        return out
