"""The "native" backend: the fused GRU's serial loops compiled for the CPU (``gru.cpp``).

Same autograd.Function as ``grukit.backends.fused`` (input GEMM for all steps, hand-written
BPTT, weight gradients as large GEMMs); only the per-step loops are C++: one GEMM plus
vectorised gate arithmetic per step. Built on first use (``build.py``). Also provides
``gru_cell``, one GRUCell step in one C++ call, for streaming inference.
Contract and shapes: ``grukit.backends.spec``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol, cast

import torch
from torch import Tensor

from ... import _typed_torch
from ...onehot import OneHot
from .. import fused
from ..spec import CellSpec, Noise, State, Weights
from . import build

name = "native"

#: Takes ``OneHot`` input (first layer) as indices: gathers W_ih's columns.
accepts_onehot = True

__all__ = [
    "accepts_onehot",
    "available",
    "extension",
    "gru_cell",
    "gru_step",
    "name",
    "NativeLoops",
    "run",
    "streams",
    "supports",
]


class Extension(Protocol):
    """The compiled module's functions (``gru.cpp``) that this backend calls."""

    def gru_forward(
        self, gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, batch_sizes: Tensor,
        reverse: bool, reset_after: bool, save: bool, copy: bool,
        h_mask: Tensor | None = None, keep: Tensor | None = None, /,
    ) -> list[Tensor]: ...  # fmt: skip  # [out, gates, hn, h_n]

    def gru_backward(
        self, dout: Tensor, dh_n: Tensor, gates: Tensor, hn: Tensor, hprev: Tensor,
        w_hh: Tensor, batch_sizes: Tensor, reverse: bool, reset_after: bool,
        h_mask: Tensor | None = None, keep: Tensor | None = None, /,
    ) -> list[Tensor]: ...  # fmt: skip  # [dgi, dghn, dh0]

    def gru_forward_both(
        self, f: list[Tensor | None], b: list[Tensor | None], batch_sizes: Tensor,
        reset_after: bool, save: bool, copy: bool, /,
    ) -> list[list[Tensor]]: ...  # fmt: skip  # both directions' gru_forward (both.py)

    def gru_backward_both(
        self, f: list[Tensor | None], b: list[Tensor | None], batch_sizes: Tensor,
        reset_after: bool, /,
    ) -> list[list[Tensor]]: ...  # fmt: skip  # both directions' gru_backward (both.py)

    def gru_cell(
        self, x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
        b_hh: Tensor | None, reset_after: bool, /,
    ) -> Tensor: ...  # fmt: skip

    def gru_step(
        self, x: Tensor, h0: Tensor | None, weights: list[Tensor], hidden_size: int,
        num_layers: int, bidirectional: bool, bias: bool, reset_after: bool,
        batch_first: bool, /,
    ) -> tuple[Tensor, Tensor]: ...  # fmt: skip  # (output, h_n) (step.cpp)

    def cached_empty(self, like: Tensor, sizes: list[int], /) -> Tensor: ...  # (cache.h)

    cache_min_bytes: int  # the cache's smallest block (cache.h kCacheMinBytes)

    def cache_stats(self) -> list[int]: ...  # [cached bytes, blocks, bytes in use, cap]

    def cache_clear(self) -> None: ...

    def cache_set_limit(self, bytes: int, /) -> int: ...  # the old cap

    def mingru_forward(self, gi: Tensor, h0: Tensor, /) -> Tensor: ...  # out (mingru.cpp)

    def mingru_backward(
        self, dout: Tensor, gi: Tensor, h0: Tensor, out: Tensor, /
    ) -> list[Tensor]: ...  # [dgi, dh0]


def extension() -> Extension:
    """The compiled kernel; RuntimeError if it cannot be built (``available()`` is False)."""
    ext = build.load()
    if ext is None:
        raise RuntimeError(f"native backend: the C++ kernel is not available: {build.failure()}")
    return cast(Extension, ext)  # a module built from gru.cpp, whose bindings Extension lists


