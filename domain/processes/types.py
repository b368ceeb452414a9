"""The process types: their API names, parameters (validated per type), which lifecycle states a
gateway must be in to take part, and the workflow that runs one gateway."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidInput
from core.ids import parse_device_id
from domain.devices.lifecycle import GatewayState as S


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CommissioningParams(_Params):
    first_readout: bool = Field(default=True, description="trigger a first readout to the gateway's EMTs")


class MeterPairingParams(_Params):
    meter_ids: list[str] = Field(default_factory=list, description="empty: every meter assigned to the gateway")

    @field_validator("meter_ids")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        return [str(parse_device_id(m, gateway=False)) for m in v]


class MeterExchangeParams(_Params):
    old_meter_id: str
    new_meter_id: str
    exchanged_at: str | None = Field(default=None, description="ISO 8601; default: when the process runs")

    @field_validator("old_meter_id", "new_meter_id")
    @classmethod
    def _ids(cls, v: str) -> str:
        return str(parse_device_id(v, gateway=False))

    @field_validator("exchanged_at")
    @classmethod
    def _when(cls, v: str | None) -> str | None:
        if v is None:
            return v
        at = datetime.fromisoformat(v)
        if at.tzinfo is None:  # without offset: German local time, as everywhere in the API
            at = at.replace(tzinfo=ZoneInfo("Europe/Berlin"))
        return at.isoformat()

    @model_validator(mode="after")
    def _two_meters(self) -> MeterExchangeParams:
        if self.old_meter_id == self.new_meter_id:
            raise ValueError("old_meter_id and new_meter_id are the same meter")
        return self


class ProfileRolloutParams(_Params):
    taf_order_ids: list[int] = Field(default_factory=list,
                                     description="empty: bring every affected gateway to its current TAF orders")


class TimeSyncParams(_Params):
    correct_above_ms: float = Field(default=500, ge=0, le=3_600_000,
                                    description="set the clock when |offset| exceeds this")
    alarm_above_ms: float = Field(default=9_000, ge=0, le=86_400_000,
                                  description="raise a clock event when |offset| exceeds this")


class LogbookReadoutParams(_Params):
    logs: list[str] = Field(default_factory=lambda: ["system", "calibration", "consumer"])

    @field_validator("logs")
    @classmethod
    def _logs(cls, v: list[str]) -> list[str]:
        bad = sorted(set(v) - {"system", "calibration", "consumer"})
        if bad or not v:
            raise ValueError(f"logs must be a non-empty subset of system, calibration, consumer (got {bad or v})")
        return sorted(set(v))


class DeinstallationParams(_Params):
    final_readout: bool = True


class CertificateRenewalParams(_Params):
    usages: list[str] = Field(default_factory=lambda: ["tls", "sig", "enc"])
    renew_before_days: int = Field(default=60, ge=1, le=730, description="renew certificates expiring within")

    @field_validator("usages")
    @classmethod
    def _usages(cls, v: list[str]) -> list[str]:
        if not v or set(v) - {"tls", "sig", "enc"}:
            raise ValueError("usages must be a non-empty subset of tls, sig, enc")
        return sorted(set(v))


@dataclass(frozen=True)
class ProcessType:
    name: str
    workflow: str  # Temporal workflow type of one gateway
    params: type[_Params]
    eligible_states: tuple[str, ...]
    single_gateway_only: bool = False
    title: str = ""


TYPES: dict[str, ProcessType] = {t.name: t for t in [
    ProcessType("commissioning", "Commissioning", CommissioningParams, (S.INSTALLED,),
                title="Inbetriebnahme"),
    ProcessType("meter_pairing", "MeterPairing", MeterPairingParams, (S.INSTALLED, S.IN_OPERATION),
                title="LMN pairing"),
    ProcessType("meter_exchange", "MeterExchange", MeterExchangeParams, (S.IN_OPERATION,),
                single_gateway_only=True, title="Zählerwechsel"),
    ProcessType("profile_rollout", "ProfileRollout", ProfileRolloutParams, (S.IN_OPERATION,),
                title="TAF/profile rollout"),
    ProcessType("time_sync", "TimeSync", TimeSyncParams, (S.INSTALLED, S.IN_OPERATION), title="time sync"),
    ProcessType("logbook_readout", "LogbookReadout", LogbookReadoutParams, (S.INSTALLED, S.IN_OPERATION),
                title="logbook readout"),
    ProcessType("deinstallation", "Deinstallation", DeinstallationParams, (S.IN_OPERATION,),
                title="Ausbau with final reading"),
    ProcessType("certificate_renewal", "CertificateRenewal", CertificateRenewalParams,
                (S.PERSONALIZED, S.INSTALLED, S.IN_OPERATION), title="certificate renewal"),
]}


class UnknownProcessType(InvalidInput):
    code = "unknown_process_type"


class InvalidParams(InvalidInput):
    code = "invalid_params"


def process_type(name: str) -> ProcessType:
    found = TYPES.get(name)
    if found is None:
        raise UnknownProcessType(f"unknown process type {name!r}; one of {', '.join(TYPES)}")
    return found


def validate_params(ptype: ProcessType, raw: dict[str, object] | None) -> dict[str, object]:
    try:
        return ptype.params.model_validate(raw or {}).model_dump(mode="json")
    except ValidationError as err:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in err.errors()]
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise InvalidParams(f"invalid params for {ptype.name}: {where}: {first['msg']}", details=errors) from None
