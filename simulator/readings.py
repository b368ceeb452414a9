"""What a gateway records from the meters on its LMN: 15-minute readings, register values by OBIS
code and grid state samples, with the faults in force applied (``missing_meter``, ``tamper_alarm``,
``clock_drift`` beyond the validity limit, and the data faults of :mod:`simulator.datafaults`).

A fault acts on values captured at or after its ``since``. Everything stays a pure function of the
seed, the meter, the instant and the faults, so a delivery can be rebuilt and a test can predict it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from simulator import datafaults
from simulator.meters import (
    GRID_PHASE,
    GRID_REGISTERS,
    INTERVAL_S,
    METER_ACTIVE_POWER,
    METER_EXPORT,
    METER_NORMAL,
    METER_VOLTAGE_L1,
    PER_DAY,
    SMGW_METER_TAMPER,
    SMGW_NO_VALUE,
    SMGW_TIME_INVALID,
    SMGW_VALUE_TRIGGERED,
    MeterModel,
    Reading,
    status_word,
    tariff_register_wh,
    unit,
)
from simulator.state import GatewayState

Faults = Mapping[str, Mapping[str, Any]]
TIME_VALID_LIMIT_S = 9.0  # |clock offset| beyond this: time not valid (1 % of a 15-minute period)


def _fault_meter(gw: GatewayState, faults: Faults, kind: str) -> tuple[str, int] | None:
    """The meter a meter fault of ``kind`` names (default: the first) and its first interval."""
    f = faults.get(kind)
    if f is None:
        return None
    meter = f.get("param") or next(iter(gw.meters), "")
    return meter, int(f.get("since", 0) // INTERVAL_S)


def meter_missing(gw: GatewayState, meter: str) -> bool:
    m = gw.meters.get(meter)
    fm = _fault_meter(gw, gw.faults, "missing_meter")
    return m is None or not m.get("present", True) or (fm is not None and fm[0] == meter)


class Recorder:
    """The values gateway ``gw`` records from ``model`` with the faults ``faults`` in force
    (default: the gateway's own; the fleet adds its fleet-level shares)."""

    def __init__(self, gw: GatewayState, model: MeterModel, faults: Faults | None = None,
                 time_valid_limit_s: float = TIME_VALID_LIMIT_S) -> None:
        self.gw, self.model = gw, model
        faults = gw.faults if faults is None else faults
        missing = _fault_meter(gw, faults, "missing_meter")
        tamper = _fault_meter(gw, faults, "tamper_alarm")
        self.missing_since = missing[1] if missing and missing[0] == model.meter_id else None
        self.tamper_since = tamper[1] if tamper and tamper[0] == model.meter_id else None
        # data faults: kind -> (param, since as an instant index k: instants k * 900 >= since)
        self.data: dict[str, tuple[Any, float]] = {}
        for kind in datafaults.VALUE_FAULTS:
            f = faults.get(kind)
            if f is not None:
                self.data[kind] = (datafaults.normalise(kind, f.get("param")), float(f.get("since") or 0.0))
        drift = faults.get("clock_drift")
        self.time_invalid_since: float | None = None
        if drift is not None and abs(float(drift.get("param") or 0)) > time_valid_limit_s:
            self.time_invalid_since = float(drift.get("since") or 0.0)
        self.status_mask = 0
        if "status_error" in self.data:
            self.status_mask = datafaults.status_error_mask(self.data["status_error"][0])
        self._zero_cache: dict[int, int] = {}

    # -- helpers
    def _on(self, kind: str, t: float) -> Any:
        """The param of data fault ``kind`` if it acts on an instant ``t``, else None."""
        f = self.data.get(kind)
        return f[0] if f is not None and t >= f[1] else None

    def _extra_status(self, t: float) -> int:
        bits = self.status_mask if self._on("status_error", t) is not None else 0
        if self.time_invalid_since is not None and t >= self.time_invalid_since:
            bits |= SMGW_TIME_INVALID << 32
        return bits

    def _zero_quarters(self, block: int) -> tuple[int, int]:
        """The zero-consumption window [q0, q1) (interval indices) of UTC day ``block``."""
        hours = self.data["zero_periods"][0]
        n = max(1, round(hours * 4))
        j0 = int(unit(self.model.seed, self.model.meter_id, "zero", block) * (PER_DAY - n + 1))
        return block * PER_DAY + j0, block * PER_DAY + j0 + n

    def _zeroed_wh(self, k: int) -> int:
        """Import that the ``zero_periods`` fault removed before instant ``k`` (consumption of the
        quarter hours inside the daily windows since the fault began)."""
        since = self.data["zero_periods"][1]
        first = math.ceil(since / INTERVAL_S)
        if k <= first:
            return 0
        total = 0
        for block in range(first // PER_DAY, (k - 1) // PER_DAY + 1):
            q0, q1 = self._zero_quarters(block)
            a, b = max(q0, first), min(q1, k)
            if b <= a:
                continue
            if a == q0 and b == q1:
                cached = self._zero_cache.get(block)
                if cached is None:
                    cached = self._zero_cache[block] = self.model.import_wh(b) - self.model.import_wh(a)
                total += cached
            else:
                total += self.model.import_wh(b) - self.model.import_wh(a)
        return total

    def _in_zero_window(self, q: int) -> bool:
        if self._on("zero_periods", q * INTERVAL_S) is None:
            return False
        q0, q1 = self._zero_quarters(q // PER_DAY)
        return q0 <= q < q1

    def _import(self, k: int, raw: int) -> int:
        """The import register at instant ``k`` after zero periods and a register reset."""
        value = raw
        if "zero_periods" in self.data:
            value -= self._zeroed_wh(k)
        reset = self.data.get("register_reset")
        if reset is not None and k * INTERVAL_S >= reset[1]:
            first = math.ceil(reset[1] / INTERVAL_S)
            base = self.model.import_wh(first)
            if "zero_periods" in self.data:
                base -= self._zeroed_wh(first)
            value = value - base + int(reset[0])
        return value

    def _spike_k(self, block: int) -> int:
        return block * PER_DAY + 1 + int(unit(self.model.seed, self.model.meter_id, "spike", block) * (PER_DAY - 2))

    # -- what the gateway records
    def reading(self, k: int) -> Reading:
        """The reading at instant ``k`` * 900 (register values at the end of quarter hour k - 1)."""
        t = k * INTERVAL_S
        r = self.model.reading(k, missing_since=self.missing_since, tamper_since=self.tamper_since)
        extra = self._extra_status(t)
        gaps = self._on("gaps", t)
        if r.import_wh is None or r.export_wh is None or (
                gaps is not None and unit(self.model.seed, self.model.meter_id, "gapfault", k) < gaps):
            tamper = r.status & (SMGW_METER_TAMPER << 32)
            return Reading(k, None, None, status_word(SMGW_NO_VALUE) | tamper | extra)
        imp, exp, status = r.import_wh, r.export_wh, r.status
        if "zero_periods" in self.data or "register_reset" in self.data:
            imp = self._import(k, imp)
            if self._in_zero_window(k - 1):  # no import in the quarter hour: power only while feeding in
                status &= ~(METER_ACTIVE_POWER | METER_EXPORT)
                if r.export_wh > self.model.export_wh(k - 1):
                    status |= METER_ACTIVE_POWER | METER_EXPORT
        reset = self.data.get("register_reset")
        if reset is not None and t >= reset[1]:
            exp -= self.model.export_wh(math.ceil(reset[1] / INTERVAL_S))
        spike = self._on("spikes", t)
        if spike is not None and k == self._spike_k(k // PER_DAY):
            imp += int(spike)
        return Reading(k, imp, exp, status | extra)

    def register(self, obis: str, k: int, reading: Reading,
                 tariffs: tuple[list[dict[str, str]], float] | None = None) -> int | None:
        """Register ``obis`` at instant ``k`` in its natural scaler (:func:`register_value`)."""
        value = register_value(self.model, obis, k, reading, tariffs)
        if obis in GRID_REGISTERS and value is not None:
            value = self._grid_fault(obis, k * INTERVAL_S, value)
        return value

    def grid(self, obis: str, t: float) -> int | None:
        """A grid state sample (TAF 10) at time ``t`` in its natural scaler; None without a value."""
        k = int(t // INTERVAL_S)
        if self.missing_since is not None and k >= self.missing_since:
            return None
        gaps = self._on("gaps", t)
        if self.model.gap(k) or (gaps is not None and unit(self.model.seed, self.model.meter_id, "gapfault", k) < gaps):
            return None
        value = self.model.grid_value(obis, t)
        return None if value is None else self._grid_fault(obis, t, value)

    def _grid_fault(self, obis: str, t: float, value: int) -> int:
        exc = self._on("voltage_excursion", t)
        if exc is not None and obis in ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0"):
            phase, volts = datafaults.voltage_excursion(exc)
            if GRID_PHASE[obis] == phase:
                return round(volts * 10)
        return value

    def voltages(self, t: float) -> dict[int, float]:
        """Phase -> volts at time ``t`` (what the TAF 10 threshold watch compares)."""
        out = {}
        for obis in ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0"):
            value = self.grid(obis, t)
            if value is not None:
                out[GRID_PHASE[obis]] = value / 10
        return out

    def grid_status(self, t: float, *, triggered: bool = False) -> int:
        """The status word of a grid state entry at ``t``; ``triggered``: sent because a threshold
        was crossed (SMGW bit 16)."""
        k = int(t // INTERVAL_S)
        extra = self._extra_status(t) | ((SMGW_VALUE_TRIGGERED << 32) if triggered else 0)
        tampered = self.model.tamper(k) or (self.tamper_since is not None and k >= self.tamper_since)
        smgw = SMGW_METER_TAMPER if tampered else 0
        if self.grid("1-0:14.7.0", t) is None:
            return status_word(smgw | SMGW_NO_VALUE) | extra
        meter = METER_NORMAL | (METER_ACTIVE_POWER if self.model.net_power_w(k) else 0)
        for phase, volts in self.voltages(t).items():
            if volts < 115:  # below half the nominal voltage: the meter reports the phase as absent
                meter &= ~(METER_VOLTAGE_L1 << (phase - 1))
        return status_word(smgw, meter) | extra

    def capture_time(self, t: float) -> float:
        """The capture time the gateway writes for instant ``t`` (shifted by ``clock_shift``)."""
        shift = self._on("clock_shift", t)
        return t + float(shift) * 60 if shift is not None else t


def tariff_schedule(gw: GatewayState, meter: str) -> tuple[list[dict[str, str]], float] | None:
    """The daily schedule and start of the meter's active TAF 2 evaluation profile, if it has one:
    its tariff registers are then derived by the gateway from 1-0:1.8.0 (docs/protocol.md 10.7)."""
    meters = gw.profiles.get("meter", {})
    for ep in gw.profiles.get("evaluation", {}).values():
        if ep.get("active") and ep.get("switchingTimes") and meters.get(ep["meterProfile"], {}).get("meter") == meter:
            return ep["switchingTimes"], float(ep.get("since") or 0.0)
    return None


def reading(gw: GatewayState, model: MeterModel, k: int, faults: Faults | None = None) -> Reading:
    return Recorder(gw, model, faults).reading(k)


def register_value(model: MeterModel, obis: str, k: int, reading: Reading,
                   tariffs: tuple[list[dict[str, str]], float] | None = None) -> int | None:
    """The value of register ``obis`` at instant ``k`` (natural scaler: Wh, W, 0.1 V, 0.01 A,
    0.01 Hz). ``tariffs``: the daily schedule and start of an active TAF 2 profile on this meter;
    the tariff registers it names are derived from 1-0:1.8.0 by it (``tariff_register_wh``),
    otherwise the meter's own 70/30 split."""
    if reading.import_wh is None or reading.export_wh is None:
        return None
    if obis == "1-0:1.8.0":
        return reading.import_wh
    if obis == "1-0:2.8.0":
        return reading.export_wh
    if tariffs is not None and any(s["register"] == obis for s in tariffs[0]):
        return tariff_register_wh(model, obis, tariffs[0], tariffs[1], k)
    if obis in ("1-0:1.8.1", "1-0:2.8.1"):  # high tariff share
        total = reading.import_wh if obis == "1-0:1.8.1" else reading.export_wh
        return total * 7 // 10
    if obis in ("1-0:1.8.2", "1-0:2.8.2"):
        total = reading.import_wh if obis == "1-0:1.8.2" else reading.export_wh
        return total - total * 7 // 10
    if obis == "1-0:16.7.0":
        return model.net_power_w(k - 1)
    if obis in GRID_REGISTERS:
        return model.grid_value(obis, k * INTERVAL_S)
    if obis == "1-1:1.29.0":
        return model.import_wh(k) - model.import_wh(k - 1)
    return None
