"""Interleaved block timing (DESIGN.md §5).

Peers are timed round-robin in *blocks*: a block is many back-to-back calls of one
peer, timed as a whole (per-call time = block time / calls), followed by a short pause
so that the worker threads of the peer just run (ONNX Runtime's, OpenMP's) go idle
before the next peer starts. Each round visits every peer once, in an order rotated
from round to round so no peer always follows the same neighbour. A peer's time is
the median of its blocks.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["TimingConfig", "calibrate", "median", "time_interleaved"]


@dataclass(frozen=True)
class TimingConfig:
    """How peers are timed."""

    repeats: int = 10  # blocks per peer: DESIGN.md §5's minimum, keeping the grid ~8 min
    warmup_s: float = 0.05  # first calls allocate buffers and fill caches: not timed
    block_s: float = 0.02  # target block length: long enough that timer overhead is noise
    max_calls: int = 500  # cap on calls per block (tiny streaming steps)
    pause_s: float = 0.02  # sleep after a block: tens of ms let spinning workers go idle

    def __post_init__(self) -> None:
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int):
            raise TypeError(f"TimingConfig: expected repeats to be an int, got {self.repeats!r}")
        if self.repeats < 1:
            raise ValueError(f"TimingConfig: expected repeats >= 1, got {self.repeats}")
        for name in ("warmup_s", "block_s", "pause_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"TimingConfig: expected {name} >= 0, got {getattr(self, name)}")


def calibrate(fn: Callable[[], object], cfg: TimingConfig) -> int:
    """Warm ``fn`` up (its first call, then more calls until ``cfg.warmup_s`` has passed)
    and return how many calls make a block of about ``cfg.block_s``.

    A first call that alone lasts ``cfg.warmup_s`` is the whole warm-up: a call that
    long has filled every cache, and repeating it would cost a round of the benchmark.
    """
    start = time.perf_counter()
    fn()  # first call: allocations, lazy initialisation
    elapsed, calls = time.perf_counter() - start, 1
    if elapsed < cfg.warmup_s:
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= cfg.warmup_s:
                break
    per_call = elapsed / calls
    return max(1, min(cfg.max_calls, math.ceil(cfg.block_s / max(per_call, 1e-9))))


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    cfg: TimingConfig,
    on_block: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Time every function in ``fns`` in interleaved blocks.

    Returns name → per-call seconds of each of its ``cfg.repeats`` blocks.
    ``on_block`` is called after every block (progress reporting).
    """
    names = list(fns)
    calls = {}
    for name in names:
        calls[name] = calibrate(fns[name], cfg)
        time.sleep(cfg.pause_s)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(cfg.repeats):
        shift = r % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            fn, n = fns[name], calls[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - start) / n)
            if cfg.pause_s:
                time.sleep(cfg.pause_s)
            if on_block is not None:
                on_block()
    return samples


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    if not values:
        raise ValueError("median: expected at least one value, got none")
    return float(statistics.median(values))
