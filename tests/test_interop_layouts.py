"""grukit.interop layouts: ONNX's GRU / LSTM / RNN operators in ONNX Runtime as the oracle
(float32, within 1e-5), exact round trips (bitwise), dtypes, copies and error messages.

The Keras layouts' oracle is a real Keras layer: tests/test_interop_keras.py.
"""

import copy

import numpy as np
import pytest
import torch

import grukit
from grukit.interop import (
    from_keras_gru,
    from_keras_lstm,
    from_keras_rnn,
    from_onnx_gru,
    from_onnx_lstm,
    from_onnx_rnn,
    to_keras_gru,
    to_keras_lstm,
    to_keras_rnn,
    to_onnx_gru,
    to_onnx_lstm,
    to_onnx_rnn,
)

T, N, I, H = 5, 3, 4, 6
TOL = 1e-5  # float32


def _bits(a: np.ndarray | torch.Tensor) -> tuple:
    """dtype, shape and bytes: equal only if the arrays are bitwise equal."""
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else a
    return (a.dtype, a.shape, np.ascontiguousarray(a).tobytes())


def _assert_state_dicts_bitwise(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        assert _bits(got[k]) == _bits(want[k]), k


def _randomize(module: torch.nn.Module) -> torch.nn.Module:
    """Every parameter drawn from U(-1, 1), b_hh included (no zeros to hide a lost bias)."""
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    return module


# --- ONNX Runtime as the oracle ----------------------------------------------------------


def _onnx_session(op: str, layers: list[tuple], hidden: int, directions: int, attrs: dict):
    """An ONNX model of ``len(layers)`` chained ``op`` nodes (one per layer), with W, R, B
    as initializers; inputs X [T, N, I] and one initial state per layer (and per state
    for LSTM); outputs the last layer's Y and every layer's final states."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    direction = "bidirectional" if directions == 2 else "forward"
    states = ["h", "c"] if op == "LSTM" else ["h"]
    inits, nodes, inputs, outputs = [], [], [], []
    x_name = "X"
    inputs.append(helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", I]))
    for k, (W, R, B) in enumerate(layers):
        names = [f"W{k}", f"R{k}", f"B{k}"]
        for name, arr in zip(names, (W, R, B), strict=True):
            inits.append(numpy_helper.from_array(arr, name))
        state_in = [f"init_{s}{k}" for s in states]
        for name in state_in:
            shape = [directions, "N", hidden]
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        y, finals = f"Y{k}", [f"{s}_n{k}" for s in states]
        node_inputs = [x_name, *names, "", *state_in]
        nodes.append(
            helper.make_node(
                op, node_inputs, [y, *finals], hidden_size=hidden, direction=direction, **attrs
            )
        )
        shape = [directions, "N", hidden]
        outputs += [helper.make_tensor_value_info(f, TensorProto.FLOAT, shape) for f in finals]
        # Y [T, D, N, H] -> [T, N, D·H], the next layer's input (torch's feature order)
        nodes.append(helper.make_node("Transpose", [y], [f"Yt{k}"], perm=[0, 2, 1, 3]))
        shape = numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), f"shape{k}")
        inits.append(shape)
        x_name = f"Yr{k}"
        nodes.append(helper.make_node("Reshape", [f"Yt{k}", f"shape{k}"], [x_name]))
    shape = ["T", "N", directions * hidden]
    outputs.insert(0, helper.make_tensor_value_info(x_name, TensorProto.FLOAT, shape))
    graph = helper.make_graph(nodes, "rnn", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _check_against_onnx(module, to_onnx, from_onnx, op: str, attrs: dict) -> None:
    """module (time-major, reference backend) vs the ONNX model built from to_onnx(...);
    and a copy of the module loaded from from_onnx(W, R, B) of each layer vs the same."""
    sd = module.state_dict()
    D, L = module.num_directions, module.num_layers
    layers = [to_onnx(sd, layer=k) for k in range(L)]
    session = _onnx_session(op, layers, H, D, attrs)
    x = torch.randn(T, N, I)
    states = [torch.randn(L * D, N, H) for _ in (["h", "c"] if op == "LSTM" else ["h"])]
    feed = {"X": x.numpy()}
    names = ["h", "c"] if op == "LSTM" else ["h"]
    for k in range(L):
        for s, state in zip(names, states, strict=True):
            feed[f"init_{s}{k}"] = state[k * D : (k + 1) * D].numpy()  # (D, N, H)
    y_onnx, *finals = session.run(None, feed)
    y, fin = module(x, tuple(states) if op == "LSTM" else states[0])
    fin = fin if op == "LSTM" else (fin,)
    np.testing.assert_allclose(y_onnx, y.detach().numpy(), rtol=0, atol=TOL)  # (T, N, D·H)
    for j, want in enumerate(fin):  # (L·D, N, H), layer-major as torch
        got = np.concatenate(finals[j :: len(fin)])
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=0, atol=TOL)

    extra = {"linear_before_reset": attrs["linear_before_reset"]} if op == "GRU" else {}
    loaded = copy.deepcopy(module)
    with torch.no_grad():
        for p in loaded.parameters():
            p.zero_()
    sd_back = {}
    for k, (W, R, B) in enumerate(layers):
        sd_back.update(from_onnx(W, R, B, layer=k, **extra))
    loaded.load_state_dict(sd_back)
    y_back = loaded(x, tuple(states) if op == "LSTM" else states[0])[0]
    np.testing.assert_allclose(y_onnx, y_back.detach().numpy(), rtol=0, atol=TOL)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_matches_onnx_runtime(reset_after: bool, bidirectional: bool) -> None:
    gru = _randomize(
        grukit.GRU(
            I,
            H,
            num_layers=2,
            bidirectional=bidirectional,
            reset_after=reset_after,
            backend="reference",
        )
    )
    _check_against_onnx(
        gru, to_onnx_gru, from_onnx_gru, "GRU", {"linear_before_reset": int(reset_after)}
    )


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_matches_onnx_runtime(bidirectional: bool) -> None:
    lstm = _randomize(
        grukit.LSTM(I, H, num_layers=2, bidirectional=bidirectional, backend="reference")
    )
    _check_against_onnx(lstm, to_onnx_lstm, from_onnx_lstm, "LSTM", {})


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_matches_onnx_runtime(nonlinearity: str, bidirectional: bool) -> None:
    rnn = grukit.RNN(
        I, H, num_layers=2, nonlinearity=nonlinearity, bidirectional=bidirectional,
        backend="reference",
    )  # fmt: skip
    activation = nonlinearity.capitalize()  # "Tanh" / "Relu"
    attrs = {"activations": [activation] * (2 if bidirectional else 1)}
    _check_against_onnx(_randomize(rnn), to_onnx_rnn, from_onnx_rnn, "RNN", attrs)


def test_gru_without_bias_matches_onnx_runtime() -> None:
    """bias=False gives B = None; ONNX's B then defaults to zeros (here: explicit zeros)."""
    gru = _randomize(grukit.GRU(I, H, bias=False, backend="reference"))
    W, R, B = to_onnx_gru(gru.state_dict())
    assert B is None
    zeros = np.zeros((1, 6 * H), np.float32)
    session = _onnx_session("GRU", [(W, R, zeros)], H, 1, {"linear_before_reset": 1})
    x, h0 = torch.randn(T, N, I), torch.randn(1, N, H)
    y_onnx, _ = session.run(None, {"X": x.numpy(), "init_h0": h0.numpy()})
    np.testing.assert_allclose(y_onnx, gru(x, h0)[0].detach().numpy(), rtol=0, atol=TOL)


# --- round trips: exact ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "to_onnx", "from_onnx", "extra"),
    [
        (lambda: grukit.GRU(I, H, 2, bidirectional=True), to_onnx_gru, from_onnx_gru,
         {"linear_before_reset": 1}),
        (lambda: grukit.LSTM(I, H, 2, bidirectional=True), to_onnx_lstm, from_onnx_lstm, {}),
        (lambda: grukit.RNN(I, H, 2, bidirectional=True), to_onnx_rnn, from_onnx_rnn, {}),
    ],
)  # fmt: skip
def test_onnx_round_trips_are_bitwise(make, to_onnx, from_onnx, extra) -> None:
    sd = make().state_dict()
    back = {}
    for layer in (0, 1):
        W, R, B = to_onnx(sd, layer=layer)
        back.update(from_onnx(W, R, B, layer=layer, **extra))
        again = to_onnx(from_onnx(W, R, B, layer=layer, **extra), layer=layer)
        for a, b in zip(again, (W, R, B), strict=True):
            assert _bits(a) == _bits(b)
    _assert_state_dicts_bitwise(back, sd)


