"""Built-in roles and the permissions they grant. Routes declare permissions, never roles."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    TENANT_READ = "tenant:read"  # read master data, processes, history, audit
    MASTERDATA_WRITE = "masterdata:write"
    PROCESS_WRITE = "process:write"  # start, pause, resume, cancel processes
    CERTIFICATES_WRITE = "certificates:write"
    MEMBERS_MANAGE = "members:manage"
    EMT_READOUT = "emt:readout"  # a market participant's machine client: its own readouts only
    METERDATA_READ = "meterdata:read"  # meter data of the MDM (an EMT user: its own series only)
    METERDATA_WRITE = "meterdata:write"  # correct values, re-run validation, export
    PLATFORM_ADMIN = "platform:admin"  # create tenants, manage users across tenants


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    EMT = "emt"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        {
            Permission.TENANT_READ,
            Permission.MASTERDATA_WRITE,
            Permission.PROCESS_WRITE,
            Permission.CERTIFICATES_WRITE,
            Permission.MEMBERS_MANAGE,
            Permission.METERDATA_READ,
            Permission.METERDATA_WRITE,
        }
    ),
    Role.OPERATOR: frozenset({Permission.TENANT_READ, Permission.MASTERDATA_WRITE, Permission.PROCESS_WRITE,
                              Permission.METERDATA_READ, Permission.METERDATA_WRITE}),
    Role.AUDITOR: frozenset({Permission.TENANT_READ, Permission.METERDATA_READ}),
    Role.EMT: frozenset({Permission.EMT_READOUT, Permission.METERDATA_READ}),
}

# The platform superadmin holds every tenant permission in every tenant, plus platform administration.
SUPERADMIN_PERMISSIONS: frozenset[Permission] = frozenset(Permission)


def permissions_for(role: str | None, *, superadmin: bool) -> frozenset[Permission]:
    if superadmin:
        return SUPERADMIN_PERMISSIONS
    if role is None:
        return frozenset()
    return ROLE_PERMISSIONS.get(Role(role), frozenset())
