"""Elementwise functions shared by the NumPy layers.

Shapes: any; every function acts elementwise and keeps the dtype.
"""

from __future__ import annotations

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a) = 1 / (1 + e^(−a)), computed without overflow for large |a|.

    For a >= 0 it is 1 / (1 + e^(−a)); for a < 0 the same value written as
    e^a / (1 + e^a), so that e^(−|a|) <= 1 is the only exponential taken.
    Its derivative, used by every backward pass here, is σ'(a) = σ(a) (1 − σ(a)).
    """
    e = np.exp(-np.abs(a))
    s: np.ndarray = np.where(a >= 0, 1 / (1 + e), e / (1 + e))
    return s
