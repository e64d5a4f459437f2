"""The LayerNormGRU fast path as PyTorch operators (``torch.library``, namespace ``grukit``),
so that ``torch.compile``, ``torch.export`` and ``make_fx`` see one op per layer direction:

    grukit::layernorm_gru(x, h0, w_ih, w_hh, b_ih?, b_hh?, ln_ih, ln_hh, h_mask?, keep?,
                          batch_sizes?, reverse, reset_after, save, loops)
        -> (out, h_n, gates, xhat_i, rstd_i, xhat_h, rstd_h)
    grukit::layernorm_gru_backward_loops(dout, dh_n, gates, xhat_i, rstd_i, xhat_h, rstd_h,
                          out, h0, w_hh, b_hh?, ln_ih, ln_hh, h_mask?, keep?, batch_sizes,
                          reverse, reset_after, loops)
        -> (da_i, da, dh0, sums, hprev)

Shapes as ``grukit.backends.ops`` (x (T, N, I) padded, (S, I) packed, or indices (T, N);
out (T, N, H) or (S, H)); h_mask (N, H), keep (T, N, H) padded or (S, H) packed; the saved
tensors (0 rows without ``save``) as ``grukit.backends.layernorm.forward_rows``. Fake kernels
give shapes from the arguments alone; the registered autograd runs the backward loops as
the second operator, then ``layernorm.backward_rows``; with ``create_graph`` (or a forward
that kept nothing) it differentiates the reference loop instead, so double backward is exact.
No ONNX symbolic: export raises (``grukit.backends.resolve``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import fused, layernorm
from .spec import Weights

__all__ = ["layernorm_gru", "layernorm_gru_backward_loops"]


@torch.library.custom_op("grukit::layernorm_gru", mutates_args=(), device_types=None)
def layernorm_gru(
    x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
    ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
    batch_sizes: Tensor | None, reverse: bool, reset_after: bool, save: bool, loops: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """One LayerNormGRU direction over time (see the module docstring for shapes)."""
    rows, sizes, padded = fused.as_rows(x, batch_sizes)
    keep_rows = None if keep is None else keep.reshape(rows.shape[0], -1)  # (S, H)
    w = Weights(w_ih, w_hh, b_ih, b_hh, None, ln_ih, ln_hh)
    out, *rest = layernorm.forward_rows(
        layernorm.loops_named(loops), rows, h0, w, h_mask, keep_rows, sizes, reverse,
        reset_after, save,
    )  # fmt: skip
    if padded is not None:
        out = out.view(*padded, out.shape[-1])  # (T, N, H)
    h_n, *saved = rest
    return out, h_n, *(t.clone() if t._base is not None else t for t in saved)  # type: ignore[return-value]


@layernorm_gru.register_fake
def _layernorm_gru_fake(
    x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
    ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
    batch_sizes: Tensor | None, reverse: bool, reset_after: bool, save: bool, loops: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    N, H = h0.shape[0], w_hh.shape[1]
    if batch_sizes is None:
        S = x.shape[0] * x.shape[1]
        out = h0.new_empty(x.shape[0], x.shape[1], H)  # (T, N, H)
    else:
        S = x.shape[0]
        out = h0.new_empty(S, H)  # (S, H)
    R = S if save else 0
    e = h0.new_empty
    return out, e(N, H), e(R, 3 * H), e(R, 3 * H), e(R, 1), e(R, 3 * H), e(R, 2)


@torch.library.custom_op("grukit::layernorm_gru_backward_loops", mutates_args=(), device_types=None)
def layernorm_gru_backward_loops(
    dout: Tensor, dh_n: Tensor, gates: Tensor, xhat_i: Tensor, rstd_i: Tensor, xhat_h: Tensor,
    rstd_h: Tensor, out: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, ln_ih: Tensor,
    ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None, batch_sizes: Tensor,
    reverse: bool, reset_after: bool, loops: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """``layernorm.backward_loops``: → da_i (S, 3H), da (S, 3H), dh0 (N, H), sums (4, 3H),
    hprev (S, H)."""
    w = Weights(w_hh, w_hh, None, b_hh, None, ln_ih, ln_hh)  # w_ih is not read
    da_i, da, dh0, sums, hprev = layernorm.backward_loops(
        layernorm.loops_named(loops), dout, dh_n, (gates, xhat_i, rstd_i, xhat_h, rstd_h), out,
        h0, w, h_mask, keep, batch_sizes, reverse, reset_after,
    )  # fmt: skip
    # An operator's outputs must be tensors of their own (dh0 may be dh_n itself).
    dh0 = dh0 if dh0._base is None and dh0.data_ptr() != dh_n.data_ptr() else dh0.clone()
    return da_i, da, dh0, sums, hprev


@layernorm_gru_backward_loops.register_fake
def _backward_loops_fake(
    dout: Tensor, dh_n: Tensor, gates: Tensor, xhat_i: Tensor, rstd_i: Tensor, xhat_h: Tensor,
    rstd_h: Tensor, out: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, ln_ih: Tensor,
    ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None, batch_sizes: Tensor,
    reverse: bool, reset_after: bool, loops: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    S, N, H = dout.shape[0], h0.shape[0], h0.shape[1]
    e = dout.new_empty
    return e(S, 3 * H), e(S, 3 * H), e(N, H), e(4, 3 * H), e(S, H)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    ctx.save_for_backward(*inputs[:10], output[0], *output[2:])
    ctx.meta = inputs[10:]  # batch_sizes, reverse, reset_after, save, loops


def _backward(ctx: Any, dout: Tensor, dh_n: Tensor, *_internal: Tensor) -> tuple[Any, ...]:
    """Gradients for (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh); the rest get None."""
    x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, h_mask, keep, out, *saved = ctx.saved_tensors
    batch_sizes, reverse, reset_after, save, loops = ctx.meta
    needs = tuple(ctx.needs_input_grad[:8])
    dout = torch.zeros_like(out) if dout is None else dout
    dh_n = torch.zeros_like(h0) if dh_n is None else dh_n
    with torch.enable_grad():  # rows must stay a function of x for autograd.grad
        rows, sizes, padded = fused.as_rows(x, batch_sizes)
    S = rows.shape[0]
    keep_rows = None if keep is None else keep.reshape(S, -1)  # (S, H)
    flat_dout = dout.reshape(S, dout.shape[-1])  # (S, H)
    inputs = (rows, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh)
    if torch.is_grad_enabled() or not save:  # create_graph, or a forward that kept nothing
        grads = layernorm.differentiable_grads(
            inputs, h_mask, keep_rows, flat_dout, dh_n, sizes, reverse, reset_after, needs
        )
    elif S == 0 or h0.shape[0] == 0:
        grads = layernorm.rows_backward(
            layernorm.loops_named(loops), inputs, h_mask, keep_rows, out.reshape(S, -1), saved,
            flat_dout, dh_n, sizes, reverse, reset_after, needs,
        )  # fmt: skip
    else:
        flat_out = out.reshape(S, out.shape[-1])  # (S, H)
        serial = torch.ops.grukit.layernorm_gru_backward_loops(
            flat_dout, dh_n, *saved, flat_out, h0, w_hh, b_hh, ln_ih, ln_hh, h_mask, keep_rows,
            sizes, reverse, reset_after, loops,
        )  # fmt: skip
        w = Weights(w_ih, w_hh, b_ih, b_hh, None, ln_ih, ln_hh)
        rows_saved = (rows, h0, w, h_mask, keep_rows, flat_out, *saved)
        grads = layernorm.backward_rows(tuple(serial), rows_saved, sizes, reset_after, needs)
    dx = grads[0]
    if dx is not None and padded is not None:
        dx = dx.view(x.shape)  # (T, N, I)
    return (dx, *grads[1:], None, None, None, None, None, None, None)


layernorm_gru.register_autograd(_backward, setup_context=_setup_context)
torch.library.register_autocast("grukit::layernorm_gru", "cpu", torch.float32)
torch.library.register_autocast("grukit::layernorm_gru", "cuda", torch.float32)
