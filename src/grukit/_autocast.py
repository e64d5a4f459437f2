"""Layers and cells under ``torch.autocast``: the recurrence runs in the weights' dtype.

``torch.nn.GRU`` and ``GRUCell`` under CPU autocast return their input's dtype (float32 in,
float32 out; bfloat16 in, bfloat16 out). grukit does the same, computing in the weights'
dtype with autocast off inside: the recurrent state is never rounded to bfloat16 at each
step, so the result is the float32 one (``torch.nn.GRU`` rounds its products to bfloat16).
"""

from __future__ import annotations

from collections.abc import Callable
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


def run(fn: Callable[[In, H], Out], weight: Tensor, input: In, hx: H) -> Out:  # noqa: A002
    """``fn(input, hx)`` with autocast off, floating arguments cast to ``weight``'s dtype and
    floating results cast back to the input's dtype (``_cast`` keeps every value's type)."""
    data = input.data if isinstance(input, PackedSequence) else input
    back = data.dtype if isinstance(data, Tensor) and data.is_floating_point() else weight.dtype
    with torch.autocast(weight.device.type, enabled=False):
        result = fn(_cast(input, weight.dtype), _cast(hx, weight.dtype))
    cast_back: Out = _cast(result, back)
    return cast_back
