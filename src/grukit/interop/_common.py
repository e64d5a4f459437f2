"""Shared pieces of the weight-layout converters: argument checks, state_dict access,
gate reordering.

Shapes: I input size, H hidden size, G gates (GRU 3, LSTM 4, RNN 1), D directions.
A grukit / torch state_dict stacks gates along the rows: ``weight_ih_l{k}{_reverse}``
(G·H, I), ``weight_hh_l{k}{_reverse}`` (G·H, H), ``bias_ih_l{k}{_reverse}`` and
``bias_hh_l{k}{_reverse}`` (G·H,); a cell's state_dict has the same names without the
suffix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

Array = np.ndarray | Tensor


class LayerWeights(NamedTuple):
    """One layer and direction in torch's layout: w_ih (G·H, I), w_hh (G·H, H),
    b_ih and b_hh (G·H,) or both None."""

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None


def as_tensor(fn: str, name: str, value: object) -> Tensor:
    """A floating NumPy array or tensor as a tensor (a writeable array's memory is shared;
    a read-only one is copied, which torch.from_numpy would warn about)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            raise TypeError(f"{fn}: expected {name} of a floating dtype, got {value.dtype}")
        return torch.from_numpy(value if value.flags.writeable else value.copy())
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{fn}: expected {name} of a floating dtype, got {value.dtype}")
        return value.detach()
    raise TypeError(
        f"{fn}: expected {name} as a numpy.ndarray or torch.Tensor, got {type(value).__name__}"
    )


def same_dtype(fn: str, named: Mapping[str, Tensor | None]) -> None:
    """Raise TypeError unless every given tensor has the same dtype and device."""
    present = {k: v for k, v in named.items() if v is not None}
    kinds = {(v.dtype, v.device) for v in present.values()}
    if len(kinds) > 1:
        got = ", ".join(f"{k} {v.dtype} on {v.device}" for k, v in present.items())
        raise TypeError(f"{fn}: expected every array of one dtype and device, got {got}")


def check_shape(fn: str, name: str, t: Tensor, expected: Sequence[int], letters: str) -> None:
    """Raise ValueError naming ``fn`` unless ``t.shape == expected`` (letters: e.g. "(H, 3H)")."""
    if tuple(t.shape) != tuple(expected):
        raise ValueError(
            f"{fn}: expected {name} of shape {letters} = {tuple(expected)}, got {tuple(t.shape)}"
        )


def dims(fn: str, name: str, t: Tensor, ndim: int, letters: str) -> None:
    if t.dim() != ndim:
        raise ValueError(
            f"{fn}: expected {name} of {ndim} dimensions {letters}, "
            f"got {t.dim()}-D of shape {tuple(t.shape)}"
        )


#: Keras and ONNX both order a GRU's gate blocks z, r, h: their block j is torch's block
#: GRU_ZRH[j] (torch's order is r, z, n).
GRU_ZRH = (1, 0, 2)
#: A plain RNN's one block.
ONE_GATE = (0,)


def reorder(t: Tensor, order: Sequence[int], axis: int = 0) -> Tensor:
    """Gate blocks of ``t`` along ``axis`` taken in ``order`` (a new contiguous tensor)."""
    blocks = t.chunk(len(order), dim=axis)
    return torch.cat([blocks[i] for i in order], dim=axis)


def inverse(order: Sequence[int]) -> list[int]:
    """The permutation that undoes ``order``."""
    out = [0] * len(order)
    for position, source in enumerate(order):
        out[source] = position
    return out


def fresh(t: Tensor) -> Tensor:
    """A contiguous copy that shares no memory with the caller's arrays."""
    return t.clone(memory_format=torch.contiguous_format)


def suffix(layer: int, reverse: bool) -> str:
    return f"_l{layer}" + ("_reverse" if reverse else "")


