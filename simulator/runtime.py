"""What the process holds for one gateway beside its state document: its open connection, timers,
tasks and outbox. A few hundred bytes per gateway; TLS contexts and keys exist only while connecting."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from simulator.state import GatewayState
from simulator.vendors import Vendor


@dataclass(eq=False, slots=True)
class OutboxItem:
    id: int
    kind: str  # notify | event
    command_id: str | None
    xml: bytes
    first_at: float


@dataclass(eq=False, slots=True)
class PendingDelivery:
    """A meter data delivery not yet acknowledged by its EMT (the XML stays in the store)."""

    id: int
    profile: str
    recipient: str
    uri: str
    cid: str
    created: float
    next_at: float
    attempts: int = 0


@dataclass(eq=False, slots=True)
class GatewayRuntime:
    state: GatewayState
    vendor: Vendor
    management: asyncio.StreamWriter | None = None
    connecting: bool = False
    connected_since: float | None = None
    cyclic: asyncio.TimerHandle | None = None
    delivering: asyncio.Task[None] | None = None
    last_read_dropped: bool = False
    last_reject_log: float = 0.0
    outbox: list[OutboxItem] = field(default_factory=list)
    wakeup_port: int | None = None
    emt_pending: list[PendingDelivery] = field(default_factory=list)  # deliveries to EMTs, oldest first
    emt_sending: asyncio.Task[None] | None = None
    last_untrusted_log: float = 0.0
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task of this gateway: the fleet cancels it when it stops."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