class NativeLoops:
    """``grukit.backends.fused.Loops`` in C++ (CPU, float32/float64)."""

    def empty(self, like: Tensor, shape: tuple[int, ...]) -> Tensor:
        """From the kernel's block cache (``cache.h``): a large tensor freed by an earlier
        call is reused instead of mapped afresh (a page fault per 4 KiB on first touch)."""
        if like.device.type == "cpu":
            ext = extension()
            if math.prod(shape) * like.element_size() >= ext.cache_min_bytes:
                return ext.cached_empty(like, list(shape))
        return like.new_empty(shape)  # below the cache's smallest block: torch's allocator

    def forward(
        self, gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None,
        batch_sizes: Tensor, reverse: bool, reset_after: bool, save: bool,
        h_mask: Tensor | None = None, keep: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
        ext = extension()
        copy = fused.copies_operand(w_hh, gi.shape[0])  # for at::mm, where the kernel won't pack
        out, gates, hn, h_n = ext.gru_forward(
            gi, h0, w_hh, b_hh, batch_sizes, reverse, reset_after, save, copy, h_mask, keep
        )
        return out, gates, hn, h_n

    def backward(
        self, dout: Tensor, dh_n: Tensor, gates: Tensor, hn: Tensor, hprev: Tensor,
        w_hh: Tensor, batch_sizes: Tensor, reverse: bool, reset_after: bool,
        h_mask: Tensor | None = None, keep: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        ext = extension()
        dgi, dghn, dh0 = ext.gru_backward(
            dout, dh_n, gates, hn, hprev, w_hh, batch_sizes, reverse, reset_after, h_mask, keep
        )
        return dgi, dghn, dh0


NATIVE_LOOPS = NativeLoops()
fused.LOOPS[name] = NATIVE_LOOPS  # the operators name their loops (grukit.backends.ops)


@_typed_torch.assume_constant_result  # torch.compile runs it once while tracing
def available() -> bool:
    """Whether the kernel is built (or can be built now); builds it on first call."""
    return build.load() is not None


def supports(spec: CellSpec, x: Tensor) -> bool:
    if spec.kind == "layernorm_gru":  # grukit.backends.layernorm with native/layernorm_gru.cpp
        return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    return (
        spec.kind == "gru" and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    )


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
    """One direction of one GRU layer through ``fused.GRUFunction`` (eager) or the operator
    ``grukit::gru`` (traced) with the C++ loops (a LayerNormGRU's: ``layernorm.run_with``)."""
    if spec.kind == "layernorm_gru":
        from .. import layernorm

        return layernorm.run_with(
            name, spec, x, batch_sizes, state, weights, reverse=reverse, noise=noise
        )
    return fused.run_with(name, spec, x, batch_sizes, state, weights, reverse=reverse, noise=noise)


def streams(tensors: Iterable[object]) -> bool:
    """Whether a one-step call may take the no-autograd kernel (``gru_cell``, ``gru_step``):
    no tensor among ``tensors`` needs a gradient (under grad mode), CPU autocast is off,
    nothing traces the call, and the kernel is built. The callers (``GRUCell`` and the
    layers' streaming step) check their own cheap conditions first."""
    if torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors):
        return False
    return not (torch.is_autocast_enabled("cpu") or fused.traced() or not available())


def gru_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    *,
    reset_after: bool,
) -> Tensor:
    """One GRU step in one C++ call, no autograd: x (N, I), h (N, H) → h' (N, H).

    Same function as ``grukit.functional.gru_cell``; the caller validates shapes.
    """
    return extension().gru_cell(x, h, w_ih, w_hh, b_ih, b_hh, reset_after)


def gru_step(
    x: Tensor,
    h0: Tensor | None,
    weights: list[Tensor],
    *,
    hidden_size: int,
    num_layers: int,
    bidirectional: bool,
    bias: bool,
    reset_after: bool,
    batch_first: bool,
) -> tuple[Tensor, Tensor]:
    """A GRU layer's one-step call in one C++ call, every layer and direction, no autograd:
    x (1, N, I), or (N, 1, I) batch_first; h0 (L·D, N, H) or None (zeros); ``weights`` per
    layer and direction ``[w_ih, w_hh(, b_ih, b_hh)]`` (torch.nn.GRU's ``_all_weights``
    order and shapes) → (output (1, N, D·H) or (N, 1, D·H), h_n (L·D, N, H)), new tensors.

    Each step is ``grukit.functional.gru_cell``; RuntimeError for shapes, dtypes or devices
    that don't match (the caller validates for its users' errors).
    """
    return extension().gru_step(
        x, h0, weights, hidden_size, num_layers, bidirectional, bias, reset_after, batch_first
    )
