"""Plots: the forecast's interval is labelled with the probability it holds, from the
quantile levels it was given; both plots write a PNG."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from grukit.training.plots import (  # noqa: E402
    forecast_figure,
    interval_label,
    plot_curves,
    plot_forecast,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "quantiles, label",
    [
        ((0.1, 0.9), "80% interval"),  # the forecaster's default quantiles (0.1, 0.5, 0.9)
        ((0.05, 0.95), "90% interval"),
        ((0.025, 0.975), "95% interval"),
        ((0.25, 0.75), "50% interval"),
        ((0.2, 0.9), "70% interval"),  # not central: still P(lower <= y <= upper)
    ],
)
def test_interval_label_is_the_probability_between_the_quantiles(
    quantiles: tuple[float, float], label: str
) -> None:
    assert interval_label(quantiles) == label


@pytest.mark.parametrize("quantiles", [(0.9, 0.1), (0.0, 0.9), (0.1, 1.0), (0.5, 0.5)])
def test_interval_label_refuses_levels_outside_the_unit_interval(
    quantiles: tuple[float, float],
) -> None:
    with pytest.raises(ValueError, match=r"plot_forecast: expected interval quantiles 0 <"):
        interval_label(quantiles)


def legend(fig: object) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]  # type: ignore[attr-defined]


def test_forecast_legend_names_the_interval_it_was_given() -> None:
    series = ([0, 1, 2], [1.0, 2.0, 3.0])
    ahead = ([3, 4], [3.5, 4.0])
    band = ([3.0, 3.5], [4.0, 4.5])
    fig = forecast_figure(series, None, ahead, interval=band, interval_quantiles=(0.05, 0.95))
    assert legend(fig) == ["history", "90% interval", "GRU forecast"]
    fig = forecast_figure(series, ahead, ahead, interval=band)
    assert legend(fig) == ["history", "actual", "80% interval", "GRU forecast"]
    assert legend(forecast_figure(series, None, ahead)) == ["history", "GRU forecast"]


def test_plots_write_png_files(tmp_path: Path) -> None:
    plot_curves(tmp_path / "c.png", {"train": [3.0, 2.0, 1.5], "validation": [3.1, 2.4]})
    plot_forecast(
        tmp_path / "f.png",
        ([0, 1, 2], [1.0, 2.0, 3.0]),
        ([3, 4], [3.2, 3.9]),
        ([3, 4], [3.5, 4.0]),
        interval=([3.0, 3.5], [4.0, 4.5]),
        interval_quantiles=(0.025, 0.975),
        baselines={"naive": [3.0, 3.0]},
    )
    for name in ("c.png", "f.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG and len(data) > 1000
