"""`grukit lm train` and `grukit forecast train` behave identically: the same run options
in --help with every config field an option, and a test per rule run on both commands
(existing folders, --overwrite, --resume: missing run, another kind of run, a changed
option, more epochs; Ctrl-C and resuming after it, bitwise against an uninterrupted
run)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import grukit.training.trainer as trainer
from grukit.cli import main
from grukit.data.text import read_time_machine
from grukit.training import load_weights
from grukit.training.forecast_config import ForecastConfig
from grukit.training.lm_config import LMConfig

RUN_OPTIONS = ["--out", "--resume", "--overwrite", "--threads", "--no-progress"]
CONFIGS = {"lm": LMConfig, "forecast": ForecastConfig}
TIMING = ("seconds", "tokens_per_second", "windows_per_second")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def text(tmp_path: Path) -> Path:
    path = tmp_path / "t.txt"
    path.write_text(read_time_machine()[:2500], encoding="utf-8")
    return path


def args_for(command: str, text: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    common = ["--out", str(out), "--epochs", str(epochs), "--no-progress", *extra]
    if command == "lm":
        return ["lm", "train", "--text", str(text), "--max-tokens", "none", "--batch-size", "4",
                "--num-steps", "8", "--hidden-size", "8", *common]  # fmt: skip
    return [
        "forecast",
        "train",
        "--hidden-size",
        "4",
        "--lookback",
        "12",
        "--calibration",
        "validation",
        *common,
    ]  # one training per run: the loop is what is tested


def records(out: Path) -> list[dict[str, object]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING} for x in lines]


def one_error(capsys: pytest.CaptureFixture[str], command: str, *needles: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith(f"grukit {command}: error:") and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("command", ["lm", "forecast"])
def test_help_has_the_run_options_and_every_config_field(command: str, capsys) -> None:
    assert main([command, "train", "--help"]) == 0
    text = capsys.readouterr().out
    for option in RUN_OPTIONS:
        assert f"  {option}" in text, option
    for f in dataclasses.fields(CONFIGS[command]):
        flag = "--column" if f.name == "columns" else "--" + f.name.replace("_", "-")
        assert flag in text, flag
    for gone in ("--quiet", "--layers "):  # the one spelling both commands share
        assert gone not in text


@pytest.mark.parametrize("command", ["lm", "forecast"])
def test_an_existing_run_is_refused_then_replaced_with_overwrite(
    command: str, text: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    assert main(args_for(command, text, out, 1)) == 0
    before = (out / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main(args_for(command, text, out, 1)) == 2
    one_error(capsys, command, "new or empty folder", "--resume", "--overwrite")
    assert (out / "metrics.jsonl").read_bytes() == before
    assert main(args_for(command, text, out, 2, "--overwrite")) == 0
    assert [r["epoch"] for r in records(out)] == [1, 2]


@pytest.mark.parametrize("command", ["lm", "forecast"])
def test_resume_without_a_run_is_refused(command: str, text: Path, tmp_path: Path, capsys) -> None:
    assert main(args_for(command, text, tmp_path / "none", 1, "--resume")) == 2
    one_error(capsys, command, "expected a run to resume", "found no config.json")


def test_resume_refuses_the_other_commands_run(text: Path, tmp_path: Path, capsys) -> None:
    lm_run, fc_run = tmp_path / "lm", tmp_path / "fc"
    assert main(args_for("lm", text, lm_run, 1)) == 0
    assert main(args_for("forecast", text, fc_run, 1)) == 0
    capsys.readouterr()
    assert main(["lm", "train", "--out", str(fc_run), "--resume", "--no-progress"]) == 2
    one_error(capsys, "lm", "expected a language-model run to resume")
    assert main(["forecast", "train", "--out", str(lm_run), "--resume", "--no-progress"]) == 2
    one_error(capsys, "forecast", "expected a forecast run to resume")


@pytest.mark.parametrize("command", ["lm", "forecast"])
def test_resume_refuses_a_changed_option_and_extends_epochs(
    command: str, text: Path, tmp_path: Path, capsys
) -> None:
    out, whole = tmp_path / "run", tmp_path / "whole"
    assert main(args_for(command, text, out, 1)) == 0
    capsys.readouterr()
    changed = ["--out", str(out), "--resume", "--no-progress", "--hidden-size", "16"]
    assert main([command, "train", *changed]) == 2
    one_error(capsys, command, "only --epochs may change", "--hidden-size 16")
    assert main([command, "train", "--out", str(out), "--resume", "--epochs", "3",
                 "--no-progress"]) == 0  # fmt: skip
    assert main(args_for(command, text, whole, 3)) == 0
    if command == "lm":  # the d2l schedule is constant: extending equals the longer run
        assert records(out) == records(whole)
    assert [r["epoch"] for r in records(out)] == [1, 2, 3]
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3


@pytest.mark.parametrize("command", ["lm", "forecast"])
def test_ctrl_c_then_resume_equals_an_uninterrupted_run(
    command: str, text: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(args_for(command, text, whole, 3)) == 0
    real, calls = trainer.optimizer_step, []
    per_epoch = _steps_per_epoch(command, text, tmp_path)

    def interrupt(*args: object) -> float:
        calls.append(1)
        if len(calls) == per_epoch + 2:  # the second step of epoch 2
            raise KeyboardInterrupt
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(trainer, "optimizer_step", interrupt)
    capsys.readouterr()
    assert main(args_for(command, text, cut, 3)) == 130
    err = capsys.readouterr().err
    assert err.strip().endswith(f"grukit {command}: interrupted; resume with --resume"), err
    assert [r["epoch"] for r in records(cut)] == [1]
    monkeypatch.setattr(trainer, "optimizer_step", real)
    assert main([command, "train", "--out", str(cut), "--resume", "--no-progress"]) == 0
    assert records(cut) == records(whole)
    (a, meta_a), (b, meta_b) = (load_weights(d / "model.safetensors") for d in (whole, cut))
    assert meta_a == meta_b and all(torch.equal(a[k], b[k]) for k in a)


def _steps_per_epoch(command: str, text: Path, tmp_path: Path) -> int:
    """Optimizer steps in one epoch, counted on a one-epoch run."""
    calls: list[int] = []
    real = trainer.optimizer_step

    def count(*args: object) -> float:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    trainer.optimizer_step = count  # type: ignore[assignment]
    try:
        assert main(args_for(command, text, tmp_path / "count", 1)) == 0
    finally:
        trainer.optimizer_step = real
    return len(calls)
