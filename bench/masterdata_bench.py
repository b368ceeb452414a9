"""Master data at fleet scale: import 100,000 gateways + 150,000 meters + connection points and
assignments from CSV, then a filtered page and a filtered count over that tenant, and the peak
memory of an import of 10,000 and of 100,000 rows.

Targets (issue 4, 2-core machine): import >= 20,000 rows/s, filtered page < 50 ms, count < 300 ms,
import memory independent of file size.

    .venv/bin/python bench/masterdata_bench.py [--gateways 100000] [--record]

Starts its own embedded PostgreSQL (or uses GRIDGATE_DATABASE_URL's server with a throw-away
database). ``--record`` writes the table into the "## Master data" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine  # noqa: E402

from bench.common.host import cpu_model  # noqa: E402
from core.config import Settings  # noqa: E402
from core.db import DRIVER, create_database, drop_database  # noqa: E402
from core.ids import DeviceId  # noqa: E402
from domain import listing, migrate  # noqa: E402
from domain.filters import count  # noqa: E402
from domain.imports.service import run_import  # noqa: E402
from domain.secrets import SecretBox  # noqa: E402

VENDORS = (("THE", "theben-conexa-3.0", ("2.0.3", "2.1.0")), ("EMH", "emh-casa", ("1.1.5", "2.0.9", "2.1.0")),
           ("PPC", "ppc-smgw", ("4.2.1", "5.0.0")))
STATES = ("in_operation",) * 17 + ("installed", "faulty", "deinstalled")
FILTERS = {
    "gateways: issue example": ("gateway", "type = gateway and manufacturer = EMH and firmware < 2.1 and "
                                           "state = in_operation and segment in (A12, A13)"),
    "gateways: grid area (assignment)": ("gateway", "grid_area = GA-07 and state = in_operation"),
    "meters: grid area + Eichfrist": ("meter", "grid_area = GA-07 and calibration_valid_until < 2029-01-01"),
}


def gateway_id(i: int) -> str:
    return str(DeviceId("E", VENDORS[i % 3][0], 2, 10_000_000 + i))


def meter_id(j: int) -> str:
    return str(DeviceId("1", "EMH" if j % 2 else "ISK", 6, 20_000_000 + j))


def write_files(folder: Path, n: int) -> dict[str, Path]:
    """CSV files of n gateways, n connection points, 1.5 n meters and their assignments."""
    files = {k: folder / f"{k}.csv" for k in ("connection-points", "gateways", "meters", "assignments")}
    meters = [(j, i) for i in range(n) for j in ((2 * i, 2 * i + 1) if i % 2 == 0 else (2 * i,))]
    with files["connection-points"].open("w") as f:
        f.write("code,street,house_number,postcode,city,grid_area\n")
        f.writelines(f"BCP-{i:07d},Hauptstraße,{i % 200 + 1},{10000 + i % 89999:05d},Stadt {i % 500},"
                     f"GA-{i % 50:02d}\n" for i in range(n))
    with files["gateways"].open("w") as f:
        f.write("device_id,device_type,firmware_version,network_segment,state\n")
        for i in range(n):
            _, dtype, versions = VENDORS[i % 3]
            f.write(f"{gateway_id(i)},{dtype},{versions[i // 3 % len(versions)]},A{10 + i % 40},"
                    f"{STATES[i % len(STATES)]}\n")
    with files["meters"].open("w") as f:
        f.write("device_id,device_type,firmware_version,calibration_date,calibration_valid_until,lmn_type,mk0\n")
        f.writelines(f"{meter_id(j)},{'emh-ebzd' if j % 2 else 'iskra-mt631'},1.{j % 7},2020-0{1 + j % 9}-01,"
                     f"{2026 + j % 8}-12-31,wired,{secrets.token_hex(16)}\n" for j, _ in meters)
    with files["assignments"].open("w") as f:
        f.write("kind,subject,target,valid_from,valid_to\n")
        f.writelines(f"gateway-connection-point,{gateway_id(i)},BCP-{i:07d},2024-01-01T00:00:00+01:00,\n"
                     for i in range(n))
        f.writelines(f"meter-gateway,{meter_id(j)},{gateway_id(i)},2024-01-01T00:00:00+01:00,\n" for j, i in meters)
    return files


def rows_of(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f) - 1


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) a PostgreSQL backend has used, from /proc (same machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def import_files(sessions: async_sessionmaker[AsyncSession], box: SecretBox, files: dict[str, Path]
                       ) -> list[tuple[str, int, float, float, float]]:
    """(kind, rows, wall seconds, database CPU seconds, Python CPU seconds) per file."""
    out = []
    for kind, path in files.items():
        async with sessions() as session, session.begin():
            pid = int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            db_cpu, py_cpu, started = backend_cpu(pid), time.process_time(), time.perf_counter()
            with path.open("rb") as stream:
                result = await run_import(session, kind, stream, file_name=path.name, box=box)
        wall = time.perf_counter() - started
        out.append((kind, result.rows, wall, backend_cpu(pid) - db_cpu, time.process_time() - py_cpu))
    async with sessions() as session, session.begin():
        await session.execute(text("ANALYZE"))
    return out


async def timed(fn: Callable[[], Awaitable[object]], runs: int = 15) -> float:
    """Median milliseconds of ``runs`` calls of ``fn`` after one warm-up call."""
    await fn()  # warm-up: plan caches, buffers
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def query_times(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, int, float, float, float]]:
    out = []
    async with sessions() as session:
        for label, (entity, expr) in FILTERS.items():
            matches = await count(session, entity, expr)
            page_ms = await timed(functools.partial(listing.page, session, entity, filter=expr, limit=50))
            _, after = await listing.page(session, entity, filter=expr, limit=50)
            for _ in range(5):  # a deeper page, continued by keyset
                _, after = await listing.page(session, entity, filter=expr, limit=50, after=after)
            deep_ms = await timed(functools.partial(listing.page, session, entity, filter=expr, limit=50, after=after))
            count_ms = await timed(functools.partial(count, session, entity, expr))
            out.append((label, matches, page_ms, deep_ms, count_ms))
    return out


def probe(url: str, file: Path) -> None:
    """Child process: import ``file`` and report the process's resident memory before and at peak
    during the import (sampled every 5 ms)."""
    import threading

    import psutil

    me = psutil.Process()
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], me.memory_info().rss)
            time.sleep(0.005)

    async def body() -> None:
        engine = create_async_engine(url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:  # connect first: the baseline includes the connection
            await session.execute(text("SELECT 1"))
        baseline = me.memory_info().rss
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        async with sessions() as session, session.begin():
            with file.open("rb") as stream:
                result = await run_import(session, "gateways", stream, file_name=file.name)
        done.set()
        sampler.join()
        await engine.dispose()
        print(json.dumps({"rows": result.rows, "baseline_mb": baseline / 2**20, "peak_mb": peak[0] / 2**20}))

    asyncio.run(body())


def memory_probe(url: str, folder: Path, rows: int, offset: int) -> dict[str, float]:
    path = folder / f"probe-{rows}.csv"
    with path.open("w") as f:
        f.write("device_id,device_type,firmware_version,network_segment,state\n")
        f.writelines(f"{DeviceId('E', 'EMH', 3, offset + i)!s},emh-casa,2.1.{i % 9},B{i % 30},in_operation\n"
                     for i in range(rows))
    done = subprocess.run([sys.executable, __file__, "--probe", url, str(path)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = cpu_model() or platform.processor() or platform.machine()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def record(markdown: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    existing = path.read_text() if path.exists() else "# Benchmarks\n"
    section = "## Master data\n\n" + markdown.strip() + "\n"
    start = existing.find("## Master data")
    if start < 0:
        updated = existing.rstrip() + "\n\n" + section
    else:
        end = existing.find("\n## ", start + 1)
        updated = existing[:start] + section + ("" if end < 0 else existing[end:])
    path.write_text(updated)


async def main(args: argparse.Namespace) -> None:
    server = None
    base = os.environ.get("GRIDGATE_DATABASE_URL")
    folder = Path(tempfile.mkdtemp(prefix="md-bench-"))
    if not base:
        from core.pg import EmbeddedPostgres
        from core.procs import free_port

        server = EmbeddedPostgres(folder / "pg", free_port())
        server.start()
        base = server.url
    load_before = os.getloadavg()
    url = make_url(base).set(drivername=DRIVER)
    db = f"md_bench_{secrets.token_hex(3)}"
    await create_database(url, db)
    tenant_url = url.set(database=db)
    try:
        await migrate.upgrade("tenant", tenant_url)
        engine = create_async_engine(tenant_url, pool_size=2)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        box = SecretBox(Settings(var_dir=folder), "bench")
        print(f"writing CSV files for {args.gateways:,} gateways ...", file=sys.stderr)
        files = write_files(folder, args.gateways)
        print("importing ...", file=sys.stderr)
        imports = await import_files(sessions, box, files)
        print("querying ...", file=sys.stderr)
        queries = await query_times(sessions)
        async with sessions() as session:
            server_version = (await session.execute(text("SHOW server_version"))).scalar_one()
        await engine.dispose()
        rendered = tenant_url.render_as_string(hide_password=False)
        memory = [(rows, memory_probe(rendered, folder, rows, 50_000_000 + rows)) for rows in (10_000, 100_000)]
        pg_version = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip() \
            if server is None else f"embedded {server_version}"
    finally:
        await drop_database(url, db)
        if server is not None:
            server.stop()

    load = f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
    total_rows = sum(i[1] for i in imports)
    total_s, total_db, total_py = (sum(i[2] for i in imports), sum(i[3] for i in imports),
                                   sum(i[4] for i in imports))
    lines = [f"Run {dt.date.today().isoformat()} on {machine()}, PostgreSQL {pg_version}; "
             f"`python bench/masterdata_bench.py --gateways {args.gateways}`; {load} (shared machine).", "",
             "| import | rows | wall s | rows/s (wall) | database CPU s | rows per database CPU-s | Python CPU s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {kind} | {rows:,} | {s:.1f} | {rows / s:,.0f} | {db:.1f} | {rows / db:,.0f} | {py:.1f} |"
              for kind, rows, s, db, py in imports]
    lines += [f"| **all files** | **{total_rows:,}** | **{total_s:.1f}** | **{total_rows / total_s:,.0f}** | "
              f"**{total_db:.1f}** | **{total_rows / total_db:,.0f}** | **{total_py:.1f}** |", "",
              "| filter (50 per page) | matches | first page ms | 6th page ms | count ms |",
              "|---|---:|---:|---:|---:|"]
    lines += [f"| `{FILTERS[label][1]}` | {m:,} | {p:.1f} | {d:.1f} | {c:.1f} |" for label, m, p, d, c in queries]
    lines += ["", "| gateway import, own process | RSS before MB | peak RSS during import MB | growth MB |",
              "|---|---:|---:|---:|"]
    lines += [f"| {m['rows']:,.0f} rows | {m['baseline_mb']:.0f} | {m['peak_mb']:.0f} | "
              f"{m['peak_mb'] - m['baseline_mb']:.0f} |" for _, m in memory]
    markdown = "\n".join(lines)
    print(markdown)
    if args.record:
        record(markdown + NOTES)


NOTES = """

Targets (issue 4): import >= 20,000 rows/s, filtered page < 50 ms, count < 300 ms, import memory
independent of file size. What the run imports: 100,000 connection points, 100,000 gateways,
150,000 meters each with an MK0 (AES-GCM encrypted on import), 250,000 assignments (every gateway
at its connection point, every meter at its gateway); every created row gets its audit entry in
the same statement, the assignment file takes the bulk path (exclusion and foreign key
constraints rebuilt once, docs/masterdata.md). "Database CPU" is the CPU time of the importing
PostgreSQL backend (from /proc): the machine is shared with other sessions' test runs, so wall
time also measures the neighbours; parsing runs in a thread beside the database and overlaps its
work. Queries run after `ANALYZE`, median of 15 after one warm-up; the 6th page continues by
keyset cursor. Peak memory: resident set of a process that imports a gateway file, sampled every
5 ms.
"""


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--probe":
        probe(sys.argv[2], Path(sys.argv[3]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=100_000)
    parser.add_argument("--record", action="store_true", help="write the results into docs/benchmarks.md")
    asyncio.run(main(parser.parse_args()))
