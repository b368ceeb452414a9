"""DIN 43849 gateway IDs for the PKI: parsing to the 9-byte wake-up recipient form, and the
deterministic gateway ID sequence shared with master data and the simulator.

The identifiers themselves live in :mod:`core.ids` (one definition for the whole project);
this module only adapts them to what the PKI needs.
"""

from __future__ import annotations

from core.ids import DeviceId, InvalidId, demo_gateway_id, parse_device_id

__all__ = ["DeviceId", "InvalidDeviceId", "gateway_id", "parse_gateway_id"]


class InvalidDeviceId(ValueError):
    """The string is not a DIN 43849 SMGW ID."""


def parse_gateway_id(text: str | DeviceId) -> DeviceId:
    """Parse an SMGW ID (Sparte ``E``); :class:`InvalidDeviceId` otherwise."""
    if isinstance(text, DeviceId):
        return text
    try:
        return parse_device_id(text.strip().upper(), gateway=True)
    except InvalidId as err:
        raise InvalidDeviceId(err.message) from None


def gateway_id(index: int) -> str:
    """The ``index``-th (0-based) gateway of the demo/simulator fleet
    (:func:`core.ids.demo_gateway_id`), so certificates, master data and simulated gateways
    agree on IDs."""
    if index < 0:
        raise ValueError("index must be >= 0")
    return demo_gateway_id(index)
