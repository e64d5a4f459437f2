"""Typed access to torch functions that torch's stubs leave unexported or unannotated."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

Fn = TypeVar("Fn", bound=Callable[..., object])


def is_tracing() -> bool:
    """``torch.jit.is_tracing()``: whether ``torch.jit.trace`` is recording this call."""
    # torch.jit imports is_tracing without listing it in __all__, and leaves it unannotated.
    return bool(torch.jit.is_tracing())  # type: ignore[attr-defined, no-untyped-call]


def assume_constant_result(fn: Fn) -> Fn:
    """``torch.compiler.assume_constant_result``: marks ``fn`` (and returns it) so that
    ``torch.compile`` calls it once while tracing and keeps the result as a constant."""
    # Unannotated in torch; it sets a flag on fn and returns fn itself.
    marked: Fn = torch.compiler.assume_constant_result(fn)  # type: ignore[no-untyped-call]
    return marked
