"""The head-end's command contract: inputs, results, task queues and error types of the gateway
commands (the activities are ``activities.gateway_commands.GatewayCommandActivities``, one method
per command, named as the command).

Importable from workflows without side effects (only dataclasses and constants). Every input has
``gateway_id`` (DIN 43849 SMGW ID) and ``command_id`` (the idempotency key the gateway remembers:
keep it stable across retries of one logical step, e.g. ``<workflow id>/<step>``), plus
``priority`` and ``timeout_s`` (None: the command's default). Additive changes only.

Routing (docs/architecture.md, "Reaching a gateway"): run ``ensure_gateway_connected`` on
:data:`TASK_QUEUE`; it returns the node holding the gateway's connection; run the command on
``node_task_queue(result.node_id)`` (= ``result.task_queue``). Errors are
``ApplicationError`` with ``type`` one of the ``ERROR_*`` constants; :data:`RETRYABLE_ERRORS` are
raised with ``non_retryable=False``, every other type with ``non_retryable=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

TASK_QUEUE = "headend"  # any head-end node: ensure_gateway_connected (wake-up + wait)


def node_task_queue(node_id: str) -> str:
    """The task queue only head-end node ``node_id`` polls: commands over the connections it holds."""
    return f"headend-{node_id}"


# Priorities: lower is more urgent (an EMT's on-demand readout before a bulk rollout).
PRIORITY_EMT_ON_DEMAND = 0
PRIORITY_OPERATOR = 1
PRIORITY_PROCESS = 2
PRIORITY_BULK = 3

# Error types (ApplicationError.type)
ERROR_UNREACHABLE = "unreachable"  # no connection could be had within the timeout (wake-up unanswered)
ERROR_CONNECTION_LOST = "connection_lost"  # connection dropped / response timeout while a request was out
ERROR_BUSY = "busy"  # gateway answered 503, or the clock round trip was too long
ERROR_GATEWAY_ERROR = "gateway_error"  # gateway 5xx without a known reason
ERROR_REJECTED = "rejected"
ERROR_UNSUPPORTED = "unsupported"
ERROR_MALFORMED = "malformed"
ERROR_COMMAND_CONFLICT = "command_conflict"
ERROR_METER_MISSING = "meter_missing"
ERROR_NOT_PAIRED = "not_paired"
ERROR_UNKNOWN_PROFILE = "unknown_profile"
ERROR_UNKNOWN_RECIPIENT = "unknown_recipient"
ERROR_CERTIFICATE_INVALID = "certificate_invalid"
ERROR_INVALID_PROFILE = "invalid_profile"
ERROR_FIRMWARE_VERIFICATION_FAILED = "firmware_verification_failed"
ERROR_FIRMWARE_ACTIVATION_FAILED = "firmware_activation_failed"
ERROR_UNKNOWN_GATEWAY = "unknown_gateway"  # not in master data / no wake-up address
ERROR_NO_METER_KEY = "no_meter_key"  # pair_meter: the meter has no MK0 in master data

RETRYABLE_ERRORS = frozenset({ERROR_UNREACHABLE, ERROR_CONNECTION_LOST, ERROR_BUSY, ERROR_GATEWAY_ERROR})

LogName = str  # "system" | "calibration" | "consumer"


# --------------------------------------------------------------------------- common
@dataclass(frozen=True, kw_only=True)
class GatewayCommand:
    gateway_id: str
    command_id: str
    priority: int = PRIORITY_PROCESS
    timeout_s: float | None = None


# --------------------------------------------------------------------------- connection
@dataclass(frozen=True, kw_only=True)
class EnsureConnectedInput(GatewayCommand):
    """Wake the gateway if no node holds a connection, then wait up to ``timeout_s``."""


@dataclass(frozen=True, kw_only=True)
class EnsureConnectedResult:
    gateway_id: str
    node_id: str
    task_queue: str
    woken: bool  # a wake-up was sent (False: it was already connected)
    waited_s: float


# --------------------------------------------------------------------------- device info / time
@dataclass(frozen=True, kw_only=True)
class ReadDeviceInfoInput(GatewayCommand):
    pass


@dataclass(frozen=True, kw_only=True)
class FirmwareSlot:
    slot: str  # active | fallback | pending
    version: str


@dataclass(frozen=True, kw_only=True)
class MeterOnLmn:
    meter_id: str
    interface: str
    paired: bool


@dataclass(frozen=True, kw_only=True)
class Capability:
    name: str
    value: str


@dataclass(frozen=True, kw_only=True)
class DeviceInfoResult:
    gateway_id: str
    vendor: str
    model: str
    server_id: str
    state: str  # factory | personalized | operational | error
    firmware: tuple[FirmwareSlot, ...]
    clock: str  # ISO 8601 UTC as reported by the gateway
    clock_valid: bool
    uptime_s: int | None
    meters: tuple[MeterOnLmn, ...]
    capabilities: tuple[Capability, ...]
    # SHA-256 of the TLS certificate the gateway presented on the connection that carried this
    # answer (what the head-end admitted, not a wire field); None where not known.
    tls_certificate_sha256: str | None = None

    @property
    def active_firmware(self) -> str | None:
        return next((f.version for f in self.firmware if f.slot == "active"), None)


@dataclass(frozen=True, kw_only=True)
class MeasureClockOffsetInput(GatewayCommand):
    pass


@dataclass(frozen=True, kw_only=True)
class ClockOffsetResult:
    gateway_id: str
    gateway_time: str
    offset_ms: float  # gateway clock minus head-end clock at the middle of the round trip
    round_trip_ms: float
    clock_valid: bool


@dataclass(frozen=True, kw_only=True)
class SetTimeInput(GatewayCommand):
    """``mode="set"``: set the clock to the head-end's legal time; ``"shift"``: by ``shift_ms``."""

    mode: str = "set"
    shift_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class SetTimeResult:
    gateway_id: str
    mode: str
    sent_time: str | None  # the time sent with mode "set"
    shift_ms: int | None
    # A repeat whose first attempt had set the clock (answer lost): no second setting, offset checked.
    already_applied: bool = False
    offset_after_ms: float | None = None


