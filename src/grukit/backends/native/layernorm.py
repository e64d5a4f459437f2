"""The LayerNormGRU serial loops in C++ (``layernorm_gru.cpp``), as ``layernorm_loops.LNLoops``.

CPU, float32/float64. Shapes and equations: ``grukit.backends.layernorm_loops``.
"""

from __future__ import annotations

from typing import Protocol, cast

from torch import Tensor

from .. import fused
from . import build

__all__ = ["NATIVE_LN_LOOPS", "NativeLNLoops"]


class LNExtension(Protocol):
    """The compiled module's LayerNormGRU functions (bound in ``gru.cpp``)."""

    def ln_gru_forward(
        self, gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, ln_hh: Tensor,
        h_mask: Tensor | None, keep: Tensor | None, batch_sizes: Tensor, reverse: bool,
        reset_after: bool, save: bool, copy: bool, /,
    ) -> list[Tensor]: ...  # fmt: skip  # [out, gates, xhat, rstd, h_n]

    def ln_gru_backward(
        self, dout: Tensor, dh_n: Tensor, gates: Tensor, xhat: Tensor, rstd: Tensor,
        hprev: Tensor, w_hh: Tensor, b_hh: Tensor | None, ln_hh: Tensor,
        h_mask: Tensor | None, keep: Tensor | None, batch_sizes: Tensor, reverse: bool,
        reset_after: bool, /,
    ) -> list[Tensor]: ...  # fmt: skip  # [dgi, dghn, da, dh0]


def extension() -> LNExtension:
    """The compiled kernel; RuntimeError if it cannot be built."""
    ext = build.load()
    if ext is None:
        raise RuntimeError(f"native backend: the C++ kernel is not available: {build.failure()}")
    return cast(LNExtension, ext)  # built from gru.cpp + layernorm_gru.cpp


class NativeLNLoops:
    """``LNLoops`` in C++ (CPU, float32/float64)."""

    def forward(
        self, gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, ln_hh: Tensor,
        h_mask: Tensor | None, keep: Tensor | None, batch_sizes: Tensor, reverse: bool,
        reset_after: bool, save: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        copy = fused.copies_operand(w_hh, gi.shape[0])  # for at::mm, where the kernel won't pack
        out, gates, xhat, rstd, h_n = extension().ln_gru_forward(
            gi, h0, w_hh, b_hh, ln_hh, h_mask, keep, batch_sizes, reverse, reset_after, save, copy
        )
        return out, gates, xhat, rstd, h_n

    def backward(
        self, dout: Tensor, dh_n: Tensor, gates: Tensor, xhat: Tensor, rstd: Tensor,
        hprev: Tensor, w_hh: Tensor, b_hh: Tensor | None, ln_hh: Tensor,
        h_mask: Tensor | None, keep: Tensor | None, batch_sizes: Tensor, reverse: bool,
        reset_after: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        dgi, dghn, da, dh0 = extension().ln_gru_backward(
            dout, dh_n, gates, xhat, rstd, hprev, w_hh, b_hh, ln_hh, h_mask, keep, batch_sizes,
            reverse, reset_after,
        )  # fmt: skip
        return dgi, dghn, da, dh0


NATIVE_LN_LOOPS = NativeLNLoops()
