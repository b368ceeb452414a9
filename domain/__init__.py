"""The tenant's world in the domain's own words: models, repositories, services, schemas per area.

``ControlBase`` models live in the control database (tenant registry, users, memberships);
``TenantBase`` models live in each tenant's own database.
"""
