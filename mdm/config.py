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
    tenant_poll_s: float = 5.0
    max_body_bytes: int = 4 * 1024 * 1024

    def endpoint(self, tenant: str, mp_id: str) -> str:
        """The meter_data endpoint of EMT ``mp_id`` of ``tenant``."""
        return f"https://{mp_id}.{tenant}.{self.sni_suffix}:{self.public_port or self.port}{self.path}"
