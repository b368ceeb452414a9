"""Identifiers of the German metering world: DIN 43849 device IDs, MeLo, MaLo, market partner IDs.

Device ID (DIN 43849, formerly DIN 43863-5), 14 characters: Sparte (``1`` electricity, ``7`` gas,
``6`` heat, ``8``/``9`` water, ``E`` communication unit = SMGW) + 3-letter manufacturer code (FLAG)
+ 2-digit production block + 8-digit serial, e.g. ``1EMH0005347102`` or ``EDNT0116909060``.
The binary server ID is ``0A`` + Sparte byte + 3 ASCII + block byte + serial as uint32 big-endian.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from core.errors import InvalidInput

DEVICE_ID_RE = re.compile(r"^([0-9A-F])([A-Z]{3})(\d{2})(\d{8})$")
MELO_RE = re.compile(r"^DE\d{11}[A-Z0-9]{20}$")
MALO_RE = re.compile(r"^[1-9]\d{10}$")
MARKET_PARTNER_RE = re.compile(r"^\d{13}$")

SPARTE_NAMES = {"1": "electricity", "7": "gas", "6": "heat", "8": "water", "9": "water", "E": "smgw"}


class InvalidId(InvalidInput):
    code = "invalid_id"


@dataclass(frozen=True)
class DeviceId:
    sparte: str
    manufacturer: str
    block: int
    serial: int

    def __str__(self) -> str:
        return f"{self.sparte}{self.manufacturer}{self.block:02d}{self.serial:08d}"

    @property
    def is_gateway(self) -> bool:
        return self.sparte == "E"

    @property
    def server_id(self) -> bytes:
        """The 10-byte binary server ID."""
        return b"\x0a" + self.recipient

    @property
    def recipient(self) -> bytes:
        """The 9-byte wake-up recipient: the server ID without its leading 0x0A."""
        return bytes([int(self.sparte, 16)]) + self.manufacturer.encode("ascii") + bytes([self.block]) + struct.pack(
            ">I", self.serial
        )

    @property
    def logical_device(self) -> str:
        """The COSEM logical device name used in admin URLs, e.g. ``ednt0116909060.sm``."""
        return f"{str(self).lower()}.sm"


def parse_device_id(value: str, *, gateway: bool | None = None) -> DeviceId:
    """Parse and validate a DIN 43849 device ID; ``gateway`` True/False also checks the Sparte."""
    m = DEVICE_ID_RE.fullmatch(value or "")
    if not m:
        raise InvalidId(f"invalid device ID {value!r}: expected Sparte + 3-letter manufacturer + 2-digit "
                        "block + 8-digit serial (14 characters, DIN 43849)", code="invalid_device_id")
    sparte, flag, block, serial = m.groups()
    if sparte not in SPARTE_NAMES:
        raise InvalidId(f"invalid device ID {value!r}: unknown Sparte {sparte!r}", code="invalid_device_id")
    if serial and int(serial) > 0xFFFFFFFF:
        raise InvalidId(f"invalid device ID {value!r}: serial out of range", code="invalid_device_id")
    if gateway is True and sparte != "E":
        raise InvalidId(f"{value!r} is not a gateway ID (Sparte must be 'E')", code="invalid_gateway_id")
    if gateway is False and sparte == "E":
        raise InvalidId(f"{value!r} is a gateway ID, not a meter ID", code="invalid_meter_id")
    return DeviceId(sparte, flag, int(block), int(serial))


def malo_check_digit(first10: str) -> int:
    a = sum(int(first10[i]) for i in (0, 2, 4, 6, 8))
    b = sum(int(first10[i]) for i in (1, 3, 5, 7, 9))
    return (10 - (a + 2 * b) % 10) % 10


def validate_malo(value: str) -> str:
    """Market location ID: 11 digits, first 1-9, last a check digit."""
    if not MALO_RE.fullmatch(value or ""):
        raise InvalidId(f"invalid MaLo {value!r}: 11 digits, the first 1-9", code="invalid_malo")
    if malo_check_digit(value[:10]) != int(value[10]):
        raise InvalidId(f"invalid MaLo {value!r}: wrong check digit", code="invalid_malo_check_digit")
    return value


def validate_melo(value: str) -> str:
    """Metering location ID (Zählpunkt): DE + 11 digits + 20 alphanumerics."""
    if not MELO_RE.fullmatch(value or ""):
        raise InvalidId(f"invalid MeLo {value!r}: 'DE' + 11 digits + 20 of A-Z/0-9 (33 characters)",
                        code="invalid_melo")
    return value


def validate_market_partner_id(value: str) -> str:
    if not MARKET_PARTNER_RE.fullmatch(value or ""):
        raise InvalidId(f"invalid market partner ID {value!r}: 13 digits", code="invalid_market_partner_id")
    return value


# The demo fleet and the simulator derive their device IDs from one place, so that master data,
# certificates and simulated gateways agree. Vendor i % 3: Theben, EMH, PPC.
DEMO_VENDORS = (("THE", "Theben CONEXA 3.0"), ("EMH", "EMH CASA"), ("PPC", "PPC SMGW"))
DEMO_METER_VENDORS = (("EMH", "EMH eBZD"), ("ISK", "ISKRA MT631"))


def demo_gateway_id(index: int) -> str:
    flag = DEMO_VENDORS[index % len(DEMO_VENDORS)][0]
    return str(DeviceId("E", flag, 1, 16_900_000 + index))


def demo_meter_id(gateway_index: int, slot: int) -> str:
    flag = DEMO_METER_VENDORS[(gateway_index + slot) % len(DEMO_METER_VENDORS)][0]
    return str(DeviceId("1", flag, 5, 30_000_000 + gateway_index * 4 + slot))


def demo_meter_count(gateway_index: int) -> int:
    """Meters behind demo gateway ``gateway_index`` (slots 0..n-1): every fourth has two."""
    return 2 if gateway_index % 4 == 0 else 1


def demo_meter_mk0(meter_id: str) -> bytes:
    """The 16-byte LMN master key MK0 of a demo/simulated meter: SHA-256("gridgate-demo-mk0:" + ID),
    first 16 bytes. Demo only: master data and the simulator derive the same key from here."""
    import hashlib

    return hashlib.sha256(f"gridgate-demo-mk0:{meter_id}".encode()).digest()[:16]
