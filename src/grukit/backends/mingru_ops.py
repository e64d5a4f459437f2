"""MinGRU's time loop on the CPU as PyTorch operators (``torch.library``, namespace ``grukit``):

    grukit::mingru_scan(gi, h0) -> out
    grukit::mingru_scan_backward(dout, gi, h0, out) -> (dgi, dh0)

Shapes (T time, N batch, H hidden):
    gi    (T, N, 2H) input projections x_t W_ihᵀ + b_ih, columns [k; pre-h̃]
    h0    (N, H)
    out   (T, N, H): h_1 … h_T

The math is ``grukit.functional.mingru_coefficients``'s linear recurrence,
h_t = a_t ⊙ h_{t−1} + b_t with a = σ(−k), b = σ(k) ⊙ g(pre); the kernels are C++
(``native/mingru.cpp``), one element-wise pass over time per direction, in gi's dtype.
The backward is the reverse recurrence

    ĝ_t = dout_t + a_{t+1} ⊙ ĝ_{t+1},   dL/db_t = ĝ_t,   dL/da_t = ĝ_t ⊙ h_{t−1},
    dk_t = ĝ_t ⊙ a_t z_t (g(pre_t) − h_{t−1}),   dpre_t = ĝ_t ⊙ z_t g'(pre_t),
    dh_0 = a_1 ⊙ ĝ_1,

and the GEMM that made gi is differentiated by autograd outside the operator. With
``create_graph`` the backward differentiates ``grukit.functional.mingru_scan`` instead (torch
operations), so double backward is exact. Both operators have fake kernels (shapes only)
for ``torch.compile``. Under ``torch.func`` transforms (no batching or forward-mode rules
here) ``runs`` is False and the layer calls ``grukit.functional.mingru_scan``, as grukit's
GRU falls back to its reference loop (``grukit.backends.under_torch_func``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import functional as F
from . import native, under_torch_func

__all__ = ["mingru_scan", "mingru_scan_backward", "runs"]


def runs(gi: Tensor, h0: Tensor) -> bool:
    """Whether the operator computes this call: CPU tensors of one dtype, float32 or float64,
    the native kernel built, no ``torch.func`` transform active (else
    ``grukit.functional.mingru_scan`` does)."""
    return (
        not under_torch_func()
        and gi.device.type == "cpu"
        and gi.dtype in (torch.float32, torch.float64)
        and h0.dtype == gi.dtype
        and native.available()
    )


@torch.library.custom_op("grukit::mingru_scan", mutates_args=(), device_types="cpu")
def mingru_scan(gi: Tensor, h0: Tensor) -> Tensor:
    """h_1 … h_T (T, N, H) of the minGRU recurrence from gi (T, N, 2H) and h0 (N, H)."""
    return native.extension().mingru_forward(gi, h0)


@mingru_scan.register_fake
def _mingru_scan_fake(gi: Tensor, h0: Tensor) -> Tensor:
    return gi.new_empty(gi.shape[0], gi.shape[1], gi.shape[2] // 2)  # (T, N, H)


@torch.library.custom_op("grukit::mingru_scan_backward", mutates_args=(), device_types="cpu")
def mingru_scan_backward(
    dout: Tensor, gi: Tensor, h0: Tensor, out: Tensor
) -> tuple[Tensor, Tensor]:
    """The reverse recurrence: dout (T, N, H), gi (T, N, 2H), h0 (N, H), out (T, N, H) →
    dgi (T, N, 2H), dh0 (N, H)."""
    dgi, dh0 = native.extension().mingru_backward(dout, gi, h0, out)
    return dgi, dh0


@mingru_scan_backward.register_fake
def _mingru_scan_backward_fake(
    dout: Tensor, gi: Tensor, h0: Tensor, out: Tensor
) -> tuple[Tensor, Tensor]:
    return gi.new_empty(gi.shape), h0.new_empty(h0.shape)


def _setup_context(ctx: Any, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
    gi, h0 = inputs
    ctx.save_for_backward(gi, h0, output)


def _backward(ctx: Any, dout: Tensor) -> tuple[Tensor | None, Tensor | None]:
    gi, h0, out = ctx.saved_tensors
    needs = ctx.needs_input_grad[:2]
    if torch.is_grad_enabled():  # create_graph: a backward that is itself differentiable
        wanted = [t for t, need in zip((gi, h0), needs, strict=True) if need]
        grads = iter(torch.autograd.grad(F.mingru_scan(gi, h0), wanted, dout, create_graph=True))
        return tuple(next(grads) if need else None for need in needs)  # type: ignore[return-value]
    dgi, dh0 = torch.ops.grukit.mingru_scan_backward(dout.contiguous(), gi, h0, out)
    return (dgi if needs[0] else None), (dh0 if needs[1] else None)


mingru_scan.register_autograd(_backward, setup_context=_setup_context)
