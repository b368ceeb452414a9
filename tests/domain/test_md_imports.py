"""CSV imports: the whole file is validated first, errors come per line and column, nothing is
stored unless everything is right, and the same file twice changes nothing."""

from __future__ import annotations

import base64
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from domain.audit.models import AuditEntry
from domain.devices.models import Gateway, InitialCertificate, Meter
from domain.devices.service import get_gateway, meter_mk0
from domain.filters import count
from domain.imports.errors import ImportRejected
from domain.imports.export import export_csv
from domain.imports.service import run_import
from domain.secrets import SecretBox
from tests.conftest import TenantFactory
from tests.domain.conftest import gateway_id, meter_id, serial

GW_HEADER = "device_id,device_type,firmware_version,network_segment,state\n"


def _file(text: str, encoding: str = "utf-8") -> io.BytesIO:
    return io.BytesIO(text.encode(encoding))


async def _audit_count(session: AsyncSession, object_id: str) -> int:
    return int(await session.scalar(select(func.count()).select_from(AuditEntry)
                                    .where(AuditEntry.object_id == object_id)) or 0)


async def test_import_then_reimport_changes_nothing(session: AsyncSession, box: SecretBox) -> None:
    seg = f"I{serial()}"
    ids = [gateway_id(flag) for flag in ("EMH", "THE", "PPC")]
    types = ["emh-casa", "theben-conexa-3.0", "ppc-smgw"]
    text = GW_HEADER + "".join(f"{i},{t},2.0.{n},{seg},in_operation\n" for n, (i, t) in enumerate(zip(ids, types,
                                                                                                       strict=True)))
    first = await run_import(session, "gateways", _file(text), box=box)
    assert (first.rows, first.created, first.updated, first.unchanged) == (3, 3, 0, 0)
    audits = await _audit_count(session, ids[0])
    again = await run_import(session, "gateways", _file(text), box=box)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert await _audit_count(session, ids[0]) == audits

    changed = text.replace("2.0.0", "2.1.0")
    result = await run_import(session, "gateways", _file(changed), box=box)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    update = await session.scalar(select(AuditEntry).where(AuditEntry.object_id == ids[0],
                                                           AuditEntry.action == "update"))
    assert update is not None and update.changes == {"firmware_version": {"old": "2.0.0", "new": "2.1.0"}}
    assert await count(session, "gateway", f"segment = {seg} and firmware >= 2.1") == 1


async def test_one_bad_row_rejects_the_file_and_every_error_is_reported(session: AsyncSession, box: SecretBox) -> None:
    good = gateway_id()
    text = (GW_HEADER
            + f"{good},emh-casa,2.0,A1,in_stock\n"
            + "EEMH01,emh-casa,x,A 1,bogus\n"
            + f"{meter_id()},emh-casa,,,\n"
            + f"{gateway_id()},iskra-mt631,,,\n"
            + f"{gateway_id()},nope,,,\n"
            + f"{gateway_id('THE')},emh-casa,,,\n"
            + f"{good},emh-casa,2.0,A1,in_stock\n"
            + "only,three,fields\n")
    with pytest.raises(ImportRejected) as caught:
        await run_import(session, "gateways", _file(text), box=box)
    got = {(e.line, e.column, e.code) for e in caught.value.errors}
    assert {(3, "device_id", "invalid_device_id"), (3, "firmware_version", "invalid_firmware_version"),
            (3, "network_segment", "invalid_segment"), (3, "state", "invalid_state"),
            (4, "device_id", "invalid_gateway_id"), (5, "device_type", "device_type_mismatch"),
            (6, "device_type", "unknown_device_type"), (7, "device_type", "device_type_mismatch"),
            (9, None, "wrong_field_count")} <= got
    assert caught.value.status_code == 400 and caught.value.details["error_count"] == len(got)
    assert await session.scalar(select(Gateway.id).where(Gateway.device_id == good)) is None

    # Cross-row problems are found once the rows are valid: the duplicate of line 2.
    dup = GW_HEADER + f"{good},emh-casa,2.0,A1,in_stock\n{good},emh-casa,2.0,A1,in_stock\n"
    with pytest.raises(ImportRejected) as caught:
        await run_import(session, "gateways", _file(dup), box=box)
    assert [(e.line, e.code) for e in caught.value.errors] == [(3, "duplicate_row")]


