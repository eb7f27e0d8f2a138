"""glibc's allocator, set for a process that holds large answers briefly.

An import decodes Gmail's answers (a long conversation's ``threads.get`` weighs
megabytes) on the event loop and parses them in worker threads. With glibc's
defaults, each thread gets arenas of its own (up to 8 per core) and the threshold
above which a block is mapped on its own grows with the largest block freed, so the
memory of those answers stays in the process after they are gone: the peak RSS of a
100,000-message import grew with the number of long conversations it met
(BENCHMARKS.md, memory). Two arenas, and blocks of 128 KiB or more mapped on their
own (and unmapped when freed), keep the RSS near what the process holds.

Applied once at start-up by the console script (and the benchmarks' child
processes). A deployment that sets ``MALLOC_ARENA_MAX`` or ``MALLOC_MMAP_THRESHOLD_``
itself keeps its own values; other C libraries (musl) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024


def tune() -> bool:
    """Set the two parameters unless the environment already does; True when set."""
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_ARENA_MAX" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, ARENAS)) and bool(mallopt(M_MMAP_THRESHOLD,
                                                                MMAP_THRESHOLD))
