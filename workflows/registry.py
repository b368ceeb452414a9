"""Every workflow type the worker serves. A new workflow must be listed here."""

from __future__ import annotations

from workflows.selfcheck import TenantSelfCheckWorkflow

WORKFLOWS: list[type] = [TenantSelfCheckWorkflow]
