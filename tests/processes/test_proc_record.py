"""Writes the replay fixtures (see tests/replay.py). Marked ``record_histories``, so it runs after
every other test of the session (tests/conftest.py); skipped unless GRIDGATE_RECORD_HISTORIES=1."""

from __future__ import annotations

import os

import pytest

from core.db import Databases
from core.temporal_clients import TemporalClients
from tests.replay import record_session_histories


@pytest.mark.record_histories
@pytest.mark.skipif(os.environ.get("GRIDGATE_RECORD_HISTORIES") != "1", reason="recording not requested")
async def test_record_histories(dbs: Databases, temporal_clients: TemporalClients) -> None:
    await record_session_histories(dbs, temporal_clients)
