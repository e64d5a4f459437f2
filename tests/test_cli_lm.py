"""`grukit lm train | generate` end to end on a small corpus, and its errors."""

from __future__ import annotations

import json

import pytest

from grukit.cli import main
from grukit.data.text import read_time_machine

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text(read_time_machine()[:5000], encoding="utf-8")
    return path


def _train_args(corpus_file, out, *extra: str) -> list[str]:
    return ["lm", "train", "--out", str(out), "--text", str(corpus_file), "--max-tokens",
            "none", "--batch-size", "4", "--num-steps", "8", "--hidden-size", "16",
            "--epochs", "3", "--no-progress", *extra]  # fmt: skip


def test_train_then_generate(tmp_path, corpus_file, capsys) -> None:
    out = tmp_path / "run"
    assert main(_train_args(corpus_file, out, "--optimizer", "adam", "--lr", "0.01")) == 0
    assert "perplexity: train" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    for key in ("train_perplexity", "val_perplexity", "tokens_per_second", "wall_seconds"):
        assert summary[key] > 0
    assert summary["epochs_completed"] == 3
    config = json.loads((out / "config.json").read_text())
    assert config["lm"]["hidden_size"] == 16 and config["lm"]["optimizer"] == "adam"
    assert config["lm"]["max_tokens"] is None and config["vocab"][0] == "<unk>"
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    assert (out / "perplexity.png").read_bytes()[:4] == b"\x89PNG"

    args = ["lm", "generate", "--run", str(out), "--prefix", "time traveller", "--length", "30"]
    assert main(args) == 0
    greedy = capsys.readouterr().out.strip()
    assert greedy.startswith("time traveller") and len(greedy) == 44
    sampled = [*args, "--temperature", "0.9", "--top-k", "4", "--seed", "5"]
    assert main(sampled) == 0
    first = capsys.readouterr().out
    assert main(sampled) == 0
    assert capsys.readouterr().out == first


def test_the_report_names_the_kept_epoch_and_the_baselines(tmp_path, corpus_file, capsys) -> None:
    """--keep best with a later epoch worse on validation: stdout names the
    epoch kept and prints the count baselines of summary.json."""
    out, text_file = tmp_path / "run", tmp_path / "t.txt"
    text_file.write_text(read_time_machine()[:6000], encoding="utf-8")
    args = _train_args(text_file, out, "--optimizer", "adam", "--lr", "0.05", "--epochs", "6",
                       "--hidden-size", "24", "--seed", "3", "--eval-batch-size", "8",
                       "--keep", "best")  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    kept, b = summary["kept_epoch"], summary["baselines"]
    assert kept < 6 and f"perplexity (epoch {kept}, the best validation): train" in text
    assert f"unigram {b['unigram']['val_perplexity']:.3f}" in text
    assert f"Kneser-Ney {b['kneser_ney']['order']}-gram" in text


def test_raw_chars_and_resume(tmp_path, corpus_file, capsys) -> None:
    out = tmp_path / "raw"
    assert main(_train_args(corpus_file, out, "--raw-chars", "--epochs", "2")) == 0
    vocab = json.loads((out / "config.json").read_text())["vocab"]
    assert "\n" in vocab and "T" in vocab  # raw characters: case and line breaks kept
    assert main(["lm", "train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs_completed"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["lm", "train", "--out", "{tmp}/a", "--preset", "nope"], "preset"),
        (["lm", "train", "--out", "{tmp}/a", "--text", "{tmp}/missing.txt"], "found none"),
        (["lm", "train", "--out", "{tmp}/a", "--text", "{tmp}/empty.txt"], "empty"),
        (["lm", "train", "--out", "{tmp}/a", "--text", "{tmp}/binary.txt"], "UTF-8"),
        (["lm", "train", "--out", "{tmp}/a", "--text", "{tmp}/short.txt"], "at least"),
        (["lm", "train", "--out", "{tmp}/nothing", "--resume"], "config.json"),
        (["lm", "generate", "--run", "{tmp}"], "config"),
        (["lm", "generate", "--run", "{tmp}/nowhere"], "found none"),
    ],
)
def test_errors(tmp_path, capsys, args, message) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(b"\x80\x81 abc")
    (tmp_path / "short.txt").write_text("the time machine by h g wells")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(("grukit lm: error:", "grukit lm train: error:")) and message in err
