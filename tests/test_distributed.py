"""Training under torchrun (grukit.training.distributed): 2 processes on the CPU (gloo) end
with the parameters of 1 process with the same global batch (1e-6), for both commands; a
2-process run killed midway and resumed equals an uninterrupted one, with 2 processes
(bitwise) and with 1 (2e-5 after ~38 epochs); the row split and loss weights reproduce the
global mean."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import grukit
from grukit.data.text import read_time_machine
from grukit.training import load_state
from grukit.training.distributed import World, rows
from grukit.training.trainer import _shard

SRC = str(Path(grukit.__file__).resolve().parents[1])
TOL = 1e-6


def test_rows_cover_the_batch_once_and_weights_give_the_global_mean() -> None:
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 5, 7, 32):
        for k in (1, 2, 3, 4):
            losses = torch.rand(n, generator=g, dtype=torch.float64)  # per-row losses
            seen, weighted = [], 0.0
            for r in range(k):
                part = rows(n, World(r, k))
                seen += list(range(n))[part]
                local, share = _shard(losses, World(r, k))
                weighted += share * float(local.mean())  # what DDP sums before dividing by K
            assert seen == list(range(n))
            assert weighted / k == pytest.approx(float(losses.mean()), abs=1e-12)
    x, y = torch.arange(10).reshape(5, 2), torch.arange(10, 20).reshape(5, 2)
    (lx, ly), share = _shard((x, y), World(1, 2))
    assert torch.equal(lx, x[2:]) and torch.equal(ly, y[2:]) and share == pytest.approx(1.2)
    (lx, _), share = _shard((x[:1], y[:1]), World(0, 2))  # no row left: weight 0
    assert share == 0 and lx.shape[0] == 1


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "t.txt"
    path.write_text(read_time_machine()[:4000], encoding="utf-8")
    return path


def command(kind: str, text: Path, out: Path, epochs: int) -> list[str]:
    common = ["--out", str(out), "--epochs", str(epochs), "--no-progress", "--threads", "1"]
    if kind == "lm":  # 5 rows over 2 processes: 2 and 3
        return ["lm", "train", "--text", str(text), "--max-tokens", "none", "--batch-size", "5",
                "--num-steps", "8", "--hidden-size", "16", "--lr", "0.5", *common]  # fmt: skip
    return ["forecast", "train", "--hidden-size", "4", "--lookback", "12", "--batch-size", "15",
            *common]  # fmt: skip


def launch(args: list[str], procs: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    if procs == 1:
        cmd = [sys.executable, "-m", "grukit", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={procs}", "-m", "grukit", *args]  # fmt: skip
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def run(args: list[str], procs: int) -> str:
    p = launch(args, procs)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    return out


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_state(out / "checkpoint.safetensors")["model"]


def max_diff(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


@pytest.mark.parametrize("kind", ["lm", "forecast"])
def test_two_processes_equal_one_with_the_same_global_batch(
    kind: str, text: Path, tmp_path: Path
) -> None:
    run(command(kind, text, tmp_path / "one", 2), 1)
    printed = run(command(kind, text, tmp_path / "two", 2), 2)
    assert max_diff(tmp_path / "one", tmp_path / "two") < TOL
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]  # rank 0 alone writes
    assert printed.count("run directory:" if kind == "lm" else "wrote ") == 1  # one report


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_result(
    text: Path, tmp_path: Path
) -> None:
    epochs = 40
    run(command("lm", text, tmp_path / "whole", epochs), 2)
    cut = tmp_path / "cut"
    p = launch(command("lm", text, cut, epochs), 2)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill once epoch 2's checkpoint is on disk
        lines = (cut / "metrics.jsonl").read_text().splitlines() if cut.is_dir() else []
        if len(lines) >= 2 or p.poll() is not None:
            break
        time.sleep(0.05)
    # torchrun's workers run in sessions of their own: kill every process of this run
    subprocess.run(["pkill", "-KILL", "-f", f"out {cut} "], check=False)
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
    done = load_state(cut / "checkpoint.safetensors")["epoch"]
    if done >= epochs:
        pytest.skip("the run finished before it could be killed (a very fast machine)")
    resumed = tmp_path / "resumed-on-one"
    subprocess.run(["cp", "-r", str(cut), str(resumed)], check=True)
    resume = ["lm", "train", "--out", str(cut), "--resume", "--no-progress", "--threads", "1"]
    run(resume, 2)
    assert max_diff(cut, tmp_path / "whole") == 0.0  # the same processes: bitwise
    a, b = (json.loads((d / "summary.json").read_text()) for d in (cut, tmp_path / "whole"))
    assert a["train_perplexity"] == b["train_perplexity"]
    run([*resume[:3], str(resumed), *resume[4:]], 1)  # resumed with another process count
    # float32 sums in another order, compounded over the ~38 remaining epochs of SGD
    assert max_diff(resumed, tmp_path / "whole") < 2e-5
