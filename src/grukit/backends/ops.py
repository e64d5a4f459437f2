"""The fast GRU loops as PyTorch operators (``torch.library``, namespace ``grukit``).

Tools that trace a model — ``torch.compile``, ``torch.export``, ONNX export, ``jit.trace``,
``make_fx`` — see one operator per layer direction instead of Python and pybind calls:

    grukit::gru(x, h0, w_ih, w_hh, b_ih?, b_hh?, batch_sizes?, reverse, reset_after, save,
                loops, h_mask?=None, keep?=None) -> (out, h_n, gates, hn)
    grukit::gru_backward_loops(dout, dh_n, gates, hn, out, h0, w_hh, batch_sizes,
                               reverse, reset_after, loops, h_mask?=None, keep?=None)
                               -> (dgi, dghn, dh0, hprev)

Shapes (T time, N batch, I input, H hidden, S = T·N rows, or sum(batch_sizes) packed):
    x        (T, N, I) padded (``batch_sizes`` None), (S, I) packed, or int64 indices (T, N)
             of one-hot rows (``grukit.OneHot``, padded)
    h0, h_n  (N, H)
    out      (T, N, H) padded, (S, H) packed
    gates    (S, 3H) [r, z, n] and hn (S, H) (reset_after) when ``save``, else 0 rows:
             what the backward reads; the layers never return them
    loops    "native" (C++, CPU) or "torch" (torch ops, any device): ``fused.LOOPS``
    h_mask   (N, H) recurrent dropout mask, or None; keep (T, N, H) padded / (S, H) packed
             zoneout mask (``gru_backward_loops``: (S, H)), or None (``spec.Noise``); they
             get no gradient

Each has a fake kernel (shapes from the arguments alone, nothing data-dependent), so
dynamic batch and sequence length trace without recompiling. ``grukit::gru`` has registered
autograd (``setup_context``): its backward calls ``gru_backward_loops`` and then a few large
GEMMs in plain torch ops (``fused.backward_rows``); with ``create_graph`` it differentiates
the reference loop instead, so double backward is exact. Under autocast it runs in the
weights' dtype, as ``torch.nn.GRU`` returns its output in float32 under CPU autocast.
ONNX symbolics live in ``grukit.interop.onnx`` (imported here: the TorchScript
exporter's is registered with the operators).
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor

from . import fused
from .spec import Noise

__all__ = ["gru", "gru_backward_loops"]


@torch.library.custom_op("grukit::gru", mutates_args=(), device_types=None)
def gru(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    batch_sizes: Tensor | None,
    reverse: bool,
    reset_after: bool,
    save: bool,
    loops: str,
    h_mask: Tensor | None = None,
    keep: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One GRU direction over time (see the module docstring for shapes)."""
    rows, sizes, padded = fused.as_rows(x, batch_sizes)
    out, h_n, gates, hn = fused.forward_rows(
        fused.LOOPS[loops], rows, h0, w_ih, w_hh, b_ih, b_hh, sizes, reverse, reset_after, save,
        h_mask, _rows(keep),
    )  # fmt: skip
    if padded is not None:
        out = out.view(*padded, out.shape[-1])  # (T, N, H)
    return out, h_n, gates, hn


