"""Property-based tests (hypothesis) of the ``grukit`` command: random and invalid flag
values, corrupt and foreign files behind --run and --csv. Every run exits 0 or 2; a
2 is one line on stderr naming the error; never a traceback. Nothing trains for long:
the inputs are invalid, or the settings tiny (one epoch, a few hidden units)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grukit.cli import main
from grukit.data.text import read_time_machine

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_DIR = Path(tempfile.mkdtemp(prefix="grukit-cli-props-"))


def _run(argv: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``grukit argv``, checked for the boundary's promises."""
    err, out = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
    finally:
        torch.set_num_threads(threads)
    text = err.getvalue()
    assert "Traceback" not in text, text
    assert code in (0, 2), (code, argv, text)
    if code == 2:
        lines = text.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("grukit") and "error:" in lines[0], text
    return code, text


@pytest.fixture(scope="module")
def runs() -> dict[str, Path]:
    """A tiny LM run and a tiny forecast run, and a small corpus."""
    corpus = _DIR / "small.txt"
    corpus.write_text(read_time_machine()[:3000], encoding="utf-8")
    lm = _DIR / "lm"
    code, text = _run(["lm", "train", "--out", str(lm), "--text", str(corpus), "--max-tokens",
                       "none", "--batch-size", "4", "--num-steps", "8", "--hidden-size", "8",
                       "--epochs", "1", "--backend", "fused", "--no-progress"])  # fmt: skip
    assert code == 0, text
    series = _DIR / "monthly.csv"
    rows = [f"{1950 + k // 12}-{k % 12 + 1:02d},{100 + k % 12 * 3 + k}" for k in range(40)]
    series.write_text("Month,Passengers\n" + "\n".join(rows) + "\n")
    fc = _DIR / "fc"
    code, text = _run(["forecast", "train", "--csv", str(series), "--column", "Passengers",
                       "--date-column", "Month", "--out", str(fc), "--epochs", "1",
                       "--hidden-size", "4", "--lookback", "4", "--horizon", "3",
                       "--backend", "fused", "--no-progress"])  # fmt: skip
    assert code == 0, text
    return {"lm": lm, "forecast": fc, "corpus": corpus}


def _copy(src: Path, name: str) -> Path:
    dst = _DIR / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


# --- strategies ------------------------------------------------------------------------
ints = st.one_of(st.integers(-3, 40), st.sampled_from(["x", "", "1e3", "0x10", "nan"]))
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.sampled_from(["nan", "-inf", "inf", "1e309", "abc", "", "-0"]),
)
_NONFINITE = {"nan", "inf", "1e309"}  # see test_generate_refuses_a_nonfinite_temperature
words = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


# --- properties ------------------------------------------------------------------------
@settings(SETTINGS, max_examples=100)
@given(
    length=ints,
    temperature=st.none() | floats.filter(lambda t: t.lower().lstrip("-") not in _NONFINITE),
    top_k=st.none() | ints,
    prefix=words,
    seed=ints,
)
def test_lm_generate_with_random_flags(runs, length, temperature, top_k, prefix, seed) -> None:
    argv = ["lm", "generate", "--run", str(runs["lm"]), "--prefix", prefix, "--length",
            str(length), "--seed", str(seed)]  # fmt: skip
    if temperature is not None:
        argv += ["--temperature", temperature]
    if top_k is not None:
        argv += ["--top-k", str(top_k)]
    _run(argv)


@settings(SETTINGS, max_examples=60)
@given(
    flag=st.sampled_from(
        [
            "--lr",
            "--clip",
            "--hidden-size",
            "--batch-size",
            "--num-steps",
            "--epochs",
            "--val-fraction",
            "--max-tokens",
            "--threads",
            "--preset",
            "--optimizer",
            "--cell",
            "--backend",
            "--num-layers",
        ]
    ),  # fmt: skip
    value=st.one_of(ints.map(str), floats, words),
)
def test_lm_train_with_an_invalid_or_tiny_flag(runs, flag: str, value: str) -> None:
    out = _DIR / "train"
    shutil.rmtree(out, ignore_errors=True)
    argv = ["lm", "train", "--out", str(out), "--text", str(runs["corpus"]), "--max-tokens",
            "none", "--batch-size", "4", "--num-steps", "8", "--hidden-size", "4", "--epochs",
            "1", "--backend", "fused", "--no-progress", flag, value]  # fmt: skip
    if flag in ("--epochs", "--hidden-size", "--batch-size", "--num-steps", "--num-layers"):
        try:  # keep a valid run short
            if int(value) > 3:
                return
        except ValueError:
            pass
    if flag == "--preset" and value in ("d2l", "book", "demo"):
        return  # a real preset trains for minutes
    _run(argv)


@settings(SETTINGS, max_examples=60)
@given(
    which=st.sampled_from(["lm", "forecast"]),
    target=st.sampled_from(["config.json", "model.safetensors", "checkpoint.safetensors"]),
    content=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.integers(1, 3000).map(lambda n: ("[" * n + "]" * n).encode()),
        st.just(b"\x00" * 16),
    ),
    command=st.sampled_from(["lm", "forecast"]),
)
def test_corrupt_or_foreign_run(runs, which, target, content, command) -> None:
    run = _copy(runs[which], "corrupt")
    (run / target).write_bytes(content)
    if command == "lm":
        _run(["lm", "generate", "--run", str(run), "--length", "5"])
    else:
        _run(["forecast", "predict", "--run", str(run), "--output", str(_DIR / "fc.csv")])


@settings(SETTINGS, max_examples=60)
@given(
    content=st.one_of(
        st.binary(max_size=400),
        st.lists(st.tuples(words, words), max_size=30)
        .map(lambda rows: "Month,Passengers\n" + "\n".join(f"{a},{b}" for a, b in rows))
        .map(lambda s: s.encode("utf-8", "surrogatepass")),
    ),
    command=st.sampled_from(["predict", "train"]),
)
def test_garbage_csv(runs, content: bytes, command: str) -> None:
    path = _DIR / "garbage.csv"
    path.write_bytes(content)
    if command == "predict":
        _run(["forecast", "predict", "--run", str(runs["forecast"]), "--csv", str(path),
              "--output", str(_DIR / "out.csv")])  # fmt: skip
    else:
        out = _DIR / "csvrun"
        shutil.rmtree(out, ignore_errors=True)
        _run(["forecast", "train", "--csv", str(path), "--column", "Passengers",
              "--date-column", "Month", "--out", str(out), "--epochs", "1", "--hidden-size",
              "4", "--lookback", "4", "--horizon", "3", "--backend", "fused",
              "--no-progress"])  # fmt: skip


@pytest.mark.parametrize("temperature", ["nan", "inf"])
def test_generate_refuses_a_nonfinite_temperature(runs, temperature: str) -> None:
    code, _ = _run(["lm", "generate", "--run", str(runs["lm"]), "--temperature", temperature])
    assert code == 2
