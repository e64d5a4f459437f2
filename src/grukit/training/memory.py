"""Keep freed memory in the process while training, so buffers are reused, not re-faulted.

Every training step allocates the same large tensors (gates, gradients: megabytes each) and
frees them. glibc's malloc hands chunks above its mmap threshold back to the kernel, and
trims the heap top above its trim threshold, so the next step page-faults the same memory
in again: measured here, ~550 page faults and 4-5% of a d2l language-model step
(docs/lm.md). ``keep_freed_memory`` raises both thresholds (``mallopt``), as PyTorch's
CPU performance guides do with jemalloc/tcmalloc settings. Process-wide; glibc only (a
no-op elsewhere); the memory a process keeps is bounded by its own peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's maximum: chunks up to 32 MiB come from the heap
TRIM_THRESHOLD = 1 << 30  # return the heap top to the kernel only above 1 GiB free


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; True if it took effect (Linux with glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
