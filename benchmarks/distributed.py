"""Language-model training throughput on K processes (torchrun, DDP over gloo) against one
process with as many threads: the table in README's "Several processes" section.

    .venv/bin/python benchmarks/distributed.py --out runs/bench-ddp [--rounds 3]

Each round runs, in a rotated order, the same `grukit lm train` (d2l's model and data,
SGD, --epochs E, global batch 32) as (a) 1 process with 1 thread, (b) 1 process with 2
threads and (c) 2 processes with 1 thread each; tokens/s is read from each run's
summary.json (training time only: no start-up, no validation). Reported: each variant's
median tokens/s and the median over rounds of its ratio to (a) in the same round. Run it
on an idle machine: a second busy process halves such ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

VARIANTS = {  # name → (processes, threads per process)
    "1 process × 1 thread": (1, 1),
    "1 process × 2 threads": (1, 2),
    "2 processes × 1 thread (DDP)": (2, 1),
}


def run(out: Path, procs: int, threads: int, epochs: int) -> float:
    args = ["lm", "train", "--out", str(out), "--overwrite", "--preset", "d2l", "--epochs",
            str(epochs), "--threads", str(threads), "--no-progress"]  # fmt: skip
    if procs == 1:
        cmd = [sys.executable, "-m", "grukit", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={procs}", "-m", "grukit", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return float(json.loads((out / "summary.json").read_text())["tokens_per_second"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-ddp")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args(argv)
    out = Path(args.out)
    names = list(VARIANTS)
    rates: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotated
        got = {}
        for name in order:
            procs, threads = VARIANTS[name]
            got[name] = run(out / f"run-{procs}x{threads}", procs, threads, args.epochs)
            print(f"round {r + 1}: {name}: {got[name]:,.0f} tokens/s", file=sys.stderr)
        for name in names:
            rates[name].append(got[name])
            ratios[name].append(got[name] / got[names[0]])
    lines = ["| variant | tokens/s (median) | vs 1 process × 1 thread |", "| --- | ---: | ---: |"]
    for name in names:
        lines.append(
            f"| {name} | {statistics.median(rates[name]):,.0f} | "
            f"{statistics.median(ratios[name]):.2f}× |"
        )
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({"rates": rates, "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
