r"""Gradient checking by central finite differences.

For a scalar loss :math:`L(a)` and every element :math:`a_i` of every array checked,

.. math::
    \frac{\partial L}{\partial a_i} \approx \frac{L(a + \varepsilon e_i) - L(a - \varepsilon e_i)}
    {2 \varepsilon},

whose error is :math:`O(\varepsilon^2)` from truncation plus about
:math:`\text{ulp}(L) / \varepsilon` from rounding; in float64 with ε = 1e-6 both are
far below 1e-6 of the gradient's size. The arrays are checked in float64 whatever
dtype they arrive in, so a float32 layer is checked through its float64 twin.

The error reported for one array is normwise:

.. math::
    e = \frac{\max_i |g_i - \tilde g_i|}{\max(\max_i |g_i|, \max_i |\tilde g_i|)}

(0 when both are all zeros), g the analytic gradient and g̃ the numerical one. It is
immune to the tiny entries on which an elementwise ratio would measure only rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["numerical_gradients", "relative_errors", "gradcheck"]

Loss = Callable[[dict[str, np.ndarray]], float]


def _as_float64(owner: str, arrays: object) -> dict[str, np.ndarray]:
    if not isinstance(arrays, Mapping):
        raise TypeError(
            f"{owner}: expected arrays to be a dict of numpy arrays, got {type(arrays).__name__}"
        )
    out = {}
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray) or not np.issubdtype(v.dtype, np.floating):
            got = v.dtype if isinstance(v, np.ndarray) else type(v).__name__
            raise TypeError(
                f"{owner}: expected arrays[{k!r}] to be a float numpy.ndarray, got {got}"
            )
        out[k] = np.array(v, dtype=np.float64)  # a copy: the caller's arrays are never touched
    return out


def _positive(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{owner}: expected {name} > 0, got {value!r}")
    return float(value)


def numerical_gradients(
    loss: Loss,
    arrays: Mapping[str, np.ndarray],
    *,
    eps: float = 1e-6,
    names: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Central-difference gradients of a scalar ``loss(arrays)``.

    Args:
        loss: takes a dict like ``arrays`` (float64 copies) and returns a scalar.
        arrays: name → array, every array ``loss`` reads.
        eps: the step ε (keyword-only).
        names: which arrays to differentiate (default: all).

    Returns:
        name → float64 array of the arrays's shape, ∂loss/∂array estimated elementwise.
    """
    owner = "numerical_gradients"
    work = _as_float64(owner, arrays)
    eps = _positive(owner, "eps", eps)
    names = list(work) if names is None else names
    unknown = [k for k in names if k not in work]
    if unknown:
        raise ValueError(f"{owner}: expected names among {list(work)}, got unknown {unknown}")
    grads = {}
    for k in names:
        a = work[k]
        flat = a.reshape(-1)  # (size,) a view: writing it perturbs the array loss reads
        g = np.empty_like(flat)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            up = float(loss(work))
            flat[i] = keep - eps
            down = float(loss(work))
            flat[i] = keep
            g[i] = (up - down) / (2 * eps)
        grads[k] = g.reshape(a.shape)
    return grads


def relative_errors(
    loss: Loss,
    arrays: Mapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    *,
    eps: float = 1e-6,
) -> dict[str, float]:
    """Normwise relative error (module docstring) of each analytic gradient in ``grads``.

    Args:
        loss: scalar function of a dict like ``arrays``.
        arrays: name → array, every array ``loss`` reads.
        grads: name → analytic ∂loss/∂array, for the arrays to check (a subset of names).
        eps: the finite-difference step (keyword-only).

    Returns:
        name → relative error, for every name in ``grads``.
    """
    owner = "relative_errors"
    analytic = _as_float64(owner, grads)
    bad = [k for k in analytic if k not in arrays or analytic[k].shape != np.shape(arrays[k])]
    if bad:
        raise ValueError(
            f"{owner}: expected grads named and shaped as arrays, got mismatched {bad}"
        )
    numeric = numerical_gradients(loss, arrays, eps=eps, names=list(analytic))
    errors = {}
    for k, g in analytic.items():
        scale = max(np.abs(g).max(initial=0.0), np.abs(numeric[k]).max(initial=0.0))
        diff = np.abs(g - numeric[k]).max(initial=0.0)
        errors[k] = 0.0 if scale == 0 else float(diff / scale)
    return errors


def gradcheck(
    loss: Loss,
    arrays: Mapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    *,
    eps: float = 1e-6,
) -> float:
    """The largest normwise relative error between ``grads`` and central differences.

    Example (a GRU layer, loss Σ w ⊙ ys, so ∂L/∂ys = w)::

        def loss(a):
            p = {k: a[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            return float((gru_forward(a["x"], a["h0"], p)[0] * w).sum())

        ys, cache = gru_forward(x, h0, params)
        err = gradcheck(loss, {"x": x, "h0": h0, **params}, gru_backward(w, cache))
        assert err < 1e-6

    Args and keyword-only ``eps``: as ``relative_errors``.

    Returns:
        max over the arrays of ``relative_errors`` (0.0 when ``grads`` is empty).
    """
    return max(relative_errors(loss, arrays, grads, eps=eps).values(), default=0.0)
