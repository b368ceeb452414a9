"""The XML of docs/protocol.md 14.2 read into a Delivery: the section's example, a round trip of what
the tests' gateway side writes, and payloads that are not deliveries (all ``malformed``)."""

from __future__ import annotations

import datetime as dt

import pytest

from core.ids import demo_gateway_id, demo_meter_id
from domain.meterdata.delivery import GRID_PROFILE, LOAD_PROFILE, Delivery, Entry, MeterData, Profile, Register
from mdm.payload import PayloadError, obis_of, parse
from tests.mdm.delivering import to_xml

# docs/protocol.md 14.2, the example as written (status words of DS Tab. 15.1: normal is not 0).
EXAMPLE = b"""<cosem xmlns="urn:k461-dke-de:cor-1" xmlns:gg="urn:gridgate:mdm:1" gg:gateway="EEMH0116900001"
       gg:recipient="9900000000001" gg:profile="ep-7-9900000000001-1EMH0530000004" gg:taf="7"
       gg:reason="scheduled" gg:created="2026-01-02T00:03:12.000Z">
  <ldevs count="1">
    <ldev id="1emh0530000004.sm">
      <objects count="2">
        <object class-id="4" version="0" id="0100010800ff">
          <attributes count="1">
            <attribute id="3"><structure><integer>0</integer><enum>30</enum></structure></attribute>
          </attributes>
        </object>
        <object class-id="7" version="1" id="0100630100ff">
          <attributes count="3">
            <attribute id="3"><array count="3">
              <structure><long-unsigned>8</long-unsigned><octet-string>0000010000ff</octet-string><integer>2</integer><long-unsigned>0</long-unsigned></structure>
              <structure><long-unsigned>4</long-unsigned><octet-string>0100010800ff</octet-string><integer>2</integer><long-unsigned>0</long-unsigned></structure>
              <structure><long-unsigned>1</long-unsigned><octet-string>0000616100ff</octet-string><integer>2</integer><long-unsigned>0</long-unsigned></structure>
            </array></attribute>
            <attribute id="4"><double-long-unsigned>900</double-long-unsigned></attribute>
            <attribute id="2"><array count="3">
              <structure><date-time>2025-12-31T23:00:00Z</date-time><long64-unsigned>4183021</long64-unsigned><long64-unsigned>21474836736</long64-unsigned></structure>
              <structure><date-time>2025-12-31T23:15:00Z</date-time><long64-unsigned>4183102</long64-unsigned><long64-unsigned>21474836736</long64-unsigned></structure>
              <structure><date-time>2025-12-31T23:30:00Z</date-time><long64-unsigned/><long64-unsigned>35205846925568</long64-unsigned></structure>
            </array></attribute>
          </attributes>
        </object>
      </objects>
    </ldev>
  </ldevs>
</cosem>"""

UTC = dt.UTC


def test_the_example_of_the_protocol() -> None:
    d = parse(EXAMPLE)
    assert (d.gateway_id, d.recipient, d.profile_id, d.taf, d.reason) == (
        "EEMH0116900001", "9900000000001", "ep-7-9900000000001-1EMH0530000004", 7, "scheduled")
    assert d.created == dt.datetime(2026, 1, 2, 0, 3, 12, tzinfo=UTC)
    (meter,) = d.meters
    assert meter.meter_id == "1EMH0530000004" and meter.scaler_units == {"1-0:1.8.0": (0, 30)}
    (profile,) = meter.profiles
    assert (profile.obis, profile.period_s, profile.columns) == (LOAD_PROFILE, 900, ("1-0:1.8.0",))
    normal = 0x0000000500000100  # SMGW bits 0 and 2, meter bit 8
    assert profile.entries == (
        Entry(end=dt.datetime(2025, 12, 31, 23, tzinfo=UTC), values=(4183021,), status=normal),
        Entry(end=dt.datetime(2025, 12, 31, 23, 15, tzinfo=UTC), values=(4183102,), status=normal),
        Entry(end=dt.datetime(2025, 12, 31, 23, 30, tzinfo=UTC), values=(None,), status=normal | (1 << 13) << 32))


def test_what_the_gateway_side_writes_reads_back() -> None:
    at = dt.datetime(2025, 9, 1, 10, 15, tzinfo=UTC)
    d = Delivery(
        gateway_id=demo_gateway_id(5), recipient="9900000000017", profile_id="ep-10", taf=10, reason="threshold",
        created=at, meters=(
            MeterData(meter_id=demo_meter_id(5, 0), scaler_units={"1-0:32.7.0": (-1, 35), "1-0:16.7.0": (0, 27)},
                      profiles=(Profile(obis=GRID_PROFILE, period_s=60, columns=("1-0:32.7.0", "1-0:16.7.0"),
                                        entries=(Entry(end=at, values=(2301, -450), status=5),),
                                        threshold=True),)),
            MeterData(meter_id=demo_meter_id(5, 1), scaler_units={"1-0:2.8.0": (0, 30)}, registers=(
                Register(obis="1-0:2.8.0", value=None, scaler=0, unit=30, status=1 << 45, captured_at=at),)),
        ))
    assert parse(to_xml(d)) == d


def test_logical_names() -> None:
    assert obis_of(bytes.fromhex("0100010800ff")) == "1-0:1.8.0"
    assert obis_of(bytes.fromhex("010001080001")) == "1-0:1.8.0.1"


@pytest.mark.parametrize(("payload", "why"), [
    (b"", "not well-formed"),
    (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "not well-formed"),
    (b'<cosem xmlns="urn:gridgate:gwa:1"/>', "root element"),
    (EXAMPLE.replace(b'gg:taf="7"', b'gg:taf="seven"'), "gg:taf"),
    (EXAMPLE.replace(b'gg:taf="7"', b""), "lacks gg:taf"),
    (EXAMPLE.replace(b'gg:reason="scheduled"', b'gg:reason="because"'), "gg:reason"),
    (EXAMPLE.replace(b'gg:gateway="EEMH0116900001"', b'gg:gateway="1EMH0116900001"'), "gateway"),
    (EXAMPLE.replace(b'2025-12-31T23:15:00Z', b'2025-12-31T23:15:00'), "UTC"),
    (EXAMPLE.replace(b'2025-12-31T23:15:00Z', b'2025-12-31T23:00:00Z'), "same time"),
    (EXAMPLE.replace(b'<array count="3">\n              <structure><date', b'<array count="4">\n              '
                     b'<structure><date'), "holds 3"),
    (EXAMPLE.replace(b"<long64-unsigned>4183102</long64-unsigned>", b"<long64-unsigned>-1</long64-unsigned>"),
     "out of range"),
    (EXAMPLE.replace(b"<long64-unsigned>4183102</long64-unsigned>", b"<float>1.5</float>"), "unknown data type"),
    (EXAMPLE.replace(b"0000010000ff", b"0100010800ff"), "clock"),
    (EXAMPLE.replace(b'id="1emh0530000004.sm"', b'id="ednt0116909060.sm"'), "gateway ID, not a meter"),
    (EXAMPLE.replace(b'<attribute id="4"><double-long-unsigned>900</double-long-unsigned></attribute>', b""),
     "lacks attribute 4"),
])
def test_what_is_not_a_delivery(payload: bytes, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        parse(payload)
