"""One generation step: ``grukit.GRU(x_t, h)`` at T = 1 against ``grukit.GRUCell`` and
``torch.nn.GRU``, inference, same process, interleaved blocks, medians (DESIGN.md §5).

Issue 21 asks the layer's one-step call to cost what the cell costs. Shapes: x_t (1, N, I)
for the layers, (N, I) for the cell; one layer, float32.

    .venv/bin/python benchmarks/streaming_step.py                # I=64, H=128, N=1, 1 thread
    .venv/bin/python benchmarks/streaming_step.py --layers 2 --batch 8
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

import grukit
from grukit.benchmark import TimingConfig
from grukit.benchmark.timing import median, time_interleaved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    I, H, N, L = args.input, args.hidden, args.batch, args.layers
    layer, twin = grukit.GRU(I, H, L).eval(), torch.nn.GRU(I, H, L).eval()
    twin.load_state_dict(layer.state_dict())
    cell = grukit.GRUCell(I, H).eval()
    x, h = torch.randn(1, N, I), torch.randn(L, N, H)
    fns: dict[str, Callable[[], object]] = {
        "grukit.GRU (T = 1)": lambda: layer(x, h),
        "torch.nn.GRU (T = 1)": lambda: twin(x, h),
    }
    if L == 1:
        fns["grukit.GRUCell"] = lambda: cell(x[0], h[0])
    with torch.no_grad():
        # A first full round only warms up: in a fresh process the first ~second of calls
        # ran up to 10x slower here (whichever contender came first), then settled.
        time_interleaved(fns, TimingConfig(2))
        times = {k: median(v) for k, v in time_interleaved(fns, TimingConfig(args.repeats)).items()}
    base = times["grukit.GRU (T = 1)"]
    print(f"I={I} H={H} N={N} layers={L} threads={args.threads}, torch {torch.__version__}")
    print("| call | µs | ÷ grukit.GRU (T = 1) |\n| --- | ---: | ---: |")
    for name, t in times.items():
        print(f"| {name} | {t * 1e6:.1f} | {t / base:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
