"""The LayerNormGRU fast path: one direction as an ``autograd.Function`` with hand-written BPTT.

The cell is ``grukit.functional.layernorm_gru_cell`` (Ba et al. 2016, haste's LayerNormGRU).
Shapes (T time, N batch, I input, H hidden; S = T·N rows, or sum(batch_sizes) packed):

    a_i = x W_ihᵀ                          one GEMM for every step: (S, 3H)
    the serial loop (``layernorm_loops``: torch ops, or C++ in ``native/layernorm_gru.cpp``)
        gi  = x̂_i ⊙ γ_ih + b_ih,  x̂_i = (a_i − μ) · rstd_i per row over 3H, then the cell
        → out (S, H), h_n (N, H); saved gates [r, z, n] (S, 3H), x̂_i (S, 3H), rstd_i (S, 1),
          x̂_h (S, 3H), rstd_h (S, 2)

The backward loop returns da_i (S, 3H) and da (S, 3H), the gradients of the raw input and
recurrent products, dh0, and the column sums of the gains' and biases' gradients (4, 3H);
the rest is a few large GEMMs after the loop: dx = da_i W_ih, dW_ih = da_iᵀ x, and
dW_hh = daᵀ (h ⊙ m) (the n rows read (r ⊙ h ⊙ m) for reset_after=False).

Recurrent dropout and zoneout (``spec.Noise``): the mask m (N, H) multiplies every state W_hh
reads, and keep (S, H) blends each step's new state with the previous one. Eager calls run
``LayerNormGRUFunction``; traced ones (``fused.traced``) the operator ``grukit::layernorm_gru``
(``layernorm_ops``). Contract and shapes: ``grukit.backends.spec``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _typed_torch
from ..onehot import OneHot, projection, projection_weight_grad
from . import fused
from .layernorm_loops import TORCH_LN_LOOPS, LNLoops, LNRows
from .spec import CellSpec, Noise, State, Weights

__all__ = ["LayerNormGRUFunction", "backward_rows", "forward_rows", "loops_named", "run_with"]


def loops_named(name: str) -> LNLoops:
    """The serial loops by name: "torch" (``layernorm_loops``) or "native" (C++)."""
    if name == "native":
        from .native import layernorm as native_ln  # builds the extension on first use

        return native_ln.NATIVE_LN_LOOPS
    if name != "torch":
        raise ValueError(f"LayerNormGRU fast path: unknown loops {name!r}")
    return TORCH_LN_LOOPS


#: forward_rows' result: out (S, H), h_n (N, H), then what the backward reads (0 rows
#: without ``save``): gates (S, 3H), xhat_i (S, 3H), rstd_i (S, 1), xhat_h (S, 3H), rstd_h (S, 2).
Rows = LNRows


def forward_rows(
    loops: LNLoops,
    x: Tensor,
    h0: Tensor,
    w: Weights,
    h_mask: Tensor | None,
    keep: Tensor | None,
    batch_sizes: Tensor,
    reverse: bool,
    reset_after: bool,
    save: bool,
) -> Rows:
    """x (S, I) rows of all steps (or (S,) one-hot indices), h0 (N, H), keep (S, H) → ``Rows``."""
    assert w.ln_ih is not None and w.ln_hh is not None, "LayerNormGRU without gains"
    S, N, H = x.shape[0], h0.shape[0], w.w_hh.shape[1]
    if S == 0 or N == 0:  # nothing runs: the state stays h0
        e = h0.new_empty
        return e(S, H), h0.clone(), e(0, 3 * H), e(0, 3 * H), e(0, 1), e(0, 3 * H), e(0, 2)
    # a_i (S, 3H) is the loops' own (x̂_i may overwrite it)
    a_i = projection(x, w.w_ih, None, None, loops.empty(w.w_ih, (S, 3 * H)))
    return loops.forward(
        a_i, h0.contiguous(), w.w_hh, w.b_ih, w.b_hh, w.ln_ih, w.ln_hh, h_mask, keep,
        batch_sizes, reverse, reset_after, save,
    )  # fmt: skip


#: (x, h0, w, h_mask, keep, out, gates, xhat_i, rstd_i, xhat_h, rstd_h)
Saved = tuple[Any, ...]


def backward_loops(
    loops: LNLoops,
    dout: Tensor,
    dh_n: Tensor,
    rows: tuple[Tensor, ...],
    out: Tensor,
    h0: Tensor,
    w: Weights,
    h_mask: Tensor | None,
    keep: Tensor | None,
    batch_sizes: Tensor,
    reverse: bool,
    reset_after: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The serial part of the backward, from the forward's saved rows = (gates, xhat_i,
    rstd_i, xhat_h, rstd_h) → da_i (S, 3H), da (S, 3H), dh0 (N, H), sums (4, 3H) (the
    gradients of γ_ih, b_ih, γ_hh, b_hh), and the state before every step, hprev (S, H)."""
    assert w.ln_ih is not None and w.ln_hh is not None
    gates, xhat_i, rstd_i, xhat_h, rstd_h = rows
    hprev = fused.previous_states(out, h0, batch_sizes, reverse, loops.empty(out, out.shape))
    da_i, da, dh0, sums = loops.backward(
        dout.contiguous(), dh_n.contiguous(), gates, xhat_i, rstd_i, xhat_h, rstd_h, hprev,
        w.w_hh.contiguous(), w.b_hh, w.ln_ih, w.ln_hh, h_mask, keep, batch_sizes, reverse,
        reset_after,
    )  # fmt: skip
    return da_i, da, dh0, sums, hprev


