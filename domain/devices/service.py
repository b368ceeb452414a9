"""Gateways, meters and CLS modules: validated creation and changes, the gateway lifecycle, and
the meter master key (MK0), which only ever leaves this module decrypted for pairing.

Public for other areas (mass processes, activities):

* ``transition_gateway(session, gateway, target, reason=None)``: checked state change, audited;
  staying in the same state is a no-op.
* ``get_gateway(session, device_id)`` / ``gateway_by_id(session, id)``.
* ``meter_mk0(session, box, device_id)``: the decrypted MK0 for LMN pairing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, NotFound
from core.ids import parse_device_id
from domain import validators as v
from domain.audit.repository import record
from domain.catalogue.service import device_type_for
from domain.devices import repository
from domain.devices.lifecycle import STATES, check_transition
from domain.devices.models import LMN_TYPES, ClsModule, Gateway, InitialCertificate, Meter
from domain.devices.schemas import (
    ClsModuleCreate,
    ClsModuleUpdate,
    GatewayCreate,
    GatewayUpdate,
    MeterCreate,
    MeterUpdate,
)
from domain.records import AlreadyExists, apply_update, flush_or_conflict, record_change
from domain.secrets import SecretBox

D = TypeVar("D", Gateway, Meter, ClsModule)

GATEWAY_MIRRORED = frozenset({"device_type"})
METER_MIRRORED = frozenset({"device_type", "calibration_date", "calibration_valid_until", "lmn_type"})
CLS_MIRRORED = frozenset({"device_type", "controls"})


class DeviceNotFound(NotFound):
    code = "device_not_found"


class MasterKeyMissing(NotFound):
    code = "mk0_missing"


_KINDS: dict[type, tuple[str, str]] = {Gateway: ("gateway", "gateway"), Meter: ("meter", "meter"),
                                       ClsModule: ("cls", "cls_module")}


# -- snapshots (what the audit log shows) -------------------------------------------------------

class _TypeCode(Protocol):
    @property
    def code(self) -> str: ...


class _DeviceFields(Protocol):
    @property
    def device_type(self) -> _TypeCode: ...
    @property
    def firmware_version(self) -> str | None: ...


class GatewayFields(_DeviceFields, Protocol):
    """What a gateway's audit snapshot reads: a Gateway, or the values of an import row."""

    @property
    def wan_address(self) -> str | None: ...
    @property
    def wakeup_address(self) -> str | None: ...
    @property
    def network_segment(self) -> str | None: ...
    @property
    def state(self) -> str: ...


class MeterFields(_DeviceFields, Protocol):
    @property
    def calibration_date(self) -> date | None: ...
    @property
    def calibration_valid_until(self) -> date | None: ...
    @property
    def lmn_type(self) -> str: ...
    @property
    def mk0_fingerprint(self) -> bytes | None: ...


class ClsModuleFields(_DeviceFields, Protocol):
    @property
    def controls(self) -> str | None: ...


def gateway_snapshot(gw: GatewayFields) -> dict[str, Any]:
    return {"device_type": gw.device_type.code, "firmware_version": gw.firmware_version,
            "wan_address": gw.wan_address, "wakeup_address": gw.wakeup_address,
            "network_segment": gw.network_segment, "state": gw.state}


def meter_snapshot(m: MeterFields) -> dict[str, Any]:
    return {"device_type": m.device_type.code, "firmware_version": m.firmware_version,
            "calibration_date": m.calibration_date, "calibration_valid_until": m.calibration_valid_until,
            "lmn_type": m.lmn_type, "mk0": mk0_marker(m.mk0_fingerprint)}


def cls_snapshot(c: ClsModuleFields) -> dict[str, Any]:
    return {"device_type": c.device_type.code, "firmware_version": c.firmware_version, "controls": c.controls}


def mk0_marker(fingerprint: bytes | None) -> str | None:
    """What the audit log shows of a master key: a short keyed fingerprint, never the key."""
    return None if fingerprint is None else f"hmac:{fingerprint[:4].hex()}"


# -- lookups ----------------------------------------------------------------------------------

async def _get(session: AsyncSession, model: type[D], device_id: str, *, for_update: bool = False) -> D:
    found = await repository.by_device_id(session, model, device_id.strip().upper(), for_update=for_update)
    if found is None:
        raise DeviceNotFound(f"no {_KINDS[model][1].replace('_', ' ')} {device_id!r}")
    return found


async def get_gateway(session: AsyncSession, device_id: str, *, for_update: bool = False) -> Gateway:
    return await _get(session, Gateway, device_id, for_update=for_update)


async def gateway_by_id(session: AsyncSession, id: int, *, for_update: bool = False) -> Gateway:
    found = await repository.by_id(session, Gateway, id, for_update=for_update)
    if found is None:
        raise DeviceNotFound(f"no gateway with id {id}")
    return found


async def get_meter(session: AsyncSession, device_id: str) -> Meter:
    return await _get(session, Meter, device_id)


