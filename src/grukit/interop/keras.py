"""Keras 3 weight layouts <-> grukit / torch state_dicts (``keras.layers.GRU``, ``LSTM``,
``SimpleRNN``; ``layer.get_weights()`` / ``layer.set_weights([...])``).

Shapes: I input size, H hidden size.
    GRU        kernel (I, 3H), recurrent_kernel (H, 3H), gate columns z, r, h;
               bias (2, 3H) with reset_after=True (row 0 input, row 1 recurrent),
               (3H,) with reset_after=False (one bias, added on the input side)
    LSTM       kernel (I, 4H), recurrent_kernel (H, 4H), gate columns i, f, c, o
               (torch's i, f, g, o); bias (4H,) = b_ih + b_hh
    SimpleRNN  kernel (I, H), recurrent_kernel (H, H), bias (H,) = b_ih + b_hh
torch keeps gates on the rows of (G·H, I) / (G·H, H) in the order r, z, n (GRU) and
i, f, g, o (LSTM), with two biases. A Keras layer made with ``use_bias=False`` has no bias
(pass ``bias=None``; a state_dict without biases gives ``bias=None``).

Where Keras has one bias, converting to Keras adds b_ih + b_hh (exact in real arithmetic,
one float rounding), and converting from Keras puts it in b_ih with b_hh = 0. For the
reset_after=False GRU this is exact too: its candidate is
n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), where b_hn is not scaled by r (Keras:
``tanh(x @ W_h + b_h + (r * h) @ U_h)``). The reset_after=True GRU keeps b_hn inside
r ⊙ (W_hn h + b_hn), so Keras stores two bias rows for it.

Bidirectional layers: ``keras.layers.Bidirectional`` holds a forward and a backward
layer; convert each with ``reverse=False`` / ``reverse=True``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._common import (
    GRU_ZRH,
    ONE_GATE,
    Array,
    LayerWeights,
    as_tensor,
    check_layer,
    check_shape,
    dims,
    inverse,
    reorder,
    same_dtype,
    state_dict_entry,
    suffix,
    to_numpy,
    to_state_dict,
)

__all__ = [
    "from_keras_gru",
    "to_keras_gru",
    "from_keras_lstm",
    "to_keras_lstm",
    "from_keras_rnn",
    "to_keras_rnn",
]

KerasWeights = tuple[np.ndarray, np.ndarray, np.ndarray | None]

# Keras gate block j is torch's block ORDER[j] (GRU: _common.GRU_ZRH, z r h).
_LSTM_ORDER = (0, 1, 2, 3)  # Keras i, f, c, o = torch i, f, g, o


def _from_keras(
    fn: str,
    kernel: Array,
    recurrent_kernel: Array,
    bias: Array | None,
    order: Sequence[int],
    two_biases: bool,
    layer: int,
    reverse: bool,
) -> dict[str, Tensor]:
    check_layer(fn, layer, reverse)
    g = len(order)
    k = as_tensor(fn, "kernel", kernel)
    rk = as_tensor(fn, "recurrent_kernel", recurrent_kernel)
    b = None if bias is None else as_tensor(fn, "bias", bias)
    same_dtype(fn, {"kernel": k, "recurrent_kernel": rk, "bias": b})
    dims(fn, "recurrent_kernel", rk, 2, f"(H, {g}H)")
    hidden = rk.shape[0]
    check_shape(fn, "recurrent_kernel", rk, (hidden, g * hidden), f"(H, {g}H)")
    dims(fn, "kernel", k, 2, f"(I, {g}H)")
    check_shape(fn, "kernel", k, (k.shape[0], g * hidden), f"(I, {g}H)")
    back = inverse(order)
    w_ih = reorder(k.T, back)  # (G·H, I), torch's gate order
    w_hh = reorder(rk.T, back)  # (G·H, H)
    b_ih = b_hh = None
    if b is not None:
        if two_biases:
            check_shape(fn, "bias", b, (2, g * hidden), f"(2, {g}H)")
            b_ih, b_hh = reorder(b[0], back), reorder(b[1], back)  # 2 × (G·H,)
        else:
            check_shape(fn, "bias", b, (g * hidden,), f"({g}H,)")
            b_ih, b_hh = reorder(b, back), torch.zeros_like(b)  # Keras' one bias: input side
    return to_state_dict(suffix(layer, reverse), LayerWeights(w_ih, w_hh, b_ih, b_hh))


def _to_keras(
    fn: str,
    state_dict: Mapping[str, Any],
    order: Sequence[int],
    two_biases: bool,
    layer: int,
    reverse: bool,
) -> KerasWeights:
    w = state_dict_entry(fn, state_dict, len(order), layer, reverse)
    kernel = reorder(w.w_ih, order).T  # (I, G·H), Keras' gate order
    recurrent_kernel = reorder(w.w_hh, order).T  # (H, G·H)
    bias = None
    if w.b_ih is not None and w.b_hh is not None:
        if two_biases:
            bias = torch.stack([reorder(w.b_ih, order), reorder(w.b_hh, order)])  # (2, G·H)
        else:
            bias = reorder(w.b_ih + w.b_hh, order)  # (G·H,)
    return (
        to_numpy(fn, kernel),
        to_numpy(fn, recurrent_kernel),
        None if bias is None else to_numpy(fn, bias),
    )


def _reset_after(fn: str, reset_after: object) -> bool:
    if not isinstance(reset_after, bool):
        raise TypeError(
            f"{fn}: expected reset_after to be a bool, got {type(reset_after).__name__}"
        )
    return reset_after


def from_keras_gru(
    kernel: Array,
    recurrent_kernel: Array,
    bias: Array | None,
    *,
    reset_after: bool,
    layer: int = 0,
    reverse: bool = False,
) -> dict[str, Tensor]:
    """A ``keras.layers.GRU``'s weights as a grukit/torch GRU state_dict.

    Args:
        kernel: (I, 3H), columns z, r, h.  recurrent_kernel: (H, 3H).
        bias: (2, 3H) with reset_after=True (input row, recurrent row), (3H,) with
            reset_after=False (then bias_hh is zeros), or None (``use_bias=False``).
        reset_after: the Keras layer's ``reset_after``; load the result into
            ``grukit.GRU(..., reset_after=reset_after)`` (torch.nn.GRU is reset_after=True).
        layer, reverse: which names to produce (``weight_ih_l{layer}{_reverse}``...).

    Returns ``weight_ih_l0`` (3H, I), ``weight_hh_l0`` (3H, H), ``bias_ih_l0``,
    ``bias_hh_l0`` (3H,): new tensors of the arrays' dtype (and device, for tensors).
    """
    fn = "from_keras_gru"
    two = _reset_after(fn, reset_after)
    return _from_keras(fn, kernel, recurrent_kernel, bias, GRU_ZRH, two, layer, reverse)


def to_keras_gru(
    state_dict: Mapping[str, Any], *, reset_after: bool, layer: int = 0, reverse: bool = False
) -> KerasWeights:
    """``(kernel, recurrent_kernel, bias)`` for ``keras.layers.GRU(reset_after=...)``'s
    ``set_weights``, from a grukit/torch GRU (or GRUCell) state_dict.

    Returns NumPy arrays of the weights' dtype: kernel (I, 3H), recurrent_kernel (H, 3H),
    columns z, r, h; bias (2, 3H) with reset_after=True, (3H,) = b_ih + b_hh with
    reset_after=False, None without biases. ``reset_after`` must be the variant the state
    dict was trained with (the layout does not record it).
    """
    fn = "to_keras_gru"
    return _to_keras(fn, state_dict, GRU_ZRH, _reset_after(fn, reset_after), layer, reverse)


def from_keras_lstm(
    kernel: Array,
    recurrent_kernel: Array,
    bias: Array | None,
    *,
    layer: int = 0,
    reverse: bool = False,
) -> dict[str, Tensor]:
    """A ``keras.layers.LSTM``'s weights as a grukit/torch LSTM state_dict.

    kernel (I, 4H) and recurrent_kernel (H, 4H), columns i, f, c, o; bias (4H,) or None.
    Returns weight_ih (4H, I), weight_hh (4H, H), bias_ih = bias, bias_hh = zeros (4H,).
    """
    fn = "from_keras_lstm"
    return _from_keras(fn, kernel, recurrent_kernel, bias, _LSTM_ORDER, False, layer, reverse)


def to_keras_lstm(
    state_dict: Mapping[str, Any], *, layer: int = 0, reverse: bool = False
) -> KerasWeights:
    """``(kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,) = b_ih + b_hh or None)`` for
    ``keras.layers.LSTM``, from a grukit/torch LSTM (or LSTMCell) state_dict. ValueError
    for proj_size > 0 (Keras' LSTM has no projection)."""
    return _to_keras("to_keras_lstm", state_dict, _LSTM_ORDER, False, layer, reverse)


def from_keras_rnn(
    kernel: Array,
    recurrent_kernel: Array,
    bias: Array | None,
    *,
    layer: int = 0,
    reverse: bool = False,
) -> dict[str, Tensor]:
    """A ``keras.layers.SimpleRNN``'s weights (kernel (I, H), recurrent_kernel (H, H),
    bias (H,) or None) as a grukit/torch RNN state_dict (bias_hh = zeros). Match the
    nonlinearity yourself: Keras ``activation="tanh"``/``"relu"``."""
    return _from_keras(
        "from_keras_rnn", kernel, recurrent_kernel, bias, ONE_GATE, False, layer, reverse
    )


def to_keras_rnn(
    state_dict: Mapping[str, Any], *, layer: int = 0, reverse: bool = False
) -> KerasWeights:
    """``(kernel (I, H), recurrent_kernel (H, H), bias (H,) = b_ih + b_hh or None)`` for
    ``keras.layers.SimpleRNN``, from a grukit/torch RNN (or RNNCell) state_dict."""
    return _to_keras("to_keras_rnn", state_dict, ONE_GATE, False, layer, reverse)
