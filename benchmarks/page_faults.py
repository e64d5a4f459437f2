"""Minor page faults and time per call: a training step and inference of ``grukit.GRU``
(native) and ``torch.nn.GRU`` at DESIGN.md section 5's sequence points, one process.

A fresh large tensor is mapped afresh by the C library and faults once per 4 KiB page on
first touch; the native kernel's block cache (``backends/native/cache.h``) exists to avoid
that. This prints, per point and contender, ms per call and faults per call (``ru_minflt``,
mean of 3 calls after 2 warm ones) — with ``--no-cache`` the cache's cap is 0, which shows
what it saves:

    .venv/bin/python benchmarks/page_faults.py
    .venv/bin/python benchmarks/page_faults.py --no-cache

Times here are single blocks, not interleaved: for speed use ``benchmarks/speed.py`` and
``benchmarks/native_ab.py``; the fault counts are exact.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import torch

import grukit
from grukit.backends.native import blocks

POINTS = [(28, 256, 32, 35), (8, 64, 32, 50), (256, 512, 64, 100), (512, 1024, 16, 100)]


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(f: Callable[[], object]) -> tuple[float, float]:
    """(ms per call, minor faults per call) over 3 calls after 2 warm ones."""
    f()
    f()
    f0, t0 = faults(), time.perf_counter()
    for _ in range(3):
        f()
    return (time.perf_counter() - t0) / 3 * 1e3, (faults() - f0) / 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--no-cache", action="store_true", help="the block cache's cap at 0")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.no_cache:
        blocks.set_cache_limit(0)
    print("| I, H, N, T | contender | train ms | train faults | infer ms | infer faults |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for I, H, N, T in POINTS:
        x = torch.randn(T, N, I, requires_grad=True)
        for name, m in (("grukit.GRU", grukit.GRU(I, H)), ("torch.nn.GRU", torch.nn.GRU(I, H))):

            def train(m: torch.nn.Module = m, x: torch.Tensor = x) -> None:
                out, _ = m(x)
                out.sum().backward()

            def infer(m: torch.nn.Module = m, x: torch.Tensor = x) -> None:
                with torch.no_grad():
                    m(x)

            (tm, tf), (im, inf) = measure(train), measure(infer)
            print(f"| {I}, {H}, {N}, {T} | {name} | {tm:.1f} | {tf:,.0f} | {im:.1f} | {inf:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
