"""torch as the oracle of the NumPy scratch tests: one layer's weights as NumPy params,
random inputs, and autograd's gradients of a random linear functional of the output."""

from __future__ import annotations

import numpy as np
import torch

NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def layer_inputs(module: torch.nn.Module, T: int, N: int, I: int, H: int, seed: int = 0):
    """(params, x (T, N, I), h0 (N, H), w (T, N, H)) in the module's dtype; w is the
    upstream gradient: loss = Σ w ⊙ ys, so ∂L/∂ys = w."""
    params = {k: getattr(module, f"{k}_l0").detach().numpy().copy() for k in NAMES}
    rng = np.random.default_rng(seed)
    np_dtype = params["weight_ih"].dtype
    x = rng.standard_normal((T, N, I)).astype(np_dtype)
    h0 = rng.standard_normal((N, H)).astype(np_dtype)
    w = rng.standard_normal((T, N, H)).astype(np_dtype)
    return params, x, h0, w


def torch_grads(module: torch.nn.Module, x: np.ndarray, h0: np.ndarray, w: np.ndarray):
    """Output (T, N, H) of the torch layer and autograd's gradients of Σ w ⊙ output."""
    xt = torch.tensor(x, requires_grad=True)
    ht = torch.tensor(h0[None], requires_grad=True)  # (1, N, H)
    module.zero_grad()
    out, _ = module(xt, ht)
    (out * torch.tensor(w)).sum().backward()
    grads = {k: getattr(module, f"{k}_l0").grad.numpy() for k in NAMES}
    grads["x"], grads["h0"] = xt.grad.numpy(), ht.grad[0].numpy()
    return out.detach().numpy(), grads


def assert_matches_torch(ys, out, grads, expected) -> None:
    """Forward within 1e-12 absolute and every gradient (the four parameters, x, h0)
    within 1e-9 relative (1e-12 absolute floor) of torch, float64 throughout."""
    np.testing.assert_allclose(ys, out, rtol=0, atol=1e-12)
    assert set(grads) == {*NAMES, "x", "h0"}
    for k, g in expected.items():
        assert grads[k].shape == g.shape and grads[k].dtype == np.float64
        np.testing.assert_allclose(grads[k], g, rtol=1e-9, atol=1e-12, err_msg=k)
