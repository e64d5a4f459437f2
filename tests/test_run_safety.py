"""Nothing a user made is lost: runs are not replaced unless asked, --resume refuses what
does not match, divergence keeps the last good checkpoint, a failed start leaves no folder,
--output writes regular files only; user mistakes give one line and exit code 2."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest
import torch

import grukit.training.lm as lm
import grukit.training.trainer as trainer
from grukit.cli import main
from grukit.data.text import read_time_machine
from grukit.training import RunDir, load_state
from grukit.training.lm import LMConfig, TrainingDiverged, evaluate, train_lm

FAST = [
    "--epochs",
    "2",
    "--hidden-size",
    "4",
    "--lookback",
    "12",
    "--no-progress",
    "--threads",
    "1",
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def text(tmp_path) -> Path:
    path = tmp_path / "t.txt"
    path.write_text(read_time_machine()[:2500], encoding="utf-8")
    return path


def lm_args(text: Path, out: Path, *extra: str) -> list[str]:
    return ["lm", "train", "--out", str(out), "--text", str(text), "--max-tokens", "none",
            "--batch-size", "4", "--num-steps", "8", "--hidden-size", "8", "--epochs", "2",
            "--no-progress", *extra]  # fmt: skip


def one_error(capsys, command: str, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"grukit {command}: error:") and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (a run may hold sub-runs: calibration origins, members)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def only_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_lm_train_never_replaces_a_run_unless_asked(tmp_path, text, capsys) -> None:
    out = tmp_path / "run"
    assert main(lm_args(text, out)) == 0
    before = snapshot(out)
    assert main(lm_args(text, out, "--epochs", "1")) == 2
    one_error(capsys, "lm", "holding files", "--resume", "--overwrite")
    assert snapshot(out) == before  # the earlier run, byte for byte
    (out / "notes.txt").write_text("mine")
    assert main(lm_args(text, out, "--epochs", "1", "--overwrite", "--seed", "4")) == 0
    assert json.loads((out / "config.json").read_text())["lm"]["epochs"] == 1
    assert not (out / "notes.txt").exists()  # replaced whole, not mixed
    assert only_entries(tmp_path) == ["run", "t.txt"]  # no staging folder left
    # --overwrite never replaces a folder that is not a run
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    assert main(lm_args(text, other, "--overwrite")) == 2
    one_error(capsys, "lm", "config.json")
    assert (other / "thesis.tex").read_text() == "years of work"


def test_forecast_train_never_replaces_a_run_unless_asked(tmp_path, capsys) -> None:
    out = tmp_path / "air"
    assert main(["forecast", "train", "--out", str(out), *FAST]) == 0
    assert main(["forecast", "predict", "--run", str(out)]) == 0
    before = snapshot(out)
    assert "forecast.csv" in before
    assert main(["forecast", "train", "--out", str(out), *FAST, "--seed", "3"]) == 2
    one_error(capsys, "forecast", "holding files", "--overwrite")
    assert snapshot(out) == before
    assert main(["forecast", "train", "--out", str(out), *FAST, "--seed", "3", "--overwrite"]) == 0
    assert not (out / "forecast.csv").exists()  # the old run's output does not mix in
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 3


def test_forecast_resume_of_a_missing_run_refuses(tmp_path, capsys) -> None:
    assert main(["forecast", "train", "--out", str(tmp_path / "none"), "--resume", *FAST]) == 2
    one_error(capsys, "forecast", "found no config.json")
    assert not (tmp_path / "none").exists()


def test_resume_extends_epochs_bitwise_and_refuses_other_changes(tmp_path, text, capsys) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(lm_args(text, whole, "--epochs", "3")) == 0
    assert main(lm_args(text, cut, "--epochs", "2")) == 0
    assert main(["lm", "train", "--out", str(cut), "--resume", "--epochs", "3",
                 "--no-progress"]) == 0  # fmt: skip
    a, b = load_state(whole / "checkpoint.safetensors"), load_state(cut / "checkpoint.safetensors")
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    capsys.readouterr()
    assert main(["lm", "train", "--out", str(cut), "--resume", "--hidden-size", "9"]) == 2
    one_error(capsys, "lm", "--hidden-size 9 (the run's: 8)", "only --epochs")
    with pytest.raises(ValueError, match="only epochs may change"):
        cfg = LMConfig.from_dict(json.loads((cut / "config.json").read_text())["lm"])
        train_lm(LMConfig(**{**cfg.to_dict(), "lr": 0.5}), cut, resume=True, show_progress=False)
    # the text edited between runs: the vocabulary order would change silently
    text.write_text("zzzz " * 50 + text.read_text(), encoding="utf-8")
    assert main(["lm", "train", "--out", str(cut), "--resume", "--epochs", "4"]) == 2
    one_error(capsys, "lm", "different data")
    assert load_state(cut / "checkpoint.safetensors")["epoch"] == 3


def test_forecast_resume_refuses_changed_data(tmp_path, capsys) -> None:
    csv = tmp_path / "s.csv"
    rows = [f"{i},{10 + math.sin(i / 3) + i / 50:.6f}" for i in range(80)]
    csv.write_text("t,v\n" + "\n".join(rows) + "\n")
    args = ["forecast", "train", "--csv", str(csv), "--column", "v", "--horizon", "4",
            "--lookback", "8", "--season", "4", "--out", str(tmp_path / "r"),
            *FAST[:4]]  # fmt: skip
    assert main([*args, "--no-progress"]) == 0
    csv.write_text("t,v\n" + "\n".join(rows[:-1] + ["79,99"]) + "\n")
    assert main([*args, "--no-progress", "--resume", "--epochs", "3"]) == 2
    one_error(capsys, "forecast", "different data")


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--lr", "-1"], "lr > 0"),
        (["--lr", "inf"], "finite"),
        (["--clip", "nan"], "finite"),
        (["--weight-decay", "-1"], "weight_decay"),
        (["--cell", "lstm", "--backend", "native"], "native"),
        (["--text", "/nonexistent/t.txt"], "found none"),
        (["--threads", "0"], "--threads > 0"),
    ],
)
def test_lm_failed_validation_leaves_no_folder(tmp_path, text, capsys, extra, needle) -> None:
    assert main(lm_args(text, tmp_path / "new" / "run", *extra)) == 2
    one_error(capsys, "lm", needle)
    assert only_entries(tmp_path) == ["t.txt"]


@pytest.mark.parametrize(
    "extra, needle",
    [(["--lr", "-1"], "lr > 0"), (["--lr", "nan"], "finite"), (["--dropout", "inf"], "finite"),
     (["--backend", "nope"], "nope")],
)  # fmt: skip
def test_forecast_failed_validation_leaves_no_folder(tmp_path, capsys, extra, needle) -> None:
    assert main(["forecast", "train", "--out", str(tmp_path / "r"), *FAST, *extra]) == 2
    one_error(capsys, "forecast", needle)
    assert only_entries(tmp_path) == []


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, text, monkeypatch) -> None:
    cfg = LMConfig(text=str(text), max_tokens=None, batch_size=4, num_steps=8, hidden_size=8,
                   epochs=3, seed=2, eval_batch_size=4)  # fmt: skip
    train_lm(cfg, tmp_path / "whole", show_progress=False)
    real, calls = trainer.optimizer_step, []

    def failing(*args, **kw):  # the loss turns NaN in the second epoch
        loss = real(*args, **kw)
        calls.append(1)
        return float("nan") if len(calls) == 100 else loss

    monkeypatch.setattr(trainer, "optimizer_step", failing)
    run = RunDir(tmp_path / "cut")
    with pytest.raises(TrainingDiverged, match=r"a loss of nan .* epoch 2.*checkpoint \(epoch 1\)"):
        train_lm(cfg, run.path, show_progress=False)
    assert load_state(run.checkpoint)["epoch"] == 1
    lines = run.metrics.read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1]  # strict JSON, no NaN
    monkeypatch.setattr(trainer, "optimizer_step", real)
    train_lm(cfg, run.path, resume=True, show_progress=False)  # the kept checkpoint is good
    a, b = load_state(tmp_path / "whole" / "checkpoint.safetensors"), load_state(run.checkpoint)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_huge_learning_rate_diverges_with_one_line(tmp_path, text, capsys) -> None:
    assert main(lm_args(text, tmp_path / "lm", "--lr", "1e30")) == 2
    one_error(capsys, "lm", "expected finite training", "epoch 1", "checkpoint (epoch 0)")
    assert load_state(tmp_path / "lm" / "checkpoint.safetensors")["epoch"] == 0
    assert (tmp_path / "lm" / "metrics.jsonl").read_text() == ""
    assert main(["forecast", "train", "--out", str(tmp_path / "fc"), *FAST, "--lr", "1e30"]) == 2
    one_error(capsys, "forecast", "expected finite training")
    for line in (tmp_path / "fc" / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in metrics.jsonl"))


def test_perplexity_overflow_is_infinity_not_an_exception() -> None:
    assert lm.perplexity(800.0) == math.inf and lm.perplexity(1.0) == pytest.approx(math.e)
    model = lm.CharLM(5, 4, backend="reference")
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([2000.0, -2000.0, -2000.0, -2000.0, -2000.0]))
    corpus = torch.tensor([1, 2, 3, 4, 1, 2, 3, 4, 1])  # every target costs ~4000 nats
    assert evaluate(model, corpus, batch_size=2, num_steps=4) == math.inf


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--temperature", "nan"], "finite temperature > 0"),
        (["--temperature", "0"], "finite temperature > 0"),
        (["--temperature", "-1"], "finite temperature > 0"),
        (["--temperature", "inf"], "finite temperature > 0"),
        (["--prefix", "Time Traveller 42"], None),  # letters-only: digits become spaces
        (["--prefix", "zqxj"], "'q' not in it"),  # a letter the small text lacks
    ],
)
def test_generate_arguments(tmp_path, text, capsys, extra, needle) -> None:
    out = tmp_path / "run"
    assert main(lm_args(text, out, "--epochs", "1")) == 0
    capsys.readouterr()
    code = main(["lm", "generate", "--run", str(out), "--length", "5", *extra])
    if needle is None:
        assert code == 0
    else:
        assert code == 2
        one_error(capsys, "lm", needle)


def test_out_of_vocabulary_prefix_names_the_characters(tmp_path, text, capsys) -> None:
    out = tmp_path / "raw"
    assert main(lm_args(text, out, "--epochs", "1", "--raw-chars")) == 0
    capsys.readouterr()
    vocab = json.loads((out / "config.json").read_text())["vocab"]
    assert "é" not in vocab and "#" not in vocab
    assert main(["lm", "generate", "--run", str(out), "--prefix", "The é#"]) == 2
    one_error(capsys, "lm", "'#', 'é' not in it")


@pytest.fixture
def air(tmp_path) -> Path:
    out = tmp_path / "air"
    assert main(["forecast", "train", "--out", str(out), *FAST]) == 0
    return out


@pytest.mark.parametrize("kind", ["fifo", "dir", "link", "device"])
def test_predict_output_writes_regular_files_only(tmp_path, air, capsys, kind) -> None:
    target = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dir":
        target.mkdir()
    elif kind == "link":
        target.symlink_to("/proc/self/fd/1")
    else:
        target = Path("/dev/null")
    mode = os.lstat(target).st_mode
    capsys.readouterr()
    assert main(["forecast", "predict", "--run", str(air), "--output", str(target)]) == 2
    one_error(capsys, "forecast", "--output", "regular file")
    assert os.lstat(target).st_mode == mode  # left as it was


def test_predict_output_replaces_a_regular_file_with_the_umask_mode(tmp_path, air) -> None:
    target = tmp_path / "f.csv"
    target.write_text("old")
    os.chmod(target, 0o600)
    old = os.umask(0o022)
    try:
        assert main(["forecast", "predict", "--run", str(air), "--output", str(target)]) == 0
    finally:
        os.umask(old)
    assert target.read_text().startswith("time,lower80,median,upper80")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_predict_csv_with_column_for_a_bundled_run(tmp_path, air, capsys) -> None:
    from grukit.data.series import load_bundled

    s = load_bundled("airline")
    rows = [
        f"{s.timeline.to_text(o)},{v:g}"
        for o, v in zip(s.timeline.ordinals, s.values[:, 0], strict=True)
    ]
    csv = tmp_path / "mine.csv"
    csv.write_text("when,pax\n" + "\n".join(rows) + "\n")
    capsys.readouterr()
    assert (
        main(["forecast", "predict", "--run", str(air), "--output", str(tmp_path / "a.csv")]) == 0
    )
    args = ["forecast", "predict", "--run", str(air), "--csv", str(csv), "--output"]
    assert main([*args, str(tmp_path / "b.csv"), "--column", "pax", "--date-column", "when"]) == 0
    # the same values under other names: the same forecast (oracle: the run's own series)
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    capsys.readouterr()
    assert main([*args, str(tmp_path / "c.csv"), "--column", "nope", "--date-column", "when"]) == 2
    one_error(capsys, "forecast", "'nope'")
    assert main(["forecast", "predict", "--run", str(air), "--column", "pax"]) == 2
    one_error(capsys, "forecast", "only with --csv")


def test_threads_are_capped_at_the_cpus(air, capsys) -> None:
    assert main(["forecast", "predict", "--run", str(air), "--threads", "100000"]) == 0
    err = capsys.readouterr().err
    assert "--threads 100000 is more than" in err
    assert torch.get_num_threads() <= (os.cpu_count() or 1)


def test_a_run_of_the_other_kind_is_refused(tmp_path, text, air, capsys) -> None:
    lm_run = tmp_path / "lm"
    assert main(lm_args(text, lm_run, "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(["forecast", "predict", "--run", str(lm_run)]) == 2
    one_error(capsys, "forecast", "got a language-model run")
    assert main(["lm", "generate", "--run", str(air)]) == 2
    one_error(capsys, "lm", "got a forecast run")
    assert main(["forecast", "train", "--out", str(lm_run), "--resume", "--no-progress"]) == 2
    one_error(capsys, "forecast", "expected a forecast run to resume")
    assert main(["lm", "train", "--out", str(air), "--resume", "--no-progress"]) == 2
    one_error(capsys, "lm", "expected a language-model run to resume")
