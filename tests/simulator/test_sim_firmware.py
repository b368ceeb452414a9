"""Firmware download (chunked, resumable across a dropped connection and a simulator restart),
verification against the manufacturer's SIG certificate, activation with restart and Notify,
fallback on failure; reboot (docs/protocol.md 10.13-10.15)."""

from __future__ import annotations

import base64
import hashlib
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from pki.testpki import TestPki
from simulator.firmware import image_id
from simulator.run import Simulator
from simulator.vendors import VENDORS
from tests.simulator.conftest import SimFactory, connect, control, fleet, gid
from tests.simulator.gwa_stub import GwaStub, Link, child_of, xml
from tests.simulator.helpers import DEVICE_INFO, FIRMWARE, FIRMWARE_STATUS, REBOOT, new_id, post

Q = "{urn:gridgate:gwa:1}"
BLOCK = 16 * 1024


async def fetch_image(sim: Simulator, flag: str, version: str, **query: str) -> bytes:
    async with control(sim) as api:
        r = await api.get(f"/firmware/{flag}/{version}", params={"size": str(40_000), **query})
        assert r.status_code == 200
        return r.content


async def initiate(link: Link, image: bytes, img_id: str, version: str) -> int:
    body = xml("imageTransferInitiate", {"imageId": img_id, "version": version, "size": len(image),
                                         "sha256": hashlib.sha256(image).hexdigest(), "blockSize": BLOCK})
    r = await post(link, FIRMWARE.format(1), body)
    assert r.status == 200, r
    return int(r.element.get("received", 0))


async def send_blocks(link: Link, image: bytes, img_id: str, start: int, stop: int | None = None) -> int:
    received = start
    for off in range(start, stop or len(image), BLOCK):
        data = image[off:off + BLOCK]
        body = xml("imageBlock", {"imageId": img_id, "offset": off, "length": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest()}, text=base64.b64encode(data).decode())
        r = await post(link, FIRMWARE.format(2), body, f"fw-{img_id}:block:{off}")
        assert r.status == 200, r
        received = int(r.element.get("received", 0))
    return received


async def verify(link: Link, stub: GwaStub, img_id: str) -> ET.Element:
    cid = new_id("verify")
    assert (await post(link, FIRMWARE.format(3), xml("imageVerify", {"imageId": img_id}), cid)).status == 202
    return await stub.wait_notify(cid)


async def test_download_resume_verify_activate(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                               tmp_path: Path) -> None:
    g, version = gid(0), "3.5.0"
    vendor = VENDORS["THE"]
    img_id = image_id(vendor, version)
    state = tmp_path / "state"
    sim = await make_sim(state=state)
    image = await fetch_image(sim, "THE", version)
    link = await connect(sim, stub, g, sim_pki)
    assert await initiate(link, image, img_id, version) == 0
    assert await send_blocks(link, image, img_id, 0, 2 * BLOCK) == 2 * BLOCK
    gap = xml("imageBlock", {"imageId": img_id, "offset": 2 * BLOCK + 100, "length": 1,
                             "sha256": hashlib.sha256(b"x").hexdigest()}, text=base64.b64encode(b"x").decode())
    r = await post(link, FIRMWARE.format(2), gap)
    assert (r.status, r.reason, r.element.get("received")) == (409, "offset_mismatch", str(2 * BLOCK))
    # the simulator goes away mid-download; after the restart the transfer resumes where it was
    await sim.stop()
    stub.forget(g)
    sim = await make_sim(state=state)
    link = await connect(sim, stub, g, sim_pki, timestamp=int(time.time()) + 1)
    status = (await link.request("GET", FIRMWARE_STATUS)).element
    assert status.get("state") == "transferring" and status.get("received") == str(2 * BLOCK)
    assert await initiate(link, image, img_id, version) == 2 * BLOCK  # same image: resume
    assert await send_blocks(link, image, img_id, BLOCK) == len(image)  # a block already held is accepted again
    notify = await verify(link, stub, img_id)
    verified = child_of(notify, "imageVerified")
    assert notify.get("status") == "200" and verified.get("signer") == vendor.manufacturer_cn
    cid = new_id("activate")
    r = await post(link, FIRMWARE.format(4), xml("imageActivate", {"imageId": img_id, "version": version}), cid)
    assert r.status == 202
    await link.closed.wait()  # the gateway restarts ...
    stub.forget(g)
    notify = await stub.wait_notify(cid)  # ... reconnects on its own and reports
    act = child_of(notify, "firmwareActivated")
    assert act.get("version") == version and act.get("previousVersion") == vendor.initial_firmware
    link = await stub.wait_link(g)
    info = (await link.request("GET", DEVICE_INFO)).element
    slots = {f.get("slot"): f.get("version") for f in info.findall(Q + "firmware")}
    assert slots == {"active": version, "fallback": vendor.initial_firmware}
    assert fleet(sim).gateways[g].state.counters["contacts"].get("restart") == 1


