"""What an activity may use: the resources of the one tenant its worker serves."""

from __future__ import annotations

from dataclasses import dataclass

from domain.tenancy.service import TenantContext
from gridgate.config import Settings
from gridgate.db import Databases


@dataclass(frozen=True)
class TenantRuntime:
    settings: Settings
    dbs: Databases
    tenant: TenantContext
