"""MDM receiver configuration from the environment (prefix ``GRIDGATE_MDM_``), documented in
docs/operations.md (## MDM receiver)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class MdmSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDGATE_MDM_", env_file=None, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8445  # 0 picks a free port (tests)
    # An EMT identity by SNI: <market partner ID>.<tenant>.<sni_suffix>
    sni_suffix: str = "mdm.gridgate.test"
    # Where gateways reach the receiver (the meter_data endpoint written into communication
    # profiles); default https://<mp>.<tenant>.<sni_suffix>:<port>/mdm/info-report.
    public_port: int | None = None
    path: str = "/mdm/info-report"
    tenant_poll_s: float = 5.0  # new tenants and changed EMT identities are picked up this often
    max_body_bytes: int = 4 * 1024 * 1024  # the CMS container as received; larger: 413 oversize
    max_payload_bytes: int = 16 * 1024 * 1024  # the XML after decompression; larger: 400 malformed
    metrics_port: int = 9465  # Prometheus /metrics of the receiver; 0 disables

    # Group commit: a tenant's deliveries are stored together, one transaction per batch. A batch
    # starts with the first delivery waiting and takes what arrives within batch_wait_s, at most
    # batch_max deliveries; the next batch collects while one is being committed.
    batch_max: int = 64
    batch_wait_s: float = 0.005
    open_workers: int = 4  # threads opening CMS containers and parsing XML (crypto off the event loop)

    handshake_timeout_s: float = 10.0
    request_timeout_s: float = 30.0  # from the first byte of a request to its last
    idle_timeout_s: float = 60.0  # a connection without an outstanding request is closed after this
    stop_timeout_s: float = 15.0  # SIGTERM: how long deliveries received before are given to be stored

    log_level: str | None = None  # default: GRIDGATE_LOG_LEVEL

    def endpoint(self, tenant: str, mp_id: str) -> str:
        """The meter_data endpoint of EMT ``mp_id`` of ``tenant``."""
        return f"https://{self.sni_name(tenant, mp_id)}:{self.public_port or self.port}{self.path}"

    def sni_name(self, tenant: str, mp_id: str) -> str:
        """The host name (SNI) that selects EMT ``mp_id`` of ``tenant``."""
        return f"{mp_id}.{tenant}.{self.sni_suffix}".lower()
