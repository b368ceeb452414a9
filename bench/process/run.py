"""The phases of the process bench in order: commissioning, then per rollout size the rollout and
its Temporal floor, each on an empty Temporal store unless ``--shared-temporal``."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from bench.common.testpki import ensure_pki
from bench.process.procs import Sampler, log
from bench.process.report import checkpoint, machine
from bench.process.scenarios import commissioning, floor, rollout
from bench.process.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
# A new test PKI starts as a copy of another bench's (issuing 10,000 triples takes minutes).
OTHER_PKIS = ("headend-pki", "simulator-pki")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The report of the phases ``args`` (process_bench.py's options) ask for."""
    sizes = [int(x) for x in args.gateways.split(",") if x.strip()]
    pki_dir = Path(args.pki)
    pki = await asyncio.to_thread(ensure_pki, pki_dir, max([*sizes, args.commissioning, 1]), say=log, workers=2,
                                  copy_from=[pki_dir.parent / other for other in OTHER_PKIS])
    base = ROOT / "var" / "bench"
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="process-run-", dir=base))
    (work / "logs").mkdir()
    report: dict[str, Any] = {"machine": machine(), "concurrency": args.concurrency, "rollout": []}
    stack = Stack(work, args.temporal, args.max_wait_s,
                  dict(kv.split("=", 1) for kv in args.worker_env))
    report["temporal_mode"] = args.temporal
    report["worker_env"] = stack.worker_env
    sampler = Sampler()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    try:
        log(f"starting PostgreSQL and Temporal in {work}")
        await stack.start()
        if args.commissioning:
            c = await commissioning(stack, sampler, pki, args.commissioning, args)
            c.update(gateways=args.commissioning, offline_pct=args.offline_pct, flaky_pct=args.flaky_pct)
            report["commissioning"] = c
            log(f"commissioning: {c['state']} {c['counts']} in {c['wall_s']} s; failures {c['failures']}")
            checkpoint(args, report)
        for n in sizes:
            if not args.shared_temporal:
                await stack.fresh_temporal()
            r = await rollout(stack, sampler, pki, n, args)
            r["gateways"] = n
            log(f"rollout {n}: {r['state']} {r['counts']} in {r['wall_s']} s ({r['per_s']}/s), "
                f"peak RSS {r['peak_rss_mb']}, CPU {r['cpu_s']}")
            checkpoint(args, {**report, "rollout": [*report["rollout"], r]})
            if not args.skip_floor:
                from core.ids import demo_meter_count

                by_m = r["activities_by_meter_count"]
                plan = [by_m.get(demo_meter_count(i), max(by_m.values())) for i in range(n)]
                log(f"floor {n}: {sum(plan)} activities in {n} children")
                if not args.shared_temporal:
                    await stack.fresh_temporal()
                r["floor"] = await floor(stack, sampler, n, plan, args.concurrency)
                log(f"floor {n}: {r['floor']['wall_s']} s ({r['floor']['per_s']}/s), CPU {r['floor']['cpu_s']}")
            report["rollout"].append(r)
            checkpoint(args, report)
    finally:
        sampler.close()
        await stack.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report
