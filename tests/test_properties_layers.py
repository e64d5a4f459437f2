"""Property suite: grukit's layers and cells on every available backend equal torch.nn on
the same weights — random shapes, dtypes, packing, and NaN / ±Inf / overflow injected into
the input, the initial state or one weight — or raise a clear ValueError / TypeError.

Oracle: ``torch.nn.GRU`` / ``RNN`` / ``LSTM`` (and the cells) loaded with the same
state_dict; for the reset_after=False GRU, which torch does not compute, grukit's
"reference" backend (a loop of torch ops). Equal means: the same NaN, +Inf and -Inf
positions in every output, final state and gradient, and the values finite on both within
1e-5 (float32; gradients 1e-4 relative) / 1e-10 (float64). Each backend that ``supports``
the configuration is tried (``grukit.available_backends()``: "torch" has no
reset_after=False GRU; "native" and "fused" are GRU only).

Hypothesis runs derandomized (a fixed seed, no example database): CI sees the same
examples every run. N >= 1 here (empty batches are tested with the layers).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import grukit
from grukit.backends import BACKENDS, CellSpec

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
KINDS = ["gru", "gru_before", "rnn_tanh", "rnn_relu", "lstm"]  # gru_before: reset_after=False
POISONS = ["none", "nan", "inf", "-inf", "huge"]  # huge: 1e38 / 1e300 × the values, overflow
# Drawn more often: the GRUs (four backends, the C++ kernel among them) and NaN.
LAYER_KINDS = ["gru", "gru", "gru_before", "gru_before", "rnn_tanh", "rnn_relu", "lstm"]
LAYER_POISONS = ["none", "nan", "nan", "inf", "-inf", "huge"]


pytestmark = pytest.mark.usefixtures("one_thread")


def tolerance(dtype: torch.dtype, gradient: bool) -> dict[str, float]:
    if dtype == torch.float64:
        return {"rtol": 1e-10, "atol": 1e-10}
    return {"rtol": 1e-4 if gradient else 1e-5, "atol": 1e-5}


def assert_same_values(got: Tensor, want: Tensor, what: str, gradient: bool = False) -> None:
    """Same NaN, +Inf and -Inf positions; the values finite in ``want`` agree."""
    assert got.shape == want.shape and got.dtype == want.dtype, what
    for name, mask in (("NaN", torch.isnan), ("+Inf", torch.isposinf), ("-Inf", torch.isneginf)):
        g, w = mask(got), mask(want)
        assert torch.equal(g, w), f"{what}: {name} at {int(g.sum())} places, oracle {int(w.sum())}"
    finite = torch.isfinite(want)
    torch.testing.assert_close(
        got[finite], want[finite], msg=what, **tolerance(want.dtype, gradient)
    )


def spec_of(kind: str) -> CellSpec:
    return CellSpec("gru", reset_after=False) if kind == "gru_before" else CellSpec(kind)


def backends_for(kind: str, dtype: torch.dtype) -> list[str]:
    like = torch.zeros(1, 1, 1, dtype=dtype)
    return [n for n in grukit.available_backends() if BACKENDS[n].supports(spec_of(kind), like)]


def make_layer(kind: str, backend: str, I: int, H: int, kw: dict) -> nn.Module:
    if kind in ("gru", "gru_before"):
        return grukit.GRU(I, H, reset_after=kind == "gru", backend=backend, **kw)
    if kind == "lstm":
        return grukit.LSTM(I, H, backend=backend, **kw)
    return grukit.RNN(I, H, nonlinearity=kind[4:], backend=backend, **kw)


def make_oracle(kind: str, I: int, H: int, kw: dict) -> nn.Module:
    if kind == "gru_before":
        return make_layer(kind, "reference", I, H, kw)
    if kind == "gru":
        return nn.GRU(I, H, **kw)
    if kind == "lstm":
        return nn.LSTM(I, H, **kw)
    return nn.RNN(I, H, nonlinearity=kind[4:], **kw)


def poison_value(poison: str, dtype: torch.dtype) -> float:
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(poison, 0.0)


def inject(t: Tensor, poison: str, spot: int) -> None:
    """In place: one element (spot mod numel) set to NaN / ±Inf, or all scaled to overflow."""
    if poison == "huge":
        t.mul_(1e38 if t.dtype == torch.float32 else 1e300)
    elif poison != "none":
        t.view(-1)[spot % t.numel()] = poison_value(poison, t.dtype)


def flat(result: object) -> list[Tensor]:
    """Outputs and states of a layer call as a flat list (PackedSequence: its data)."""
    out, state = result  # type: ignore[misc]
    out = out.data if isinstance(out, PackedSequence) else out
    return [out, *(state if isinstance(state, tuple) else (state,))]


def run(layer: nn.Module, x: Tensor, h0: tuple[Tensor, ...] | None, lengths: list[int] | None,
        batch_first: bool) -> tuple[list[Tensor], list[Tensor]]:  # fmt: skip
    """(outputs and final states, gradients of x, h0 and every parameter)."""
    x = x.detach().clone().requires_grad_()
    hs = None if h0 is None else tuple(h.detach().clone().requires_grad_() for h in h0)
    inp: Tensor | PackedSequence = x
    if lengths is not None:
        inp = pack_padded_sequence(x, torch.tensor(lengths), batch_first, enforce_sorted=False)
    hx = None if hs is None else (hs if len(hs) == 2 else hs[0])
    results = flat(layer(inp, hx))
    ups = [torch.linspace(-1, 1, r.numel(), dtype=r.dtype).view_as(r) for r in results]
    torch.autograd.backward(results, ups)
    grads = [x.grad] + ([] if hs is None else [h.grad for h in hs])
    grads += [p.grad for p in layer.parameters()]
    return [r.detach() for r in results], grads


@st.composite
def layer_cases(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(LAYER_KINDS))
    H = draw(st.integers(1, 9))
    case = {
        "kind": kind,
        "T": draw(st.integers(1, 6)),
        "N": draw(st.one_of(st.none(), st.integers(1, 4))),  # None: unbatched (T, I)
        "I": draw(st.integers(1, 5)),
        "H": H,
        "kw": {
            "num_layers": draw(st.integers(1, 2)),
            "bidirectional": draw(st.booleans()),
            "batch_first": draw(st.booleans()),
            "bias": draw(st.booleans()),
            "dtype": draw(st.sampled_from([torch.float32, torch.float64])),
        },
        "packed": draw(st.booleans()),
        "give_h0": draw(st.booleans()),
        "target": draw(st.sampled_from(["input", "h0", "weight"])),
        "poison": draw(st.sampled_from(LAYER_POISONS)),
        "spot": draw(st.integers(0, 10**6)),
        "seed": draw(st.integers(0, 2**16)),
    }
    if kind == "lstm" and H > 1 and draw(st.booleans()):
        case["kw"]["proj_size"] = draw(st.integers(1, H - 1))
    if case["N"] is None:
        case["packed"] = False  # packing needs a batch dimension
    case["lengths"] = [draw(st.integers(1, case["T"])) for _ in range(case["N"] or 0)]
    return case


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@settings(SETTINGS, max_examples=40)
@given(case=layer_cases())
def test_layers_equal_torch_nn_on_every_backend(case: dict) -> None:
    kind, T, N, I, H, kw = (case[k] for k in ("kind", "T", "N", "I", "H", "kw"))
    dtype, batch_first = kw["dtype"], kw["batch_first"]
    torch.manual_seed(case["seed"])
    oracle = make_oracle(kind, I, H, kw)
    sd = {k: v.detach().clone() for k, v in oracle.state_dict().items()}
    shape = (T, I) if N is None else ((N, T, I) if batch_first else (T, N, I))
    x = torch.randn(*shape, dtype=dtype)
    D = 2 if kw["bidirectional"] else 1
    P = kw.get("proj_size") or H
    batch = () if N is None else (N,)
    h0 = None
    if case["give_h0"]:
        h0 = (torch.randn(D * kw["num_layers"], *batch, P, dtype=dtype),)
        if kind == "lstm":
            h0 += (torch.randn(D * kw["num_layers"], *batch, H, dtype=dtype),)
    target = case["target"] if case["target"] != "h0" or h0 else "input"
    if target == "weight":
        names = sorted(sd)
        inject(sd[names[case["spot"] % len(names)]], case["poison"], case["spot"] // 7)
    else:
        inject(x if target == "input" else h0[case["spot"] % len(h0)], case["poison"], case["spot"])
    oracle.load_state_dict(sd)
    lengths = case["lengths"] if case["packed"] else None
    want_out, want_grad = run(oracle, x, h0, lengths, batch_first)
    backends = backends_for(kind, dtype)
    assert backends, f"no backend computes {kind}"
    for backend in backends:
        layer = make_layer(kind, backend, I, H, kw)
        layer.load_state_dict(sd)
        got_out, got_grad = run(layer, x, h0, lengths, batch_first)
        for k, (g, w) in enumerate(zip(got_out, want_out, strict=True)):
            assert_same_values(g, w, f"{backend} {kind}: result {k}")
        for k, (g, w) in enumerate(zip(got_grad, want_grad, strict=True)):
            assert_same_values(g, w, f"{backend} {kind}: gradient {k}", gradient=True)


CELLS = ["gru", "gru_before", "rnn_tanh", "rnn_relu", "lstm"]


def make_cell(kind: str, I: int, H: int, bias: bool, dtype: torch.dtype, backend: str | None
              ) -> nn.Module:  # fmt: skip
    """grukit's cell; backend None: the torch.nn oracle (reference GRUCell for gru_before)."""
    kw = {"bias": bias, "dtype": dtype}
    if kind in ("gru", "gru_before"):
        if backend is None and kind == "gru":
            return nn.GRUCell(I, H, **kw)
        return grukit.GRUCell(I, H, reset_after=kind == "gru", backend=backend or "reference", **kw)
    if kind == "lstm":
        return (nn.LSTMCell if backend is None else grukit.LSTMCell)(I, H, **kw)
    return (nn.RNNCell if backend is None else grukit.RNNCell)(I, H, nonlinearity=kind[4:], **kw)


