"""The "fused" backend: one GRU direction as an ``autograd.Function`` with hand-written BPTT.

Forward (T time, N batch, I input, H hidden; S = T·N rows, or sum(batch_sizes) packed):

    gi = x W_ihᵀ + b_ih                               one GEMM for every step: (S, 3H)
    per step t (rows b < N_t still running):
        gh   = h W_hhᵀ + b_hh                         (N_t, 3H) reset_after
             = [h W_hrᵀ + b_hr, h W_hzᵀ + b_hz]       (N_t, 2H) reset_after=False, then
               W_hn (r ⊙ h) + b_hn                    (N_t, H)
        r, z = σ(gi_r + gh_r), σ(gi_z + gh_z)
        n    = tanh(gi_n + r ⊙ hn),  hn = W_hn h + b_hn   (reset_after)
        h'   = n + z ⊙ (h − n)                        = (1 − z) ⊙ n + z ⊙ h

Noise (``spec.Noise``, training regularisers): with a recurrent dropout mask m (N, H) every
product with W_hh reads h ⊙ m (the update z ⊙ h keeps h); with zoneout's keep k (S, H) the
update gate becomes z' = z + k ⊙ (1 − z), so h' = n + z' ⊙ (h − n) (``docs/kernels.md``).

It saves the gates r, z, n (S, 3H), hn (S, H) for reset_after, and the output; not a graph.
Backward (``docs/kernels.md``) is a serial loop of one GEMM (two for reset_after=False) plus
element-wise work per step producing the pre-activation gradients dgi (S, 3H) and the n
columns of dgh (S, H) (dgh's r, z columns are dgi's); the weight, bias and input gradients
are then a few large GEMMs over all S rows.

The two serial loops are pluggable (``Loops``): ``TORCH_LOOPS`` here (plain torch ops, so it
runs unchanged on CUDA) and the C++ loops of ``grukit.backends.native``.
Contract and shapes: ``grukit.backends.spec``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _autocast as autocast
from .. import _typed_torch
from ..onehot import OneHot, projection, projection_weight_grad
from .spec import CellSpec, Noise, State, Weights

name = "fused"

#: Takes ``OneHot`` input (first layer) as indices: gathers W_ih's columns.
accepts_onehot = True

#: forward(gi, h0, w_hh, b_hh, batch_sizes, reverse, reset_after, save, h_mask, keep)
#:   -> (out (S, H), gates (S, 3H), hn (S, H), h_n (N, H))
#: backward(dout, dh_n, gates, hn, hprev, w_hh, batch_sizes, reverse, reset_after, h_mask, keep)
#:   -> (dgi (S, 3H), dghn (S, H), dh0 (N, H))
#: dghn is the n columns of dgh, the gradient of gh; its r, z columns equal dgi's.
#: h_mask (N, H) recurrent dropout (step t reads rows [0, N_t)), keep (S, H) zoneout, or None;
#: the gates hold z itself, not z'. hn (reset_after) is W_hn (h ⊙ m) + b_hn.


#: empty(like, shape) -> an uninitialised tensor of like's dtype and device (``Loops.empty``)
Empty = Callable[[Tensor, tuple[int, ...]], Tensor]


class Loops(Protocol):
    def forward(
        self,
        gi: Tensor,
        h0: Tensor,
        w_hh: Tensor,
        b_hh: Tensor | None,
        batch_sizes: Tensor,
        reverse: bool,
        reset_after: bool,
        save: bool,
        h_mask: Tensor | None = None,
        keep: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]: ...

    def backward(
        self,
        dout: Tensor,
        dh_n: Tensor,
        gates: Tensor,
        hn: Tensor,
        hprev: Tensor,
        w_hh: Tensor,
        batch_sizes: Tensor,
        reverse: bool,
        reset_after: bool,
        h_mask: Tensor | None = None,
        keep: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]: ...

    def empty(self, like: Tensor, shape: tuple[int, ...]) -> Tensor:
        """An uninitialised tensor of ``shape`` with like's dtype and device, for a large
        intermediate such as the input projection (native: from its block cache)."""
        ...


def _steps(batch_sizes: Tensor, reverse: bool) -> list[tuple[int, int]]:
    """(first row, running rows N_t) of every step, in the order the forward pass runs."""
    sizes = batch_sizes.tolist()
    steps, offset = [], 0
    for n in sizes:
        steps.append((offset, n))
        offset += n
    return steps[::-1] if reverse else steps


class TorchLoops:
    """The serial loops in plain torch ops (any device)."""

    def empty(self, like: Tensor, shape: tuple[int, ...]) -> Tensor:
        return like.new_empty(shape)

    def forward(
        self,
        gi: Tensor,
        h0: Tensor,
        w_hh: Tensor,
        b_hh: Tensor | None,
        batch_sizes: Tensor,
        reverse: bool,
        reset_after: bool,
        save: bool,
        h_mask: Tensor | None = None,
        keep: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        S, N, H = gi.shape[0], h0.shape[0], h0.shape[1]
        w_hh_t = recurrent_operand(w_hh, S)  # (H, 3H)
        out = gi.new_empty(S, H)
        gates = gi.new_empty(S if save else 0, 3 * H)
        hn_all = gi.new_empty(S if save and reset_after else 0, H)
        w_rz_t, w_n_t = w_hh_t[:, : 2 * H], w_hh_t[:, 2 * H :]  # (H, 2H), (H, H)
        b_rz, b_n = (None, None) if b_hh is None else (b_hh[: 2 * H], b_hh[2 * H :])
        h = h0
        for off, n in _steps(batch_sizes, reverse):
            g = gi[off : off + n]  # (N_t, 3H)
            hp = h[:n]  # (N_t, H)
            hm = hp if h_mask is None else hp * h_mask[:n]  # what W_hh multiplies
            if reset_after:
                gh = hm @ w_hh_t if b_hh is None else torch.addmm(b_hh, hm, w_hh_t)  # (N_t, 3H)
                rz = torch.sigmoid(g[:, : 2 * H] + gh[:, : 2 * H])  # (N_t, 2H)
                r, z = rz[:, :H], rz[:, H:]
                hn = gh[:, 2 * H :]  # (N_t, H)
                new = torch.tanh(torch.addcmul(g[:, 2 * H :], r, hn))
                if save:
                    hn_all[off : off + n] = hn
            else:
                ghrz = hm @ w_rz_t if b_rz is None else torch.addmm(b_rz, hm, w_rz_t)  # (N_t, 2H)
                rz = torch.sigmoid(g[:, : 2 * H] + ghrz)  # (N_t, 2H)
                r, z = rz[:, :H], rz[:, H:]
                rh = r * hm
                ghn = rh @ w_n_t if b_n is None else torch.addmm(b_n, rh, w_n_t)  # (N_t, H)
                new = torch.tanh(g[:, 2 * H :] + ghn)
            if keep is not None:  # zoneout: z' = z + k ⊙ (1 − z)
                z = torch.addcmul(z, keep[off : off + n], 1 - z)
            h_t = torch.lerp(new, hp, z)  # n + z ⊙ (h − n)
            if save:
                gates[off : off + n, : 2 * H] = rz
                gates[off : off + n, 2 * H :] = new
            out[off : off + n] = h_t
            h = h_t if n == N else torch.cat((h_t, h[n:]))  # rows past N_t keep their state
        return out, gates, hn_all, h

    def backward(
        self,
        dout: Tensor,
        dh_n: Tensor,
        gates: Tensor,
        hn: Tensor,
        hprev: Tensor,
        w_hh: Tensor,
        batch_sizes: Tensor,
        reverse: bool,
        reset_after: bool,
        h_mask: Tensor | None = None,
        keep: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        S, N, H = dout.shape[0], dh_n.shape[0], dh_n.shape[1]
        dgi = dout.new_empty(S, 3 * H)
        dgh = dgi if not reset_after else dout.new_empty(S, 3 * H)  # equal for reset_after=False
        w_rz, w_n = w_hh[: 2 * H], w_hh[2 * H :]  # (2H, H), (H, H)
        dh = dh_n
        for off, n in reversed(_steps(batch_sizes, reverse)):
            d = dh[:n] + dout[off : off + n]  # dL/dh' (N_t, H)
            g = gates[off : off + n]  # (N_t, 3H)
            r, z, nn = g[:, :H], g[:, H : 2 * H], g[:, 2 * H :]
            hp = hprev[off : off + n]  # (N_t, H)
            if keep is None:
                da_n = d * (1 - z) * (1 - nn * nn)  # through h' = (1−z)n + zh, n = tanh(a_n)
                da_z = d * (hp - nn) * z * (1 - z)
                zu = z  # the update's weight on h
            else:  # zoneout: 1 − z' = (1 − k)(1 − z)
                ok = 1 - keep[off : off + n]
                omz = ok * (1 - z)
                da_n = d * omz * (1 - nn * nn)
                da_z = d * (hp - nn) * z * (1 - z) * ok
                zu = 1 - omz
            m = None if h_mask is None else h_mask[:n]  # (N_t, H)
            if reset_after:
                hn_t = hn[off : off + n]
                da_r = da_n * hn_t * r * (1 - r)
                dg = torch.cat((da_r, da_z, da_n), 1)  # (N_t, 3H)
                dgi[off : off + n] = dg
                dgh[off : off + n, : 2 * H] = dg[:, : 2 * H]
                dgh[off : off + n, 2 * H :] = da_n * r
                if m is None:
                    dhp = torch.addmm(d * zu, dgh[off : off + n], w_hh)  # (N_t, H)
                else:  # the product read h ⊙ m
                    dhp = torch.addcmul(d * zu, dgh[off : off + n] @ w_hh, m)
            else:
                drh = da_n @ w_n  # dL/d(r ⊙ h ⊙ m) (N_t, H)
                da_r = drh * (hp if m is None else hp * m) * r * (1 - r)
                dg = torch.cat((da_r, da_z, da_n), 1)  # (N_t, 3H)
                dgi[off : off + n] = dg
                if m is None:
                    dhp = torch.addmm(torch.addcmul(d * zu, drh, r), dg[:, : 2 * H], w_rz)
                else:
                    dhm = torch.addmm(drh * r, dg[:, : 2 * H], w_rz)  # dL/d(h ⊙ m)
                    dhp = torch.addcmul(d * zu, dhm, m)
            dh = dhp if n == N else torch.cat((dhp, dh[n:]))
        return dgi, dgh[:, 2 * H :], dh  # (S, 3H), (S, H) dgh's n columns, (N, H)


TORCH_LOOPS = TorchLoops()


def prev_rows(batch_sizes: Tensor, reverse: bool) -> Tensor:
    """For every packed row, where its state before the step is in ``cat(out, h0)``.

    Row (t, b) read the output of the previous step of the pass (t − 1, or t + 1 reversed)
    if sequence b ran there, else its initial state h0[b] (row S + b). → (S,) int64.
    """
    bs = batch_sizes.to(torch.int64)  # (T,)
    T, S = bs.numel(), int(bs.sum())
    offsets = torch.cumsum(bs, 0) - bs  # (T,)
    t = torch.arange(T).repeat_interleave(bs)  # (S,)
    b = torch.arange(S) - offsets[t]  # (S,)
    tp = t + 1 if reverse else t - 1  # (S,)
    tpc = tp.clamp(0, T - 1)
    ran = (tp >= 0) & (tp < T) & (b < bs[tpc])
    return torch.where(ran, offsets[tpc] + b, S + b)  # (S,)


#: The copy of W_hhᵀ pays for itself only over enough rows: it costs about as much as
#: 5-10% of the per-step GEMMs of ~256 rows (H = 128-256), and dominates a short stream.
COPY_MIN_ROWS = 256


def copies_operand(w_hh: Tensor, rows: int) -> bool:
    """Whether the per-step GEMMs h W_hhᵀ over ``rows`` rows in all take a contiguous copy of
    W_hhᵀ: up to H = 256, where MKL's GEMM is 5-10% faster on it, once there are enough rows
    to repay the copy; otherwise (from H = 512, as fast or 5-12% faster, and for short
    streams such as T = N = 1) the transposed view, which needs no copy."""
    return w_hh.shape[1] <= 256 and rows >= COPY_MIN_ROWS


def recurrent_operand(w_hh: Tensor, rows: int) -> Tensor:
    """W_hhᵀ (H, 3H) for the per-step GEMMs: a contiguous copy or the view (``copies_operand``)."""
    return w_hh.t().contiguous() if copies_operand(w_hh, rows) else w_hh.t()  # (H, 3H)


def previous_states(
    out: Tensor, h0: Tensor, batch_sizes: Tensor, reverse: bool, into: Tensor | None = None
) -> Tensor:
    """out (S, H), h0 (N, H) → the state before every row's step (S, H), written into
    ``into`` (an empty (S, H) tensor) when given.

    Padded input (every step runs all N rows) is a shift by one step; packed input gathers
    rows with ``prev_rows``.
    """
    N = h0.shape[0]
    if padded(out, h0, batch_sizes):  # batch sizes sum to T·N and none exceeds N: all N
        S = out.shape[0]
        if reverse:
            return torch.cat((out[N:], h0), out=into)  # (S, H) step t reads step t + 1
        return torch.cat((h0, out[: S - N]), out=into)  # (S, H) step t reads step t − 1
    index = prev_rows(batch_sizes, reverse).to(out.device)  # (S,)
    return torch.index_select(torch.cat((out, h0)), 0, index, out=into)  # (S, H)


#: The serial loops by name: "torch" here; ``grukit.backends.native`` adds "native". The
#: operators (``grukit.backends.ops``) take the name, so a traced graph records which ran.
LOOPS: dict[str, Loops] = {"torch": TORCH_LOOPS}


def forward_rows(
    loops: Loops,
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    batch_sizes: Tensor,
    reverse: bool,
    reset_after: bool,
    save: bool,
    h_mask: Tensor | None = None,
    keep: Tensor | None = None,
    *,
    gemm: torch.dtype | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """x (S, I) rows of all steps (or (S,) one-hot indices), h0 (N, H) → out (S, H),
    h_n (N, H), and for the backward gates (S, 3H) [r, z, n] and hn (S, H) (reset_after),
    both with 0 rows unless ``save``. An empty batch (N = 0) returns empty outputs.
    h_mask (N, H), keep (S, H): recurrent dropout and zoneout, or None (``Loops``).
    gemm: bfloat16 for the input projection's operands (mixed precision,
    ``grukit._autocast``), or None."""
    S, N, H = x.shape[0], h0.shape[0], w_hh.shape[1]
    if S == 0 or N == 0:  # nothing runs: the state stays h0
        empty = h0.new_empty(0, 3 * H), h0.new_empty(0, H)
        return h0.new_empty(S, H), h0.clone(), *empty
    gi = projection(x, w_ih, b_ih, gemm, loops.empty(w_ih, (S, w_ih.shape[0])))  # (S, 3H)
    if h_mask is None and keep is None:
        out, gates, hn, h_n = loops.forward(
            gi, h0.contiguous(), w_hh, b_hh, batch_sizes, reverse, reset_after, save
        )
    else:
        out, gates, hn, h_n = loops.forward(
            gi, h0.contiguous(), w_hh, b_hh, batch_sizes, reverse, reset_after, save,
            _contiguous(h_mask), _contiguous(keep),
        )  # fmt: skip
    if save and gates.shape[0] != S:  # a loop that keeps only scratch rows (N) without save
        raise RuntimeError("grukit fused: the loops did not save the gates")
    return out, h_n, gates, hn


def backward_loop_inputs(
    dout: Tensor, dh_n: Tensor, gates: Tensor, hn: Tensor, out: Tensor, h0: Tensor,
    w_hh: Tensor, batch_sizes: Tensor, reverse: bool, empty: Empty | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """The backward loops' tensors (``Loops.backward``'s first six arguments): dout (S, H),
    dh_n (N, H), gates, hn, hprev (S, H) the state before every step (in a tensor from
    ``empty`` when given: ``Loops.empty``), w_hh; contiguous."""
    into = None if empty is None else empty(out, tuple(out.shape))
    hprev = previous_states(out, h0, batch_sizes, reverse, into)  # (S, H)
    return dout.contiguous(), dh_n.contiguous(), gates, hn, hprev, w_hh.contiguous()


#: backward_loops(dout, dh_n, gates, hn, out, h0, w_hh, batch_sizes, reverse, reset_after,
#:                h_mask, keep) -> (dgi (S, 3H), dghn (S, H), dh0 (N, H), hprev (S, H))
def backward_loops(
    loops: Loops,
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
    h_mask: Tensor | None = None,
    keep: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The serial part of the backward: the state before every step, hprev (S, H), and the
    loops' pre-activation gradients dgi (S, 3H), dghn (S, H) and dh0 (N, H). h_mask (N, H)
    and keep (S, H): the forward's noise, or None."""
    args = backward_loop_inputs(
        dout, dh_n, gates, hn, out, h0, w_hh, batch_sizes, reverse, loops.empty
    )  # fmt: skip
    hprev = args[4]
    if h_mask is None and keep is None:
        dgi, dghn, dh0 = loops.backward(*args, batch_sizes, reverse, reset_after)
    else:
        dgi, dghn, dh0 = loops.backward(
            *args, batch_sizes, reverse, reset_after, _contiguous(h_mask), _contiguous(keep)
        )
    return dgi, dghn, dh0, hprev


