"""Profile, LMN and readout commands (docs/protocol.md 10.5-10.11): meter, communication and
evaluation profiles (the TAF configuration), meter pairing with MK0, and the readouts: on request
(``trigger_readout``) and final (``final_readout``) the gateway delivers an evaluation profile's data
to its EMT itself (section 14) and answers the GWA only which deliveries it started.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from typing import Any

from simulator import readings
from simulator import xmlcodec as X
from simulator.commands import COMM_PROFILES, EVAL_PROFILES, LMN, METER_PROFILES, Ctx, Outcome, expect, handler
from simulator.deliveries import DeliveryError
from simulator.errors import CommandError
from simulator.meters import GRID_REGISTERS, MeterModel, demo_mk0
from simulator.state import LEVEL_ERROR, LEVEL_INFO, OUTCOME_FAILURE, OUTCOME_SUCCESS, GatewayState
from simulator.store import DeliveryRow

# Registers a simulated base meter offers: OBIS -> (DLMS unit, scaler used in readings)
METER_REGISTERS = {
    "1-0:1.8.0": (30, 0), "1-0:2.8.0": (30, 0), "1-0:1.8.1": (30, 0), "1-0:1.8.2": (30, 0),
    "1-0:2.8.1": (30, 0), "1-0:2.8.2": (30, 0), **GRID_REGISTERS, "1-1:1.29.0": (30, 0),
}


def _registers(el: ET.Element, *, with_units: bool) -> list[dict[str, Any]]:
    out = []
    for r in X.children(el, "register"):
        try:
            obis = X.check_obis(X.req(r, "obis"))
        except X.Malformed as err:
            raise CommandError("invalid_profile", str(err)) from None
        if obis not in METER_REGISTERS:
            raise CommandError("invalid_profile", f"register {obis} is not offered by the meter")
        item: dict[str, Any] = {"obis": obis}
        if with_units:
            item["unit"] = int(r.get("unit", METER_REGISTERS[obis][0]))
            item["scaler"] = int(r.get("scaler", METER_REGISTERS[obis][1]))
        out.append(item)
    if not out:
        raise CommandError("invalid_profile", "a profile needs at least one <register>")
    return out


def _store_profile(ctx: Ctx, kind: str, pid: str, content: dict[str, Any]) -> Outcome:
    profiles = ctx.gw.profiles.setdefault(kind, {})
    old = profiles.get(pid)
    same = old is not None and {k: v for k, v in old.items() if k != "since"} == content
    status = "unchanged" if same else "replaced" if old is not None else "created"
    if status != "unchanged":
        if kind == "evaluation" and "switchingTimes" in content:
            # derived tariff registers count from here (an unchanged rewrite keeps counting)
            content = {**content, "since": ctx.gw.gateway_time(ctx.now)}
        profiles[pid] = content
        ctx.gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"{kind} profile {pid} {status}")
    return Outcome(200, ctx.root("profileWritten", {"kind": kind, "id": pid, "status": status}))


def _delete_profile(ctx: Ctx, kind: str, body: ET.Element | None) -> Outcome:
    pid = X.req(expect(body, "profileRef"), "id")
    profiles = ctx.gw.profiles.setdefault(kind, {})
    refs = _referrers(ctx.gw, kind, pid)
    if refs:
        raise CommandError("rejected", f"{kind} profile {pid} is still used by evaluation profile(s) {', '.join(refs)}")
    existed = profiles.pop(pid, None) is not None
    if existed:
        ctx.gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"{kind} profile {pid} deleted")
    _update_device_state(ctx.gw)
    if kind == "evaluation":
        ctx.fleet.profiles_changed(ctx.gw)
    return Outcome(200, ctx.root("profileDeleted", {"kind": kind, "id": pid, "existed": existed}))


def _referrers(gw: GatewayState, kind: str, pid: str) -> list[str]:
    attr = {"meter": "meterProfile", "communication": "communicationProfile"}.get(kind)
    if attr is None:
        return []
    return sorted(eid for eid, ep in gw.profiles.get("evaluation", {}).items() if ep.get(attr) == pid)


def _update_device_state(gw: GatewayState) -> None:
    """``operational`` while an active evaluation profile exists, else ``personalized``."""
    if gw.device_state not in ("personalized", "operational"):
        return
    active = any(ep.get("active") for ep in gw.profiles.get("evaluation", {}).values())
    gw.device_state = "operational" if active else "personalized"


def _has_certificate(gw: GatewayState, owner: str, usage: str | None = None) -> bool:
    return any(c["owner"] == owner and c["role"] == "emt" and (usage is None or c["usage"] == usage)
               for c in gw.certificates.values())


# --------------------------------------------------------------------------- meter profiles


@handler("POST", METER_PROFILES, "methods", 1, "write_meter_profile")
def write_meter_profile(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "meterProfile")
    pid, meter = X.req(el, "id"), X.req(el, "meter")
    interface = el.get("interface", "lmn-wired")
    if interface not in ("lmn-wired", "lmn-wireless"):
        raise CommandError("invalid_profile", f"interface {interface!r} unknown")
    period = X.req_int(el, "capturePeriod", 1, 86400)
    if period % 60:
        raise CommandError("invalid_profile", "capturePeriod must be whole minutes")
    m = ctx.gw.meters.get(meter)
    if m is None or not m["paired"]:
        raise CommandError("not_paired", f"meter {meter} is not paired with this gateway")
    content = {"meter": meter, "interface": interface, "capturePeriod": period,
               "registers": _registers(el, with_units=True)}
    return _store_profile(ctx, "meter", pid, content)


@handler("POST", METER_PROFILES, "methods", 2, "delete_meter_profile")
def delete_meter_profile(ctx: Ctx, body: ET.Element | None) -> Outcome:
    return _delete_profile(ctx, "meter", body)


# --------------------------------------------------------------------------- communication profiles


@handler("POST", COMM_PROFILES, "methods", 1, "write_communication_profile")
def write_communication_profile(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "communicationProfile")
    pid, peer, role, endpoint = X.req(el, "id"), X.req(el, "peer"), X.req(el, "role"), X.req(el, "endpoint")
    if role not in ("emt", "gwa"):
        raise CommandError("invalid_profile", f"role {role!r} is neither emt nor gwa")
    if not endpoint.startswith("https://"):
        raise CommandError("invalid_profile", "endpoint must be an https URI")
    content: dict[str, Any] = {"peer": peer, "role": role, "endpoint": endpoint,
                               "retries": X.req_int(el, "retries", 0, 100) if el.get("retries") else 3,
                               "retryInterval": X.req_int(el, "retryInterval", 1) if el.get("retryInterval") else 300}
    if role == "emt" and not _has_certificate(ctx.gw, peer):
        raise CommandError("unknown_recipient", f"no certificate of {peer} is installed")
    if role == "gwa":
        gwa = ctx.gw.certificates.get("gwa:tls") or {}
        if gwa.get("owner") != peer:
            raise CommandError("unknown_recipient", f"{peer} is not the GWA of this gateway")
        if el.get("contactInterval"):
            content["contactInterval"] = X.req_int(el, "contactInterval", 0)
        if el.get("eventUri"):
            content["eventUri"] = X.req(el, "eventUri")
    out = _store_profile(ctx, "communication", pid, content)
    ctx.fleet.schedule_cyclic(ctx.gw)
    return out


@handler("POST", COMM_PROFILES, "methods", 2, "delete_communication_profile")
def delete_communication_profile(ctx: Ctx, body: ET.Element | None) -> Outcome:
    out = _delete_profile(ctx, "communication", body)
    ctx.fleet.schedule_cyclic(ctx.gw)
    return out


# --------------------------------------------------------------------------- evaluation profiles (TAF)


@handler("POST", EVAL_PROFILES, "methods", 1, "write_evaluation_profile")
def write_evaluation_profile(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "evaluationProfile")
    pid = X.req(el, "id")
    taf = X.req_int(el, "taf", 1, 14)
    if taf not in ctx.fleet.vendor(ctx.gw).tafs:
        raise CommandError("unsupported", f"TAF {taf} is not supported by this gateway", status=501)
    recipient, cp, mp = X.req(el, "recipient"), X.req(el, "communicationProfile"), X.req(el, "meterProfile")
    interval = X.req_int(el, "interval", 1)
    delivery = X.req_int(el, "deliveryPeriod", 1)
    profiles = ctx.gw.profiles
    if cp not in profiles.get("communication", {}):
        raise CommandError("unknown_profile", f"communication profile {cp} not present")
    meter_profile = profiles.get("meter", {}).get(mp)
    if meter_profile is None:
        raise CommandError("unknown_profile", f"meter profile {mp} not present")
    if not _has_certificate(ctx.gw, recipient, "enc"):
        raise CommandError("unknown_recipient", f"no ENC certificate of {recipient} is installed")
    regs = _registers(el, with_units=False)
    offered = {r["obis"] for r in meter_profile["registers"]}
    missing = [r["obis"] for r in regs if r["obis"] not in offered]
    if missing:
        raise CommandError("invalid_profile", f"registers {', '.join(missing)} not in meter profile {mp}")
    if interval % meter_profile["capturePeriod"]:
        raise CommandError("invalid_profile", f"interval {interval} is not a multiple of the capture period")
    if taf == 7 and interval != 900:
        raise CommandError("invalid_profile", "TAF 7 registers every 15 minutes (interval 900)")
    switching = _switching_times(el, taf, [r["obis"] for r in regs])
    content = {"taf": taf, "recipient": recipient, "communicationProfile": cp, "meterProfile": mp,
               "interval": interval, "deliveryPeriod": delivery, "active": X.opt_bool(el, "active", True),
               "validFrom": el.get("validFrom"), "validTo": el.get("validTo"),
               "registers": [r["obis"] for r in regs]}
    if switching:
        content["switchingTimes"] = switching
    out = _store_profile(ctx, "evaluation", pid, content)
    _update_device_state(ctx.gw)
    ctx.fleet.profiles_changed(ctx.gw)
    return out


def _switching_times(el: ET.Element, taf: int, registers: list[str]) -> list[dict[str, str]]:
    """TAF 2's daily schedule: at least two ``<switchingTime at="HH:MM" register="obis">``, distinct
    times, each register one of the profile's tariff registers; no other TAF takes one."""
    out = []
    for s in X.children(el, "switchingTime"):
        at = X.req(s, "at")
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", at):
            raise CommandError("invalid_profile", f"switching time {at!r} is not HH:MM")
        reg = X.req(s, "register")
        if reg not in registers:
            raise CommandError("invalid_profile", f"switching time {at} names register {reg}, not in the profile")
        out.append({"at": at, "register": reg})
    if taf != 2:
        if out:
            raise CommandError("invalid_profile", f"TAF {taf} has no switching times")
        return out
    if len(out) < 2 or len({s["register"] for s in out}) < 2:
        raise CommandError("invalid_profile", "TAF 2 needs switching times between at least two tariff registers")
    if len({s["at"] for s in out}) != len(out):
        raise CommandError("invalid_profile", "TAF 2 switching times repeat a time")
    return sorted(out, key=lambda s: s["at"])


