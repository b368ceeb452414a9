"""Wake-up packets (TR-03109-1 DS section 2.1): what the GWA sends to make an SMGW open its TLS
management channel. Layout (108 bytes with brainpoolP256r1)::

    0  "WU"   2  version 0x01   3  recipient (9)   12  timestamp int64 (8)   20  12 x 0x0B
    32 signature format 0x01 (plain R||S)   33  OID length n   34  OID (n)   34+n  R||S (2L)

The signature (ECDSA, hash from the OID) covers bytes 0..31. The DS text says the timestamp is
"low byte first" but its worked example is big-endian; gridgate defaults to big-endian and takes
``byteorder`` for gateways that need the other reading.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from pki import der
from pki.ids import DeviceId, InvalidDeviceId, parse_gateway_id
from pki.oids import ECDSA_PLAIN, ECDSA_PLAIN_SHA256

HEADER = b"WU"
VERSION_MANAGEMENT = 0x01
PADDING = b"\x0b" * 12
SIGNATURE_FORMAT_PLAIN = 0x01
SIGNED_LENGTH = 32
DEFAULT_WINDOW = 300
ByteOrder = Literal["big", "little"]


class WakeupReason(StrEnum):
    OK = "ok"
    WRONG_RECIPIENT = "wrong_recipient"
    STALE = "stale"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED = "malformed"


_OID_BY_CONTENT = {der.oid_content(o): o for o in ECDSA_PLAIN}
_OID_FOR_HASH = {type(h): o for o, h in ECDSA_PLAIN.items()}


def _coord_len(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


def _recipient(gateway_id: str | DeviceId) -> bytes:
    return parse_gateway_id(gateway_id).recipient


def build(
    gateway_id: str | DeviceId,
    key: ec.EllipticCurvePrivateKey,
    *,
    timestamp: int | None = None,
    byteorder: ByteOrder = "big",
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    """A signed wake-up packet for ``gateway_id`` signed with the GWA SIG key.

    ``timestamp``: Unix seconds (default now). ``hash_algorithm`` default SHA-256
    (ecdsa-plain-SHA256); SHA-384/512 select the matching ecdsa-plain OID.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    h = hash_algorithm or hashes.SHA256()
    oid = _OID_FOR_HASH.get(type(h), ECDSA_PLAIN_SHA256 if hash_algorithm is None else None)
    if oid is None:
        raise ValueError(f"no ecdsa-plain OID for {h.name}")
    signed = (
        HEADER
        + bytes([VERSION_MANAGEMENT])
        + _recipient(gateway_id)
        + ts.to_bytes(8, byteorder, signed=True)
        + PADDING
    )
    r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(h)))
    n = _coord_len(key.curve)
    oid_bytes = der.oid_content(oid)
    trailer = bytes([SIGNATURE_FORMAT_PLAIN, len(oid_bytes)]) + oid_bytes
    return signed + trailer + r.to_bytes(n, "big") + s.to_bytes(n, "big")


@dataclass(frozen=True, slots=True)
class WakeupPacket:
    """A wake-up packet split into its fields (no checks beyond the layout)."""

    version: int
    recipient: bytes
    timestamp: int
    signature_format: int
    oid: str
    r: int
    s: int
    signed_part: bytes

    @property
    def gateway_id(self) -> str:
        sparte = f"{self.recipient[0]:X}"
        return f"{sparte}{self.recipient[1:4].decode('ascii', 'replace')}{self.recipient[4]:02d}" \
            f"{int.from_bytes(self.recipient[5:9], 'big'):08d}"


class MalformedWakeup(ValueError):
    pass


