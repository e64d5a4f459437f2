"""ONNX export: ``grukit::gru`` as ONNX's own ``GRU`` operator, and ``export_onnx``.

During ONNX export every GRU layer direction (and a traced ``GRUCell`` step, T = 1) is one
call of the operator ``grukit::gru`` (``grukit.backends.ops``); RNN and LSTM layers call
torch's own kernels, which torch's exporters already write as ONNX ``RNN`` / ``LSTM``.
This module translates ``grukit::gru`` for both of torch's exporters:

- TorchScript (``torch.onnx.export(..., dynamo=False)``): a symbolic registered with
  ``torch.onnx.register_custom_op_symbolic`` when this module is imported.
- dynamo (``torch.onnx.export(..., dynamo=True)``): an onnxscript function, passed as
  ``custom_translation_table=translation_table()`` (torch's public way; it has no global
  registry for custom operators). ``export_onnx`` passes it.

One call ``grukit::gru(x, h0, w_ih, w_hh, b_ih?, b_hh?, None, reverse, reset_after, …)``
(T time, N batch, I input, H hidden) becomes::

    x (T, N, I)  ──[Gather(eye(I), x) if x is int64 indices (T, N)]──┐
    W = [W_iz; W_ir; W_in] (1, 3H, I)   R = [W_hz; W_hr; W_hn] (1, 3H, H)
    B = [b_iz, b_ir, b_in, b_hz, b_hr, b_hn] (1, 6H)   initial_h = h0 (1, N, H)
    Y (T, 1, N, H), Y_h (1, N, H) = GRU(x, W, R, B, , initial_h,
        hidden_size=H, linear_before_reset=reset_after, direction="forward" | "reverse")
    out = Y squeezed (T, N, H),  h_n = Y_h squeezed (N, H)

ONNX's ``linear_before_reset=0`` is exactly ``reset_after=False`` (n = tanh(W_in x + b_in +
W_hn (r ⊙ h) + b_hn)), so both variants export. The op's internal outputs (gates, hn) become
empty constants. Packed input (``batch_sizes``) raises: export padded batches.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["OPSET", "export_onnx", "reorder_gates", "translation_table"]

#: Default opset: the dynamo exporter's own (its GRU translation uses opset 18 operators);
#: the TorchScript exporter supports 14-20 for ``grukit::gru``.
OPSET = 18
_MIN_OPSET = 14  # Squeeze/Unsqueeze with axes as inputs (13) and GRU-14


def reorder_gates(w: Tensor) -> Tensor:
    """torch gate order [r, z, n] along dim 0 → ONNX's [z, r, h]: (3H, …) → (3H, …)."""
    r, z, n = w.chunk(3, 0)  # each (H, …)
    return torch.cat((z, r, n))


# --- TorchScript exporter ---------------------------------------------------------------


#: TorchScript scalar type names of the weights' dtypes.
_SCALAR_TYPES = {
    "Float": torch.float32,
    "Double": torch.float64,
    "Half": torch.float16,
    "BFloat16": torch.bfloat16,
}


def _ts_reorder(g: Any, w: Any, H: int) -> Any:
    """[r, z, n] rows of a graph value (3H, …) → [z, r, n] (3H, …)."""
    from torch.onnx import symbolic_helper as sh

    r, z, n = (sh._slice_helper(g, w, axes=[0], starts=[k * H], ends=[(k + 1) * H]) for k in range(3))
    return g.op("Concat", z, r, n, axis_i=0)


