"""Operational processes of the GWA (commissioning, rollouts, readouts, ...) as seen by the
tenant's database: the process, its frozen target set and each gateway's outcome. The processes
themselves run as Temporal workflows (``workflows/``); this package is their bookkeeping."""