@handler("POST", EVAL_PROFILES, "methods", 2, "delete_evaluation_profile")
def delete_evaluation_profile(ctx: Ctx, body: ET.Element | None) -> Outcome:
    return _delete_profile(ctx, "evaluation", body)


@handler("POST", EVAL_PROFILES, "methods", 3, "deactivate_profiles")
def deactivate_profiles(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "deactivateProfiles")
    evals = ctx.gw.profiles.setdefault("evaluation", {})
    if X.opt_bool(el, "all", False):
        ids = sorted(evals)
    else:
        ids = [X.req(p, "id") for p in X.children(el, "profile")]
        unknown = [i for i in ids if i not in evals]
        if unknown:
            raise CommandError("unknown_profile", f"evaluation profile(s) {', '.join(unknown)} not present")
    root = ctx.root("profilesDeactivated")
    for pid in ids:
        was = bool(evals[pid].get("active"))
        evals[pid]["active"] = False
        X.sub(root, "profile", {"id": pid, "wasActive": was})
        if was:
            ctx.gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"evaluation profile {pid} deactivated")
    _update_device_state(ctx.gw)
    ctx.fleet.profiles_changed(ctx.gw)
    return Outcome(200, root)


# --------------------------------------------------------------------------- readouts


def _meter_model(ctx: Ctx, meter: str, *, need_paired: bool = True) -> MeterModel:
    """The meter, if it is paired and answers on the LMN (``not_paired`` / ``meter_missing``)."""
    m = ctx.gw.meters.get(meter)
    if m is None:
        raise CommandError("meter_missing", f"meter {meter} does not answer on the LMN")
    if need_paired and not m["paired"]:
        raise CommandError("not_paired", f"meter {meter} is not paired")
    if readings.meter_missing(ctx.gw, meter):
        raise CommandError("meter_missing", f"meter {meter} does not answer on the LMN")
    return MeterModel(meter, ctx.gw.seed)


