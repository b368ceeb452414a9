"""What an activity may use: the resources of the one tenant its worker serves."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings
from core.db import Databases
from domain.tenancy.service import TenantContext


@dataclass(frozen=True, kw_only=True)
class TenantRuntime:
    settings: Settings
    dbs: Databases
    tenant: TenantContext