@pytest.mark.parametrize(("content", "code", "line"), [
    (b"device_id,device_type,colour\n", "unknown_column", 1),
    (b"device_type,firmware_version\nemh-casa,1\n", "missing_column", 1),
    (b"device_id,device_type,device_id\n", "duplicate_column", 1),
    (b"", "empty_file", 1),
    (b"device_id,device_type\n", "no_rows", 2),
    (GW_HEADER.encode() + "EEMH0100000001,emh-casa,1.0,Köln,\n".encode("latin-1"), "invalid_encoding", 2),
    (b'device_id,device_type\n"EEMH0100000001,emh-casa\n', "malformed_csv", 2),
    (b'device_id,device_type\n"EEMH0100000001"x,emh-casa\n', "malformed_csv", 2),
    (b"device_id,device_type\nEEMH0100000001\x00,emh-casa\n", "invalid_device_id", 2),
])
async def test_malformed_files_are_rejected_with_a_reason(session: AsyncSession, box: SecretBox, content: bytes,
                                                          code: str, line: int) -> None:
    with pytest.raises(ImportRejected) as caught:
        await run_import(session, "gateways", io.BytesIO(content), box=box)
    assert (caught.value.errors[0].code, caught.value.errors[0].line) == (code, line)


async def test_semicolons_bom_and_windows_line_ends_are_read(session: AsyncSession, box: SecretBox) -> None:
    gw = gateway_id()
    text = "\ufeffdevice_id;device_type;wan_address\r\n" + f"{gw};emh-casa;\"10.0.0.1;4059\"\r\n"
    result = await run_import(session, "gateways", _file(text), box=box)
    assert result.created == 1
    assert (await get_gateway(session, gw)).wan_address == "10.0.0.1;4059"


async def test_state_changes_in_a_file_follow_the_lifecycle(session: AsyncSession, box: SecretBox) -> None:
    gw = gateway_id()
    await run_import(session, "gateways", _file(GW_HEADER + f"{gw},emh-casa,,,in_stock\n"), box=box)
    with pytest.raises(ImportRejected) as caught:
        await run_import(session, "gateways", _file(GW_HEADER + f"{gw},emh-casa,,,in_operation\n"), box=box)
    assert caught.value.errors[0].code == "illegal_state_transition"
    ok = await run_import(session, "gateways", _file(GW_HEADER + f"{gw},emh-casa,,,pre_personalized\n"), box=box)
    assert ok.updated == 1 and (await get_gateway(session, gw)).state == "pre_personalized"
    # An empty state keeps the stored one.
    await run_import(session, "gateways", _file(GW_HEADER + f"{gw},emh-casa,,,\n"), box=box)
    assert (await get_gateway(session, gw)).state == "pre_personalized"


async def test_assignment_files_end_old_and_start_new_periods_without_overlap(session: AsyncSession,
                                                                               box: SecretBox) -> None:
    g1, g2, meter = gateway_id(), gateway_id(), meter_id()
    await run_import(session, "gateways", _file(GW_HEADER + f"{g1},emh-casa,,,\n{g2},emh-casa,,,\n"), box=box)
    await run_import(session, "meters", _file(f"device_id,device_type\n{meter},emh-ebzd\n"), box=box)
    header = "kind,subject,target,valid_from,valid_to\n"
    first = header + f"meter-gateway,{meter},{g1},2024-01-01,\n"
    assert (await run_import(session, "assignments", _file(first), box=box)).created == 1
    clash = header + f"meter-gateway,{meter},{g2},2024-06-01,\nmeter-gateway,{meter},{g2},2024-05-01,2024-07-01\n"
    with pytest.raises(ImportRejected) as caught:
        await run_import(session, "assignments", _file(clash), box=box)
    assert {(e.line, e.code) for e in caught.value.errors} == {(2, "assignment_overlap"), (3, "assignment_overlap")}
    swap = header + f"meter-gateway,{meter},{g1},2024-01-01,2024-06-01\nmeter-gateway,{meter},{g2},2024-06-01,\n"
    result = await run_import(session, "assignments", _file(swap), box=box)
    assert (result.created, result.updated) == (1, 1)
    assert (await run_import(session, "assignments", _file(swap), box=box)).unchanged == 2
    assert await count(session, "meter", f"device_id = {meter} and gateway = {g2}") == 1
    assert await count(session, "meter", f"device_id = {meter} and gateway = {g1}",
                       at=datetime(2024, 3, 1, tzinfo=UTC)) == 1
    unknown = header + f"meter-gateway,{meter_id()},{g1},2025-01-01,\nbogus-kind,a,b,2025-01-01,\n"
    with pytest.raises(ImportRejected) as caught:
        await run_import(session, "assignments", _file(unknown), box=box)
    assert {(e.line, e.column, e.code) for e in caught.value.errors} == {(3, "kind", "unknown_assignment_kind")}


