"""Imports every model module so both metadatas are complete (for Alembic and for tests).

A new model module must be imported here.
"""

from domain.audit import models as audit_models  # noqa: F401
from domain.base import ControlBase, TenantBase
from domain.catalogue import models as catalogue_models  # noqa: F401
from domain.certificates import models as certificates_models  # noqa: F401
from domain.communications import models as communications_models  # noqa: F401
from domain.devices import models as devices_models  # noqa: F401
from domain.filters import models as filters_models  # noqa: F401
from domain.iam import models as iam_models  # noqa: F401
from domain.imports import models as imports_models  # noqa: F401
from domain.locations import models as locations_models  # noqa: F401
from domain.logbooks import models as logbooks_models  # noqa: F401
from domain.meterdata import export_models as meterdata_export_models  # noqa: F401
from domain.meterdata import models as meterdata_models  # noqa: F401
from domain.meterdata.vee import models as vee_models  # noqa: F401
from domain.partners import models as partners_models  # noqa: F401
from domain.processes import models as processes_models  # noqa: F401
from domain.readouts import models as readouts_models  # noqa: F401
from domain.tariffs import models as tariffs_models  # noqa: F401
from domain.tenancy import models as tenancy_models  # noqa: F401
from domain.topology import models as topology_models  # noqa: F401

__all__ = ["ControlBase", "TenantBase"]
