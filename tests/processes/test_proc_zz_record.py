"""Writes the replay fixtures (see tests/replay.py). Named to run last among the process tests;
skipped unless GRIDGATE_RECORD_HISTORIES=1."""

from __future__ import annotations

import os

import pytest

from tests.replay import record_session_histories


@pytest.mark.skipif(os.environ.get("GRIDGATE_RECORD_HISTORIES") != "1", reason="recording not requested")
async def test_record_histories(dbs, temporal_clients) -> None:  # type: ignore[no-untyped-def]
    await record_session_histories(dbs, temporal_clients)
