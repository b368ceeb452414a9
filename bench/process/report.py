"""The process bench's report: the machine it ran on, the JSON checkpoints and the Markdown table
(``docs/benchmarks.md``, ## Processes)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import psutil

from bench.common.host import cpu_model


def machine() -> dict[str, Any]:
    return {"date": dt.date.today().isoformat(), "cpus": os.cpu_count(), "cpu_model": cpu_model() or "?",
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "python": sys.version.split()[0],
            "load_at_start": [round(x, 2) for x in os.getloadavg()]}


def checkpoint(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """The report so far (``--json``), so a long run that is stopped keeps what it measured."""
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


def at(*keys: str) -> Callable[[dict[str, Any]], object]:
    """A cell of the rollout table: the value under ``keys`` (nested) of a rollout."""

    def value(r: dict[str, Any]) -> object:
        v: Any = r
        for k in keys:
            v = v[k]
        return v

    return value


def table(report: dict[str, Any]) -> str:
    lines = ["| measurement | " + " | ".join(str(r["gateways"]) for r in report["rollout"]) + " |",
             "|---|" + "---:|" * len(report["rollout"])]

    def row(label: str, fn: Callable[[dict[str, Any]], object]) -> None:
        vals = []
        for r in report["rollout"]:
            try:
                vals.append(str(fn(r)))
            except (KeyError, TypeError, ZeroDivisionError):
                vals.append("-")
        lines.append(f"| {label} | " + " | ".join(vals) + " |")

    lines.insert(0, f"Temporal store: {report.get('temporal_mode')}; worker: gridgate worker as committed\n")
    row("rollout: outcome", lambda r: f"{r['state']}, {r['counts'].get('succeeded', 0)} ok, "
                                      f"{r['counts'].get('failed', 0)} failed")
    row("rollout: wall time (s)", lambda r: r["wall_s"])
    row("rollout: gateways per second", lambda r: r["per_s"])
    row("rollout: activities per gateway workflow (1 / 2 meters)",
        lambda r: " / ".join(str(r["activities_by_meter_count"][k]) for k in sorted(r["activities_by_meter_count"])))
    row("rollout: peak RSS worker (MB)", lambda r: r["peak_rss_mb"]["worker"])
    row("rollout: peak RSS head-end (MB)", lambda r: r["peak_rss_mb"]["headend"])
    row("rollout: peak RSS simulator (MB)", lambda r: r["peak_rss_mb"]["simulator"])
    for proc in ("worker", "headend", "simulator", "temporal", "postgres", "bench driver"):
        row(f"rollout: CPU s {proc}", at("cpu_s", proc))
    row("rollout: CPU s other sessions on the machine", lambda r: r["others_cpu_s"])
    row("rollout: CPU ms per gateway (gridgate + Temporal + PG + simulator)",
        lambda r: round(1000 * sum(r["cpu_s"].values()) / r["gateways"], 1))
    row("rollout: commands applied not as expected / answered from record",
        lambda r: f"{r['applied_not_as_expected']} / {r['repeated_answered_from_record']}")
    row("floor: wall time (s)", lambda r: f"{r['floor']['wall_s']}" + ("" if r["floor"].get("complete", True)
                                                                      else f" (stopped at {r['floor']['children']})"))
    row("floor: workflows per second", lambda r: r["floor"]["per_s"])
    row("floor: peak RSS floor worker (MB)", lambda r: r["floor"]["peak_rss_mb"]["floor worker"])
    for proc in ("floor worker", "temporal", "postgres"):
        row(f"floor: CPU s {proc}", at("floor", "cpu_s", proc))
    row("floor: CPU s other sessions on the machine", lambda r: r["floor"]["others_cpu_s"])
    row("rollout / floor (target <= 1.5)", lambda r: round(r["wall_s"] / r["floor"]["wall_s"], 2))
    row("load average before -> after rollout", lambda r: f"{r['load_before'][0]} -> {r['load_after'][0]}")
    row("setup: provision / TAF orders (s)", lambda r: f"{r['setup_s']['provision']} / {r['setup_s']['taf_orders']}")
    rs = report["rollout"]
    if not rs:  # commissioning only (--gateways ""): no empty rollout table
        del lines[1:]
    if len(rs) >= 2:
        a, b = rs[0]["peak_rss_mb"]["worker"], rs[-1]["peak_rss_mb"]["worker"]
        lines.append("")
        lines.append(f"worker peak RSS {rs[-1]['gateways']} vs {rs[0]['gateways']}: {b} / {a} MB = "
                     f"{b / a:.2f} (target <= 1.20)")
    c = report.get("commissioning")
    if c:
        lines += commissioning_table(c)
    return "\n".join(lines)


def commissioning_table(c: dict[str, Any]) -> list[str]:
    """The lines of the commissioning table (after an empty one)."""
    title = f"commissioning of {c['gateways']} ({c['offline_pct']} % offline, {c['flaky_pct']} % flaky)"
    lines = ["", f"| {title} | |",
             "|---|---:|",
             f"| state | {c['state']} |",
             f"| wall time (s) | {c['wall_s']} |",
             f"| gateways per second | {c['per_s']} |",
             f"| succeeded | {c['counts'].get('succeeded', 0)} |",
             f"| failed by reason | {', '.join(f'{k} {v}' for k, v in sorted(c['failures'].items())) or '-'} |"]
    for reason, example in sorted(c.get("failure_sample", {}).items()):
        lines.append(f"| example {reason} | {example[:200].replace('|', '/')} |")
    for kind, outcomes in sorted(c["outcomes_by_fault"].items()):
        lines.append(f"| gateways {kind} | {', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))} |")
    lines += [f"| commands applied (simulator counters, all gateways) | {c['applied_total']} |",
              f"| (gateway, command kind) applied more often than the workflow sends it | "
              f"{c['applied_more_than_once']} |",
              f"| succeeded gateways whose applied commands differ from the expected set | "
              f"{c['succeeded_not_exactly_expected']} |",
              f"| repeated commands answered from the gateway's record | {c['repeated_answered_from_record']} |",
              f"| peak RSS worker / head-end / simulator (MB) | {c['peak_rss_mb']['worker']} / "
              f"{c['peak_rss_mb']['headend']} / {c['peak_rss_mb']['simulator']} |",
              "| CPU s worker / head-end / simulator / temporal / postgres | "
              + " / ".join(str(c["cpu_s"][p]) for p in ("worker", "headend", "simulator", "temporal", "postgres"))
              + " |",
              f"| CPU s other sessions on the machine | {c['others_cpu_s']} |",
              f"| load average before -> after | {c['load_before'][0]} -> {c['load_after'][0]} |"]
    return lines
