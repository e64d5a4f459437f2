"""The GEMM-only lower bound: the matrix products a GRU layer cannot avoid, alone.

No gates, no nonlinearities, no autograd: what is left when everything but the
GEMMs costs nothing. Every product writes into a preallocated buffer (``out=``), and
the hidden weight is pre-transposed, so the bound is as tight as torch's BLAS allows.

Shapes: T time, N batch, I input size, H hidden size, G = 3H gate rows.

Inference (forward):
    gi = X W_ihᵀ                       (T·N, I) × (I, G)        one big GEMM
    gh_t = h_{t-1} W_hhᵀ  for each t     (N, H) × (H, G)          T small GEMMs
Training (forward + backward through time):
    the forward GEMMs, then
    dh_{t-1} = dgh_t W_hh  for each t    (N, G) × (G, H)          T small GEMMs
    dW_ih = dgiᵀ X                      (G, T·N) × (T·N, I)
    dW_hh = dghᵀ H_prev                 (G, T·N) × (T·N, H)
    dX = dgi W_ih                       (T·N, G) × (G, I)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["GemmBound", "GemmForward", "GemmTraining"]


@dataclass(frozen=True)
class GemmForward:
    """Results of the forward GEMMs: gi (T, N, G), gh (T, N, G)."""

    gi: Tensor
    gh: Tensor


@dataclass(frozen=True)
class GemmTraining:
    """Results of a training step's GEMMs: the forward ones, then dh (T, N, H) (row t is
    dgh_t W_hh), dw_ih (G, I), dw_hh (G, H), dx (T, N, I)."""

    forward: GemmForward
    dh: Tensor
    dw_ih: Tensor
    dw_hh: Tensor
    dx: Tensor


class GemmBound:
    """The GEMMs of one GRU layer on fixed operands, with preallocated outputs.

    Args:
        x (T, N, I): the input sequence.
        h_prev (T, N, H): the state entering each step (h_{t-1}); the bound does not
            compute states, it multiplies these.
        w_ih (G, I), w_hh (G, H): torch's weights (G = 3H).
        dgi (T, N, G), dgh (T, N, G): gate gradients, the operands of the backward
            GEMMs (only ``training`` uses them).
    """

    def __init__(
        self, x: Tensor, h_prev: Tensor, w_ih: Tensor, w_hh: Tensor, dgi: Tensor, dgh: Tensor
    ) -> None:
        T, N, I = x.shape
        G, H = w_hh.shape
        self.T, self.N = T, N
        self.x2 = x.reshape(T * N, I)  # (T·N, I)
        self.h_prev = h_prev.contiguous()  # (T, N, H)
        self.h2 = self.h_prev.reshape(T * N, H)  # (T·N, H)
        self.w_ih = w_ih.detach().contiguous()  # (G, I)
        self.w_hh = w_hh.detach().contiguous()  # (G, H)
        self.w_ih_t = self.w_ih.t().contiguous()  # (I, G)
        self.w_hh_t = self.w_hh.t().contiguous()  # (H, G)
        self.dgi2 = dgi.reshape(T * N, G)  # (T·N, G)
        self.dgh = dgh.contiguous()  # (T, N, G)
        self.dgh2 = self.dgh.reshape(T * N, G)  # (T·N, G)
        self.gi = x.new_empty(T * N, G)  # (T·N, G)
        self.gh = x.new_empty(T, N, G)
        self.dh = x.new_empty(T, N, H)
        self.dw_ih = x.new_empty(G, I)
        self.dw_hh = x.new_empty(G, H)
        self.dx = x.new_empty(T * N, I)

    @torch.no_grad()
    def inference(self) -> GemmForward:
        """One input GEMM and T hidden GEMMs."""
        torch.mm(self.x2, self.w_ih_t, out=self.gi)  # (T·N, G)
        for t in range(self.T):
            torch.mm(self.h_prev[t], self.w_hh_t, out=self.gh[t])  # (N, G)
        return GemmForward(self.gi.view(self.T, self.N, -1), self.gh)

    @torch.no_grad()
    def training(self) -> GemmTraining:
        """The forward GEMMs, T hidden-gradient GEMMs and three big weight/input GEMMs."""
        fwd = self.inference()
        for t in range(self.T - 1, -1, -1):
            torch.mm(self.dgh[t], self.w_hh, out=self.dh[t])  # (N, H)
        torch.mm(self.dgi2.t(), self.x2, out=self.dw_ih)  # (G, I)
        torch.mm(self.dgh2.t(), self.h2, out=self.dw_hh)  # (G, H)
        torch.mm(self.dgi2, self.w_ih, out=self.dx)  # (T·N, I)
        return GemmTraining(fwd, self.dh, self.dw_ih, self.dw_hh, self.dx.view(self.T, self.N, -1))
