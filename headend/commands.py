"""The command set of docs/protocol.md section 10: each command builds its request XML, calls the
gateway through :class:`~headend.client.AdminClient` and turns the answer into the activity's
result dataclass."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

from headend import contract as M
from headend import xmlcodec as X
from headend.client import AdminClient, Answer
from headend.errors import CommandFailed, ConnectionLost, HeadendError

OBJ_DEVICE_INFO = "1-0000600100ff"
OBJ_CLOCK = "8-0000010000ff"
OBJ_CERTIFICATES = "64-00002b0000ff"
OBJ_LOGS = {"system": "7-0000636200ff", "calibration": "7-0000636201ff", "consumer": "7-0000636202ff"}
OBJ_IMAGE = "18-00002c0000ff"
OBJ_REBOOT = "9-00000a0000ff"
OBJ_METER_PROFILES = "130-00005e3101ff"
OBJ_COMM_PROFILES = "131-00005e3102ff"
OBJ_EVAL_PROFILES = "132-00005e3103ff"
OBJ_LMN = "133-00005e3104ff"

NOTIFY_TIMEOUTS = {"pair_meter": 120.0, "image_verify": 300.0, "activate_firmware": 900.0, "final_readout": 300.0,
                   "reboot": 300.0}
MAX_CLOCK_ROUND_TRIP_S = 9.0  # DS: NTP answers with a longer round trip are dropped
# A set_time repeat refused as command_conflict counts as done when the clock is this close.
SET_TIME_REPEAT_TOLERANCE_MS = 1000.0


def _expect(answer: Answer, tag: str) -> X.ET.Element:
    root = answer.root
    if root is None or X.local(root) != tag:
        got = X.local(root) if root is not None else "no body"
        raise HeadendError(f"expected <{tag}>, gateway answered {got}", error_type="malformed")
    return root


def _xml(root: X.ET.Element) -> bytes:
    return X.dumps(root)


def _notify_timeout(name: str, inp: M.GatewayCommand) -> float:
    return inp.timeout_s or NOTIFY_TIMEOUTS.get(name, 300.0)


def _sync_timeout(inp: M.GatewayCommand) -> float | None:
    return inp.timeout_s


# --------------------------------------------------------------------------- device info / time
async def read_device_info(c: AdminClient, inp: M.ReadDeviceInfoInput) -> M.DeviceInfoResult:
    ans = await c.call("read_device_info", "GET", f"objects/{OBJ_DEVICE_INFO}/attributes/2",
                       timeout=_sync_timeout(inp))
    try:
        root = _expect(ans, "deviceInfo")
        clock = X.first(root, "clock")
        return M.DeviceInfoResult(
            gateway_id=c.gateway_id,
            vendor=X.text(X.first(root, "vendor")),
            model=X.text(X.first(root, "model")),
            server_id=X.text(X.first(root, "serverId")),
            state=X.text(X.first(root, "state")),
            firmware=tuple(M.FirmwareSlot(slot=X.req(f, "slot"), version=X.req(f, "version"))
                           for f in X.children(root, "firmware")),
            clock=clock.get("time", "") if clock is not None else "",
            clock_valid=X.boolean(clock, "valid", True) if clock is not None else False,
            uptime_s=int(X.text(X.first(root, "uptime"))) if X.text(X.first(root, "uptime")).isdigit() else None,
            meters=tuple(M.MeterOnLmn(meter_id=X.req(m, "id"), interface=m.get("interface", ""),
                                      paired=X.boolean(m, "paired", True)) for m in X.children(root, "meter")),
            capabilities=tuple(M.Capability(name=X.req(k, "name"), value=k.get("value", ""))
                               for k in X.children(root, "capability")),
            tls_certificate_sha256=c.admission.fingerprint,
        )
    except X.XmlError as err:
        raise HeadendError(f"deviceInfo: {err}", error_type="malformed") from None


async def measure_clock_offset(c: AdminClient, inp: M.MeasureClockOffsetInput) -> M.ClockOffsetResult:
    t0 = time.time()
    ans = await c.call("measure_clock_offset", "GET", f"objects/{OBJ_CLOCK}/attributes/2", timeout=_sync_timeout(inp))
    t1 = ans.received_at
    root = _expect(ans, "clock")
    try:
        gw_time = X.parse_time(X.req(root, "time")).timestamp()
    except X.XmlError as err:
        raise HeadendError(f"clock: {err}", error_type="malformed") from None
    rtt = t1 - t0
    if rtt > MAX_CLOCK_ROUND_TRIP_S:
        raise HeadendError(f"clock round trip {rtt:.1f}s exceeds {MAX_CLOCK_ROUND_TRIP_S}s", error_type="busy")
    return M.ClockOffsetResult(gateway_id=c.gateway_id, gateway_time=root.get("time", ""),
                               offset_ms=round((gw_time - (t0 + t1) / 2) * 1000, 1), round_trip_ms=round(rtt * 1000, 1),
                               clock_valid=X.boolean(root, "valid", True))


async def set_time(c: AdminClient, inp: M.SetTimeInput) -> M.SetTimeResult:
    if inp.mode == "shift":
        if inp.shift_ms is None:
            raise HeadendError("mode shift needs shift_ms", error_type="malformed")
        el = X.element("clock", {"mode": "shift", "shiftMs": inp.shift_ms})
        sent = None
    elif inp.mode == "set":
        sent = X.timestamp()
        el = X.element("clock", {"time": sent, "mode": "set"})
    else:
        raise HeadendError(f"unknown set_time mode {inp.mode!r}", error_type="malformed")
    try:
        await c.call("set_time", "PUT", f"objects/{OBJ_CLOCK}/attributes/2", _xml(el), command_id=inp.command_id,
                     timeout=_sync_timeout(inp))
    except CommandFailed as err:
        if err.error_type != "command_conflict" or inp.mode != "set":
            raise
        return await _set_time_already_applied(c, inp, err)
    return M.SetTimeResult(gateway_id=c.gateway_id, mode=inp.mode, sent_time=sent, shift_ms=inp.shift_ms)


async def _set_time_already_applied(c: AdminClient, inp: M.SetTimeInput, conflict: CommandFailed) -> M.SetTimeResult:
    """A repeat of ``set`` carries a newer time than the first attempt, so a gateway that already
    executed that attempt (whose answer was lost with the connection) refuses the repeat with
    ``command_conflict`` rather than applying it twice. The clock itself tells whether that earlier
    attempt set it: within the tolerance it did, and the step is done without a second setting."""
    check = await measure_clock_offset(c, M.MeasureClockOffsetInput(gateway_id=c.gateway_id,
                                                                    command_id=inp.command_id, timeout_s=inp.timeout_s))
    if not check.clock_valid or abs(check.offset_ms) > max(SET_TIME_REPEAT_TOLERANCE_MS, check.round_trip_ms):
        raise conflict
    return M.SetTimeResult(gateway_id=c.gateway_id, mode=inp.mode, sent_time=None, shift_ms=None,
                           already_applied=True, offset_after_ms=check.offset_ms)


# --------------------------------------------------------------------------- certificates
async def install_certificates(c: AdminClient, inp: M.InstallCertificatesInput) -> M.InstallCertificatesResult:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    kids = []
    for cert in inp.certificates:
        try:
            der = x509.load_pem_x509_certificate(cert.pem.encode()).public_bytes(serialization.Encoding.DER)
        except ValueError as err:
            raise HeadendError(f"certificate for {cert.owner}/{cert.usage} unreadable: {err}",
                               error_type="certificate_invalid") from None
        kids.append(X.element("certificate", {"owner": cert.owner, "role": cert.role, "usage": cert.usage},
                              base64.b64encode(der).decode()))
    ans = await c.call("install_certificates", "POST", f"objects/{OBJ_CERTIFICATES}/methods/6",
                       _xml(X.element("certificates", children=kids)), command_id=inp.command_id,
                       timeout=_sync_timeout(inp))
    root = _expect(ans, "certificatesInstalled")
    result = M.InstallCertificatesResult(gateway_id=c.gateway_id, certificates=tuple(
        M.InstalledCertificate(owner=e.get("owner", ""), usage=e.get("usage", ""), sha256=e.get("sha256", ""),
                               status=e.get("status", "")) for e in X.children(root, "certificate")))
    own = {cert.usage for cert in inp.certificates if cert.role == "smgw"}
    if any(i.status == "installed" and i.usage in own and i.owner == c.gateway_id for i in result.certificates):
        forget_gateway_certificates(c)
    return result


def forget_gateway_certificates(c: AdminClient) -> None:
    """The gateway has new own certificates (renewal): drop what this node cached about them, so the
    next seal uses its new ENC certificate and its next connection (with the new TLS certificate,
    already active in the store) is admitted against fresh store data."""
    c.ep.enc_certs.pop(c.gateway_id, None)
    c.node.forget_gateway(c.ep.name, c.gateway_id)


async def request_certificate_signing(c: AdminClient,
                                      inp: M.RequestCertificateSigningInput) -> M.RequestCertificateSigningResult:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    if inp.usage not in ("tls", "sig", "enc"):
        raise HeadendError(f"usage {inp.usage!r} is not tls, sig or enc", error_type="malformed")
    ans = await c.call("request_certificate_signing", "POST", f"objects/{OBJ_CERTIFICATES}/methods/5",
                       _xml(X.element("generateCertificateRequest", {"usage": inp.usage})),
                       command_id=inp.command_id, timeout=_sync_timeout(inp))
    root = _expect(ans, "certificateRequest")
    try:
        der = base64.b64decode("".join(X.text(root).split()), validate=True)
        csr = x509.load_der_x509_csr(der)
        spki = csr.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        valid = csr.is_signature_valid
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError as err:
        raise HeadendError(f"certificateRequest is not a base64 DER PKCS#10: {err}", error_type="malformed") from None
    digest = hashlib.sha256(der).hexdigest()
    problem = None
    if not valid:
        problem = "its signature does not verify"
    elif [str(n.value).upper() for n in cns] != [f"{c.gateway_id}.SMGW"]:
        problem = f"its CN is not {c.gateway_id}.SMGW"
    elif root.get("usage", inp.usage) != inp.usage:
        problem = f"it is for usage {root.get('usage')}, {inp.usage} was requested"
    elif (root.get("sha256") or digest).lower() != digest:
        problem = "it does not match its sha256"
    if problem:
        raise HeadendError(f"certificate request from {c.gateway_id} refused: {problem}", error_type="malformed")
    return M.RequestCertificateSigningResult(
        gateway_id=c.gateway_id, usage=inp.usage, csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode(),
        key_id=hashlib.sha256(spki).hexdigest(), sha256=digest, subject=csr.subject.rfc4514_string())


# --------------------------------------------------------------------------- profiles
def _written(ans: Answer, c: AdminClient, kind: str, profile_id: str) -> M.ProfileWriteResult:
    root = _expect(ans, "profileWritten")
    return M.ProfileWriteResult(gateway_id=c.gateway_id, kind=root.get("kind", kind),
                                profile_id=root.get("id", profile_id), status=root.get("status", ""))


def _deleted(ans: Answer, c: AdminClient, kind: str, profile_id: str) -> M.ProfileDeleteResult:
    root = _expect(ans, "profileDeleted")
    return M.ProfileDeleteResult(gateway_id=c.gateway_id, kind=root.get("kind", kind),
                                 profile_id=root.get("id", profile_id), existed=X.boolean(root, "existed", True))


async def write_meter_profile(c: AdminClient, inp: M.WriteMeterProfileInput) -> M.ProfileWriteResult:
    p = inp.profile
    el = X.element("meterProfile", {"id": p.profile_id, "meter": p.meter_id, "interface": p.interface,
                                    "capturePeriod": p.capture_period_s},
                   children=[X.element("register", {"obis": r.obis, "unit": r.unit, "scaler": r.scaler})
                             for r in p.registers])
    ans = await c.call("write_meter_profile", "POST", f"objects/{OBJ_METER_PROFILES}/methods/1", _xml(el),
                       command_id=inp.command_id, timeout=_sync_timeout(inp))
    return _written(ans, c, "meter", p.profile_id)


async def delete_meter_profile(c: AdminClient, inp: M.DeleteMeterProfileInput) -> M.ProfileDeleteResult:
    ans = await c.call("delete_meter_profile", "POST", f"objects/{OBJ_METER_PROFILES}/methods/2",
                       _xml(X.element("profileRef", {"id": inp.profile_id})), command_id=inp.command_id,
                       timeout=_sync_timeout(inp))
    return _deleted(ans, c, "meter", inp.profile_id)


async def write_communication_profile(c: AdminClient, inp: M.WriteCommunicationProfileInput) -> M.ProfileWriteResult:
    p = inp.profile
    el = X.element("communicationProfile", {
        "id": p.profile_id, "peer": p.peer, "role": p.role, "endpoint": p.endpoint, "retries": p.retries,
        "retryInterval": p.retry_interval_s, "contactInterval": p.contact_interval_s, "eventUri": p.event_uri})
    ans = await c.call("write_communication_profile", "POST", f"objects/{OBJ_COMM_PROFILES}/methods/1", _xml(el),
                       command_id=inp.command_id, timeout=_sync_timeout(inp))
    return _written(ans, c, "communication", p.profile_id)


async def delete_communication_profile(c: AdminClient,
                                       inp: M.DeleteCommunicationProfileInput) -> M.ProfileDeleteResult:
    ans = await c.call("delete_communication_profile", "POST", f"objects/{OBJ_COMM_PROFILES}/methods/2",
                       _xml(X.element("profileRef", {"id": inp.profile_id})), command_id=inp.command_id,
                       timeout=_sync_timeout(inp))
    return _deleted(ans, c, "communication", inp.profile_id)


async def write_evaluation_profile(c: AdminClient, inp: M.WriteEvaluationProfileInput) -> M.ProfileWriteResult:
    p = inp.profile
    el = X.element("evaluationProfile", {
        "id": p.profile_id, "taf": p.taf, "recipient": p.recipient, "communicationProfile": p.communication_profile,
        "meterProfile": p.meter_profile, "interval": p.interval_s, "deliveryPeriod": p.delivery_period_s,
        "active": p.active, "validFrom": p.valid_from, "validTo": p.valid_to},
        children=[*(X.element("register", {"obis": r}) for r in p.registers),
                  *(X.element("switchingTime", {"at": s.at, "register": s.register}) for s in p.switching_times)])
    ans = await c.call("write_evaluation_profile", "POST", f"objects/{OBJ_EVAL_PROFILES}/methods/1", _xml(el),
                       command_id=inp.command_id, timeout=_sync_timeout(inp))
    return _written(ans, c, "evaluation", p.profile_id)


async def delete_evaluation_profile(c: AdminClient, inp: M.DeleteEvaluationProfileInput) -> M.ProfileDeleteResult:
    ans = await c.call("delete_evaluation_profile", "POST", f"objects/{OBJ_EVAL_PROFILES}/methods/2",
                       _xml(X.element("profileRef", {"id": inp.profile_id})), command_id=inp.command_id,
                       timeout=_sync_timeout(inp))
    return _deleted(ans, c, "evaluation", inp.profile_id)


async def deactivate_profiles(c: AdminClient, inp: M.DeactivateProfilesInput) -> M.DeactivateProfilesResult:
    el = X.element("deactivateProfiles", {"all": not inp.profile_ids},
                   children=[X.element("profile", {"id": p}) for p in inp.profile_ids])
    ans = await c.call("deactivate_profiles", "POST", f"objects/{OBJ_EVAL_PROFILES}/methods/3", _xml(el),
                       command_id=inp.command_id, timeout=_sync_timeout(inp))
    root = _expect(ans, "profilesDeactivated")
    return M.DeactivateProfilesResult(gateway_id=c.gateway_id, profiles=tuple(
        M.DeactivatedProfile(profile_id=X.req(p, "id"), was_active=X.boolean(p, "wasActive", True))
        for p in X.children(root, "profile")))


# --------------------------------------------------------------------------- readouts
def _delivery(el: X.ET.Element) -> M.ReadoutDelivery:
    """One ``<delivery>`` of an acknowledgement (docs/protocol.md 10.9)."""
    try:
        values_at = X.req(el, "valuesAt")
        X.parse_time(values_at)
        return M.ReadoutDelivery(profile_id=X.req(el, "profile"), taf=X.req_int(el, "taf"),
                                 recipient=X.req(el, "recipient"), meter_id=el.get("meter", ""),
                                 reason=X.req(el, "reason"), delivery_ref=X.req(el, "cid"), values_at=values_at,
                                 values_from=el.get("valuesFrom"), created=el.get("created"))
    except X.XmlError as err:
        raise HeadendError(f"delivery: {err}", error_type="malformed") from None


async def trigger_readout(c: AdminClient, inp: M.TriggerReadoutInput) -> M.TriggerReadoutResult:
    if inp.profile_id:
        attrs: dict[str, object] = {"profile": inp.profile_id, "reason": inp.reason}
    elif inp.recipient and inp.meter_id:
        attrs = {"recipient": inp.recipient, "meter": inp.meter_id, "reason": inp.reason}
    else:
        raise HeadendError("trigger_readout needs profile_id, or recipient and meter_id", error_type="malformed")
    ans = await c.call("trigger_readout", "POST", f"objects/{OBJ_EVAL_PROFILES}/methods/4",
                       _xml(X.element("readoutRequest", attrs)), command_id=inp.command_id,
                       timeout=_sync_timeout(inp), notify_timeout=_notify_timeout("", inp))
    deliveries = X.children(_expect(ans, "readoutTriggered"), "delivery")
    if len(deliveries) != 1:
        raise HeadendError(f"readoutTriggered names {len(deliveries)} deliveries, not one", error_type="malformed")
    delivery = _delivery(deliveries[0])
    if inp.profile_id and delivery.profile_id != inp.profile_id:
        raise HeadendError(f"the gateway started a delivery of {delivery.profile_id}, not of {inp.profile_id}",
                           error_type="malformed")
    return M.TriggerReadoutResult(gateway_id=c.gateway_id, delivery=delivery)


async def final_readout(c: AdminClient, inp: M.FinalReadoutInput) -> M.FinalReadoutResult:
    ans = await c.call("final_readout", "POST", f"objects/{OBJ_EVAL_PROFILES}/methods/5",
                       _xml(X.element("finalReadoutRequest", {"reason": inp.reason})), command_id=inp.command_id,
                       notify_timeout=_notify_timeout("final_readout", inp))
    root = _expect(ans, "finalReadout")
    return M.FinalReadoutResult(gateway_id=c.gateway_id,
                                deliveries=tuple(_delivery(d) for d in X.children(root, "delivery")))


# --------------------------------------------------------------------------- LMN
async def pair_meter(c: AdminClient, inp: M.PairMeterInput, mk0: bytes, interface: str) -> M.PairMeterResult:
    el = X.element("pairMeter", {"meter": inp.meter_id, "interface": interface},
                   children=[X.element("mk0", text=mk0.hex())])
    ans = await c.call("pair_meter", "POST", f"objects/{OBJ_LMN}/methods/1", _xml(el), command_id=inp.command_id,
                       notify_timeout=_notify_timeout("pair_meter", inp))
    root = _expect(ans, "meterPaired")
    return M.PairMeterResult(gateway_id=c.gateway_id, meter_id=root.get("meter", inp.meter_id),
                             interface=root.get("interface", interface), status=root.get("status", "paired"))


async def unpair_meter(c: AdminClient, inp: M.UnpairMeterInput) -> M.UnpairMeterResult:
    ans = await c.call("unpair_meter", "POST", f"objects/{OBJ_LMN}/methods/2",
                       _xml(X.element("unpairMeter", {"meter": inp.meter_id})), command_id=inp.command_id,
                       timeout=_sync_timeout(inp))
    root = _expect(ans, "meterUnpaired")
    return M.UnpairMeterResult(gateway_id=c.gateway_id, meter_id=root.get("meter", inp.meter_id),
                               existed=X.boolean(root, "existed", True))


# --------------------------------------------------------------------------- logbooks
async def read_logbook(c: AdminClient, inp: M.ReadLogbookInput) -> M.LogbookResult:
    obj = OBJ_LOGS.get(inp.log)
    if obj is None:
        raise HeadendError(f"unknown log {inp.log!r} (system, calibration, consumer)", error_type="malformed")
    query: dict[str, object] = {"sa.fromidx": inp.from_record, "sa.toidx": inp.to_record,
                                "sa.count": max(1, min(inp.max_entries, 500)),
                                "q.fromtime": inp.from_time, "q.totime": inp.to_time}
    ans = await c.call("read_logbook", "GET", f"objects/{obj}/attributes/2", query=query, timeout=_sync_timeout(inp))
    root = _expect(ans, "logbook")
    try:
        entries = tuple(M.LogEntry(record=X.req_int(e, "record"), level=X.req_int(e, "level"),
                                   outcome=X.req_int(e, "outcome"), time=X.req(e, "time"), text=X.text(e))
                        for e in X.children(root, "entry"))
        return M.LogbookResult(gateway_id=c.gateway_id, log=root.get("log", inp.log),
                               first_record=X.opt_int(root, "first"), last_record=X.opt_int(root, "last"),
                               more=X.boolean(root, "more", False), entries=entries)
    except X.XmlError as err:
        raise HeadendError(f"logbook: {err}", error_type="malformed") from None


# --------------------------------------------------------------------------- firmware
def _image_status(ans: Answer) -> X.ET.Element:
    return _expect(ans, "imageTransferStatus")


async def download_firmware(c: AdminClient, inp: M.DownloadFirmwareInput, firmware_dir: Path,
                            block_bytes: int) -> M.DownloadFirmwareResult:
    if Path(inp.image_file).name != inp.image_file or inp.image_file in ("", ".", ".."):
        raise HeadendError(f"image_file {inp.image_file!r} must be a plain file name", error_type="malformed")
    path = firmware_dir / inp.image_file
    try:
        image = path.read_bytes()
    except OSError as err:
        raise HeadendError(f"firmware image {path} unreadable: {err}", error_type="malformed") from None
    digest = hashlib.sha256(image).hexdigest()
    if digest != inp.sha256.lower():
        raise HeadendError(f"firmware image {inp.image_file} has sha256 {digest}, expected {inp.sha256}",
                           error_type="malformed")
    size = len(image)
    base = f"objects/{OBJ_IMAGE}"
    await c.call("download_firmware", "POST", f"{base}/methods/1", _xml(X.element("imageTransferInitiate", {
        "imageId": inp.image_id, "version": inp.version, "size": size, "sha256": digest, "blockSize": block_bytes})),
        command_id=f"{inp.command_id}:initiate", timeout=_sync_timeout(inp))
    status = _image_status(await c.call("download_firmware", "GET", f"{base}/attributes/6", timeout=_sync_timeout(inp)))
    same = status.get("imageId") == inp.image_id and (status.get("sha256") or digest).lower() == digest
    offset = X.opt_int(status, "received") or 0 if same else 0
    resumed_from, blocks = offset, 0
    while offset < size:
        chunk = image[offset:offset + block_bytes]
        el = X.element("imageBlock", {"imageId": inp.image_id, "offset": offset, "length": len(chunk),
                                      "sha256": hashlib.sha256(chunk).hexdigest()}, base64.b64encode(chunk).decode())
        try:
            await c.call("download_firmware", "POST", f"{base}/methods/2", _xml(el),
                         command_id=f"{inp.command_id}:block:{offset}", timeout=_sync_timeout(inp))
        except CommandFailed as err:
            received = err.extra.get("received")
            if err.reason == "offset_mismatch" and received is not None and received.isdigit() \
                    and int(received) != offset:
                offset = int(received)
                continue
            raise
        offset += len(chunk)
        blocks += 1
    verified, signer = False, None
    if inp.verify:
        ans = await c.call("download_firmware", "POST", f"{base}/methods/3",
                           _xml(X.element("imageVerify", {"imageId": inp.image_id})),
                           command_id=f"{inp.command_id}:verify", notify_timeout=_notify_timeout("image_verify", inp))
        root = _expect(ans, "imageVerified")
        verified, signer = True, root.get("signer")
    return M.DownloadFirmwareResult(gateway_id=c.gateway_id, image_id=inp.image_id, version=inp.version, size=size,
                                    resumed_from=resumed_from, blocks_sent=blocks, verified=verified, signer=signer)


async def activate_firmware(c: AdminClient, inp: M.ActivateFirmwareInput) -> M.ActivateFirmwareResult:
    ans = await c.call("activate_firmware", "POST", f"objects/{OBJ_IMAGE}/methods/4",
                       _xml(X.element("imageActivate", {"imageId": inp.image_id, "version": inp.version})),
                       command_id=inp.command_id, notify_timeout=_notify_timeout("activate_firmware", inp))
    root = _expect(ans, "firmwareActivated")
    return M.ActivateFirmwareResult(gateway_id=c.gateway_id, version=root.get("version", inp.version),
                                    previous_version=root.get("previousVersion"))


async def reboot(c: AdminClient, inp: M.RebootInput) -> M.RebootResult:
    ans = await c.call("reboot", "POST", f"objects/{OBJ_REBOOT}/methods/1",
                       _xml(X.element("reboot", {"reason": inp.reason})), command_id=inp.command_id,
                       notify_timeout=_notify_timeout("reboot", inp))
    root = _expect(ans, "rebooted")
    return M.RebootResult(gateway_id=c.gateway_id, boot_time=root.get("bootTime"))


__all__ = ["ConnectionLost"]
