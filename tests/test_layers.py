"""grukit.GRU / RNN / LSTM against torch.nn over a randomised grid of configurations.

Oracle: torch.nn's module with the same state_dict. Outputs, final states and the
gradients of every parameter, the input and the initial state must agree within
1e-10 in float64 and 1e-5 in float32, on every backend available here.
"""

from __future__ import annotations

import pytest
import torch

import grukit
from grukit.backends import CellSpec
from layer_grid import (
    TOL,
    LayerCase,
    grads_of,
    make_grukit,
    make_inputs,
    make_torch,
    random_cases,
    run,
)

CASES = (
    random_cases("gru", 14, seed=1)
    + random_cases("rnn_tanh", 6, seed=2)
    + random_cases("rnn_relu", 6, seed=3)
    + random_cases("lstm", 10, seed=4)
)
# Every input form and direction appears at least once, whatever the draw.
CASES += [
    LayerCase("gru", num_layers=2, bidirectional=True, form=form, batch_first=bf)
    for form in ("batched", "unbatched", "packed")
    for bf in (False, True)
]
CASES += [LayerCase("lstm", num_layers=2, bidirectional=True, proj_size=2, form="packed")]
BACKENDS = grukit.available_backends()


def _computes(backend: str, case: LayerCase) -> bool:
    """Whether ``backend`` computes this configuration's cell (on CPU float64)."""
    spec = CellSpec(case.kind, case.reset_after)
    return grukit.backends.BACKENDS[backend].supports(spec, torch.empty(0, dtype=torch.float64))


#: every (configuration, backend) pair where the backend computes the cell.
PAIRS = [(c, b) for c in CASES for b in BACKENDS if _computes(b, c)]


