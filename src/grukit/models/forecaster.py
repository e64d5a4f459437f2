"""A recurrent forecaster: encoder over a lookback window, quantiles of the next H steps.

Letters: N batch, L lookback, I input features (column 0 is the target), E hidden
size, H horizon, Q quantiles.

Encoder: ``grukit.GRU(I, E, num_layers, batch_first=True, backend="auto")`` by default,
or any cell of ``grukit.models.recurrent`` (LayerNormGRU, MinGRU, LSTM, RNN), reads
x (N, L, I); its last top-layer output h_L (N, E) summarises the window.

Strategies:
- ``"direct"`` (default; direct multi-step, e.g. Taieb et al. 2012): one linear head
  h_L → (H, Q) emits the whole horizon at once; no error feedback.
- ``"recursive"``: a head h_t → (I, Q) emits one step of every feature; its median
  is fed back as the next input, H times. The target's quantiles are returned.

Quantiles never cross: the head emits raw r_0..r_{Q−1} and
q_0 = r_0, q_k = q_{k−1} + softplus(r_k), so q_0 ≤ q_1 ≤ … ≤ q_{Q−1}. Training
minimises the pinball loss (``pinball_loss``); the point forecast is the median.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import positive_int, probability
from .recurrent import RecurrentOptions, recurrent_layer

__all__ = ["Forecaster", "pinball_loss", "monotone_quantiles"]


def monotone_quantiles(raw: Tensor) -> Tensor:
    """raw (..., Q) → non-decreasing (..., Q): q_0 = r_0, q_k = q_{k−1} + softplus(r_k)."""
    steps = torch.cat([raw[..., :1], F.softplus(raw[..., 1:])], dim=-1)  # (..., Q)
    return torch.cumsum(steps, dim=-1)


def pinball_loss(pred: Tensor, target: Tensor, quantiles: Tensor) -> Tensor:
    """Mean pinball (quantile) loss.

    pred (..., Q), target (...), quantiles (Q,):
    ρ_τ(u) = max(τ·u, (τ − 1)·u) with u = y − q_τ, averaged over everything.
    """
    u = target.unsqueeze(-1) - pred  # (..., Q)
    return torch.maximum(quantiles * u, (quantiles - 1) * u).mean()


class Forecaster(nn.Module):
    """GRU encoder + a head emitting quantiles of the next ``horizon`` target values.

    Args:
        input_size: I, features per time step (column 0 is the target).
        horizon: H, steps forecast.
        hidden_size: E, the GRU's hidden size.
        num_layers: GRU layers.
        quantiles: increasing levels in (0, 1) that include 0.5 (the point forecast).
        strategy: "direct" or "recursive" (see the module docstring).
        dropout: between GRU layers and before the head.
        cell: the encoder's recurrent layer, a name of ``grukit.models.recurrent.CELLS``.
        recurrent_dropout, zoneout: the GRUs' recurrent regularisers (training only).

    forward(x (N, L, I)) → (N, H, Q) target quantiles, increasing along Q.
    """

    quantiles: Tensor  # buffer (Q,) of the levels, registered in __init__

    def __init__(
        self,
        input_size: int,
        horizon: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        *,
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        strategy: str = "direct",
        dropout: float = 0.0,
        backend: str = "auto",
        cell: str = "gru",
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = "Forecaster"
        self.input_size = positive_int(owner, "input_size", input_size)
        self.horizon = positive_int(owner, "horizon", horizon)
        self.hidden_size = positive_int(owner, "hidden_size", hidden_size)
        self.num_layers = positive_int(owner, "num_layers", num_layers)
        probability(owner, "dropout", dropout)
        qs = [probability(owner, "quantile", q) for q in quantiles]
        if not qs or any(b <= a for a, b in zip(qs, qs[1:], strict=False)) or 0.5 not in qs:
            raise ValueError(
                f"{owner}: expected increasing quantiles in (0, 1) including 0.5, got {quantiles}"
            )
        if qs[0] <= 0 or qs[-1] >= 1:
            raise ValueError(f"{owner}: expected quantiles strictly inside (0, 1), got {quantiles}")
        if strategy not in ("direct", "recursive"):
            raise ValueError(
                f"{owner}: expected strategy 'direct' or 'recursive', got {strategy!r}"
            )
        self.strategy = strategy
        self.register_buffer("quantiles", torch.tensor(qs, device=device, dtype=dtype))
        self.median_index = qs.index(0.5)
        self.cell = cell
        self.encoder = recurrent_layer(
            owner,
            cell,
            input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            options=RecurrentOptions(
                backend=backend, recurrent_dropout=recurrent_dropout, zoneout=zoneout
            ),
            device=device,
            dtype=dtype,
        )
        self.dropout = nn.Dropout(dropout)
        q = len(qs)
        out = horizon * q if strategy == "direct" else input_size * q
        self.head = nn.Linear(hidden_size, out, device=device, dtype=dtype)

    def _check(self, x: object) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Forecaster: expected x to be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"Forecaster: expected x of shape (N, L, {self.input_size}), got {tuple(x.shape)}"
            )
        if x.shape[1] < 1:
            raise ValueError("Forecaster: expected a lookback of at least 1 step, got 0")
        return x

    def forward_all(self, x: Tensor) -> Tensor:
        """Quantiles of every feature: (N, H, I, Q) for "recursive"; for "direct" the
        target only, (N, H, 1, Q)."""
        x = self._check(x)
        n, q = x.shape[0], self.quantiles.shape[0]
        out, h = self.encoder(x)  # (N, L, E), (layers, N, E)
        if self.strategy == "direct":
            raw = self.head(self.dropout(out[:, -1]))  # (N, H·Q)
            return monotone_quantiles(raw.view(n, self.horizon, 1, q))  # (N, H, 1, Q)
        steps = []
        last = out[:, -1]  # (N, E)
        for _ in range(self.horizon):
            raw = self.head(self.dropout(last)).view(n, self.input_size, q)  # (N, I, Q)
            step = monotone_quantiles(raw)  # (N, I, Q)
            steps.append(step)
            feed = step[..., self.median_index].unsqueeze(1)  # (N, 1, I)
            out, h = self.encoder(feed, h)  # (N, 1, E), (layers, N, E)
            last = out[:, -1]
        return torch.stack(steps, dim=1)  # (N, H, I, Q)

    def forward(self, x: Tensor) -> Tensor:
        """x (N, L, I) → target quantiles (N, H, Q)."""
        return self.forward_all(x)[:, :, 0]

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Pinball loss of the forecast of y (N, H, I) (all features of the next H steps;
        "direct" scores the target column, "recursive" every feature)."""
        pred = self.forward_all(x)  # (N, H, I or 1, Q)
        target = y[..., : pred.shape[2]]  # (N, H, I or 1)
        return pinball_loss(pred, target, self.quantiles)

    def config(self) -> dict[str, object]:
        return {
            "input_size": self.input_size,
            "horizon": self.horizon,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "quantiles": self.quantiles.tolist(),
            "strategy": self.strategy,
            "dropout": self.dropout.p,
            "cell": self.cell,
        }
