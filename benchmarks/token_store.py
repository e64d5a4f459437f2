"""Encode a generated ~1 GB text into a token store: time and peak resident memory.

    PYTHONPATH=src python benchmarks/token_store.py [--mb 1024] [--raw] [--keep DIR]

The text is The Time Machine repeated with variation (each copy's lines rotated and every
k-th line upper-cased, k changing per copy), written to a temporary folder that is removed
afterwards (the text is never committed). Phases, each in a fresh child process so that
its peak RSS (VmHWM) is its own: build (encode, first use), reuse (hash the source,
check the store), one epoch of sequential batches (32 × 35) read from the map, and the
same epoch calling drop_resident every 4096 batches. Prints one line per phase.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, sys, time


def status():  # kB figures of this process: VmHWM is its own peak RSS (reset by exec)
    out = {}
    for line in open("/proc/self/status"):
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(rest.split()[0]) / 1024
    return out


import torch
from grukit.data.text import SequentialBatches
from grukit.data.token_store import drop_resident, load_corpus_mapped

base = status()["VmRSS"]
src, cache, letters, phase = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
t = time.perf_counter()
m = load_corpus_mapped(src, letters_only=letters, cache_dir=cache)
out = {"phase": phase, "built": m.built, "tokens": len(m.tokens), "dtype": str(m.tokens.dtype),
       "vocab": len(m.vocab), "seconds": time.perf_counter() - t}
if phase.startswith("epoch"):
    t = time.perf_counter()
    batches = SequentialBatches(m.tokens, 32, 35, generator=torch.Generator().manual_seed(0))
    for k, (x, y) in enumerate(batches):
        if phase == "epoch+drop" and k % 4096 == 4095:
            drop_resident(m.tokens)
    out["seconds"] = time.perf_counter() - t
    out["batches"] = len(batches)
out.update(status())
out["above_imports_mb"] = out["VmHWM"] - base
print(json.dumps(out))
"""


def _make_text(path: Path, megabytes: int) -> None:
    """The book again and again: copy i has its lines rotated by 37·i and every (2 + i % 7)-th
    line upper-cased, so that no two neighbouring copies are the same."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from grukit.data.text import read_time_machine

    lines = read_time_machine().splitlines()
    target, written, i = megabytes * 1_000_000, 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            k, rot = 2 + i % 7, (i * 37) % len(lines)
            copy = lines[rot:] + lines[:rot]
            body = "\n".join(ln.upper() if j % k == 0 else ln for j, ln in enumerate(copy)) + "\n"
            f.write(body)
            written += len(body)
            i += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1024, help="size of the generated text, MB")
    ap.add_argument("--raw", action="store_true", help="raw characters instead of letters only")
    ap.add_argument("--keep", default=None, help="work in this folder and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src, cache = work / "big.txt", work / "cache"
        t = time.perf_counter()
        if not src.exists():
            _make_text(src, args.mb)
        print(
            f"text: {src.stat().st_size / 1e6:.0f} MB generated in {time.perf_counter() - t:.0f} s"
        )
        env_path = str(Path(__file__).resolve().parents[1] / "src")
        for phase in ("build", "reuse", "epoch", "epoch+drop"):
            mode = "0" if args.raw else "1"
            cmd = [sys.executable, "-c", _CHILD, str(src), str(cache), mode, phase]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                 env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})  # fmt: skip
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(
                f"{r['phase']:>10}: {r['seconds']:6.1f} s  built={r['built']}  "
                f"{r['tokens']:,} tokens {r['dtype']} vocab {r['vocab']}  peak RSS "
                f"{r['VmHWM']:.0f} MiB ({r['above_imports_mb']:.0f} above the imports); at the "
                f"end {r['RssAnon']:.0f} MiB anonymous + {r['RssFile']:.0f} MiB file pages"
                + (f"  ({r['batches']:,} batches 32×35)" if "batches" in r else "")
            )


if __name__ == "__main__":
    main()
