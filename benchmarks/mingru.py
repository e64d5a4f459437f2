"""MinGRU's parallel scan against its own sequential mode and grukit.GRU (issue 18).

Contenders: the parallel mode as it runs on the CPU (one input GEMM, then the recurrence
in C++, ``grukit::mingru_scan``); the same mode with the recurrence as Heinsen's chunked
log-space scan (``grukit.functional.mingru_scan``, what runs off the CPU: the paper's
parallel-in-time form); the sequential mode (the step loop); grukit.GRU.

One layer, float32, N = 32, H = I = 256 by default, at T = 64, 512, 4096: a training step
(forward + backward of the sum of the outputs) and inference (no_grad), every contender
timed in the same process, interleaved in blocks (``grukit.benchmark.timing``, DESIGN.md
§5), medians of the blocks. Prints a markdown table of times and ratios and the crossover
length: the shortest T of the grid from which the parallel mode beats the sequential one.

    .venv/bin/python benchmarks/mingru.py                  # the issue's grid (~5 min, 2 cores)
    .venv/bin/python benchmarks/mingru.py --quick          # smoke run, toy sizes
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import torch

import grukit
from grukit import functional as F
from grukit.benchmark.timing import TimingConfig, median, time_interleaved

CONTENDERS = ("MinGRU parallel", "MinGRU log-space scan", "MinGRU sequential", "grukit.GRU")


class LogSpaceMinGRU(grukit.MinGRU):
    """The parallel mode with its recurrence as ``F.mingru_scan`` on the CPU too."""

    def _run_layer(
        self, x: torch.Tensor, h0: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
    ) -> torch.Tensor:
        return F.mingru_scan(torch.nn.functional.linear(x, w, b), h0)  # (T, N, H)


def build(I: int, H: int, seed: int) -> dict[str, torch.nn.Module]:
    """The four layers (weights drawn from one seed; their functions differ)."""
    torch.manual_seed(seed)
    layers: dict[str, torch.nn.Module] = {
        "MinGRU parallel": grukit.MinGRU(I, H, mode="parallel"),
        "MinGRU log-space scan": LogSpaceMinGRU(I, H),
        "MinGRU sequential": grukit.MinGRU(I, H, mode="sequential"),
        "grukit.GRU": grukit.GRU(I, H),
    }
    layers["MinGRU log-space scan"].load_state_dict(layers["MinGRU parallel"].state_dict())
    return layers


def calls(
    layers: dict[str, torch.nn.Module], x: torch.Tensor, train: bool
) -> dict[str, Callable[[], object]]:
    """name → one timed call: a training step (forward + backward) or inference."""

    def make(layer: torch.nn.Module) -> Callable[[], object]:
        if train:

            def step() -> object:
                layer.zero_grad(set_to_none=True)
                out, h_n = layer(x)
                (out.sum() + h_n.sum()).backward()
                return None

            return step

        def infer() -> object:
            with torch.no_grad():
                return layer(x)

        return infer

    return {name: make(layer) for name, layer in layers.items()}


def measure(
    lengths: list[int], N: int, I: int, H: int, cfg: TimingConfig
) -> dict[tuple[int, str], dict[str, float]]:
    """(T, "train" | "infer") → contender → median seconds per call."""
    layers = build(I, H, seed=0)
    results = {}
    for T in lengths:
        x = torch.randn(T, N, I)
        for kind in ("train", "infer"):
            samples = time_interleaved(calls(layers, x, kind == "train"), cfg)
            r = results[T, kind] = {name: median(s) for name, s in samples.items()}
            ms = ", ".join(f"{name} {t * 1e3:.2f} ms" for name, t in r.items())
            print(f"  T={T} {kind}: {ms}", file=sys.stderr, flush=True)  # kept if cut short
    return results


def crossover(
    results: dict[tuple[int, str], dict[str, float]], kind: str, fast: str = "MinGRU parallel"
) -> str:
    """The shortest T from which ``fast`` beats sequential at every longer T of the grid."""
    lengths = sorted({T for T, k in results if k == kind})
    wins = [results[T, kind][fast] < results[T, kind]["MinGRU sequential"] for T in lengths]
    for i, T in enumerate(lengths):
        if all(wins[i:]):
            return f"T = {T}" + ("" if i == 0 else f" (between {lengths[i - 1]} and {T})")
    return f"none up to T = {lengths[-1]}"


def table(results: dict[tuple[int, str], dict[str, float]]) -> str:
    lines = [
        "| T | step | parallel ms | log-space scan ms | sequential ms | grukit.GRU ms "
        "| sequential / parallel | GRU / parallel | sequential / log-space scan |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (T, kind), r in sorted(results.items()):
        par, scan, seq, gru = (r[name] for name in CONTENDERS)
        lines.append(
            f"| {T} | {kind} | {par * 1e3:.2f} | {scan * 1e3:.2f} | {seq * 1e3:.2f} "
            f"| {gru * 1e3:.2f} | {seq / par:.2f}× | {gru / par:.2f}× | {seq / scan:.2f}× |"
        )
    lines.append("")
    for kind in ("train", "infer"):
        lines.append(
            f"Crossover ({kind}): parallel faster than sequential from {crossover(results, kind)}; "
            f"the log-space scan from {crossover(results, kind, 'MinGRU log-space scan')}."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--input", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="toy sizes, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.batch, args.hidden, args.input, args.repeats = [8, 64], 4, 16, 8, 3
    torch.set_num_threads(args.threads)
    cfg = TimingConfig(repeats=args.repeats)
    load = os.getloadavg()[0]
    results = measure(args.lengths, args.batch, args.input, args.hidden, cfg)
    print(
        f"MinGRU, one layer, float32, N = {args.batch}, I = {args.input}, H = {args.hidden}; "
        f"threads {args.threads}, torch {torch.__version__}, median of {args.repeats} "
        f"interleaved blocks; 1-min load average {load:.2f} → {os.getloadavg()[0]:.2f}\n"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
