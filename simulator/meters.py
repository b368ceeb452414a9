"""Base meters on a simulated gateway's LMN: deterministic 15-minute register values.

Every value is a pure function of (seed, meter ID, interval index k = unix_seconds // 900), so
tests can predict readings and a restart changes nothing. The register is written in closed form,
so reading interval k costs O(1) whatever the date:

    R(k) = base + E * (96 * G(d) + g(d) * S(j) + b * u(k) * s(j))      (import, 1-0:1.8.0, Wh)

with d the day and j the quarter hour (CET, UTC+1 fixed), s(j) a household daily shape with mean 1
(night trough, morning and evening peaks), S(j) its running sum, g(d) a seasonal factor (winter
high) and G(d) its closed-form running sum, u(k) uniform noise from a hash. The noise term
telescopes: an interval's consumption is E * (g(d) * s(j) + b * (u(k+1) s(j+1) - u(k) s(j))) >= 0
because b < min(g) * min(s), so registers are monotonic by construction, not by clamping.
Prosumer meters (a share) also have an export register 1-0:2.8.0 with a PV shape, same scheme.

A share of meters has gaps (intervals without a value: SMGW status bit 13 NoValue) and a smaller
share has tamper events (SMGW bit 14 plus the meter's terminal-cover bit 10). Status words follow
DS Tab. 15.1 (constants below).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from functools import cached_property
from zoneinfo import ZoneInfo

from core.ids import demo_meter_mk0

INTERVAL_S = 900
PER_DAY = 96
CET_OFFSET_INTERVALS = 4  # UTC+1: local quarter hour = (k + 4) % 96
K_ORIGIN = 1_577_836_800 // INTERVAL_S  # 2020-01-01T00:00Z: registers count from here

# The combined status word of DS Tab. 15.1 (TR-03109-1 DS section 15.1): 64 bits, the SMGW's 32 bits
# in the upper half, the meter's 32 bits in the lower half, bit 0 = least significant bit of each half.
# SMGW bits
SMGW_FIXED = (1 << 0) | (1 << 2)  # bits 0 and 2 are always 1 (every meter type)
SMGW_VALUE_NOT_VALIDATED = 1 << 1  # values not for billing
SMGW_ERROR = 1 << 8  # the SMGW detected a fatal error
SMGW_TIME_INVALID = 1 << 9  # SMGW system time not valid
SMGW_WARNING = 1 << 12
SMGW_NO_VALUE = 1 << 13  # no meter value in the receive window
SMGW_METER_TAMPER = 1 << 14  # magnetic, mechanical or electrical manipulation detected in the meter
SMGW_VALUE_TRIGGERED = 1 << 16  # value sent because a threshold was crossed
# (bit 15 = 0: FNN base meter; bit 17 = 0: status word of a wired meter: both stay 0 here)
# Meter bits of a wired electricity meter (FNN Lastenheft Basiszähler)
METER_BASE = 1 << 2  # 1: type base meter
METER_ACTIVE_POWER = 1 << 8  # 1: active power present, 0: active power sum too low
METER_MAGNETIC = 1 << 9  # magnetic manipulation
METER_TERMINAL_COVER = 1 << 10  # mechanical manipulation (terminal cover or sealing pin open)
METER_EXPORT = 1 << 11  # energy direction of the sum: 1 = -A (export), 0 = +A
METER_BACKSTOP = 1 << 16  # backstop active
METER_FATAL = 1 << 17  # error relevant under calibration law
METER_VOLTAGE_L1 = 1 << 18  # L1 voltage present
METER_VOLTAGE_L2 = 1 << 19
METER_VOLTAGE_L3 = 1 << 20
METER_VOLTAGES = METER_VOLTAGE_L1 | METER_VOLTAGE_L2 | METER_VOLTAGE_L3
METER_NORMAL = METER_BASE | METER_VOLTAGES  # a base meter in operation (plus METER_ACTIVE_POWER under load)

# Grid state registers (TAF 10): OBIS -> (DLMS unit, natural scaler); and the phase of each
GRID_REGISTERS = {
    "1-0:32.7.0": (35, -1), "1-0:52.7.0": (35, -1), "1-0:72.7.0": (35, -1),  # voltage L1-L3 (0.1 V)
    "1-0:31.7.0": (33, -2), "1-0:51.7.0": (33, -2), "1-0:71.7.0": (33, -2),  # current L1-L3 (0.01 A)
    "1-0:16.7.0": (27, 0),  # total active power (W, net: import - export)
    "1-0:14.7.0": (44, -2),  # frequency (0.01 Hz)
}
GRID_PHASE = {"1-0:32.7.0": 1, "1-0:52.7.0": 2, "1-0:72.7.0": 3, "1-0:31.7.0": 1, "1-0:51.7.0": 2, "1-0:71.7.0": 3}
NOMINAL_VOLTAGE_DV = 2300  # 230.0 V in 0.1 V

GAP_SHARE = 0.05  # meters with gaps
TAMPER_SHARE = 0.01  # meters with tamper events
PROSUMER_SHARE = 0.15  # meters with PV export
_NOISE = 0.2  # b for import: < min(g) * min(s) = 0.8 * 0.35
_PV_NOISE = 0.25  # b for export: < min(g_pv) = 0.3


def status_word(smgw_bits: int, meter_bits: int = 0) -> int:
    """The combined 64-bit status word (DS Tab. 15.1); the SMGW's fixed bits 0 and 2 are always set."""
    return ((smgw_bits | SMGW_FIXED) << 32) | meter_bits