def _gru_symbolic(
    g: Any,
    x: Any,
    h0: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any,
    b_hh: Any,
    batch_sizes: Any,
    reverse: Any,
    reset_after: Any,
    save: Any,
    loops: Any,
) -> tuple[Any, Any, Any, Any]:
    """TorchScript symbolic of ``grukit::gru``: one ONNX GRU node (module docstring)."""
    from torch.onnx import symbolic_helper as sh

    if not sh._is_none(batch_sizes):
        raise ValueError(
            "grukit ONNX export: packed input (PackedSequence) cannot be exported; "
            "export a padded batch (T, N, I) instead"
        )
    rev = bool(sh._parse_arg(reverse, "b"))
    after = bool(sh._parse_arg(reset_after, "b"))
    sizes = sh._get_tensor_sizes(w_hh)
    in_sizes = sh._get_tensor_sizes(w_ih)
    if sizes is None or in_sizes is None or None in (*sizes, *in_sizes):
        raise ValueError("grukit ONNX export: expected GRU weights of static shape, got unknown")
    H, I = sizes[1], in_sizes[1]
    dtype = _SCALAR_TYPES.get(w_ih.type().scalarType(), torch.float32)
    if x.type().scalarType() in ("Long", "Int"):
        eye = g.op("Constant", value_t=torch.eye(I, dtype=dtype))  # (I, I) one-hot rows
        x = g.op("Gather", eye, x, axis_i=0)  # (T, N) indices → (T, N, I)
    W = sh._unsqueeze_helper(g, _ts_reorder(g, w_ih, H), [0])  # (1, 3H, I)
    R = sh._unsqueeze_helper(g, _ts_reorder(g, w_hh, H), [0])  # (1, 3H, H)
    if sh._is_none(b_ih) != sh._is_none(b_hh):
        raise ValueError("grukit ONNX export: expected both GRU biases or neither, got one")
    if sh._is_none(b_ih):
        B = _unused(g)
    else:
        cat = g.op("Concat", _ts_reorder(g, b_ih, H), _ts_reorder(g, b_hh, H), axis_i=0)
        B = sh._unsqueeze_helper(g, cat, [0])  # (1, 6H)
    init_h = sh._unsqueeze_helper(g, h0, [0])  # (1, N, H)
    y, y_h = g.op(
        "GRU",
        x,
        W,
        R,
        B,
        _unused(g),
        init_h,
        hidden_size_i=H,
        linear_before_reset_i=int(after),
        direction_s="reverse" if rev else "forward",
        outputs=2,
    )
    out = sh._squeeze_helper(g, y, [1])  # (T, 1, N, H) → (T, N, H)
    h_n = sh._squeeze_helper(g, y_h, [0])  # (1, N, H) → (N, H)
    gates = g.op("Constant", value_t=torch.zeros(0, 3 * H, dtype=dtype))  # internal: empty
    hn = g.op("Constant", value_t=torch.zeros(0, H, dtype=dtype))
    return out, h_n, gates, hn


def _unused(g: Any) -> Any:
    """A missing optional ONNX input."""
    n = g.op("prim::Constant")
    n.setType(torch._C.OptionalType.ofTensor())
    return n


torch.onnx.register_custom_op_symbolic("grukit::gru", _gru_symbolic, _MIN_OPSET)


# --- dynamo exporter ----------------------------------------------------------------------


def _gru_onnxscript(
    x: Any,
    h0: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any = None,
    b_hh: Any = None,
    batch_sizes: Any = None,
    reverse: bool = False,
    reset_after: bool = True,
    save: bool = False,
    loops: str = "torch",
) -> tuple[Any, Any, Any, Any]:
    """onnxscript translation of ``grukit::gru`` (trace-only): one ONNX GRU node."""
    import numpy as np
    import onnx_ir as ir
    from onnxscript import opset18 as op

    if batch_sizes is not None:
        raise ValueError(
            "grukit ONNX export: packed input (PackedSequence) cannot be exported; "
            "export a padded batch (T, N, I) instead"
        )
    H, I = int(w_hh.shape[1]), int(w_ih.shape[1])
    np_dtype = w_ih.dtype.numpy()

    def reorder(w: Any) -> Any:  # [r, z, n] → [z, r, n] along axis 0
        r, z, n = (op.Slice(w, [k * H], [(k + 1) * H], [0]) for k in range(3))
        return op.Concat(z, r, n, axis=0)

    if x.dtype in (ir.DataType.INT64, ir.DataType.INT32):
        eye = op.Constant(value=ir.tensor(np.eye(I, dtype=np_dtype)))  # (I, I)
        x = op.Gather(eye, x, axis=0)  # (T, N) indices → (T, N, I)
    W = op.Unsqueeze(reorder(w_ih), [0])  # (1, 3H, I)
    R = op.Unsqueeze(reorder(w_hh), [0])  # (1, 3H, H)
    if (b_ih is None) != (b_hh is None):
        raise ValueError("grukit ONNX export: expected both GRU biases or neither, got one")
    B = None if b_ih is None else op.Unsqueeze(op.Concat(reorder(b_ih), reorder(b_hh), axis=0), [0])
    y, y_h = op.GRU(
        x,
        W,
        R,
        B,
        None,
        op.Unsqueeze(h0, [0]),  # (1, N, H)
        hidden_size=H,
        linear_before_reset=int(reset_after),
        direction="reverse" if reverse else "forward",
    )
    out = op.Squeeze(y, [1])  # (T, 1, N, H) → (T, N, H)
    h_n = op.Squeeze(y_h, [0])  # (1, N, H) → (N, H)
    gates = op.Constant(value=ir.tensor(np.zeros((0, 3 * H), dtype=np_dtype)))  # internal
    hn = op.Constant(value=ir.tensor(np.zeros((0, H), dtype=np_dtype)))
    return out, h_n, gates, hn


def translation_table() -> dict[Callable[..., Any], Callable[..., Any]]:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``:
    ``grukit::gru`` → ONNX GRU."""
    import grukit.backends.ops  # noqa: F401  (defines torch.ops.grukit.gru)

    return {torch.ops.grukit.gru.default: _gru_onnxscript}
