"""The gateway's command handlers: framework and the device-level objects of docs/protocol.md
section 10 (device info, clock, certificates, logbooks, reboot).

A handler gets a :class:`Ctx` (the gateway's state, the fleet services, the request) and the
parsed XML root of the request payload, and returns an :class:`Outcome` (HTTP status and the XML
element to seal) or raises :class:`~simulator.errors.CommandError` (section 9). Handlers change only
the in-memory state; the session persists state, command record and log entries in one transaction
afterwards. Asynchronous commands return status 202 with a ``later`` coroutine that produces the
Notify content (``status``, element) once the work is done.
"""

from __future__ import annotations

import base64
import hashlib
import time
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.ids import parse_device_id
from pki.profile import Role, Usage, role_of
from simulator import xmlcodec as X
from simulator.certificates import Certificates
from simulator.config import SimulatorSettings
from simulator.credentials import FleetCredentials, load_private_key_pem, private_key_pem
from simulator.errors import CommandError
from simulator.state import LEVEL_INFO, LEVEL_WARNING, OUTCOME_FAILURE, OUTCOME_SUCCESS, GatewayState
from simulator.store import DeliveryRow, LogEntry, Store
from simulator.vendors import Vendor
from simulator.xmlcodec import Malformed

# URI ids of the objects (docs/protocol.md 10.0)
DEVICE_INFO = "1-0000600100ff"
CLOCK = "8-0000010000ff"
SECURITY = "64-00002b0000ff"
LOG_OBJECTS = {"7-0000636200ff": "system", "7-0000636201ff": "calibration", "7-0000636202ff": "consumer"}
IMAGE_TRANSFER = "18-00002c0000ff"
REBOOT = "9-00000a0000ff"
METER_PROFILES = "130-00005e3101ff"
COMM_PROFILES = "131-00005e3102ff"
EVAL_PROFILES = "132-00005e3103ff"
LMN = "133-00005e3104ff"

Later = Callable[[], Awaitable[tuple[int, ET.Element]]]


@dataclass
class Outcome:
    status: int
    xml: ET.Element | None = None
    applied: bool = False  # the command changed the gateway's state (counted once per command ID)
    later: Later | None = None  # for 202: produces the Notify's (status, child)
    close: bool = False  # close the management connection after answering (activate, reboot)


class GatewayServices(Protocol):
    """What a handler may use of the fleet (:class:`simulator.fleet.Fleet` provides it)."""

    settings: SimulatorSettings
    store: Store
    creds: FleetCredentials
    certificates: Certificates

    def vendor(self, gw: GatewayState) -> Vendor: ...

    def now(self) -> float: ...

    def reconnect(self, gw: GatewayState, reason: str) -> None:
        """Open a new management connection once the current one has closed."""

    def schedule_cyclic(self, gw: GatewayState) -> None:
        """Plan the next cyclic contact anew (after a change of the GWA profile's interval)."""

    def profiles_changed(self, gw: GatewayState) -> None:
        """Plan the gateway's meter data deliveries anew (an evaluation profile was written,
        deleted, activated or deactivated)."""

    def build_delivery(self, gw: GatewayState, profile_id: str, reason: str) -> DeliveryRow:
        """The delivery of an evaluation profile's data now to its EMT (docs/protocol.md 14), built
        but not stored: the command persists it with its result. Raises
        :class:`simulator.deliveries.DeliveryError`."""

    def deliveries_queued(self, gw: GatewayState, rows: list[DeliveryRow]) -> None:
        """Send deliveries a command has just stored (with their IDs)."""

    async def restart(self, gw: GatewayState, reason: str) -> float:
        """Reboot the gateway; returns its boot time."""

    def raise_event(self, gw: GatewayState, code: str, level: int, text: str, *, record: LogEntry | None = None,
                    meter: str | None = None) -> None:
        """Queue an event for the GWA's event URI."""


@dataclass
class Ctx:
    gw: GatewayState
    fleet: GatewayServices
    method: str
    query: dict[str, str]
    command_id: str | None
    now: float = field(default_factory=time.time)
    chunks: list[tuple[str, int, bytes]] = field(default_factory=list)  # firmware blocks to persist
    drop_image: str | None = None
    # meter data deliveries the command started (trigger_readout, final_readout): stored with the
    # command's result in one transaction, then sent
    deliveries: list[DeliveryRow] = field(default_factory=list)

    @property
    def gid(self) -> str:
        return self.gw.gateway_id

    def root(self, tag: str, attrs: dict[str, object] | None = None) -> ET.Element:
        """A gateway-sent root element: always carries ``gateway="<ID>"``."""
        return X.element(tag, {"gateway": self.gid, **(attrs or {})})


