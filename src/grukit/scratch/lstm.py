r"""LSTM in NumPy: forward over time and backpropagation through time by hand.

Shapes (used in every docstring of this module):
    T  time steps      N  batch size      I  input size      H  hidden size

One layer without projection, torch.nn.LSTM's parameters with the "_l0" suffix
dropped, rows in gate order i, f, g, o: "weight_ih" (4H, I), "weight_hh" (4H, H),
"bias_ih" (4H,), "bias_hh" (4H,).

Forward, for t = 1 … T (Hochreiter & Schmidhuber 1997; symbols of ``docs/bptt.md``):

.. math::
    [a^i, a^f, a^g, a^o] &= W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh} \\
    i = \sigma(a^i), \; f &= \sigma(a^f), \; g = \tanh(a^g), \; o = \sigma(a^o) \\
    c_t &= f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t)

Backward, with :math:`\bar h_t, \bar c_t` the gradients reaching step t from its outputs
and from step t + 1:

.. math::
    \bar o &= \bar h_t \odot \tanh(c_t), \quad
    \bar c_t \mathrel{+}= \bar h_t \odot o \odot (1 - \tanh^2 c_t) \\
    \bar i &= \bar c_t \odot g, \quad \bar g = \bar c_t \odot i, \quad
    \bar f = \bar c_t \odot c_{t-1}, \quad \bar c_{t-1} = \bar c_t \odot f \\
    \bar a &= [\bar i\, i(1-i),\; \bar f\, f(1-f),\; \bar g\, (1-g^2),\; \bar o\, o(1-o)],
    \quad \bar h_{t-1} = \bar a W_{hh}, \quad \bar x_t = \bar a W_{ih}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks as check
from ._ops import sigmoid

__all__ = ["LSTMCache", "lstm_forward", "lstm_backward"]


@dataclass(frozen=True)
class LSTMCache:
    """What ``lstm_backward`` needs from the forward pass.

    Attributes:
        x: (T, N, I) the input.
        hs: (T + 1, N, H) h_0 followed by every hidden state h_1 … h_T.
        cs: (T + 1, N, H) c_0 followed by every cell state c_1 … c_T.
        gates: (T, N, 4H) the activated gates i, f, g, o at every step.
        params: the layer's parameters (the same arrays, not copies).
    """

    x: np.ndarray
    hs: np.ndarray
    cs: np.ndarray
    gates: np.ndarray
    params: dict[str, np.ndarray]


def lstm_forward(
    x: np.ndarray, h0: np.ndarray, c0: np.ndarray, params: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, LSTMCache]:
    """Run one LSTM layer over a sequence (equations in the module docstring).

    Args:
        x: (T, N, I) float32 or float64 input.
        h0: (N, H) initial hidden state; c0: (N, H) initial cell state; the weights' dtype.
        params: "weight_ih" (4H, I), "weight_hh" (4H, H), "bias_ih" (4H,), "bias_hh" (4H,),
            rows i, f, g, o as torch.nn.LSTM.

    Returns:
        ys: (T, N, H) every hidden state h_1 … h_T; ys[-1] is h_n.
        cs: (T, N, H) every cell state c_1 … c_T; cs[-1] is c_n.
        cache: the ``LSTMCache`` to hand to ``lstm_backward``.
    """
    owner = "lstm_forward"
    p, input_size, hidden, dtype = check.layer_params(owner, params, 4)
    seq_len, batch = check.sequence(owner, x, input_size, dtype)
    check.state(owner, "h0", h0, batch, hidden, dtype)
    check.state(owner, "c0", c0, batch, hidden, dtype)

    H = hidden
    w_hh, b_hh = p["weight_hh"], p["bias_hh"]
    gi = x @ p["weight_ih"].T + p["bias_ih"]  # (T, N, 4H): the input's share, all steps at once
    hs = np.empty((seq_len + 1, batch, H), dtype=dtype)  # (T + 1, N, H)
    cs = np.empty((seq_len + 1, batch, H), dtype=dtype)  # (T + 1, N, H)
    gates = np.empty((seq_len, batch, 4 * H), dtype=dtype)  # (T, N, 4H)
    hs[0], cs[0] = h0, c0
    for t in range(seq_len):
        a = gi[t] + hs[t] @ w_hh.T + b_hh  # (N, 4H), blocks i, f, g, o
        act = gates[t]  # (N, 4H) a view: filled in place
        act[:, : 2 * H] = sigmoid(a[:, : 2 * H])  # i, f
        act[:, 2 * H : 3 * H] = np.tanh(a[:, 2 * H : 3 * H])  # g
        act[:, 3 * H :] = sigmoid(a[:, 3 * H :])  # o
        i, f, g, o = act[:, :H], act[:, H : 2 * H], act[:, 2 * H : 3 * H], act[:, 3 * H :]
        cs[t + 1] = f * cs[t] + i * g
        hs[t + 1] = o * np.tanh(cs[t + 1])
    cache = LSTMCache(x=x, hs=hs, cs=cs, gates=gates, params=p)
    return hs[1:].copy(), cs[1:].copy(), cache


def lstm_backward(
    dys: np.ndarray, cache: LSTMCache, *, dcs: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Backpropagation through time for ``lstm_forward``.

    Args:
        dys: (T, N, H) ∂L/∂ys for every hidden state returned (the last being h_n).
        cache: what ``lstm_forward`` returned with ``ys``.
        dcs: (T, N, H) ∂L/∂cs for every cell state returned, or None when the loss
            reads no cell state (keyword-only; usually only dcs[-1], for c_n, is nonzero).

    Returns:
        grads: "weight_ih" (4H, I), "weight_hh" (4H, H), "bias_ih" (4H,), "bias_hh" (4H,),
        "x" (T, N, I), "h0" (N, H) and "c0" (N, H): ∂L/∂ of each, in the forward's dtype.
    """
    owner = "lstm_backward"
    if not isinstance(cache, LSTMCache):
        raise TypeError(f"{owner}: expected cache to be an LSTMCache, got {type(cache).__name__}")
    x, hs, cs, p = cache.x, cache.hs, cache.cs, cache.params
    seq_len, batch, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    check.upstream(owner, "dys", dys, (seq_len, batch, H), hs.dtype)
    if dcs is not None:
        check.upstream(owner, "dcs", dcs, (seq_len, batch, H), hs.dtype)

    w_hh = p["weight_hh"]
    das = np.empty_like(cache.gates)  # (T, N, 4H): ∂L/∂ of the gates' pre-activations
    dh = np.zeros_like(hs[0])  # (N, H): ∂L/∂h_t arriving from step t + 1
    dc = np.zeros_like(cs[0])  # (N, H): ∂L/∂c_t arriving from step t + 1
    for t in reversed(range(seq_len)):
        dh = dh + dys[t]
        if dcs is not None:
            dc = dc + dcs[t]
        act = cache.gates[t]  # (N, 4H)
        i, f, g, o = act[:, :H], act[:, H : 2 * H], act[:, 2 * H : 3 * H], act[:, 3 * H :]
        tanh_c = np.tanh(cs[t + 1])
        dc = dc + dh * o * (1 - tanh_c * tanh_c)  # through h_t = o ⊙ tanh(c_t)
        da = das[t]  # (N, 4H) a view: filled in place
        da[:, :H] = dc * g * i * (1 - i)  # ā_i
        da[:, H : 2 * H] = dc * cs[t] * f * (1 - f)  # ā_f
        da[:, 2 * H : 3 * H] = dc * i * (1 - g * g)  # ā_g
        da[:, 3 * H :] = dh * tanh_c * o * (1 - o)  # ā_o
        dc = dc * f  # ∂L/∂c_{t-1}
        dh = da @ w_hh  # (N, 4H) @ (4H, H): ∂L/∂h_{t-1}

    # Weight gradients: one GEMM over all T·N rows instead of T small ones.
    rows = seq_len * batch
    da_rows = das.reshape(rows, 4 * H)  # (T·N, 4H)
    return {
        "weight_ih": da_rows.T @ x.reshape(rows, -1),  # (4H, T·N) @ (T·N, I)
        "weight_hh": da_rows.T @ hs[:-1].reshape(rows, H),  # (4H, H)
        "bias_ih": da_rows.sum(axis=0),
        "bias_hh": da_rows.sum(axis=0),
        "x": das @ p["weight_ih"],  # (T, N, I)
        "h0": dh,
        "c0": dc,
    }
