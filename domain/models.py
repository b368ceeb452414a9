"""Imports every model module so both metadatas are complete (for Alembic and for tests).

A new model module must be imported here.
"""

from domain.audit import models as audit_models  # noqa: F401
from domain.base import ControlBase, TenantBase
from domain.iam import models as iam_models  # noqa: F401
from domain.tenancy import models as tenancy_models  # noqa: F401

__all__ = ["ControlBase", "TenantBase"]
