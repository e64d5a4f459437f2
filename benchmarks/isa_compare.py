"""Issue 21's ISA table in one command: the speed grid once per instruction set the native
kernel can be built for on this CPU, then each ISA's ratios against the widest's.

Each ISA runs ``benchmarks/speed.py --backends native`` in a fresh process with
``GRUKIT_ISA`` set (its own build, compiled on first use, ~2 min), one after the other so
the runs never contend; every ratio is that run's own same-process ratio (the kernel
against ``torch.nn.GRU``, ONNX Runtime and OpenVINO timed together), and only ratios are
compared across runs (``grukit.benchmark.isa``). Writes ``OUT/<isa>/speed.{json,md}``,
``OUT/isa.json`` and ``OUT/isa.md``, and prints the table.

    .venv/bin/python benchmarks/isa_compare.py --out bench-out/isa        # every ISA here
    .venv/bin/python benchmarks/isa_compare.py --isas avx512 avx2 --out bench-out/isa
    .venv/bin/python benchmarks/isa_compare.py --compare-only --out bench-out/isa  # no runs

A full grid takes ~2.5 minutes per ISA on 2 idle cores, plus a build per ISA not yet in
the kernel cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from grukit.backends.native.build import ISAS, cpu_flags, runnable_isas
from grukit.benchmark.isa import compare_isas, render_isa_markdown
from grukit.training.checkpoint import atomic_write, write_json

SPEED = Path(__file__).with_name("speed.py")


def _run(isa: str, args: argparse.Namespace) -> None:
    cmd = [sys.executable, str(SPEED), "--backends", "native", "--out", str(args.out / isa)]
    cmd += ["--threads", str(args.threads), "--precision", args.precision]
    if args.repeats is not None:
        cmd += ["--repeats", str(args.repeats)]
    if args.quick:
        cmd.append("--quick")
    print(f"isa_compare: {isa}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    env = {**os.environ, "GRUKIT_ISA": isa}
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out/isa"))
    parser.add_argument(
        "--isas", nargs="+", choices=ISAS, default=None, help="default: every ISA this CPU runs"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--precision", choices=("float32", "bf16"), default="float32")
    parser.add_argument("--quick", action="store_true", help="speed.py's toy grid (a smoke run)")
    parser.add_argument(
        "--compare-only", action="store_true", help="compare the runs already in OUT/<isa>"
    )
    args = parser.parse_args(argv)
    isas = list(dict.fromkeys(args.isas or runnable_isas(cpu_flags())))  # each once
    missing = [isa for isa in isas if isa not in runnable_isas(cpu_flags())]
    if len(isas) < 2 or (missing and not args.compare_only):
        why = f"this CPU cannot run {missing}" if missing else f"two or more ISAs, got {isas}"
        print(f"isa_compare.py: error: {why}", file=sys.stderr)
        return 2
    try:
        if not args.compare_only:
            for isa in isas:
                _run(isa, args)
        runs = {isa: json.loads((args.out / isa / "speed.json").read_text()) for isa in isas}
        rows = compare_isas(runs)
    except (ValueError, OSError, subprocess.CalledProcessError) as err:
        print(f"isa_compare.py: error: {err}", file=sys.stderr)
        return 2
    table = render_isa_markdown(rows, runs)
    write_json(args.out / "isa.json", {"isas": isas, "rows": [asdict(r) for r in rows]})
    atomic_write(args.out / "isa.md", table.encode())
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
