"""Deterministic orchestration only: no I/O, no database, no clock but ``workflow.now()``.

Every operational process of the GWA is one workflow type here; activities do the work.
"""
