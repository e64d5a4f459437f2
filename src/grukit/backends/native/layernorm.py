"""The LayerNormGRU serial loops in C++ (``layernorm_gru.cpp``), as ``layernorm_loops.LNLoops``.

CPU, float32/float64. Shapes and equations: ``grukit.backends.layernorm_loops``.
"""

from __future__ import annotations

from typing import Protocol, cast

from torch import Tensor

from .. import fused
from ..layernorm_loops import LNRows
from . import NATIVE_LOOPS, build

__all__ = ["NATIVE_LN_LOOPS", "NativeLNLoops"]


class LNExtension(Protocol):
    """The compiled module's LayerNormGRU functions (bound in ``gru.cpp``)."""

    def ln_gru_forward(
        self, a_i: Tensor, h0: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
        ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
        batch_sizes: Tensor, reverse: bool, reset_after: bool, save: bool, copy: bool, /,
    ) -> list[Tensor]: ...  # fmt: skip  # [out, h_n, gates, xhat_i, rstd_i, xhat, rstd]

    def ln_gru_backward(
        self, dout: Tensor, dh_n: Tensor, gates: Tensor, xhat_i: Tensor, rstd_i: Tensor,
        xhat: Tensor, rstd: Tensor, hprev: Tensor, w_hh: Tensor, b_hh: Tensor | None,
        ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
        batch_sizes: Tensor, reverse: bool, reset_after: bool, /,
    ) -> list[Tensor]: ...  # fmt: skip  # [da_i, da, dh0, sums]


def extension() -> LNExtension:
    """The compiled kernel; RuntimeError if it cannot be built."""
    ext = build.load()
    if ext is None:
        raise RuntimeError(f"native backend: the C++ kernel is not available: {build.failure()}")
    return cast(LNExtension, ext)  # built from gru.cpp + layernorm_gru.cpp


class NativeLNLoops:
    """``LNLoops`` in C++ (CPU, float32/float64): both normalisations row by row inside the
    loops, a_i overwritten with x̂_i when saving."""

    def empty(self, like: Tensor, shape: tuple[int, ...]) -> Tensor:
        return NATIVE_LOOPS.empty(like, shape)  # the kernel's block cache (cache.h)

    def forward(
        self, a_i: Tensor, h0: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
        ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
        batch_sizes: Tensor, reverse: bool, reset_after: bool, save: bool,
    ) -> LNRows:  # fmt: skip
        copy = fused.copies_operand(w_hh, a_i.shape[0])  # for at::mm, where the kernel won't pack
        out, h_n, gates, xhat_i, rstd_i, xhat, rstd = extension().ln_gru_forward(
            a_i, h0, w_hh, b_ih, b_hh, ln_ih, ln_hh, h_mask, keep, batch_sizes, reverse,
            reset_after, save, copy,
        )  # fmt: skip
        return out, h_n, gates, xhat_i, rstd_i, xhat, rstd

    def backward(
        self, dout: Tensor, dh_n: Tensor, gates: Tensor, xhat_i: Tensor, rstd_i: Tensor,
        xhat: Tensor, rstd: Tensor, hprev: Tensor, w_hh: Tensor, b_hh: Tensor | None,
        ln_ih: Tensor, ln_hh: Tensor, h_mask: Tensor | None, keep: Tensor | None,
        batch_sizes: Tensor, reverse: bool, reset_after: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        da_i, da, dh0, sums = extension().ln_gru_backward(
            dout, dh_n, gates, xhat_i, rstd_i, xhat, rstd, hprev, w_hh, b_hh, ln_ih, ln_hh,
            h_mask, keep, batch_sizes, reverse, reset_after,
        )  # fmt: skip
        return da_i, da, dh0, sums


NATIVE_LN_LOOPS = NativeLNLoops()