# --------------------------------------------------------------------------- certificates
@dataclass(frozen=True, kw_only=True)
class CertificateToInstall:
    owner: str  # GWA name, EMT ID as used in profiles, or the gateway's own ID
    role: str  # gwa | emt | smgw
    usage: str  # tls | sig | enc
    pem: str


@dataclass(frozen=True, kw_only=True)
class InstallCertificatesInput(GatewayCommand):
    certificates: tuple[CertificateToInstall, ...]


@dataclass(frozen=True, kw_only=True)
class InstalledCertificate:
    owner: str
    usage: str
    sha256: str
    status: str  # installed | unchanged


@dataclass(frozen=True, kw_only=True)
class InstallCertificatesResult:
    gateway_id: str
    certificates: tuple[InstalledCertificate, ...]


@dataclass(frozen=True, kw_only=True)
class RequestCertificateSigningInput(GatewayCommand):
    """The gateway generates a new key pair for ``usage`` (kept pending, the active one stays in
    use) and returns a PKCS#10 request for it (docs/protocol.md 10.4). The same ``command_id``
    returns the same request; a new one replaces the pending key of that usage."""

    usage: str  # tls | sig | enc


@dataclass(frozen=True, kw_only=True)
class RequestCertificateSigningResult:
    gateway_id: str
    usage: str
    csr_pem: str  # PKCS#10, signature checked, CN = <gateway>.SMGW
    key_id: str  # SHA-256 (hex) of the new public key's DER SubjectPublicKeyInfo
    sha256: str  # of the DER request
    subject: str  # RFC 4514


# --------------------------------------------------------------------------- profiles
@dataclass(frozen=True, kw_only=True)
class RegisterSpec:
    obis: str  # e.g. "1-0:1.8.0"
    unit: int | None = None  # DLMS unit code (30 = Wh)
    scaler: int | None = None


