"""grukit.scratch RNN (tanh, relu), argument checks and gradcheck itself.

Oracles: torch.nn.RNN with the same weights; central differences via gradcheck.
Tolerances (float64): forward 1e-12 absolute, gradients 1e-9 relative (1e-12 absolute
floor) against autograd, 1e-6 normwise relative against finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grukit.scratch import (
    gradcheck,
    numerical_gradients,
    relative_errors,
    rnn_backward,
    rnn_forward,
)
from scratch_oracle import NAMES, assert_matches_torch, layer_inputs, torch_grads

SIZES = [(5, 3, 4, 6), (1, 1, 3, 3), (7, 1, 2, 5), (3, 4, 6, 2)]  # (T, N, I, H)


def setup(T, N, I, H, nonlinearity, dtype=torch.float64, seed=0):
    """A torch.nn.RNN, its weights as NumPy params, and random x, h0 and upstream w."""
    torch.manual_seed(seed)
    module = torch.nn.RNN(I, H, nonlinearity=nonlinearity, dtype=dtype)
    return (module, *layer_inputs(module, T, N, I, H, seed))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("size", SIZES)
def test_matches_torch_float64(size, nonlinearity):
    module, params, x, h0, w = setup(*size, nonlinearity)
    ys, cache = rnn_forward(x, h0, params, nonlinearity=nonlinearity)
    out, expected = torch_grads(module, x, h0, w)
    assert_matches_torch(ys, out, rnn_backward(w, cache), expected)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("size", SIZES)
def test_matches_finite_differences(size, nonlinearity):
    _, params, x, h0, w = setup(*size, nonlinearity, seed=1)
    _, cache = rnn_forward(x, h0, params, nonlinearity=nonlinearity)
    grads = rnn_backward(w, cache)

    def loss(a):
        p = {k: a[k] for k in NAMES}
        ys, _ = rnn_forward(a["x"], a["h0"], p, nonlinearity=nonlinearity)
        return float((ys * w).sum())

    assert gradcheck(loss, {"x": x, "h0": h0, **params}, grads) < 1e-6


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_float32(nonlinearity):
    module, params, x, h0, w = setup(6, 3, 4, 5, nonlinearity, dtype=torch.float32)
    ys, cache = rnn_forward(x, h0, params, nonlinearity=nonlinearity)
    out, expected = torch_grads(module, x, h0, w)
    assert ys.dtype == np.float32
    np.testing.assert_allclose(ys, out, rtol=0, atol=1e-5)
    grads = rnn_backward(w, cache)
    for k, g in expected.items():
        assert grads[k].dtype == np.float32, k
        np.testing.assert_allclose(grads[k], g, rtol=1e-4, atol=1e-5, err_msg=k)


def test_forward_does_not_modify_inputs():
    _, params, x, h0, w = setup(3, 2, 4, 5, "tanh")
    before = [a.copy() for a in (x, h0, *params.values())]
    _, cache = rnn_forward(x, h0, params)
    rnn_backward(w, cache)
    for a, b in zip((x, h0, *params.values()), before, strict=True):
        np.testing.assert_array_equal(a, b)


# --- argument checks (shared by all layers through grukit.scratch._checks) -------------


def test_errors_name_function_expected_and_got():
    _, params, x, h0, w = setup(3, 2, 4, 5, "tanh")
    with pytest.raises(TypeError, match="rnn_forward: expected x to be a numpy.ndarray, got list"):
        rnn_forward(x.tolist(), h0, params)
    with pytest.raises(TypeError, match="rnn_forward: expected x of dtype float32 or float64"):
        rnn_forward(x.astype(np.int64), h0, params)
    with pytest.raises(
        TypeError, match=r"rnn_forward: expected x of dtype float64 \(the weights'\)"
    ):
        rnn_forward(x.astype(np.float32), h0, params)
    with pytest.raises(ValueError, match=r"rnn_forward: expected x of shape \(T, N, I\), got 2-D"):
        rnn_forward(x[0], h0, params)
    with pytest.raises(ValueError, match=r"rnn_forward: expected x with T >= 1 steps"):
        rnn_forward(x[:0], h0, params)
    with pytest.raises(
        ValueError, match=r"rnn_forward: expected h0 of shape \(2, 5\), got \(2, 4\)"
    ):
        rnn_forward(x, h0[:, :4], params)
    with pytest.raises(TypeError, match=r"rnn_forward: expected params\[\"bias_hh\"\] of dtype"):
        rnn_forward(x, h0, {**params, "bias_hh": params["bias_hh"].astype(np.float32)})
    with pytest.raises(ValueError, match=r"rnn_forward: expected params\[\"bias_ih\"\] of shape"):
        rnn_forward(x, h0, {**params, "bias_ih": params["bias_ih"][:3]})
    with pytest.raises(ValueError, match=r"missing \['bias_hh'\] and unexpected \['bias'\]"):
        rnn_forward(x, h0, {**{k: params[k] for k in NAMES[:3]}, "bias": params["bias_hh"]})
    with pytest.raises(TypeError, match="rnn_forward: expected params to be a dict"):
        rnn_forward(x, h0, list(params.values()))
    with pytest.raises(ValueError, match="rnn_forward: expected nonlinearity 'tanh' or 'relu'"):
        rnn_forward(x, h0, params, nonlinearity="sigmoid")
    _, cache = rnn_forward(x, h0, params)
    with pytest.raises(ValueError, match=r"rnn_backward: expected dys of shape \(3, 2, 5\)"):
        rnn_backward(w[:, :1], cache)
    with pytest.raises(TypeError, match="rnn_backward: expected cache to be an RNNCache"):
        rnn_backward(w, (x, h0))


# --- gradcheck itself ------------------------------------------------------------------


def test_numerical_gradients_of_known_function():
    """L = Σ a² + 3 Σ b has ∂L/∂a = 2a and ∂L/∂b = 3."""
    rng = np.random.default_rng(0)
    arrays = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
    g = numerical_gradients(lambda d: float((d["a"] ** 2).sum() + 3 * d["b"].sum()), arrays)
    np.testing.assert_allclose(g["a"], 2 * arrays["a"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(g["b"], np.full(4, 3.0), rtol=0, atol=1e-8)


def test_gradcheck_flags_a_wrong_gradient():
    """A backward that forgets the recurrent path (∂L/∂h0 from step 1 only) is caught."""
    _, params, x, h0, w = setup(4, 2, 3, 3, "tanh")
    _, cache = rnn_forward(x, h0, params)
    grads = rnn_backward(w, cache)

    def loss(a):
        return float((rnn_forward(a["x"], a["h0"], {k: a[k] for k in NAMES})[0] * w).sum())

    arrays = {"x": x, "h0": h0, **params}
    assert gradcheck(loss, arrays, grads) < 1e-6
    wrong = dict(grads, h0=(w[0] * (1 - cache.hs[1] ** 2)) @ params["weight_hh"])
    errors = relative_errors(loss, arrays, wrong)
    assert errors["h0"] > 1e-2 and max(v for k, v in errors.items() if k != "h0") < 1e-6
    assert gradcheck(loss, arrays, wrong) == errors["h0"]


def test_gradcheck_leaves_arrays_untouched_and_checks_float32_in_float64():
    _, params, x, h0, w = setup(2, 2, 3, 3, "tanh", dtype=torch.float32)
    arrays = {"x": x, "h0": h0, **params}
    before = {k: v.copy() for k, v in arrays.items()}
    _, cache = rnn_forward(x, h0, params)

    def loss(a):
        return float((rnn_forward(a["x"], a["h0"], {k: a[k] for k in NAMES})[0] * w).sum())

    # float32 analytic gradients are accurate to float32 rounding, ~1e-7 relative
    assert gradcheck(loss, arrays, rnn_backward(w, cache)) < 1e-5
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k])
        assert v.dtype == np.float32


def test_gradcheck_errors():
    arrays = {"a": np.ones(3)}
    with pytest.raises(ValueError, match="relative_errors: expected grads named and shaped"):
        gradcheck(lambda d: float(d["a"].sum()), arrays, {"a": np.ones(4)})
    with pytest.raises(ValueError, match="numerical_gradients: expected eps > 0, got 0"):
        numerical_gradients(lambda d: float(d["a"].sum()), arrays, eps=0)
    with pytest.raises(TypeError, match=r"expected arrays\['a'\] to be a float numpy.ndarray"):
        numerical_gradients(lambda d: 0.0, {"a": [1.0]})
