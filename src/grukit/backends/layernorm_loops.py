"""The serial loops of the LayerNormGRU fast path (``grukit.backends.layernorm``), torch ops.

Shapes (S rows of all steps, T·N padded or sum(batch_sizes) packed; N batch; H hidden).
Per step t (rows b < N_t still running; m the recurrent dropout mask, k zoneout's keep):

    hm   = h ⊙ m                                      (N_t, H) what W_hh multiplies
    reset_after:
        a    = hm W_hhᵀ                               (N_t, 3H) one GEMM
        x̂    = (a − μ) · rstd, μ, σ² per row over 3H  gh = x̂ ⊙ γ_hh + b_hh
        r, z = σ(gi_r + gh_r), σ(gi_z + gh_z);  n = tanh(gi_n + r ⊙ gh_n)
    reset_after=False:
        a_rz = hm W_rzᵀ (N_t, 2H), normalised over 2H (rstd column 0), gains γ_hh[:2H]
        a_n  = (r ⊙ hm) W_hnᵀ (N_t, H), normalised over H (rstd column 1), gains γ_hh[2H:]
        n    = tanh(gi_n + x̂_n ⊙ γ_n + b_n)
    h'   = n + z' ⊙ (h − n),  z' = z + k (1 − z)     (zoneout; z' = z without it)

Saved per row for the backward: gates [r, z, n] (S, 3H), x̂_i (S, 3H), rstd_i (S, 1),
x̂ (S, 3H) and rstd (S, 2).

Backward per step, d = dh' + dout_t:
    da_n = d (1 − z')(1 − n²),  da_z = d (h − n)(1 − k) z (1 − z)
    reset_after:  da_r = da_n gh_n r (1 − r);  dgi = [da_r, da_z, da_n];
                  dgh = [da_r, da_z, da_n r];  da = LN'(dgh ⊙ γ_hh);  dhm = da W_hh
    otherwise:    da_n' = LN'(da_n ⊙ γ_n);  drh = da_n' W_hn;  da_r = drh hm r (1 − r);
                  dgi = dgh = [da_r, da_z, da_n];  da_rz' = LN'([da_r, da_z] ⊙ γ_rz);
                  dhm = drh r + da_rz' W_rz;  da = [da_rz', da_n']
    dh = d z' + dhm ⊙ m
with LN'(g) = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)) per row (the normalisation's backward).

The input side is part of both loops: the forward takes the raw projections a_i = x W_ihᵀ
(S, 3H) and forms gi = x̂_i ⊙ γ_ih + b_ih, x̂_i = (a_i − μ_i) · rstd_i over 3H (the native loops
row by row, writing x̂_i over a_i when saving); the backward returns the gradient of a_i,
da_i = LN'(dgi ⊙ γ_ih) with x̂_i, rstd_i, and the gains' and biases' column sums over all rows,
sums (4, 3H) = [Σ dgi ⊙ x̂_i, Σ dgi, Σ dgh ⊙ x̂, Σ dgh] for γ_ih, b_ih, γ_hh, b_hh.
Returned: da_i (S, 3H), da (S, 3H) the gradient of the raw recurrent products (for W_hh's
gradient), dh0 (N, H), sums (4, 3H).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from ..functional import LN_EPS
from .fused import _steps, recurrent_operand

__all__ = ["LNLoops", "LNRows", "TorchLNLoops", "TORCH_LN_LOOPS", "norm", "norm_backward"]


#: The forward's result: out (S, H), h_n (N, H), then (S rows with ``save``, else 0) gates
#: (3H), xhat_i (3H), rstd_i (1), xhat (3H), rstd (2).
LNRows = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]


class LNLoops(Protocol):
    """The two serial loops (see the module docstring)."""

    def forward(
        self, a_i: Tensor, h0: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
        ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
        batch_sizes: Tensor, reverse: bool, reset_after: bool, save: bool,
    ) -> LNRows: ...  # fmt: skip

    # a_i (S, 3H) is the loops' own: with save it may come back as xhat_i, overwritten.

    def backward(
        self, dout: Tensor, dh_n: Tensor, gates: Tensor, xhat_i: Tensor, rstd_i: Tensor,
        xhat: Tensor, rstd: Tensor, hprev: Tensor, w_hh: Tensor, b_hh: Tensor | None,
        ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
        batch_sizes: Tensor, reverse: bool, reset_after: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]: ...  # fmt: skip

    # -> da_i (S, 3H), da (S, 3H), dh0 (N, H), sums (4, 3H)

    def empty(self, like: Tensor, shape: tuple[int, ...]) -> Tensor:
        """As ``fused.Loops.empty``: a tensor for a large intermediate (a_i, hprev)."""
        ...


def norm(a: Tensor) -> tuple[Tensor, Tensor]:
    """a (R, K) → x̂ = (a − μ) · rstd (R, K), rstd = 1/sqrt(σ² + ε) (R, 1); biased σ²."""
    mu = a.mean(-1, keepdim=True)  # (R, 1)
    c = a - mu
    rstd = torch.rsqrt((c * c).mean(-1, keepdim=True) + LN_EPS)  # (R, 1)
    return c * rstd, rstd


def norm_backward(g: Tensor, xhat: Tensor, rstd: Tensor) -> Tensor:
    """The gradient of the raw rows a (R, K) from g = dL/dx̂ (R, K): rstd (R, 1) ·
    (g − mean(g) − x̂ · mean(g ⊙ x̂)), means over each row's K features."""
    mg = g.mean(-1, keepdim=True)  # (R, 1)
    mgx = (g * xhat).mean(-1, keepdim=True)  # (R, 1)
    return rstd * (g - mg - xhat * mgx)