# Why a trigger_readout may start a delivery (docs/protocol.md 10.9; gg:reason of 14.2). ``final``
# is final_readout's; ``scheduled`` and ``threshold`` are the gateway's own.
TRIGGER_REASONS = ("on_demand", "feed_in", "first_readout", "meter_exchange_closing", "meter_exchange_opening")
# DeliveryError.code -> the admin protocol's error reason (docs/protocol.md 9)
_DELIVERY_ERRORS = {"unknown_profile": "unknown_profile", "incomplete_profile": "unknown_profile",
                    "inactive_profile": "rejected", "bad_reason": "malformed", "deliveries_off": "unsupported"}


def _meter_of(gw: GatewayState, ep: dict[str, Any]) -> str:
    return str(gw.profiles.get("meter", {}).get(ep.get("meterProfile", ""), {}).get("meter", ""))


def _on_request_profile(ctx: Ctx, recipient: str, meter: str, reason: str) -> str:
    """The active TAF 6 profile (reason ``feed_in``: TAF 9) of ``recipient`` on ``meter``."""
    taf = 9 if reason == "feed_in" else 6
    found = sorted(pid for pid, ep in ctx.gw.profiles.get("evaluation", {}).items()
                   if ep.get("active") and ep.get("recipient") == recipient and int(ep.get("taf", 0)) == taf
                   and _meter_of(ctx.gw, ep) == meter)
    if not found:
        raise CommandError("unknown_profile", f"no active TAF {taf} evaluation profile of {recipient} on meter {meter}")
    return found[0]


