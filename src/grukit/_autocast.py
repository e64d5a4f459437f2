"""Layers and cells under ``torch.autocast``: the recurrence runs in the weights' dtype.

``torch.nn.GRU`` and ``GRUCell`` under CPU autocast return their input's dtype (float32 in,
float32 out; bfloat16 in, bfloat16 out). grukit does the same, computing in the weights'
dtype with autocast off inside: the recurrent state is never rounded to bfloat16 at each
step (``torch.nn.GRU`` rounds its products to bfloat16).

Mixed precision: under CPU autocast to bfloat16, on a CPU with bfloat16 matrix units (AMX
or AVX512-BF16, where oneDNN's bfloat16 GEMM runs several times float32's), the GRU's large
GEMMs — the input projection x W_ihᵀ over all steps, and in the backward dx, dW_ih and
dW_hh — take bfloat16 operands (``matmul``, results rounded to bfloat16 and used in
float32), while the recurrence, its per-step product with W_hh, the state, the gates and
the biases stay float32. ``GRUKIT_BF16_GEMMS=1`` turns this on on any CPU, ``=0`` off
(``bf16_gemms``); elsewhere bfloat16 GEMMs are emulated (measured on an AVX2 machine:
1.3 GFLOP/s against float32's 146), so the layer computes in float32 as above. Eager GRU
layers and cells only: traced calls (``torch.compile``, export) and LayerNormGRU compute
in float32.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence


def enabled(weight: Tensor) -> bool:
    """Whether autocast is on for the device of ``weight``."""
    return torch.is_autocast_enabled(weight.device.type)


In = TypeVar("In")
H = TypeVar("H")
Out = TypeVar("Out")


def _cast(value: Any, dtype: torch.dtype) -> Any:
    """Floating tensors (also inside tuples, lists and PackedSequence) to ``dtype``."""
    if isinstance(value, PackedSequence):
        return value._replace(data=_cast(value.data, dtype))
    if isinstance(value, Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


#: The environment variable that forces bfloat16 GEMMs under autocast on ("1") or off ("0").
ENV = "GRUKIT_BF16_GEMMS"
_GEMM_DTYPE: ContextVar[torch.dtype | None] = ContextVar("grukit_gemm_dtype", default=None)


def bf16_gemms() -> bool:
    """Whether bfloat16 autocast runs the large GEMMs in bfloat16: ``GRUKIT_BF16_GEMMS`` "1" or
    "0" if set, else whether the CPU has bfloat16 matrix units (AMX tiles or AVX512-BF16)."""
    env = os.environ.get(ENV, "").strip()
    if env in ("0", "1"):
        return env == "1"
    if env:
        raise ValueError(f"grukit autocast: expected {ENV} of 0 or 1, got {env!r}")
    cpu = torch.cpu
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, hence getattr
    return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)


def gemm_dtype() -> torch.dtype | None:
    """bfloat16 while a layer runs under bfloat16 autocast with ``bf16_gemms()``, else None
    (GEMMs in their operands' dtype)."""
    return _GEMM_DTYPE.get()


@contextmanager
def gemms(dtype: torch.dtype | None) -> Iterator[None]:
    """``gemm_dtype()`` is ``dtype`` inside (None: GEMMs in their operands' dtype); the
    autograd Functions read it in their forward and keep it for their backward."""
    token = _GEMM_DTYPE.set(dtype)
    try:
        yield
    finally:
        _GEMM_DTYPE.reset(token)


def matmul(a: Tensor, b: Tensor, dtype: torch.dtype | None) -> Tensor:
    """a @ b, with float32 operands rounded to ``dtype`` (bfloat16) when given, the product
    (rounded to ``dtype``) returned in a's dtype; exactly ``a @ b`` otherwise."""
    if dtype is None or a.dtype != torch.float32:
        return a @ b
    return (a.to(dtype) @ b.to(dtype)).to(a.dtype)


def _low_precision(weight: Tensor) -> torch.dtype | None:
    """bfloat16 when this call's large GEMMs may run in it (see the module's docstring)."""
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return None
    if torch.get_autocast_dtype("cpu") != torch.bfloat16 or not bf16_gemms():
        return None
    from .backends import fused  # (fused imports this module)

    return None if fused.traced() else torch.bfloat16


def run(fn: Callable[[In, H], Out], weight: Tensor, input: In, hx: H) -> Out:  # noqa: A002
    """``fn(input, hx)`` with autocast off, floating arguments cast to ``weight``'s dtype and
    floating results cast back to the input's dtype (``_cast`` keeps every value's type);
    inside, ``gemm_dtype()`` says whether the large GEMMs run in bfloat16."""
    data = input.data if isinstance(input, PackedSequence) else input
    back = data.dtype if isinstance(data, Tensor) and data.is_floating_point() else weight.dtype
    low = _low_precision(weight)
    with torch.autocast(weight.device.type, enabled=False), gemms(low):
        result = fn(_cast(input, weight.dtype), _cast(hx, weight.dtype))
    cast_back: Out = _cast(result, back)
    return cast_back
