"""ONNX export of LayerNormGRU (``grukit.export_onnx``): each layer direction an ONNX
``Scan`` whose body is LayerNormalization / Gemm / Sigmoid / Tanh, run in ONNX Runtime at
batch sizes and lengths other than the export example, against the eager layer (its fast
path) on the same weights, with random normalisation gains, within 1e-5 (float32). Two
exports (dynamo exporter) cover num_layers, bidirectional, batch_first, reset_after both
ways, biases or none, h0 given or zeros and eval-mode zoneout: a layer, and an LM run with
the cell through ``grukit export onnx`` (a CharLM, one-hot input). What stays
unsupported (TorchScript exporter, jit.trace, training-mode noise, opset < 18) raises a
ValueError naming it."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

import grukit
from grukit import cli
from grukit.models.charlm import CharLM

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOL = 1e-5  # absolute, float32; outputs are states in (−1, 1)
N0, T0 = 3, 4  # export example
RUNS = ((4, 7), (5, 1))  # (N, T) run in ONNX Runtime: other than both examples


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation warnings
        yield


def _random_gains(m: torch.nn.Module) -> None:
    """Normalisation gains off their initial ones (so a wrong gain shows)."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("ln_weight") or ".ln_weight" in name:
                p.uniform_(0.5, 1.5)


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _close(got: np.ndarray, want: Tensor) -> None:
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=0, atol=TOL)


def _scans(path: Path) -> list[onnx.NodeProto]:
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"GRU", "Loop"}, ops
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    return [n for n in model.graph.node if n.op_type == "Scan"]


def test_layer_equals_onnxruntime_at_other_shapes(tmp_path: Path) -> None:
    """2 layers × 2 directions (layer 1 reads D·H features), batch_first, reset_after=False
    (the r, z and n rows normalised apart), no biases, eval-mode zoneout, h0 an input."""
    m = grukit.LayerNormGRU(
        3, 5, num_layers=2, bias=False, batch_first=True, bidirectional=True,
        reset_after=False, zoneout=0.3,
    ).train()  # fmt: skip
    _random_gains(m)
    path = grukit.export_onnx(m, tmp_path / "ln.onnx", torch.randn(N0, T0, 3))
    assert m.training  # mode restored; exported in eval mode
    scans = _scans(path)
    assert len(scans) == 4  # one per layer and direction
    body = {n.op_type for n in scans[0].attribute[0].g.node}
    assert {"LayerNormalization", "Sigmoid", "Tanh"} <= body, body
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == ["input", "h0"]
    m.eval()
    for N, T in RUNS:
        x, h0 = torch.randn(N, T, 3), torch.randn(4, N, 5)
        out, h_n = sess.run(None, {"input": x.numpy(), "h0": h0.numpy()})
        with torch.no_grad():
            want, want_h = m(x, h0)
        _close(out, want)
        _close(h_n, want_h)


def test_cli_exports_an_lm_run_with_the_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``grukit export onnx --run`` of a language-model run with --cell layernorm-gru (as
    ``grukit lm train`` writes it, untrained): a CharLM, one-hot input, time-major inside,
    reset_after=True, biases; the state an input."""
    from grukit.data.text import Vocab
    from grukit.training import RunDir, save_weights
    from grukit.training.lm import build_model, load_run
    from grukit.training.lm_config import preset

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    config = dataclasses.replace(preset("d2l"), hidden_size=6, num_steps=T0, cell="layernorm-gru")
    vocab = Vocab(list("the time machine"))
    model = build_model(config, len(vocab))
    _random_gains(model)
    run.write_config({"lm": config.to_dict(), "model": model.config(), "vocab": vocab.to_list()})
    save_weights(run.model, model.state_dict(), {"lm": config.to_dict(), **model.config()})
    out = tmp_path / "lm.onnx"
    threads = torch.get_num_threads()
    try:
        assert cli.main(["export", "onnx", "--run", str(run.path), "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)  # the CLI sets its own
    assert "dynamo exporter" in capsys.readouterr().out
    assert len(_scans(out)) == 1
    model, _, _ = load_run(run.path)
    sess = _session(out)
    for N, T in RUNS:
        tokens, h0 = torch.randint(0, len(vocab), (N, T)), torch.randn(1, N, 6)
        logits, h_n = sess.run(None, {"tokens": tokens.numpy(), "h0": h0.numpy()})
        with torch.no_grad():
            want, want_h = model(tokens, h0)
        _close(logits, want)
        _close(h_n, want_h)


# --- what stays unsupported ----------------------------------------------------------------


def test_torchscript_exporter_and_jit_trace_refuse_clearly(tmp_path: Path) -> None:
    m = grukit.LayerNormGRU(3, 5).eval()
    x = torch.randn(T0, N0, 3)
    msg = "LayerNormGRU: ONNX export and jit.trace are not supported for layernorm_gru .*Scan"
    with pytest.raises(ValueError, match=msg):
        torch.onnx.export(m, (x,), str(tmp_path / "ts.onnx"), dynamo=False)
    with pytest.raises(ValueError, match=msg):
        torch.jit.trace(m, (x,))
    noisy = grukit.LayerNormGRU(3, 5, recurrent_dropout=0.2).train()
    with pytest.raises(ValueError, match="not supported for zoneout or recurrent dropout"):
        torch.jit.trace(noisy, (x,))
    with pytest.raises(ValueError, match="export_onnx: a LayerNormGRU exports with opset >= 18"):
        grukit.export_onnx(m, tmp_path / "o.onnx", x, opset=17)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("cell", ["layernorm-gru", "mingru"])
def test_models_export_their_cells_scan(cell: str) -> None:
    """A CharLM's or Forecaster's cell decides the operator export_onnx expects (and so
    the exporter): ``Scan`` for these two (the CLI's runs; a Forecaster's was checked as
    a GRU before)."""
    from grukit.interop.onnx import _OPERATOR, _describe
    from grukit.models.forecaster import Forecaster

    for model in (CharLM(11, 6, 1, cell=cell), Forecaster(2, 3, 6, cell=cell)):
        kind = _describe(model, True)[1]
        assert kind is not None and _OPERATOR[kind] == "Scan", (type(model).__name__, kind)
