"""``grukit forecast train|predict``: GRU forecasts against naive baselines.

    grukit forecast train --dataset airline --out runs/airline
    grukit forecast train --csv data.csv --column sales --column price \\
        --date-column day --horizon 14 --out runs/sales
    grukit forecast predict --run runs/airline
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

from ..data.series import BUNDLED

_METRICS = ("mae", "rmse", "mape", "smape", "mase")


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
    src = t.add_mutually_exclusive_group()
    src.add_argument("--dataset", choices=sorted(BUNDLED), help="bundled series (default airline)")
    src.add_argument("--csv", metavar="PATH", help="a CSV file with a header row")
    t.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="NAME",
        help="CSV column to use (repeat for several); the FIRST is the target, the others "
        "become extra input features",
    )
    t.add_argument("--date-column", metavar="NAME", help="CSV column of timestamps")
    t.add_argument("--out", required=True, metavar="DIR", help="run directory")
    t.add_argument(
        "--horizon",
        type=int,
        help="H: steps forecast and test length (airline 24, co2 52, CSV one season)",
    )
    t.add_argument("--validation", type=int, help="validation points before test (default H)")
    t.add_argument(
        "--season",
        type=int,
        help="season length m (default from the dates: 12 monthly, 52 weekly, 7 daily)",
    )
    t.add_argument("--lookback", type=int, help="L: input steps per window")
    t.add_argument(
        "--log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log-transform the values (they must be positive)",
    )
    t.add_argument("--diff", type=int, metavar="LAG", help="difference at this lag (0: none)")
    t.add_argument(
        "--strategy",
        choices=("direct", "recursive"),
        default="direct",
        help="direct: one head emits all H steps (default); recursive: one step "
        "at a time, feeding back the median",
    )
    t.add_argument("--hidden-size", type=int)
    t.add_argument("--layers", type=int, default=1)
    t.add_argument("--dropout", type=float, default=0.0)
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float)
    t.add_argument("--weight-decay", type=float, default=1e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--backend", default="auto", help="grukit.GRU backend (default auto)")
    t.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    p = sub.add_parser("predict", help="print and write the next H values with intervals")
    p.add_argument("--run", required=True, metavar="DIR", help="a run directory from train")
    p.add_argument(
        "--csv", metavar="PATH", help="a CSV with the run's columns (default: the run's own series)"
    )
    p.add_argument("--output", metavar="PATH", help="CSV to write (default DIR/forecast.csv)")
    p.set_defaults(func=_predict)


def _config(args: argparse.Namespace):
    from ..training.forecast import ForecastConfig

    if args.csv is None and (args.column or args.date_column):
        raise ValueError("expected --column/--date-column only with --csv")
    return ForecastConfig(
        dataset=None if args.csv else (args.dataset or "airline"),
        csv=args.csv,
        columns=list(args.column),
        date_column=args.date_column,
        horizon=args.horizon,
        validation=args.validation,
        season=args.season,
        lookback=args.lookback,
        log=args.log,
        diff=args.diff,
        strategy=args.strategy,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        dropout=args.dropout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        backend=args.backend,
    )


def _data_line(report: dict[str, int]) -> str:
    return (
        f"data: {report['missing_values']} missing values, {report['inserted_timestamps']} "
        f"missing timestamps inserted; {report['filled_values']} values filled by linear "
        f"interpolation"
    )


def _train(args: argparse.Namespace) -> int:
    from ..training.forecast import train_forecast

    s = train_forecast(_config(args), args.out, resume=args.resume, quiet=args.quiet)
    print(_data_line(s["data"]))
    print(
        f"{s['dataset']} ({s['frequency']}): train {s['split']['train']}, validation "
        f"{s['split']['validation']}, test {s['test_points']} points; season {s['season']}; "
        f"best epoch {s['best_epoch']}"
    )
    print(f"{'test':<16}" + "".join(f"{m.upper():>10}" for m in _METRICS))
    rows = {"GRU": s["test"], **{k.replace("_", " "): v for k, v in s["baselines"].items()}}
    for name, m in rows.items():
        print(f"{name:<16}" + "".join(f"{m[k]:>10.4g}" for k in _METRICS))
    lo, hi = s["interval"]
    print(f"{round((hi - lo) * 100)}% interval coverage on test: {s['test']['coverage']:.2f}")
    print(f"wrote {Path(args.out) / 'summary.json'}, forecast.png, model.safetensors")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ..training.checkpoint import atomic_write
    from ..training.forecast import predict_forecast

    f = predict_forecast(args.run, csv=args.csv)
    print(_data_line(f["data"]))
    lo, hi = (round(q * 100) for q in f["interval"])
    header = ["time", f"q{lo}", "median", f"q{hi}"]
    buf = io.StringIO()
    buf.write(",".join(header) + "\n")
    print(f"{f['series']}: next {len(f['time'])} values of {f['target']}")
    print(f"{header[0]:<20}{header[1]:>12}{header[2]:>12}{header[3]:>12}")
    for t, a, m, b in zip(f["time"], f["lower"], f["median"], f["upper"], strict=True):
        print(f"{t:<20}{a:>12.4f}{m:>12.4f}{b:>12.4f}")
        buf.write(f"{t},{a:.6g},{m:.6g},{b:.6g}\n")
    out = Path(args.output) if args.output else Path(args.run) / "forecast.csv"
    atomic_write(out, buf.getvalue().encode())
    print(f"wrote {out}")
    return 0
