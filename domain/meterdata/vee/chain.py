"""Rule chains as data: what a chain version (``vee_chains.rules``) may say, validated, and the
default chain gridgate ships for each market role.

A chain is a list of rules, each ``{"id": ..., "type": ..., <params>}``. The ``id`` is what every
finding, flag and substitute names (so it must stay stable across versions for the same intent);
``type`` selects the rule, the other keys are its parameters (unknown keys are refused). The engine
applies the validations in chain order, then the estimations in chain order: the first estimation
that can fill a slot fills it.

Actions of a validation: ``flag`` (a finding only), ``provisional`` (the value stays, its quality
becomes provisional, MSCONS Z18), ``reject`` (the value is judged unusable: removed and handed to
the estimations, its original kept in the notes)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from domain.meterdata.vee import bits
from domain.meterdata.vee.slp import PROFILES

Action = Literal["flag", "provisional", "reject"]
Severity = Literal["info", "warning", "error"]
RULE_ID = r"^[a-z][a-z0-9_]{0,39}$"


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=RULE_ID)
    severity: Severity = "warning"

    @property
    def estimates(self) -> bool:
        return False


class Completeness(_Rule):
    """Gaps: slots nobody delivered a value for (92/96/100 expected)."""

    type: Literal["completeness"]


class Monotonic(_Rule):
    """Register series: a reading below the one before it."""

    type: Literal["monotonic"]
    severity: Severity = "error"
    action: Action = "reject"
    tolerance: int = Field(default=0, ge=0)  # in the series' units


class RegisterConsistency(_Rule):
    """Interval series: the sum of the intervals between two register readings against the register
    series' advance; register series: readings against point readings (TAF 1/6, meter exchange)."""

    type: Literal["register_consistency"]
    severity: Severity = "error"
    action: Action = "flag"
    tolerance: int = Field(default=0, ge=0)  # in the series' units


class Limits(_Rule):
    """Energy per quarter hour above what the meter can measure (rated maximum current from the
    device type's ``imax:<A>`` capability, phases from ``three_phase``; else the defaults here), or
    below ``low_wh``. Register series: the advance into each slot."""

    type: Literal["limits"]
    severity: Severity = "error"
    action: Action = "reject"
    voltage_v: float = Field(default=230.0, gt=0)
    default_max_current_a: float = Field(default=60.0, gt=0)
    default_phases: int = Field(default=3, ge=1, le=3)
    headroom: float = Field(default=1.0, gt=0)
    low_wh: float = 0.0


class Spike(_Rule):
    """Interval series: a value above ``k`` x the robust maximum of the comparable days' values
    within ``window_hours`` of its hour (median over the days of each day's maximum), and above
    ``floor_wh``."""

    type: Literal["spike"]
    action: Action = "provisional"
    k: float = Field(default=3.0, gt=1)
    window_hours: int = Field(default=1, ge=0, le=12)
    weeks: int = Field(default=4, ge=1, le=12)
    min_days: int = Field(default=3, ge=1)
    floor_wh: float = Field(default=250.0, ge=0)


class ZeroStretch(_Rule):
    """Interval series: zero consumption for longer than ``max_hours``."""

    type: Literal["zero_stretch"]
    severity: Severity = "info"
    action: Action = "flag"
    max_hours: float = Field(default=12.0, gt=0)


def _status_defaults() -> dict[str, Action]:
    return {"smgw_error": "reject", "no_value": "flag", "meter_fatal": "reject", "tamper": "provisional",
            "meter_magnetic": "provisional", "meter_mechanical": "provisional",
            "value_not_validated": "provisional", "smgw_warning": "flag", "voltage_missing": "flag"}


class StatusFlags(_Rule):
    """Status word bits (DS Tab. 15.1) -> action; a bit not named is ignored. ``time_not_valid``
    belongs to the clock rule."""

    type: Literal["status"]
    severity: Severity = "error"
    actions: dict[str, Action] = Field(default_factory=_status_defaults)

    @model_validator(mode="after")
    def _known_flags(self) -> StatusFlags:
        unknown = set(self.actions) - set(bits.FLAGS)
        if unknown:
            raise ValueError(f"unknown status flags {sorted(unknown)}; known: {', '.join(bits.FLAGS)}")
        return self