@settings(SETTINGS, max_examples=60)
@given(
    kind=st.sampled_from(CELLS),
    N=st.one_of(st.none(), st.integers(1, 4)),
    I=st.integers(1, 6),
    H=st.integers(1, 9),
    bias=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    target=st.sampled_from(["input", "state", "weight"]),
    poison=st.sampled_from(POISONS),
    spot=st.integers(0, 10**6),
    grad=st.booleans(),
)
def test_cells_equal_torch_nn(
    kind: str, N: int | None, I: int, H: int, bias: bool, dtype: torch.dtype, target: str,
    poison: str, spot: int, grad: bool,
) -> None:  # fmt: skip
    """One step; GRUCell on every backend name it takes ("auto" included). With grad off,
    a GRUCell on the CPU takes the native streaming step."""
    torch.manual_seed(spot)
    oracle = make_cell(kind, I, H, bias, dtype, None)
    sd = {k: v.detach().clone() for k, v in oracle.state_dict().items()}
    batch = () if N is None else (N,)
    x = torch.randn(*batch, I, dtype=dtype)
    state = [torch.randn(*batch, H, dtype=dtype) for _ in range(2 if kind == "lstm" else 1)]
    if target == "weight":
        inject(sd[sorted(sd)[spot % len(sd)]], poison, spot // 5)
    else:
        inject(x if target == "input" else state[spot % len(state)], poison, spot)
    oracle.load_state_dict(sd)
    names = ["auto", *grukit.available_backends()] if kind.startswith("gru") else ["-"]
    cells = [(n, make_cell(kind, I, H, bias, dtype, n)) for n in names]

    def call(cell: nn.Module) -> list[Tensor]:
        xs = x.clone().requires_grad_(grad)
        ss = [s.clone().requires_grad_(grad) for s in state]
        with torch.set_grad_enabled(grad):
            out = cell(xs, tuple(ss) if kind == "lstm" else ss[0])
        outs = list(out) if isinstance(out, tuple) else [out]
        if not grad:
            return outs
        ups = [torch.linspace(-1, 1, o.numel(), dtype=dtype).view_as(o) for o in outs]
        torch.autograd.backward(outs, ups)
        return (
            [o.detach() for o in outs]
            + [xs.grad, *(s.grad for s in ss)]
            + [p.grad for p in cell.parameters()]
        )

    want = call(oracle)
    for name, cell in cells:
        cell.load_state_dict(sd)
        got = call(cell)
        n_out = 2 if kind == "lstm" else 1
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_values(g, w, f"{name} {kind} cell: result {k}", gradient=k >= n_out)


MISTAKES = ["features", "dims", "h0_shape", "h0_dtype", "int_input", "h0_type"]


@SETTINGS
@given(
    kind=st.sampled_from(KINDS),
    mistake=st.sampled_from(MISTAKES),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    batch_first=st.booleans(),
    bidirectional=st.booleans(),
)
def test_layer_mistakes_raise_value_or_type_error(
    kind: str, mistake: str, dtype: torch.dtype, batch_first: bool, bidirectional: bool
) -> None:
    """A wrong input is a ValueError or TypeError naming the layer, on every backend."""
    I, H, T, N = 3, 4, 5, 2
    kw = {"batch_first": batch_first, "bidirectional": bidirectional, "dtype": dtype}
    D = 2 if bidirectional else 1
    x = torch.randn(N, T, I, dtype=dtype) if batch_first else torch.randn(T, N, I, dtype=dtype)
    h0: object = None
    if mistake == "features":
        x = torch.randn(T, N, I + 1, dtype=dtype)
    elif mistake == "dims":
        x = torch.randn(T, N, I, 1, dtype=dtype)
    elif mistake == "h0_shape":
        h0 = torch.randn(D, N + 1, H, dtype=dtype)
    elif mistake == "h0_dtype":
        other = torch.float64 if dtype == torch.float32 else torch.float32
        h0 = torch.randn(D, N, H, dtype=other)
    elif mistake == "int_input":
        x = x.to(torch.int64)
    elif mistake == "h0_type":
        h0 = [[0.0] * H] * N
    if kind == "lstm" and isinstance(h0, Tensor):
        h0 = (h0, torch.randn(D, N, H, dtype=dtype))
    for backend in backends_for(kind, dtype):
        layer = make_layer(kind, backend, I, H, kw)
        with pytest.raises((ValueError, TypeError), match=type(layer).__name__):
            layer(x, h0)
