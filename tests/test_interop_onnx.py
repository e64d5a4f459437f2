"""ONNX export (``grukit.interop.onnx``): ONNX's own GRU / RNN / LSTM nodes, run in ONNX Runtime
on batch sizes and lengths other than the export example, against ``torch.nn`` on the same
weights (or the grukit module in eager mode) within 1e-5.

Every case runs through the TorchScript exporter (fast); the dynamo exporter (~5 s an export)
runs a subset: plain ``torch.onnx.export`` with ``translation_table()`` of a 2-layer
bidirectional batch_first GRU with reset_after=False, and ``export_onnx`` of a 2-layer
bidirectional LSTM and of the one-hot CharLM (GRU).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import grukit
from grukit.models.charlm import CharLM
from grukit.models.forecaster import Forecaster

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
gx = pytest.importorskip("grukit.interop.onnx")

TOL = 1e-5
T0, N0 = 5, 2  # export example
T1, N1 = 7, 3  # run


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer warnings
        yield


def _session(path: Path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _run(path: Path, *inputs: Tensor) -> list[np.ndarray]:
    s = _session(path)
    names = [i.name for i in s.get_inputs()]
    assert len(names) == len(inputs)
    return s.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})


def _nodes(path: Path) -> list:
    model = onnx.load(str(path))
    return list(model.graph.node) + [n for f in model.functions for n in f.node]


def _close(got: np.ndarray, want: Tensor) -> None:
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=0, atol=TOL)


def _assert_rnn_nodes(path: Path, op: str, count: int) -> list:
    nodes = _nodes(path)
    assert not [n for n in nodes if n.domain not in ("", "ai.onnx")], "custom-domain ops"
    found = [n for n in nodes if n.op_type == op]
    assert len(found) == count, sorted({n.op_type for n in nodes})
    return found


def _attr(node, name: str):
    return onnx.helper.get_attribute_value(next(a for a in node.attribute if a.name == name))


# --- GRU ------------------------------------------------------------------------------------

GRU_CASES = [  # reset_after, layers, bidirectional, batch_first, bias
    (True, 1, False, False, True),
    (True, 2, True, True, True),
    (True, 1, False, False, False),
    (False, 1, False, False, True),
    (False, 2, True, True, True),
    (False, 1, True, False, False),
]


def _gru_oracle(m: grukit.GRU) -> nn.Module:
    """torch.nn.GRU on the same weights; the reference backend for reset_after=False."""
    if not m.reset_after:
        oracle = grukit.GRU(
            m.input_size, m.hidden_size, m.num_layers, m.bias, m.batch_first,
            bidirectional=m.bidirectional, reset_after=False, backend="reference",
        )  # fmt: skip
    else:
        oracle = nn.GRU(m.input_size, m.hidden_size, m.num_layers, m.bias, m.batch_first,
                        bidirectional=m.bidirectional)  # fmt: skip
    oracle.load_state_dict(m.state_dict())
    return oracle


def _check_gru(m: grukit.GRU, path: Path) -> None:
    D = 2 if m.bidirectional else 1
    nodes = _assert_rnn_nodes(path, "GRU", m.num_layers * D)
    assert {_attr(n, "linear_before_reset") for n in nodes} == {int(m.reset_after)}
    directions = [_attr(n, "direction").decode() for n in nodes]
    assert directions.count("reverse") == (m.num_layers if D == 2 else 0)
    x = torch.randn(N1, T1, 3) if m.batch_first else torch.randn(T1, N1, 3)
    h0 = torch.randn(m.num_layers * D, N1, 4)
    out, h_n = _run(path, x, h0)
    with torch.no_grad():
        want, want_h = _gru_oracle(m)(x, h0)
    _close(out, want)
    _close(h_n, want_h)


@pytest.mark.parametrize("case", GRU_CASES, ids=lambda c: "ra{}-L{}-bi{}-bf{}-bias{}".format(*c))
def test_gru_torchscript_exports_onnx_gru(tmp_path: Path, case: tuple) -> None:
    reset_after, layers, bi, bf, bias = case
    m = grukit.GRU(3, 4, layers, bias, bf, bidirectional=bi, reset_after=reset_after)
    x = torch.randn(N0, T0, 3) if bf else torch.randn(T0, N0, 3)
    path = gx.export_onnx(m, tmp_path / "gru.onnx", x)
    assert path == tmp_path / "gru.onnx"
    _check_gru(m, path)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_plain_torch_onnx_export_writes_onnx_gru(tmp_path: Path, dynamo: bool) -> None:
    """torch.onnx.export itself: the symbolic is registered on import; the dynamo exporter
    takes ``translation_table()``. Two layers, bidirectional, batch_first, reset_after=False:
    gate reordering, reverse direction, chaining and linear_before_reset=0 in one."""
    m = grukit.GRU(3, 4, 2, batch_first=True, bidirectional=True, reset_after=False).eval()
    path = tmp_path / "plain.onnx"
    x, h0 = torch.randn(N0, T0, 3), torch.randn(4, N0, 4)
    if dynamo:
        dim = torch.export.Dim.DYNAMIC
        torch.onnx.export(m, (x, h0), path, dynamo=True, external_data=False,
                          dynamic_shapes=({0: dim, 1: dim}, {1: dim}),
                          custom_translation_table=gx.translation_table())  # fmt: skip
    else:
        axes = {"x": {0: "N", 1: "T"}, "h0": {1: "N"}}
        torch.onnx.export(m, (x, h0), path, dynamo=False, input_names=["x", "h0"],
                          dynamic_axes=axes)  # fmt: skip
    _check_gru(m, path)


# --- cells, RNN, LSTM -----------------------------------------------------------------------


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_cell_exports_onnx_gru(tmp_path: Path, reset_after: bool) -> None:
    cell = grukit.GRUCell(3, 4, reset_after=reset_after, backend="fused")
    path = gx.export_onnx(cell, tmp_path / "cell.onnx", torch.randn(N0, 3))
    (node,) = _assert_rnn_nodes(path, "GRU", 1)
    assert _attr(node, "linear_before_reset") == int(reset_after)
    x, h = torch.randn(N1 + 2, 3), torch.randn(N1 + 2, 4)
    (got,) = _run(path, x, h)
    if reset_after:
        oracle: nn.Module = nn.GRUCell(3, 4)
    else:
        oracle = grukit.GRUCell(3, 4, reset_after=False, backend="reference")
    oracle.load_state_dict(cell.state_dict())
    with torch.no_grad():
        _close(got, oracle(x, h))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_exports_onnx_rnn(tmp_path: Path, nonlinearity: str) -> None:
    m = grukit.RNN(3, 4, 2, nonlinearity, bidirectional=True)
    path = gx.export_onnx(m, tmp_path / "rnn.onnx", torch.randn(T0, N0, 3))
    nodes = _assert_rnn_nodes(path, "RNN", 4)
    assert {_attr(n, "activations")[0].decode() for n in nodes} == {nonlinearity.capitalize()}
    x, h0 = torch.randn(T1, N1, 3), torch.randn(4, N1, 4)
    out, h_n = _run(path, x, h0)
    oracle = nn.RNN(3, 4, 2, nonlinearity, bidirectional=True)
    oracle.load_state_dict(m.state_dict())
    with torch.no_grad():
        want, want_h = oracle(x, h0)
    _close(out, want)
    _close(h_n, want_h)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_lstm_exports_onnx_lstm(tmp_path: Path, dynamo: bool) -> None:
    m = grukit.LSTM(3, 4, 2, bidirectional=True, batch_first=True)
    path = gx.export_onnx(m, tmp_path / "lstm.onnx", torch.randn(N0, T0, 3), dynamo=dynamo)
    _assert_rnn_nodes(path, "LSTM", 4)
    x, h0, c0 = torch.randn(N1, T1, 3), torch.randn(4, N1, 4), torch.randn(4, N1, 4)
    out, h_n, c_n = _run(path, x, h0, c0)
    oracle = nn.LSTM(3, 4, 2, bidirectional=True, batch_first=True)
    oracle.load_state_dict(m.state_dict())
    with torch.no_grad():
        want, (want_h, want_c) = oracle(x, (h0, c0))
    _close(out, want)
    _close(h_n, want_h)
    _close(c_n, want_c)


def test_lstm_cell_and_rnn_cell_export(tmp_path: Path) -> None:
    """Cells other than the GRU are plain ops (MatMul, Sigmoid, …), equal to torch's."""
    for cell, oracle in ((grukit.LSTMCell(3, 4), nn.LSTMCell(3, 4)),
                         (grukit.RNNCell(3, 4), nn.RNNCell(3, 4))):  # fmt: skip
        oracle.load_state_dict(cell.state_dict())
        path = gx.export_onnx(cell, tmp_path / "c.onnx", torch.randn(N0, 3))
        x, h, c = torch.randn(N1, 3), torch.randn(N1, 4), torch.randn(N1, 4)
        lstm = isinstance(cell, grukit.LSTMCell)
        got = _run(path, x, h, c) if lstm else _run(path, x, h)
        with torch.no_grad():
            want = oracle(x, (h, c)) if lstm else (oracle(x, h),)
        for g, w in zip(got, want, strict=True):
            _close(g, w)


