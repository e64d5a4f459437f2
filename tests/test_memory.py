"""``keep_freed_memory``: after it, glibc serves a large buffer from the heap (not a fresh
mmap) and keeps the heap's top when it is freed (no trim), so the next training step reuses
the memory instead of page-faulting it in again.

Checked in fresh interpreters (malloc's state is per process, and the call is process-wide)
through glibc's own accounting, ``mallinfo2``, around one malloc/free of 24 MiB: below
glibc's largest mmap threshold (32 MiB), above its default (128 KiB). Deterministic, unlike
page-fault counts. Three processes: untouched (the buffer is mmapped: the check can fail),
keep_freed_memory (from the heap, and kept after free), and a control with only the mmap
threshold raised (from the heap, but trimmed on free: the trim threshold is what keeps it).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from grukit.training import memory
from grukit.training.memory import keep_freed_memory

MIB = 1 << 20
SIZE = 24 * MIB

PROBE = """
import ctypes, ctypes.util, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("memory", sys.argv[1])
memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory)  # the module alone: no torch, no other allocations
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
          "fordblks", "keepcost")
class MallInfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in FIELDS]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallopt.restype, libc.mallopt.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_int]
mode, size = sys.argv[2], int(sys.argv[3])
took = None
if mode == "keep":
    took = memory.keep_freed_memory()
elif mode == "mmap-threshold-only":
    took = bool(libc.mallopt(memory.M_MMAP_THRESHOLD, memory.MMAP_THRESHOLD))
before = libc.mallinfo2()
p = libc.malloc(size)
during = libc.mallinfo2()
libc.free(p)
after = libc.mallinfo2()
print(json.dumps({
    "took": took,
    "mmapped": during.hblks - before.hblks,
    "heap_grew": during.arena - before.arena,
    "heap_kept": after.arena - before.arena,
}))
"""

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc's mallopt and mallinfo2",
)


def probe(mode: str) -> dict[str, int | bool | None]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, memory.__file__, mode, str(SIZE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "undefined symbol: mallinfo2" in out.stderr:
        pytest.skip("glibc older than 2.33: no mallinfo2")
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@glibc_only
def test_untouched_glibc_mmaps_a_large_buffer() -> None:
    got = probe("default")
    assert got["mmapped"] == 1 and got["heap_grew"] < SIZE


@glibc_only
def test_after_the_call_a_large_buffer_comes_from_the_heap_and_stays() -> None:
    got = probe("keep")
    assert got["took"] is True
    assert got["mmapped"] == 0 and got["heap_grew"] >= SIZE
    assert got["heap_kept"] >= SIZE  # freed, but not trimmed: the next step reuses it


@glibc_only
def test_without_the_trim_threshold_the_heap_top_is_given_back() -> None:
    got = probe("mmap-threshold-only")
    assert got["took"] is True
    assert got["mmapped"] == 0 and got["heap_grew"] >= SIZE
    assert got["heap_kept"] < SIZE


def test_is_a_no_op_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