def _start_delivery(ctx: Ctx, pid: str, reason: str) -> tuple[DeliveryRow, ET.Element]:
    """Build the delivery of profile ``pid`` now (docs/protocol.md 14) and the ``<delivery>``
    element that acknowledges it. The meter must answer on the LMN."""
    ep = ctx.gw.profiles.get("evaluation", {}).get(pid)
    if ep is None:
        raise CommandError("unknown_profile", f"evaluation profile {pid} not present")
    meter = _meter_of(ctx.gw, ep)
    if meter:
        _meter_model(ctx, meter)
    try:
        row = ctx.fleet.build_delivery(ctx.gw, pid, reason)
    except DeliveryError as err:
        raise CommandError(_DELIVERY_ERRORS.get(err.code, "internal"), str(err)) from None
    el = X.element("delivery", {
        "profile": pid, "taf": row.taf, "recipient": row.recipient, "meter": meter or None, "reason": row.reason,
        "cid": row.cid, "valuesFrom": X.fmt_time(row.period_start) if row.period_start is not None else None,
        "valuesAt": X.fmt_time(row.period_end) if row.period_end is not None else None,
        "created": X.fmt_time(ctx.gw.gateway_time(ctx.now))})
    return row, el


@handler("POST", EVAL_PROFILES, "methods", 4, "trigger_readout")
def trigger_readout(ctx: Ctx, body: ET.Element | None) -> Outcome:
    """Deliver one evaluation profile's data to its EMT now; the answer says which delivery."""
    el = expect(body, "readoutRequest")
    pid = el.get("profile")
    reason = el.get("reason") or ""
    if not pid:
        recipient, meter = el.get("recipient"), el.get("meter")
        if not recipient or not meter:
            raise CommandError("malformed", "readoutRequest needs profile, or recipient and meter")
        pid = _on_request_profile(ctx, recipient, meter, reason)
    ep = ctx.gw.profiles.get("evaluation", {}).get(pid)
    if ep is None:
        raise CommandError("unknown_profile", f"evaluation profile {pid} not present")
    reason = reason or ("feed_in" if int(ep.get("taf", 0)) == 9 else "on_demand")
    if reason not in TRIGGER_REASONS:
        raise CommandError("malformed", f"reason {reason!r} is not one of {', '.join(TRIGGER_REASONS)}")
    row, delivery = _start_delivery(ctx, pid, reason)
    ctx.deliveries.append(row)
    ctx.gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"readout of {pid} for {row.recipient} ({reason}) started")
    root = ctx.root("readoutTriggered")
    root.append(delivery)
    return Outcome(200, root)


