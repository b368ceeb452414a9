"""Head-end configuration from the environment (prefix ``GRIDGATE_HEADEND_``), documented in
docs/operations.md (## Head-end). Wire-level meaning of the values: docs/protocol.md."""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HeadendSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDGATE_HEADEND_", env_file=None, extra="ignore")

    # Listeners: management connections (head-end = HTTP client) and inbound connections
    # (Notify, events; head-end = HTTP server). Port 0 picks a free port (tests).
    host: str = "127.0.0.1"
    port: int = 8443
    inbound_port: int = 8444
    # What this node writes into x-ContactURI; default https://<host>:<inbound_port>/gwa/notify.
    contact_uri: str | None = None
    metrics_port: int = 9464  # Prometheus /metrics of the head-end process; 0 disables
    node_id: str = Field(default_factory=lambda: socket.gethostname().split(".")[0].lower() or "node")

    # Tenant choice by SNI: <tenant>.<sni_suffix>; without SNI the default tenant (or the only one).
    sni_suffix: str = "gwa.gridgate.test"
    default_tenant: str | None = None
    tenant_poll_s: float = 5.0

    # Wake-up
    wakeup_port: int = 9700  # UDP port when a gateway's wake-up address names none
    wakeup_byteorder: Literal["big", "little"] = "big"
    wakeup_retry_s: float = 10.0  # between wake-ups of one gateway while waiting for it
    connect_timeout_s: float = 60.0  # default wait for a woken gateway's connection

    # Throttling (per tenant and per network segment); 0 = unlimited
    tenant_max_sessions: int = 2000
    segment_max_sessions: int = 200
    tenant_wakeups_per_s: float = 200.0
    segment_wakeups_per_s: float = 50.0

    # Protocol limits and timeouts
    response_timeout_s: float = 20.0
    handshake_timeout_s: float = 10.0
    idle_timeout_s: float = 600.0  # close idle management connections; 0 = never
    max_body_bytes: int = 4 * 1024 * 1024
    firmware_block_bytes: int = 64 * 1024
    firmware_dir: str | None = None  # where firmware images are read from (default <var>/firmware)

    # Gateway records (state, wake-up address, segment, certificate fingerprints) are cached this
    # long for wake-ups and admissions: a change in master data takes effect within it.
    record_cache_s: float = 30.0
    db_concurrency: int = 8  # concurrent lookups per process (below the engine's pool size)
    lookup_gather_s: float = 0.02  # a gateway lookup waits this long for others to share its query

    # Communication history is written in batches.
    history_flush_s: float = 0.5
    # A node whose heartbeat is older than this no longer counts as holding connections.
    node_stale_s: float = 30.0
    heartbeat_s: float = 10.0

    log_level: str = "info"

    def contact(self, host: str, port: int) -> str:
        return self.contact_uri or f"https://{host}:{port}/gwa/notify"
