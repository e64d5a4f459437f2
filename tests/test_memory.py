"""``keep_freed_memory``: after it, freeing and re-allocating a large buffer reuses the
process's memory instead of page-faulting it in again (Linux with glibc)."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from grukit.training.memory import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_buffers_are_reused_without_page_faults() -> None:
    assert keep_freed_memory() is True
    floats = 3 << 20  # 12 MiB: above glibc's default (dynamic) mmap and trim thresholds

    def churn(rounds: int) -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            torch.empty(floats).fill_(1.0)  # allocate, touch every page, free
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    churn(2)  # the first round may grow the heap
    pages = floats * 4 // 4096  # a fresh mapping would fault in every page: 3,072 per round
    assert churn(20) < pages  # 20 rounds fault in less than one round's worth


def test_is_a_no_op_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
