"""A gateway's delivery as the receiver hands it to the domain: opened, parsed and typed, nothing
stored yet (wire format: docs/protocol.md section 14)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# Profile generic objects a delivery may carry.
LOAD_PROFILE = "1-0:99.1.0"  # TAF 7: register values per quarter hour
GRID_PROFILE = "1-0:99.97.0"  # TAF 10: grid state values

# A register profile's column -> the interval series the MDM derives from it (energy per period).
INTERVAL_OF_REGISTER = {"1-0:1.8.0": "1-1:1.29.0", "1-0:2.8.0": "1-1:2.29.0"}

REASONS = ("scheduled", "on_demand", "feed_in", "threshold", "final", "meter_exchange_closing",
           "meter_exchange_opening", "first_readout")


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One buffer entry of a profile: the end of the period it closes, one value per column (None:
    the gateway had none), and the combined status word (DS Tab. 15.1)."""

    end: dt.datetime
    values: tuple[int | None, ...]
    status: int = 0


@dataclass(frozen=True, kw_only=True)
class Profile:
    obis: str  # the profile object: LOAD_PROFILE or GRID_PROFILE
    period_s: int
    columns: tuple[str, ...]  # OBIS of the value columns (clock and status columns removed)
    entries: tuple[Entry, ...]
    threshold: bool = False  # TAF 10 entries sent because a threshold was crossed


@dataclass(frozen=True, kw_only=True)
class Register:
    """An extended register: a value captured at a time."""

    obis: str
    value: int | None
    scaler: int
    unit: int
    status: int
    captured_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class MeterData:
    meter_id: str
    scaler_units: dict[str, tuple[int, int]] = field(default_factory=dict)  # column OBIS -> (scaler, unit)
    profiles: tuple[Profile, ...] = ()
    registers: tuple[Register, ...] = ()

    def times(self) -> list[dt.datetime]:
        found = [e.end for p in self.profiles for e in p.entries]
        found += [r.captured_at for r in self.registers]
        return found


@dataclass(frozen=True, kw_only=True)
class Delivery:
    gateway_id: str
    recipient: str  # market partner ID of the EMT
    profile_id: str
    taf: int
    reason: str
    created: dt.datetime
    meters: tuple[MeterData, ...]

    def period(self) -> tuple[dt.datetime, dt.datetime] | None:
        times = [t for m in self.meters for t in m.times()]
        return (min(times), max(times)) if times else None


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """What the receiver knows of a delivery besides its content."""

    recipient: str
    sha256: str  # of the opened payload
    size: int  # of the body as received
    delivery_ref: str | None = None  # x-CID
    gateway_id: str | None = None  # from the TLS certificate (None before admission)
