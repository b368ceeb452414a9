"""``pin_mmap_threshold``: after a large block is freed, the next one is still mmapped (glibc would
otherwise raise its threshold and serve it from resident heap pages). Checked in fresh
interpreters, with and without the pin, through glibc's own counters. ``trim_heap``: free pages
inside the heap go back to the kernel (RSS of a fresh interpreter, with and without)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import ctypes, sys
from core.procs import pin_mmap_threshold
libc = ctypes.CDLL(None)
class MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MI
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
pinned = pin_mmap_threshold() if sys.argv[1] == "pin" else None
first = libc.malloc(256 * 1024)
libc.free(first)  # unpinned glibc now raises its threshold above 256 KB
before = libc.mallinfo2().hblks
second = libc.malloc(256 * 1024)
print(pinned, libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
@pytest.mark.parametrize(("mode", "expected"), [("pin", "True 1"), ("none", "None 0")])
def test_large_blocks_stay_mmapped_once_pinned(mode: str, expected: str) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == expected


TRIM_PROBE = """
import ctypes, os, sys
from core.procs import trim_heap
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
blocks = [libc.malloc(1024) for _ in range(40_000)]  # ~40 MB from the heap, below the mmap threshold
for b in blocks:
    ctypes.memset(b, 1, 1024)
for b in blocks[:-1]:  # the last block keeps the heap's top: free's own trimming cannot return the rest
    libc.free(b)
before = rss()
trimmed = trim_heap() if sys.argv[1] == "trim" else None
print(trimmed, (before - rss()) // (1024 * 1024))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_trim_returns_free_pages_inside_the_heap() -> None:
    def run(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", TRIM_PROBE, mode], capture_output=True, text=True, check=True,
                             timeout=60, cwd=Path(__file__).resolve().parents[2])
        called, freed_mb = out.stdout.split()
        return called, int(freed_mb)

    called, freed_mb = run("none")
    assert called == "None" and freed_mb <= 1
    called, freed_mb = run("trim")
    assert called == "True" and freed_mb >= 30
