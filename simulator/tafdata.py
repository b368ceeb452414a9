"""What a gateway delivers for one evaluation profile and period (docs/protocol.md 14.2), built from
what it recorded (:class:`simulator.readings.Recorder`) into the XML of :mod:`simulator.infoxml`.

* TAF 7: profile generic 1-0:99.1.0, an entry at the start of the period (local midnight for a
  day) and one at the end of every quarter hour: 97 entries a day (93 / 101 on DST days).
* TAF 10: profile generic 1-0:99.97.0, one entry at the end of every interval; a threshold
  delivery has one entry at the moment a voltage left the band, with SMGW bit 16.
* TAF 1, 2, 6, 9: extended registers (class 4) with value, scaler/unit, status and capture time.

Each value column also has its register object with scaler and unit (attribute 3). Values are
written in the scaler of the meter profile's register (default: the meter's own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulator import infoxml as I
from simulator.meters import GRID_REGISTERS, INTERVAL_S
from simulator.readings import Recorder, tariff_schedule

ENERGY_UNIT = 30  # Wh
# OBIS -> (DLMS unit, natural scaler, typed-data element) of every register a delivery can carry
REGISTERS: dict[str, tuple[int, int, str]] = {
    **{o: (ENERGY_UNIT, 0, "long64-unsigned") for o in ("1-0:1.8.0", "1-0:2.8.0", "1-0:1.8.1", "1-0:1.8.2",
                                                        "1-0:2.8.1", "1-0:2.8.2")},
    **{o: (u, s, "double-long" if o == "1-0:16.7.0" else "double-long-unsigned")
       for o, (u, s) in GRID_REGISTERS.items()},
}
REGISTER_TAFS = (1, 2, 6, 9)
PROFILE_TAFS = (7, 10)


@dataclass(frozen=True)
class Built:
    xml: bytes
    entries: int  # buffer entries or registers


def rescale(value: int | None, natural: int, scaler: int) -> int | None:
    """``value`` (in 10^natural units) written in 10^scaler units; coarser scalers truncate."""
    if value is None or natural == scaler:
        return value
    if scaler < natural:
        return value * 10 ** (natural - scaler)
    step = 10 ** (scaler - natural)
    return value // step if value >= 0 else -((-value) // step)


def columns(ep: dict[str, Any], mp: dict[str, Any]) -> list[I.Column]:
    """The profile's registers as columns, in the scaler of the meter profile's register."""
    scalers = {r["obis"]: int(r.get("scaler", 0)) for r in mp.get("registers", [])}
    out = []
    for obis in ep["registers"]:
        unit, natural, kind = REGISTERS.get(obis, (255, 0, "long64-unsigned"))
        out.append(I.Column(obis, scalers.get(obis, natural), unit, kind))
    return out


def _natural(obis: str) -> int:
    return REGISTERS.get(obis, (255, 0, ""))[1]


class Builder:
    """Builds the deliveries of one evaluation profile ``pid`` of a gateway."""

    def __init__(self, rec: Recorder, gateway: str, pid: str, ep: dict[str, Any], mp: dict[str, Any]) -> None:
        self.rec, self.gateway, self.pid, self.ep, self.mp = rec, gateway, pid, ep, mp
        self.meter = str(mp.get("meter", ""))
        self.columns = columns(ep, mp)
        if ep.get("switchingTimes"):
            self.tariffs: tuple[list[dict[str, str]], float] | None = (ep["switchingTimes"],
                                                                      float(ep.get("since") or 0.0))
        else:
            self.tariffs = tariff_schedule(rec.gw, self.meter)

    def _doc(self, reason: str, created: float, objects: Sequence[str]) -> bytes:
        return I.document(gateway=self.gateway, recipient=self.ep["recipient"], profile=self.pid,
                          taf=int(self.ep["taf"]), reason=reason, created=created, meter=self.meter, objects=objects)

    def _energy_values(self, k: int) -> tuple[list[int | None], int]:
        reading = self.rec.reading(k)
        values = [rescale(self.rec.register(c.obis, k, reading, self.tariffs), _natural(c.obis), c.scaler)
                  for c in self.columns]
        return values, reading.status

    def load_profile(self, a: float, b: float, reason: str, created: float) -> Built:
        """TAF 7: an entry at ``a`` and at the end of every quarter hour up to ``b``."""
        entries = []
        for k in range(int(a // INTERVAL_S), int(b // INTERVAL_S) + 1):
            values, status = self._energy_values(k)
            entries.append((self.rec.capture_time(k * INTERVAL_S), values, status))
        objects = [*I.register_objects(self.columns), I.profile_generic(I.LOAD_PROFILE, INTERVAL_S, self.columns,
                                                                         entries)]
        return Built(self._doc(reason, created, objects), len(entries))

    def grid_profile(self, a: float, b: float, interval: int, reason: str, created: float) -> Built:
        """TAF 10: one entry at the end of every ``interval`` in (a, b]."""
        first = (int(a) // interval + 1) * interval
        times = list(range(first, int(b) + 1, interval))
        entries = [self._grid_entry(t) for t in times]
        objects = [*I.register_objects(self.columns), I.profile_generic(I.GRID_PROFILE, interval, self.columns,
                                                                         entries)]
        return Built(self._doc(reason, created, objects), len(entries))

    def threshold(self, t: float, created: float) -> Built:
        """TAF 10 threshold mode: the values at the moment ``t`` a voltage left the band."""
        entry = self._grid_entry(float(int(t)), triggered=True)
        objects = [*I.register_objects(self.columns), I.profile_generic(I.GRID_PROFILE, int(self.ep["interval"]),
                                                                         self.columns, [entry])]
        return Built(self._doc("threshold", created, objects), 1)

    def _grid_entry(self, t: float, *, triggered: bool = False) -> tuple[float, list[int | None], int]:
        values = [rescale(self.rec.grid(c.obis, t), _natural(c.obis), c.scaler) for c in self.columns]
        return self.rec.capture_time(t), values, self.rec.grid_status(t, triggered=triggered)

    def registers(self, t: float, reason: str, created: float) -> Built:
        """TAF 1, 2, 6, 9: the registers at instant ``t`` (a quarter-hour boundary)."""
        k = int(t // INTERVAL_S)
        values, status = self._energy_values(k)
        objects = []
        for c, value in zip(self.columns, values, strict=True):
            st = self.rec.grid_status(k * INTERVAL_S) if c.obis in GRID_REGISTERS else status
            objects.append(I.extended_register(c, value, st, self.rec.capture_time(k * INTERVAL_S)))
        return Built(self._doc(reason, created, objects), len(objects))