Handler = Callable[[Ctx, ET.Element | None], Outcome]
HANDLERS: dict[tuple[str, str, str, int], tuple[str, Handler]] = {}


def handler(verb: str, obj: str, kind: str, n: int, name: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` for ``verb .../objects/<obj>/<kind>/<n>``; ``name`` is the command kind."""

    def deco(fn: Handler) -> Handler:
        HANDLERS[(verb, obj, kind, n)] = (name, fn)
        return fn

    return deco


def expect(body: ET.Element | None, tag: str) -> ET.Element:
    if body is None:
        raise CommandError("malformed", f"request needs a <{tag}> body")
    if X.local(body) != tag:
        raise CommandError("malformed", f"expected <{tag}>, got <{X.local(body)}>")
    return body


# --------------------------------------------------------------------------- device info, clock


def clock_valid(ctx: Ctx) -> bool:
    return abs(ctx.gw.clock_offset(ctx.now)) <= ctx.fleet.settings.max_clock_offset_s


@handler("GET", DEVICE_INFO, "attributes", 2, "read_device_info")
def read_device_info(ctx: Ctx, _: ET.Element | None) -> Outcome:
    gw, vendor = ctx.gw, ctx.fleet.vendor(ctx.gw)
    root = ctx.root("deviceInfo")
    X.sub(root, "vendor", text=vendor.vendor)
    X.sub(root, "model", text=vendor.model)
    X.sub(root, "serverId", text=parse_device_id(gw.gateway_id).server_id.hex())
    X.sub(root, "state", text=gw.device_state)
    X.sub(root, "firmware", {"slot": "active", "version": gw.firmware["active"]})
    if gw.firmware.get("fallback"):
        X.sub(root, "firmware", {"slot": "fallback", "version": gw.firmware["fallback"]})
    pending = gw.firmware.get("transfer") or {}
    if pending.get("state") in ("transferred", "verified"):
        X.sub(root, "firmware", {"slot": "pending", "version": pending.get("version")})
    X.sub(root, "clock", {"time": X.fmt_time(gw.gateway_time(ctx.now)), "valid": clock_valid(ctx)})
    X.sub(root, "uptime", text=str(int(max(0, ctx.now - gw.extra.get("boot_time", ctx.now)))))
    for mid, m in gw.meters.items():
        X.sub(root, "meter", {"id": mid, "interface": m.get("interface", "lmn-wired"), "paired": m["paired"]})
    for log in sorted(vendor.log_types):
        X.sub(root, "capability", {"name": "log", "value": log})
    X.sub(root, "capability", {"name": "firmwareFormat", "value": "cms-signed-data"})
    X.sub(root, "capability", {"name": "firmwareProduct", "value": vendor.product})
    X.sub(root, "capability", {"name": "maxBlockSize", "value": vendor.max_chunk_bytes})
    for taf in sorted(vendor.tafs):
        X.sub(root, "capability", {"name": "taf", "value": taf})
    return Outcome(200, root)


@handler("GET", CLOCK, "attributes", 2, "measure_clock_offset")
def read_clock(ctx: Ctx, _: ET.Element | None) -> Outcome:
    t = ctx.gw.gateway_time(ctx.now)
    return Outcome(200, ctx.root("clock", {"time": X.fmt_time(t), "valid": clock_valid(ctx)}))


@handler("PUT", CLOCK, "attributes", 2, "set_time")
def set_time(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "clock")
    mode = el.get("mode", "set")
    before = ctx.gw.clock_offset(ctx.now)
    if mode == "set":
        target = X.parse_time(X.req(el, "time"))
    elif mode == "shift":
        target = ctx.gw.gateway_time(ctx.now) + X.req_int(el, "shiftMs") / 1000.0
    else:
        raise CommandError("malformed", f"clock mode {mode!r} is neither set nor shift")
    correction = ctx.gw.set_clock(target, ctx.now)
    ctx.gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS,
               f"clock {mode}: corrected by {correction:+.3f} s (offset was {before:+.3f} s)")
    return Outcome(204, None, applied=True)


# --------------------------------------------------------------------------- certificates


def _own_certificates(ctx: Ctx) -> list[tuple[str, x509.Certificate]]:
    return [(u, ctx.fleet.creds.keys(ctx.gid, u).cert) for u in ("tls", "sig", "enc")]


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@handler("GET", SECURITY, "attributes", 6, "read_certificates")
def read_certificates(ctx: Ctx, _: ET.Element | None) -> Outcome:
    root = ctx.root("certificates")
    for usage, cert in _own_certificates(ctx):
        X.sub(root, "certificate", {"owner": ctx.gid, "role": "smgw", "usage": usage},
              base64.b64encode(_der(cert)).decode())
    return Outcome(200, root)


_ROLES = {"gwa": Role.GWA, "emt": Role.EMT, "smgw": Role.SMGW}


@handler("POST", SECURITY, "methods", 6, "install_certificates")
def install_certificates(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "certificates")
    items = list(X.children(el, "certificate"))
    if not items:
        raise CommandError("malformed", "no <certificate> to install")
    validator = ctx.fleet.creds.validator()
    staged: list[tuple[str, str, str, str, bytes]] = []  # key, owner, role, usage, der
    activations: dict[str, x509.Certificate] = {}  # usage -> certificate for the pending key of that usage
    for c in items:
        owner, role, usage = X.req(c, "owner"), X.req(c, "role"), X.req(c, "usage")
        if role not in _ROLES or usage not in ("tls", "sig", "enc"):
            raise CommandError("malformed", f"role {role!r} / usage {usage!r} unknown")
        try:
            der = base64.b64decode((c.text or "").strip(), validate=True)
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise CommandError("certificate_invalid", f"certificate of {owner}/{usage} does not parse") from None
        verdict = validator.validate(cert, Usage(usage))
        if not verdict.valid:
            raise CommandError("certificate_invalid", f"{owner}/{usage}: {verdict.reason.value}: {verdict.detail}")
        if role_of(cert) is not _ROLES[role]:
            raise CommandError("certificate_invalid", f"{owner}/{usage}: not a {_ROLES[role].value} certificate")
        if role == "smgw":
            own = ctx.fleet.creds.keys(ctx.gid, usage).cert
            pending = ctx.gw.pending_keys.get(usage)
            if owner != ctx.gid or _common_name(cert) != f"{ctx.gid}.SMGW":
                raise CommandError("certificate_invalid", f"{owner}/{usage}: not a certificate of this gateway")
            if pending is not None and load_private_key_pem(pending["key"]).public_key() == cert.public_key():
                if usage in activations:
                    raise CommandError("malformed", f"two certificates for the pending {usage} key")
                activations[usage] = cert
            elif own.public_key() != cert.public_key():
                raise CommandError("certificate_invalid", f"{owner}/{usage}: does not match a key this gateway holds")
        key = f"gwa:{usage}" if role == "gwa" else f"{role}:{owner}:{usage}"
        staged.append((key, owner, role, usage, der))
    root = ctx.root("certificatesInstalled")
    changed = False
    for key, owner, role, usage, der in staged:
        sha = hashlib.sha256(der).hexdigest()
        old = ctx.gw.certificates.get(key)
        status = "unchanged" if old and old["sha256"] == sha and old["owner"] == owner else "installed"
        if status == "installed":
            ctx.fleet.certificates.remember_der(sha, der)
            ctx.gw.certificates[key] = {"owner": owner, "role": role, "usage": usage, "sha256": sha,
                                        "installed_at": ctx.now}
            ctx.gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"certificate installed: {role} {owner} {usage}")
            changed = True
        X.sub(root, "certificate", {"owner": owner, "usage": usage, "sha256": sha, "status": status})
    for usage, cert in activations.items():
        _activate_pending_key(ctx, usage, cert)
        changed = True
    if changed and ctx.gw.device_state == "factory":
        ctx.gw.device_state = "personalized"
    if "tls" in activations:  # the new TLS certificate is presented from the next connection on: open it now
        ctx.fleet.reconnect(ctx.gw, "certificate")
        return Outcome(200, root, applied=True, close=True)
    return Outcome(200, root, applied=changed)


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if len(names) == 1 else None


def _activate_pending_key(ctx: Ctx, usage: str, cert: x509.Certificate) -> None:
    """The pending key of ``usage`` becomes the active one with ``cert`` (docs/protocol.md 10.4)."""
    gw, fleet = ctx.gw, ctx.fleet
    pending = gw.pending_keys.pop(usage)
    key = load_private_key_pem(pending["key"])
    if usage == "enc":  # the replaced ENC key still decrypts until its certificate expires
        old = fleet.creds.keys(gw.gateway_id, "enc")
        kept = [p for p in gw.previous_enc if p["not_after"] > ctx.now][-2:]
        gw.previous_enc = [*kept, {"sha256": fleet.certificates.remember(old.cert), "key": private_key_pem(old.key),
                                   "not_after": old.cert.not_valid_after_utc.timestamp()}]
    sha = fleet.certificates.remember(cert)
    gw.own_keys[usage] = {"sha256": sha, "key": pending["key"], "since": ctx.now}
    fleet.creds.use_own(gw.gateway_id, usage, cert, key)
    gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS,
           f"own {usage} key renewed: certificate serial {cert.serial_number:x} active")


@handler("POST", SECURITY, "methods", 5, "request_certificate_signing")
def request_certificate_signing(ctx: Ctx, body: ET.Element | None) -> Outcome:
    """COSEM Security setup generate_key_pair + generate_certificate_request: a fresh key for
    ``usage``, kept pending until its certificate is installed; the PKCS#10 request for it."""
    usage = X.req(expect(body, "generateCertificateRequest"), "usage")
    if usage not in ("tls", "sig", "enc"):
        raise CommandError("malformed", f"usage {usage!r} is not tls, sig or enc")
    gw = ctx.gw
    pending = gw.pending_keys.get(usage)
    if pending is None or pending.get("command_id") != ctx.command_id:
        key = ec.generate_private_key(ec.BrainpoolP256R1())
        subject = ctx.fleet.creds.keys(gw.gateway_id, usage).cert.subject
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        if pending is not None:
            gw.log("system", LEVEL_WARNING, OUTCOME_SUCCESS, f"pending {usage} key {pending['key_id'][:16]} discarded")
        pending = gw.pending_keys[usage] = {
            "command_id": ctx.command_id, "key": private_key_pem(key), "key_id": hashlib.sha256(spki).hexdigest(),
            "csr": base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode(), "at": ctx.now}
        gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS,
               f"{usage} key pair generated (pending), certificate request {pending['key_id'][:16]}")
    der = base64.b64decode(pending["csr"])
    root = ctx.root("certificateRequest", {"usage": usage, "keyId": pending["key_id"],
                                           "sha256": hashlib.sha256(der).hexdigest()})
    root.text = pending["csr"]
    return Outcome(200, root, applied=True)


# --------------------------------------------------------------------------- logbooks


def _log_handler(obj: str, log: str) -> None:
    @handler("GET", obj, "attributes", 2, "read_logbook")
    def read_logbook(ctx: Ctx, _: ET.Element | None) -> Outcome:
        if log not in ctx.fleet.vendor(ctx.gw).log_types:
            raise CommandError("not_found", f"this gateway offers no {log} log to the GWA")
        qy = ctx.query
        try:
            from_idx = int(qy["sa.fromidx"]) if "sa.fromidx" in qy else None
            to_idx = int(qy["sa.toidx"]) if "sa.toidx" in qy else None
            count = min(500, int(qy.get("sa.count", "500")))
            since = X.parse_time(qy["q.fromtime"]) if "q.fromtime" in qy else None
            until = X.parse_time(qy["q.totime"]) if "q.totime" in qy else None
        except (ValueError, Malformed):
            raise CommandError("malformed", "bad logbook query parameters") from None
        if count < 1:
            raise CommandError("malformed", "sa.count must be >= 1")
        ctx.gw.flush(ctx.fleet.store)  # entries written by this very connection are visible at once
        entries = ctx.fleet.store.logs(ctx.gid, log, from_recno=from_idx, to_recno=to_idx, since=since,
                                       until=until, limit=count + 1)
        more = len(entries) > count
        last = ctx.gw.log_recno.get(log, 0)
        root = ctx.root("logbook", {"log": log, "first": 1 if last else 0, "last": last, "more": more})
        for e in entries[:count]:
            X.sub(root, "entry", {"record": e.recno, "level": e.level, "outcome": e.outcome,
                                  "time": X.fmt_time(e.at)}, e.text)
        return Outcome(200, root)


for _obj, _log in LOG_OBJECTS.items():
    _log_handler(_obj, _log)


# --------------------------------------------------------------------------- reboot


@handler("POST", REBOOT, "methods", 1, "reboot")
def reboot(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "reboot")
    reason = el.get("reason", "operator")
    gw, fleet = ctx.gw, ctx.fleet

    async def later() -> tuple[int, ET.Element]:
        boot = await fleet.restart(gw, f"reboot ({reason})")
        return 200, X.element("rebooted", {"gateway": gw.gateway_id, "bootTime": X.fmt_time(boot)})

    return Outcome(202, None, later=later, close=True)


def log_rejection(gw: GatewayState, text: str) -> None:
    gw.log("system", LEVEL_WARNING, OUTCOME_FAILURE, text)


def attrs_of(el: ET.Element) -> dict[str, Any]:
    return dict(el.attrib)
