"""``grukit bench``: the speed benchmark (``grukit.benchmark``) from the command line.

Writes ``DIR/speed.json`` (everything: meta, medians, ratios, block samples) and
``DIR/speed.md`` (the tables), prints the tables, and shows a progress bar on stderr.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grukit.benchmark import (
    GRID,
    QUICK_GRID,
    BenchConfig,
    TimingConfig,
    render_markdown,
    run_benchmark,
)
from grukit.benchmark.peers import PRECISIONS
from grukit.training.checkpoint import atomic_write, write_json

#: --quick: few blocks, short ones — a smoke run, not a measurement.
QUICK_TIMING = TimingConfig(repeats=3, warmup_s=0.01, block_s=0.005, pause_s=0.005)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``grukit bench`` and ``benchmarks/speed.py``."""
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: a toy grid, 3 short blocks per contender"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-out"),
        help="directory for speed.json and speed.md (default: bench-out)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch and ONNX Runtime threads (default: 2)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed blocks per contender, median taken (default: 10; quick: 3)",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        default=None,
        metavar="NAME",
        help="grukit backends to time (default: all available but reference)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="bf16: nn.GRU and grukit under torch.autocast('cpu', bfloat16), OpenVINO with "
        "its bf16 hint (default: float32)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``grukit bench`` to the ``grukit`` command."""
    parser = subparsers.add_parser(
        "bench",
        help="time grukit's GRU backends against torch.nn.GRU, ONNX Runtime, GEMMs",
        description=__doc__,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The BenchConfig the options describe; ValueError/TypeError on bad values."""
    timing = QUICK_TIMING if args.quick else TimingConfig()
    if args.repeats is not None:
        timing = TimingConfig(
            repeats=args.repeats,
            warmup_s=timing.warmup_s,
            block_s=timing.block_s,
            max_calls=timing.max_calls,
            pause_s=timing.pause_s,
        )
    import grukit

    if args.backends is not None:
        unknown = [b for b in args.backends if b not in grukit.available_backends()]
        if unknown:
            raise ValueError(
                f"bench: expected backends from {grukit.available_backends()}, got {unknown}"
            )
    return BenchConfig(
        grid=QUICK_GRID if args.quick else GRID,
        threads=args.threads,
        timing=timing,
        backends=tuple(args.backends) if args.backends is not None else None,
        progress=not args.no_progress,
        precision=args.precision,
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, write DIR/speed.json and DIR/speed.md, print the tables."""
    cfg = config_from_args(args)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    result = run_benchmark(cfg)
    result["meta"]["options"] = {
        "quick": args.quick,
        "threads": args.threads,
        "repeats": cfg.timing.repeats,
        "backends": args.backends,
        "precision": args.precision,
    }
    table = render_markdown(result)
    write_json(out / "speed.json", result)
    atomic_write(out / "speed.md", table.encode())
    print(table, end="")
    print(f"wrote {out / 'speed.json'} and {out / 'speed.md'}")
    return 0
