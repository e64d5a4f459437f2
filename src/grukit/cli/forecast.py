"""``grukit forecast train|predict``: GRU forecasts against naive baselines.

    grukit forecast train --dataset airline --out runs/airline
    grukit forecast train --csv data.csv --column sales --column price \\
        --date-column day --horizon 14 --out runs/sales
    grukit forecast predict --run runs/airline
    grukit forecast train --out runs/airline --resume --epochs 300     extend the run
    grukit forecast predict --run runs/airline --csv new.csv --column y --date-column t

Every field of ``grukit.training.forecast_config.ForecastConfig`` is an option; the run
options and their rules (``--out``, ``--resume``, ``--overwrite``, ``--threads``,
``--no-progress``) are ``grukit lm train``'s too (train_options.py).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

from ..training.forecast_config import ForecastConfig, forecast_config
from .train_options import (
    add_config_options,
    add_run_options,
    given_options,
    resume_config,
    set_threads,
    start_training,
)

__all__ = ["register"]

_METRICS = ("mae", "rmse", "mape", "smape", "mase", "crps")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "forecast",
        help="time-series forecasting with a GRU",
        description="Train a GRU forecaster and compare it with naive baselines, or predict.",
    )
    sub = parser.add_subparsers(dest="action", required=True)

    t = sub.add_parser(
        "train",
        help="train on a bundled series or a CSV, evaluate on the last --horizon points",
        description="Chronological split: test = the last --horizon points, validation = the "
        "--validation points before them (model selection), training = the rest. Scaling and "
        "transforms are fitted on the training part only.",
    )
    add_run_options(t)
    add_config_options(
        t,
        ForecastConfig,
        "config (each overrides the dataset's preset; defaults: airline's; for a --csv, "
        "the season comes from its dates, the horizon is one season, as is validation, "
        "and the lookback two seasons)",
    )
    t.set_defaults(func=_train)

    p = sub.add_parser("predict", help="print and write the next H values with intervals")
    p.add_argument("--run", required=True, metavar="DIR", help="a run directory from train")
    p.add_argument(
        "--csv", metavar="PATH", help="a CSV with the run's columns (default: the run's own series)"
    )
    p.add_argument(
        "--column",
        dest="columns",
        action="append",
        metavar="NAME",
        help="with --csv: its columns, as many as the run's, target first (default: the run's "
        "column names)",
    )
    p.add_argument(
        "--date-column", metavar="NAME", help="with --csv: its timestamps (default: the run's)"
    )
    p.add_argument(
        "--output",
        metavar="PATH",
        help="CSV to write, atomically; an existing PATH must be a regular file "
        "(default DIR/forecast.csv)",
    )
    p.add_argument("--threads", type=int, help="torch threads (default torch's; at most the CPUs)")
    p.set_defaults(func=_predict)


def _config(args: argparse.Namespace) -> ForecastConfig:
    """The dataset's preset (or what a CSV implies) with the options given on top; with
    --resume the run's own config, which the options given must equal (--epochs aside)."""
    given = given_options(args, ForecastConfig)
    if "csv" not in given and ("columns" in given or "date_column" in given):
        raise ValueError("expected --column/--date-column only with --csv")
    if args.resume:
        return resume_config(args, ForecastConfig, given, "config", "forecast")
    return forecast_config(**given)


def _data_line(report: dict[str, int]) -> str:
    return (
        f"data: {report['missing_values']} missing values, {report['inserted_timestamps']} "
        f"missing timestamps inserted; {report['filled_values']} values filled by linear "
        f"interpolation"
    )


def _train(args: argparse.Namespace) -> int:
    from ..training.forecast import train_forecast

    config = _config(args)
    w = start_training(args)
    s = train_forecast(
        config,
        args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
    )
    if w.main:  # under torchrun, one report
        _report(s, args.out)
    return 0


def _report(s: dict[str, Any], out: str) -> None:
    print(_data_line(s["data"]))
    print(
        f"{s['dataset']} ({s['frequency']}): train {s['split']['train']}, validation "
        f"{s['split']['validation']}, test {s['test_points']} points; season {s['season']}; "
        f"best epoch {s['best_epoch']}"
    )
    print(f"{'test':<16}" + "".join(f"{m.upper():>10}" for m in _METRICS))
    labels = {"holt_winters": "Holt-Winters"}
    rows = {"GRU": s["test"], **{labels.get(k, k.replace("_", " ")): v
                                 for k, v in s["baselines"].items()}}  # fmt: skip
    for name, m in rows.items():
        print(f"{name:<16}" + "".join(f"{m[k]:>10.4g}" for k in _METRICS))
    lo, hi = s["interval"]
    t, cal = s["test"], s["calibration"]
    how = (
        f"calibrated on {cal['points']} validation points (split-conformal, {cal['scale']} "
        f"scale); raw {t['coverage_raw']:.2f}"
        if cal["method"] == "split-conformal"
        else f"raw: {cal['note']}"
    )
    print(f"{round((hi - lo) * 100)}% interval coverage on test: {t['coverage']:.2f} ({how})")
    print(f"pinball loss {t['pinball']:.4g}, CRPS {t['crps']:.4g} (≈ 2·pinball over the "
          f"quantiles; a point forecast's CRPS is its MAE)")  # fmt: skip
    for note in s.get("notes", []):
        print(f"note: {note}")
    for warning in s.get("warnings", []):
        print(f"WARNING: {warning}")
    print(f"wrote {Path(out) / 'summary.json'}, forecast.png, model.safetensors")


def _predict(args: argparse.Namespace) -> int:
    from ..training.checkpoint import atomic_write, check_writable_target
    from ..training.forecast import predict_forecast

    set_threads(args.threads)
    if args.csv is None and (args.columns or args.date_column):
        raise ValueError("expected --column/--date-column only with --csv")
    out = Path(args.output) if args.output else Path(args.run) / "forecast.csv"
    try:
        check_writable_target(out, follow_links=False)
    except ValueError as err:
        raise ValueError(f"--output: {err}") from None
    f = predict_forecast(args.run, csv=args.csv, columns=args.columns, date_column=args.date_column)
    print(_data_line(f["data"]))
    lo, hi = f["interval"]  # the band's quantile levels: an interval of hi − lo probability
    level = f"{(hi - lo) * 100:.3g}"  # calibrated bounds are no longer those quantiles
    header = ["time", f"lower{level}", "median", f"upper{level}"]
    buf = io.StringIO()
    buf.write(",".join(header) + "\n")
    print(f"{f['series']}: next {len(f['time'])} values of {f['target']}")
    print(f"{header[0]:<20}{header[1]:>12}{header[2]:>12}{header[3]:>12}")
    for t, a, m, b in zip(f["time"], f["lower"], f["median"], f["upper"], strict=True):
        print(f"{t:<20}{a:>12.4f}{m:>12.4f}{b:>12.4f}")
        buf.write(f"{t},{a:.6g},{m:.6g},{b:.6g}\n")
    check_writable_target(out, follow_links=False)  # again: it may have changed meanwhile
    atomic_write(out, buf.getvalue().encode())
    print(f"wrote {out}")
    return 0