def _contiguous(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def masked_rows(hprev: Tensor, h_mask: Tensor, batch_sizes: Tensor) -> Tensor:
    """hprev (S, H) ⊙ the recurrent dropout mask h_mask (N, H) of every row: what W_hh
    multiplied at that row's step (step t's rows are sequences [0, N_t)). → (S, H)."""
    S, N = hprev.shape[0], h_mask.shape[0]
    T = batch_sizes.numel()
    if S == T * N:  # padded: every step runs all N rows
        return (hprev.view(T, N, -1) * h_mask).view(S, -1)  # (T, N, H) → (S, H)
    bs = batch_sizes.to(torch.int64)  # (T,)
    offsets = torch.cumsum(bs, 0) - bs  # (T,)
    b = torch.arange(S) - offsets.repeat_interleave(bs)  # (S,) each row's sequence
    return hprev * h_mask.index_select(0, b.to(h_mask.device))  # (S, H)


#: loops_backward(dout, dh_n, gates, hn, out, h0, w_hh) -> (dgi, dghn, dh0, hprev)
LoopsBackward = Callable[
    [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]
]


def backward_rows(
    loops_backward: LoopsBackward,
    saved: tuple[Tensor | None, ...],
    dout: Tensor,
    dh_n: Tensor,
    batch_sizes: Tensor,
    reverse: bool,
    reset_after: bool,
    needs: tuple[bool, ...],
    h_mask: Tensor | None = None,
    *,
    gemm: torch.dtype | None = None,
    empty: Empty | None = None,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``forward_rows``'s (out, h_n) for (x, h0, w_ih, w_hh, b_ih, b_hh).
    ``gemm``: bfloat16 for the operands of dx, dW_ih and dW_hh's GEMMs, or None.
    ``empty``: where the float32/float64 GEMMs write dx, dW_ih and dW_hh (``Loops.empty``:
    reused blocks), or None for fresh tensors.

    saved = (x, h0, w_ih, w_hh, b_ih, out, gates, hn) from a forward with ``save``;
    loops_backward(dout, dh_n, gates, hn, out, h0, w_hh) runs ``backward_loops`` (with the
    forward's noise). After the serial loop the weight, bias and input gradients are a few
    large GEMMs over all S rows; with recurrent dropout (h_mask (N, H)) W_hh multiplied
    hprev ⊙ m, so its gradient reads that.
    """
    x, h0, w_ih, w_hh, b_ih, out, gates, hn = saved
    assert x is not None and h0 is not None and w_ih is not None and w_hh is not None
    assert out is not None and gates is not None and hn is not None
    S, N, H = x.shape[0], h0.shape[0], w_hh.shape[1]
    if S == 0 or N == 0:  # an empty batch: h_n is h0
        zeros = [t.new_zeros(t.shape) if t is not None else None for t in (x, h0, w_ih, w_hh)]
        zb = None if b_ih is None else b_ih.new_zeros(b_ih.shape)
        grads = (zeros[0], dh_n, zeros[2], zeros[3], zb, zb)
        return tuple(g if need else None for g, need in zip(grads, needs, strict=True))
    dgi, dghn, dh0, hprev = loops_backward(dout, dh_n, gates, hn, out, h0, w_hh)
    into = None if empty is None or gemm is not None else empty  # bfloat16 GEMMs: fresh

    def mm(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
        """a @ b (in ``out`` when given, else in a tensor from ``into`` when set)."""
        if out is None and into is not None:
            out = into(a, (a.shape[0], b.shape[1]))
        return autocast.matmul(a, b, gemm) if out is None else torch.mm(a, b, out=out)

    dx = mm(dgi, w_ih) if needs[0] else None  # (S, I)
    dw_ih = None
    if needs[2]:  # (3H, I)
        dense = x.is_floating_point()
        dw_ih = mm(dgi.t(), x) if dense else projection_weight_grad(dgi, x, w_ih.shape[1])
    dw_hh = None
    if needs[3]:  # dgh = [dgi_r, dgi_z, dghn]; W_hn multiplies h (reset_after) or r ⊙ h
        hm = hprev if h_mask is None else masked_rows(hprev, h_mask, batch_sizes)  # (S, H)
        h_n = hm if reset_after else gates[:, :H] * hm  # (S, H)
        if into is None:
            dw_rz = mm(dgi[:, : 2 * H].t(), hm)  # (2H, H)
            dw_hh = torch.cat((dw_rz, mm(dghn.t(), h_n)))  # (3H, H)
        else:  # both products into one (3H, H) tensor: no concatenation
            dw_hh = into(w_hh, tuple(w_hh.shape))
            mm(dgi[:, : 2 * H].t(), hm, dw_hh[: 2 * H])
            mm(dghn.t(), h_n, dw_hh[2 * H :])
    db_ih = db_hh = None
    if b_ih is not None and (needs[4] or needs[5]):
        ones = dgi.new_ones(dgi.shape[0])  # (S,) column sums as GEMVs: 2x sum(0)
        db_ih = ones @ dgi  # (3H,)
        db_hh = torch.cat((db_ih[: 2 * H], ones @ dghn)) if reset_after else db_ih  # (3H,)
        db_ih, db_hh = (db_ih if needs[4] else None), (db_hh if needs[5] else None)
    return dx, dh0 if needs[1] else None, dw_ih, dw_hh, db_ih, db_hh


def differentiable_grads(
    inputs: tuple[Tensor | None, ...],
    dout: Tensor,
    dh_n: Tensor,
    batch_sizes: Tensor,
    reverse: bool,
    reset_after: bool,
    needs: tuple[bool, ...],
    noise: Noise | None = None,
) -> tuple[Tensor | None, ...]:
    """The same gradients as ``backward_rows``, as a graph of their own (``create_graph``):
    the reference loop (``grukit.backends.reference``) run again on the saved inputs and
    differentiated by autograd, so double backward (gradient penalties, ``gradgradcheck``,
    Hessian-vector products) is exact rather than silently zero.

    inputs = (x (S, I) or indices (S,), h0 (N, H), w_ih, w_hh, b_ih, b_hh); noise: the
    forward's masks, h_mask (N, H) and keep (S, H) rows, or None.
    """
    from . import reference  # the oracle; imported here, it is only needed for 2nd order

    x, h0, w_ih, w_hh, b_ih, b_hh = inputs
    assert x is not None and h0 is not None and w_ih is not None and w_hh is not None
    dense = x if x.is_floating_point() else F.one_hot(x, w_ih.shape[1]).to(w_ih.dtype)  # (S, I)
    T = batch_sizes.numel()
    with torch.enable_grad():
        rows = dense.view(T, -1, dense.shape[1]) if padded(x, h0, batch_sizes) else dense
        if noise is not None and noise.keep is not None and rows.dim() == 3:
            noise = Noise(noise.h_mask, noise.keep.view(T, -1, noise.keep.shape[-1]))  # (T, N, H)
        out, (h_n,) = reference.run(
            CellSpec("gru", reset_after, noise is not None),
            rows,
            None if rows.dim() == 3 else batch_sizes,
            (h0,),
            Weights(w_ih, w_hh, b_ih, b_hh),
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


def as_rows(x: Tensor, batch_sizes: Tensor | None) -> tuple[Tensor, Tensor, tuple[int, int] | None]:
    """A direction's input as the rows ``forward_rows`` takes: (rows (S, I) or (S,),
    batch sizes (T,), (T, N) to give the output back its padded shape, or None for packed
    input). x is (T, N, I) or indices (T, N) padded (``batch_sizes`` None), or (S, I) packed."""
    if batch_sizes is not None:
        return x, batch_sizes, None
    T, N = x.shape[0], x.shape[1]
    sizes = torch.full((T,), N, dtype=torch.int64)  # (T,) every sequence runs every step
    return x.reshape(T * N, *x.shape[2:]), sizes, (T, N)  # (T·N, I) or (T·N,)


def padded(x: Tensor, h0: Tensor, batch_sizes: Tensor) -> bool:
    """Whether every step runs all N rows (T·N rows): the data is a padded batch."""
    return x.shape[0] == batch_sizes.numel() * h0.shape[0]


class GRUFunction(torch.autograd.Function):
    """One GRU direction in eager mode: (x (S, I), h0 (N, H), weights) → (out (S, H),
    h_n (N, H)). The traced counterpart is the operator ``grukit::gru``
    (``grukit.backends.ops``); both run ``forward_rows`` and ``backward_rows``.

    x may also be indices (S,) of one-hot rows (``grukit.onehot``): the input product is
    then a gather and its weight gradient a scatter-add. The backward is differentiable:
    with ``create_graph`` it returns ``differentiable_grads``. h_mask (N, H) and keep (S, H)
    are the recurrent dropout and zoneout masks, or None; they get no gradient."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        h0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor | None,
        b_hh: Tensor | None,
        batch_sizes: Tensor,
        reverse: bool,
        reset_after: bool,
        loops: Loops,
        h_mask: Tensor | None = None,
        keep: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        gemm = autocast.gemm_dtype()  # bfloat16 under mixed precision (grukit._autocast)
        out, h_n, gates, hn = forward_rows(
            loops, x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, reset_after, True,
            h_mask, keep, gemm=gemm,
        )  # fmt: skip
        ctx.save_for_backward(x, h0, w_ih, w_hh, b_ih, b_hh, out, gates, hn, h_mask, keep)
        ctx.meta = (batch_sizes, reverse, reset_after, loops, gemm)
        return out, h_n

    @staticmethod
    def backward(ctx: Any, dout: Tensor, dh_n: Tensor) -> tuple[Tensor | None, ...]:
        x, h0, w_ih, w_hh, b_ih, b_hh, out, gates, hn, h_mask, keep = ctx.saved_tensors
        batch_sizes, reverse, reset_after, loops, gemm = ctx.meta
        needs = tuple(ctx.needs_input_grad[:6])
        noisy = h_mask is not None or keep is not None
        if torch.is_grad_enabled():  # create_graph: the gradients must be differentiable too
            inputs = (x, h0, w_ih, w_hh, b_ih, b_hh)
            grads = differentiable_grads(
                inputs, dout, dh_n, batch_sizes, reverse, reset_after, needs,
                Noise(h_mask, keep) if noisy else None,
            )  # fmt: skip
        else:

            def run_loops(
                dout: Tensor, dh_n: Tensor, gates: Tensor, hn: Tensor, out: Tensor,
                h0: Tensor, w_hh: Tensor,
            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
                return backward_loops(
                    loops, dout, dh_n, gates, hn, out, h0, w_hh, batch_sizes, reverse,
                    reset_after, h_mask, keep,
                )  # fmt: skip

            saved = (x, h0, w_ih, w_hh, b_ih, out, gates, hn)
            grads = backward_rows(
                run_loops, saved, dout, dh_n, batch_sizes, reverse, reset_after, needs, h_mask,
                gemm=gemm, empty=loops.empty,
            )  # fmt: skip
        return (*grads, None, None, None, None, None, None)


def traced() -> bool:
    """Whether a tool is tracing this call (``torch.compile``, ``torch.export``, ONNX export,
    ``jit.trace``, ``make_fx``/fake tensors, ``torch.func``): then the loops run as the
    operator ``grukit::gru``, which these tools see as one op with fake kernels and
    registered autograd. In plain eager mode the same functions are called directly,
    which saves the operator's ~17 µs dispatch per call (a one-step stream is ~60 µs)."""
    if torch.compiler.is_compiling() or _typed_torch.is_tracing():
        return True
    return torch._C._len_torch_dispatch_stack() > 0 or torch._C._are_functorch_transforms_active()


def gru_direction(
    loops: str,
    x: Tensor,
    h0: Tensor,
    weights: Weights,
    batch_sizes: Tensor | None,
    *,
    reverse: bool,
    reset_after: bool,
    h_mask: Tensor | None = None,
    keep: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """x (T, N, I) padded (``batch_sizes`` None) or (S, I) packed, or one-hot indices (T, N),
    h0 (N, H) → out (T, N, H) or (S, H), h_n (N, H), through the loops named ``loops``;
    autograd only if needed. h_mask (N, H) recurrent dropout and keep (T, N, H) or (S, H)
    zoneout (``spec.Noise``), or None."""
    w = weights
    tensors = (x, h0, w.w_ih, w.w_hh, w.b_ih, w.b_hh)
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    if traced():
        # jit.trace checks its graph under no_grad: a traced graph must not depend on grad
        # mode, so it keeps no gates and its backward recomputes them (exact, slower).
        save = grad and not _typed_torch.is_tracing()
        noise = () if h_mask is None and keep is None else (h_mask, keep)
        out, h_n, _, _ = torch.ops.grukit.gru(
            *tensors, batch_sizes, reverse, reset_after, save, loops, *noise
        )
        return out, h_n
    rows, sizes, shape = as_rows(x, batch_sizes)
    impl = LOOPS[loops]
    keep_rows = None if keep is None else keep.reshape(-1, keep.shape[-1])  # (S, H)
    if grad:
        # torch leaves Function.apply unannotated; GRUFunction.forward gives the result's type.
        result: tuple[Tensor, Tensor] = GRUFunction.apply(  # type: ignore[no-untyped-call]
            rows, *tensors[1:], sizes, reverse, reset_after, impl, h_mask, keep_rows
        )
        out, h_n = result
    else:
        out, h_n, _, _ = forward_rows(
            impl, rows, *tensors[1:], sizes, reverse, reset_after, False, h_mask, keep_rows,
            gemm=autocast.gemm_dtype(),
        )  # fmt: skip
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
    """The backend contract (``grukit.backends.spec``) on top of the loops named ``loops``."""
    if spec.kind != "gru":
        raise ValueError(f"{name} backend: computes only the GRU, got cell kind {spec.kind!r}")
    data = x.indices if isinstance(x, OneHot) else x  # (T, N) indices, (T, N, I) or (S, I)
    h_mask, keep = (None, None) if noise is None else noise
    out, h_n = gru_direction(
        loops, data, state[0], weights, batch_sizes,
        reverse=reverse, reset_after=spec.reset_after, h_mask=h_mask, keep=keep,
    )  # fmt: skip
    return out, (h_n,)


def available() -> bool:
    return True


def supports(spec: CellSpec, x: Tensor) -> bool:
    if spec.kind == "layernorm_gru":  # grukit.backends.layernorm, with or without noise
        return True
    return spec.kind == "gru"


def run(
    spec: CellSpec,
    x: Tensor | OneHot,
    batch_sizes: Tensor | None,
    state: State,
    weights: Weights,
    *,
    reverse: bool = False,
    noise: Noise | None = None,
) -> tuple[Tensor, State]:
    """One direction of one GRU layer through ``GRUFunction`` with the torch-op loops
    (a LayerNormGRU's through ``grukit.backends.layernorm``)."""
    if spec.kind == "layernorm_gru":
        from . import layernorm

        return layernorm.run_with(
            "torch", spec, x, batch_sizes, state, weights, reverse=reverse, noise=noise
        )
    return run_with("torch", spec, x, batch_sizes, state, weights, reverse=reverse, noise=noise)
