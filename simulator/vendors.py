"""Vendor variants of the simulated SMGWs and what each one accepts.

The real admin dialects of Theben, EMH and PPC are vendor documents; the simulator speaks
gridgate's documented profile (docs/protocol.md) and differs per vendor only in capabilities the
head-end and processes must cope with: the firmware product an image must be built for, readable logbooks,
supported TAFs, LMN size. The manufacturer flag of the gateway ID selects the vendor.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.ids import DEMO_VENDORS

LOG_TYPES = ("system", "calibration", "consumer")


@dataclass(frozen=True)
class Vendor:
    flag: str
    name: str
    vendor: str  # <vendor> of deviceInfo
    model: str  # <model> of deviceInfo
    product: str  # firmware images name the product they are built for
    initial_firmware: str
    max_chunk_bytes: int  # largest firmware block accepted (capability maxBlockSize)
    log_types: frozenset[str]  # logbooks the GWA may read
    tafs: frozenset[int]
    max_meters: int
    manufacturer_cn: str  # CN of the manufacturer's (GWH) SIG certificate

    def to_dict(self) -> dict[str, object]:
        return {
            "flag": self.flag, "name": self.name, "vendor": self.vendor, "model": self.model, "product": self.product,
            "initial_firmware": self.initial_firmware, "max_chunk_bytes": self.max_chunk_bytes,
            "log_types": sorted(self.log_types), "tafs": sorted(self.tafs), "max_meters": self.max_meters,
        }


_NAMES = dict(DEMO_VENDORS)

VENDORS: dict[str, Vendor] = {
    "THE": Vendor(
        flag="THE", name=_NAMES["THE"], vendor="Theben", model="CONEXA 3.0", product="CONEXA3",
        initial_firmware="3.4.1",
        max_chunk_bytes=64 * 1024, log_types=frozenset({"system", "calibration"}),
        tafs=frozenset({1, 2, 6, 7, 9, 10}), max_meters=8, manufacturer_cn="THEBEN-TEST.GWH",
    ),
    "EMH": Vendor(
        flag="EMH", name=_NAMES["EMH"], vendor="EMH", model="CASA", product="CASA", initial_firmware="2.1.0",
        max_chunk_bytes=64 * 1024, log_types=frozenset({"system", "calibration", "consumer"}),
        tafs=frozenset({1, 2, 6, 7, 8, 9, 10, 14}), max_meters=4, manufacturer_cn="EMH-TEST.GWH",
    ),
    "PPC": Vendor(
        flag="PPC", name=_NAMES["PPC"], vendor="PPC", model="SMGW", product="PPC-SMGW", initial_firmware="1.9.7",
        max_chunk_bytes=64 * 1024, log_types=frozenset({"system"}),
        tafs=frozenset({1, 2, 6, 7}), max_meters=4, manufacturer_cn="PPC-TEST.GWH",
    ),
}

# Gateways of manufacturers outside the demo set behave like the first vendor with their own flag.
_FALLBACK = VENDORS["THE"]


def vendor_for(gateway_id: str) -> Vendor:
    """The vendor variant for a gateway ID (manufacturer flag = characters 2..4)."""
    return VENDORS.get(gateway_id[1:4].upper(), _FALLBACK)
