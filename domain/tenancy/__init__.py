"""Tenant registry (control database) and the creation of a tenant's isolated resources."""
