"""The few master-data and certificate-store reads the head-end needs, in one place: the gateway
record for admission and wake-up, its stored certificates, a meter's MK0 for pairing."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.certificates.models import Certificate
from domain.devices.models import Gateway, Meter


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    gateway_id: str
    state: str
    wakeup_address: str | None
    network_segment: str | None
    tls_fingerprints: frozenset[str]  # active TLS certificates in the store (empty: none imported)


async def gateway_records(session: AsyncSession, gateway_ids: list[str]) -> dict[str, GatewayRecord]:
    """One statement for many gateways: each with the fingerprints of its active TLS certificates
    (gateways not in master data are absent from the result)."""
    fps = (select(func.array_agg(Certificate.fingerprint))
           .where(Certificate.gateway_id == Gateway.id, Certificate.owner == "gateway", Certificate.usage == "tls",
                  Certificate.status == "active")
           .correlate(Gateway).scalar_subquery())
    rows = (await session.execute(
        select(Gateway.device_id, Gateway.state, Gateway.wakeup_address, Gateway.network_segment, fps)
        .where(Gateway.device_id.in_(gateway_ids)))).all()
    return {r[0]: GatewayRecord(r[0], r[1], r[2], r[3], frozenset(r[4] or ())) for r in rows}


class RecordLoader:
    """Gateway-record lookups of one tenant, coalesced: the IDs asked for while a query runs go
    into the next one, up to ``max_batch`` per statement. A reconnect storm of thousands of
    gateways then costs a few queries instead of one per gateway. A query waits ``gather_s``
    for company first (a few ms against a TLS handshake of several). ``slots`` bounds the
    queries of all tenants together (the connection pool)."""

    def __init__(self, sessions: Callable[[], Any], slots: asyncio.Semaphore, *, gather_s: float,
                 max_batch: int = 500) -> None:
        self.sessions = sessions
        self._slots = slots
        self._gather_s = gather_s
        self._max = max_batch
        self._waiting: dict[str, asyncio.Future[GatewayRecord | None]] = {}
        self._drain_task: asyncio.Task[None] | None = None

    async def get(self, gateway_id: str) -> GatewayRecord | None:
        fut = self._waiting.get(gateway_id)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._waiting[gateway_id] = fut
            if self._drain_task is None:
                self._drain_task = loop.create_task(self._drain())
        # shielded: one caller giving up must not cancel the lookup others wait for
        return await asyncio.shield(fut)

    async def _drain(self) -> None:
        try:
            while self._waiting:
                if self._gather_s > 0:
                    await asyncio.sleep(self._gather_s)
                async with self._slots:  # while waiting for a slot, more IDs queue up
                    batch = dict(itertools.islice(self._waiting.items(), self._max))
                    for gid in batch:
                        del self._waiting[gid]
                    try:
                        async with self.sessions() as session:
                            found = await gateway_records(session, list(batch))
                    except Exception as err:  # every waiter of this batch sees the failure
                        for fut in batch.values():
                            if not fut.done():
                                fut.set_exception(err)
                                fut.exception()  # retrieved here: a waiter that gave up logs nothing
                        continue
                for gid, fut in batch.items():
                    if not fut.done():
                        fut.set_result(found.get(gid))
        finally:
            self._drain_task = None


async def gateway_enc_certificate(session: AsyncSession, gateway_id: str) -> x509.Certificate | None:
    der = await session.scalar(
        select(Certificate.der).join(Gateway, Gateway.id == Certificate.gateway_id)
        .where(Gateway.device_id == gateway_id, Certificate.owner == "gateway", Certificate.usage == "enc",
               Certificate.status == "active", Certificate.revocation != "revoked")
        .order_by(Certificate.not_after.desc()).limit(1))
    return x509.load_der_x509_certificate(der) if der else None


async def meter_lmn_type(session: AsyncSession, meter_id: str) -> str | None:
    return await session.scalar(select(Meter.lmn_type).where(Meter.device_id == meter_id))
