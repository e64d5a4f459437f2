"""One-hot input given as token indices.

``OneHot(indices, num_classes)`` stands for ``F.one_hot(indices, num_classes)`` cast to the
layer's dtype, without building it. Fed to a layer whose ``input_size`` is ``num_classes``,
it gives the same output as the dense one-hot input (d2l's language model feeds one-hot
characters to ``nn.GRU``), and lets the fast backends compute the first layer's input
product as a gather:

    x_t = onehot(k_t) ∈ {0, 1}^I    ⇒    W_ih x_t + b_ih = W_ih[:, k_t] + b_ih
    dL/dW_ih[:, k] = Σ_{t : k_t = k} dL/d(W_ih x_t)          (a scatter-add of rows)

The gather is exact: each entry of ``W_ih x_t`` is one product 1·w plus zeros. Shapes
(T time, N batch, I = num_classes): indices (T, N), (N, T) with ``batch_first``, or (T,)
unbatched, of an integer dtype; values in [0, I).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import _autocast as autocast

__all__ = ["OneHot"]


@dataclass(frozen=True)
class OneHot:
    """Token indices (T, N) / (N, T) / (T,) standing for one-hot vectors of ``num_classes``."""

    indices: Tensor
    num_classes: int

    def validate(self, owner: str) -> None:
        """Raise naming ``owner`` unless this is a non-empty one-hot input of valid indices."""
        idx, k = self.indices, self.num_classes
        if not isinstance(idx, Tensor):
            raise TypeError(
                f"{owner}: expected OneHot indices to be a torch.Tensor, got {type(idx).__name__}"
            )
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{owner}: expected OneHot indices of dtype int64, got {idx.dtype}")
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"{owner}: expected OneHot num_classes a positive int, got {k!r}")
        if torch.compiler.is_compiling():  # no data-dependent branch: a runtime assert
            torch._assert_async(
                ((idx >= 0) & (idx < k)).all(), f"{owner}: expected OneHot indices in [0, {k})"
            )
        elif idx.numel():
            lo, hi = (int(v) for v in torch.aminmax(idx))  # one pass over the indices
            if lo < 0 or hi >= k:
                raise ValueError(
                    f"{owner}: expected OneHot indices in [0, {k}), got values in [{lo}, {hi}]"
                )

    def dense(self, dtype: torch.dtype) -> Tensor:
        """The one-hot vectors: indices shape + (num_classes,), of ``dtype``."""
        return torch.nn.functional.one_hot(self.indices.long(), self.num_classes).to(dtype)

    def transpose(self) -> OneHot:
        """(N, T) ↔ (T, N)."""
        return OneHot(self.indices.t(), self.num_classes)

    def unsqueeze(self) -> OneHot:
        """(T,) → (T, 1): an unbatched sequence as a batch of one."""
        return OneHot(self.indices.unsqueeze(1), self.num_classes)


def projection(
    x: Tensor,
    w_ih: Tensor,
    b_ih: Tensor | None,
    gemm: torch.dtype | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """gi = x W_ihᵀ + b_ih (S, G·H) for rows x (S, I), or for indices x (S,) of one-hot rows
    (then a gather of W_ihᵀ's rows, equal to the product). ``gemm``: bfloat16 for the
    product's operands under mixed precision (``grukit._autocast.matmul``; the bias is
    added in x's dtype), or None. ``out``: an empty (S, G·H) tensor of W_ih's dtype to write
    gi into (a reused buffer: ``grukit.backends.native`` hands out cached blocks), or None;
    it takes no part in autograd, so it is ignored while autograd records this call."""
    if out is not None and torch.is_grad_enabled():
        tracked = (x, w_ih) if b_ih is None else (x, w_ih, b_ih)
        out = None if any(t.requires_grad for t in tracked) else out
    if x.is_floating_point() and gemm is not None:
        gi = autocast.matmul(x, w_ih.t(), gemm)  # (S, G·H)
        return gi if b_ih is None else gi.add_(b_ih)
    if x.is_floating_point():
        if b_ih is None:
            return torch.mm(x, w_ih.t(), out=out)  # (S, G·H)
        return torch.addmm(b_ih, x, w_ih.t(), out=out)  # (S, G·H)
    gi = torch.index_select(w_ih.t().contiguous(), 0, x, out=out)  # (S, G·H) row k_s of W_ihᵀ
    return gi if b_ih is None else gi.add_(b_ih)


def projection_weight_grad(
    dgi: Tensor, x: Tensor, in_features: int, gemm: torch.dtype | None = None
) -> Tensor:
    """dL/dW_ih = dgiᵀ x (G·H, I) for rows x (S, I), or for indices x (S,) of one-hot rows:
    then dgi's rows (S, G·H) summed by index into I = ``in_features`` rows, transposed.
    ``gemm``: as ``projection``'s."""
    if x.is_floating_point():
        return autocast.matmul(dgi.t(), x, gemm)  # (G·H, I)
    acc = dgi.new_zeros(in_features, dgi.shape[1]).index_add_(0, x, dgi)  # (I, G·H)
    return acc.t().contiguous()  # (G·H, I)
