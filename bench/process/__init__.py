"""The process benchmark (``bench/process_bench.py``), in parts:

- ``procs``: child processes of the bench, their RSS (``Sampler``) and CPU time (``CpuClock``);
- ``stack``: embedded PostgreSQL, the Temporal dev server, settings, databases and clients;
- ``scenarios``: a tenant with its simulated fleet, worker and head-end (``Scenario``) and the
  measured phases: rollout, Temporal floor, commissioning;
- ``report``: the Markdown table and the machine description;
- ``run``: the phases in order, as ``process_bench.py`` asks for them.

A package, not ``bench/*.py`` modules, so ``make bench`` does not run its parts.
"""
