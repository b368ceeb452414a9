"""Identity and access: users, roles, per-tenant memberships and the permissions of each role."""
