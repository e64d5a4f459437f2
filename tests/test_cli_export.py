"""``grukit export onnx --run DIR --out FILE``: run directories (a language model, a trained
tiny recursive forecaster) exported and run in ONNX Runtime against the loaded model (1e-5);
overwriting is refused unless asked (exit code 2)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from grukit import cli

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(autouse=True)
def _wired(monkeypatch: pytest.MonkeyPatch):
    """The sub-command, whether or not ``grukit.cli.COMMANDS`` lists it yet; the CLI's own
    thread count restored after."""
    monkeypatch.setitem(cli.COMMANDS, "export", "grukit.cli.export")
    threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A language-model run directory as ``grukit lm train`` writes it (config.json with
    config and vocab, model.safetensors), with untrained weights: training adds nothing to
    what is checked here, and its plots cost seconds."""
    from grukit.data.text import Vocab
    from grukit.training import RunDir, save_weights
    from grukit.training.lm import build_model
    from grukit.training.lm_config import preset

    run = RunDir(tmp_path_factory.mktemp("lm") / "run")
    run.path.mkdir()
    config = dataclasses.replace(preset("d2l"), hidden_size=8, num_steps=8)
    vocab = Vocab(list("the time machine"))
    model = build_model(config, len(vocab))
    run.write_config({"lm": config.to_dict(), "model": model.config(), "vocab": vocab.to_list()})
    save_weights(run.model, model.state_dict(), {"lm": config.to_dict(), **model.config()})
    return run.path


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fc") / "run"
    args = ["forecast", "train", "--dataset", "airline", "--out", str(out), "--epochs", "1",
            "--hidden-size", "8", "--lookback", "12", "--strategy", "recursive",
            "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    return out


def _session(path: Path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_lm_run_exports(lm_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from grukit.training.lm import load_run

    out = tmp_path / "lm.onnx"
    assert cli.main(["export", "onnx", "--run", str(lm_run), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "inputs tokens, h0 → outputs logits, h_n" in text
    model, vocab, _ = load_run(lm_run)
    tokens = torch.randint(0, len(vocab), (3, 11))  # (N, T) unlike the export example
    h0 = torch.randn(1, 3, 8)
    s = _session(out)
    logits, h_n = s.run(None, {"tokens": tokens.numpy(), "h0": h0.numpy()})
    with torch.no_grad():
        want, want_h = model(tokens, h0)
    np.testing.assert_allclose(logits, want.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(h_n, want_h.numpy(), rtol=0, atol=1e-5)


def test_forecast_run_exports(forecast_run: Path, tmp_path: Path) -> None:
    from grukit.models.forecaster import Forecaster
    from grukit.training import load_weights

    out = tmp_path / "f.onnx"
    assert cli.main(["export", "onnx", "--run", str(forecast_run), "--out", str(out)]) == 0
    state, cfg = load_weights(forecast_run / "model.safetensors")
    model = Forecaster(
        cfg["input_size"], cfg["horizon"], cfg["hidden_size"], cfg["num_layers"],
        quantiles=tuple(cfg["quantiles"]), strategy=cfg["strategy"],
    ).eval()  # fmt: skip
    model.load_state_dict(state)
    x = torch.randn(5, 20, cfg["input_size"])  # (N, L, I) unlike the export example
    (got,) = _session(out).run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), rtol=0, atol=1e-5)


def test_existing_out_needs_overwrite(
    lm_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lm.onnx"
    out.write_bytes(b"keep me")
    args = ["export", "onnx", "--run", str(lm_run), "--out", str(out)]
    assert cli.main(args) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert cli.main([*args, "--overwrite", "--no-state"]) == 0
    assert [i.name for i in _session(out).get_inputs()] == ["tokens"]


def test_not_a_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["export", "onnx", "--run", str(tmp_path / "none"), "--out", str(tmp_path / "m.onnx")]
    assert cli.main(args) == 2
    assert "expected a run directory" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"x": 1}')
    args[3] = str(tmp_path / "other")
    assert cli.main(args) == 2
    assert "expected a language-model or forecasting run" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
