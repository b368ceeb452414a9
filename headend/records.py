"""The gateway records (state, wake-up address, segment, TLS fingerprints) one node works with, for
admission and wake-up: briefly cached (``record_cache_s``), so a burst of wake-ups and the
admissions that follow cost one query per gateway, not three; loaded through one coalescing
:class:`~headend.lookup.RecordLoader` per tenant under a bound on concurrent queries."""

from __future__ import annotations

import asyncio
import time

from headend.config import HeadendSettings
from headend.endpoints import TenantEndpoint
from headend.lookup import GatewayRecord, RecordLoader

MAX_CACHED = 200_000  # beyond this the cache starts over (a full sweep would cost more than the misses)


class GatewayRecords:
    def __init__(self, settings: HeadendSettings) -> None:
        self.settings = settings
        self._cache: dict[tuple[str, str], tuple[float, GatewayRecord]] = {}
        # Bounded database concurrency for lookups: a burst of thousands of wake-ups queues here
        # instead of timing out on the connection pool; lookups are coalesced per tenant.
        self._db_slots = asyncio.Semaphore(settings.db_concurrency)
        self._loaders: dict[str, RecordLoader] = {}

    async def get(self, ep: TenantEndpoint, gateway_id: str) -> GatewayRecord | None:
        """The gateway's record in ``ep``'s master data; None when it has none."""
        key = (ep.name, gateway_id)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        loader = self._loaders.get(ep.name)
        if loader is None or loader.sessions is not ep.context.sessions:
            loader = self._loaders[ep.name] = RecordLoader(ep.context.sessions, self._db_slots,
                                                          gather_s=self.settings.lookup_gather_s)
        record = await loader.get(gateway_id)
        if record is None:
            self._cache.pop(key, None)
            return None
        if len(self._cache) > MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (now + self.settings.record_cache_s, record)
        return record

    def forget(self, tenant: str, gateway_id: str) -> None:
        """Drop the cached record: the next admission or wake-up reads the store again."""
        self._cache.pop((tenant, gateway_id), None)
