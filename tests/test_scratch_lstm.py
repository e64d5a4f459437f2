"""grukit.scratch LSTM: forward and hand-written BPTT against torch and finite differences.

Oracle: torch.nn.LSTM (no projection) with the same weights; central differences via
gradcheck. Tolerances (float64): forward 1e-12 absolute, gradients 1e-9 relative (1e-12
absolute floor) against autograd, 1e-6 normwise relative against finite differences.
The loss reads every hidden state and the final cell state c_n.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grukit.scratch import gradcheck, lstm_backward, lstm_forward

NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
SIZES = [(5, 3, 4, 6), (1, 1, 3, 3), (7, 1, 2, 5), (3, 4, 6, 2)]  # (T, N, I, H)


def setup(T, N, I, H, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    module = torch.nn.LSTM(I, H, dtype=dtype)
    params = {k: getattr(module, f"{k}_l0").detach().numpy().copy() for k in NAMES}
    rng = np.random.default_rng(seed)
    d = params["weight_ih"].dtype
    x = rng.standard_normal((T, N, I)).astype(d)
    h0, c0 = (rng.standard_normal((N, H)).astype(d) for _ in range(2))
    w = rng.standard_normal((T, N, H)).astype(d)  # ∂L/∂ys
    dcs = np.zeros((T, N, H), dtype=d)
    dcs[-1] = rng.standard_normal((N, H))  # ∂L/∂c_n; the other cell states are not read
    return module, params, x, h0, c0, w, dcs


def torch_grads(module, x, h0, c0, w, dcs):
    xt = torch.tensor(x, requires_grad=True)
    ht = torch.tensor(h0[None], requires_grad=True)  # (1, N, H)
    ct = torch.tensor(c0[None], requires_grad=True)  # (1, N, H)
    out, (_, c_n) = module(xt, (ht, ct))
    ((out * torch.tensor(w)).sum() + (c_n[0] * torch.tensor(dcs[-1])).sum()).backward()
    grads = {k: getattr(module, f"{k}_l0").grad.numpy() for k in NAMES}
    grads["x"], grads["h0"], grads["c0"] = xt.grad.numpy(), ht.grad[0].numpy(), ct.grad[0].numpy()
    return out.detach().numpy(), c_n[0].detach().numpy(), grads


@pytest.mark.parametrize("size", SIZES)
def test_matches_torch_float64(size):
    module, params, x, h0, c0, w, dcs = setup(*size)
    ys, cs, cache = lstm_forward(x, h0, c0, params)
    out, c_n, expected = torch_grads(module, x, h0, c0, w, dcs)
    np.testing.assert_allclose(ys, out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cs[-1], c_n, rtol=0, atol=1e-12)
    grads = lstm_backward(w, cache, dcs=dcs)
    assert set(grads) == {*NAMES, "x", "h0", "c0"}
    for k, g in expected.items():
        np.testing.assert_allclose(grads[k], g, rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("size", SIZES)
def test_matches_finite_differences(size):
    _, params, x, h0, c0, w, dcs = setup(*size, seed=1)
    _, _, cache = lstm_forward(x, h0, c0, params)
    grads = lstm_backward(w, cache, dcs=dcs)

    def loss(a):
        ys, cs, _ = lstm_forward(a["x"], a["h0"], a["c0"], {k: a[k] for k in NAMES})
        return float((ys * w).sum() + (cs * dcs).sum())

    assert gradcheck(loss, {"x": x, "h0": h0, "c0": c0, **params}, grads) < 1e-6


def test_without_dcs_equals_zero_dcs():
    _, params, x, h0, c0, w, dcs = setup(4, 2, 3, 5)
    _, _, cache = lstm_forward(x, h0, c0, params)
    a, b = lstm_backward(w, cache), lstm_backward(w, cache, dcs=np.zeros_like(dcs))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_float32():
    module, params, x, h0, c0, w, dcs = setup(6, 3, 4, 5, dtype=torch.float32)
    ys, cs, cache = lstm_forward(x, h0, c0, params)
    out, c_n, expected = torch_grads(module, x, h0, c0, w, dcs)
    assert ys.dtype == cs.dtype == np.float32
    np.testing.assert_allclose(ys, out, rtol=0, atol=1e-5)
    grads = lstm_backward(w, cache, dcs=dcs)
    for k, g in expected.items():
        assert grads[k].dtype == np.float32, k
        np.testing.assert_allclose(grads[k], g, rtol=1e-4, atol=1e-5, err_msg=k)


def test_errors_name_function_expected_and_got():
    _, params, x, h0, c0, w, dcs = setup(3, 2, 4, 5)
    with pytest.raises(
        ValueError, match=r"lstm_forward: expected c0 of shape \(2, 5\), got \(5,\)"
    ):
        lstm_forward(x, h0, c0[0], params)
    with pytest.raises(
        ValueError, match=r"lstm_forward: expected params\[\"weight_hh\"\] of shape \(4·H, H\)"
    ):
        lstm_forward(x, h0, c0, {**params, "weight_hh": params["weight_hh"][:15]})
    _, _, cache = lstm_forward(x, h0, c0, params)
    with pytest.raises(ValueError, match=r"lstm_backward: expected dcs of shape \(3, 2, 5\)"):
        lstm_backward(w, cache, dcs=dcs[-1])
