"""Every command of docs/protocol.md section 10, end to end over real sockets: the head-end wakes a
simulated gateway, the gateway connects back over TLS, the command runs over h11 with CMS bodies
and the answer comes back (synchronously or as a Notify on a second connection)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from temporalio.exceptions import ApplicationError

from headend import contract as M
from tests.headend.conftest import GATEWAYS, Acts, HeSim, HeTenant, firmware_dir, meters_of
from tests.simulator.emt_stub import EmtStub

if TYPE_CHECKING:
    from headend.service import HeadendService
    from simulator.state import GatewayState

# The commissioning story runs on gateway 1 (EMH CASA; its certificates are NOT in the store, so
# the head-end reads the gateway's ENC certificate from the gateway first).
GID = GATEWAYS[1]
METER = meters_of(1)[0]


def sim_gateway(sim: HeSim, gid: str) -> GatewayState:
    return sim.fleet.gateways[gid].state


@pytest.fixture
async def emt_receiver(he_tenant: HeTenant) -> AsyncIterator[EmtStub]:
    """emt1's meter data receiver (docs/protocol.md 14), where the gateway delivers readouts."""
    stub = await EmtStub(he_tenant.pki).start()
    try:
        yield stub
    finally:
        await stub.stop()


async def test_commissioning_story(sim: HeSim, acts: Acts, he_tenant: HeTenant, emt_receiver: EmtStub) -> None:
    """Install EMT certificates, pair a meter, write meter, communication and evaluation profiles,
    have the gateway deliver readouts to the EMT, read logs and the clock: each step answered by the
    gateway."""
    emt = he_tenant.pki.emts["emt1"]
    conn = await acts("ensure_gateway_connected", M.EnsureConnectedInput(gateway_id=GID, command_id="c-0"))
    assert conn.task_queue == "headend-n1"

    certs = await acts("install_certificates", M.InstallCertificatesInput(
        gateway_id=GID, command_id="c-certs", certificates=tuple(
            M.CertificateToInstall(owner="emt1", role="emt", usage=u, pem=emt.credential(u).cert_path.read_text())
            for u in ("tls", "enc"))))
    assert {c.status for c in certs.certificates} == {"installed"}

    paired = await acts("pair_meter", M.PairMeterInput(gateway_id=GID, command_id="c-pair", meter_id=METER))
    assert (paired.meter_id, paired.status) == (METER, "paired")

    mp = await acts("write_meter_profile", M.WriteMeterProfileInput(gateway_id=GID, command_id="c-mp", profile=(
        M.MeterProfile(profile_id="mp-1", meter_id=METER, registers=(
            M.RegisterSpec(obis="1-0:1.8.0", unit=30, scaler=-1),
            M.RegisterSpec(obis="1-0:2.8.0", unit=30, scaler=-1))))))
    assert (mp.kind, mp.profile_id, mp.status) == ("meter", "mp-1", "created")

    cp = await acts("write_communication_profile", M.WriteCommunicationProfileInput(
        gateway_id=GID, command_id="c-cp", profile=M.CommunicationProfile(
            profile_id="cp-emt1", peer="emt1", role="emt", endpoint=emt_receiver.endpoint())))
    assert cp.status == "created"

    ep = await acts("write_evaluation_profile", M.WriteEvaluationProfileInput(
        gateway_id=GID, command_id="c-ep", profile=M.EvaluationProfile(
            profile_id="ep-taf7", taf=7, recipient="emt1", communication_profile="cp-emt1", meter_profile="mp-1",
            registers=("1-0:1.8.0",))))
    assert (ep.kind, ep.status) == ("evaluation", "created")
    # Switching times belong to TAF 2 only, and TAF 2 needs a real schedule over the profile's registers.
    for n, (taf, times) in enumerate([
            (7, (M.SwitchingTimeSpec(at="06:00", register="1-0:1.8.0"),)),
            (2, (M.SwitchingTimeSpec(at="06:00", register="1-0:1.8.0"),)),
            (2, (M.SwitchingTimeSpec(at="06:00", register="1-0:1.8.0"),
                 M.SwitchingTimeSpec(at="22:00", register="1-0:2.8.1")))]):
        with pytest.raises(ApplicationError) as refused:
            await acts("write_evaluation_profile", M.WriteEvaluationProfileInput(
                gateway_id=GID, command_id=f"c-ep-bad-{n}", profile=M.EvaluationProfile(
                    profile_id=f"ep-bad-{n}", taf=taf, recipient="emt1", communication_profile="cp-emt1",
                    meter_profile="mp-1", registers=("1-0:1.8.0", "1-0:2.8.0"), switching_times=times)))
        assert refused.value.type == "invalid_profile", (taf, refused.value)
    tou = await acts("write_evaluation_profile", M.WriteEvaluationProfileInput(
        gateway_id=GID, command_id="c-ep-tou", profile=M.EvaluationProfile(
            profile_id="ep-taf2", taf=2, recipient="emt1", communication_profile="cp-emt1", meter_profile="mp-1",
            registers=("1-0:1.8.0", "1-0:2.8.0"), switching_times=(
                M.SwitchingTimeSpec(at="22:00", register="1-0:2.8.0"),
                M.SwitchingTimeSpec(at="06:00", register="1-0:1.8.0")))))
    assert tou.status == "created"

    # Readouts: the gateway delivers to the EMT itself; the GWA gets which delivery, never values.
    on_demand = await acts("write_evaluation_profile", M.WriteEvaluationProfileInput(
        gateway_id=GID, command_id="c-ep6", profile=M.EvaluationProfile(
            profile_id="ep-taf6", taf=6, recipient="emt1", communication_profile="cp-emt1", meter_profile="mp-1",
            registers=("1-0:1.8.0", "1-0:2.8.0"))))
    assert on_demand.status == "created"
    readout = await acts("trigger_readout", M.TriggerReadoutInput(gateway_id=GID, command_id="c-ro", recipient="emt1",
                                                                  meter_id=METER))
    ack = readout.delivery
    assert readout.readout is None and ack is not None
    assert (ack.profile_id, ack.taf, ack.recipient, ack.meter_id, ack.reason) == ("ep-taf6", 6, "emt1", METER,
                                                                                  "on_demand")
    assert ack.delivery_ref.startswith("uuid:") and ack.values_from is None
    first = await acts("trigger_readout", M.TriggerReadoutInput(gateway_id=GID, command_id="c-first",
                                                                profile_id="ep-taf7", reason="first_readout"))
    assert first.delivery.taf == 7 and first.delivery.values_from and first.delivery.reason == "first_readout"
    refs = {ack.delivery_ref: ack, first.delivery.delivery_ref: first.delivery}
    received = await emt_receiver.wait(lambda r: set(refs) <= {d.cid for d in r})
    for d in (d for d in received if d.cid in refs):
        # Sealed by the gateway for the EMT, delivered on the gateway's own connection.
        assert d.signer_cn == d.client_cn == f"{GID}.SMGW"
        assert (d.gg("profile"), d.gg("reason")) == (refs[d.cid].profile_id, refs[d.cid].reason)
    with pytest.raises(ApplicationError) as refused:
        await acts("trigger_readout", M.TriggerReadoutInput(gateway_id=GID, command_id="c-ro-x", profile_id="ep-none"))
    assert refused.value.type == "unknown_profile"

    log = await acts("read_logbook", M.ReadLogbookInput(gateway_id=GID, command_id="c-log", log="system",
                                                        max_entries=50))
    assert log.entries and all(1 <= e.level <= 4 and e.outcome in (0, 1) for e in log.entries)
    records = [e.record for e in log.entries]
    assert records == sorted(records)
    part = await acts("read_logbook", M.ReadLogbookInput(gateway_id=GID, command_id="c-log2", log="system",
                                                         from_record=records[0], to_record=records[0]))
    assert [e.record for e in part.entries] == [records[0]]

    offset = await acts("measure_clock_offset", M.MeasureClockOffsetInput(gateway_id=GID, command_id="c-clk"))
    assert abs(offset.offset_ms) < 5_000 and offset.round_trip_ms >= 0
    st = await acts("set_time", M.SetTimeInput(gateway_id=GID, command_id="c-time"))
    assert st.sent_time
    shifted = await acts("set_time", M.SetTimeInput(gateway_id=GID, command_id="c-shift", mode="shift", shift_ms=0))
    assert shifted.mode == "shift"

    info = await acts("read_device_info", M.ReadDeviceInfoInput(gateway_id=GID, command_id="c-info"))
    assert info.vendor == "EMH" and any(m.meter_id == METER and m.paired for m in info.meters)


