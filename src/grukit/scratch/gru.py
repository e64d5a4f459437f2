r"""GRU in NumPy: forward over time and backpropagation through time by hand.

Shapes (used in every docstring of this module):
    T  time steps      N  batch size      I  input size      H  hidden size

One layer, torch.nn.GRU's parameters with the "_l0" suffix dropped, rows in gate
order r, z, n: "weight_ih" (3H, I), "weight_hh" (3H, H), "bias_ih" (3H,), "bias_hh" (3H,).

Forward, for t = 1 … T (Cho et al. 2014, arXiv:1406.1078; symbols of ``docs/bptt.md``):

.. math::
    r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
    z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
    n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))
          \quad \text{reset\_after=True (torch, cuDNN, Keras default)} \\
    n_t &= \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn})
          \quad \text{reset\_after=False (Cho et al., d2l, ONNX default)} \\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

Backward, with :math:`\bar h_t = \partial L/\partial h_t` (output share + share from t + 1)
and pre-activations :math:`a^r, a^z, a^n` of the three gates:

.. math::
    \bar n &= \bar h_t \odot (1 - z), \quad \bar z = \bar h_t \odot (h_{t-1} - n), \quad
    \bar a^n = \bar n \odot (1 - n^2), \quad \bar a^z = \bar z \odot z (1 - z) \\
    \text{reset\_after=True:}\quad & \bar r = \bar a^n \odot q^n, \;
        q^n = W_{hn} h_{t-1} + b_{hn};\;
        \bar h_{t-1} = \bar h_t \odot z + [\bar a^r, \bar a^z, \bar a^n \odot r]\, W_{hh} \\
    \text{reset\_after=False:}\quad & \bar q = \bar a^n W_{hn},\; \bar r = \bar q \odot h_{t-1};\;
        \bar h_{t-1} = \bar h_t \odot z + \bar q \odot r + [\bar a^r, \bar a^z]\, W_{h[rz]}

and :math:`\bar a^r = \bar r \odot r (1 - r)`; weight gradients sum the outer products of
these with the inputs they multiplied (``docs/bptt.md`` derives every line).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks as check
from ._ops import sigmoid

__all__ = ["GRUCache", "gru_forward", "gru_backward"]


@dataclass(frozen=True)
class GRUCache:
    """What ``gru_backward`` needs from the forward pass.

    Attributes:
        x: (T, N, I) the input.
        hs: (T + 1, N, H) h_0 followed by every hidden state h_1 … h_T.
        r, z, n: (T, N, H) the reset gate, update gate and candidate at every step.
        q: (T, N, H) what the reset gate met: W_hn h_{t-1} + b_hn (reset_after=True),
            or r_t ⊙ h_{t-1} (reset_after=False).
        params: the layer's parameters (the same arrays, not copies).
        reset_after: the variant (see the module docstring).
    """

    x: np.ndarray
    hs: np.ndarray
    r: np.ndarray
    z: np.ndarray
    n: np.ndarray
    q: np.ndarray
    params: dict[str, np.ndarray]
    reset_after: bool


def gru_forward(
    x: np.ndarray,
    h0: np.ndarray,
    params: dict[str, np.ndarray],
    *,
    reset_after: bool = True,
) -> tuple[np.ndarray, GRUCache]:
    """Run one GRU layer over a sequence (equations in the module docstring).

    Args:
        x: (T, N, I) float32 or float64 input.
        h0: (N, H) initial hidden state, the weights' dtype.
        params: "weight_ih" (3H, I), "weight_hh" (3H, H), "bias_ih" (3H,), "bias_hh" (3H,),
            rows r, z, n as torch.nn.GRU.
        reset_after: True for torch's variant, False for Cho et al.'s / d2l's (keyword-only).

    Returns:
        ys: (T, N, H) every hidden state h_1 … h_T; ys[-1] is h_n.
        cache: the ``GRUCache`` to hand to ``gru_backward``.
    """
    owner = "gru_forward"
    p, input_size, hidden, dtype = check.layer_params(owner, params, 3)
    seq_len, batch = check.sequence(owner, x, input_size, dtype)
    check.state(owner, "h0", h0, batch, hidden, dtype)
    check.flag(owner, "reset_after", reset_after)

    H = hidden
    w_hh, b_hh = p["weight_hh"], p["bias_hh"]
    gi = x @ p["weight_ih"].T + p["bias_ih"]  # (T, N, 3H): the input's share, all steps at once
    hs = np.empty((seq_len + 1, batch, H), dtype=dtype)  # (T + 1, N, H)
    hs[0] = h0
    r, z, n, q = (np.empty((seq_len, batch, H), dtype=dtype) for _ in range(4))  # (T, N, H)
    for t in range(seq_len):
        h = hs[t]  # (N, H)
        if reset_after:
            gh = h @ w_hh.T + b_hh  # (N, 3H), rows r, z, n
            r[t] = sigmoid(gi[t, :, :H] + gh[:, :H])
            z[t] = sigmoid(gi[t, :, H : 2 * H] + gh[:, H : 2 * H])
            q[t] = gh[:, 2 * H :]  # W_hn h + b_hn
            n[t] = np.tanh(gi[t, :, 2 * H :] + r[t] * q[t])
        else:
            gh = h @ w_hh[: 2 * H].T + b_hh[: 2 * H]  # (N, 2H), rows r, z
            r[t] = sigmoid(gi[t, :, :H] + gh[:, :H])
            z[t] = sigmoid(gi[t, :, H : 2 * H] + gh[:, H:])
            q[t] = r[t] * h  # r ⊙ h, what W_hn multiplies
            n[t] = np.tanh(gi[t, :, 2 * H :] + q[t] @ w_hh[2 * H :].T + b_hh[2 * H :])
        hs[t + 1] = (1 - z[t]) * n[t] + z[t] * h
    cache = GRUCache(x=x, hs=hs, r=r, z=z, n=n, q=q, params=p, reset_after=reset_after)
    return hs[1:].copy(), cache


def gru_backward(dys: np.ndarray, cache: GRUCache) -> dict[str, np.ndarray]:
    """Backpropagation through time for ``gru_forward`` (equations in the module docstring).

    Args:
        dys: (T, N, H) ∂L/∂ys, the gradient of the loss with respect to every hidden
            state the forward returned (the last one being h_n); zeros where the loss
            does not read a step.
        cache: what ``gru_forward`` returned with ``ys``.

    Returns:
        grads: "weight_ih" (3H, I), "weight_hh" (3H, H), "bias_ih" (3H,), "bias_hh" (3H,),
        "x" (T, N, I) and "h0" (N, H): ∂L/∂ of each, in the forward's dtype.
    """
    owner = "gru_backward"
    if not isinstance(cache, GRUCache):
        raise TypeError(f"{owner}: expected cache to be a GRUCache, got {type(cache).__name__}")
    x, hs, p = cache.x, cache.hs, cache.params
    seq_len, batch, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    check.upstream(owner, "dys", dys, (seq_len, batch, H), hs.dtype)

    w_hh = p["weight_hh"]
    w_hrz, w_hn = w_hh[: 2 * H], w_hh[2 * H :]  # (2H, H), (H, H)
    dgi = np.empty((seq_len, batch, 3 * H), dtype=hs.dtype)  # ∂L/∂(W_ih x_t + b_ih)
    dgh = np.empty((seq_len, batch, 3 * H), dtype=hs.dtype)  # ∂L/∂ of the hidden GEMM's output
    dh = np.zeros_like(hs[0])  # (N, H): ∂L/∂h_t arriving from step t + 1
    for t in reversed(range(seq_len)):
        dh = dh + dys[t]  # the output's share joins the recurrent share
        h_prev, r, z, n, q = hs[t], cache.r[t], cache.z[t], cache.n[t], cache.q[t]
        dn = dh * (1 - z)
        dz = dh * (h_prev - n)
        da_n = dn * (1 - n * n)  # through tanh
        da_z = dz * z * (1 - z)  # through σ
        if cache.reset_after:
            da_r = da_n * q * r * (1 - r)  # r̄ = ā_n ⊙ (W_hn h + b_hn), then σ'
            dgh[t, :, :H], dgh[t, :, H : 2 * H], dgh[t, :, 2 * H :] = da_r, da_z, da_n * r
            dh = dh * z + dgh[t] @ w_hh  # (N, 3H) @ (3H, H)
        else:
            dq = da_n @ w_hn  # (N, H): ∂L/∂(r ⊙ h_prev)
            da_r = dq * h_prev * r * (1 - r)
            dgh[t, :, :H], dgh[t, :, H : 2 * H], dgh[t, :, 2 * H :] = da_r, da_z, da_n
            dh = dh * z + dq * r + dgh[t, :, : 2 * H] @ w_hrz  # (N, 2H) @ (2H, H)
        dgi[t, :, :H], dgi[t, :, H : 2 * H], dgi[t, :, 2 * H :] = da_r, da_z, da_n

    # Weight gradients: one GEMM over all T·N rows instead of T small ones.
    rows = seq_len * batch
    dgi_rows = dgi.reshape(rows, 3 * H)  # (T·N, 3H)
    dgh_rows = dgh.reshape(rows, 3 * H)  # (T·N, 3H)
    h_rows = hs[:-1].reshape(rows, H)  # (T·N, H): h_{t-1} for every step
    if cache.reset_after:
        dw_hh = dgh_rows.T @ h_rows  # (3H, H)
    else:
        q_rows = cache.q.reshape(rows, H)  # (T·N, H): r ⊙ h_{t-1}
        dw_hh = np.concatenate(
            [dgh_rows[:, : 2 * H].T @ h_rows, dgh_rows[:, 2 * H :].T @ q_rows]  # (2H, H), (H, H)
        )
    return {
        "weight_ih": dgi_rows.T @ x.reshape(rows, -1),  # (3H, T·N) @ (T·N, I)
        "weight_hh": dw_hh,
        "bias_ih": dgi_rows.sum(axis=0),
        "bias_hh": dgh_rows.sum(axis=0),
        "x": dgi @ p["weight_ih"],  # (T, N, I)
        "h0": dh,
    }