def backward_rows(
    serial: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
    saved: Saved,
    batch_sizes: Tensor,
    reset_after: bool,
    needs: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:
    """Gradients for (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh) from the serial loop's
    result ``serial`` = ``backward_loops(...)``: large GEMMs over all S rows."""
    x, h0, w, h_mask, _, _, gates, _, _, _, _ = saved
    da_i, da, dh0, sums, hprev = serial
    H = w.w_hh.shape[1]
    dw_hh = None
    if needs[3]:
        hm = hprev if h_mask is None else fused.masked_rows(hprev, h_mask, batch_sizes)
        if reset_after:
            dw_hh = da.t() @ hm  # (3H, H)
        else:  # W_hn multiplies r ⊙ hm
            dw_hh = torch.cat((da[:, : 2 * H].t() @ hm, da[:, 2 * H :].t() @ (gates[:, :H] * hm)))
    dx = da_i @ w.w_ih if needs[0] else None  # (S, I)
    dw_ih = projection_weight_grad(da_i, x, w.w_ih.shape[1]) if needs[2] else None  # (3H, I)
    dln_ih, db_ih, dln_hh, db_hh = sums  # (3H,) each
    return (
        dx, dh0 if needs[1] else None, dw_ih, dw_hh,
        db_ih if needs[4] and w.b_ih is not None else None,
        db_hh if needs[5] and w.b_hh is not None else None,
        dln_ih if needs[6] else None, dln_hh if needs[7] else None,
    )  # fmt: skip


def differentiable_grads(
    inputs: tuple[Tensor | None, ...],
    h_mask: Tensor | None,
    keep: Tensor | None,
    dout: Tensor,
    dh_n: Tensor,
    batch_sizes: Tensor,
    reverse: bool,
    reset_after: bool,
    needs: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:
    """``backward_rows``' gradients as a graph of their own (``create_graph``): the reference
    loop run again on the saved inputs and differentiated by autograd, so double backward is
    exact. inputs = (x (S, I) or indices (S,), h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh)."""
    from . import reference  # the oracle; only needed for second order

    x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh = inputs
    assert x is not None and h0 is not None and w_ih is not None and w_hh is not None
    dense = x if x.is_floating_point() else F.one_hot(x, w_ih.shape[1]).to(w_ih.dtype)  # (S, I)
    T = batch_sizes.numel()
    pad = fused.padded(x, h0, batch_sizes)
    with torch.enable_grad():
        rows = dense.view(T, -1, dense.shape[1]) if pad else dense  # (T, N, I) or (S, I)
        noise = None
        if h_mask is not None or keep is not None:
            k = None if keep is None else (keep.view(T, -1, keep.shape[1]) if pad else keep)
            noise = Noise(h_mask, k)
        out, (h_n,) = reference.run(
            CellSpec("layernorm_gru", reset_after, noise is not None),
            rows,
            None if pad else batch_sizes,
            (h0,),
            Weights(w_ih, w_hh, b_ih, b_hh, None, ln_ih, ln_hh),
            reverse=reverse,
            noise=noise,
        )
        out = out.reshape(dout.shape)  # (S, H)
    wrt = [t for t, need in zip(inputs, needs, strict=True) if need and t is not None]
    got = iter(
        torch.autograd.grad((out, h_n), wrt, (dout, dh_n), create_graph=True, allow_unused=True)
    )
    grads = [
        next(got) if need and t is not None else None for t, need in zip(inputs, needs, strict=True)
    ]
    return tuple(
        t.new_zeros(t.shape) if g is None and need and t is not None else g
        for g, t, need in zip(grads, inputs, needs, strict=True)
    )


class LayerNormGRUFunction(torch.autograd.Function):
    """One LayerNormGRU direction in eager mode: (x (S, I) or indices (S,), h0 (N, H),
    w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, h_mask (N, H) or None, keep (S, H) or None)
    → (out (S, H), h_n (N, H)). With ``create_graph`` the backward is
    ``differentiable_grads``; otherwise ``backward_loops`` then ``backward_rows``."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
        b_hh: Tensor | None, ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None,
        keep: Tensor | None, batch_sizes: Tensor, reverse: bool, reset_after: bool,
        loops: LNLoops,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        w = Weights(w_ih, w_hh, b_ih, b_hh, None, ln_ih, ln_hh)
        out, h_n, *rest = forward_rows(
            loops, x, h0, w, h_mask, keep, batch_sizes, reverse, reset_after, True
        )
        ctx.save_for_backward(x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, h_mask, keep, out, *rest)
        ctx.meta = (batch_sizes, reverse, reset_after, loops)
        return out, h_n

    @staticmethod
    def backward(ctx: Any, dout: Tensor, dh_n: Tensor) -> tuple[Tensor | None, ...]:
        x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, h_mask, keep, out, *rest = ctx.saved_tensors
        batch_sizes, reverse, reset_after, loops = ctx.meta
        needs = tuple(ctx.needs_input_grad[:8])
        inputs = (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh)
        tail = (None,) * 6
        if torch.is_grad_enabled():  # create_graph: the gradients must be differentiable too
            grads = differentiable_grads(
                inputs, h_mask, keep, dout, dh_n, batch_sizes, reverse, reset_after, needs
            )
            return (*grads, *tail)
        return (*rows_backward(loops, inputs, h_mask, keep, out, rest, dout, dh_n, batch_sizes,
                               reverse, reset_after, needs), *tail)  # fmt: skip


def rows_backward(
    loops: LNLoops,
    inputs: tuple[Tensor | None, ...],
    h_mask: Tensor | None,
    keep: Tensor | None,
    out: Tensor,
    rest: list[Tensor],
    dout: Tensor,
    dh_n: Tensor,
    batch_sizes: Tensor,
    reverse: bool,
    reset_after: bool,
    needs: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:
    """First-order gradients of ``forward_rows`` (eager): the loops, then ``backward_rows``.
    rest = (gates, xhat_i, rstd_i, xhat_h, rstd_h)."""
    x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh = inputs
    assert x is not None and h0 is not None and w_ih is not None and w_hh is not None
    w = Weights(w_ih, w_hh, b_ih, b_hh, None, ln_ih, ln_hh)
    if x.shape[0] == 0 or h0.shape[0] == 0:  # an empty batch: h_n is h0
        zeros = tuple(None if t is None else t.new_zeros(t.shape) for t in inputs)
        grads = (zeros[0], dh_n, *zeros[2:])
        return tuple(g if need else None for g, need in zip(grads, needs, strict=True))
    serial = backward_loops(
        loops, dout, dh_n, tuple(rest), out, h0, w, h_mask, keep, batch_sizes, reverse,
        reset_after,
    )  # fmt: skip
    saved = (x, h0, w, h_mask, keep, out, *rest)
    return backward_rows(serial, saved, batch_sizes, reset_after, needs)


def direction(
    loops: str,
    x: Tensor,
    h0: Tensor,
    w: Weights,
    batch_sizes: Tensor | None,
    noise: Noise | None,
    *,
    reverse: bool,
    reset_after: bool,
) -> tuple[Tensor, Tensor]:
    """x (T, N, I) padded (``batch_sizes`` None) or (S, I) packed, or one-hot indices (T, N),
    h0 (N, H) → out (T, N, H) or (S, H), h_n (N, H); autograd only if needed."""
    h_mask, keep = (None, None) if noise is None else noise  # (N, H), (T, N, H) or (S, H)
    tensors = (x, h0, w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.ln_ih, w.ln_hh)
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    if fused.traced():
        from . import layernorm_ops  # noqa: F401  (registers grukit::layernorm_gru)

        save = grad and not _typed_torch.is_tracing()
        out, h_n, *_ = torch.ops.grukit.layernorm_gru(
            *tensors, h_mask, keep, batch_sizes, reverse, reset_after, save, loops
        )
        return out, h_n
    rows, sizes, shape = fused.as_rows(x, batch_sizes)
    keep_rows = None if keep is None else keep.reshape(rows.shape[0], -1)  # (S, H)
    impl = loops_named(loops)
    if grad:
        result: tuple[Tensor, Tensor] = LayerNormGRUFunction.apply(  # type: ignore[no-untyped-call]
            rows, *tensors[1:], h_mask, keep_rows, sizes, reverse, reset_after, impl
        )
        out, h_n = result
    else:
        out, h_n, *_ = forward_rows(
            impl, rows, h0, w, h_mask, keep_rows, sizes, reverse, reset_after, False
        )
    if shape is not None:
        out = out.view(*shape, out.shape[-1])  # (T, N, H)
    return out, h_n


def run_with(
    loops: str,
    spec: CellSpec,
    x: Tensor | OneHot,
    batch_sizes: Tensor | None,
    state: State,
    weights: Weights,
    *,
    reverse: bool = False,
    noise: Noise | None = None,
) -> tuple[Tensor, State]:
    """The backend contract (``grukit.backends.spec``) for kind "layernorm_gru"."""
    if spec.kind != "layernorm_gru":
        raise ValueError(
            f"LayerNormGRU fast path: expected cell kind 'layernorm_gru', got {spec.kind!r}"
        )
    if weights.ln_ih is None or weights.ln_hh is None:
        raise ValueError("LayerNormGRU fast path: expected the gains ln_ih and ln_hh, got None")
    data = x.indices if isinstance(x, OneHot) else x  # (T, N) indices, (T, N, I) or (S, I)
    out, h_n = direction(
        loops, data, state[0], weights, batch_sizes, noise, reverse=reverse,
        reset_after=spec.reset_after,
    )  # fmt: skip
    return out, (h_n,)
