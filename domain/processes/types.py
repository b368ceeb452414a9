"""The process types: their API names, parameters (validated per type), and which lifecycle states
a gateway must be in to take part. (Which workflow runs one gateway of a type: ``workflows.processes``.)

Each type's parameters are a frozen, keyword-only pydantic dataclass: validated once when a process
starts (:func:`validate_params`), stored as JSON with the process, and handed to the gateway
workflows as the same model, so no workflow re-reads a default out of a dict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from core.errors import InvalidInput
from core.ids import parse_device_id
from domain.devices.lifecycle import GatewayState as S

PARAMS = ConfigDict(extra="forbid")


@pydantic_dataclass(frozen=True, kw_only=True, config=PARAMS)
class CommissioningParams:
    first_readout: bool = Field(default=True, description="trigger a first readout to the gateway's EMTs")


@pydantic_dataclass(frozen=True, kw_only=True, config=PARAMS)
class MeterPairingParams:
    meter_ids: list[str] = Field(default_factory=list, description="empty: every meter assigned to the gateway")

    @field_validator("meter_ids")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        return [str(parse_device_id(m, gateway=False)) for m in v]


@pydantic_dataclass(frozen=True, kw_only=True, config=PARAMS)
class MeterExchangeParams:
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


@pydantic_dataclass(frozen=True, kw_only=True, config=PARAMS)
class ProfileRolloutParams:
    taf_order_ids: list[int] = Field(default_factory=list,
                                     description="empty: bring every affected gateway to its current TAF orders")


@pydantic_dataclass(frozen=True, kw_only=True, config=PARAMS)
class TimeSyncParams:
    correct_above_ms: float = Field(default=500, ge=0, le=3_600_000,
                                    description="set the clock when |offset| exceeds this")
    alarm_above_ms: float = Field(default=9_000, ge=0, le=86_400_000,
                                  description="raise a clock event when |offset| exceeds this")


@pydantic_dataclass(frozen=True, kw_only=True, config=PARAMS)
class LogbookReadoutParams:
    logs: list[str] = Field(default_factory=lambda: ["system", "calibration", "consumer"])

    @field_validator("logs")
    @classmethod
    def _logs(cls, v: list[str]) -> list[str]:
        bad = sorted(set(v) - {"system", "calibration", "consumer"})
        if bad or not v:
            raise ValueError(f"logs must be a non-empty subset of system, calibration, consumer (got {bad or v})")
        return sorted(set(v))


@pydantic_dataclass(frozen=True, kw_only=True, config=PARAMS)
class DeinstallationParams:
    final_readout: bool = True


@pydantic_dataclass(frozen=True, kw_only=True, config=PARAMS)
class CertificateRenewalParams:
    usages: list[str] = Field(default_factory=lambda: ["tls", "sig", "enc"])
    renew_before_days: int = Field(default=60, ge=1, le=730, description="renew certificates expiring within")

    @field_validator("usages")
    @classmethod
    def _usages(cls, v: list[str]) -> list[str]:
        if not v or set(v) - {"tls", "sig", "enc"}:
            raise ValueError("usages must be a non-empty subset of tls, sig, enc")
        return sorted(set(v))


ProcessParams = (CommissioningParams | MeterPairingParams | MeterExchangeParams | ProfileRolloutParams
                 | TimeSyncParams | LogbookReadoutParams | DeinstallationParams | CertificateRenewalParams)


@dataclass(frozen=True, kw_only=True)
class ProcessType:
    name: str
    params: type[ProcessParams]
    eligible_states: tuple[str, ...]
    single_gateway_only: bool = False
    title: str = ""


TYPES: dict[str, ProcessType] = {t.name: t for t in [
    ProcessType(name="commissioning", params=CommissioningParams, eligible_states=(S.INSTALLED,),
                title="Inbetriebnahme"),
    ProcessType(name="meter_pairing", params=MeterPairingParams, eligible_states=(S.INSTALLED, S.IN_OPERATION),
                title="LMN pairing"),
    ProcessType(name="meter_exchange", params=MeterExchangeParams, eligible_states=(S.IN_OPERATION,),
                single_gateway_only=True, title="Zählerwechsel"),
    ProcessType(name="profile_rollout", params=ProfileRolloutParams, eligible_states=(S.IN_OPERATION,),
                title="TAF/profile rollout"),
    ProcessType(name="time_sync", params=TimeSyncParams, eligible_states=(S.INSTALLED, S.IN_OPERATION),
                title="time sync"),
    ProcessType(name="logbook_readout", params=LogbookReadoutParams, eligible_states=(S.INSTALLED, S.IN_OPERATION),
                title="logbook readout"),
    ProcessType(name="deinstallation", params=DeinstallationParams, eligible_states=(S.IN_OPERATION,),
                title="Ausbau with final reading"),
    ProcessType(name="certificate_renewal", params=CertificateRenewalParams,
                eligible_states=(S.PERSONALIZED, S.INSTALLED, S.IN_OPERATION), title="certificate renewal"),
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


def parse_params(ptype: ProcessType, raw: dict[str, Any] | None) -> ProcessParams:
    """``raw`` as the type's params model; :class:`InvalidParams` with every problem otherwise."""
    try:
        return TypeAdapter(ptype.params).validate_python(raw or {})
    except ValidationError as err:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in err.errors()]
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise InvalidParams(f"invalid params for {ptype.name}: {where}: {first['msg']}", details=errors) from None


def validate_params(ptype: ProcessType, raw: dict[str, Any] | None) -> dict[str, Any]:
    """The validated params in the JSON form stored with the process."""
    params = parse_params(ptype, raw)
    dumped: dict[str, Any] = TypeAdapter(ptype.params).dump_python(params, mode="json")
    return dumped
