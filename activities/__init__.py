"""Thin, idempotent activities that call domain/, headend/ and pki/ for exactly one tenant.

A worker builds activity instances per tenant (``activities.registry.activities_for``), so an
activity can only reach the database and key material of the tenant whose namespace it runs in.
"""
