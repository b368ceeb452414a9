"""Gateway-record lookups for admission are coalesced: a storm of reconnecting gateways costs a
few statements, not one per gateway, and every caller still gets its own gateway's record."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from headend.lookup import RecordLoader
from tests.headend.conftest import GATEWAYS, UNKNOWN_GATEWAY, HeTenant

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, ExecutionContext


async def test_concurrent_lookups_share_statements_and_answer_each_caller(he_tenant: HeTenant) -> None:
    engine = he_tenant.ctx.sessions.kw["bind"]
    statements: list[str] = []

    def count(conn: Connection, cursor: Any, statement: str, params: Any, context: ExecutionContext | None,
              executemany: bool) -> None:
        if "gateway" in statement.lower():
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        loader = RecordLoader(he_tenant.ctx.sessions, asyncio.Semaphore(2), gather_s=0.02)
        asked = [*GATEWAYS * 10, UNKNOWN_GATEWAY, "EXXX0000000000"]
        records = await asyncio.gather(*(loader.get(g) for g in asked))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert 1 <= len(statements) <= 2, statements  # 62 lookups
    alone = RecordLoader(he_tenant.ctx.sessions, asyncio.Semaphore(1), gather_s=0)
    for gid, record in zip(asked, records, strict=True):
        if gid in GATEWAYS:
            assert record is not None and record.gateway_id == gid and record.state == "in_operation"
            assert record == await alone.get(gid)  # the same record as a lookup of its own
        else:
            assert record is None
    assert any(r is not None and r.tls_fingerprints for r in records)


async def test_a_lone_lookup_is_answered_and_a_caller_giving_up_does_not_break_others(he_tenant: HeTenant) -> None:
    loader = RecordLoader(he_tenant.ctx.sessions, asyncio.Semaphore(1), gather_s=0.05)
    waiting = asyncio.ensure_future(loader.get(GATEWAYS[0]))
    other = asyncio.ensure_future(loader.get(GATEWAYS[0]))
    await asyncio.sleep(0)
    waiting.cancel()
    record = await other
    assert record is not None and record.gateway_id == GATEWAYS[0]
    assert (await loader.get(GATEWAYS[1])) is not None


def test_enc_certificate_cache_is_bounded_and_keeps_the_recent_ones(he_tenant: HeTenant) -> None:
    from headend.endpoints import ENC_CACHE_MAX, TenantEndpoint

    ep = TenantEndpoint.__new__(TenantEndpoint)
    ep.enc_certs = {}
    cert = he_tenant.pki.gateway(GATEWAYS[0]).enc.cert
    for i in range(ENC_CACHE_MAX + 10):
        ep.remember_enc(f"G{i}", cert)
    assert len(ep.enc_certs) == ENC_CACHE_MAX and "G9" not in ep.enc_certs and "G10" in ep.enc_certs
    ep.remember_enc("G10", cert)  # used again: now the most recent, so G11 goes first
    ep.remember_enc("new", cert)
    assert "G10" in ep.enc_certs and "G11" not in ep.enc_certs and list(ep.enc_certs)[-2:] == ["G10", "new"]