async def get_cls_module(session: AsyncSession, device_id: str) -> ClsModule:
    return await _get(session, ClsModule, device_id)


# -- shared -----------------------------------------------------------------------------------

def _optional(value: str | None, fn: Any, *args: Any) -> Any:
    return None if value is None or value == "" else fn(value, *args)


async def _new_device(session: AsyncSession, model: type[D], raw_id: str, device_type: str, **fields: Any) -> D:
    kind, object_type = _KINDS[model]
    parsed = parse_device_id(raw_id.strip().upper(), gateway=True if model is Gateway else
                             (False if model is Meter else None))
    device_id = str(parsed)
    if await repository.id_of(session, model, device_id) is not None:
        raise AlreadyExists(f"{object_type.replace('_', ' ')} {device_id} already exists")
    dt = await device_type_for(session, device_type, kind, parsed)
    device = model(device_id=device_id, device_type=dt, **fields)
    session.add(device)
    return device


async def _device_type_change(session: AsyncSession, device: Any, kind: str, changes: dict[str, Any]) -> Any:
    """Resolve a device type change to its row (validated against the device ID)."""
    code = changes.get("device_type")
    if code is None or code == device.device_type.code:
        changes.pop("device_type", None)
        return None
    return await device_type_for(session, code, kind, parse_device_id(device.device_id))


def _setter(new_type: Any) -> Any:
    def set_field(obj: Any, key: str, value: Any) -> None:
        if key == "device_type":
            obj.device_type = new_type
        else:
            setattr(obj, key, value)
    return set_field


async def _delete(session: AsyncSession, obj: Any, object_type: str, snapshot: dict[str, Any]) -> None:
    record_change(session, "delete", object_type, obj.device_id, snapshot, None)
    await session.delete(obj)
    await flush_or_conflict(session, f"{object_type.replace('_', ' ')} {obj.device_id} (it has assignments: "
                                     "end them instead, or mark the device faulty/deinstalled)")


# -- gateways ---------------------------------------------------------------------------------

