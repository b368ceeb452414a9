"""Firmware images of the simulated manufacturers (docs/protocol.md 10.13).

An image is a DER CMS ``SignedData`` (content type id-data) signed with the manufacturer's
``.GWH`` SIG key, as the protocol fixes. Its content, the firmware payload, is the simulator's own
format **[simulator choice]**: one JSON line ``{"format": "gridgate-sim-fw-1", "product": ...,
"version": ...}`` followed by filler bytes (deterministic, so an image of a given version and size
is always the same bytes). A gateway accepts an image only if the signature verifies, the signer
is its vendor's manufacturer certificate (valid SM-PKI path, purpose SIG), and the payload names
its product.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pki import cms
from pki.profile import Role, common_name, role_of
from pki.validation import Validator
from simulator.credentials import FleetCredentials
from simulator.vendors import Vendor

FORMAT = "gridgate-sim-fw-1"


class FirmwareError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # firmware_verification_failed | unsupported
        self.detail = detail


@dataclass(frozen=True)
class VerifiedImage:
    product: str
    version: str
    signer: str


def image_id(vendor: Vendor, version: str) -> str:
    return f"{vendor.vendor.lower()}-{vendor.product.lower()}-{version}"


def _filler(product: str, version: str, size: int) -> bytes:
    out = bytearray()
    block = hashlib.sha256(f"{product}/{version}".encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def build_image(
    creds: FleetCredentials,
    vendor: Vendor,
    version: str,
    size: int = 256 * 1024,
    *,
    product: str | None = None,
    signer: Vendor | None = None,
) -> bytes:
    """A signed image for ``vendor``. ``product`` overrides the product it is built for (a wrong
    product is refused as unsupported), ``signer`` signs with another manufacturer's key (refused
    as a verification failure)."""
    prod = product or vendor.product
    manifest = json.dumps({"format": FORMAT, "product": prod, "version": version}, separators=(",", ":"))
    payload = manifest.encode() + b"\n" + _filler(prod, version, size)
    kp = creds.manufacturer(signer or vendor)
    return cms.sign(payload, content_type="data", key=kp.key, cert=kp.cert)


def verify_image(data: bytes, vendor: Vendor, validator: Validator) -> VerifiedImage:
    """Check an image as a gateway of ``vendor`` does; raises :class:`FirmwareError`."""
    try:
        signed = cms.verify(data, validator=validator)
    except cms.CmsError as err:
        raise FirmwareError("firmware_verification_failed", f"signature: {err.reason}: {err.detail}") from None
    cn = common_name(signed.signer)
    if role_of(signed.signer) is not Role.GWH or cn != vendor.manufacturer_cn:
        raise FirmwareError("firmware_verification_failed", f"signed by {cn}, not by {vendor.manufacturer_cn}")
    if signed.content_type != "data":
        raise FirmwareError("unsupported", f"content type {signed.content_type}")
    head, _, _ = signed.content.partition(b"\n")
    try:
        manifest = json.loads(head)
        fmt, product, version = manifest["format"], manifest["product"], manifest["version"]
    except (ValueError, KeyError, TypeError):
        raise FirmwareError("unsupported", "not a firmware format this gateway knows") from None
    if fmt != FORMAT or product != vendor.product:
        raise FirmwareError("unsupported", f"image for product {product!r}, this gateway is {vendor.product}")
    return VerifiedImage(str(product), str(version), cn or "")
