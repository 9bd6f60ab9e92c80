"""How the process allocates memory: one heap (the C library's malloc) that keeps what it frees.

Page faults are the expensive part of memory here: on the 2-core virtual machine of the benchmarks
each newly touched 4 KB page costs about 4 microseconds, and a run that hands freed memory back to
the system touches it again in the next step. So the run keeps freed memory for reuse instead of
returning it between steps. Measured on the 5,000,000-row benchmark, against handing memory back
after each step: 33.5-34.8 s instead of 37.6-38.9 s (system time 9.9-10.2 s instead of 12.5-13.3 s),
peak 3.2-3.4 GB instead of 2.9 GB; at 1,000,000 rows no difference beyond the noise (peak about
0.9 GB either way).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import pyarrow as pa

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_ALL = 2**31 - 1  # the largest value mallopt takes: free memory at the heap's top is kept


def configure_allocators() -> None:
    """Arrow allocates with the C library's malloc (unless ``ARROW_DEFAULT_MEMORY_POOL`` says
    otherwise), and on glibc malloc keeps what is freed for the next allocations.

    One heap for pandas, numpy and Arrow: measured on the 1,000,000-row benchmark (2 cores),
    harmonisation took 2.1-2.4 s with it instead of 3.4-3.5 s with pyarrow's default mimalloc.
    Large blocks come from the heap too, not from a fresh mapping each (``M_MMAP_MAX`` 0), and the
    heap's free top is not trimmed (``M_TRIM_THRESHOLD``); see the module's docstring for the effect.
    DuckDB still trims the heap itself when its worker threads have been idle for half a second.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
    mallopt = _glibc_mallopt()
    if mallopt is not None:
        mallopt(_M_MMAP_MAX, 0)
        mallopt(_M_TRIM_THRESHOLD, _KEEP_ALL)


def _glibc_mallopt() -> object | None:
    """glibc's ``mallopt(int, int)``, or None elsewhere (other systems keep their own policy)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    except OSError:
        return None
    if mallopt is not None:
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
    return mallopt
