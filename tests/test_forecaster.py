"""grukit.models.forecaster: shapes, non-crossing quantiles, pinball loss against a
hand computation, the recursive strategy against a hand-written loop (float64, 1e-12)."""

from __future__ import annotations

import math

import pytest
import torch

from grukit.models.forecaster import Forecaster, monotone_quantiles, pinball_loss

TOL = 1e-12


def test_direct_shapes_and_quantiles_never_cross() -> None:
    torch.manual_seed(0)
    model = Forecaster(3, horizon=7, hidden_size=8, dtype=torch.float64)
    with torch.no_grad():
        model.head.weight.mul_(50.0)  # wild raw outputs
    q = model(torch.randn(5, 11, 3, dtype=torch.float64))
    assert q.shape == (5, 7, 3)
    assert (q[..., 1:] >= q[..., :-1]).all()
    assert model.median_index == 1


def test_monotone_quantiles_is_a_cumulative_softplus() -> None:
    raw = torch.tensor([[0.5, -2.0, 3.0]], dtype=torch.float64)
    a = 0.5 + math.log1p(math.exp(-2.0))
    want = torch.tensor([[0.5, a, a + math.log1p(math.exp(3.0))]], dtype=torch.float64)
    torch.testing.assert_close(monotone_quantiles(raw), want, rtol=0, atol=TOL)


def test_pinball_loss_matches_hand_computation() -> None:
    pred = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)  # quantiles of one target
    target = torch.tensor([2.5], dtype=torch.float64)
    qs = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    # u = y − q = 1.5, 0.5, −0.5 → 0.1·1.5, 0.5·0.5, (0.9−1)·(−0.5)
    want = (0.15 + 0.25 + 0.05) / 3
    assert abs(float(pinball_loss(pred, target, qs)) - want) < TOL


def test_recursive_feeds_back_the_median() -> None:
    torch.manual_seed(1)
    model = Forecaster(2, horizon=4, hidden_size=6, strategy="recursive", dtype=torch.float64)
    model.eval()
    x = torch.randn(3, 9, 2, dtype=torch.float64)
    got = model.forward_all(x)  # (N, H, I, Q)
    assert got.shape == (3, 4, 2, 3)
    # oracle: the loop written out with torch.nn.GRU holding the same weights
    ref = torch.nn.GRU(2, 6, batch_first=True, dtype=torch.float64)
    ref.load_state_dict(model.encoder.state_dict())
    out, h = ref(x)
    steps = []
    for _ in range(4):
        raw = model.head(out[:, -1]).view(3, 2, 3)
        q = monotone_quantiles(raw)
        steps.append(q)
        out, h = ref(q[..., 1].unsqueeze(1), h)
    torch.testing.assert_close(got, torch.stack(steps, 1), rtol=0, atol=TOL)
    assert model(x).shape == (3, 4, 3)


@torch.no_grad()
def test_loss_scores_target_or_all_features() -> None:
    torch.manual_seed(2)
    x, y = torch.randn(4, 5, 2), torch.randn(4, 3, 2)
    direct = Forecaster(2, 3, 4)
    want = pinball_loss(direct.forward_all(x), y[..., :1], direct.quantiles)
    assert abs(float(direct.loss(x, y)) - float(want)) < 1e-6
    rec = Forecaster(2, 3, 4, strategy="recursive")
    want = pinball_loss(rec.forward_all(x), y, rec.quantiles)
    assert abs(float(rec.loss(x, y)) - float(want)) < 1e-6


def test_training_reduces_the_loss_on_a_sine() -> None:
    torch.manual_seed(3)
    t = torch.arange(200, dtype=torch.float32)
    s = torch.sin(2 * torch.pi * t / 12)
    x = torch.stack([s[i : i + 12] for i in range(48)])[..., None]  # (48, 12, 1)
    y = torch.stack([s[i + 12 : i + 15] for i in range(48)])[..., None]  # (48, 3, 1)
    model = Forecaster(1, 3, 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(x, y).item()
    for _ in range(40):
        opt.zero_grad()
        loss = model.loss(x, y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.25 * first


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"strategy": "beam"}, ValueError, "strategy 'direct' or 'recursive'"),
        ({"quantiles": (0.1, 0.9)}, ValueError, "including 0.5"),
        ({"quantiles": (0.5, 0.1)}, ValueError, "increasing quantiles"),
        ({"quantiles": (0.0, 0.5)}, ValueError, "strictly inside"),
        ({"horizon": 0}, ValueError, "horizon > 0"),
        ({"horizon": 2.0}, TypeError, "horizon to be an int"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, exc: type, pattern: str) -> None:
    args = {"input_size": 1, "horizon": 3, **kwargs}
    with pytest.raises(exc, match=pattern):
        Forecaster(**args)


def test_bad_input_raises_before_computing() -> None:
    model = Forecaster(2, 3, 4)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, L, 2\), got \(4, 5, 3\)"):
        model(torch.randn(4, 5, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[1.0, 2.0]])
