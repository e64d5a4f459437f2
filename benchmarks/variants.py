"""Speed of the GRU variants against grukit's GRU and torch.nn.GRU (issue 18's targets).

Same process, DESIGN.md §5's grid (sequence points), interleaved blocks, medians:

    grukit.GRU                        the reference for the variants' ratios
    grukit.GRU zoneout=0.1            training mode draws a keep mask per step and unit
    grukit.GRU recurrent_dropout=0.25 training mode draws a mask per sequence
    grukit.LayerNormGRU               layer-normalised projections
    torch.nn.GRU                      the built-in kernel

A training step is forward + backward (``torch.autograd.grad`` for x and every parameter,
module in training mode); inference a no-grad forward in evaluation mode (zoneout then
blends with its expectation; recurrent dropout is off). Targets (issue 18): training at
most 1.3× grukit GRU's time and faster than nn.GRU; inference at most 1.2× grukit GRU's.

    .venv/bin/python benchmarks/variants.py              # full grid, 2 threads (~4 min)
    .venv/bin/python benchmarks/variants.py --quick      # smoke run
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import Tensor, nn

import grukit
from grukit.benchmark import GRID, QUICK_GRID, GridPoint, TimingConfig
from grukit.benchmark.timing import median, time_interleaved

TRAIN_LIMIT, INFER_LIMIT = 1.3, 1.2  # × grukit GRU's time


def variants(p: GridPoint) -> dict[str, nn.Module]:
    """The contenders at one grid point, on shared weights where the shapes agree."""
    torch.manual_seed(0)
    base = nn.GRU(p.I, p.H)
    made: dict[str, nn.Module] = {
        "torch.nn.GRU": base,
        "GRU": grukit.GRU(p.I, p.H),
        "GRU zoneout=0.1": grukit.GRU(p.I, p.H, zoneout=0.1),
        "GRU recurrent_dropout=0.25": grukit.GRU(p.I, p.H, recurrent_dropout=0.25),
        "LayerNormGRU": grukit.LayerNormGRU(p.I, p.H),
    }
    for m in made.values():
        m.load_state_dict(base.state_dict(), strict=False)  # LayerNormGRU keeps its gains
    return made


def closures(m: nn.Module, x: Tensor, h0: Tensor, g: Tensor) -> tuple[Callable[[], object], ...]:
    """(training step, inference) of one contender."""
    params = list(m.parameters())
    xg = x.detach().clone().requires_grad_(True)

    def train() -> object:
        m.train()
        return torch.autograd.grad(m(xg, h0)[0], [xg, *params], g)

    @torch.no_grad()
    def infer() -> object:
        m.eval()
        return m(x, h0)

    return train, infer


def measure(p: GridPoint, timing: TimingConfig) -> dict[str, tuple[float, float]]:
    """name → (training seconds, inference seconds) at one grid point."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(p.T, p.N, p.I, generator=gen)
    h0 = torch.randn(1, p.N, p.H, generator=gen)
    g = torch.randn(p.T, p.N, p.H, generator=gen)
    fns: dict[str, Callable[[], object]] = {}
    for name, m in variants(p).items():
        train, infer = closures(m, x, h0, g)
        fns[f"{name}|train"], fns[f"{name}|infer"] = train, infer
    times = {k: median(v) for k, v in time_interleaved(fns, timing).items()}
    names = {k.split("|")[0] for k in fns}
    return {n: (times[f"{n}|train"], times[f"{n}|infer"]) for n in sorted(names)}


def table(results: dict[GridPoint, dict[str, tuple[float, float]]]) -> str:
    """Markdown: per point and variant, time ÷ grukit GRU's and nn.GRU's time ÷ variant's."""
    lines = [
        "| (I, H, N, T) | variant | train ÷ grukit GRU | nn.GRU ÷ train | infer ÷ grukit GRU "
        "| targets |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for p, res in results.items():
        gt, gi = res["GRU"]
        tt = res["torch.nn.GRU"][0]
        for name, (t, i) in res.items():
            if name in ("GRU", "torch.nn.GRU"):
                continue
            ok = t / gt <= TRAIN_LIMIT and tt / t > 1.0 and i / gi <= INFER_LIMIT
            lines.append(
                f"| {p.I}, {p.H}, {p.N}, {p.T} | {name} | {t / gt:.2f}× | {tt / t:.2f}× "
                f"| {i / gi:.2f}× | {'met' if ok else 'missed'} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes, few repeats")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=10, help="blocks per contender")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    grid = QUICK_GRID if args.quick else GRID
    timing = TimingConfig(repeats=2 if args.quick else args.repeats)
    results = {p: measure(p, timing) for p in grid if p.T > 1 and p.one_layer}
    print(f"threads={args.threads}, torch {torch.__version__}, backends "
          f"{grukit.available_backends()}")  # fmt: skip
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
