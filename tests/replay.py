"""Committed workflow histories, replayed by tests/processes/test_proc_replay.py so that a code
change that breaks determinism fails the suite.

Recording (after a change of workflow code that is meant to change histories)::

    GRIDGATE_MASTER_KEY=gridgate-replay-fixtures-not-a-secret-0123456789 \\
    GRIDGATE_RECORD_HISTORIES=1 .venv/bin/pytest tests/processes

``tests/processes/test_proc_record.py`` does the writing. Its ``record_histories`` marker moves it
after every other test of the session, whatever the file order (``pytest_collection_modifyitems``
in tests/conftest.py), so it sees what they ran: one history per (workflow type, outcome) that ran
in the session's tenant namespaces goes to ``tests/data/histories/<Type>.<outcome>.json``, or
``<Type>.<outcome>.<tag>.json`` with ``GRIDGATE_RECORD_TAG=<tag>``. Record a new tag after adding a
``workflow.patched`` branch, and keep the older files: they are the histories of workflows started
before the patch, which must still replay, while the new ones cover the patched path. Payloads stay
encrypted as Temporal stores them, under the published fixture key above (not a secret: the data
is simulated), with the namespace the key was derived for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.db import Databases
    from core.temporal_clients import TemporalClients

HISTORIES = Path(__file__).parent / "data" / "histories"
FIXTURE_KEY = "gridgate-replay-fixtures-not-a-secret-0123456789"


async def record_session_histories(dbs: Databases, clients: TemporalClients) -> None:
    """Write the histories (see the module docstring); called by the ``record_histories`` test."""
    if os.environ.get("GRIDGATE_MASTER_KEY") != FIXTURE_KEY:
        raise RuntimeError(f"record with GRIDGATE_MASTER_KEY={FIXTURE_KEY} (see tests/replay.py)")
    from domain.tenancy.service import list_tenants

    async with dbs.control_sessions() as session:
        namespaces = [t.namespace for t in await list_tenants(session)]
    HISTORIES.mkdir(parents=True, exist_ok=True)
    seen: set[tuple[str, str]] = set()
    for namespace in namespaces:
        client = await clients.for_namespace(namespace)
        async for wf in client.list_workflows("ExecutionStatus != 'Running'"):
            outcome = wf.status.name.lower() if wf.status else "unknown"
            key = (wf.workflow_type, outcome)
            if key in seen or wf.workflow_type == "TenantSelfCheck":
                continue
            seen.add(key)
            history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
            tag = os.environ.get("GRIDGATE_RECORD_TAG")
            (HISTORIES / f"{wf.workflow_type}.{outcome}{'.' + tag if tag else ''}.json").write_text(json.dumps({
                "namespace": namespace, "workflow_id": wf.id,
                "history": json.loads(history.to_json()),
            }, indent=1))
