"""A bidirectional GRU layer's two directions at once, one thread each (eager CPU calls).

The two directions of a layer are independent until their outputs are concatenated, so
their serial loops — the part of a step that cannot use two threads well at small sizes —
run side by side (``gru_forward_both`` / ``gru_backward_both`` in ``gru.cpp``), while the
large GEMMs before and after them (input projections, weight gradients) keep every
thread. Per direction the arithmetic is ``fused.GRUFunction``'s with the native loops, so
the results equal two separate calls. Shapes (S rows, N batch, I input, H hidden):

    x (S, I) or one-hot indices (S,)                       shared by both directions
    forward   gi_d = x W_ih,dᵀ + b_ih,d (S, 3H);  loops_f(gi_f) ∥ loops_b(gi_b, reversed)
              → out_d (S, H), h_n,d (N, H), saved gates_d (S, 3H), hn_d (S, H)
    backward  loops'_f ∥ loops'_b → dgi_d, dghn_d, dh0_d;  then per direction
              ``fused.backward_rows``'s GEMMs;  dx = dx_f + dx_b

Used by ``grukit.layers`` for a bidirectional GRU layer on the native backend when torch has
two threads (``PAIR_THREADS``) and nothing traces the call (traced calls run ``grukit::gru`` per
direction). Double backward goes through ``fused.differentiable_grads`` per direction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ... import _autocast as autocast
from ...onehot import OneHot, projection
from .. import fused
from ..fused import _contiguous  # None stays None
from ..spec import CellSpec, Noise, State, Weights
from . import NATIVE_LOOPS, extension

__all__ = ["BothFunction", "applies", "run_both"]

Pair = tuple[Any, Any]


#: Both directions' W_hh together at most this many bytes. Each step of each loop reads all
#: of its W_hh; two loops at once need both in the shared cache. Measured on a 2-core EPYC
#: (32 MiB L3, float32, training / inference time of the pair ÷ one direction after the
#: other on both threads, the (I, N, T) of the speed grid): H = 64 0.73 / 0.75, H = 256
#: 0.98 / 1.01, H = 512 (2 × 3 MiB) 0.89 / 0.96, H = 1024 (2 × 12 MiB) 1.23 / 1.47 — there
#: one direction at a time on both threads wins.
PAIR_MAX_BYTES = 8 << 20

#: The thread count the pair runs at. Each direction's loop gets one thread (the loops'
#: own row split runs inline inside the pair), so with more threads one direction after
#: the other, each splitting its rows over all of them, keeps every thread busy; the pair
#: was measured, and wins, at two.
PAIR_THREADS = 2


def applies(
    spec: CellSpec, x: Tensor | OneHot, batch_sizes: Tensor | None, n: int, w_hh: Tensor
) -> bool:
    """Whether ``run_both`` takes this layer: a GRU, CPU float32/float64 (or one-hot),
    ``PAIR_THREADS`` torch threads, a non-empty batch and sequence, nothing tracing, and both
    directions' W_hh (3H, H) within ``PAIR_MAX_BYTES``."""
    if fused.traced() or spec.kind != "gru" or n == 0:
        return False
    if torch.get_num_threads() != PAIR_THREADS:
        return False
    if 2 * w_hh.numel() * w_hh.element_size() > PAIR_MAX_BYTES:
        return False
    if isinstance(x, OneHot):
        return x.indices.numel() > 0
    rows = x.shape[0] if batch_sizes is not None else x.shape[0] * x.shape[1]
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and rows > 0