# --- models --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "dynamo"), [("gru", False), ("lstm", False), ("rnn", False), ("gru", True)]
)
def test_charlm_exports_with_one_hot_input(tmp_path: Path, cell: str, dynamo: bool) -> None:
    model = CharLM(11, 8, 2 if cell == "lstm" else 1, cell=cell).eval()
    tokens = torch.randint(0, 11, (N0, T0))
    path = gx.export_onnx(model, tmp_path / "lm.onnx", tokens, dynamo=dynamo)
    op = {"gru": "GRU", "lstm": "LSTM", "rnn": "RNN"}[cell]
    _assert_rnn_nodes(path, op, model.num_layers)
    tokens = torch.randint(0, 11, (N1, T1))
    state = model.begin_state(N1)
    states = state if isinstance(state, tuple) else (state,)
    states = tuple(torch.randn_like(s) for s in states)
    got = _run(path, tokens, *states)
    with torch.no_grad():
        logits, final = model(tokens, states if cell == "lstm" else states[0])
    _close(got[0], logits)
    for g, w in zip(got[1:], final if isinstance(final, tuple) else (final,), strict=True):
        _close(g, w)


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_forecaster_exports(tmp_path: Path, strategy: str) -> None:
    model = Forecaster(2, 3, 8, 2, strategy=strategy).eval()
    path = gx.export_onnx(model, tmp_path / "f.onnx", torch.randn(N0, 6, 2))
    # the encoder over the window, then once per fed-back step but the last (unused: pruned)
    gru_nodes = 2 * (1 + 2 * (strategy == "recursive"))
    _assert_rnn_nodes(path, "GRU", gru_nodes)
    x = torch.randn(N1 + 1, 11, 2)
    (got,) = _run(path, x)
    with torch.no_grad():
        _close(got, model(x))


