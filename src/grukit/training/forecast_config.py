"""The forecaster's configuration: ``ForecastConfig``, its presets, and ``forecast_config``
which completes a config for a CSV from what its data implies.

Every field holds a value (no "None: the preset"): the defaults are the airline preset.
``forecast_config(csv=..., columns=(...), **given)`` fills what is not given from the
bundled dataset's preset, or for a CSV from its data (the season from its dates, a
horizon of one season, as much validation, a lookback of two seasons). Every field is a
``grukit forecast train`` option; a run stores its config in config.json.

Letters: H horizon, L lookback, m season.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..data.series import BUNDLED, Series, load_bundled, load_csv
from ..models.recurrent import CELLS, NOISY
from .config import KEEP, KEEP_HELP, TrainConfig, option

__all__ = ["PRESETS", "ForecastConfig", "forecast_config", "load_series"]

STRATEGIES = ("direct", "recursive")
CALIBRATIONS = ("validation", "rolling", "none")


@dataclass(frozen=True)
class ForecastConfig(TrainConfig):
    """Everything that determines a forecasting run; the defaults are the airline preset
    (Box & Jenkins' airline model: log and seasonal differencing, two seasons of input).

    For another series start from its preset or its data: ``PRESETS["co2"]``,
    ``forecast_config(dataset="co2", epochs=30)``, ``forecast_config(csv=...,
    columns=("y",))``. ``ForecastConfig(dataset="co2")`` alone keeps airline's season,
    lookback and transforms."""

    # data: a bundled series, or a CSV (dataset None)
    dataset: str | None = option(
        "airline", "a bundled series (none with a csv)", choices=(*sorted(BUNDLED), None)
    )
    csv: str | None = option(None, "a CSV file with a header row, instead of a dataset")
    columns: tuple[str, ...] = option(
        (), "a CSV column to use (repeat for several): the FIRST is the target, the others "
        "extra input features",
    )  # fmt: skip
    date_column: str | None = option(None, "the CSV's timestamps column (none: equally spaced)")
    # the split and the inputs
    horizon: int = option(24, "H: steps forecast, and the test length")
    validation: int = option(24, "points before test for model selection (0: none)")
    season: int = option(12, "season length m (12 monthly, 52 weekly, 7 daily)")
    lookback: int = option(24, "L: input steps per window")
    log: bool = option(True, "log-transform the values (they must be positive)")
    diff: int = option(12, "difference at this lag (0: none; m removes trend and season)")
    # the model
    strategy: str = option(
        "direct", "direct: one head emits all H steps; recursive: one step at a time, "
        "feeding back the median", choices=STRATEGIES,
    )  # fmt: skip
    cell: str = option("gru", "the encoder's recurrent layer", choices=CELLS)
    hidden_size: int = option(32, "H units of the GRU encoder")
    num_layers: int = option(1, "stacked GRU layers")
    dropout: float = option(0.0, "dropout between layers")
    recurrent_dropout: float = option(
        0.0, "one dropout mask per sequence on the state the recurrent weights read "
        "(gru, layernorm-gru)",
    )  # fmt: skip
    zoneout: float = option(
        0.0, "each unit keeps its previous state with this probability per step "
        "(gru, layernorm-gru)",
    )  # fmt: skip
    backend: str = option("auto", "the GRU's backend (auto: the fastest exact one)")
    # a seed ensemble and the interval's calibration
    ensemble: int = option(
        1, "K models trained with seeds seed, seed+1, …; the forecast is the median of "
        "their quantiles at each step",
    )  # fmt: skip
    calibration: str = option(
        "rolling", "calibrate the interval by split-conformal scores of: validation "
        "(the kept model's validation windows; widen only), rolling (those windows and "
        "models refitted at calibration_folds earlier origins, each forecasting H unseen "
        "points), none",
        choices=CALIBRATIONS,
    )  # fmt: skip
    calibration_folds: int = option(
        2, "rolling calibration: origins, each `calibration_step` before the next"
    )
    calibration_step: int = option(
        0, "rolling calibration: steps between origins (0: a quarter of the horizon, "
        "fewer where the series has no room)",
    )  # fmt: skip
    # optimisation (Adam; and the loop's fields)
    epochs: int = option(150, "passes over the training windows")
    lr: float = option(3e-3, "Adam's learning rate")
    weight_decay: float = option(1e-4, "L2 penalty")
    keep: str = option("best", KEEP_HELP, choices=KEEP)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.csv is None:
            if self.dataset not in BUNDLED:
                self._bad("dataset", f"in {sorted(BUNDLED)} (or a csv)")
            if self.columns or self.date_column is not None:
                raise ValueError(
                    "ForecastConfig: expected columns and date_column only with a csv, got "
                    f"columns {list(self.columns)}, date_column {self.date_column!r}"
                )
        else:
            if not isinstance(self.csv, str):
                self._bad("csv", "to be a path")
            if self.dataset is not None:
                self._bad("dataset", "to be None with a csv")
            if not self.columns or not all(isinstance(c, str) for c in self.columns):
                self._bad("columns", "to name the CSV's columns, the target first")
        if not isinstance(self.columns, tuple):
            self._bad("columns", "to be a tuple of names")
        self._positive_ints(
            "horizon", "lookback", "season", "hidden_size", "num_layers", "ensemble",
            "calibration_folds",
        )  # fmt: skip
        self._one_of("calibration", CALIBRATIONS)
        step = self.calibration_step
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            self._bad("calibration_step", ">= 0 (0: a quarter of the horizon)")
        v = self.validation
        if isinstance(v, bool) or not isinstance(v, int) or not (v == 0 or v >= self.horizon):
            self._bad(
                "validation",
                f"0 (no validation) or >= the horizon ({self.horizon}) so one window fits",
            )
        if isinstance(self.diff, bool) or not isinstance(self.diff, int) or self.diff < 0:
            self._bad("diff", ">= 0 (a lag)")
        self._bools("log")
        self._one_of("strategy", STRATEGIES)
        self._one_of("cell", CELLS)
        self._finite("weight_decay", "dropout", "recurrent_dropout", "zoneout", low=0.0)
        for name in ("dropout", "recurrent_dropout"):
            if getattr(self, name) >= 1.0:
                self._bad(name, "in [0, 1)")
        if self.zoneout > 1.0:
            self._bad("zoneout", "in [0, 1]")
        if (self.recurrent_dropout or self.zoneout) and self.cell not in NOISY:
            self._bad("cell", f"in {list(NOISY)} with recurrent_dropout or zoneout")
        if not isinstance(self.backend, str):
            self._bad("backend", "to be a backend name")


#: The bundled series' settings, set once by hand and not tuned on test: log + seasonal
#: differencing for airline's multiplicative seasonality, seasonal differencing for CO2's
#: additive one; lookback two seasons. Both calibrate the interval on rolling origins
#: (their validation part is one window, and it chose the kept epoch).
PRESETS: dict[str, ForecastConfig] = {
    "airline": ForecastConfig(),
    "co2": ForecastConfig(
        dataset="co2",
        horizon=52,
        validation=52,
        season=52,
        lookback=104,
        log=False,
        diff=52,
        epochs=15,
    ),  # fmt: skip
}


def load_series(config: ForecastConfig) -> Series:
    """The series ``config`` trains on: its CSV's columns, or the bundled dataset."""
    if config.csv is not None:
        return load_csv(config.csv, list(config.columns), date_column=config.date_column)
    assert config.dataset is not None  # ForecastConfig checked it
    return load_bundled(config.dataset)


def forecast_config(**given: Any) -> ForecastConfig:
    """A complete config from the fields ``given``: the rest from the dataset's preset
    (airline by default), or for a ``csv`` from its data and the generic settings (no
    log, no differencing). Either way what follows from a given field follows it:

        season m     the CSV's dates (12 monthly, 52 weekly, 7 daily; 1 without dates)
        horizon H    m (at least 1)
        validation   H
        lookback L   2·m, or 2·H without a season, at most half of what the training
                     part leaves after one horizon (and the differencing lag):
                     L ≤ (T_train − diff − H + 1) // 2, so that a short series keeps at
                     least L training windows (60 monthly points, H = 12: L = 12, 13
                     windows; two seasons would leave one)

    so ``forecast_config(dataset="airline", horizon=12)`` validates on 12 points.
    """
    names = {f.name for f in dataclasses.fields(ForecastConfig)}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValueError(f"forecast_config: expected fields from {sorted(names)}, got {unknown}")
    if given.get("csv") is None:
        name = given.get("dataset", "airline")
        if name not in PRESETS:
            raise ValueError(
                f"forecast_config: expected a dataset in {sorted(PRESETS)} (or a csv), got {name!r}"
            )
        base = PRESETS[name].to_dict()
        if "horizon" in given and "validation" not in given:
            base["validation"] = given["horizon"]
        return ForecastConfig.from_dict({**base, **given})
    # the generic settings for a CSV: no transform, calibration on validation (a short
    # series has no room for rolling origins); then what its data decides
    source: dict[str, Any] = {k: given[k] for k in ("csv", "columns", "date_column") if k in given}
    cfg = ForecastConfig.from_dict(
        {"dataset": None, **source, "log": False, "diff": 0, "calibration": "validation"}
    )
    derived = dict(given)
    series = load_series(cfg)
    if "season" not in derived:
        derived["season"] = series.default_season()
    derived.setdefault("horizon", max(derived["season"], 1))
    derived.setdefault("validation", derived["horizon"])
    m, h, v = derived["season"], derived["horizon"], derived["validation"]
    diff = derived.get("diff", 0)
    if all(isinstance(x, int) for x in (m, h, v, diff)):  # else ForecastConfig names it
        room = (len(series) - h - v - diff - h + 1) // 2  # half the training window span
        derived.setdefault("lookback", max(1, min(2 * m if m > 1 else 2 * h, room)))
    return ForecastConfig.from_dict({**cfg.to_dict(), **derived})
