"""Argument checks for the NumPy layers, done before any computation.

Every message names the function, what was expected and what arrived, e.g.
``gru_forward: expected x with 3 features (weight_ih's columns), got 5``.

Shapes: T time, N batch, I input size, H hidden size, G gate blocks
(1 for the RNN, 3 for the GRU, 4 for the LSTM).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: The dtypes the layers compute in.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: One layer's parameters, with torch.nn's names minus the "_l0" suffix.
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def array(owner: str, name: str, value: object) -> np.ndarray:
    """``value`` must be a float32 or float64 ``numpy.ndarray``."""
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{owner}: expected {name} to be a numpy.ndarray, got {type(value).__name__}"
        )
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: expected {name} of dtype float32 or float64, got {value.dtype}")
    return value


def same_dtype(owner: str, name: str, value: np.ndarray, dtype: np.dtype) -> None:
    if value.dtype != dtype:
        raise TypeError(
            f"{owner}: expected {name} of dtype {dtype} (the weights'), got {value.dtype}"
        )


def shape(owner: str, name: str, value: np.ndarray, expected: tuple[int, ...]) -> None:
    if value.shape != tuple(expected):
        raise ValueError(f"{owner}: expected {name} of shape {tuple(expected)}, got {value.shape}")


def flag(owner: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: expected {name} to be a bool, got {type(value).__name__}")
    return value


def nonlinearity(owner: str, value: object) -> str:
    if value not in ("tanh", "relu"):
        raise ValueError(f"{owner}: expected nonlinearity 'tanh' or 'relu', got {value!r}")
    return str(value)


def layer_params(
    owner: str, params: object, gates: int
) -> tuple[dict[str, np.ndarray], int, int, np.dtype]:
    """Check one layer's parameters; return (params, I, H, dtype).

    Expected: "weight_ih" (G·H, I), "weight_hh" (G·H, H), "bias_ih" (G·H,),
    "bias_hh" (G·H,), all of one float dtype; H is read from weight_hh's columns.
    """
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{owner}: expected params to be a dict of numpy arrays, got {type(params).__name__}"
        )
    missing = [k for k in PARAM_NAMES if k not in params]
    extra = sorted(str(k) for k in params if k not in PARAM_NAMES)
    if missing or extra:
        raise ValueError(
            f"{owner}: expected params with keys {list(PARAM_NAMES)}, "
            f"got missing {missing} and unexpected {extra}"
        )
    p = {k: array(owner, f'params["{k}"]', params[k]) for k in PARAM_NAMES}
    w_ih, w_hh = p["weight_ih"], p["weight_hh"]
    if w_hh.ndim != 2 or w_hh.shape[1] == 0 or w_hh.shape[0] != gates * w_hh.shape[1]:
        raise ValueError(
            f'{owner}: expected params["weight_hh"] of shape ({gates}·H, H) with H >= 1, '
            f"got {w_hh.shape}"
        )
    hidden = w_hh.shape[1]
    if w_ih.ndim != 2 or w_ih.shape[0] != gates * hidden or w_ih.shape[1] == 0:
        raise ValueError(
            f'{owner}: expected params["weight_ih"] of shape ({gates * hidden}, I) with I >= 1 '
            f"(H = {hidden} from weight_hh), got {w_ih.shape}"
        )
    dtype = w_ih.dtype
    for k in PARAM_NAMES[1:]:
        same_dtype(owner, f'params["{k}"]', p[k], dtype)
    for k in ("bias_ih", "bias_hh"):
        shape(owner, f'params["{k}"]', p[k], (gates * hidden,))
    return p, w_ih.shape[1], hidden, dtype


def sequence(owner: str, x: object, input_size: int, dtype: np.dtype) -> tuple[int, int]:
    """``x`` must be (T, N, I) with T, N >= 1 and the weights' dtype; return (T, N)."""
    x = array(owner, "x", x)
    if x.ndim != 3:
        raise ValueError(f"{owner}: expected x of shape (T, N, I), got {x.ndim}-D {x.shape}")
    if x.shape[2] != input_size:
        raise ValueError(
            f"{owner}: expected x with {input_size} features (weight_ih's columns), "
            f"got {x.shape[2]}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{owner}: expected x with T >= 1 steps and N >= 1 rows, got {x.shape}")
    same_dtype(owner, "x", x, dtype)
    return x.shape[0], x.shape[1]


def state(owner: str, name: str, h: object, batch: int, hidden: int, dtype: np.dtype) -> None:
    """A state ``h`` must be (N, H) of the weights' dtype."""
    h = array(owner, name, h)
    shape(owner, name, h, (batch, hidden))
    same_dtype(owner, name, h, dtype)


def upstream(owner: str, name: str, d: object, expected: tuple[int, ...], dtype: np.dtype) -> None:
    """An upstream gradient must match the forward output's shape and dtype."""
    d = array(owner, name, d)
    shape(owner, name, d, expected)
    same_dtype(owner, name, d, dtype)