def test_without_initial_state_inputs(tmp_path: Path) -> None:
    m = grukit.GRU(3, 4)
    path = gx.export_onnx(m, tmp_path / "g.onnx", torch.randn(T0, N0, 3), initial_state=False)
    assert [i.name for i in _session(path).get_inputs()] == ["input"]
    x = torch.randn(T1, N1, 3)
    out, h_n = _run(path, x)
    with torch.no_grad():
        want, want_h = _gru_oracle(m)(x)
    _close(out, want)
    _close(h_n, want_h)


def test_names_of_inputs_and_outputs(tmp_path: Path) -> None:
    path = gx.export_onnx(grukit.LSTM(3, 4), tmp_path / "l.onnx", torch.randn(T0, N0, 3))
    s = _session(path)
    assert [i.name for i in s.get_inputs()] == ["input", "h0", "c0"]
    assert [o.name for o in s.get_outputs()] == ["output", "h_n", "c_n"]
    assert s.get_inputs()[0].shape[:2] == ["T", "N"]


# --- errors and atomic writes ----------------------------------------------------------------


def test_packed_input_raises() -> None:
    class Packs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = grukit.GRU(3, 4)

        def forward(self, x: Tensor) -> Tensor:
            packed = nn.utils.rnn.pack_padded_sequence(x, [T0, T0 - 1])
            return self.gru(packed)[1]

    with pytest.raises(Exception, match="packed input .* cannot be exported"):
        torch.onnx.export(Packs().eval(), (torch.randn(T0, N0, 3),), None, dynamo=False)


def test_bad_arguments_raise() -> None:
    with pytest.raises(TypeError, match="export_onnx: expected a grukit GRU"):
        gx.export_onnx(nn.GRU(3, 4), "x.onnx", torch.randn(T0, N0, 3))
    with pytest.raises(ValueError, match="sizes >= 2 along the dynamic axes, got N=1"):
        gx.export_onnx(grukit.GRU(3, 4), "x.onnx", torch.randn(T0, 1, 3))
    with pytest.raises(ValueError, match="batched example_input of 3 dimensions"):
        gx.export_onnx(grukit.GRU(3, 4), "x.onnx", torch.randn(T0, 3))
    with pytest.raises(ValueError, match="proj_size"):
        gx.export_onnx(grukit.LSTM(3, 4, proj_size=2), "x.onnx", torch.randn(T0, N0, 3))
    with pytest.raises(ValueError, match="opset"):
        gx.export_onnx(grukit.GRU(3, 4), "x.onnx", torch.randn(T0, N0, 3), opset=9)


def test_failed_export_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    """A failing export neither writes a file nor touches an existing one."""
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")

    def broken(*args, **kwargs):
        Path(args[2]).write_bytes(b"half")  # a partial file, then failure
        raise RuntimeError("boom")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(RuntimeError, match="boom"):
        gx.export_onnx(grukit.GRU(3, 4), path, torch.randn(T0, N0, 3))
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_graph_without_the_recurrent_operator_is_refused(tmp_path: Path, monkeypatch) -> None:
    """The written graph is checked: a GRU that came out as anything but ONNX's GRU raises."""
    monkeypatch.setitem(gx._OPERATOR, "gru", "LSTM")  # expect the wrong operator
    with pytest.raises(RuntimeError, match="expected the graph to hold ONNX's LSTM"):
        gx.export_onnx(grukit.GRU(3, 4), tmp_path / "m.onnx", torch.randn(T0, N0, 3))
    assert not list(tmp_path.iterdir())


def test_reorder_gates_matches_onnx_order() -> None:
    H = 2
    w = torch.arange(3 * H * 1.0).view(3 * H, 1)  # rows r0 r1 z0 z1 n0 n1
    assert gx.reorder_gates(w).flatten().tolist() == [2, 3, 0, 1, 4, 5]
