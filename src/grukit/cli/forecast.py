"""``grukit forecast train|backtest|predict``: GRU forecasts against baselines.

    grukit forecast train --dataset airline --out runs/airline
    grukit forecast train --csv data.csv --column sales --column price \\
        --date-column day --horizon 14 --out runs/sales
    grukit forecast predict --run runs/airline
    grukit forecast train --dataset airline --ensemble 5 --out runs/airline-k5
    grukit forecast backtest --dataset co2 --folds 4 --out runs/co2-backtest
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

    b = sub.add_parser(
        "backtest",
        help="rolling-origin backtest: K successive test windows at the end of the series",
        description="Fold k of K tests the --horizon points starting K−k+1 horizons before "
        "the end; each fold trains on the points before its window (--refit, default) or "
        "fold 1's model is rolled forward (--no-refit). Prints the GRU's and the baselines' "
        "MAE, 80%% coverage and pinball loss per fold and their mean ± std; writes "
        "summary.json, backtest.png and the folds' runs into --out.",
    )
    add_run_options(b)
    b.add_argument("--folds", type=int, required=True, metavar="K", help="test windows")
    b.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train a model per fold (default), or train fold 1's only and roll it forward",
    )
    add_config_options(b, ForecastConfig, "config (as for train)")
    b.set_defaults(func=_backtest)

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


_LABELS = {"holt_winters": "Holt-Winters", "gru": "GRU"}


def _label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " "))


def _report(s: dict[str, Any], out: str) -> None:
    print(_data_line(s["data"]))
    members = s.get("members") or []
    best = (
        f"best epoch {s['best_epoch']}"
        if not members
        else "best epochs " + ", ".join(str(m["best_epoch"]) for m in members)
    )
    print(
        f"{s['dataset']} ({s['frequency']}): train {s['split']['train']}, validation "
        f"{s['split']['validation']}, test {s['test_points']} points; season {s['season']}; "
        f"{best}"
    )
    head = ["COVER", "PINBALL"]
    print(f"{'test':<18}" + "".join(f"{m.upper():>10}" for m in (*_METRICS, *head)))
    gru = f"GRU ×{len(members)} median" if members else "GRU"
    rows = {gru: s["test"]}
    rows.update({f"  member {i + 1} (seed {m['seed']})": m["test"] for i, m in enumerate(members)})
    rows.update({_label(k): v for k, v in s["baselines"].items()})
    for name, m in rows.items():
        cover = f"{m['coverage']:>10.2f}" if "coverage" in m else f"{'—':>10}"
        print(f"{name:<18}" + "".join(f"{m[k]:>10.4g}" for k in _METRICS) + cover
              + f"{m['pinball']:>10.4g}")  # fmt: skip
    lo, hi = s["interval"]
    t, cal = s["test"], s["calibration"]
    how = (
        f"calibrated on {cal['points']} {cal['source']} points (split-conformal, "
        f"{cal['scale']} scale); raw {t['coverage_raw']:.2f}"
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


def _backtest(args: argparse.Namespace) -> int:
    from ..training.backtest import backtest_forecast

    config = forecast_config(**given_options(args, ForecastConfig))
    start_training(args, overwrite=args.overwrite)
    b = backtest_forecast(
        config,
        args.out,
        folds=args.folds,
        refit=args.refit,
        resume=args.resume,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
    )
    h, refit = b["horizon"], "refit per fold" if b["refit"] else "fold 1's model rolled forward"
    print(f"{b['dataset']}: {b['folds']}-fold rolling-origin backtest, {h} points per fold, "
          f"{refit}")  # fmt: skip
    cols = ("MAE", "COVER", "PINBALL")
    print(f"{'fold':<6}{'method':<16}" + "".join(f"{c:>10}" for c in cols))
    for r in b["fold_results"]:
        for m in b["methods"]:
            cover = f"{r[m]['coverage']:>10.2f}" if m == "gru" else f"{'—':>10}"
            print(f"{r['fold']:<6}{_label(m):<16}{r[m]['mae']:>10.4g}{cover}"
                  f"{r[m]['pinball']:>10.4g}")  # fmt: skip
    for m in b["methods"]:
        mean, sd = b["mean"][m], b["std"][m]
        cover = f"{mean['coverage']:.2f} ± {sd['coverage']:.2f}" if m == "gru" else "—"
        print(f"{'mean':<6}{_label(m):<16}MAE {mean['mae']:.4g} ± {sd['mae']:.2g}, coverage "
              f"{cover}, pinball {mean['pinball']:.4g} ± {sd['pinball']:.2g}")  # fmt: skip
    for note in b["notes"]:
        print(f"note: {note}")
    print(f"wrote {Path(args.out) / 'summary.json'}, backtest.png")
    return 0


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
    if f["members"] > 1:
        print(f"(the median of the {f['members']} members' quantiles)")
    print(f"wrote {out}")
    return 0