@gru.register_fake
def _gru_fake(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    batch_sizes: Tensor | None,
    reverse: bool,
    reset_after: bool,
    save: bool,
    loops: str,
    h_mask: Tensor | None = None,
    keep: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    N, H = h0.shape[0], w_hh.shape[1]
    if batch_sizes is None:
        S = x.shape[0] * x.shape[1]
        out = h0.new_empty(x.shape[0], x.shape[1], H)  # (T, N, H)
    else:
        S = x.shape[0]
        out = h0.new_empty(S, H)  # (S, H)
    gates = h0.new_empty(S if save else 0, 3 * H)
    hn = h0.new_empty(S if save and reset_after else 0, H)
    return out, h0.new_empty(N, H), gates, hn


@torch.library.custom_op("grukit::gru_backward_loops", mutates_args=(), device_types=None)
def gru_backward_loops(
    dout: Tensor,
    dh_n: Tensor,
    gates: Tensor,
    hn: Tensor,
    out: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    batch_sizes: Tensor,
    reverse: bool,
    reset_after: bool,
    loops: str,
    h_mask: Tensor | None = None,
    keep: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The serial part of the GRU backward (``fused.backward_loops``): dout (S, H),
    dh_n (N, H), gates (S, 3H), hn (S, H) or empty, out (S, H), h0 (N, H), w_hh (3H, H),
    h_mask (N, H) and keep (S, H) or None → dgi (S, 3H), dghn (S, H), dh0 (N, H), hprev (S, H)."""
    dgi, dghn, dh0, hprev = fused.backward_loops(
        fused.LOOPS[loops], dout, dh_n, gates, hn, out, h0, w_hh, batch_sizes, reverse,
        reset_after, h_mask, keep,
    )  # fmt: skip
    # The loops may return dghn as a view of dgi (reset_after=False) or dh0 as dh_n itself;
    # an operator's outputs must be tensors of their own.
    fresh = [t if t._base is None and t.data_ptr() != dh_n.data_ptr() else t.clone()
             for t in (dghn, dh0)]  # fmt: skip
    return dgi, fresh[0], fresh[1], hprev


@gru_backward_loops.register_fake
def _gru_backward_loops_fake(
    dout: Tensor,
    dh_n: Tensor,
    gates: Tensor,
    hn: Tensor,
    out: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    batch_sizes: Tensor,
    reverse: bool,
    reset_after: bool,
    loops: str,
    h_mask: Tensor | None = None,
    keep: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    S, N, H = dout.shape[0], h0.shape[0], h0.shape[1]
    return dout.new_empty(S, 3 * H), dout.new_empty(S, H), dout.new_empty(N, H), out.new_empty(S, H)


def _rows(keep: Tensor | None) -> Tensor | None:
    """A zoneout mask (T, N, H) or (S, H) as the rows the loops take, (S, H)."""
    return None if keep is None else keep.reshape(-1, keep.shape[-1])


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, reset_after, save, loops = inputs[:11]
    h_mask, keep = inputs[11:]
    out, _, gates, hn = output
    ctx.save_for_backward(x, h0, w_ih, w_hh, b_ih, b_hh, out, gates, hn, h_mask, keep)
    ctx.meta = (batch_sizes, reverse, reset_after, save, loops)


def _backward(ctx: Any, dout: Tensor, dh_n: Tensor, *_internal: Tensor) -> tuple[Any, ...]:
    """Gradients for (x, h0, w_ih, w_hh, b_ih, b_hh); gates and hn are internal outputs,
    the noise masks get none."""
    x, h0, w_ih, w_hh, b_ih, b_hh, out, gates, hn, h_mask, keep = ctx.saved_tensors
    batch_sizes, reverse, reset_after, save, loops = ctx.meta
    needs = tuple(ctx.needs_input_grad[:6])
    keep = _rows(keep)  # (S, H)
    noise = None if h_mask is None and keep is None else Noise(h_mask, keep)
    dout = torch.zeros_like(out) if dout is None else dout
    dh_n = torch.zeros_like(h0) if dh_n is None else dh_n
    if torch.is_grad_enabled() or not save:  # create_graph, or a forward that kept no gates
        with torch.enable_grad():  # rows must stay a function of x for autograd.grad
            rows, sizes, padded = fused.as_rows(x, batch_sizes)
        flat_dout = dout.reshape(rows.shape[0], dout.shape[-1])  # (S, H)
        inputs = (rows, h0, w_ih, w_hh, b_ih, b_hh)
        grads = fused.differentiable_grads(
            inputs, flat_dout, dh_n, sizes, reverse, reset_after, needs, noise
        )
    else:
        rows, sizes, padded = fused.as_rows(x, batch_sizes)
        flat_dout = dout.reshape(rows.shape[0], dout.shape[-1])  # (S, H)

        def run_loops(
            dout: Tensor, dh_n: Tensor, gates: Tensor, hn: Tensor, out: Tensor, h0: Tensor,
            w_hh: Tensor,
        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
            masks = () if noise is None else (h_mask, keep)
            dgi, dghn, dh0, hprev = torch.ops.grukit.gru_backward_loops(
                dout, dh_n, gates, hn, out, h0, w_hh, sizes, reverse, reset_after, loops, *masks
            )
            return dgi, dghn, dh0, hprev

        flat_out = out.reshape(rows.shape[0], out.shape[-1])  # (S, H)
        saved = (rows, h0, w_ih, w_hh, b_ih, flat_out, gates, hn)
        grads = fused.backward_rows(
            run_loops, saved, flat_dout, dh_n, sizes, reverse, reset_after, needs, h_mask
        )
    dx = grads[0]
    if dx is not None and padded is not None:
        dx = dx.view(x.shape)  # (T, N, I)
    return (dx, *grads[1:], None, None, None, None, None, None, None)


gru.register_autograd(_backward, setup_context=_setup_context)
torch.library.register_autocast("grukit::gru", "cpu", torch.float32)
torch.library.register_autocast("grukit::gru", "cuda", torch.float32)

# The ONNX symbolic of grukit::gru for torch.onnx.export(dynamo=False): registered with the
# operator, so exporting any model that holds grukit layers writes ONNX GRU nodes.
importlib.import_module("grukit.interop.onnx")
