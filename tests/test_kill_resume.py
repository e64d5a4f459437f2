"""Kill-and-resume trials: ``grukit lm train`` and ``grukit forecast train`` run in a
subprocess, are SIGKILLed at random moments (seeded), and are started again (``--resume``
when a run exists, else afresh) until they finish. The final model must be bitwise equal
to an uninterrupted run's, metrics.jsonl must hold each epoch once, and nothing a killed
write or start left behind may remain. Oracle: the uninterrupted subprocess run.

GRUKIT_KILL_TRIALS sets the number of kills per command (default 3; each start costs a
Python + torch start-up, ~3 s idle, so the file takes ~40 s idle, ~2 min on a loaded CPU).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from grukit.data.text import read_time_machine
from grukit.training import load_state, load_weights

SRC = str(Path(__file__).resolve().parents[1] / "src")
KILLS = int(os.environ.get("GRUKIT_KILL_TRIALS", "3"))


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "grukit", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = _start(args)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    return time.perf_counter() - t0


def _trials(args: list[str], out: Path, span: float, seed: int) -> int:
    """Kill ``KILLS`` times at random moments in (0, span), then let it finish; returns
    the number of kills that landed before the process ended."""
    rng, landed = random.Random(seed), 0
    for attempt in range(KILLS + 20):
        if os.path.lexists(out):  # a run exists only whole: config and a checkpoint
            assert (out / "config.json").is_file() and (out / "checkpoint.safetensors").is_file()
        cmd = [*args, "--resume"] if out.exists() else args
        proc = _start(cmd)
        if attempt < KILLS:
            try:
                proc.wait(timeout=rng.uniform(0.05, span))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                landed += 1
                continue
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        if attempt >= KILLS:
            return landed
    raise AssertionError("the run never finished")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


def _epochs(run: Path) -> list[int]:
    return [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("seed", [0])
def test_lm_train_killed_at_random_resumes_bitwise(tmp_path, seed) -> None:
    text = tmp_path / "t.txt"
    text.write_text(read_time_machine()[:2000], encoding="utf-8")
    common = ["lm", "train", "--text", str(text), "--max-tokens", "none", "--batch-size", "4",
              "--num-steps", "8", "--hidden-size", "8", "--epochs", "4", "--optimizer", "adam",
              "--lr", "0.01", "--lr-schedule", "cosine", "--threads", "1",
              "--no-progress"]  # fmt: skip
    span = _run([*common, "--out", str(tmp_path / "whole")])
    landed = _trials([*common, "--out", str(tmp_path / "cut")], tmp_path / "cut", span, seed)
    assert landed >= 1
    a = load_state(tmp_path / "whole" / "checkpoint.safetensors")
    b = load_state(tmp_path / "cut" / "checkpoint.safetensors")
    assert a["epoch"] == b["epoch"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    wa, _ = load_weights(tmp_path / "whole" / "model.safetensors")
    wb, _ = load_weights(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _epochs(tmp_path / "cut") == [1, 2, 3, 4]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("seed", [1])
def test_forecast_train_killed_at_random_resumes_bitwise(tmp_path, seed) -> None:
    common = ["forecast", "train", "--dataset", "airline", "--epochs", "8", "--hidden-size",
              "8", "--lookback", "12", "--threads", "1", "--no-progress"]  # fmt: skip
    span = _run([*common, "--out", str(tmp_path / "whole")])
    landed = _trials([*common, "--out", str(tmp_path / "cut")], tmp_path / "cut", span, seed)
    assert landed >= 1
    for name in ("model.safetensors",):
        wa, _ = load_weights(tmp_path / "whole" / name)
        wb, _ = load_weights(tmp_path / "cut" / name)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    a = load_state(tmp_path / "whole" / "checkpoint.safetensors")
    b = load_state(tmp_path / "cut" / "checkpoint.safetensors")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    sa = json.loads((tmp_path / "whole" / "summary.json").read_text())
    sb = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert sa["test"] == sb["test"] and sa["best_epoch"] == sb["best_epoch"]
    assert _epochs(tmp_path / "cut") == list(range(1, 9))
    assert _leftovers(tmp_path) == []
