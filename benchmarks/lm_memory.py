"""Peak memory of `grukit lm train` on a generated text of ~1 GB: bounded, not proportional
to the text (README, "Texts larger than memory").

    PYTHONPATH=src .venv/bin/python benchmarks/lm_memory.py [--mb 1024]

The text is benchmarks/token_store.py's (The Time Machine repeated with variation), in a
temporary folder removed afterwards. `lm train` runs on it in a child process with its own
token cache: the first 100,000 training tokens for one epoch (a hidden size of 64), the
last 1% of the text held out for validation (about 10 M tokens, read by `evaluate` and
the count baselines). The child's peak resident set (getrusage of the waited-for child)
is compared with a child that only imports torch and grukit's training (the native
kernel, built into the temporary cache first, is not measured: compilers are children).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mb(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one child process, measured by its own wait."""
    t = time.perf_counter()
    pid = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL).pid
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:6])}…: failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1024, help="size of the generated text")
    args = ap.parse_args(argv)
    spec = importlib.util.spec_from_file_location(
        "token_store_bench", Path(__file__).with_name("token_store.py")
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "big.txt"
        bench._make_text(text, args.mb)
        env = {**os.environ, "GRUKIT_CACHE": str(Path(tmp) / "cache")}
        native = "from grukit.backends import native; assert native.available()"
        _peak_mb([sys.executable, "-c", native], env)  # the kernel, built once: not measured
        imports, _ = _peak_mb(
            [sys.executable, "-c", "import torch, grukit.training.lm, grukit.cli"], env
        )
        train = [sys.executable, "-m", "grukit", "lm", "train", "--text", str(text), "--out",
                 str(Path(tmp) / "run"), "--max-tokens", "100000", "--epochs", "1",
                 "--hidden-size", "64", "--val-fraction", "0.01", "--no-progress"]  # fmt: skip
        peak, seconds = _peak_mb(train, env)
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    out = {
        "text_mb": args.mb,
        "text_bytes": text.stat().st_size if text.exists() else None,
        "imports_peak_mb": round(imports, 1),
        "lm_train_peak_mb": round(peak, 1),
        "above_imports_mb": round(peak - imports, 1),
        "seconds": round(seconds, 1),
        "val_perplexity": summary["val_perplexity"],
        "baseline_kn": summary["baselines"]["kneser_ney"]["val_perplexity"],
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
