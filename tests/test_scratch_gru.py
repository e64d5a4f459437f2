"""grukit.scratch GRU: forward and hand-written BPTT against torch and finite differences.

Oracles: torch.nn.GRU (reset_after=True) and grukit.GRU(reset_after=False,
backend="reference") with the same weights; central differences via gradcheck.
Tolerances (float64): forward 1e-12 absolute, gradients 1e-9 relative (1e-12 absolute
floor) against autograd, 1e-6 normwise relative against finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import grukit
from grukit.scratch import GRUCache, gradcheck, gru_backward, gru_forward
from grukit.scratch.demo import DemoConfig, train
from scratch_oracle import NAMES, assert_matches_torch, layer_inputs, torch_grads

SIZES = [(5, 3, 4, 6), (1, 1, 3, 3), (7, 1, 2, 5), (3, 4, 6, 2), (1, 2, 5, 4)]  # (T, N, I, H)


def torch_gru(input_size: int, hidden_size: int, reset_after: bool, dtype: torch.dtype):
    if reset_after:
        return torch.nn.GRU(input_size, hidden_size, dtype=dtype)
    return grukit.GRU(input_size, hidden_size, dtype=dtype, reset_after=False, backend="reference")


def setup(T, N, I, H, reset_after, dtype=torch.float64, seed=0):
    """A torch layer, its weights as NumPy params, and random x, h0 and upstream w."""
    torch.manual_seed(seed)
    module = torch_gru(I, H, reset_after, dtype)
    return (module, *layer_inputs(module, T, N, I, H, seed))


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("size", SIZES)
def test_matches_torch_float64(size, reset_after):
    module, params, x, h0, w = setup(*size, reset_after)
    ys, cache = gru_forward(x, h0, params, reset_after=reset_after)
    out, expected = torch_grads(module, x, h0, w)
    assert_matches_torch(ys, out, gru_backward(w, cache), expected)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("size", SIZES[:4])
def test_matches_finite_differences(size, reset_after):
    _, params, x, h0, w = setup(*size, reset_after, seed=1)
    ys, cache = gru_forward(x, h0, params, reset_after=reset_after)
    grads = gru_backward(w, cache)

    def loss(a):
        p = {k: a[k] for k in NAMES}
        return float((gru_forward(a["x"], a["h0"], p, reset_after=reset_after)[0] * w).sum())

    assert gradcheck(loss, {"x": x, "h0": h0, **params}, grads) < 1e-6


def test_reset_after_false_against_independent_formula():
    """reset_after=False is n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), written here once
    more in plain NumPy for one step, with no shared code."""
    _, params, x, h0, _ = setup(1, 3, 4, 5, False)
    W_ir, W_iz, W_in = np.split(params["weight_ih"], 3)
    W_hr, W_hz, W_hn = np.split(params["weight_hh"], 3)
    b_ir, b_iz, b_in = np.split(params["bias_ih"], 3)
    b_hr, b_hz, b_hn = np.split(params["bias_hh"], 3)
    xt, h = x[0], h0

    def sig(a):
        return 1 / (1 + np.exp(-a))

    r = sig(xt @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = sig(xt @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = np.tanh(xt @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
    expected = (1 - z) * n + z * h
    ys, _ = gru_forward(x, h0, params, reset_after=False)
    np.testing.assert_allclose(ys[0], expected, rtol=0, atol=1e-12)
    ys_after, _ = gru_forward(x, h0, params, reset_after=True)
    assert np.abs(ys_after - ys).max() > 1e-6  # the two variants are different functions


@pytest.mark.parametrize("reset_after", [True, False])
def test_float32(reset_after):
    """float32 in, float32 out; within float32 rounding of torch's float32 and of float64."""
    module, params, x, h0, w = setup(6, 3, 4, 5, reset_after, dtype=torch.float32)
    ys, cache = gru_forward(x, h0, params, reset_after=reset_after)
    out, expected = torch_grads(module, x, h0, w)
    assert ys.dtype == np.float32
    np.testing.assert_allclose(ys, out, rtol=0, atol=1e-5)
    grads = gru_backward(w, cache)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    _, cache64 = gru_forward(
        x.astype(np.float64), h0.astype(np.float64), p64, reset_after=reset_after
    )
    grads64 = gru_backward(w.astype(np.float64), cache64)
    for k, g in expected.items():
        assert grads[k].dtype == np.float32, k
        np.testing.assert_allclose(grads[k], g, rtol=1e-4, atol=1e-5, err_msg=k)
        np.testing.assert_allclose(grads[k], grads64[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_loss_on_h_n_only_matches_torch():
    """A loss reading only h_n (dys zero but for the last step), as a classifier head does."""
    module, params, x, h0, _ = setup(4, 2, 3, 4, True)
    w = np.zeros((4, 2, 4))
    w[-1] = np.random.default_rng(5).standard_normal((2, 4))
    _, cache = gru_forward(x, h0, params)
    _, expected = torch_grads(module, x, h0, w)
    grads = gru_backward(w, cache)
    for k, g in expected.items():
        np.testing.assert_allclose(grads[k], g, rtol=1e-9, atol=1e-12, err_msg=k)


def test_gates_saturated_stay_finite():
    """Huge pre-activations: σ and tanh saturate without overflow warnings or NaNs."""
    _, params, x, h0, w = setup(3, 2, 3, 4, True)
    big = {k: v * 1e4 for k, v in params.items()}
    with np.errstate(over="raise", invalid="raise"):
        ys, cache = gru_forward(x * 1e3, h0, big)
        grads = gru_backward(w, cache)
    assert np.isfinite(ys).all() and all(np.isfinite(g).all() for g in grads.values())


def test_errors_name_function_expected_and_got():
    _, params, x, h0, w = setup(3, 2, 4, 5, True)
    with pytest.raises(ValueError, match=r"gru_forward: expected x with 4 features .* got 3"):
        gru_forward(x[:, :, :3], h0, params)
    with pytest.raises(ValueError, match=r"gru_forward: expected params\[\"weight_hh\"\] of shape"):
        gru_forward(x, h0, {**params, "weight_hh": params["weight_hh"][:5]})
    with pytest.raises(
        ValueError, match=r"gru_forward: expected h0 of shape \(2, 5\), got \(1, 2, 5\)"
    ):
        gru_forward(x, h0[None], params)
    with pytest.raises(TypeError, match="gru_forward: expected reset_after to be a bool, got int"):
        gru_forward(x, h0, params, reset_after=1)
    _, cache = gru_forward(x, h0, params)
    with pytest.raises(ValueError, match=r"gru_backward: expected dys of shape \(3, 2, 5\)"):
        gru_backward(w[:2], cache)
    with pytest.raises(TypeError, match="gru_backward: expected dys of dtype float64"):
        gru_backward(w.astype(np.float32), cache)
    with pytest.raises(TypeError, match="gru_backward: expected cache to be a GRUCache, got dict"):
        gru_backward(w, {})
    assert isinstance(cache, GRUCache)


@pytest.mark.parametrize("reset_after", [True, False])
def test_demo_loss_falls(reset_after):
    """The demo's SGD training, briefly: the loss of the last steps is far below the first."""
    losses = train(DemoConfig(steps=60, reset_after=reset_after))
    assert len(losses) == 60 and np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])
