"""The forecaster on every recurrent cell of grukit.models.recurrent: the encoder is the
named layer (same function as building it by hand), training and predict work, and
options a cell lacks are refused naming the class."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import grukit
from grukit.cli import main
from grukit.models.forecaster import Forecaster
from grukit.models.recurrent import CELLS, RecurrentOptions, recurrent_layer
from grukit.training.forecast_config import ForecastConfig

LAYERS = {
    "gru": grukit.GRU,
    "layernorm-gru": grukit.LayerNormGRU,
    "mingru": grukit.MinGRU,
    "lstm": grukit.LSTM,
    "rnn": grukit.RNN,
}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_forecaster_runs_the_named_cell(cell: str, strategy: str) -> None:
    torch.manual_seed(0)
    model = Forecaster(2, 3, 8, 2, cell=cell, strategy=strategy).double()
    assert type(model.encoder) is LAYERS[cell]
    x = torch.randn(4, 6, 2, dtype=torch.float64)
    out = model(x)
    assert out.shape == (4, 3, 3)
    assert bool((out[..., 1:] >= out[..., :-1]).all())  # quantiles never cross
    # the encoder is the layer itself: its last output is what the direct head reads
    enc_out, _ = model.encoder(x)
    if strategy == "direct":
        raw = model.head(enc_out[:, -1]).view(4, 3, 1, 3)
        torch.testing.assert_close(out, model.forward_all(x)[:, :, 0], rtol=0, atol=0)
        assert raw.shape == (4, 3, 1, 3)
    model.loss(x, torch.randn(4, 3, 2, dtype=torch.float64)).backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.config()["cell"] == cell


def test_recurrent_layer_refuses_what_a_cell_lacks() -> None:
    with pytest.raises(ValueError, match="Forecaster: expected cell in"):
        Forecaster(1, 2, cell="transformer")
    with pytest.raises(ValueError, match="Forecaster: recurrent_dropout and zoneout"):
        Forecaster(1, 2, cell="lstm", zoneout=0.1)
    with pytest.raises(ValueError, match="reset_after=False is for cells"):
        recurrent_layer("X", "mingru", 1, 2, options=RecurrentOptions(reset_after=False))
    with pytest.raises(ValueError, match="ForecastConfig: expected cell in"):
        ForecastConfig(cell="mingru", zoneout=0.2)
    with pytest.raises(ValueError, match="ForecastConfig: expected zoneout"):
        ForecastConfig(zoneout=1.5)
    gru = Forecaster(1, 2, cell="gru", zoneout=0.2, recurrent_dropout=0.1).encoder
    assert isinstance(gru, grukit.GRU) and gru.zoneout == 0.2 and gru.recurrent_dropout == 0.1


@pytest.mark.parametrize("cell", ["layernorm-gru", "mingru"])
def test_cli_trains_and_predicts_with_a_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cell: str
) -> None:
    out = tmp_path / "run"
    fast = ["--epochs", "1", "--hidden-size", "8", "--lookback", "12", "--no-progress"]
    args = ["forecast", "train", "--dataset", "airline", "--out", str(out), "--cell", cell]
    assert main([*args, *fast, "--calibration", "validation"]) == 0
    assert main(["forecast", "predict", "--run", str(out)]) == 0
    assert "median" in capsys.readouterr().out
