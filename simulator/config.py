"""Simulator configuration from the environment (prefix ``GRIDGATE_SIMULATOR_``), documented in
docs/operations.md (## Simulator). CLI options of ``gridgate simulate run`` override these."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDGATE_SIMULATOR_", env_file=None, extra="ignore")

    gateways: int = Field(default=50, ge=0, le=100_000)
    first_index: int = Field(default=0, ge=0)  # gateway i of the fleet is domain.ids.demo_gateway_id(first_index + i)
    headend: str = "127.0.0.1:8443"  # host:port of the head-end's gateway TLS listener
    pki_dir: Path | None = None  # test SM-PKI; default <GRIDGATE_VAR_DIR>/testpki
    state_dir: Path | None = None  # default <GRIDGATE_VAR_DIR>/simulator
    udp_host: str = "127.0.0.1"  # one wake-up socket for the whole fleet; the recipient routes
    udp_port: int = 9700
    wakeup_mode: Literal["shared", "per_gateway"] = "shared"  # per_gateway: one ephemeral UDP port each
    control_host: str = "127.0.0.1"
    control_port: int = 9701
    offline_pct: float = Field(default=0.0, ge=0, le=100)
    flaky_pct: float = Field(default=0.0, ge=0, le=100)
    seed: int = 0  # meter values, clock drift and fleet-level fault selection derive from it
    # A gateway created (first start, no state yet) has its meters paired already, as commissioning
    # leaves a gateway in operation: the demo fleet, whose master data says in_operation.
    meters_paired: bool = False
    wakeup_window_s: int = 300  # |gateway clock - packet timestamp| allowed
    wakeup_byteorder: Literal["big", "little"] = "big"
    cyclic_contact_s: float = 3600.0  # 0 disables gateway-initiated cyclic contact
    idle_timeout_s: float = 300.0  # close a management connection idle this long (0: never)
    connect_timeout_s: float = 10.0
    slow_latency_s: float = 3.0  # default latency of the `slow` fault
    drift_fault_s: float = 120.0  # default jump of the `clock_drift` fault: beyond the 9 s limit, inside the
    # 300 s wake-up window (a larger jump makes the gateway refuse wake-ups as stale, as a real one would)
    max_clock_offset_s: float = 9.0  # |offset| beyond this: clock "not valid" (1 % of a 15-min period)
    async_delay_s: float = 0.2  # how long pairing, image verification and final readout "take"
    restart_delay_s: float = 1.0  # how long a reboot or firmware activation keeps the gateway away
    inbound_port: int = 8444  # head-end inbound port (Notify/events) when no URI names one
    sni: str = "demo.gwa.gridgate.test"  # SNI sent to the GWA unless its communication profile names a host
    max_body_bytes: int = 4 * 1024 * 1024
    tls_group: str = "brainpoolP256r1"
    contact_concurrency: int = 200  # TLS handshakes the simulator runs at once
    # Meter data deliveries to EMTs (docs/protocol.md 14, docs/simulator.md "Deliveries")
    deliveries: bool = True  # gateways deliver the data of their evaluation profiles
    time_scale: float = Field(default=1.0, ge=1.0, le=1e9)  # catch-up speed: simulated s per real s
    backfill_days: float = Field(default=0.0, ge=0, le=366)  # on start, deliver the last D days first
    delivery_concurrency: int = Field(default=50, ge=1)  # delivery connections open at once
    delivery_jitter_s: float = Field(default=300.0, ge=0)  # spread of a period's deliveries over the fleet
    delivery_tick_s: float = Field(default=1.0, gt=0)  # how often due periods and retries are looked at
    delivery_build_budget: int = Field(default=200, ge=1)  # deliveries built per tick at most
    delivery_retry_first_s: float = 30.0  # back-off after a failed attempt, doubling ...
    delivery_retry_max_s: float = 3600.0  # ... up to this ...
    delivery_give_up_s: float = 7 * 86400.0  # ... for this long after the delivery was built
    delivery_timeout_s: float = 30.0  # answer of the EMT's receiver
    delivery_default_port: int = 443  # port of an endpoint URI that names none
    log_level: str = "info"

    def resolved_pki_dir(self, var_dir: Path) -> Path:
        return (self.pki_dir or var_dir / "testpki").resolve()

    def resolved_state_dir(self, var_dir: Path) -> Path:
        return (self.state_dir or var_dir / "simulator").resolve()

    @property
    def headend_address(self) -> tuple[str, int]:
        host, _, port = self.headend.rpartition(":")
        return host or "127.0.0.1", int(port)
