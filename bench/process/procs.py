"""Child processes of the process bench, and what they cost: peak RSS and CPU seconds (psutil)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def mb(n: int) -> float:
    return round(n / 2**20, 1)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def spawn(name: str, args: list[str], env: dict[str, str], logdir: Path) -> Child:
    from core.procs import die_with_parent

    path = logdir / f"{name}.log"
    with path.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=die_with_parent(signal.SIGTERM))
    return Child(name, proc, path)


def check_alive(children: dict[str, Child], when: str = "") -> None:
    """SystemExit with the end of its log when one of ``children`` (by label) has exited; ``when``
    goes after "exited (code)", e.g. " during the run"."""
    for label, child in children.items():
        if child.proc.poll() is not None:
            raise SystemExit(f"{label} exited ({child.proc.returncode}){when}:\n{tail(child.log)}")


def gridgate_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gridgate", *args]


def cpu_s(pid: int, with_children: bool = False) -> float:
    """CPU seconds of a process (with ``with_children``: also its live and reaped children)."""
    try:
        p = psutil.Process(pid)
        t = p.cpu_times()
        total: float = t.user + t.system
        if with_children:
            total += t.children_user + t.children_system
            for c in p.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    ct = c.cpu_times()
                    total += ct.user + ct.system
        return total
    except psutil.Error:
        return 0.0


class Sampler:
    """Peak RSS of named processes, sampled every ``interval`` seconds from a thread."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.last: dict[str, int] = {}
        # RSS every ``series_every`` seconds per process (where memory grows during a run)
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.series_every = 15.0
        self.peak_at: dict[str, float] = {}  # seconds after reset() when the peak was sampled
        self._series_t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.peak[name] = 0

    def forget(self, name: str) -> None:
        self.pids.pop(name, None)

    def reset(self, names: tuple[str, ...]) -> None:
        """Start peaks and series afresh (a measured run begins)."""
        self._series_t0 = time.monotonic()
        for k in names:
            self.peak[k] = 0
            self.series[k] = []

    def peaks_mb(self, names: tuple[str, ...]) -> dict[str, float]:
        return {k: mb(self.peak.get(k, 0)) for k in names}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for name, pid in list(self.pids.items()):
                with contextlib.suppress(psutil.Error):
                    rss = psutil.Process(pid).memory_info().rss
                    self.last[name] = rss
                    t = time.monotonic() - self._series_t0
                    if rss > self.peak.get(name, 0):
                        self.peak[name] = rss
                        self.peak_at[name] = round(t, 1)
                    series = self.series.setdefault(name, [])
                    if not series or t - series[-1][0] >= self.series_every:
                        series.append((round(t, 1), mb(rss)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _machine_cpu_s() -> float:
    st = psutil.cpu_times()
    return float(st.user + st.system + st.nice + st.irq + st.softirq)


@dataclass
class CpuClock:
    """CPU seconds per process between ``start`` and ``stop``, and everything else on the machine.

    ``procs``: name -> (pid, also its children)."""

    procs: dict[str, tuple[int, bool]] = field(default_factory=dict)
    t0: dict[str, float] = field(default_factory=dict)
    sys0: float = 0.0
    wall0: float = 0.0
    load0: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def start(self, procs: dict[str, tuple[int, bool]]) -> None:
        self.procs = procs
        self.t0 = {n: cpu_s(pid, ch) for n, (pid, ch) in procs.items()}
        self.sys0 = _machine_cpu_s()
        self.wall0 = time.perf_counter()
        self.load0 = os.getloadavg()

    def stop(self) -> dict[str, Any]:
        used = {n: round(cpu_s(pid, ch) - self.t0[n], 1) for n, (pid, ch) in self.procs.items()}
        machine = _machine_cpu_s() - self.sys0
        wall = time.perf_counter() - self.wall0
        ours = sum(used.values())
        return {"cpu_s": used, "machine_cpu_s": round(machine, 1), "others_cpu_s": round(max(0.0, machine - ours), 1),
                "wall_s": round(wall, 1), "cores": psutil.cpu_count(),
                "load_before": [round(x, 2) for x in self.load0], "load_after": [round(x, 2) for x in os.getloadavg()]}