class ClockShift(_Rule):
    """The gateway's time was not valid (SMGW bit 9), or the ingest left out entries whose capture
    time was off the quarter-hour grid (raw notes ``clock_shift``)."""

    type: Literal["clock"]
    action: Action = "provisional"


class Duplicates(_Rule):
    """A later delivery brought a different value for a slot already stored (the stored one stays)."""

    type: Literal["duplicates"]
    action: Action = "flag"


class Interpolate(_Rule):
    """Linear interpolation of gaps up to ``max_hours`` with values on both sides (MSCONS Z92)."""

    type: Literal["interpolate"]
    max_hours: float = Field(default=2.0, gt=0, le=24)

    @property
    def estimates(self) -> bool:
        return True


class ComparableDays(_Rule):
    """The mean of the same quarter hour on the most recent ``weeks`` days of the same weekday and
    day type (public holidays count as Sundays), where ``min_days`` have a true value (ZJ2).
    Register series: the comparable days' advances shape the gap."""

    type: Literal["comparable_days"]
    weeks: int = Field(default=4, ge=1, le=12)
    min_days: int = Field(default=2, ge=1)

    @property
    def estimates(self) -> bool:
        return True


class StandardLoadProfile(_Rule):
    """The standard load profile scaled to the meter (ZJ2): by the day's own known values (at least
    ``min_known_slots``), else by the history loaded for the day, else ``annual_kwh`` when given.
    Register series: the profile shapes a gap between two readings."""

    type: Literal["standard_load_profile"]
    profile: str = "H0"
    min_known_slots: int = Field(default=16, ge=1)
    annual_kwh: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _known_profile(self) -> StandardLoadProfile:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; known: {', '.join(PROFILES)}")
        return self

    @property
    def estimates(self) -> bool:
        return True


Rule = Annotated[Completeness | Monotonic | RegisterConsistency | Limits | Spike | ZeroStretch | StatusFlags
                 | ClockShift | Duplicates | Interpolate | ComparableDays | StandardLoadProfile,
                 Field(discriminator="type")]
_RULES: TypeAdapter[list[Rule]] = TypeAdapter(list[Rule])


class InvalidChain(ValueError):
    pass


def parse(rules: list[dict[str, Any]]) -> list[Rule]:
    """Validate a chain's JSON; raises ``InvalidChain`` with every problem."""
    try:
        parsed = _RULES.validate_python(rules)
    except ValidationError as err:
        raise InvalidChain("; ".join(f"rule {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                     for e in err.errors())) from None
    ids = [r.id for r in parsed]
    doubled = sorted({i for i in ids if ids.count(i) > 1})
    if doubled:
        raise InvalidChain(f"rule ids used twice: {', '.join(doubled)}")
    if not any(isinstance(r, Completeness) for r in parsed):
        raise InvalidChain("a chain needs a completeness rule (it names the slots left missing)")
    return parsed


def dump(rules: list[Rule]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in rules]


def history_weeks(rules: list[Rule]) -> int:
    """How many comparable days the chain looks at (0: none)."""
    return max((r.weeks for r in rules if isinstance(r, Spike | ComparableDays)), default=0)


# The chain every role starts with (stored as its version 1 when a role is first validated). The
# same rules for every role but one difference: a supplier (LF) only flags spikes, since the
# metering point operator's values are the ones the market settles on.
_BASE: list[dict[str, Any]] = [
    {"id": "completeness", "type": "completeness"},
    {"id": "status", "type": "status"},
    {"id": "clock", "type": "clock"},
    {"id": "duplicates", "type": "duplicates"},
    {"id": "monotonic", "type": "monotonic"},
    {"id": "limits", "type": "limits"},
    {"id": "register_consistency", "type": "register_consistency"},
    {"id": "spike", "type": "spike"},
    {"id": "zero_stretch", "type": "zero_stretch"},
    {"id": "interpolate", "type": "interpolate", "max_hours": 2},
    {"id": "comparable_days", "type": "comparable_days", "weeks": 4},
    {"id": "standard_load_profile", "type": "standard_load_profile", "profile": "H0"},
]


def default_rules(role: str) -> list[dict[str, Any]]:
    rules = [dict(r) for r in _BASE]
    if role == "LF":
        next(r for r in rules if r["id"] == "spike")["action"] = "flag"
    return dump(parse(rules))
