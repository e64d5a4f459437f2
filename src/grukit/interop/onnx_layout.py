"""ONNX weight layouts <-> grukit / torch state_dicts: the W, R, B inputs of ONNX's
``GRU``, ``LSTM`` and ``RNN`` operators (opset 7 and later; one operator is one layer).

Shapes: I input size, H hidden size, D directions (1, or 2 for ``direction="bidirectional"``:
index 0 forward, 1 reverse, which are torch's ``_l{k}`` and ``_l{k}_reverse`` names).
    GRU   W [D, 3H, I], R [D, 3H, H], B [D, 6H] = [Wb_z, Wb_r, Wb_h, Rb_z, Rb_r, Rb_h];
          gate order z, r, h (torch: r, z, n). ``linear_before_reset=1`` is grukit's
          reset_after=True (torch.nn.GRU), 0 (ONNX's default) is reset_after=False; both
          keep two biases, so both convert exactly.
    LSTM  W [D, 4H, I], R [D, 4H, H], B [D, 8H]; gate order i, o, f, c (torch: i, f, g, o).
          No peepholes (input P absent); no projection (ValueError for proj_size > 0).
    RNN   W [D, H, I], R [D, H, H], B [D, 2H]; ``activations`` ["Tanh"] or ["Relu"]
          (per direction) as the module's nonlinearity.
B is optional in ONNX (zeros when absent): a state_dict without biases gives B = None,
and B = None gives a state_dict without biases (``bias=False``).
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
    "from_onnx_gru",
    "to_onnx_gru",
    "from_onnx_lstm",
    "to_onnx_lstm",
    "from_onnx_rnn",
    "to_onnx_rnn",
]

OnnxWeights = tuple[np.ndarray, np.ndarray, np.ndarray | None]

# ONNX gate block j is torch's block ORDER[j] (GRU: _common.GRU_ZRH, z r h).
_LSTM_ORDER = (0, 3, 1, 2)  # ONNX i, o, f, c = torch i (0), o (3), f (1), g (2)


def _from_onnx(
    fn: str, W: Array, R: Array, B: Array | None, order: Sequence[int], layer: int
) -> dict[str, Tensor]:
    check_layer(fn, layer, False)
    g = len(order)
    w = as_tensor(fn, "W", W)
    r = as_tensor(fn, "R", R)
    b = None if B is None else as_tensor(fn, "B", B)
    same_dtype(fn, {"W": w, "R": r, "B": b})
    dims(fn, "R", r, 3, f"[D, {g}H, H]")
    directions, hidden = r.shape[0], r.shape[2]
    if directions not in (1, 2):
        raise ValueError(f"{fn}: expected D = 1 or 2 directions (R's first axis), got {directions}")
    check_shape(fn, "R", r, (directions, g * hidden, hidden), f"[D, {g}H, H]")
    dims(fn, "W", w, 3, f"[D, {g}H, I]")
    check_shape(fn, "W", w, (directions, g * hidden, w.shape[2]), f"[D, {g}H, I]")
    if b is not None:
        check_shape(fn, "B", b, (directions, 2 * g * hidden), f"[D, {2 * g}H]")
    back = inverse(order)
    out: dict[str, Tensor] = {}
    for d in range(directions):
        b_ih = b_hh = None
        if b is not None:
            wb, rb = b[d].chunk(2)  # 2 × (G·H,): the input biases, then the recurrent ones
            b_ih, b_hh = reorder(wb, back), reorder(rb, back)
        weights = LayerWeights(reorder(w[d], back), reorder(r[d], back), b_ih, b_hh)
        out.update(to_state_dict(suffix(layer, d == 1), weights))
    return out


def _to_onnx(
    fn: str, state_dict: Mapping[str, Any], order: Sequence[int], layer: int
) -> OnnxWeights:
    check_layer(fn, layer, False)
    directions = (
        2
        if isinstance(state_dict, Mapping) and (f"weight_ih{suffix(layer, True)}" in state_dict)
        else 1
    )
    per = [state_dict_entry(fn, state_dict, len(order), layer, d == 1) for d in range(directions)]
    if directions == 2:
        fwd, rev = per
        if fwd.w_ih.shape != rev.w_ih.shape or (fwd.b_ih is None) != (rev.b_ih is None):
            raise ValueError(
                f"{fn}: expected both directions of layer {layer} alike, got weight_ih "
                f"{tuple(fwd.w_ih.shape)} and {tuple(rev.w_ih.shape)}, "
                f"bias {fwd.b_ih is not None} and {rev.b_ih is not None}"
            )
        same_dtype(fn, {"forward": fwd.w_ih, "reverse": rev.w_ih})
    W = torch.stack([reorder(p.w_ih, order) for p in per])  # (D, G·H, I)
    R = torch.stack([reorder(p.w_hh, order) for p in per])  # (D, G·H, H)
    # b_ih and b_hh are both set or both None (LayerWeights), alike in every direction.
    biases = [(p.b_ih, p.b_hh) for p in per if p.b_ih is not None and p.b_hh is not None]
    B = None
    if biases:
        B = torch.stack(
            [torch.cat([reorder(b_ih, order), reorder(b_hh, order)]) for b_ih, b_hh in biases]
        )  # (D, 2·G·H)
    return to_numpy(fn, W), to_numpy(fn, R), None if B is None else to_numpy(fn, B)


def from_onnx_gru(
    W: Array, R: Array, B: Array | None, *, linear_before_reset: int, layer: int = 0
) -> dict[str, Tensor]:
    """ONNX ``GRU`` inputs W [D, 3H, I], R [D, 3H, H], B [D, 6H] (gates z, r, h) as a
    grukit/torch GRU state_dict: ``weight_ih_l{layer}`` (3H, I), ``weight_hh_l{layer}``
    (3H, H), ``bias_ih/bias_hh_l{layer}`` (3H,), plus ``..._reverse`` when D = 2.

    ``linear_before_reset`` (the node's attribute, 0 or 1) does not change the layout; it
    says which module computes the same function: ``grukit.GRU(reset_after=bool(lbr))``
    (1 is also ``torch.nn.GRU``). New tensors of the arrays' dtype.
    """
    fn = "from_onnx_gru"
    if linear_before_reset not in (0, 1) or isinstance(linear_before_reset, float):
        raise ValueError(f"{fn}: expected linear_before_reset 0 or 1, got {linear_before_reset!r}")
    return _from_onnx(fn, W, R, B, GRU_ZRH, layer)


def to_onnx_gru(state_dict: Mapping[str, Any], *, layer: int = 0) -> OnnxWeights:
    """``(W [D, 3H, I], R [D, 3H, H], B [D, 6H] or None)`` for ONNX's ``GRU``, as NumPy
    arrays of the weights' dtype, from a grukit/torch GRU (or GRUCell) state_dict; D = 2
    when layer ``layer`` has ``_reverse`` weights. Set the node's ``linear_before_reset``
    to 1 for reset_after=True (torch.nn.GRU), 0 for reset_after=False."""
    return _to_onnx("to_onnx_gru", state_dict, GRU_ZRH, layer)


def from_onnx_lstm(W: Array, R: Array, B: Array | None, *, layer: int = 0) -> dict[str, Tensor]:
    """ONNX ``LSTM`` inputs W [D, 4H, I], R [D, 4H, H], B [D, 8H] (gates i, o, f, c; no
    peepholes) as a grukit/torch LSTM state_dict (gates i, f, g, o)."""
    return _from_onnx("from_onnx_lstm", W, R, B, _LSTM_ORDER, layer)


def to_onnx_lstm(state_dict: Mapping[str, Any], *, layer: int = 0) -> OnnxWeights:
    """``(W [D, 4H, I], R [D, 4H, H], B [D, 8H] or None)``, gates i, o, f, c, for ONNX's
    ``LSTM`` from a grukit/torch LSTM (or LSTMCell) state_dict. ValueError for
    proj_size > 0 (ONNX's LSTM has no projection)."""
    return _to_onnx("to_onnx_lstm", state_dict, _LSTM_ORDER, layer)


def from_onnx_rnn(W: Array, R: Array, B: Array | None, *, layer: int = 0) -> dict[str, Tensor]:
    """ONNX ``RNN`` inputs W [D, H, I], R [D, H, H], B [D, 2H] as a grukit/torch RNN
    state_dict. The node's ``activations`` ("Tanh" / "Relu") is the RNN's nonlinearity."""
    return _from_onnx("from_onnx_rnn", W, R, B, ONE_GATE, layer)


def to_onnx_rnn(state_dict: Mapping[str, Any], *, layer: int = 0) -> OnnxWeights:
    """``(W [D, H, I], R [D, H, H], B [D, 2H] or None)`` for ONNX's ``RNN`` from a
    grukit/torch RNN (or RNNCell) state_dict."""
    return _to_onnx("to_onnx_rnn", state_dict, ONE_GATE, layer)
