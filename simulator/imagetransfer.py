"""Firmware download and activation (docs/protocol.md 10.13-10.14, COSEM class 18 Image transfer).

Transfer state lives in ``state.firmware["transfer"]``; received blocks are rows of the store
(persisted with the command that carried them), so a download resumes after a dropped connection
or a simulator restart. Verification checks the whole-image hash, the manufacturer's signature
(:mod:`simulator.firmware`) and the fault ``firmware_verification_failure``; activation restarts
the gateway and falls back to the previous image if the fault is set.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from typing import Any

from simulator import xmlcodec as X
from simulator.commands import IMAGE_TRANSFER, Ctx, Outcome, expect, handler
from simulator.errors import CommandError
from simulator.firmware import FirmwareError, verify_image
from simulator.state import LEVEL_ERROR, LEVEL_INFO, OUTCOME_FAILURE, OUTCOME_SUCCESS

MAX_IMAGE_BYTES = 64 * 1024 * 1024


def _status(ctx: Ctx) -> ET.Element:
    t: dict[str, Any] = ctx.gw.firmware.get("transfer") or {}
    if not t:
        return ctx.root("imageTransferStatus", {"state": "idle"})
    return ctx.root("imageTransferStatus", {"state": t["state"], "imageId": t["imageId"], "size": t["size"],
                                            "received": t["received"], "sha256": t["sha256"]})


@handler("GET", IMAGE_TRANSFER, "attributes", 6, "read_image_transfer_status")
def read_status(ctx: Ctx, _: ET.Element | None) -> Outcome:
    return Outcome(200, _status(ctx))


@handler("POST", IMAGE_TRANSFER, "methods", 1, "image_transfer_initiate")
def initiate(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "imageTransferInitiate")
    image, version = X.req(el, "imageId"), X.req(el, "version")
    size = X.req_int(el, "size", 1, MAX_IMAGE_BYTES)
    sha = X.req(el, "sha256").lower()
    block = X.req_int(el, "blockSize", 1) if el.get("blockSize") else 65536
    if block > ctx.fleet.vendor(ctx.gw).max_chunk_bytes:
        raise CommandError("malformed", f"blockSize {block} above this gateway's maximum", status=422)
    old = ctx.gw.firmware.get("transfer") or {}
    if old.get("imageId") == image and old.get("sha256") == sha and old.get("state") != "failed":
        return Outcome(200, _status(ctx))  # resume: keep what was received
    if old:
        ctx.drop_image = old["imageId"]
    if image == old.get("imageId"):
        ctx.drop_image = image
    ctx.gw.firmware["transfer"] = {"imageId": image, "version": version, "size": size, "sha256": sha,
                                   "blockSize": block, "received": 0, "state": "transferring"}
    ctx.gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"firmware transfer {image} ({size} bytes) initiated")
    return Outcome(200, _status(ctx))


def _transfer(ctx: Ctx, image: str) -> dict[str, Any]:
    t: dict[str, Any] = ctx.gw.firmware.get("transfer") or {}
    if t.get("imageId") != image:
        raise CommandError("rejected", f"no transfer of image {image} was initiated", status=409)
    return t


@handler("POST", IMAGE_TRANSFER, "methods", 2, "image_block_transfer")
def block(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "imageBlock")
    t = _transfer(ctx, X.req(el, "imageId"))
    offset, length = X.req_int(el, "offset", 0), X.req_int(el, "length", 1)
    try:
        data = base64.b64decode((el.text or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CommandError("malformed", "block is not base64", status=422) from None
    if len(data) != length or hashlib.sha256(data).hexdigest() != X.req(el, "sha256").lower():
        raise CommandError("malformed", "block length or sha256 does not match", status=422)
    if offset + length > t["size"]:
        raise CommandError("malformed", "block extends beyond the image size", status=422)
    if t["state"] not in ("transferring", "transferred"):
        raise CommandError("rejected", f"transfer is {t['state']}", status=409)
    received = t["received"]
    if offset > received:
        raise CommandError("offset_mismatch", f"block at {offset} leaves a gap after {received}", received=received)
    if offset + length > received:  # new bytes (a block already held is accepted without change)
        ctx.chunks.append((t["imageId"], received, data[received - offset:]))
        t["received"] = offset + length
        if t["received"] == t["size"]:
            t["state"] = "transferred"
            ctx.gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"firmware transfer {t['imageId']} complete")
    return Outcome(200, _status(ctx))


@handler("POST", IMAGE_TRANSFER, "methods", 3, "image_verify")
def verify(ctx: Ctx, body: ET.Element | None) -> Outcome:
    t = _transfer(ctx, X.req(expect(body, "imageVerify"), "imageId"))
    if t["state"] not in ("transferred", "verified", "failed"):
        raise CommandError("rejected", f"image {t['imageId']} is not complete ({t['received']}/{t['size']})",
                           status=409)
    gw, fleet = ctx.gw, ctx.fleet

    async def later() -> tuple[int, ET.Element]:
        await asyncio.sleep(fleet.settings.async_delay_s)
        data = b"".join(chunk for _, chunk in fleet.store.chunks(gw.gateway_id, t["imageId"]))
        try:
            if hashlib.sha256(data).hexdigest() != t["sha256"]:
                raise FirmwareError("firmware_verification_failed", "whole-image sha256 does not match")
            if gw.fault("firmware_verification_failure") is not None:
                raise FirmwareError("firmware_verification_failed", "manufacturer signature does not verify")
            image = verify_image(data, fleet.vendor(gw), fleet.creds.validator())
            if image.version != t["version"]:
                raise FirmwareError("firmware_verification_failed",
                                    f"image is version {image.version}, not {t['version']}")
        except FirmwareError as err:
            t["state"] = "failed"
            entry = gw.log("system", LEVEL_ERROR, OUTCOME_FAILURE,
                           f"firmware {t['imageId']} verification failed: {err.detail}")
            fleet.raise_event(gw, "firmware_verification_failed", 3, entry.text, record=entry)
            raise CommandError(err.reason, err.detail, status=501 if err.reason == "unsupported" else None) from None
        t["state"] = "verified"
        gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"firmware {t['imageId']} verified, signed by {image.signer}")
        return 200, X.element("imageVerified", {"gateway": gw.gateway_id, "imageId": t["imageId"],
                                                "version": image.version, "signer": image.signer})

    return Outcome(202, None, later=later)


@handler("POST", IMAGE_TRANSFER, "methods", 4, "activate_firmware")
def activate(ctx: Ctx, body: ET.Element | None) -> Outcome:
    el = expect(body, "imageActivate")
    image, version = X.req(el, "imageId"), X.req(el, "version")
    gw, fleet = ctx.gw, ctx.fleet
    previous = gw.firmware["active"]
    if version == previous:
        return Outcome(200, ctx.root("firmwareActivated", {"version": version, "previousVersion": previous}))
    t = gw.firmware.get("transfer") or {}
    if t.get("imageId") != image or t.get("state") != "verified" or t.get("version") != version:
        raise CommandError("rejected", f"image {image} {version} is not verified", status=409)

    async def later() -> tuple[int, ET.Element]:
        fails = gw.fault("firmware_verification_failure") is not None
        if not fails:
            gw.firmware.update(active=version, fallback=previous, transfer=None)
            gw.persist(fleet.store, drop_image=image)
        await fleet.restart(gw, f"firmware activation {version}")
        if fails:
            entry = gw.log("system", LEVEL_ERROR, OUTCOME_FAILURE,
                           f"firmware {version} failed its boot check, fell back to {previous}")
            fleet.raise_event(gw, "firmware_verification_failed", 3, entry.text, record=entry)
            raise CommandError("firmware_activation_failed", f"activation of {version} failed",
                               fallbackVersion=previous)
        gw.log("calibration", LEVEL_INFO, OUTCOME_SUCCESS, f"firmware {previous} -> {version}")
        gw.log("system", LEVEL_INFO, OUTCOME_SUCCESS, f"firmware {version} active")
        return 200, X.element("firmwareActivated", {"gateway": gw.gateway_id, "version": version,
                                                    "previousVersion": previous})

    return Outcome(202, None, later=later, close=True)
