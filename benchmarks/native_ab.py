"""A/B of two builds of the native kernel in one process: a layer's training step and
inference at DESIGN.md §5's sequence points (grukit.GRU, or with --layer layernorm-gru
grukit.LayerNormGRU), with the kernel module swapped between calls.

For a kernel change, same process and interleaved blocks (DESIGN.md §5), so the machine's
drift cancels. Build the other version first and pass its ``.so`` — e.g. from a worktree
of the commit before the change:

    git worktree add /tmp/gk-old HEAD~1
    PYTHONPATH=/tmp/gk-old/src .venv/bin/python -c \\
        "from grukit.backends.native import build; print(build.load().__file__)"
    .venv/bin/python benchmarks/native_ab.py /root/.cache/grukit/native/KEY/grukit_native_KEY.so

Prints, per point, old/new time ratios (median of 12 rounds of 0.25 s blocks, order
alternated; > 1: this checkout's build is faster) and the largest difference between the
two builds' results (outputs and every gradient).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from types import ModuleType

import torch
from torch.utils._pytree import tree_leaves

import grukit
from grukit.backends.native import build

POINTS = [(28, 256, 32, 35), (8, 64, 32, 50), (256, 512, 64, 100), (512, 1024, 16, 100)]


def load_module(path: str) -> ModuleType:
    """The extension module at ``path`` (its name is the file's stem, as the build made it)."""
    name = path.rsplit("/", 1)[-1].split(".")[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"native_ab: expected an extension module's .so, got {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def point(text: str) -> tuple[int, int, int, int]:
    """The point "I,H,N,T" as (I, H, N, T), four positive integers."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected I,H,N,T (four positive integers), got {text!r}")
    return values[0], values[1], values[2], values[3]


def ratio(f: Callable[[], object], old: ModuleType, new: ModuleType, rounds: int) -> float:
    """Median over rounds of old time / new time, each a 0.25 s block after a warm call."""
    ratios = []
    for r in range(rounds):
        times = {}
        order = (("old", old), ("new", new)) if r % 2 else (("new", new), ("old", old))
        for which, module in order:
            build._module = module
            f()
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 0.25:
                f()
                n += 1
            times[which] = (time.perf_counter() - t0) / n
        ratios.append(times["old"] / times["new"])
    return statistics.median(ratios)


def difference(f: Callable[[], object], old: ModuleType, new: ModuleType) -> float:
    """The largest absolute difference between the two builds' results."""
    build._module = old
    a = tree_leaves(f())
    build._module = new
    b = tree_leaves(f())
    return max(float((u - v).abs().max()) for u, v in zip(a, b, strict=True))


LAYERS = {"gru": grukit.GRU, "layernorm-gru": grukit.LayerNormGRU}


def calls(
    layer_name: str, I: int, H: int, N: int, T: int
) -> tuple[Callable[[], object], Callable[[], object]]:
    """(training step, inference) of one layer at a grid point, seed 0."""
    torch.manual_seed(0)
    layer = LAYERS[layer_name](I, H)
    x, g = torch.randn(T, N, I, requires_grad=True), torch.randn(T, N, H)
    inputs = [x, *layer.parameters()]

    def train() -> object:
        return torch.autograd.grad(layer(x)[0], inputs, g)

    @torch.no_grad()
    def infer() -> object:
        return layer(x)

    return train, infer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the other build's .so")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--layer", choices=sorted(LAYERS), default="gru")
    parser.add_argument(
        "--points", nargs="+", type=point, default=POINTS, metavar="I,H,N,T",
        help="the (input, hidden, batch, steps) points, default DESIGN.md section 5's four",
    )  # fmt: skip
    args = parser.parse_args(argv)
    new = build.load()
    if new is None:
        raise SystemExit(f"native_ab: this checkout's kernel is unavailable: {build.failure()}")
    old = load_module(args.old)
    if not hasattr(old, "cached_empty"):  # a build from before the block cache (cache.h)
        old.cached_empty = lambda like, sizes: like.new_empty(sizes)
    torch.set_num_threads(args.threads)
    print(f"old {args.old}\nnew {new.__file__}\nthreads {args.threads}, torch {torch.__version__}")
    print("| I, H, N, T | train old/new | max diff | infer old/new | max diff |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for I, H, N, T in args.points:
        cells = []
        for f in calls(args.layer, I, H, N, T):
            cells += [f"{ratio(f, old, new, args.rounds):.3f}", f"{difference(f, old, new):.1e}"]
        print(f"| {I}, {H}, {N}, {T} | " + " | ".join(cells) + " |", flush=True)
    build._module = new
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