def _certificate(device: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{device.lower()}.sm")])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + timedelta(days=3650)).sign(key, hashes.SHA256()))


async def test_delivery_file_brings_gateways_certificates_and_encrypted_master_keys(session: AsyncSession,
                                                                                    box: SecretBox) -> None:
    gw, gw2, meter = gateway_id("PPC"), gateway_id("PPC"), meter_id("ISK")
    cert = _certificate(gw)
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    der_b64 = base64.b64encode(_certificate(gw2).public_bytes(serialization.Encoding.DER)).decode()
    mk0 = "00112233445566778899aabbccddeeff"
    text = ("device_id,device_type,firmware_version,initial_certificate,mk0\n"
            f"{gw},ppc-smgw,4.2.1,\"{pem}\",\n{gw2},ppc-smgw,4.2.1,{der_b64},\n{meter},iskra-mt631,,,{mk0}\n")
    result = await run_import(session, "delivery", _file(text), box=box)
    assert (result.created, result.updated) == (3, 0)
    assert (await get_gateway(session, gw)).state == "in_stock"
    stored = await session.scalar(select(InitialCertificate).join(Gateway).where(Gateway.device_id == gw))
    assert stored is not None and stored.der == cert.public_bytes(serialization.Encoding.DER)
    row = await session.scalar(select(Meter).where(Meter.device_id == meter))
    assert row is not None and row.mk0_ciphertext is not None and bytes.fromhex(mk0) not in row.mk0_ciphertext
    assert await meter_mk0(session, box, meter) == bytes.fromhex(mk0)
    assert (await run_import(session, "delivery", _file(text), box=box)).unchanged == 3
    audit = await session.scalar(select(AuditEntry).where(AuditEntry.object_id == meter))
    assert audit is not None and mk0 not in str(audit.changes) and audit.changes["mk0"]["new"].startswith("hmac:")

    bad = ("device_id,device_type,initial_certificate,mk0\n"
           f"{gateway_id('PPC')},ppc-smgw,not-a-certificate,\n{gateway_id('PPC')},ppc-smgw,,{mk0}\n"
           f"{meter_id('ISK')},iskra-mt631,{der_b64},zz\n")
    with pytest.raises(ImportRejected) as caught:
        await run_import(session, "delivery", _file(bad), box=box)
    assert {(e.line, e.column, e.code) for e in caught.value.errors} == {
        (2, "initial_certificate", "invalid_certificate"), (3, "mk0", "unexpected_value"), (4, "mk0", "invalid_mk0")}


async def test_dry_run_counts_exactly_and_stores_nothing(session: AsyncSession, box: SecretBox) -> None:
    gw = gateway_id()
    result = await run_import(session, "gateways", _file(GW_HEADER + f"{gw},emh-casa,,,\n"), box=box, dry_run=True)
    assert result.created == 1 and result.import_id is None
    assert await session.scalar(select(Gateway.id).where(Gateway.device_id == gw)) is None


async def test_an_export_reimports_without_changes(session: AsyncSession, box: SecretBox) -> None:
    seg = f"X{serial()}"
    text = GW_HEADER + "".join(f"{gateway_id()},emh-casa,2.{n},{seg},in_stock\n" for n in range(5))
    await run_import(session, "gateways", _file(text), box=box)
    exported = "".join([c async for c in export_csv(session, "gateway", f"segment = {seg}")])
    assert exported.count("\n") == 6 and exported.startswith("device_id,device_type,firmware_version,wan_address")
    again = await run_import(session, "gateways", _file(exported), box=box)
    assert (again.rows, again.unchanged) == (5, 5)


async def test_large_assignment_files_take_the_bulk_path_and_keep_every_constraint(
        tenant_factory: TenantFactory, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import text

    from domain.imports import assignments
    from domain.records import AssignmentOverlap
    from domain.secrets import SecretBox
    from domain.topology.service import assign

    monkeypatch.setattr(assignments, "BULK_MIN_ROWS", 3)
    tenant = await tenant_factory("mdbulk")
    box = SecretBox(settings, tenant.name)
    gws, meters = [gateway_id() for _ in range(4)], [meter_id() for _ in range(4)]
    async with tenant.sessions() as session, session.begin():
        await run_import(session, "gateways", _file(GW_HEADER + "".join(f"{g},emh-casa,,,\n" for g in gws)), box=box)
        meter_file = _file("device_id,device_type\n" + "".join(f"{m},emh-ebzd\n" for m in meters))
        await run_import(session, "meters", meter_file, box=box)
        rows = "".join(f"meter-gateway,{m},{g},2024-01-01,\n" for m, g in zip(meters, gws, strict=True))
        result = await run_import(session, "assignments", _file("kind,subject,target,valid_from,valid_to\n" + rows),
                                  box=box)
        assert result.created == 4
        names = set((await session.scalars(text(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'assign_meter_gateway'::regclass"))).all())
        assert {"ex_assign_meter_gateway_overlap", "fk_assign_meter_gateway_meter_id_meters",
                "fk_assign_meter_gateway_gateway_id_gateways"} <= names
    async with tenant.sessions() as session, session.begin():
        with pytest.raises(AssignmentOverlap):
            await assign(session, "meter-gateway", meters[0], gws[1], valid_from=datetime(2025, 1, 1, tzinfo=UTC))


async def test_imports_record_creations_exactly_as_the_api_does(session: AsyncSession, box: SecretBox) -> None:
    from domain.devices.schemas import GatewayCreate, MeterCreate
    from domain.devices.service import create_gateway, create_meter
    from domain.locations.models import ConnectionPoint
    from domain.locations.schemas import ConnectionPointCreate
    from domain.locations.service import create as create_location
    from domain.topology.service import assign
    from tests.domain.conftest import cp_code

    async def changes(object_type: str, object_id: str) -> dict[str, Any]:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.object_type == object_type,
                                                              AuditEntry.object_id == object_id)
                                     .order_by(AuditEntry.id.desc()).limit(1))
        assert entry is not None
        return entry.changes

    api_gw, file_gw = gateway_id(), gateway_id()
    await create_gateway(session, GatewayCreate(device_id=api_gw, device_type="emh-casa", firmware_version="2.1",
                                                network_segment="A1"))
    await run_import(session, "gateways", _file(GW_HEADER + f"{file_gw},emh-casa,2.1,A1,\n"), box=box)
    assert await changes("gateway", api_gw) == await changes("gateway", file_gw)

    api_m, file_m = meter_id(), meter_id()
    await create_meter(session, box, MeterCreate(device_id=api_m, device_type="emh-ebzd",
                                                 calibration_date=date(2024, 1, 1), mk0=SecretStr("00" * 16)))
    await run_import(session, "meters", _file(f"device_id,device_type,calibration_date,mk0\n{file_m},emh-ebzd,"
                                              f"2024-01-01,{'00' * 16}\n"), box=box)
    api_changes, file_changes = await changes("meter", api_m), await changes("meter", file_m)
    assert api_changes.keys() == file_changes.keys() and api_changes["mk0"]["new"].startswith("hmac:")
    assert {k: v for k, v in api_changes.items() if k != "mk0"} == {k: v for k, v in file_changes.items() if k != "mk0"}

    api_cp, file_cp = cp_code(), cp_code()
    await create_location(session, ConnectionPoint, ConnectionPointCreate(code=api_cp, city="Köln", postcode="50667"))
    await run_import(session, "connection-points", _file(f"code,city,postcode\n{file_cp},Köln,50667\n"), box=box)
    assert await changes("connection_point", api_cp) == await changes("connection_point", file_cp)

    made = await assign(session, "gateway-connection-point", api_gw, api_cp, valid_from=datetime(2024, 1, 1))
    assignment_file = _file(f"kind,subject,target,valid_from,valid_to\n"
                            f"gateway-connection-point,{file_gw},{file_cp},2024-01-01,\n")
    await run_import(session, "assignments", assignment_file, box=box)
    file_made = await session.scalar(select(AuditEntry).where(AuditEntry.object_type == "gateway-connection-point",
                                                              AuditEntry.action == "assign")
                                     .order_by(AuditEntry.id.desc()).limit(1))
    api_entry = await changes("gateway-connection-point", str(made.id))
    assert file_made is not None
    assert {k: v for k, v in api_entry.items() if k not in ("gateway", "connection_point")} == {
        k: v for k, v in file_made.changes.items() if k not in ("gateway", "connection_point")}
    assert file_made.changes["gateway"] == {"old": None, "new": file_gw}

    mirrored = gateway_id()
    await run_import(session, "gateways", _file(GW_HEADER + f"{mirrored},emh-casa,,,\n"), box=box,
                     source_system="SAP")
    assert (await changes("gateway", mirrored))["source_system"] == {"old": None, "new": "SAP"}