async def test_deinstallation_story(sim: HeSim, acts: Acts) -> None:
    """Final readout to the EMTs, profiles deactivated and removed, meter unpaired."""
    gid, meter = GATEWAYS[3], meters_of(3)[0]
    await acts("pair_meter", M.PairMeterInput(gateway_id=gid, command_id="d-pair", meter_id=meter))
    await acts("write_meter_profile", M.WriteMeterProfileInput(gateway_id=gid, command_id="d-mp", profile=(
        M.MeterProfile(profile_id="mp-d", meter_id=meter, registers=(M.RegisterSpec(obis="1-0:1.8.0"),)))))
    final = await acts("final_readout", M.FinalReadoutInput(gateway_id=gid, command_id="d-final"))
    assert final.gateway_id == gid and final.deliveries == () and final.readouts == ()  # no evaluation profile
    deact = await acts("deactivate_profiles", M.DeactivateProfilesInput(gateway_id=gid, command_id="d-deact"))
    assert deact.gateway_id == gid
    gone = await acts("delete_meter_profile", M.DeleteMeterProfileInput(gateway_id=gid, command_id="d-del",
                                                                        profile_id="mp-d"))
    assert gone.existed
    absent = await acts("delete_evaluation_profile", M.DeleteEvaluationProfileInput(
        gateway_id=gid, command_id="d-del-ep", profile_id="never-written"))
    assert not absent.existed
    unpaired = await acts("unpair_meter", M.UnpairMeterInput(gateway_id=gid, command_id="d-unpair", meter_id=meter))
    assert unpaired.existed