@dataclass(frozen=True, kw_only=True)
class MeterProfile:
    profile_id: str
    meter_id: str
    interface: str = "lmn-wired"  # lmn-wired | lmn-wireless
    capture_period_s: int = 900
    registers: tuple[RegisterSpec, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CommunicationProfile:
    profile_id: str
    peer: str  # owner ID of the peer's installed certificates
    role: str = "emt"  # emt | gwa
    endpoint: str = ""
    retries: int = 3
    retry_interval_s: int = 300
    contact_interval_s: int | None = None  # role gwa: cyclic contact
    event_uri: str | None = None  # role gwa: where events go


@dataclass(frozen=True, kw_only=True)
class SwitchingTimeSpec:
    """TAF 2: from local time ``at`` (HH:MM) on, the gateway counts into tariff register ``register``."""

    at: str
    register: str


@dataclass(frozen=True, kw_only=True)
class EvaluationProfile:
    """One TAF configuration for one EMT (Auswerteprofil)."""

    profile_id: str
    taf: int
    recipient: str
    communication_profile: str
    meter_profile: str
    interval_s: int = 900
    delivery_period_s: int = 86400
    registers: tuple[str, ...] = ()
    active: bool = True
    valid_from: str | None = None
    valid_to: str | None = None
    switching_times: tuple[SwitchingTimeSpec, ...] = ()  # TAF 2 only: the daily tariff schedule


@dataclass(frozen=True, kw_only=True)
class WriteMeterProfileInput(GatewayCommand):
    profile: MeterProfile


@dataclass(frozen=True, kw_only=True)
class DeleteMeterProfileInput(GatewayCommand):
    profile_id: str


@dataclass(frozen=True, kw_only=True)
class WriteCommunicationProfileInput(GatewayCommand):
    profile: CommunicationProfile


@dataclass(frozen=True, kw_only=True)
class DeleteCommunicationProfileInput(GatewayCommand):
    """Refused ``rejected`` while an evaluation profile on the gateway still uses the profile."""

    profile_id: str


@dataclass(frozen=True, kw_only=True)
class WriteEvaluationProfileInput(GatewayCommand):
    profile: EvaluationProfile


@dataclass(frozen=True, kw_only=True)
class DeleteEvaluationProfileInput(GatewayCommand):
    profile_id: str


@dataclass(frozen=True, kw_only=True)
class ProfileWriteResult:
    gateway_id: str
    kind: str  # meter | communication | evaluation
    profile_id: str
    status: str  # created | replaced | unchanged


@dataclass(frozen=True, kw_only=True)
class ProfileDeleteResult:
    gateway_id: str
    kind: str
    profile_id: str
    existed: bool


@dataclass(frozen=True, kw_only=True)
class DeactivateProfilesInput(GatewayCommand):
    profile_ids: tuple[str, ...] = ()  # empty: all evaluation profiles


@dataclass(frozen=True, kw_only=True)
class DeactivatedProfile:
    profile_id: str
    was_active: bool


@dataclass(frozen=True, kw_only=True)
class DeactivateProfilesResult:
    gateway_id: str
    profiles: tuple[DeactivatedProfile, ...]


# --------------------------------------------------------------------------- LMN
@dataclass(frozen=True, kw_only=True)
class PairMeterInput(GatewayCommand):
    """The meter's MK0 is read from master data inside the activity (never in workflow history)."""

    meter_id: str
    interface: str | None = None  # default from the meter's LMN type


@dataclass(frozen=True, kw_only=True)
class PairMeterResult:
    gateway_id: str
    meter_id: str
    interface: str
    status: str  # paired | already_paired


@dataclass(frozen=True, kw_only=True)
class UnpairMeterInput(GatewayCommand):
    meter_id: str


@dataclass(frozen=True, kw_only=True)
class UnpairMeterResult:
    gateway_id: str
    meter_id: str
    existed: bool


# --------------------------------------------------------------------------- logbooks
@dataclass(frozen=True, kw_only=True)
class ReadLogbookInput(GatewayCommand):
    log: LogName = "system"
    from_record: int | None = None
    to_record: int | None = None
    from_time: str | None = None
    to_time: str | None = None
    max_entries: int = 500


@dataclass(frozen=True, kw_only=True)
class LogEntry:
    record: int
    level: int  # 1 INFO, 2 WARNING, 3 ERROR, 4 FATAL
    outcome: int  # 0 success, 1 failure
    time: str
    text: str


@dataclass(frozen=True, kw_only=True)
class LogbookResult:
    gateway_id: str
    log: str
    first_record: int | None
    last_record: int | None
    more: bool  # continue from entries[-1].record + 1
    entries: tuple[LogEntry, ...]


# --------------------------------------------------------------------------- firmware
@dataclass(frozen=True, kw_only=True)
class DownloadFirmwareInput(GatewayCommand):
    """``image_file``: file name under the head-end's firmware directory (the manufacturer-signed
    image, docs/protocol.md 10.13); ``sha256`` of the whole file."""

    image_id: str
    version: str
    image_file: str
    sha256: str
    verify: bool = True


@dataclass(frozen=True, kw_only=True)
class DownloadFirmwareResult:
    gateway_id: str
    image_id: str
    version: str
    size: int
    resumed_from: int
    blocks_sent: int
    verified: bool
    signer: str | None


@dataclass(frozen=True, kw_only=True)
class ActivateFirmwareInput(GatewayCommand):
    image_id: str
    version: str


@dataclass(frozen=True, kw_only=True)
class ActivateFirmwareResult:
    gateway_id: str
    version: str
    previous_version: str | None


# --------------------------------------------------------------------------- readouts
# The gateway delivers meter data to the EMT itself (docs/protocol.md 14); the GWA triggers and
# gets an acknowledgement: which delivery the gateway started. No meter data passes the GWA.
# gg:reason values a trigger_readout may ask for (final_readout's deliveries carry "final").
READOUT_REASONS = ("on_demand", "feed_in", "first_readout", "meter_exchange_closing", "meter_exchange_opening")


@dataclass(frozen=True, kw_only=True)
class TriggerReadoutInput(GatewayCommand):
    """Deliver one evaluation profile's data to its EMT now (docs/protocol.md 10.9).

    ``profile_id`` names the evaluation profile; without it, ``recipient`` + ``meter_id`` let the
    gateway find that EMT's TAF 6 profile on the meter (``reason="feed_in"``: its TAF 9 profile).
    ``reason`` is the delivery's ``gg:reason`` (:data:`READOUT_REASONS`).
    ``registers`` is no longer sent (the profile names its registers); it stays for the histories of
    workflows started before the gateway delivered readouts itself."""

    profile_id: str | None = None
    recipient: str = ""  # EMT owner ID (certificates installed on the gateway)
    meter_id: str = ""
    reason: str = "on_demand"
    registers: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ReadoutDelivery:
    """A delivery to an EMT the gateway started (docs/protocol.md 14): the acknowledgement of
    ``trigger_readout`` / ``final_readout``. The values travel from the gateway to the EMT only."""

    profile_id: str
    taf: int
    recipient: str  # EMT market partner ID
    meter_id: str
    reason: str  # gg:reason of the delivery
    delivery_ref: str  # the delivery's x-CID ("uuid:..."): what the EMT's receiver logs it under
    values_at: str  # ISO 8601 UTC: capture time of the registers, or the end of the period delivered
    values_from: str | None = None  # start of the period delivered (TAF 7 / 10)
    created: str | None = None  # gateway clock when the delivery was built


@dataclass(frozen=True, kw_only=True)
class ReadoutContainer:
    """Before the gateway delivered readouts itself: a CMS container signed by the gateway and
    encrypted for the EMT, carried in the admin answer (opaque, base64). Kept only to decode the
    histories of workflows started before that change."""

    recipient: str
    meter_id: str
    profile_id: str | None
    container_b64: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class TriggerReadoutResult:
    gateway_id: str
    delivery: ReadoutDelivery | None = None  # None only in results recorded before the change
    readout: ReadoutContainer | None = None  # only in results recorded before the change


@dataclass(frozen=True, kw_only=True)
class FinalReadoutInput(GatewayCommand):
    """Deliver the final values of every active evaluation profile to its EMT (docs/protocol.md
    10.10); ``reason`` says why (the deliveries carry ``gg:reason="final"``)."""

    reason: str = "deinstallation"


@dataclass(frozen=True, kw_only=True)
class FinalReadoutResult:
    gateway_id: str
    deliveries: tuple[ReadoutDelivery, ...] = ()
    readouts: tuple[ReadoutContainer, ...] = ()  # only in results recorded before the change


# --------------------------------------------------------------------------- reboot
@dataclass(frozen=True, kw_only=True)
class RebootInput(GatewayCommand):
    reason: str = "operator"


@dataclass(frozen=True, kw_only=True)
class RebootResult:
    gateway_id: str
    boot_time: str | None