async def test_verification_failures(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g = gid(1)  # EMH
    link = await connect(sim, stub, g, sim_pki)
    cases = [
        ("2.2.0", {"signer": "PPC"}, "firmware_verification_failed"),  # another manufacturer signed it
        ("2.2.1", {"product": "CONEXA3"}, "unsupported"),  # built for another gateway type
    ]
    for version, query, reason in cases:
        image = await fetch_image(sim, "EMH", version, **query)
        img_id = f"emh-{version}"
        await initiate(link, image, img_id, version)
        await send_blocks(link, image, img_id, 0)
        notify = await verify(link, stub, img_id)
        assert child_of(notify, "error").get("reason") == reason, version
    async with control(sim) as api:
        await api.put(f"/gateways/{g}/faults/firmware_verification_failure")
    image = await fetch_image(sim, "EMH", "2.2.2")
    await initiate(link, image, "emh-2.2.2", "2.2.2")
    await send_blocks(link, image, "emh-2.2.2", 0)
    notify = await verify(link, stub, "emh-2.2.2")
    assert notify.get("status") == "422"
    event = await stub.wait_inbound(lambda i: i.path == "/gwa/events")
    assert child_of(event.root, "event").get("code") == "firmware_verification_failed"
    r = await post(link, FIRMWARE.format(4), xml("imageActivate", {"imageId": "emh-2.2.2", "version": "2.2.2"}))
    assert (r.status, r.reason) == (409, "rejected")  # not verified


async def test_activation_failure_falls_back(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g, version = gid(2), "2.0.0"  # PPC
    img_id = image_id(VENDORS["PPC"], version)
    link = await connect(sim, stub, g, sim_pki)
    image = await fetch_image(sim, "PPC", version)
    await initiate(link, image, img_id, version)
    await send_blocks(link, image, img_id, 0)
    assert (await verify(link, stub, img_id)).get("status") == "200"
    async with control(sim) as api:
        await api.put(f"/gateways/{g}/faults/firmware_verification_failure")
    cid = new_id("activate")
    assert (await post(link, FIRMWARE.format(4), xml("imageActivate", {"imageId": img_id, "version": version}),
                       cid)).status == 202
    stub.forget(g)
    notify = await stub.wait_notify(cid)
    err = child_of(notify, "error")
    assert notify.get("status") == "500" and err.get("reason") == "firmware_activation_failed"
    assert err.get("fallbackVersion") == VENDORS["PPC"].initial_firmware
    assert fleet(sim).gateways[g].state.firmware["active"] == VENDORS["PPC"].initial_firmware


async def test_reboot_reconnects_and_notifies(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g = gid(0)
    link = await connect(sim, stub, g, sim_pki)
    cid = new_id("reboot")
    assert (await post(link, REBOOT, xml("reboot", {"reason": "operator"}), cid)).status == 202
    await link.closed.wait()
    stub.forget(g)
    notify = await stub.wait_notify(cid)
    assert child_of(notify, "rebooted").get("bootTime")
    link = await stub.wait_link(g)
    info = (await link.request("GET", DEVICE_INFO)).element
    assert int(info.findtext(Q + "uptime") or "99") < 60
    st = fleet(sim).gateways[g].state
    assert st.boot_count == 2 and st.counters["applied_by_kind"] == {"reboot": 1}
