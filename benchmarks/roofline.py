"""Roofline of the speed targets: each grid point's step time against the machine's measured
multiply-add peak, and what 2.0× ``torch.nn.GRU`` (or d2l's language model) would need of it.

For every sequence point of the speed grid (DESIGN.md §5, the streaming step left out: its
cost is the call, not arithmetic) it times, in one process with interleaved blocks, the
training step of ``nn.GRU`` and ``grukit.GRU`` (native backend; the speed benchmark's step:
forward and backward of the output, x needing its gradient) and the inference of ONNX
Runtime and grukit; then the language model's training step (``benchmarks/lm.py``'s two
peers, d2l's ``nn.GRU`` model and grukit's ``CharLM``) at ``--lm-threads``. With the FLOPs of
the matrix products (``grukit.benchmark.flops``; the gates' element-wise work not counted)
and the peak of ``fma_chains`` (``grukit.benchmark.roofline``) it reports each time as a
share of the peak, the ceiling (the most times faster than the peer any step can be at
the peak) and the share of the peak that the 2.0× target needs, everything in the step
included.

    .venv/bin/python benchmarks/roofline.py --out bench-out/roofline   # ~3 min, 2 cores
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lm as lm_bench  # benchmarks/lm.py: the language model's peers
import torch
from tqdm.auto import tqdm

from grukit.benchmark.flops import gru_flops, linear_flops
from grukit.benchmark.peers import BASELINE, ORT, GridPoint, build_contenders
from grukit.benchmark.roofline import Peak, ceiling, fma_peak, needed_share
from grukit.benchmark.runner import GRID
from grukit.benchmark.timing import TimingConfig, median, time_interleaved
from grukit.models.charlm import CharLM
from grukit.training import write_json
from grukit.training.lm import PRESETS
from grukit.training.memory import keep_freed_memory

GRUKIT = "grukit[native]"
TARGET = 2.0  # issue 21: training ≥ 2.0× nn.GRU, the language model ≥ 2.0× d2l


def _grid_rows(threads: int, timing: TimingConfig, peak: Peak, bar: Any) -> list[dict]:
    rows = []
    for point in [p for p in GRID if p.T > 1]:
        bar.set_description(point.label)
        contenders, _ = build_contenders(point, threads=threads, backends=["native"])
        by_name = {c.name: c for c in contenders}
        fns: dict[str, Callable[[], object]] = {
            "nn.GRU train": by_name[BASELINE].train,  # type: ignore[dict-item]
            "grukit train": by_name[GRUKIT].train,  # type: ignore[dict-item]
            "grukit infer": by_name[GRUKIT].infer,  # type: ignore[dict-item]
        }
        if ORT in by_name:
            fns["ORT infer"] = by_name[ORT].infer  # type: ignore[assignment]
        samples = time_interleaved(fns, timing, lambda: bar.update(1))
        ms = {name: median(s) * 1e3 for name, s in samples.items()}
        train = gru_flops(point, training=True, input_grad=True)  # the speed benchmark's step
        infer = gru_flops(point, training=False)
        rows.append({
            "point": point.shape,
            "train_gflop": train / 1e9,
            "infer_gflop": infer / 1e9,
            "ms": ms,
            "train_ratio": ms["nn.GRU train"] / ms["grukit train"],
            "share_of_peak": {name: _share(train if "train" in name else infer, t, peak)
                              for name, t in ms.items()},  # fmt: skip
            "train_ceiling": ceiling(train, peak.gflops, ms["nn.GRU train"] / 1e3),
            "train_needed": needed_share(train, peak.gflops, ms["nn.GRU train"] / 1e3, TARGET),
        })  # fmt: skip
    return rows


def _lm_row(timing: TimingConfig, peak: Peak, bar: Any) -> dict:
    bar.set_description("language model")
    cfg, vocab = PRESETS["d2l"], 28
    batches = lm_bench._batches(0)
    torch.manual_seed(0)
    reference = CharLM(vocab, cfg.hidden_size)
    d2l = lm_bench.D2LRNNModel(torch.nn.GRU(vocab, cfg.hidden_size), vocab)
    d2l.rnn.load_state_dict(reference.rnn.state_dict())
    d2l.linear.load_state_dict(reference.head.state_dict())
    fns = {
        "d2l train": lm_bench._d2l_peer(d2l, batches),
        "grukit train": lm_bench._grukit_peer(reference, batches),
    }
    samples = time_interleaved(fns, timing, lambda: bar.update(1))
    ms = {name: median(s) * 1e3 for name, s in samples.items()}
    rows = cfg.batch_size * cfg.num_steps
    point = GridPoint(vocab, cfg.hidden_size, cfg.batch_size, cfg.num_steps)
    flops = gru_flops(point, training=True, one_hot=True) + linear_flops(
        rows, cfg.hidden_size, vocab, training=True
    )
    return {
        "point": f"language model (d2l: one-hot {vocab}, H {cfg.hidden_size}, "
        f"N {cfg.batch_size}, T {cfg.num_steps})",
        "train_gflop": flops / 1e9,
        "ms": ms,
        "train_ratio": ms["d2l train"] / ms["grukit train"],
        "share_of_peak": {name: _share(flops, t, peak) for name, t in ms.items()},
        "train_ceiling": ceiling(flops, peak.gflops, ms["d2l train"] / 1e3),
        "train_needed": needed_share(flops, peak.gflops, ms["d2l train"] / 1e3, TARGET),
    }


def _share(flops: int, ms: float, peak: Peak) -> float:
    return flops / (ms / 1e3) / (peak.gflops * 1e9)


def _markdown(result: dict) -> str:
    grid, lm, peaks = result["grid"], result["lm"], result["peak"]
    lines = [
        f"Peak (fma_chains, {peaks['isa']}, {peaks['lanes']} float32 lanes): "
        f"{peaks['grid']:.0f} GFLOP/s on {result['threads']} thread(s), "
        f"{peaks['lm']:.0f} on {result['lm_threads']} · torch {result['torch']} · "
        f"median of {result['repeats']} interleaved blocks",
        "",
        "| point | train GFLOP | nn.GRU ms | grukit ms | × nn.GRU | grukit % peak | "
        "nn.GRU % peak | ceiling × | 2.0× needs | infer: ORT % peak | grukit % peak |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for r in grid:
        s, ms = r["share_of_peak"], r["ms"]
        ort = f"{s['ORT infer']:.0%}" if "ORT infer" in s else "n/a"
        lines.append(
            f"| {r['point']} | {r['train_gflop']:.2f} | {ms['nn.GRU train']:.1f} | "
            f"{ms['grukit train']:.1f} | {r['train_ratio']:.2f} | {s['grukit train']:.0%} | "
            f"{s['nn.GRU train']:.0%} | {r['train_ceiling']:.2f} | {r['train_needed']:.0%} | "
            f"{ort} | {s['grukit infer']:.0%} |"
        )
    s, ms = lm["share_of_peak"], lm["ms"]
    lines += [
        "",
        "| language model | train GFLOP | d2l ms | grukit ms | × d2l | grukit % peak | "
        "d2l % peak | ceiling × | 2.0× needs |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: |",
        f"| {lm['point']} | {lm['train_gflop']:.2f} | {ms['d2l train']:.1f} | "
        f"{ms['grukit train']:.1f} | {lm['train_ratio']:.2f} | {s['grukit train']:.0%} | "
        f"{s['d2l train']:.0%} | {lm['train_ceiling']:.2f} | {lm['train_needed']:.0%} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="bench-out/roofline", help="folder for roofline.json/md")
    parser.add_argument("--threads", type=int, default=2, help="threads for the grid (default 2)")
    parser.add_argument("--lm-threads", type=int, default=1, help="threads for the LM (default 1)")
    parser.add_argument("--repeats", type=int, default=10, help="blocks per peer (default 10)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.lm_threads < 1 or args.repeats < 1:
        print("roofline.py: error: expected --threads, --lm-threads, --repeats >= 1",
              file=sys.stderr)  # fmt: skip
        return 2
    keep_freed_memory()  # as benchmarks/lm.py and `grukit lm train` run
    timing = TimingConfig(repeats=args.repeats, warmup_s=0.5, block_s=0.25, pause_s=0.05)
    points = [p for p in GRID if p.T > 1]
    total = args.repeats * (4 * len(points) + 2)
    old = torch.get_num_threads()
    try:
        with tqdm(total=total, unit="block", file=sys.stderr, dynamic_ncols=True) as bar:
            torch.set_num_threads(args.threads)
            grid_peak = fma_peak()
            grid = _grid_rows(args.threads, timing, grid_peak, bar)
            torch.set_num_threads(args.lm_threads)
            lm_peak = fma_peak()
            lm = _lm_row(timing, lm_peak, bar)
    except RuntimeError as err:  # the native kernel is unavailable: no peak to divide by
        print(f"roofline.py: error: {err}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(old)
    result = {
        "threads": args.threads,
        "lm_threads": args.lm_threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "peak": {
            "grid": grid_peak.gflops,
            "lm": lm_peak.gflops,
            "isa": grid_peak.isa,
            "lanes": grid_peak.lanes,
        },  # fmt: skip
        "grid": grid,
        "lm": lm,
    }
    out = Path(args.out)
    write_json(out / "roofline.json", result)
    text = _markdown(result)
    (out / "roofline.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
