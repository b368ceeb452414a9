"""Faults in the data a gateway delivers to its EMTs (docs/simulator.md, "Faults"): what each one
takes as ``param``, its default, and the status bits of ``status_error`` (DS Tab. 15.1).

Value faults (``gaps``, ``spikes``, ``zero_periods``, ``register_reset``, ``status_error``,
``clock_shift``, ``voltage_excursion``) change the values, status words or capture times of every
entry captured at or after the fault's ``since`` (:mod:`simulator.readings` applies them); delivery
faults (``duplicates``, ``late``) change how deliveries are sent (:mod:`simulator.deliveries`).
A fault acts on what is built while it is set: a day built before it was set is not rebuilt.
"""

from __future__ import annotations

import re
from typing import Any

from simulator.meters import (
    METER_BACKSTOP,
    METER_FATAL,
    METER_MAGNETIC,
    METER_TERMINAL_COVER,
    SMGW_ERROR,
    SMGW_METER_TAMPER,
    SMGW_TIME_INVALID,
    SMGW_VALUE_NOT_VALIDATED,
    SMGW_WARNING,
)

VALUE_FAULTS = ("gaps", "spikes", "zero_periods", "register_reset", "status_error", "clock_shift",
                "voltage_excursion")
DELIVERY_FAULTS = ("duplicates", "late")
DATA_FAULTS = VALUE_FAULTS + DELIVERY_FAULTS

DEFAULTS: dict[str, Any] = {
    "gaps": 0.05,  # share of quarter hours without value
    "spikes": 10_000,  # Wh added to one register value a day
    "zero_periods": 3.0,  # hours of zero consumption a day
    "register_reset": 10,  # Wh the import register restarts at
    "status_error": "time_invalid",  # names of STATUS_ERRORS joined by "+", or a 64-bit hex mask
    "clock_shift": 3.0,  # minutes the capture times are shifted by
    "voltage_excursion": "L1:200",  # phase and voltage (V) from the fault's start
    "duplicates": 1.0,  # share of deliveries sent twice
    "late": 2,  # a period is held back until this many later periods were delivered
}

# status_error names -> bits of the combined status word (SMGW bits << 32 | meter bits)
STATUS_ERRORS: dict[str, int] = {
    "tamper": (SMGW_METER_TAMPER << 32) | METER_TERMINAL_COVER,  # terminal cover opened
    "magnetic": (SMGW_METER_TAMPER << 32) | METER_MAGNETIC,
    "time_invalid": SMGW_TIME_INVALID << 32,
    "smgw_error": SMGW_ERROR << 32,
    "warning": SMGW_WARNING << 32,
    "not_validated": SMGW_VALUE_NOT_VALIDATED << 32,
    "meter_fatal": METER_FATAL,
    "backstop": METER_BACKSTOP,
}

_PHASE_RE = re.compile(r"^(?:L([123])\s*:\s*)?(\d{1,3}(?:\.\d)?)$")


def normalise(kind: str, param: Any) -> Any:
    """The fault's parameter, checked and typed (the default when ``param`` is empty); raises
    ValueError naming what is wrong."""
    if param in (None, ""):
        param = DEFAULTS[kind]
    try:
        if kind in ("gaps", "duplicates"):
            share = float(param)
            if not 0 < share <= 1:
                raise ValueError(f"{kind} takes a share between 0 and 1")
            return share
        if kind == "late":
            n = int(param)
            if not 1 <= n <= 30:
                raise ValueError("late takes the number of later periods (1-30)")
            return n
        if kind == "spikes":
            wh = int(param)
            if not 1 <= wh <= 10**9:
                raise ValueError("spikes takes the jump in Wh (1 - 10^9)")
            return wh
        if kind == "zero_periods":
            hours = float(param)
            if not 0.25 <= hours <= 23:
                raise ValueError("zero_periods takes hours a day (0.25 - 23)")
            return hours
        if kind == "register_reset":
            wh = int(param)
            if not 0 <= wh <= 10**6:
                raise ValueError("register_reset takes the Wh the register restarts at (0 - 10^6)")
            return wh
        if kind == "status_error":
            status_error_mask(str(param))
            return str(param)
        if kind == "clock_shift":
            minutes = float(param)
            if minutes == 0 or abs(minutes) > 120:
                raise ValueError("clock_shift takes minutes (non-zero, at most 120 either way)")
            return minutes
        if kind == "voltage_excursion":
            phase, volts = voltage_excursion(str(param))
            return f"L{phase}:{volts:g}"
    except (TypeError, ValueError) as err:
        raise ValueError(str(err) if str(err).startswith(kind) else f"{kind}: bad param {param!r}") from None
    raise ValueError(f"{kind} is not a data fault")


def status_error_mask(param: str) -> int:
    """Bits of ``status_error``: names of :data:`STATUS_ERRORS` joined by ``+`` or ``,``, or a
    hex mask ``0x...`` of the 64-bit status word."""
    text = param.strip().lower()
    if text.startswith("0x"):
        mask = int(text, 16)
        if not 0 < mask < 2**64:
            raise ValueError("status_error mask must be a non-zero 64-bit value")
        return mask
    mask = 0
    for name in re.split(r"[+,\s]+", text):
        if name not in STATUS_ERRORS:
            raise ValueError(f"status_error: {name!r} is none of {', '.join(STATUS_ERRORS)} (or a 0x mask)")
        mask |= STATUS_ERRORS[name]
    return mask


def voltage_excursion(param: str) -> tuple[int, float]:
    """(phase 1-3, volts) of ``voltage_excursion``: ``L2:260`` or ``200`` (phase L1)."""
    m = _PHASE_RE.fullmatch(param.strip())
    if m is None:
        raise ValueError("voltage_excursion takes L<phase>:<volts>, e.g. L1:200")
    volts = float(m.group(2))
    if volts > 400:
        raise ValueError("voltage_excursion: at most 400 V")
    return int(m.group(1) or 1), volts
