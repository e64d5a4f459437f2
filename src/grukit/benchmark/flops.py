"""Floating-point operations of a GRU's matrix products: what a roofline divides by.

Every implementation of the same GRU (``torch.nn.GRU``, grukit's backends, ONNX Runtime)
has to do these products; the gates' element-wise work (a few operations per element of
(S, 3H), S = T·N rows) is left out, so ``FLOPs / peak`` is a lower bound on any step's time.
A product (m, k) × (k, n) counts 2·m·k·n (one multiply and one add per term), as
``torch.utils.flop_counter`` does.

Per layer and direction, G = 3H gate rows, I_l the layer's input size (I for the first
layer, D·H above it, D = 2 if bidirectional):

Inference (forward):
    gi = X W_ihᵀ                      2·S·I_l·G      the input product (a gather for one-hot)
    gh_t = h_{t-1} W_hhᵀ, t = 1..T     2·S·H·G        the recurrent products
Training adds the backward through time:
    dh_{t-1} = dgh_t W_hh, t = 1..T   2·S·G·H        (step 1's only when h0 needs a gradient)
    dW_hh = dghᵀ H_prev               2·S·G·H
    dW_ih = dgiᵀ X                    2·S·G·I_l      (a scatter-add for one-hot)
    dX = dgi W_ih                     2·S·G·I_l      (the first layer's only when x needs it)
"""

from __future__ import annotations

from .._checks import positive_int
from .peers import GridPoint

__all__ = ["gru_flops", "linear_flops"]


def gru_flops(
    point: GridPoint,
    *,
    training: bool,
    input_grad: bool = False,
    h0_grad: bool = False,
    one_hot: bool = False,
) -> int:
    """Multiply-add FLOPs of the matrix products of one forward (``training=False``) or one
    forward and backward (``training=True``; ``input_grad``: dX of the first layer too;
    ``h0_grad``: the first step's dh too) of the GRU stack at ``point`` (I, H, N, T, layers,
    bidirectional). ``one_hot``: the first layer's input is one-hot rows (``grukit.onehot``),
    so its input product is a gather and its weight gradient a scatter-add — no
    multiply-adds. → an int (2·m·k·n per product)."""
    H, D = point.H, 2 if point.bidirectional else 1
    S, G = point.N * point.T, 3 * H
    total = 0
    for layer in range(point.layers):
        first = layer == 0
        inputs = point.I if first else D * H  # I_l
        dense = not (first and one_hot)
        forward = (2 * S * inputs * G if dense else 0) + 2 * S * H * G
        backward = 0
        if training:
            backward = 2 * S * G * H  # dW_hh
            recurrent_rows = S if h0_grad else S - point.N  # dh_{t-1}, t = 2..T (or 1..T)
            backward += 2 * recurrent_rows * G * H
            if dense:
                backward += 2 * S * G * inputs  # dW_ih
            if dense and (not first or input_grad):
                backward += 2 * S * G * inputs  # dX
        total += D * (forward + backward)
    return total


def linear_flops(rows: int, in_features: int, out_features: int, *, training: bool) -> int:
    """FLOPs of ``nn.Linear``'s product over ``rows`` rows: 2·rows·in·out forward; training
    adds the weight gradient and the input gradient, as much again each."""
    for name, value in (
        ("rows", rows),
        ("in_features", in_features),
        ("out_features", out_features),
    ):
        positive_int("linear_flops", name, value)
    one = 2 * rows * in_features * out_features
    return 3 * one if training else one
