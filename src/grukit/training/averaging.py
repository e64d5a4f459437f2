"""Weight averaging for the training loop: an exponential moving average of the weights.

Polyak & Juditsky 1992; the "EMA of the weights" of many training recipes (AWD-LSTM's
averaged SGD averages uniformly instead). With decay d, after every optimizer step s:

    a_0 = θ_0 (the weights when training starts),    a_s = d · a_{s−1} + (1 − d) · θ_s

Training goes on from the raw weights θ; validation, the kept weights and model.safetensors
use a (``trainer.fit``), and the checkpoint holds both, so a resumed run is unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The exponential moving average of ``model``'s parameters (tied parameters once).

    Args:
        model: whose parameters are averaged (the same objects throughout).
        decay: d in [0, 1): the weight of the old average at each ``update``.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ValueError(f"WeightAverage: expected a decay in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.model = model
        named = dict(model.named_parameters())  # a tied parameter under its first name
        self.names = list(named)
        self.params = list(named.values())
        self.average = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """a ← d·a + (1 − d)·θ, after an optimizer step."""
        for a, p in zip(self.average, self.params, strict=True):
            a.mul_(self.decay).add_(p.detach(), alpha=1.0 - self.decay)

    def state_dict(self) -> dict[str, Tensor]:
        """The model's state_dict with the averages in place of the parameters (every name
        of a tied parameter gets its average)."""
        by_id = {id(p): a for p, a in zip(self.params, self.average, strict=True)}
        state = self.model.state_dict(keep_vars=True)
        return {
            k: by_id[id(v)].clone() if id(v) in by_id else v.detach().clone()
            for k, v in state.items()
        }

    @contextlib.contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """The model holds the averages inside the block, its own weights again after it."""
        raw = [p.detach().clone() for p in self.params]
        for p, a in zip(self.params, self.average, strict=True):
            p.copy_(a)
        try:
            yield
        finally:
            for p, r in zip(self.params, raw, strict=True):
                p.copy_(r)

    # --- checkpoint ----------------------------------------------------------------------
    def to_checkpoint(self) -> dict[str, Tensor]:
        """The averages by parameter name (for the training checkpoint)."""
        return {n: a.clone() for n, a in zip(self.names, self.average, strict=True)}

    def load_checkpoint(self, state: Mapping[str, object], where: object) -> None:
        """Restore ``to_checkpoint``'s averages, each checked against its parameter."""
        if not isinstance(state, Mapping) or set(state) != set(self.names):
            raise ValueError(f"WeightAverage: expected this model's averaged weights in {where}")
        for i, (name, p) in enumerate(zip(self.names, self.params, strict=True)):
            t = state[name]
            if not isinstance(t, Tensor) or t.dtype != p.dtype or t.shape != p.shape:
                raise ValueError(
                    f"WeightAverage: expected {name}'s average of dtype {p.dtype} and shape "
                    f"{tuple(p.shape)} in {where}, got another"
                )
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"WeightAverage: expected a finite average of {name} in {where}")
            self.average[i] = t.to(p.device).clone()