def parse(data: bytes, *, coord_len: int | None = None, byteorder: ByteOrder = "big") -> WakeupPacket:
    """Split ``data`` into fields. ``coord_len`` (L) when known from the GWA certificate; else
    derived from the remaining length. Raises :class:`MalformedWakeup`."""
    if len(data) < 36:
        raise MalformedWakeup(f"packet too short ({len(data)} bytes)")
    if data[0:2] != HEADER:
        raise MalformedWakeup("header is not 'WU'")
    if data[2] != VERSION_MANAGEMENT:
        raise MalformedWakeup(f"unsupported version {data[2]:#04x}")
    if data[20:32] != PADDING:
        raise MalformedWakeup("padding is not 12 x 0x0B")
    if data[32] != SIGNATURE_FORMAT_PLAIN:
        raise MalformedWakeup(f"unsupported signature format {data[32]:#04x}")
    oid_len = data[33]
    if not 1 <= oid_len <= 14 or len(data) < 34 + oid_len:
        raise MalformedWakeup(f"bad OID length {oid_len}")
    oid_bytes = data[34 : 34 + oid_len]
    oid = _OID_BY_CONTENT.get(oid_bytes)
    if oid is None:
        raise MalformedWakeup(f"unknown signature algorithm OID {oid_bytes.hex()}")
    sig = data[34 + oid_len :]
    if coord_len is not None and len(sig) != 2 * coord_len:
        raise MalformedWakeup(f"signature is {len(sig)} bytes, expected {2 * coord_len}")
    if not sig or len(sig) % 2:
        raise MalformedWakeup(f"signature length {len(sig)} is not 2L")
    half = len(sig) // 2
    (ts,) = struct.unpack(">q" if byteorder == "big" else "<q", data[12:20])
    return WakeupPacket(
        version=data[2],
        recipient=bytes(data[3:12]),
        timestamp=ts,
        signature_format=data[32],
        oid=oid,
        r=int.from_bytes(sig[:half], "big"),
        s=int.from_bytes(sig[half:], "big"),
        signed_part=bytes(data[:SIGNED_LENGTH]),
    )


@dataclass(frozen=True, slots=True)
class WakeupVerdict:
    valid: bool
    reason: WakeupReason
    detail: str
    timestamp: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {"valid": self.valid, "reason": self.reason.value, "detail": self.detail, "timestamp": self.timestamp}


def verify(
    data: bytes,
    gateway_id: str | DeviceId,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: int | None = None,
    window: int = DEFAULT_WINDOW,
    byteorder: ByteOrder = "big",
) -> WakeupVerdict:
    """Check a wake-up packet as the addressed SMGW would: layout, recipient, time window
    (|now - timestamp| <= window), signature with the GWA SIG public key. Cheap checks come first
    so a flood of foreign packets costs no ECDSA verifications."""
    try:
        own = _recipient(gateway_id)
    except InvalidDeviceId as err:
        return WakeupVerdict(False, WakeupReason.MALFORMED, f"own gateway id: {err}")
    try:
        pkt = parse(data, coord_len=_coord_len(public_key.curve), byteorder=byteorder)
    except MalformedWakeup as err:
        return WakeupVerdict(False, WakeupReason.MALFORMED, str(err))
    if pkt.recipient != own:
        return WakeupVerdict(False, WakeupReason.WRONG_RECIPIENT,
                             f"addressed to {pkt.recipient.hex()}, not {own.hex()}", pkt.timestamp)
    now = int(time.time()) if now is None else int(now)
    if abs(now - pkt.timestamp) > window:
        return WakeupVerdict(False, WakeupReason.STALE,
                             f"timestamp {pkt.timestamp} outside {window}s of {now}", pkt.timestamp)
    try:
        public_key.verify(encode_dss_signature(pkt.r, pkt.s), pkt.signed_part, ec.ECDSA(ECDSA_PLAIN[pkt.oid]))
    except InvalidSignature:
        return WakeupVerdict(False, WakeupReason.BAD_SIGNATURE, "signature does not verify", pkt.timestamp)
    return WakeupVerdict(True, WakeupReason.OK, "ok", pkt.timestamp)
