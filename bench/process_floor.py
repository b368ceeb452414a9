"""The Temporal floor of a mass process (used by ``bench/process_bench.py``).

The same shape as gridgate's mass process (``workflows/mass.py``) with nothing inside: a parent
that keeps a sliding window of ``concurrency`` children, fetches targets in batches of up to 200
through an activity, starts a batch of children in one workflow task, counts their outcomes from
their ``done`` signals and continues as new after 1,000 starts; mirrors its state through an
activity when it starts and ends. Child *i* runs ``plan[i]`` activities one after another (the
number gridgate's workflow ran for that gateway) that do nothing, then signals the parent.

Run as its own process (so its RSS and CPU are its own)::

    python bench/process_floor.py --address 127.0.0.1:7233 --namespace NS --queue floor --plan plan.json

``plan.json`` is ``{"activities": [k0, k1, ...]}``, one entry per child. Worker options are those of
the gridgate worker (``worker.py``): default sandbox, ``max_concurrent_activities`` 200.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import signal
import sys
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

STARTS_PER_RUN = 1000
FETCH_BATCH = 200
TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@dataclass
class FloorInput:
    run_id: str
    total: int
    concurrency: int
    cursor: int = 0
    in_flight: dict[int, int] = field(default_factory=dict)
    done: int = 0
    runs: int = 0


@dataclass
class FetchInput:
    cursor: int
    limit: int
    total: int


@dataclass
class Item:
    seq: int
    activities: int


@dataclass
class ChildInput:
    parent: str
    seq: int
    activities: int


@dataclass
class Done:
    seq: int


_PLAN: list[int] = []


@activity.defn(name="floor_next")
async def floor_next(inp: FetchInput) -> list[Item]:
    end = min(inp.total, inp.cursor + inp.limit)
    return [Item(seq, _PLAN[seq % len(_PLAN)] if _PLAN else 1) for seq in range(inp.cursor, end)]


@activity.defn(name="floor_noop")
async def floor_noop(arg: str) -> str:
    return arg


async def _noop(arg: str) -> None:
    """One ``floor_noop`` activity from a workflow."""
    await workflow.execute_activity("floor_noop", arg, start_to_close_timeout=TIMEOUT, retry_policy=RETRY)


@workflow.defn(name="FloorChild")
class FloorChild:
    @workflow.run
    async def run(self, inp: ChildInput) -> None:
        for step in range(inp.activities):
            await _noop(f"{inp.seq}/{step}")
        await workflow.get_external_workflow_handle(inp.parent).signal("done", Done(inp.seq))


@workflow.defn(name="FloorParent")
class FloorParent:
    # As in workflows/mass.py: state set before any handler runs, since children in flight at
    # continue-as-new signal the new run before its first task.
    @workflow.init
    def __init__(self, inp: FloorInput) -> None:
        self.s: FloorInput = inp  # set before any signal handler runs
        self.exhausted = False
        self.starts = 0
        self.dirty = 0

    @workflow.signal(name="done")
    def done(self, d: Done) -> None:
        if self.s.in_flight.pop(d.seq, None) is not None:
            self.s.done += 1
            self.dirty += 1

    @workflow.query
    def progress(self) -> int:
        return self.s.done

    @workflow.run
    async def run(self, inp: FloorInput) -> int:
        s = self.s  # the same object @workflow.init received
        if s.runs == 0:
            await _noop("running")
        s.runs += 1
        while True:
            if not self.exhausted and len(s.in_flight) < s.concurrency:
                await self._start_more()
            if self.exhausted and not s.in_flight:
                break
            if self.starts >= STARTS_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(s)
            await workflow.wait_condition(functools.partial(self._woken, self.dirty))
        await _noop("completed")
        return s.done

    def _woken(self, seen: int) -> bool:
        """A child is done since ``seen`` was the count of done signals, or there is room for more."""
        s = self.s
        return self.dirty != seen or (not self.exhausted and len(s.in_flight) < s.concurrency)

    async def _start_more(self) -> None:
        s = self.s
        room = s.concurrency - len(s.in_flight)
        batch = await workflow.execute_activity("floor_next", FetchInput(s.cursor, min(room, FETCH_BATCH), s.total),
                                                result_type=list[Item], start_to_close_timeout=TIMEOUT,
                                                retry_policy=RETRY)
        if not batch:
            self.exhausted = True
            return
        parent = workflow.info().workflow_id
        starts = []
        for item in batch:
            s.in_flight[item.seq] = item.activities
            s.cursor = item.seq + 1
            starts.append(workflow.start_child_workflow(
                "FloorChild", ChildInput(parent, item.seq, item.activities), id=f"{s.run_id}/child/{item.seq}",
                parent_close_policy=ParentClosePolicy.ABANDON))
        for outcome in await asyncio.gather(*starts, return_exceptions=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, WorkflowAlreadyStartedError):
                raise outcome
        self.starts += len(starts)


async def _serve(args: argparse.Namespace) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    _PLAN.extend(json.loads(open(args.plan).read())["activities"])  # noqa: SIM115
    client = await Client.connect(args.address, namespace=args.namespace)
    worker = Worker(client, task_queue=args.queue, workflows=[FloorParent, FloorChild],
                    activities=[floor_next, floor_noop], max_concurrent_activities=200,
                    graceful_shutdown_timeout=timedelta(seconds=5))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        await stop.wait()


def main() -> None:
    if len(sys.argv) == 1:  # `make bench` runs every bench/*.py: this one is a helper of process_bench.py
        print("bench/process_floor.py: the floor worker of bench/process_bench.py; nothing to do without arguments")
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--queue", default="floor")
    p.add_argument("--plan", required=True)
    asyncio.run(_serve(p.parse_args()))


if __name__ == "__main__":
    # Imported by its module name, so the workflow sandbox can import the workflows again.
    import process_floor

    process_floor.main()