def _compare(case: LayerCase, dtype: torch.dtype, backend: str) -> None:
    mine = make_grukit(case, dtype, backend)
    theirs = make_torch(case, dtype)
    theirs.load_state_dict(mine.state_dict())
    x, hx, lengths = make_inputs(case, dtype)
    out_m, st_m = run(mine, case, x, hx, lengths)
    out_t, st_t = run(theirs, case, x, hx, lengths)
    tol = TOL[dtype]
    torch.testing.assert_close(out_m, out_t, rtol=tol, atol=tol)
    for a, b in zip(st_m, st_t, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    g_m = grads_of([out_m, *st_m], mine, x, hx)
    g_t = grads_of([out_t, *st_t], theirs, x, hx)
    for a, b in zip(g_m, g_t, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize(("case", "backend"), PAIRS, ids=[f"{c}-{b}" for c, b in PAIRS])
def test_equals_torch_float64(case: LayerCase, backend: str) -> None:
    _compare(case, torch.float64, backend)


@pytest.mark.parametrize("case", CASES[::5], ids=str)
def test_equals_torch_float32(case: LayerCase) -> None:
    _compare(case, torch.float32, "auto")


@pytest.mark.parametrize("kind", ["gru", "rnn_tanh", "lstm"])
def test_seeded_initialisation_equals_torch(kind: str) -> None:
    """Same seed → same weights as torch.nn: same names, shapes, order and U(−1/√H, 1/√H)."""
    case = LayerCase(kind, num_layers=2, bidirectional=True, hidden_size=7)
    torch.manual_seed(123)
    mine = make_grukit(case, torch.float32)
    torch.manual_seed(123)
    theirs = make_torch(case, torch.float32)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
        assert a.abs().max() <= 1 / 7**0.5


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.kind != "gru" or c.reset_after][:12], ids=str
)
def test_state_dict_round_trips_both_ways(case: LayerCase) -> None:
    mine = make_grukit(case, torch.float64)
    theirs = make_torch(case, torch.float64)
    theirs.load_state_dict(mine.state_dict())  # grukit → torch, strict
    again = make_grukit(case, torch.float64)
    again.load_state_dict(theirs.state_dict())  # torch → grukit, strict
    for (k, a), b in zip(mine.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert [p.shape for p in mine.parameters()] == [p.shape for p in theirs.parameters()]


def test_all_weights_and_repr_follow_torch() -> None:
    mine = grukit.LSTM(3, 5, 2, bidirectional=True, proj_size=2)
    theirs = torch.nn.LSTM(3, 5, 2, bidirectional=True, proj_size=2)
    assert [[p.shape for p in ws] for ws in mine.all_weights] == [
        [p.shape for p in ws] for ws in theirs.all_weights
    ]
    assert repr(grukit.GRU(3, 5, 2, dropout=0.5)) == "GRU(3, 5, num_layers=2, dropout=0.5)"
    assert "reset_after=False" in repr(grukit.GRU(3, 5, reset_after=False))


def test_dropout_between_layers_as_torch() -> None:
    """p = 1 zeroes every layer output but the last, in both libraries: exact equality;
    eval mode and a single layer apply no dropout at all."""
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    mine = grukit.GRU(3, 5, 2, dropout=1.0, dtype=torch.float64).train()
    theirs = torch.nn.GRU(3, 5, 2, dropout=1.0, dtype=torch.float64).train()
    theirs.load_state_dict(mine.state_dict())
    torch.testing.assert_close(mine(x)[0], theirs(x)[0], rtol=1e-12, atol=1e-12)
    plain = grukit.GRU(3, 5, 2, dtype=torch.float64)
    plain.load_state_dict(mine.state_dict())
    torch.testing.assert_close(mine.eval()(x)[0], plain(x)[0], rtol=0, atol=0)
    one = grukit.GRU(3, 5, 1, dropout=0.5, dtype=torch.float64).train()
    one_plain = grukit.GRU(3, 5, 1, dtype=torch.float64)
    one_plain.load_state_dict(one.state_dict())
    torch.testing.assert_close(one(x)[0], one_plain(x)[0], rtol=0, atol=0)


def test_dropout_half_has_the_right_expectation() -> None:
    """p = 0.5: the second layer sees its input zeroed with probability 1/2 and scaled by 2.
    Layer 0 outputs relu(1) = 1 in 400 units; layer 1 is the identity on its input, so its
    output shows the mask: values in {0, 2}, zeros a fraction 1/2 within 4 standard errors."""
    rnn = grukit.RNN(1, 400, 2, nonlinearity="relu", bias=False, dropout=0.5).train()
    with torch.no_grad():
        rnn.weight_ih_l0.fill_(1.0)
        rnn.weight_hh_l0.zero_()
        rnn.weight_ih_l1.copy_(torch.eye(400))
        rnn.weight_hh_l1.zero_()
    out, _ = rnn(torch.ones(1, 1, 1))
    values = out.detach().flatten()
    assert set(values.unique().tolist()) <= {0.0, 2.0}
    frac = (values == 0).double().mean().item()
    assert abs(frac - 0.5) < 4 * (0.25 / 400) ** 0.5
    assert torch.equal(rnn.eval()(torch.ones(1, 1, 1))[0], torch.ones(1, 1, 400))


def test_reset_after_false_matches_independent_formula() -> None:
    """Cho et al. / d2l GRU written out here, independently of grukit.functional."""
    torch.manual_seed(5)
    I, H, T, N = 3, 4, 6, 2
    gru = grukit.GRU(I, H, reset_after=False, dtype=torch.float64)
    x = torch.randn(T, N, I, dtype=torch.float64)
    h = torch.randn(N, H, dtype=torch.float64)
    out, h_n = gru(x, h.unsqueeze(0))
    W_ir, W_iz, W_in = gru.weight_ih_l0.detach().split(H)
    W_hr, W_hz, W_hn = gru.weight_hh_l0.detach().split(H)
    b_ir, b_iz, b_in = gru.bias_ih_l0.detach().split(H)
    b_hr, b_hz, b_hn = gru.bias_hh_l0.detach().split(H)
    expected = []
    for t in range(T):
        r = torch.sigmoid(x[t] @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = torch.sigmoid(x[t] @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        n = torch.tanh(x[t] @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
        h = (1 - z) * n + z * h
        expected.append(h)
    torch.testing.assert_close(out, torch.stack(expected), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_n[0], h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if _computes(b, LayerCase("gru", False))])
def test_reset_after_false_packed_equals_one_sequence_at_a_time(backend: str) -> None:
    """Packed, bidirectional, 2 layers: each sequence as if run alone, unbatched."""
    case = LayerCase(
        "gru", reset_after=False, num_layers=2, bidirectional=True, form="packed", T=5, N=4
    )
    gru = make_grukit(case, torch.float64, backend)
    x, hx, lengths = make_inputs(case, torch.float64)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, h_n = gru(packed, hx)
    padded, _ = torch.nn.utils.rnn.pad_packed_sequence(out)
    for b in range(case.N):
        L = int(lengths[b])
        o_b, h_b = gru(x[:L, b], hx[:, b])
        torch.testing.assert_close(padded[:L, b], o_b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h_n[:, b], h_b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gradcheck_reference(reset_after: bool) -> None:
    gru = grukit.GRU(
        2,
        3,
        2,
        bidirectional=True,
        dtype=torch.float64,
        reset_after=reset_after,
        backend="reference",
    )
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    h = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    params = list(gru.parameters())

    def f(x, h, *ps):
        with torch.nn.utils.stateless._reparametrize_module(
            gru, dict(zip([n for n, _ in gru.named_parameters()], ps, strict=True))
        ):
            out, h_n = gru(x, h)
        return out, h_n

    assert torch.autograd.gradcheck(f, (x, h, *params), eps=1e-6, atol=1e-7)


def test_lstm_gradcheck_with_projection() -> None:
    lstm = grukit.LSTM(2, 3, proj_size=2, dtype=torch.float64, backend="reference")
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    h = torch.randn(1, 2, dtype=torch.float64, requires_grad=True)
    c = torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h, c: lstm(x, (h, c))[0], (x, h, c))
