"""One Temporal connection per process, handed out as a client bound to one tenant's namespace,
with that tenant's payload encryption (``gridgate.codec``)."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from core.codec import data_converter
from core.config import Settings, get_settings
from core.temporal import connect


class TemporalClients:
    def __init__(self, address: str, settings: Settings | None = None) -> None:
        self.address = address
        # Every process of an installation derives the same tenant keys from GRIDGATE_MASTER_KEY.
        self._master_key = (settings or get_settings()).resolved_secret("master_key")
        self._root: Client | None = None
        self._by_namespace: dict[str, Client] = {}
        self._lock = asyncio.Lock()

    async def root(self) -> Client:
        """A client on the ``default`` namespace, for administrative calls (namespaces, health)."""
        async with self._lock:
            if self._root is None:
                self._root = await connect(self.address, "default")
            return self._root

    async def for_namespace(self, namespace: str) -> Client:
        client = self._by_namespace.get(namespace)
        if client is None:
            root = await self.root()
            client = Client(root.service_client, namespace=namespace,
                            data_converter=data_converter(self._master_key, namespace))
            self._by_namespace[namespace] = client
        return client

    async def healthy(self) -> bool:
        try:
            root = await asyncio.wait_for(self.root(), 3)
            return bool(await asyncio.wait_for(root.service_client.check_health(), 3))
        except Exception:
            async with self._lock:
                self._root = None
                self._by_namespace.clear()
            return False