@handler("POST", EVAL_PROFILES, "methods", 5, "final_readout")
def final_readout(ctx: Ctx, body: ET.Element | None) -> Outcome:
    """Deliver the final values of every active evaluation profile to its EMT (202 + Notify listing
    the deliveries started)."""
    el = expect(body, "finalReadoutRequest")
    why = el.get("reason", "deinstallation")

    async def later() -> tuple[int, ET.Element]:
        await asyncio.sleep(ctx.fleet.settings.async_delay_s)
        ctx.now = ctx.fleet.now()
        out = X.element("finalReadout", {"gateway": ctx.gid})
        rows = []
        for pid, ep in sorted(ctx.gw.profiles.get("evaluation", {}).items()):
            if ep.get("active"):
                row, delivery = _start_delivery(ctx, pid, "final")
                rows.append(row)
                out.append(delivery)
        ctx.deliveries.extend(rows)
        ctx.gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"final readout ({why}): {len(rows)} deliveries started")
        return 200, out

    return Outcome(202, None, later=later)


# --------------------------------------------------------------------------- LMN pairing


@handler("POST", LMN, "methods", 1, "pair_meter")
def pair_meter(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "pairMeter")
    meter = X.req(el, "meter")
    interface = el.get("interface", "lmn-wired")
    mk0_el = el.find(X.q("mk0"))
    try:
        mk0 = bytes.fromhex((mk0_el.text or "").strip()) if mk0_el is not None else b""
    except ValueError:
        raise CommandError("malformed", "mk0 is not hex") from None
    if len(mk0) not in (16, 32):
        raise CommandError("malformed", "mk0 must be 16 or 32 bytes")

    async def later() -> tuple[int, ET.Element]:
        await asyncio.sleep(ctx.fleet.settings.async_delay_s)
        gw = ctx.gw
        m = gw.meters.get(meter)
        if m is None or readings.meter_missing(gw, meter):
            gw.log("system", LEVEL_ERROR, OUTCOME_FAILURE, f"pairing {meter}: meter does not answer")
            raise CommandError("meter_missing", f"meter {meter} does not answer on the LMN")
        if not hmac.compare_digest(mk0[:16], demo_mk0(meter)):
            gw.log("system", LEVEL_ERROR, OUTCOME_FAILURE, f"pairing {meter}: authentication failed")
            raise CommandError("rejected", f"pairing with {meter} failed: master key does not authenticate")
        status = "already_paired" if m["paired"] else "paired"
        if status == "paired":
            paired = sum(1 for x in gw.meters.values() if x["paired"])
            if paired >= ctx.fleet.vendor(gw).max_meters:
                raise CommandError("rejected", "LMN is full")
            m.update(paired=True, interface=interface, paired_at=ctx.fleet.now())
            gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"meter {meter} paired ({interface})")
        return 200, X.element("meterPaired", {"gateway": gw.gateway_id, "meter": meter, "interface": interface,
                                              "status": status})

    return Outcome(202, None, later=later)


@handler("POST", LMN, "methods", 2, "unpair_meter")
def unpair_meter(ctx: Ctx, body: ET.Element | None) -> Outcome:
    meter = X.req(expect(body, "unpairMeter"), "meter")
    users = sorted(pid for pid, mp in ctx.gw.profiles.get("meter", {}).items() if mp.get("meter") == meter)
    if users:
        raise CommandError("rejected", f"meter {meter} is still used by meter profile(s) {', '.join(users)}")
    m = ctx.gw.meters.get(meter)
    existed = bool(m and m["paired"])
    if m is not None and existed:
        m.update(paired=False, paired_at=None)
        ctx.gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"meter {meter} unpaired")
    return Outcome(200, ctx.root("meterUnpaired", {"meter": meter, "existed": existed}))