def check_layer(fn: str, layer: object, reverse: object) -> None:
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ValueError(f"{fn}: expected layer as an int >= 0, got {layer!r}")
    if not isinstance(reverse, bool):
        raise TypeError(f"{fn}: expected reverse to be a bool, got {type(reverse).__name__}")


def state_dict_entry(
    fn: str, state_dict: Mapping[str, Any], gates: int, layer: int, reverse: bool
) -> LayerWeights:
    """Layer ``layer`` (direction ``reverse``) of a layer's state_dict, or a cell's
    (unsuffixed names; then layer must be 0 and reverse False). Shapes checked."""
    check_layer(fn, layer, reverse)
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"{fn}: expected a state_dict (a mapping of names to tensors), "
            f"got {type(state_dict).__name__}"
        )
    sfx = suffix(layer, reverse)
    if f"weight_ih{sfx}" not in state_dict and "weight_ih" in state_dict:
        if layer or reverse:
            raise ValueError(
                f"{fn}: a cell's state_dict has one layer and direction, "
                f"got layer={layer}, reverse={reverse}"
            )
        sfx = ""
    names = [f"{stem}{sfx}" for stem in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    for name in names[:2]:
        if name not in state_dict:
            raise ValueError(
                f"{fn}: expected {name!r} in the state_dict, got keys {sorted(state_dict)}"
            )
    if f"weight_hr{sfx}" in state_dict:
        raise ValueError(
            f"{fn}: the target layout has no LSTM projection, got 'weight_hr{sfx}' "
            "(a module with proj_size > 0)"
        )
    has_bias = [name in state_dict for name in names[2:]]
    if any(has_bias) and not all(has_bias):
        raise ValueError(f"{fn}: expected both {names[2]!r} and {names[3]!r} or neither")
    w_ih = as_tensor(fn, names[0], state_dict[names[0]])
    w_hh = as_tensor(fn, names[1], state_dict[names[1]])
    b_ih = as_tensor(fn, names[2], state_dict[names[2]]) if all(has_bias) else None
    b_hh = as_tensor(fn, names[3], state_dict[names[3]]) if all(has_bias) else None
    dims(fn, names[1], w_hh, 2, f"({gates}H, H)")
    hidden = w_hh.shape[1]
    check_shape(fn, names[1], w_hh, (gates * hidden, hidden), f"({gates}H, H)")
    dims(fn, names[0], w_ih, 2, f"({gates}H, I)")
    check_shape(fn, names[0], w_ih, (gates * hidden, w_ih.shape[1]), f"({gates}H, I)")
    for name, b in zip(names[2:], (b_ih, b_hh), strict=True):
        if b is not None:
            check_shape(fn, name, b, (gates * hidden,), f"({gates}H,)")
    same_dtype(fn, dict(zip(names, (w_ih, w_hh, b_ih, b_hh), strict=True)))
    return LayerWeights(w_ih, w_hh, b_ih, b_hh)


def to_numpy(fn: str, t: Tensor) -> np.ndarray:
    """A NumPy copy of ``t`` (same dtype); TypeError for dtypes NumPy lacks (bfloat16)."""
    if t.dtype not in (torch.float16, torch.float32, torch.float64):
        raise TypeError(
            f"{fn}: expected float16/float32/float64 weights (NumPy has no {t.dtype}), "
            f"got {t.dtype}; convert the module first, e.g. .float()"
        )
    copy: np.ndarray = t.detach().cpu().numpy().copy()
    return copy


def to_state_dict(sfx: str, weights: LayerWeights) -> dict[str, Tensor]:
    """grukit/torch names for one layer and direction (biases left out when None)."""
    out = {f"weight_ih{sfx}": fresh(weights.w_ih), f"weight_hh{sfx}": fresh(weights.w_hh)}
    if weights.b_ih is not None and weights.b_hh is not None:
        out[f"bias_ih{sfx}"] = fresh(weights.b_ih)
        out[f"bias_hh{sfx}"] = fresh(weights.b_hh)
    return out