@pytest.mark.parametrize(
    ("make", "to_keras", "from_keras", "extra"),
    [
        (lambda: grukit.GRU(I, H), to_keras_gru, from_keras_gru, {"reset_after": True}),
        (lambda: grukit.GRU(I, H, reset_after=False), to_keras_gru, from_keras_gru,
         {"reset_after": False}),
        (lambda: grukit.LSTM(I, H), to_keras_lstm, from_keras_lstm, {}),
        (lambda: grukit.RNN(I, H), to_keras_rnn, from_keras_rnn, {}),
    ],
)  # fmt: skip
def test_keras_round_trips_are_bitwise(make, to_keras, from_keras, extra) -> None:
    """Keras -> torch -> Keras is exact for every layout. torch -> Keras -> torch is exact
    where Keras keeps two biases, and where it keeps one, exact once b_hh is folded away."""
    sd = make().state_dict()
    keras_weights = to_keras(sd, **extra)
    sd_back = from_keras(*keras_weights, **extra)
    again = to_keras(sd_back, **extra)
    for a, b in zip(again, keras_weights, strict=True):
        assert _bits(a) == _bits(b)
    if keras_weights[2].ndim == 2:  # GRU reset_after=True: (2, 3H), both biases kept
        _assert_state_dicts_bitwise(sd_back, sd)
    else:  # one bias: b_ih + b_hh in bias_ih, zeros in bias_hh
        folded = dict(sd, bias_ih_l0=sd["bias_ih_l0"] + sd["bias_hh_l0"])
        folded["bias_hh_l0"] = torch.zeros_like(sd["bias_hh_l0"])
        _assert_state_dicts_bitwise(sd_back, folded)
        _assert_state_dicts_bitwise(from_keras(*to_keras(folded, **extra), **extra), folded)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("cls", "to_keras", "from_keras", "extra"),
    [
        (lambda d: grukit.GRU(I, H, reset_after=False, dtype=d, backend="reference"),
         to_keras_gru, from_keras_gru, {"reset_after": False}),
        (lambda d: grukit.LSTM(I, H, dtype=d, backend="reference"), to_keras_lstm,
         from_keras_lstm, {}),
        (lambda d: grukit.RNN(I, H, dtype=d, backend="reference"), to_keras_rnn,
         from_keras_rnn, {}),
    ],
)  # fmt: skip
def test_folding_b_hh_into_keras_one_bias_keeps_the_function(
    cls, to_keras, from_keras, extra, dtype
) -> None:
    """Where Keras has one bias (GRU reset_after=False: b_hn lies outside r ⊙ ·), b_ih + b_hh
    computes the same function: the original module is the oracle (1e-12 float64, 1e-5
    float32)."""
    original = _randomize(cls(dtype))
    folded = cls(dtype)
    folded.load_state_dict(from_keras(*to_keras(original.state_dict(), **extra), **extra))
    x = torch.randn(T, N, I, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else TOL
    torch.testing.assert_close(folded(x)[0], original(x)[0], rtol=0, atol=tol)


# --- dtypes, copies, inputs ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_is_preserved_and_numpy_or_tensor_inputs_agree(dtype) -> None:
    rng = np.random.default_rng(0)
    k, rk, b = (rng.standard_normal(s).astype(dtype) for s in ((I, 3 * H), (H, 3 * H), (2, 3 * H)))
    from_np = from_keras_gru(k, rk, b, reset_after=True)
    from_t = from_keras_gru(*(torch.from_numpy(a) for a in (k, rk, b)), reset_after=True)
    want = torch.from_numpy(k).dtype
    assert all(v.dtype == want for v in from_np.values())
    _assert_state_dicts_bitwise(from_t, from_np)
    W, R, B = to_onnx_gru(from_np)
    assert W.dtype == R.dtype == B.dtype == dtype
    assert all(a.dtype == dtype for a in to_keras_gru(from_np, reset_after=True))


def test_results_share_no_memory_with_the_inputs() -> None:
    rng = np.random.default_rng(1)
    k, rk, b = (rng.standard_normal(s).astype(np.float32) for s in ((I, H), (H, H), (H,)))
    sd = from_keras_rnn(k, rk, b)
    before = {name: t.clone() for name, t in sd.items()}
    k += 1.0
    rk += 1.0
    b += 1.0
    _assert_state_dicts_bitwise(sd, before)
    sd["weight_ih_l0"] += 1.0
    assert not np.shares_memory(to_keras_rnn(sd)[0], k)


@pytest.mark.filterwarnings("error")
def test_read_only_arrays_are_accepted_without_warnings() -> None:
    arrays = [np.ones(s, np.float32) for s in ((1, 3 * H, I), (1, 3 * H, H), (1, 6 * H))]
    for a in arrays:
        a.setflags(write=False)
    sd = from_onnx_gru(*arrays, linear_before_reset=0)
    assert all(_bits(a) == _bits(b) for a, b in zip(to_onnx_gru(sd), arrays, strict=True))


def test_cell_state_dicts_convert_like_layer_zero() -> None:
    cell = grukit.GRUCell(I, H)
    layer = grukit.GRU(I, H)
    layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    for a, b in zip(
        to_keras_gru(cell.state_dict(), reset_after=True),
        to_keras_gru(layer.state_dict(), reset_after=True),
        strict=True,
    ):
        assert _bits(a) == _bits(b)
    for a, b in zip(to_onnx_gru(cell.state_dict()), to_onnx_gru(layer.state_dict()), strict=True):
        assert _bits(a) == _bits(b)
    with pytest.raises(ValueError, match="to_keras_gru: a cell's state_dict has one layer"):
        to_keras_gru(cell.state_dict(), reset_after=True, layer=1)


def _tagged(b_ih: torch.Tensor, b_hh: torch.Tensor) -> dict[str, torch.Tensor]:
    """A layer-0 state_dict whose weight rows all hold their gate's tag b_ih (G·H,)."""
    rows = b_ih[:, None]  # (G·H, 1)
    return {
        "weight_ih_l0": rows.expand(-1, I),  # (G·H, I)
        "weight_hh_l0": rows.expand(-1, H),  # (G·H, H)
        "bias_ih_l0": b_ih,
        "bias_hh_l0": b_hh,
    }


def test_gate_order_by_hand() -> None:
    """Rows of torch's gate blocks tagged with their gate number land where each layout
    says: Keras GRU z, r, h; ONNX GRU z, r, h; ONNX LSTM i, o, f, c; Keras LSTM i, f, c, o."""
    tag3 = torch.arange(3.0).repeat_interleave(H)  # torch r=0, z=1, n=2
    gru = _tagged(tag3, tag3 + 10)
    kernel, _, bias = to_keras_gru(gru, reset_after=True)
    assert kernel[0, ::H].tolist() == [1, 0, 2]  # columns z, r, h
    assert bias[:, ::H].tolist() == [[1, 0, 2], [11, 10, 12]]
    W, _, B = to_onnx_gru(gru)
    assert W[0, ::H, 0].tolist() == [1, 0, 2]
    assert B[0, ::H].tolist() == [1, 0, 2, 11, 10, 12]
    tag4 = torch.arange(4.0).repeat_interleave(H)  # torch i=0, f=1, g=2, o=3
    lstm = _tagged(tag4, tag4)
    W, _, B = to_onnx_lstm(lstm)
    assert W[0, ::H, 0].tolist() == [0, 3, 1, 2]  # i, o, f, c
    kernel, _, bias = to_keras_lstm(lstm)
    assert kernel[0, ::H].tolist() == [0, 1, 2, 3]
    assert bias[::H].tolist() == [0, 2, 4, 6]  # b_ih + b_hh


# --- errors --------------------------------------------------------------------------------


def test_shape_errors_name_function_expected_and_got() -> None:
    k, rk = np.zeros((I, 3 * H), np.float32), np.zeros((H, 3 * H), np.float32)
    with pytest.raises(ValueError, match=r"from_keras_gru: expected bias of shape \(2, 3H\) = "
                       r"\(2, 18\), got \(18,\)"):  # fmt: skip
        from_keras_gru(k, rk, np.zeros(3 * H, np.float32), reset_after=True)
    with pytest.raises(ValueError, match=r"from_keras_gru: expected bias of shape \(3H,\)"):
        from_keras_gru(k, rk, np.zeros((2, 3 * H), np.float32), reset_after=False)
    with pytest.raises(ValueError, match=r"from_keras_lstm: expected recurrent_kernel of shape "
                       r"\(H, 4H\) = \(6, 24\), got \(6, 18\)"):  # fmt: skip
        from_keras_lstm(np.zeros((I, 24), np.float32), rk, None)
    with pytest.raises(ValueError, match=r"from_keras_rnn: expected kernel of shape \(I, 1H\)"):
        from_keras_rnn(np.zeros((I, H + 1), np.float32), np.zeros((H, H), np.float32), None)
    with pytest.raises(ValueError, match=r"from_onnx_gru: expected W of shape \[D, 3H, I\]"):
        from_onnx_gru(np.zeros((1, 12, I)), np.zeros((1, 18, H)), None, linear_before_reset=1)
    with pytest.raises(ValueError, match="from_onnx_lstm: expected D = 1 or 2"):
        from_onnx_lstm(np.zeros((3, 24, I)), np.zeros((3, 24, H)), None)
    with pytest.raises(ValueError, match=r"from_onnx_rnn: expected B of shape \[D, 2H\]"):
        from_onnx_rnn(np.zeros((1, H, I)), np.zeros((1, H, H)), np.zeros((1, H)))
    bad = dict(grukit.GRU(I, H).state_dict(), weight_hh_l0=torch.zeros(3 * H, H + 1))
    with pytest.raises(ValueError, match=r"to_onnx_gru: expected weight_hh_l0 of shape"):
        to_onnx_gru(bad)
    with pytest.raises(ValueError, match=r"to_keras_lstm: expected weight_hh_l0 of shape "
                       r"\(4H, H\) = \(24, 6\), got \(18, 6\)"):  # fmt: skip
        to_keras_lstm(grukit.GRU(I, H).state_dict())
    with pytest.raises(ValueError, match="to_keras_gru: expected 'weight_ih_l1' in the state_dict"):
        to_keras_gru(grukit.GRU(I, H).state_dict(), reset_after=True, layer=1)


def test_what_the_layouts_cannot_hold_raises() -> None:
    lstm = grukit.LSTM(I, H, proj_size=2).state_dict()
    with pytest.raises(ValueError, match="to_onnx_lstm: the target layout has no LSTM projection"):
        to_onnx_lstm(lstm)
    with pytest.raises(ValueError, match="to_keras_lstm: the target layout has no LSTM projection"):
        to_keras_lstm(lstm)
    half = grukit.GRU(I, H).state_dict()
    del half["bias_hh_l0"]
    with pytest.raises(ValueError, match="to_onnx_gru: expected both 'bias_ih_l0' and"):
        to_onnx_gru(half)


def test_type_errors() -> None:
    k, rk = np.zeros((I, 3 * H), np.float32), np.zeros((H, 3 * H), np.float32)
    with pytest.raises(TypeError, match="from_keras_gru: expected kernel as a numpy.ndarray or"):
        from_keras_gru(k.tolist(), rk, None, reset_after=True)
    with pytest.raises(TypeError, match="from_keras_gru: expected every array of one dtype"):
        from_keras_gru(k.astype(np.float64), rk, None, reset_after=True)
    with pytest.raises(TypeError, match="from_keras_gru: expected kernel of a floating dtype"):
        from_keras_gru(k.astype(np.int32), rk, None, reset_after=True)
    with pytest.raises(TypeError, match="from_keras_gru: expected reset_after to be a bool"):
        from_keras_gru(k, rk, None, reset_after=1)
    with pytest.raises(ValueError, match="from_onnx_gru: expected linear_before_reset 0 or 1"):
        from_onnx_gru(np.zeros((1, 18, I)), np.zeros((1, 18, H)), None, linear_before_reset=2)
    bf16 = grukit.GRU(I, H, dtype=torch.bfloat16).state_dict()
    with pytest.raises(TypeError, match="to_onnx_gru: expected float16/float32/float64"):
        to_onnx_gru(bf16)
    with pytest.raises(TypeError, match="to_keras_rnn: expected a state_dict"):
        to_keras_rnn(grukit.RNN(I, H))