def _gateway_fields(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "firmware_version" in data:
        out["firmware_version"] = _optional(data["firmware_version"], v.firmware)
    for key in ("wan_address", "wakeup_address"):
        if key in data:
            out[key] = _optional(data[key], v.text, 255, key)
    if "network_segment" in data:
        out["network_segment"] = _optional(data["network_segment"], v.segment)
    return out


async def create_gateway(session: AsyncSession, body: GatewayCreate) -> Gateway:
    state = v.choice(body.state, STATES, "state")
    gw = await _new_device(session, Gateway, body.device_id, body.device_type, state=state,
                           **_gateway_fields(body.model_dump()))
    record_change(session, "create", "gateway", gw.device_id, None, gateway_snapshot(gw))
    await flush_or_conflict(session, f"gateway {gw.device_id}")
    return gw


async def update_gateway(session: AsyncSession, device_id: str, body: GatewayUpdate) -> Gateway:
    gw = await get_gateway(session, device_id, for_update=True)
    raw = body.model_dump(exclude_unset=True)
    changes = _gateway_fields(raw)
    if raw.get("device_type") is not None:
        changes["device_type"] = raw["device_type"]
    new_type = await _device_type_change(session, gw, "gateway", changes)
    apply_update(session, gw, changes, object_type="gateway", object_id=gw.device_id, snapshot=gateway_snapshot,
                 mirrored=GATEWAY_MIRRORED, setter=_setter(new_type))
    await flush_or_conflict(session, f"gateway {gw.device_id}")
    return gw


async def transition_gateway(session: AsyncSession, gateway: Gateway | str, target: str, *,
                             reason: str | None = None) -> Gateway:
    """Move a gateway to ``target`` if the lifecycle allows it; audited with ``reason``.

    Pass the Gateway (loaded FOR UPDATE by the caller) or its device ID. Idempotent: a gateway
    already in ``target`` is returned unchanged and nothing is recorded.
    """
    gw = gateway if isinstance(gateway, Gateway) else await get_gateway(session, gateway, for_update=True)
    v.choice(target, STATES, "state")
    check_transition(gw.state, target, f"gateway {gw.device_id}")
    if gw.state == target:
        return gw
    changes: dict[str, Any] = {"state": {"old": gw.state, "new": target}}
    if reason:
        changes["reason"] = reason
    gw.state = target
    gw.state_changed_at = datetime.now(UTC)
    record(session, "transition", "gateway", gw.device_id, changes)
    await flush_or_conflict(session, f"gateway {gw.device_id}")
    return gw


async def initial_certificates(session: AsyncSession, gateway: Gateway) -> list[InitialCertificate]:
    return list(await repository.initial_certificates(session, gateway.id))


async def delete_gateway(session: AsyncSession, device_id: str) -> None:
    gw = await get_gateway(session, device_id, for_update=True)
    await _delete(session, gw, "gateway", gateway_snapshot(gw))


# -- meters -----------------------------------------------------------------------------------

def _meter_fields(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "firmware_version" in data:
        out["firmware_version"] = _optional(data["firmware_version"], v.firmware)
    for key in ("calibration_date", "calibration_valid_until"):
        if key in data:
            out[key] = data[key]
    if data.get("lmn_type") is not None:
        out["lmn_type"] = v.choice(data["lmn_type"], LMN_TYPES, "lmn_type")
    return out


def _check_calibration(meter: Meter) -> None:
    if meter.calibration_date and meter.calibration_valid_until \
            and meter.calibration_valid_until < meter.calibration_date:
        raise InvalidInput("calibration_valid_until is before calibration_date", code="invalid_calibration_period")


def _store_mk0(meter: Meter, box: SecretBox, secret: Any) -> None:
    key = v.mk0(secret.get_secret_value())
    meter.mk0_ciphertext = box.encrypt(key, meter.device_id)
    meter.mk0_fingerprint = box.fingerprint(key, meter.device_id)


async def create_meter(session: AsyncSession, box: SecretBox, body: MeterCreate) -> Meter:
    meter = await _new_device(session, Meter, body.device_id, body.device_type,
                              **{"lmn_type": "wired", **_meter_fields(body.model_dump(exclude={"mk0"}))})
    _check_calibration(meter)
    if body.mk0 is not None:
        _store_mk0(meter, box, body.mk0)
    record_change(session, "create", "meter", meter.device_id, None, meter_snapshot(meter))
    await flush_or_conflict(session, f"meter {meter.device_id}")
    return meter


async def update_meter(session: AsyncSession, box: SecretBox, device_id: str, body: MeterUpdate) -> Meter:
    meter = await _get(session, Meter, device_id, for_update=True)
    raw = body.model_dump(exclude_unset=True, exclude={"mk0"})
    changes = _meter_fields(raw)
    if raw.get("device_type") is not None:
        changes["device_type"] = raw["device_type"]
    new_type = await _device_type_change(session, meter, "meter", changes)
    old = meter_snapshot(meter)
    apply_update(session, meter, changes, object_type="meter", object_id=meter.device_id, snapshot=meter_snapshot,
                 mirrored=METER_MIRRORED, setter=_setter(new_type))
    _check_calibration(meter)
    if body.mk0 is not None:
        before = meter.mk0_fingerprint
        _store_mk0(meter, box, body.mk0)
        if before != meter.mk0_fingerprint:
            record_change(session, "update", "meter", meter.device_id, {"mk0": old["mk0"]},
                          {"mk0": mk0_marker(meter.mk0_fingerprint)})
    await flush_or_conflict(session, f"meter {meter.device_id}")
    return meter


async def delete_meter(session: AsyncSession, device_id: str) -> None:
    meter = await _get(session, Meter, device_id, for_update=True)
    await _delete(session, meter, "meter", meter_snapshot(meter))


async def meter_mk0(session: AsyncSession, box: SecretBox, device_id: str) -> bytes:
    """The decrypted MK0 of a meter, for LMN pairing. Never log or return it through the API."""
    meter = await get_meter(session, device_id)
    if meter.mk0_ciphertext is None:
        raise MasterKeyMissing(f"meter {meter.device_id} has no MK0")
    return box.decrypt(meter.mk0_ciphertext, meter.device_id)


# -- CLS modules ------------------------------------------------------------------------------

def _cls_fields(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "firmware_version" in data:
        out["firmware_version"] = _optional(data["firmware_version"], v.firmware)
    if "controls" in data:
        out["controls"] = _optional(data["controls"], v.text, 100, "controls")
    return out


async def create_cls_module(session: AsyncSession, body: ClsModuleCreate) -> ClsModule:
    module = await _new_device(session, ClsModule, body.device_id, body.device_type,
                               **_cls_fields(body.model_dump()))
    record_change(session, "create", "cls_module", module.device_id, None, cls_snapshot(module))
    await flush_or_conflict(session, f"CLS module {module.device_id}")
    return module


async def update_cls_module(session: AsyncSession, device_id: str, body: ClsModuleUpdate) -> ClsModule:
    module = await _get(session, ClsModule, device_id, for_update=True)
    raw = body.model_dump(exclude_unset=True)
    changes = _cls_fields(raw)
    if raw.get("device_type") is not None:
        changes["device_type"] = raw["device_type"]
    new_type = await _device_type_change(session, module, "cls", changes)
    apply_update(session, module, changes, object_type="cls_module", object_id=module.device_id,
                 snapshot=cls_snapshot, mirrored=CLS_MIRRORED, setter=_setter(new_type))
    await flush_or_conflict(session, f"CLS module {module.device_id}")
    return module


async def delete_cls_module(session: AsyncSession, device_id: str) -> None:
    module = await _get(session, ClsModule, device_id, for_update=True)
    await _delete(session, module, "cls_module", cls_snapshot(module))
