"""Reason codes of the installation rules (a process's gateway ends with them)."""

from __future__ import annotations

from core.errors import Conflict, InvalidInput


class InvalidExchange(InvalidInput):
    code = "invalid_params"


class MeterNotAssigned(Conflict):
    code = "meter_not_assigned"


class NoMeterAssigned(Conflict):
    code = "no_meter_assigned"


class NoMeterKey(Conflict):
    code = "no_meter_key"


class MeterAssignedElsewhere(Conflict):
    code = "meter_assigned_elsewhere"
