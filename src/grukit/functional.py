"""The math, once: one-step cell functions of plain tensors.

Every backend computes exactly these functions; the reference backend *is*
these functions in a loop, and is the oracle the others are tested against.

Shapes (used in every docstring of this module):
    N  batch size (a cell may also be called unbatched, without the N axis)
    I  input size
    H  hidden size
    P  projected hidden size of an LSTM (P = H when there is no projection)

Weights follow ``torch.nn`` exactly: gates are stacked along the rows of
``w_ih`` (G·H, I) and ``w_hh`` (G·H, H) in torch's order — GRU: r, z, n;
LSTM: i, f, g, o; RNN: a single block — and biases are (G·H,) or ``None``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gru_cell", "rnn_cell", "lstm_cell", "GATES"]

#: Gate blocks per cell kind (rows of w_ih / w_hh are GATES[kind] * H).
GATES = {"gru": 3, "rnn_tanh": 1, "rnn_relu": 1, "lstm": 4}


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """x @ wᵀ + b. x (…, K), w (M, K), b (M,) or None → (…, M)."""
    return torch.nn.functional.linear(x, w, b)


def gru_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    *,
    reset_after: bool = True,
) -> Tensor:
    r"""One GRU step (Cho et al. 2014, arXiv:1406.1078).

    .. math::
        r  &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \\
        z  &= \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n  &= \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))
              \quad \text{reset\_after=True (torch, cuDNN, Keras default)} \\
        n  &= \tanh(W_{in} x + b_{in} + W_{hn} (r \odot h) + b_{hn})
              \quad \text{reset\_after=False (Cho et al., d2l, ONNX default)} \\
        h' &= (1 - z) \odot n + z \odot h

    Args:
        x: (N, I) or (I,) input at this step.
        h: (N, H) or (H,) previous hidden state.
        w_ih: (3H, I) rows r, z, n.   w_hh: (3H, H) rows r, z, n.
        b_ih, b_hh: (3H,) or None.
        reset_after: where the reset gate applies (see above).

    Returns:
        h': (N, H) or (H,), the next hidden state.
    """
    gi = _linear(x, w_ih, b_ih)  # (N, 3H)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)  # 3 × (N, H)
    if reset_after:
        gh = _linear(h, w_hh, b_hh)  # (N, 3H)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)  # 3 × (N, H)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
    else:
        w_hr, w_hz, w_hn = w_hh.chunk(3, dim=0)  # 3 × (H, H)
        b_hr, b_hz, b_hn = (None, None, None) if b_hh is None else b_hh.chunk(3)  # 3 × (H,)
        r = torch.sigmoid(i_r + _linear(h, w_hr, b_hr))
        z = torch.sigmoid(i_z + _linear(h, w_hz, b_hz))
        n = torch.tanh(i_n + _linear(r * h, w_hn, b_hn))
    return (1 - z) * n + z * h


def rnn_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    *,
    nonlinearity: str = "tanh",
) -> Tensor:
    r"""One Elman RNN step: :math:`h' = \phi(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})`,
    :math:`\phi` = tanh or relu.

    Args:
        x: (N, I) or (I,).  h: (N, H) or (H,).
        w_ih: (H, I).  w_hh: (H, H).  b_ih, b_hh: (H,) or None.
        nonlinearity: "tanh" or "relu".

    Returns:
        h': (N, H) or (H,).
    """
    pre = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)  # (N, H)
    if nonlinearity == "tanh":
        return torch.tanh(pre)
    if nonlinearity == "relu":
        return torch.relu(pre)
    raise ValueError(f"rnn_cell: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")


def lstm_cell(
    x: Tensor,
    state: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""One LSTM step (Hochreiter & Schmidhuber 1997; projection: Sak et al. 2014).

    .. math::
        i &= \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi}) \\
        f &= \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf}) \\
        g &= \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg}) \\
        o &= \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho}) \\
        c' &= f \odot c + i \odot g \\
        h' &= o \odot \tanh(c')
              \quad (\text{then } h' \leftarrow W_{hr} h' \text{ with a projection})

    Args:
        x: (N, I) or (I,).
        state: (h, c) with h (N, P) or (P,) and c (N, H) or (H,).
        w_ih: (4H, I) rows i, f, g, o.  w_hh: (4H, P).  b_ih, b_hh: (4H,) or None.
        w_hr: (P, H) projection, or None (then P = H).

    Returns:
        (h', c'): (N, P) and (N, H), or unbatched (P,) and (H,).
    """
    h, c = state
    gates = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)  # (N, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)  # 4 × (N, H)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_next = torch.sigmoid(o) * torch.tanh(c_next)  # (N, H)
    if w_hr is not None:
        h_next = _linear(h_next, w_hr, None)  # (N, P)
    return h_next, c_next
