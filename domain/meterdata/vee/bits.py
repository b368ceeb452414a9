"""The combined status word of a value (BSI TR-03109-1 DS, Tab. 15.1), as the ingest stores it:
the SMGW's 32 bits in the upper half, the meter's 32 bits in the lower half.

Meter bits are read as those of a wired electricity meter (FNN Lastenheft Basiszähler column) when
the SMGW says the meter's word is of the wired type (SMGW bit 17 = 0) and the meter's word is not a
gas meter's (meter bit 3 = 0, DVGW G697); wireless (OMS) and gas meters give the same bits other
meanings. The voltage bits (18-20, 1: voltage present) are read only when the meter says it is a
base meter (meter bit 2 = 1): a word without them says nothing about voltage."""

from __future__ import annotations

# SMGW status (upper 32 bits), by bit number within the SMGW word.
SMGW_VALUE_NOT_VALIDATED = 1  # SMGW_ValueNotValidated: values not for billing
SMGW_ERROR = 8  # SMGW_Error: fatal error detected by the gateway
SMGW_TIME_NOT_VALID = 9  # SMGW_TimeNotValid
SMGW_WARNING = 12  # SMGW_Warning
SMGW_NO_VALUE = 13  # SMGW_NoValue: no meter value in the receive window
SMGW_TAMPER = 14  # MTR_Tamper: magnetic, mechanical, electrical manipulation detected in the meter
SMGW_WIRELESS_METER = 17  # type of the meter's word: 1 wireless OMS, 0 FNN base meter / DVGW G697

# Meter status of an FNN base meter (lower 32 bits).
METER_BASE_METER = 2  # 1: type base meter
METER_GAS = 3  # 1: wired gas meter (DVGW G697): its word has other meanings
METER_MAGNETIC = 9  # MTR_Tamper, magnetic manipulation
METER_MECHANICAL = 10  # MTR_Tamper, terminal cover or sealing pin open
METER_FATAL = 17  # MTR_Fatal, calibration-relevant error
METER_VOLTAGE_L1 = 18  # 1: voltage present on L1 (19: L2, 20: L3)

# The names a rule chain's status rule uses, each a predicate on the combined word.
FLAGS = ("value_not_validated", "smgw_error", "time_not_valid", "smgw_warning", "no_value", "tamper",
         "meter_magnetic", "meter_mechanical", "meter_fatal", "voltage_missing")


def smgw(word: int, bit: int) -> bool:
    return bool((word >> (32 + bit)) & 1)


def meter(word: int, bit: int) -> bool:
    return bool((word >> bit) & 1)


def is_wired_electricity(word: int) -> bool:
    return not smgw(word, SMGW_WIRELESS_METER) and not meter(word, METER_GAS)


def flags(word: int, phases: int = 3) -> list[str]:
    """The names of ``FLAGS`` set in ``word``; ``voltage_missing`` when a base meter reports one of
    its ``phases`` without voltage."""
    found = []
    if smgw(word, SMGW_VALUE_NOT_VALIDATED):
        found.append("value_not_validated")
    if smgw(word, SMGW_ERROR):
        found.append("smgw_error")
    if smgw(word, SMGW_TIME_NOT_VALID):
        found.append("time_not_valid")
    if smgw(word, SMGW_WARNING):
        found.append("smgw_warning")
    if smgw(word, SMGW_NO_VALUE):
        found.append("no_value")
    if smgw(word, SMGW_TAMPER):
        found.append("tamper")
    if is_wired_electricity(word):
        if meter(word, METER_MAGNETIC):
            found.append("meter_magnetic")
        if meter(word, METER_MECHANICAL):
            found.append("meter_mechanical")
        if meter(word, METER_FATAL):
            found.append("meter_fatal")
        if meter(word, METER_BASE_METER) and any(not meter(word, METER_VOLTAGE_L1 + p)
                                                 for p in range(max(1, min(phases, 3)))):
            found.append("voltage_missing")
    return found


def word(*, smgw_bits: tuple[int, ...] = (), meter_bits: tuple[int, ...] = ()) -> int:
    """A combined word with the given bits set (tests, the simulator's counterpart)."""
    value = 0
    for b in smgw_bits:
        value |= 1 << (32 + b)
    for b in meter_bits:
        value |= 1 << b
    return value
