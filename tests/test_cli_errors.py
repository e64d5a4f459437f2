"""The CLI's one error boundary (``grukit.cli.main``): every failure a user can cause is
one line on stderr naming what and where, exit code 2; Ctrl-C is 130 with a hint to
--resume; a bug is exit code 1, its traceback only under ``--debug``."""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import pytest
import torch

import grukit.cli.lm as cli_lm
from grukit.cli import main
from grukit.data.text import read_time_machine


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # lm train sets its own


def _one_error_line(err: str, prefix: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> Path:
    """A tiny language-model run (one epoch on 3,000 characters)."""
    base = tmp_path_factory.mktemp("lm")
    text = base / "small.txt"
    text.write_text(read_time_machine()[:3000], encoding="utf-8")
    out = base / "run"
    args = ["lm", "train", "--out", str(out), "--text", str(text), "--max-tokens", "none",
            "--batch-size", "4", "--num-steps", "8", "--hidden-size", "8", "--epochs", "1",
            "--backend", "fused", "--no-progress"]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


# --- real failures, end to end -----------------------------------------------------------
def test_usage_error_is_one_line_and_returned(capsys) -> None:
    assert main(["lm", "generate", "--run", "x", "--length", "many"]) == 2
    line = _one_error_line(capsys.readouterr().err, "grukit lm generate: error:")
    assert "--length" in line and "invalid int value: 'many'" in line


def test_help_returns_0(capsys) -> None:
    assert main(["--help"]) == 0
    assert "--debug" in capsys.readouterr().out


def test_out_below_a_file(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "run"
    assert main(["lm", "train", "--out", str(out), "--epochs", "1", "--no-progress"]) == 2
    line = _one_error_line(capsys.readouterr().err, "grukit lm: error:")
    # the run folder's parent is a file: mkdir says so (EEXIST) or a later open (ENOTDIR)
    reasons = (os.strerror(errno.ENOTDIR), os.strerror(errno.EEXIST))
    assert str(tmp_path / "file") in line and any(r in line for r in reasons)


def test_deeply_nested_config(tmp_path, capsys) -> None:
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["lm", "generate", "--run", str(tmp_path)]) == 2
    line = _one_error_line(capsys.readouterr().err, "grukit lm: error:")
    assert "nest" in line and str(tmp_path) in line


def test_csv_field_over_the_limit(tmp_path, capsys) -> None:
    path = tmp_path / "big.csv"
    path.write_text("t,v\n1,2\n2," + "9" * (csv.field_size_limit() + 1) + "\n")
    args = ["forecast", "train", "--csv", str(path), "--column", "v", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err, "grukit forecast: error:")
    assert f"CSV {path}, line 3" in line and "at most 131,072 characters" in line


def test_message_is_not_doubled(tmp_path, capsys) -> None:
    text = tmp_path / "short.txt"
    text.write_text(read_time_machine()[:400])
    args = ["lm", "train", "--out", str(tmp_path / "r"), "--text", str(text), "--max-tokens",
            "none", "--batch-size", "32", "--num-steps", "35", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err, "grukit lm: error:")
    assert line.count("grukit") == 1 and "at least" in line


def test_forecast_predict_on_an_lm_run(lm_run, capsys) -> None:
    assert main(["forecast", "predict", "--run", str(lm_run)]) == 2
    line = _one_error_line(capsys.readouterr().err, "grukit forecast: error:")
    assert str(lm_run) in line


def test_checkpoint_of_another_shape(lm_run, tmp_path, capsys) -> None:
    run = _copy_run(lm_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["lm"]["hidden_size"] = 12  # the weights hold 8
    (run / "config.json").write_text(json.dumps(config))
    assert main(["lm", "generate", "--run", str(run)]) == 2
    line = _one_error_line(capsys.readouterr().err, "grukit lm: error:")
    assert "shape" in line and str(run) in line


# --- each kind of failure, raised where the command runs ----------------------------------
def _raise(exc: BaseException):
    def func(args):
        raise exc

    return func


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), ["No space left on device", "RUN"]),
        (PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/r/x"), ["/r/x: Permission"]),
        (OSError(errno.EROFS, os.strerror(errno.EROFS), "/r/y"), ["/r/y: Read-only file system"]),
        (IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), "/r/z"), ["/r/z: Is a dir"]),
        (RecursionError("maximum recursion depth exceeded"), ["nested too deeply", "RUN"]),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), ["UTF-8"]),
        (csv.Error("field larger than field limit (131072)"), ["Error: field larger"]),
        (OverflowError("math range error"), ["OverflowError: math range error"]),
        (json.JSONDecodeError("Expecting value", "x", 0), ["Expecting value"]),
        (KeyError("config"), ["'config'", "RUN"]),
        (RuntimeError("Error(s) in loading state_dict for CharLM:\n\tsize mismatch"), ["RUN"]),
        (MemoryError(), ["memory"]),
        (ValueError("grukit lm: expected x\nsecond line"), ["expected x second line"]),
    ],
)
def test_user_errors_exit_2_in_one_line(monkeypatch, capsys, tmp_path, exc, expected) -> None:
    monkeypatch.setattr(cli_lm, "_generate", _raise(exc))
    assert main(["lm", "generate", "--run", str(tmp_path)]) == 2
    line = _one_error_line(capsys.readouterr().err, "grukit lm: error: ")
    assert line.count("grukit lm") == 1
    for piece in expected:
        assert piece.replace("RUN", f"--run {tmp_path}") in line, line


def test_ctrl_c_in_train_hints_at_resume(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(cli_lm, "_train", _raise(KeyboardInterrupt()))
    assert main(["lm", "train", "--out", str(tmp_path)]) == 130
    line = _one_error_line(capsys.readouterr().err, "grukit lm:")
    assert line == "grukit lm: interrupted; resume with --resume"
    monkeypatch.setattr(cli_lm, "_generate", _raise(KeyboardInterrupt()))
    assert main(["lm", "generate", "--run", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "grukit lm: interrupted"


def test_a_bug_exits_1_and_shows_its_traceback_only_with_debug(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli_lm, "_generate", _raise(ZeroDivisionError("division by zero")))
    assert main(["lm", "generate", "--run", "r"]) == 1
    line = _one_error_line(capsys.readouterr().err, "grukit lm: internal error")
    assert "ZeroDivisionError: division by zero" in line and "--debug" in line
    assert main(["--debug", "lm", "generate", "--run", "r"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError" in err
    # a RuntimeError that is not a foreign checkpoint stays a bug
    monkeypatch.setattr(cli_lm, "_generate", _raise(RuntimeError("CUDA error: misaligned")))
    assert main(["lm", "generate", "--run", "r"]) == 1
