"""Master data API under ``/api/v1/tenants/{tenant}/...``: devices, locations, catalogue, market
partners, assignments, filters, imports and exports. Reads need tenant:read, writes
masterdata:write."""

from fastapi import APIRouter

from api.routers.masterdata import catalogue, devices, locations, topology

router = APIRouter()
for _module in (devices, locations, catalogue, topology):
    router.include_router(_module.router)
