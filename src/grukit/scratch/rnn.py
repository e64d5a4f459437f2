r"""Elman RNN in NumPy: forward over time and backpropagation through time by hand.

Shapes (used in every docstring of this module):
    T  time steps      N  batch size      I  input size      H  hidden size

One layer, torch.nn.RNN's parameters with the "_l0" suffix dropped:
"weight_ih" (H, I), "weight_hh" (H, H), "bias_ih" (H,), "bias_hh" (H,).

Forward, for t = 1 … T (the equations of ``docs/bptt.md``, same symbols):

.. math::
    a_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}, \qquad h_t = \phi(a_t),
    \qquad \phi = \tanh \text{ or relu}

Backward, with :math:`\bar h_t = \partial L / \partial h_t` gathered from the output at
step t and from step t + 1:

.. math::
    \bar a_t = \bar h_t \odot \phi'(a_t), \qquad
    \bar h_{t-1} \mathrel{+}= \bar a_t W_{hh}, \qquad
    \bar x_t = \bar a_t W_{ih}, \\
    \bar W_{ih} = \sum_t \bar a_t^\top x_t, \quad
    \bar W_{hh} = \sum_t \bar a_t^\top h_{t-1}, \quad
    \bar b_{ih} = \bar b_{hh} = \sum_t \textstyle\sum_n \bar a_t

with :math:`\tanh'(a) = 1 - h^2` and :math:`\mathrm{relu}'(a) = [h > 0]`, both read off
the output :math:`h = \phi(a)` so the cache need not keep :math:`a`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks as check

__all__ = ["RNNCache", "rnn_forward", "rnn_backward"]


@dataclass(frozen=True)
class RNNCache:
    """What ``rnn_backward`` needs from the forward pass.

    Attributes:
        x: (T, N, I) the input.
        hs: (T + 1, N, H) h_0 followed by every hidden state h_1 … h_T.
        params: the layer's parameters (the same arrays, not copies).
        nonlinearity: "tanh" or "relu".
    """

    x: np.ndarray
    hs: np.ndarray
    params: dict[str, np.ndarray]
    nonlinearity: str


def rnn_forward(
    x: np.ndarray,
    h0: np.ndarray,
    params: dict[str, np.ndarray],
    *,
    nonlinearity: str = "tanh",
) -> tuple[np.ndarray, RNNCache]:
    r"""Run one RNN layer over a sequence.

    :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})` for t = 1 … T.

    Args:
        x: (T, N, I) float32 or float64 input.
        h0: (N, H) initial hidden state, the weights' dtype.
        params: "weight_ih" (H, I), "weight_hh" (H, H), "bias_ih" (H,), "bias_hh" (H,).
        nonlinearity: "tanh" or "relu" (keyword-only, as torch.nn.RNN).

    Returns:
        ys: (T, N, H) every hidden state h_1 … h_T; ys[-1] is h_n.
        cache: the ``RNNCache`` to hand to ``rnn_backward``.
    """
    owner = "rnn_forward"
    p, input_size, hidden, dtype = check.layer_params(owner, params, 1)
    seq_len, batch = check.sequence(owner, x, input_size, dtype)
    check.state(owner, "h0", h0, batch, hidden, dtype)
    phi = check.nonlinearity(owner, nonlinearity)

    w_hh, b_hh = p["weight_hh"], p["bias_hh"]
    gi = x @ p["weight_ih"].T + p["bias_ih"]  # (T, N, H): the input's share, all steps at once
    hs = np.empty((seq_len + 1, batch, hidden), dtype=dtype)  # (T + 1, N, H)
    hs[0] = h0
    for t in range(seq_len):
        a = gi[t] + hs[t] @ w_hh.T + b_hh  # (N, H)
        hs[t + 1] = np.tanh(a) if phi == "tanh" else np.maximum(a, 0)
    return hs[1:].copy(), RNNCache(x=x, hs=hs, params=p, nonlinearity=phi)


def rnn_backward(dys: np.ndarray, cache: RNNCache) -> dict[str, np.ndarray]:
    r"""Backpropagation through time for ``rnn_forward``.

    Args:
        dys: (T, N, H) ∂L/∂ys, the gradient of the loss with respect to every hidden
            state the forward returned (the last one being h_n); zeros where the loss
            does not read a step.
        cache: what ``rnn_forward`` returned with ``ys``.

    Returns:
        grads: "weight_ih" (H, I), "weight_hh" (H, H), "bias_ih" (H,), "bias_hh" (H,),
        "x" (T, N, I) and "h0" (N, H): ∂L/∂ of each, in the forward's dtype.
    """
    owner = "rnn_backward"
    if not isinstance(cache, RNNCache):
        raise TypeError(f"{owner}: expected cache to be an RNNCache, got {type(cache).__name__}")
    x, hs, p = cache.x, cache.hs, cache.params
    seq_len, batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    check.upstream(owner, "dys", dys, (seq_len, batch, hidden), hs.dtype)

    w_hh = p["weight_hh"]
    das = np.empty_like(hs[1:])  # (T, N, H): ∂L/∂a_t for every step
    dh = np.zeros_like(hs[0])  # (N, H): ∂L/∂h_t arriving from step t + 1
    for t in reversed(range(seq_len)):
        dh = dh + dys[t]  # the output's share joins the recurrent share
        h = hs[t + 1]
        da = dh * (1 - h * h) if cache.nonlinearity == "tanh" else dh * (h > 0)  # (N, H)
        das[t] = da
        dh = da @ w_hh  # (N, H): ∂L/∂h_{t-1}

    # Weight gradients: one GEMM over all T·N rows instead of T small ones.
    da_rows = das.reshape(seq_len * batch, hidden)  # (T·N, H)
    return {
        "weight_ih": da_rows.T @ x.reshape(seq_len * batch, -1),  # (H, T·N) @ (T·N, I)
        "weight_hh": da_rows.T @ hs[:-1].reshape(seq_len * batch, hidden),  # (H, H)
        "bias_ih": da_rows.sum(axis=0),
        "bias_hh": da_rows.sum(axis=0),
        "x": das @ p["weight_ih"],  # (T, N, I)
        "h0": dh,
    }