def _shape(points: list[tuple[float, float, float]], floor: float, mean_one: bool = True) -> list[float]:
    """96 values from Gaussian bumps (hour, height, width) on a floor; optionally mean 1."""
    vals = []
    for j in range(PER_DAY):
        h = (j + 0.5) / 4
        v = floor + sum(a * math.exp(-(((h - c) / w) ** 2)) for c, a, w in points)
        vals.append(v)
    if mean_one:
        m = sum(vals) / PER_DAY
        vals = [v / m for v in vals]
    return vals


# Household: low at night, morning peak ~7h, midday plateau, evening peak ~19h.
HOUSEHOLD = _shape([(7.0, 0.9, 1.2), (12.5, 0.5, 2.0), (19.0, 1.5, 1.8)], floor=0.45)
# PV: zero at night, bell around 13h (CET), mean 1 over the day.
_pv_raw = [max(0.0, math.cos((((j + 0.5) / 4) - 13.0) / 7.0 * math.pi / 2)) ** 2 for j in range(PER_DAY)]
_pv_mean = sum(_pv_raw) / PER_DAY
PV = [v / _pv_mean for v in _pv_raw]


def _running(values: list[float]) -> list[float]:
    out, acc = [0.0], 0.0
    for v in values:
        acc += v
        out.append(acc)
    return out  # out[j] = sum of the first j values; out[96] = 96 for a mean-1 shape


HOUSEHOLD_CUM = _running(HOUSEHOLD)
PV_CUM = _running(PV)
_THETA = 2 * math.pi / 365.25


def _season(d: int, amplitude: float, phase_day: float) -> float:
    return 1.0 + amplitude * math.cos(_THETA * (d - phase_day))


def _season_cum(d: int, amplitude: float, phase_day: float) -> float:
    """Sum of _season(d') for d' in [0, d): closed form of a sum of cosines."""
    if d <= 0:
        return 0.0
    phi = -_THETA * phase_day
    s = math.sin(d * _THETA / 2) / math.sin(_THETA / 2) * math.cos(phi + (d - 1) * _THETA / 2)
    return d + amplitude * s


