"""Determinism guard: every committed history replays against the current workflow code.

A workflow change that would make running workflows fail on replay (reordered commands, new
activities inserted before old ones without versioning) fails here. Re-record deliberately when a
change is meant to be incompatible with old histories and no such workflows can be running
(tests/replay.py says how)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.codec import data_converter
from tests.replay import FIXTURE_KEY, HISTORIES
from workflows.registry import WORKFLOWS, workflow_runner

FILES = sorted(HISTORIES.glob("*.json"))


def test_histories_are_committed_for_the_process_workflows() -> None:
    types = {f.name.split(".")[0] for f in FILES}
    assert {"MassProcess", "TimeSync", "LogbookReadout", "CrlRefresh"} <= types, types


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
async def test_committed_history_replays(path: Path) -> None:
    recorded = json.loads(path.read_text())
    history = WorkflowHistory.from_json(recorded["workflow_id"], recorded["history"])
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=workflow_runner(),
                        data_converter=data_converter(FIXTURE_KEY.encode(), recorded["namespace"]))
    await replayer.replay_workflow(history)
