"""``keep_freed_memory``: after it, the large buffers of a step, freed together and
allocated again, reuse the process's memory instead of being page-faulted in again
(Linux with glibc)."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from grukit.training.memory import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_buffers_are_reused_without_page_faults() -> None:
    assert keep_freed_memory() is True
    floats = 3 << 20  # 12 MiB each: above glibc's default (dynamic) mmap threshold

    def steps(rounds: int) -> int:
        """Minor page faults over ``rounds`` of three buffers alive together, then freed."""
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            buffers = [torch.empty(floats).fill_(1.0) for _ in range(3)]  # touch every page
            del buffers
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    steps(10)  # the heap settles: its size depends on what ran before in the process
    pages = floats * 4 // 4096  # one buffer's pages: 3,072
    # Without the call, glibc trims the freed top of the heap every round and this faults
    # ~6,100 pages a round (measured here); with it, 20 rounds fault less than one buffer.
    assert steps(20) < pages


def test_is_a_no_op_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