def forward_both(
    x: Tensor, h0: Pair, w: Pair, sizes: Tensor, reset_after: bool, save: bool, noise: Pair,
    gemm: torch.dtype | None = None,
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:  # fmt: skip
    """Both directions' ``fused.forward_rows`` on rows x (S, I) or indices (S,); h0, w,
    noise: (forward, backward) of h0 (N, H), ``Weights`` and ``Noise`` or None; gemm: the
    input projections' operand dtype under mixed precision, or None.
    → ((out, h_n, gates, hn) forward, the same reversed)."""
    S = x.shape[0]
    args = []
    for h, wd, nz in zip(h0, w, noise, strict=True):
        buf = NATIVE_LOOPS.empty(wd.w_ih, (S, wd.w_ih.shape[0]))  # (S, 3H), cached block
        gi = projection(x, wd.w_ih, wd.b_ih, gemm, buf)  # (S, 3H)
        m, k = (None, None) if nz is None else (nz.h_mask, nz.keep)
        args.append([gi, h.contiguous(), wd.w_hh, wd.b_hh, _contiguous(m), _contiguous(k)])
    copy = fused.copies_operand(w[0].w_hh, S)
    f, b = extension().gru_forward_both(args[0], args[1], sizes, reset_after, save, copy)
    return tuple(f[i] for i in (0, 3, 1, 2)), tuple(b[i] for i in (0, 3, 1, 2))


class BothFunction(torch.autograd.Function):
    """Both directions of a bidirectional GRU layer: (x, h0_f, h0_b, the forward direction's
    w_ih, w_hh, b_ih, b_hh, the backward direction's) → (out_f, h_n_f, out_b, h_n_b), with
    ``GRUFunction``'s gradients for each (the input's summed over the two)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, h0_f: Tensor, h0_b: Tensor, *rest: Any) -> tuple[Tensor, ...]:
        wf, wb = Weights(*rest[0:4]), Weights(*rest[4:8])
        sizes, reset_after, noise = rest[8], rest[9], (rest[10], rest[11])
        gemm = autocast.gemm_dtype()  # bfloat16 under mixed precision (grukit._autocast)
        f, b = forward_both(x, (h0_f, h0_b), (wf, wb), sizes, reset_after, True, noise, gemm)
        masks = [t for nz in noise for t in ((None, None) if nz is None else nz)]
        ctx.save_for_backward(x, h0_f, h0_b, *rest[0:8], f[0], f[2], f[3], b[0], b[2], b[3], *masks)
        ctx.meta = (sizes, reset_after, gemm)
        return f[0], f[1], b[0], b[1]

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        x, h0_f, h0_b, *t = ctx.saved_tensors
        sizes, reset_after, gemm = ctx.meta
        ws = (t[0:4], t[4:8])
        saved = ((t[8], t[9], t[10]), (t[11], t[12], t[13]))  # (out, gates, hn) per direction
        masks = ((t[14], t[15]), (t[16], t[17]))  # (h_mask, keep) per direction
        h0 = (h0_f, h0_b)
        douts, dhns = (grads[0], grads[2]), (grads[1], grads[3])
        need = ctx.needs_input_grad
        needs = tuple((need[0], need[1 + d], *need[3 + 4 * d : 7 + 4 * d]) for d in (0, 1))

        def common(d: int) -> tuple[Tensor, Tensor, Tensor, bool, bool, tuple[bool, ...]]:
            """dout, dh_n, batch sizes, reverse, reset_after, needs of direction d."""
            return douts[d], dhns[d], sizes, d == 1, reset_after, needs[d]

        if torch.is_grad_enabled():  # create_graph: differentiable gradients, per direction
            noise = [None if m == (None, None) else Noise(*m) for m in masks]
            inputs = [(x, h0[d], *ws[d]) for d in (0, 1)]
            per = [fused.differentiable_grads(inputs[d], *common(d), noise[d]) for d in (0, 1)]
        else:
            loops = _backward_loops(douts, dhns, saved, h0, ws, masks, sizes, reset_after)
            rows = [(x, h0[d], *ws[d][:3], *saved[d]) for d in (0, 1)]  # backward_rows' saved
            per = [
                fused.backward_rows(
                    lambda *_, d=d: loops[d],
                    rows[d],
                    *common(d),
                    masks[d][0],
                    gemm=gemm,
                    empty=NATIVE_LOOPS.empty,
                )
                for d in (0, 1)
            ]
        (dx_f, dh0_f, *dw_f), (dx_b, dh0_b, *dw_b) = per
        dx = dx_b if dx_f is None else dx_f if dx_b is None else dx_f + dx_b
        return (dx, dh0_f, dh0_b, *dw_f, *dw_b, None, None, None, None)


def _backward_loops(
    douts: Pair, dhns: Pair, saved: Pair, h0: Pair, ws: Pair, masks: Pair, sizes: Tensor,
    reset_after: bool,
) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:  # fmt: skip
    """Both directions' ``fused.backward_loops`` at once → [(dgi, dghn, dh0, hprev)] × 2."""
    args, hprevs = [], []
    for d in (0, 1):
        out, gates, hn = saved[d]
        inputs = fused.backward_loop_inputs(
            douts[d], dhns[d], gates, hn, out, h0[d], ws[d][1], sizes, d == 1, NATIVE_LOOPS.empty
        )  # (dout, dh_n, gates, hn, hprev, w_hh)
        m, k = masks[d]
        args.append([*inputs, _contiguous(m), _contiguous(k)])
        hprevs.append(inputs[4])
    f, b = extension().gru_backward_both(args[0], args[1], sizes, reset_after)
    return [(f[0], f[1], f[2], hprevs[0]), (b[0], b[1], b[2], hprevs[1])]


def run_both(
    spec: CellSpec,
    x: Tensor | OneHot,
    batch_sizes: Tensor | None,
    states: tuple[State, State],
    weights: tuple[Weights, Weights],
    noise: tuple[Noise | None, Noise | None],
) -> tuple[tuple[Tensor, State], tuple[Tensor, State]]:
    """``native.run`` for both directions of a layer (``applies`` says when): the forward
    direction's (out, (h_n,)) and the backward direction's, as two ``run`` calls give."""
    data = x.indices if isinstance(x, OneHot) else x
    rows, sizes, shape = fused.as_rows(data, batch_sizes)
    h0 = (states[0][0], states[1][0])
    keep = (_rows(noise[0]), _rows(noise[1]))  # keep (T, N, H) → (S, H)
    flat = [t for w in weights for t in (w.w_ih, w.w_hh, w.b_ih, w.b_hh)]
    tensors = (data, *h0, *flat)
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    if grad:
        out_f, hn_f, out_b, hn_b = BothFunction.apply(  # type: ignore[no-untyped-call]
            rows, *h0, *flat, sizes, spec.reset_after, *keep
        )
    else:
        gemm = autocast.gemm_dtype()
        f, b = forward_both(rows, h0, weights, sizes, spec.reset_after, False, keep, gemm)
        out_f, hn_f, out_b, hn_b = f[0], f[1], b[0], b[1]
    if shape is not None:
        out_f, out_b = out_f.view(*shape, -1), out_b.view(*shape, -1)  # (T, N, H)
    return (out_f, (hn_f,)), (out_b, (hn_b,))


def _rows(noise: Noise | None) -> Noise | None:
    """The noise with zoneout's keep as rows (S, H)."""
    if noise is None or noise.keep is None:
        return noise
    return Noise(noise.h_mask, noise.keep.reshape(-1, noise.keep.shape[-1]))