async def test_firmware_update_story(sim: HeSim, acts: Acts, headend: HeadendService) -> None:
    """Chunked download (resumed after an interruption), manufacturer signature verified by the
    gateway, activation with restart, reboot: the Notifies arrive after the gateway reconnects."""
    from simulator.firmware import build_image, image_id
    from simulator.vendors import vendor_for

    gid = GATEWAYS[2]
    vendor = vendor_for(gid)
    image = build_image(sim.fleet.creds, vendor, "9.9.9", size=200_000)
    name = "fw-ppc-9.9.9.bin"
    (firmware_dir(headend) / name).write_bytes(image)
    sha = hashlib.sha256(image).hexdigest()
    img_id = image_id(vendor, "9.9.9")
    inp = M.DownloadFirmwareInput(gateway_id=gid, command_id="f-dl", image_id=img_id, version="9.9.9",
                                  image_file=name, sha256=sha)
    # First attempt without verification, then the full command: the transfer resumes.
    first = await acts("download_firmware", M.DownloadFirmwareInput(
        gateway_id=gid, command_id="f-dl0", image_id=img_id, version="9.9.9", image_file=name, sha256=sha,
        verify=False))
    assert first.blocks_sent == 4 and first.size == len(image)
    done = await acts("download_firmware", inp)
    assert done.resumed_from == len(image) and done.blocks_sent == 0 and done.verified
    assert done.signer and done.signer.endswith(".GWH")

    act = await acts("activate_firmware", M.ActivateFirmwareInput(gateway_id=gid, command_id="f-act", image_id=img_id,
                                                                  version="9.9.9"))
    assert act.version == "9.9.9" and act.previous_version
    info = await acts("read_device_info", M.ReadDeviceInfoInput(gateway_id=gid, command_id="f-info"))
    assert info.active_firmware == "9.9.9"

    rebooted = await acts("reboot", M.RebootInput(gateway_id=gid, command_id="f-reboot"))
    assert rebooted.boot_time


async def test_firmware_with_wrong_signature_fails_verification(sim: HeSim, acts: Acts,
                                                                headend: HeadendService) -> None:
    from simulator.firmware import build_image, image_id
    from simulator.vendors import vendor_for

    gid = GATEWAYS[4]
    vendor = vendor_for(gid)
    other = vendor_for(GATEWAYS[5])
    image = build_image(sim.fleet.creds, vendor, "6.6.6", size=70_000, signer=other)
    (firmware_dir(headend) / "bad.bin").write_bytes(image)
    with pytest.raises(ApplicationError) as err:
        await acts("download_firmware", M.DownloadFirmwareInput(
            gateway_id=gid, command_id="f-bad", image_id=image_id(vendor, "6.6.6"), version="6.6.6",
            image_file="bad.bin", sha256=hashlib.sha256(image).hexdigest()))
    assert err.value.type == "firmware_verification_failed" and err.value.non_retryable


async def test_repeated_command_id_is_not_applied_twice(sim: HeSim, acts: Acts, he_tenant: HeTenant) -> None:
    gid = GATEWAYS[5]
    enc = he_tenant.pki.emts["emt1"].enc.cert_path.read_text()
    await acts("install_certificates", M.InstallCertificatesInput(gateway_id=gid, command_id="r-certs", certificates=(
        M.CertificateToInstall(owner="emt1", role="emt", usage="enc", pem=enc),)))
    inp = M.WriteCommunicationProfileInput(gateway_id=gid, command_id="r-cp", profile=M.CommunicationProfile(
        profile_id="cp-r", peer="emt1", endpoint="https://emt1.gridgate.test/smgw"))
    counters = sim_gateway(sim, gid).counters
    first = await acts("write_communication_profile", inp)
    applied = counters["applied"]
    again = await acts("write_communication_profile", inp)
    assert first == again
    assert counters["applied"] == applied and counters["repeated"] >= 1