class TorchLNLoops:
    """``LNLoops`` in plain torch ops (any device): the input side over all S rows at once
    (torch's normalisation kernels), then the recurrent loop."""

    def empty(self, like: Tensor, shape: tuple[int, ...]) -> Tensor:
        return like.new_empty(shape)

    def forward(
        self, a_i: Tensor, h0: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
        ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
        batch_sizes: Tensor, reverse: bool, reset_after: bool, save: bool,
    ) -> LNRows:  # fmt: skip
        H = h0.shape[1]
        # torch's fused normalisation kernel, without gains: x̂_i (S, 3H), rstd_i (S, 1).
        xhat_i, _, rstd_i = torch.native_layer_norm(a_i, (3 * H,), None, None, LN_EPS)
        gi = xhat_i * ln_ih if b_ih is None else torch.addcmul(b_ih, xhat_i, ln_ih)  # (S, 3H)
        out, gates, xhat, rstd, h_n = self.recurrent_forward(
            gi, h0, w_hh, b_hh, ln_hh, h_mask, keep, batch_sizes, reverse, reset_after, save
        )
        if not save:
            xhat_i, rstd_i = xhat_i[:0], rstd_i[:0]
        return out, h_n, gates, xhat_i, rstd_i, xhat, rstd

    def recurrent_forward(
        self, gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, ln_hh: Tensor,
        h_mask: Tensor | None, keep: Tensor | None, batch_sizes: Tensor, reverse: bool,
        reset_after: bool, save: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        """gi (S, 3H) → out (S, H), gates, xhat (S or 0, 3H), rstd (S or 0, 2), h_n (N, H)."""
        S, N, H = gi.shape[0], h0.shape[0], h0.shape[1]
        w_hh_t = recurrent_operand(w_hh, S)  # (H, 3H)
        out = gi.new_empty(S, H)
        rows = S if save else 0
        gates, xhat, rstd = (
            gi.new_empty(rows, 3 * H),
            gi.new_empty(rows, 3 * H),
            gi.new_zeros(rows, 2),
        )
        w_rz_t, w_n_t = w_hh_t[:, : 2 * H], w_hh_t[:, 2 * H :]  # (H, 2H), (H, H)
        b = gi.new_zeros(3 * H) if b_hh is None else b_hh  # (3H,)
        h = h0
        for off, n in _steps(batch_sizes, reverse):
            g = gi[off : off + n]  # (N_t, 3H)
            hp = h[:n]  # (N_t, H)
            hm = hp if h_mask is None else hp * h_mask[:n]
            if reset_after:
                xh, rs = norm(hm @ w_hh_t)  # (N_t, 3H), (N_t, 1)
                gh = torch.addcmul(b, xh, ln_hh)  # (N_t, 3H)
                rz = torch.sigmoid(g[:, : 2 * H] + gh[:, : 2 * H])  # (N_t, 2H)
                r, z = rz[:, :H], rz[:, H:]
                new = torch.tanh(torch.addcmul(g[:, 2 * H :], r, gh[:, 2 * H :]))
                rs2 = torch.zeros_like(rs)
            else:
                xh1, rs = norm(hm @ w_rz_t)  # (N_t, 2H), (N_t, 1)
                rz = torch.sigmoid(g[:, : 2 * H] + torch.addcmul(b[: 2 * H], xh1, ln_hh[: 2 * H]))
                r, z = rz[:, :H], rz[:, H:]
                xh2, rs2 = norm((r * hm) @ w_n_t)  # (N_t, H), (N_t, 1)
                new = torch.tanh(g[:, 2 * H :] + torch.addcmul(b[2 * H :], xh2, ln_hh[2 * H :]))
                xh = torch.cat((xh1, xh2), 1)  # (N_t, 3H)
            h_t = torch.lerp(new, hp, z)  # n + z ⊙ (h − n)
            if keep is not None:
                h_t = torch.lerp(h_t, hp, keep[off : off + n])  # zoneout
            if save:
                gates[off : off + n, : 2 * H] = rz
                gates[off : off + n, 2 * H :] = new
                xhat[off : off + n] = xh
                rstd[off : off + n] = torch.cat((rs, rs2), 1)
            out[off : off + n] = h_t
            h = h_t if n == N else torch.cat((h_t, h[n:]))  # rows past N_t keep their state
        return out, gates, xhat, rstd, h

    def backward(
        self, dout: Tensor, dh_n: Tensor, gates: Tensor, xhat_i: Tensor, rstd_i: Tensor,
        xhat: Tensor, rstd: Tensor, hprev: Tensor, w_hh: Tensor, b_hh: Tensor | None,
        ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
        batch_sizes: Tensor, reverse: bool, reset_after: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        H = dh_n.shape[1]
        dgi, dghn, da, dh0 = self.recurrent_backward(
            dout, dh_n, gates, xhat, rstd, hprev, w_hh, b_hh, ln_hh, h_mask, keep, batch_sizes,
            reverse, reset_after,
        )  # fmt: skip
        # Σ dy ⊙ x̂, Σ dy and the normalisation's backward over all S rows in one torch kernel:
        # ``native_layer_norm_backward`` given x̂ itself as the input (mean 0, rstd 1).
        S = dgi.shape[0]
        zero, one = dgi.new_zeros(S, 1), dgi.new_ones(S, 1)
        dgh = torch.cat((dgi[:, : 2 * H], dghn), 1) if reset_after else dgi  # (S, 3H)
        _, dln_hh, db_hh = torch.ops.aten.native_layer_norm_backward(
            dgh, xhat, (3 * H,), zero, one, ln_hh, ln_hh, [False, True, True]
        )
        dxhat, dln_ih, db_ih = torch.ops.aten.native_layer_norm_backward(
            dgi, xhat_i, (3 * H,), zero, one, ln_ih, ln_ih, [True, True, True]
        )
        da_i = dxhat * rstd_i  # (S, 3H) the gradient of a_i
        return da_i, da, dh0, torch.stack((dln_ih, db_ih, dln_hh, db_hh))  # (4, 3H)

    def recurrent_backward(
        self, dout: Tensor, dh_n: Tensor, gates: Tensor, xhat: Tensor, rstd: Tensor,
        hprev: Tensor, w_hh: Tensor, b_hh: Tensor | None, ln_hh: Tensor,
        h_mask: Tensor | None, keep: Tensor | None, batch_sizes: Tensor, reverse: bool,
        reset_after: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        """→ dgi (S, 3H), dghn (S, H) dgh's n columns (reset_after; else dgi's), da (S, 3H),
        dh0 (N, H)."""
        S, N, H = dout.shape[0], dh_n.shape[0], dh_n.shape[1]
        dgi = dout.new_empty(S, 3 * H)
        dghn = dout.new_empty(S, H) if reset_after else dgi[:, 2 * H :]
        da = dout.new_empty(S, 3 * H)
        w_rz, w_n = w_hh[: 2 * H], w_hh[2 * H :]  # (2H, H), (H, H)
        b_n = None if b_hh is None else b_hh[2 * H :]
        dh = dh_n
        for off, n in reversed(_steps(batch_sizes, reverse)):
            d = dh[:n] + dout[off : off + n]  # dL/dh' (N_t, H)
            g = gates[off : off + n]  # (N_t, 3H)
            r, z, nn = g[:, :H], g[:, H : 2 * H], g[:, 2 * H :]
            hp = hprev[off : off + n]  # (N_t, H)
            xh, rs = xhat[off : off + n], rstd[off : off + n]  # (N_t, 3H), (N_t, 2)
            dz = d * (hp - nn)
            if keep is None:
                zk = z
            else:
                k = keep[off : off + n]
                zk, dz = torch.lerp(z, torch.ones_like(z), k), dz * (1 - k)  # z', (1 − k) dz'
            da_n = d * (1 - zk) * (1 - nn * nn)  # through h' = (1−z')n + z'h, n = tanh(a_n)
            da_z = dz * z * (1 - z)
            hm = hp if h_mask is None else hp * h_mask[:n]
            if reset_after:
                gh_n = xh[:, 2 * H :] * ln_hh[2 * H :]  # (N_t, H)
                gh_n = gh_n if b_n is None else gh_n + b_n
                da_r = da_n * gh_n * r * (1 - r)
                dgi[off : off + n] = torch.cat((da_r, da_z, da_n), 1)
                dghn[off : off + n] = da_n * r
                dgh = torch.cat((da_r, da_z, da_n * r), 1)  # (N_t, 3H)
                da_t = norm_backward(dgh * ln_hh, xh, rs[:, :1])  # (N_t, 3H)
                dhm = da_t @ w_hh  # (N_t, H)
            else:
                dan = norm_backward(da_n * ln_hh[2 * H :], xh[:, 2 * H :], rs[:, 1:])  # (N_t, H)
                drh = dan @ w_n  # dL/d(r ⊙ hm) (N_t, H)
                da_r = drh * hm * r * (1 - r)
                dgi[off : off + n] = torch.cat((da_r, da_z, da_n), 1)
                drz = norm_backward(
                    torch.cat((da_r, da_z), 1) * ln_hh[: 2 * H], xh[:, : 2 * H], rs[:, :1]
                )  # (N_t, 2H)
                dhm = torch.addmm(drh * r, drz, w_rz)  # (N_t, H)
                da_t = torch.cat((drz, dan), 1)  # (N_t, 3H)
            da[off : off + n] = da_t
            dhp = torch.addcmul(d * zk, dhm, h_mask[:n]) if h_mask is not None else d * zk + dhm
            dh = dhp if n == N else torch.cat((dhp, dh[n:]))
        return dgi, dghn, da, dh


TORCH_LN_LOOPS = TorchLNLoops()
