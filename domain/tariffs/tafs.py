"""The tariff use cases gridgate configures, their parameters as data and the rules per TAF.

The exact parameter sets per TAF are in non-public parts of TR-03109-1; what is here is gridgate's
model (docs/processes.md, "TAF orders"): registers (OBIS), registration interval, delivery schedule
and the recipient EMT's role, checked per TAF before an order is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidInput

_OBIS = re.compile(r"^\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}$")
ENERGY = frozenset({"1-0:1.8.0", "1-0:2.8.0", "1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"})
TARIFF_REGISTERS = frozenset({"1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"})
FEED_IN = frozenset({"1-0:2.8.0", "1-0:16.7.0"})
GRID_STATE = frozenset({"1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0", "1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0",
                        "1-0:16.7.0", "1-0:14.7.0"})
# DLMS unit codes of the registers gridgate configures (27 W, 30 Wh, 33 A, 35 V, 44 Hz).
UNITS = {**dict.fromkeys(ENERGY, 30), "1-0:16.7.0": 27, "1-0:32.7.0": 35, "1-0:52.7.0": 35, "1-0:72.7.0": 35,
         "1-0:31.7.0": 33, "1-0:51.7.0": 33, "1-0:71.7.0": 33, "1-0:14.7.0": 44}
DAY = 86400
QUARTER_HOUR = 900


class _TafParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    registers: list[str]

    @field_validator("registers")
    @classmethod
    def _obis(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one register (OBIS) is needed")
        bad = [r for r in v if not _OBIS.fullmatch(r)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an OBIS code written A-B:C.D.E (e.g. 1-0:1.8.0)")
        return sorted(set(v))

    def _only(self, allowed: frozenset[str], what: str) -> None:
        bad = sorted(set(self.registers) - allowed)
        if bad:
            raise ValueError(f"register {bad[0]} is not {what} (allowed: {', '.join(sorted(allowed))})")


class Taf1Params(_TafParams):
    """Data-minimal tariff: one register value per billing period."""

    registers: list[str] = Field(default_factory=lambda: ["1-0:1.8.0"])
    interval_s: int = Field(default=30 * DAY, description="billing period in seconds, whole days")
    delivery_period_s: int | None = Field(default=None, description="default: the billing period")

    @model_validator(mode="after")
    def _rules(self) -> Taf1Params:
        self._only(ENERGY, "an energy register")
        if self.interval_s < DAY or self.interval_s % DAY or self.interval_s > 366 * DAY:
            raise ValueError("interval_s (billing period) must be whole days between 1 and 366 days")
        if self.delivery_period_s is not None and self.delivery_period_s < DAY:
            raise ValueError("delivery_period_s must be at least one day")
        return self


class SwitchingTime(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    at: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local time HH:MM")
    tariff_register: str = Field(description="OBIS of the register counting from then on")


class Taf2Params(_TafParams):
    """Time-of-use tariff: tariff registers switched on a daily schedule inside the gateway."""

    registers: list[str] = Field(default_factory=lambda: ["1-0:1.8.1", "1-0:1.8.2"])
    switching_times: list[SwitchingTime] = Field(min_length=2, max_length=48)
    interval_s: int = QUARTER_HOUR
    delivery_period_s: int = DAY

    @model_validator(mode="after")
    def _rules(self) -> Taf2Params:
        self._only(TARIFF_REGISTERS | {"1-0:1.8.0", "1-0:2.8.0"}, "a tariff or total energy register")
        used = {s.tariff_register for s in self.switching_times}
        if not used <= set(self.registers):
            missing = ", ".join(sorted(used - set(self.registers)))
            raise ValueError(f"switching_times name registers not ordered: {missing}")
        if len(used) < 2:
            raise ValueError("a time-of-use tariff switches between at least two tariff registers")
        times = [s.at for s in self.switching_times]
        if len(set(times)) != len(times):
            raise ValueError("switching_times has a time twice")
        if self.interval_s != QUARTER_HOUR:
            raise ValueError("interval_s of TAF 2 is 900 (15 minutes)")
        if self.delivery_period_s < DAY or self.delivery_period_s % DAY:
            raise ValueError("delivery_period_s of TAF 2 must be whole days")
        return self


class Taf6Params(_TafParams):
    """On-demand readout (Abruf im Bedarfsfall): register values when the EMT asks."""

    registers: list[str] = Field(default_factory=lambda: ["1-0:1.8.0"])

    @model_validator(mode="after")
    def _rules(self) -> Taf6Params:
        self._only(ENERGY, "an energy register")
        return self


class Taf7Params(_TafParams):
    """Register profile (Zählerstandsgang): registers every 15 minutes."""

    registers: list[str] = Field(default_factory=lambda: ["1-0:1.8.0"])
    interval_s: int = QUARTER_HOUR
    delivery_period_s: int = DAY

    @model_validator(mode="after")
    def _rules(self) -> Taf7Params:
        self._only(ENERGY, "an energy register")
        if self.interval_s != QUARTER_HOUR:
            raise ValueError("interval_s of TAF 7 is 900 (15-minute register profile)")
        if not QUARTER_HOUR <= self.delivery_period_s <= DAY or self.delivery_period_s % QUARTER_HOUR:
            raise ValueError("delivery_period_s of TAF 7 must be a multiple of 900 between 900 and 86400")
        return self


_SHORT_INTERVALS = (60, 180, 300, 900)


class Taf9Params(_TafParams):
    """Actual feed-in (Ist-Einspeisung) of a generation plant, for grid operator or direct marketer."""

    registers: list[str] = Field(default_factory=lambda: ["1-0:2.8.0"])
    interval_s: int = QUARTER_HOUR
    delivery_period_s: int = QUARTER_HOUR

    @model_validator(mode="after")
    def _rules(self) -> Taf9Params:
        self._only(FEED_IN, "a feed-in register")
        _short(self.interval_s, self.delivery_period_s)
        return self


class Taf10Params(_TafParams):
    """Grid state data (Netzzustandsdaten): voltage, current, power, periodically."""

    registers: list[str] = Field(default_factory=lambda: ["1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0"])
    interval_s: int = QUARTER_HOUR
    delivery_period_s: int = QUARTER_HOUR
    mode: Literal["periodic"] = "periodic"

    @model_validator(mode="after")
    def _rules(self) -> Taf10Params:
        self._only(GRID_STATE, "a grid state register")
        _short(self.interval_s, self.delivery_period_s)
        return self


def _short(interval: int, delivery: int) -> None:
    if interval not in _SHORT_INTERVALS:
        raise ValueError(f"interval_s must be one of {', '.join(map(str, _SHORT_INTERVALS))}")
    if delivery < interval or delivery > DAY or delivery % interval:
        raise ValueError("delivery_period_s must be a multiple of interval_s and at most 86400")


@dataclass(frozen=True)
class TafSpec:
    taf: int
    title: str
    params: type[_TafParams]
    roles: frozenset[str]  # market partner roles that may order it
    direction: str | None = None  # metering point direction it needs, if any


TAFS: dict[int, TafSpec] = {s.taf: s for s in (
    TafSpec(1, "data-minimal tariff", Taf1Params, frozenset({"LF", "VNB", "MSB"})),
    TafSpec(2, "time-of-use tariff", Taf2Params, frozenset({"LF"})),
    TafSpec(6, "on-demand readout", Taf6Params, frozenset({"LF", "VNB", "MSB", "DV"})),
    TafSpec(7, "register profile", Taf7Params, frozenset({"LF", "VNB", "MSB", "DV"})),
    TafSpec(9, "actual feed-in", Taf9Params, frozenset({"VNB", "DV"}), direction="feed_in"),
    TafSpec(10, "grid state data", Taf10Params, frozenset({"VNB", "MSB"})),
)}


class UnsupportedTaf(InvalidInput):
    code = "unsupported_taf"


class InvalidTafParams(InvalidInput):
    code = "invalid_taf_params"


def spec(taf: int) -> TafSpec:
    found = TAFS.get(taf)
    if found is None:
        raise UnsupportedTaf(f"TAF {taf} is not offered; one of {', '.join(map(str, TAFS))}")
    return found


def validate_params(taf: int, raw: dict[str, Any] | None) -> dict[str, Any]:
    """The order's parameters, complete with defaults, or a 400 naming the first problem."""
    s = spec(taf)
    try:
        return s.params.model_validate(raw or {}).model_dump(mode="json", exclude_none=True)
    except ValidationError as err:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in err.errors()]
        where = ".".join(str(p) for p in errors[0]["loc"]) or "params"
        raise InvalidTafParams(f"invalid parameters for TAF {taf} ({s.title}): {where}: {errors[0]['msg']}",
                               details=errors) from None


def wire_timing(taf: int, params: dict[str, Any]) -> tuple[int, int]:
    """(interval, delivery period) written into the evaluation profile. TAF 6 has no schedule of its
    own: its profile authorises on-demand readouts and carries nominal values."""
    if taf == 6:
        return QUARTER_HOUR, DAY
    interval = int(params.get("interval_s", QUARTER_HOUR))
    return interval, int(params.get("delivery_period_s") or interval)
