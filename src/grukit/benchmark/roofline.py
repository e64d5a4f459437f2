"""How far a measured time is from what the cores can do: the multiply-add peak of this
build on this machine, and what a speed target would need of it.

A step of F FLOPs (``grukit.benchmark.flops``) cannot run faster than F / P at a peak of P
FLOP/s. So against a peer that took t_peer, no implementation can be more than
``ceiling = t_peer / (F / P)`` times faster, and a target of r× the peer needs the step to run
at ``needed = F / (t_peer / r) / P`` of the peak, everything else in the step included. The
peak is measured, not looked up: ``fma_chains`` of the native kernel (``peak.cpp``) keeps
both multiply-add ports of every thread busy with register-only chains at the build's vector
width (AVX-512, AVX2 + FMA, or the portable ``at::vec``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._checks import positive_int

__all__ = ["Peak", "ceiling", "fma_peak", "needed_share"]

#: fma_chains' chains start at 0..11 and add 1 per step; float32 counts exactly to 2²⁴.
_EXACT_STEPS = 2**24 - 16


@dataclass(frozen=True)
class Peak:
    """The measured multiply-add rate: ``gflops`` (10⁹ FLOP/s, a multiply-add is 2) over
    ``threads`` threads, vectors of ``lanes`` float32, the build's instruction set ``isa``."""

    gflops: float
    threads: int
    lanes: int
    isa: str


def fma_peak(*, seconds: float = 0.05, repeats: int = 5) -> Peak:
    """The best of ``repeats`` runs of ``fma_chains`` on torch's threads (each run sized to
    about ``seconds``, at most 2²⁴ steps so the checksum is exact and checked).

    Raises RuntimeError when the native kernel is unavailable (no C++ compiler) or when the
    chains' checksum says they did not run every step."""
    if not seconds > 0:
        raise ValueError(f"fma_peak: expected seconds > 0, got {seconds!r}")
    positive_int("fma_peak", "repeats", repeats)
    from grukit.backends.native import build

    native = build.load()
    if native is None:
        raise RuntimeError(f"fma_peak: the native kernel is unavailable ({build.failure()})")
    chains = int(native.fma_chains_per_thread)
    steps = 1 << 16
    while True:  # grow the run until it lasts a tenth of the target: then scale to it
        elapsed = _run(native, steps, chains)[0]
        if elapsed >= seconds / 10 or steps >= _EXACT_STEPS:
            break
        steps = min(_EXACT_STEPS, steps * 4)
    steps = max(1, min(_EXACT_STEPS, int(steps * seconds / max(elapsed, 1e-9))))
    best, threads, lanes = 0.0, 1, 1
    for _ in range(repeats):
        elapsed, threads, lanes = _run(native, steps, chains)
        best = max(best, threads * steps * chains * lanes * 2 / elapsed / 1e9)
    return Peak(best, threads, lanes, str(native.cpu_capability()))


def _run(native: object, steps: int, chains: int) -> tuple[float, int, int]:
    """One fma_chains call, its checksum checked → (seconds, threads, lanes)."""
    seconds, threads, lanes, checksum = native.fma_chains(steps, 1.0, 1.0)  # type: ignore[attr-defined]
    expected = threads * (chains * steps + chains * (chains - 1) // 2)  # Σ_j (j + steps)
    if checksum != expected:
        raise RuntimeError(
            f"fma_peak: fma_chains' checksum is {checksum}, expected {expected} for "
            f"{threads} threads × {chains} chains × {steps} steps"
        )
    return max(float(seconds), 1e-9), int(threads), int(lanes)


def ceiling(flops: int, peak_gflops: float, peer_seconds: float) -> float:
    """The most times faster than a peer that took ``peer_seconds`` a step of ``flops`` can
    run at ``peak_gflops``: peer time / the step's time at the peak."""
    _check(flops, peak_gflops, peer_seconds, "ceiling")
    return peer_seconds / (flops / (peak_gflops * 1e9))


def needed_share(flops: int, peak_gflops: float, peer_seconds: float, target: float) -> float:
    """The share of ``peak_gflops`` a step of ``flops`` must run at, all of it included, to
    take 1 / ``target`` of the peer's ``peer_seconds`` (> 1: beyond the peak)."""
    _check(flops, peak_gflops, peer_seconds, "needed_share")
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"needed_share: expected a finite target > 0, got {target!r}")
    return target / ceiling(flops, peak_gflops, peer_seconds)


def _check(flops: int, peak_gflops: float, seconds: float, where: str) -> None:
    positive_int(where, "flops", flops)
    for name, value in (("peak_gflops", peak_gflops), ("peer_seconds", seconds)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{where}: expected {name} finite and > 0, got {value!r}")
