"""DIN 43849 device IDs (``EDNT0116909060``): parsing, the 9-byte wake-up recipient form, and the
deterministic gateway ID sequence the test PKI, the simulator and master data share."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ID_RE = re.compile(r"^([0-9A-F])([A-Z]{3})(\d{2})(\d{8})$")

# The sequence starts at the example SMGW of domain.md (serial 16909060 = 0x01020304).
DEFAULT_MANUFACTURER = "DNT"
DEFAULT_BLOCK = 1
DEFAULT_FIRST_SERIAL = 16909060


class InvalidDeviceId(ValueError):
    """The string is not a DIN 43849 device ID."""


@dataclass(frozen=True, slots=True)
class DeviceId:
    """A parsed DIN 43849 device ID: Sparte, FLAG manufacturer code, production block, serial."""

    sparte: str
    manufacturer: str
    block: int
    serial: int

    @classmethod
    def parse(cls, text: str) -> DeviceId:
        m = _ID_RE.match(text.strip().upper())
        if not m:
            raise InvalidDeviceId(f"not a DIN 43849 device id: {text!r}")
        return cls(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)))

    def __str__(self) -> str:
        return f"{self.sparte}{self.manufacturer}{self.block:02d}{self.serial:08d}"

    @property
    def recipient(self) -> bytes:
        """The 9-byte RecipientId of the wake-up packet: the binary server ID without ``0x0A``."""
        return (
            bytes([int(self.sparte, 16)])
            + self.manufacturer.encode("ascii")
            + bytes([self.block])
            + self.serial.to_bytes(4, "big")
        )

    @property
    def server_id(self) -> bytes:
        """The 10-byte binary server ID (``0x0A`` + recipient)."""
        return b"\x0a" + self.recipient

    @property
    def ldev_name(self) -> str:
        """Lower-case logical device name, e.g. ``ednt0116909060.sm``."""
        return f"{str(self).lower()}.sm"


def gateway_id(
    index: int,
    *,
    manufacturer: str = DEFAULT_MANUFACTURER,
    block: int = DEFAULT_BLOCK,
    first_serial: int = DEFAULT_FIRST_SERIAL,
) -> str:
    """The ``index``-th (0-based) SMGW ID of the shared deterministic sequence.

    ``gateway_id(0) == "EDNT0116909060"``, ``gateway_id(1) == "EDNT0116909061"``, ...
    """
    if index < 0:
        raise ValueError("index must be >= 0")
    serial = first_serial + index
    if serial > 99_999_999:
        raise ValueError("serial number range exhausted")
    return str(DeviceId("E", manufacturer.upper(), block, serial))
