"""LayerNormGRU vs grukit.GRU vs torch.nn.GRU: training step and inference, same-process ratios.

    PYTHONPATH=src python benchmarks/layernorm_speed.py [--threads 1] [--repeats 10]

Grid (I, H, N, T) from DESIGN.md section 5; medians of interleaved blocks
(grukit.benchmark.timing); ratios are LayerNormGRU's time over each peer's.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

import grukit
from grukit.benchmark.timing import TimingConfig, median, time_interleaved

GRID = [(28, 256, 32, 35), (8, 64, 32, 50), (256, 512, 64, 100), (512, 1024, 16, 100)]


def step(m: torch.nn.Module, x: torch.Tensor, train: bool) -> Callable[[], object]:
    if not train:

        def infer() -> object:
            with torch.no_grad():
                return m(x)

        return infer

    def train_step() -> object:
        out, h = m(x)
        out.sum().backward()
        return None

    return train_step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TimingConfig(repeats=args.repeats)
    print(f"threads={args.threads} repeats={args.repeats}")
    print("I,H,N,T | train: ln/gru ln/nn.GRU | infer: ln/gru ln/nn.GRU | ln train ms")
    for I, H, N, T in GRID:
        torch.manual_seed(0)
        layers = {
            "ln": grukit.LayerNormGRU(I, H),
            "gru": grukit.GRU(I, H),
            "nn": torch.nn.GRU(I, H),
        }
        x = torch.randn(T, N, I)
        res = {}
        for train in (True, False):
            fns = {k: step(m, x, train) for k, m in layers.items()}
            t = {k: median(v) for k, v in time_interleaved(fns, cfg).items()}
            res[train] = t
        tr, inf = res[True], res[False]
        print(
            f"{I},{H},{N},{T} | {tr['ln'] / tr['gru']:.2f} {tr['ln'] / tr['nn']:.2f} | "
            f"{inf['ln'] / inf['gru']:.2f} {inf['ln'] / inf['nn']:.2f} | {tr['ln'] * 1e3:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
