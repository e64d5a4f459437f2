"""GRUCell / RNNCell / LSTMCell against torch.nn's cells, and the functional cells."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import grukit
from grukit import functional as F

DT = torch.float64
TOL = 1e-10


def _pair(kind: str, bias: bool):
    if kind == "gru":
        return grukit.GRUCell(3, 4, bias, dtype=DT), nn.GRUCell(3, 4, bias, dtype=DT)
    if kind in ("tanh", "relu"):
        return (
            grukit.RNNCell(3, 4, bias, nonlinearity=kind, dtype=DT),
            nn.RNNCell(3, 4, bias, nonlinearity=kind, dtype=DT),
        )
    return grukit.LSTMCell(3, 4, bias, dtype=DT), nn.LSTMCell(3, 4, bias, dtype=DT)


@pytest.mark.parametrize("kind", ["gru", "tanh", "relu", "lstm"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_hx", [True, False])
def test_cell_equals_torch(kind: str, bias: bool, batched: bool, with_hx: bool) -> None:
    mine, theirs = _pair(kind, bias)
    theirs.load_state_dict(mine.state_dict())
    lead = (5,) if batched else ()
    x = torch.randn(*lead, 3, dtype=DT, requires_grad=True)
    hx = None
    if with_hx:
        h = torch.randn(*lead, 4, dtype=DT, requires_grad=True)
        hx = (h, torch.randn(*lead, 4, dtype=DT, requires_grad=True)) if kind == "lstm" else h
    out_m, out_t = mine(x, hx), theirs(x, hx)
    out_m = out_m if isinstance(out_m, tuple) else (out_m,)
    out_t = out_t if isinstance(out_t, tuple) else (out_t,)
    for a, b in zip(out_m, out_t, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)
    hxs = [] if hx is None else list(hx if isinstance(hx, tuple) else (hx,))
    w = [torch.randn_like(o) for o in out_m]
    loss_m = sum((o * wi).sum() for o, wi in zip(out_m, w, strict=True))
    loss_t = sum((o * wi).sum() for o, wi in zip(out_t, w, strict=True))
    g_m = torch.autograd.grad(loss_m, [*mine.parameters(), x, *hxs])
    g_t = torch.autograd.grad(loss_t, [*theirs.parameters(), x, *hxs])
    for a, b in zip(g_m, g_t, strict=True):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)


def test_gru_cell_reset_before_matches_layer() -> None:
    """GRUCell(reset_after=False) is one step of GRU(reset_after=False)."""
    cell = grukit.GRUCell(3, 4, reset_after=False, dtype=DT)
    layer = grukit.GRU(3, 4, reset_after=False, dtype=DT)
    layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    x, h = torch.randn(2, 3, dtype=DT), torch.randn(2, 4, dtype=DT)
    torch.testing.assert_close(cell(x, h), layer(x[None], h[None])[1][0], rtol=TOL, atol=TOL)


def test_functional_gru_variants_differ_only_in_candidate() -> None:
    """With r = 1 everywhere (huge reset bias) both variants give the same step."""
    x, h = torch.randn(2, 3, dtype=DT), torch.randn(2, 4, dtype=DT)
    w_ih, w_hh = torch.randn(12, 3, dtype=DT), torch.randn(12, 4, dtype=DT)
    b = torch.zeros(12, dtype=DT)
    b[:4] = 1e3  # r = sigmoid(1e3 + …) = 1
    a = F.gru_cell(x, h, w_ih, w_hh, b, b.clone(), reset_after=True)
    c = F.gru_cell(x, h, w_ih, w_hh, b, b.clone(), reset_after=False)
    torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
    b[:4] = 0.0  # r < 1: now they differ
    assert not torch.allclose(
        F.gru_cell(x, h, w_ih, w_hh, b, b, reset_after=True),
        F.gru_cell(x, h, w_ih, w_hh, b, b, reset_after=False),
    )


def test_rnn_cell_functional_rejects_unknown_nonlinearity() -> None:
    with pytest.raises(
        ValueError, match="rnn_cell: expected nonlinearity 'tanh' or 'relu', got 'gelu'"
    ):
        F.rnn_cell(
            torch.zeros(1, 1),
            torch.zeros(1, 1),
            torch.zeros(1, 1),
            torch.zeros(1, 1),
            nonlinearity="gelu",
        )
