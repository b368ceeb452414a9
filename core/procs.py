"""Child-process helpers shared by the supervisor and the embedded servers."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` so the child gets ``sig`` when the supervisor dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None

    def _set() -> None:
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return _set


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_M_MMAP_THRESHOLD = -3


def pin_mmap_threshold(nbytes: int = 128 * 1024) -> bool:
    """Fix glibc's mmap threshold at ``nbytes`` (its initial value) for this process. glibc raises
    the threshold each time an mmapped block is freed, after which large blocks come from the heap
    and reuse pages that are already resident. For the head-end that turns every idle session's
    256 KB TLS read buffer (uvloop), of which a few KB are ever touched, into resident memory once
    the first connection has closed: 51 instead of 39 KB per idle session at 10,000 (docs/
    benchmarks.md, head-end). Same as ``MALLOC_MMAP_THRESHOLD_``; True when set (glibc only)."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, nbytes))


def trim_heap() -> bool:
    """Hand glibc's free heap pages back to the kernel (``malloc_trim(0)``: every arena, also pages
    in the middle of a heap). Memory freed by Python and by the Temporal SDK's Rust threads stays
    resident otherwise, spread over one arena per allocating thread. True when called (glibc)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def _glibc() -> ctypes.CDLL | None:
    """This process's C library when it is glibc (mallopt and malloc_trim are glibc's)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018 - musl has neither
    except (OSError, AttributeError):
        return None
    return libc
