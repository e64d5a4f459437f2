"""Argument checks shared by the public entry points.

Every message names the module, what was expected and what arrived, e.g.
``GRU: expected input with 3 features (input_size), got 5``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor


def positive_int(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: expected {name} to be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{owner}: expected {name} > 0, got {value}")
    return value


def flag(owner: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: expected {name} to be a bool, got {type(value).__name__}")
    return value


def probability(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: expected {name} to be a float, got {type(value).__name__}")
    if not (0.0 <= float(value) <= 1.0) or math.isnan(value):
        raise ValueError(f"{owner}: expected {name} in [0, 1], got {value}")
    return float(value)


def nonlinearity(owner: str, value: object) -> str:
    if value not in ("tanh", "relu"):
        raise ValueError(f"{owner}: expected nonlinearity 'tanh' or 'relu', got {value!r}")
    return str(value)


def tensor(owner: str, name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{owner}: expected {name} to be a torch.Tensor, got {type(value).__name__}"
        )
    return value


def like_weights(owner: str, name: str, t: Tensor, weight: Tensor) -> None:
    """``t`` must be floating and share the weights' dtype and device."""
    if not t.is_floating_point():
        raise TypeError(f"{owner}: expected {name} of a floating dtype, got {t.dtype}")
    if t.dtype != weight.dtype:
        raise TypeError(
            f"{owner}: expected {name} of dtype {weight.dtype} (the weights'), got {t.dtype}"
        )
    if t.device != weight.device:
        raise ValueError(
            f"{owner}: expected {name} on device {weight.device} (the weights'), got {t.device}"
        )


def shape(owner: str, name: str, t: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(t.shape) != tuple(expected):
        raise ValueError(
            f"{owner}: expected {name} of shape {tuple(expected)}, got {tuple(t.shape)}"
        )


def batch_sizes(owner: str, bs: Tensor, rows: int) -> None:
    """PackedSequence.batch_sizes: 1-D int64 on the CPU, positive, non-increasing,
    summing to the number of rows of the data."""
    if bs.dim() != 1 or bs.dtype != torch.int64 or bs.device.type != "cpu":
        raise ValueError(
            f"{owner}: expected PackedSequence batch_sizes as a 1-D int64 CPU tensor, "
            f"got {bs.dim()}-D {bs.dtype} on {bs.device}"
        )
    if bs.numel() == 0:
        raise ValueError(f"{owner}: expected a non-empty sequence (T >= 1), got T = 0")
    if bool((bs <= 0).any()) or bool((bs[1:] > bs[:-1]).any()):
        raise ValueError(
            f"{owner}: expected PackedSequence batch_sizes positive and non-increasing "
            f"(lengths in 1..T), got {bs.tolist()}"
        )
    total = int(bs.sum())
    if total != rows:
        raise ValueError(
            f"{owner}: expected PackedSequence data with {total} rows (sum of batch_sizes), "
            f"got {rows}"
        )


def parameter(
    owner: str, name: str, p: object, expected: tuple[int, ...], like: Tensor | None
) -> None:
    """A module's parameter ``name``: a floating tensor of shape ``expected`` with the dtype
    and device of ``like`` (its first weight)."""
    if not isinstance(p, Tensor):
        raise TypeError(
            f"{owner}: expected parameter {name} to be a tensor, got {type(p).__name__}"
        )
    if tuple(p.shape) != tuple(expected):
        raise ValueError(
            f"{owner}: expected parameter {name} of shape {tuple(expected)}, got {tuple(p.shape)}"
        )
    if like is not None and p is not like:
        like_weights(owner, f"parameter {name}", p, like)


def parameters(
    owner: str, params: Mapping[str, Tensor | None], shapes: Mapping[str, tuple[int, ...]]
) -> None:
    """Every parameter named in ``shapes`` still a tensor of that shape, with the dtype and
    device of the first one (a user may have replaced one): checked before a kernel reads
    memory. ``params`` is a module's ``_parameters`` (one dict read per parameter)."""
    first = params.get(next(iter(shapes)))
    for name, shape in shapes.items():
        p = params.get(name)
        if (
            p is None
            or first is None
            or p.shape != shape
            or p.dtype != first.dtype
            or (p.device != first.device)
        ):
            parameter(owner, name, p, shape, first)  # raises, naming what is wrong