def unit(seed: int, *parts: object) -> float:
    """A deterministic uniform number in [0, 1) from the seed and ``parts``."""
    h = hashlib.blake2b(":".join(str(p) for p in (seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


@dataclass(frozen=True)
class Reading:
    """One 15-minute reading at the start of interval ``k`` (values None when missing)."""

    k: int
    import_wh: int | None
    export_wh: int | None
    status: int

    @property
    def timestamp(self) -> int:
        return self.k * INTERVAL_S


@dataclass(frozen=True)
class MeterModel:
    meter_id: str
    seed: int = 0

    @cached_property
    def annual_kwh(self) -> float:
        return 1500 + 6500 * unit(self.seed, self.meter_id, "annual")

    @cached_property
    def interval_wh(self) -> float:
        return self.annual_kwh * 1000 / (365.25 * PER_DAY)

    @cached_property
    def base_import_wh(self) -> int:
        return int(5_000_000 * unit(self.seed, self.meter_id, "base"))

    @cached_property
    def prosumer(self) -> bool:
        return unit(self.seed, self.meter_id, "pv") < PROSUMER_SHARE

    @cached_property
    def pv_interval_wh(self) -> float:
        kwp = 3 + 7 * unit(self.seed, self.meter_id, "kwp")
        return kwp * 950 * 1000 / (365.25 * PER_DAY)  # ~950 kWh per kWp and year

    @cached_property
    def has_gaps(self) -> bool:
        return unit(self.seed, self.meter_id, "gaps") < GAP_SHARE

    @cached_property
    def has_tamper(self) -> bool:
        return unit(self.seed, self.meter_id, "tamper") < TAMPER_SHARE

    @cached_property
    def firmware(self) -> str:
        return f"1.{int(4 * unit(self.seed, self.meter_id, 'fw'))}.0"

    @cached_property
    def _origin(self) -> tuple[float, float]:
        return self._raw_import(K_ORIGIN), self._raw_export(K_ORIGIN)

    # -- closed forms (before the origin shift)
    def _raw_import(self, k: int) -> float:
        d, j = divmod(k + CET_OFFSET_INTERVALS, PER_DAY)
        g = _season(d, 0.2, 15.0)
        noise = _NOISE * unit(self.seed, self.meter_id, "n", k) * HOUSEHOLD[j]
        return self.interval_wh * (PER_DAY * _season_cum(d, 0.2, 15.0) + g * HOUSEHOLD_CUM[j] + noise)

    def _raw_export(self, k: int) -> float:
        d, j = divmod(k + CET_OFFSET_INTERVALS, PER_DAY)
        g = _season(d, 0.7, 172.0)
        noise = _PV_NOISE * unit(self.seed, self.meter_id, "p", k) * PV[j]
        return self.pv_interval_wh * (PER_DAY * _season_cum(d, 0.7, 172.0) + g * PV_CUM[j] + noise)

    # -- public
    def import_wh(self, k: int) -> int:
        """Import register 1-0:1.8.0 at the start of interval ``k`` (Wh)."""
        return self.base_import_wh + max(0, math.floor(self._raw_import(k) - self._origin[0]))

    def export_wh(self, k: int) -> int:
        """Export register 1-0:2.8.0 (Wh); 0 for meters without generation."""
        if not self.prosumer:
            return 0
        return max(0, math.floor(self._raw_export(k) - self._origin[1]))

    def power_w(self, k: int) -> int:
        """Mean active import power over interval ``k`` (1-0:16.7.0, W)."""
        return (self.import_wh(k + 1) - self.import_wh(k)) * 4

    def voltage_v(self, k: int, phase: int) -> float:
        return round(230.0 + 6.0 * (unit(self.seed, self.meter_id, "v", phase, k) - 0.5), 1)

    def net_power_w(self, k: int) -> int:
        """Mean net active power over interval ``k`` (import - export, W; negative while feeding in)."""
        return (self.import_wh(k + 1) - self.import_wh(k) - self.export_wh(k + 1) + self.export_wh(k)) * 4

    def grid_value(self, obis: str, t: float) -> int | None:
        """A grid state value (TAF 10) sampled at time ``t``, in the register's natural scaler
        (:data:`GRID_REGISTERS`): voltage per phase 230 V +- 3 V (a new sample every minute),
        current per phase from the quarter hour's mean power, net power, frequency 50 Hz +- 0.05."""
        minute = int(t // 60)
        k = int(t // INTERVAL_S)
        phase = GRID_PHASE.get(obis)
        if obis in ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0") and phase:
            return round(2300 + 60 * (unit(self.seed, self.meter_id, "v", phase, minute) - 0.5))
        if obis in ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0") and phase:
            volts = 230 + 6 * (unit(self.seed, self.meter_id, "v", phase, minute) - 0.5)
            spread = 0.85 + 0.3 * unit(self.seed, self.meter_id, "i", phase, minute)
            amps = abs(self.net_power_w(k)) / 3 / volts * spread
            return round(amps * 100)
        if obis == "1-0:16.7.0":
            return self.net_power_w(k)
        if obis == "1-0:14.7.0":
            return round(5000 + 10 * (unit(self.seed, self.meter_id, "f", minute) - 0.5))
        return None

    def gap(self, k: int) -> bool:
        # gaps come in two-hour blocks, about 2 % of the time
        return self.has_gaps and unit(self.seed, self.meter_id, "gap", k // 8) < 0.02

    def tamper(self, k: int) -> bool:
        return self.has_tamper and unit(self.seed, self.meter_id, "tamper", k) < 0.0005

    def reading(self, k: int, *, missing_since: int | None = None, tamper_since: int | None = None) -> Reading:
        """The reading the gateway holds at the start of interval ``k`` (the end of interval k - 1),
        with its status word (DS Tab. 15.1); ``missing_since``/``tamper_since`` (interval indices)
        come from faults set on the gateway. Without a value (gap, missing meter) the gateway sets
        NoValue and has no meter status (no telegram arrived)."""
        smgw_bits = 0
        tampered = self.tamper(k) or (tamper_since is not None and k >= tamper_since)
        if tampered:
            smgw_bits |= SMGW_METER_TAMPER
        if self.gap(k) or (missing_since is not None and k >= missing_since):
            return Reading(k, None, None, status_word(smgw_bits | SMGW_NO_VALUE))
        imp, exp = self.import_wh(k), self.export_wh(k)
        meter_bits = METER_NORMAL | (METER_TERMINAL_COVER if tampered else 0)
        d_imp, d_exp = imp - self.import_wh(k - 1), exp - self.export_wh(k - 1)
        if d_imp > 0 or d_exp > 0:
            meter_bits |= METER_ACTIVE_POWER
        if d_exp > d_imp:
            meter_bits |= METER_EXPORT
        return Reading(k, imp, exp, status_word(smgw_bits, meter_bits))

    def readings(self, start_k: int, end_k: int, **faults: int | None) -> list[Reading]:
        """Readings for intervals ``start_k`` <= k < ``end_k``."""
        return [self.reading(k, **faults) for k in range(start_k, end_k)]


def demo_mk0(meter_id: str) -> bytes:
    """The 16-byte LMN master key MK0 of a simulated meter: the demo key of ``domain.ids``, so demo
    master data holds the same keys. Pairing with any other key fails authentication."""
    return demo_meter_mk0(meter_id)


LOCAL_TZ = ZoneInfo("Europe/Berlin")  # TAF 2 switching times are local legal time (docs/protocol.md 10.7)


def tariff_register_wh(model: MeterModel, register: str, schedule: list[dict[str, str]], since_s: float,
                       k: int) -> int:
    """A TAF 2 tariff register derived in the gateway: the Wh imported (1-0:1.8.0) while
    ``register`` was the active tariff under the daily ``schedule`` (``[{"at": "HH:MM",
    "register": obis}]``; from each time to the next, the last one over midnight), counted from the
    first full interval after ``since_s`` (when the evaluation profile was written) to the start
    of interval ``k``. The tariff registers of one schedule add up to the import over that span."""
    start_k = -(-int(since_s) // INTERVAL_S)
    if k <= start_k:
        return 0
    times = sorted((int(s["at"][:2]) * 60 + int(s["at"][3:5]), s["register"]) for s in schedule)
    first = dt.datetime.fromtimestamp(start_k * INTERVAL_S, LOCAL_TZ).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(k * INTERVAL_S, LOCAL_TZ).date()
    total = 0
    day = first
    while day <= last:
        for i, (minute, reg) in enumerate(times):
            if reg != register:
                continue
            nxt_day, nxt_minute = (day, times[i + 1][0]) if i + 1 < len(times) else (day + dt.timedelta(days=1),
                                                                                      times[0][0])
            a = _local_k(day, minute)
            b = _local_k(nxt_day, nxt_minute)
            a, b = max(a, start_k), min(b, k)
            if b > a:
                total += model.import_wh(b) - model.import_wh(a)
        day += dt.timedelta(days=1)
    return total


def _local_k(day: dt.date, minute: int) -> int:
    """The interval in which local time ``day`` + ``minute`` falls (a switching time inside a
    quarter hour takes effect from that quarter hour)."""
    t = dt.datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=LOCAL_TZ)
    return int(t.timestamp()) // INTERVAL_S
