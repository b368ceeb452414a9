"""What a gateway reads from the meters on its LMN: 15-minute readings and register values by OBIS
code, with the faults ``missing_meter`` and ``tamper_alarm`` applied."""

from __future__ import annotations

from simulator.meters import INTERVAL_S, MeterModel, Reading, tariff_register_wh
from simulator.state import GatewayState


def _fault_meter(gw: GatewayState, kind: str) -> tuple[str, int] | None:
    """The meter a meter fault of ``kind`` names (default: the first) and its first interval."""
    f = gw.faults.get(kind)
    if f is None:
        return None
    meter = f.get("param") or next(iter(gw.meters), "")
    return meter, int(f.get("since", 0) // INTERVAL_S)


def meter_missing(gw: GatewayState, meter: str) -> bool:
    m = gw.meters.get(meter)
    fm = _fault_meter(gw, "missing_meter")
    return m is None or not m.get("present", True) or (fm is not None and fm[0] == meter)


def reading(gw: GatewayState, model: MeterModel, k: int) -> Reading:
    missing = _fault_meter(gw, "missing_meter")
    tamper = _fault_meter(gw, "tamper_alarm")
    return model.reading(
        k,
        missing_since=missing[1] if missing and missing[0] == model.meter_id else None,
        tamper_since=tamper[1] if tamper and tamper[0] == model.meter_id else None,
    )


def register_value(model: MeterModel, obis: str, k: int, reading: Reading,
                   tariffs: tuple[list[dict[str, str]], float] | None = None) -> int | None:
    """The value of register ``obis`` at interval ``k``. ``tariffs``: the daily schedule and
    start of an active TAF 2 profile on this meter; the tariff registers it names are derived
    from 1-0:1.8.0 by it (``tariff_register_wh``), otherwise the meter's own 70/30 split."""
    if reading.import_wh is None:
        return None
    if obis == "1-0:1.8.0":
        return reading.import_wh
    if obis == "1-0:2.8.0":
        return reading.export_wh
    if tariffs is not None and any(s["register"] == obis for s in tariffs[0]):
        return tariff_register_wh(model, obis, tariffs[0], tariffs[1], k)
    if obis == "1-0:1.8.1":  # high tariff share
        return reading.import_wh * 7 // 10
    if obis == "1-0:1.8.2":
        return reading.import_wh - reading.import_wh * 7 // 10
    if obis == "1-0:16.7.0":
        return model.power_w(k - 1)
    if obis in ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0"):
        return int(model.voltage_v(k, int(obis[4]) // 2) * 10)  # scaler -1
    if obis == "1-1:1.29.0":
        return model.import_wh(k) - model.import_wh(k - 1)
    return None
