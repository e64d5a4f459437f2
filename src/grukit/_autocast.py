"""Layers and cells under ``torch.autocast``: the recurrence runs in the weights' dtype.

``torch.nn.GRU`` and ``GRUCell`` under CPU autocast return their input's dtype (float32 in,
float32 out; bfloat16 in, bfloat16 out). grukit does the same, computing in the weights'
dtype with autocast off inside: the recurrent state is never rounded to bfloat16 at each
step, so the result is the float32 one (``torch.nn.GRU`` rounds its products to bfloat16).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence


def enabled(weight: Tensor) -> bool:
    """Whether autocast is on for the device of ``weight``."""
    return torch.is_autocast_enabled(weight.device.type)


def _cast(value: Any, dtype: torch.dtype) -> Any:
    """Floating tensors (also inside tuples, lists and PackedSequence) to ``dtype``."""
    if isinstance(value, PackedSequence):
        return value._replace(data=_cast(value.data, dtype))
    if isinstance(value, Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


def run(fn: Callable[[Any, Any], Any], weight: Tensor, input: Any, hx: Any) -> Any:  # noqa: A002
    """``fn(input, hx)`` with autocast off, floating arguments cast to ``weight``'s dtype and
    floating results cast back to the input's dtype."""
    data = input.data if isinstance(input, PackedSequence) else input
    floating = isinstance(data, Tensor) and data.is_floating_point()
    back = data.dtype if floating else weight.dtype
    with torch.autocast(weight.device.type, enabled=False):
        result = fn(_cast(input, weight.dtype), _cast(hx, weight.dtype))
    return _cast(result, back)
