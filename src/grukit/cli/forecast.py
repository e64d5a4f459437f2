"""``grukit forecast train|predict``: GRU forecasts against naive baselines.

    grukit forecast train --dataset airline --out runs/airline
    grukit forecast train --csv data.csv --column sales --column price \\
        --date-column day --horizon 14 --out runs/sales
    grukit forecast predict --run runs/airline
    grukit forecast train --out runs/airline --resume --epochs 300     extend the run
    grukit forecast predict --run runs/airline --csv new.csv --column y --date-column t

An existing run is never replaced unless ``--overwrite`` is given; ``--resume`` continues
the run's own settings (only ``--epochs`` may change), as ``grukit lm train``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

from ..data.series import BUNDLED

_METRICS = ("mae", "rmse", "mape", "smape", "mase")


def register(subparsers: Any) -> None:
    from .lm import OVERWRITE_HELP, RESUME_HELP

    parser = subparsers.add_parser(
        "forecast",
        help="time-series forecasting with a GRU",
        description="Train a GRU forecaster and compare it with naive baselines, or predict.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    given = argparse.SUPPRESS  # config options: only those given are set (see --resume)

    t = sub.add_parser(
        "train",
        help="train on a bundled series or a CSV, evaluate on the last --horizon points",
        description="Chronological split: test = the last --horizon points, validation = the "
        "--validation points before them (model selection), training = the rest. Scaling and "
        "transforms are fitted on the training part only.",
    )
    src = t.add_mutually_exclusive_group()
    src.add_argument(
        "--dataset", choices=sorted(BUNDLED), default=given, help="bundled series (default airline)"
    )
    src.add_argument("--csv", metavar="PATH", default=given, help="a CSV file with a header row")
    t.add_argument(
        "--column",
        dest="columns",
        action="append",
        default=given,
        metavar="NAME",
        help="CSV column to use (repeat for several); the FIRST is the target, the others "
        "become extra input features",
    )
    t.add_argument("--date-column", metavar="NAME", default=given, help="CSV timestamps column")
    t.add_argument("--out", required=True, metavar="DIR", help="run directory")
    t.add_argument(
        "--horizon",
        type=int,
        default=given,
        help="H: steps forecast and test length (airline 24, co2 52, CSV one season)",
    )
    t.add_argument(
        "--validation", type=int, default=given, help="validation points before test (default H)"
    )
    t.add_argument(
        "--season",
        type=int,
        default=given,
        help="season length m (default from the dates: 12 monthly, 52 weekly, 7 daily)",
    )
    t.add_argument("--lookback", type=int, default=given, help="L: input steps per window")
    t.add_argument(
        "--log",
        action=argparse.BooleanOptionalAction,
        default=given,
        help="log-transform the values (they must be positive)",
    )
    t.add_argument(
        "--diff", type=int, metavar="LAG", default=given, help="difference at this lag (0: none)"
    )
    t.add_argument(
        "--strategy",
        choices=("direct", "recursive"),
        default=given,
        help="direct: one head emits all H steps (default); recursive: one step "
        "at a time, feeding back the median",
    )
    t.add_argument("--hidden-size", type=int, default=given)
    t.add_argument("--layers", dest="num_layers", type=int, default=given, help="default 1")
    t.add_argument("--dropout", type=float, default=given, help="default 0")
    t.add_argument("--epochs", type=int, default=given)
    t.add_argument("--batch-size", type=int, default=given, help="default 32")
    t.add_argument("--lr", type=float, default=given, help="Adam's (default 3e-3)")
    t.add_argument("--weight-decay", type=float, default=given, help="default 1e-4")
    t.add_argument("--seed", type=int, default=given, help="default 0")
    t.add_argument("--backend", default=given, help="grukit.GRU backend (default auto)")
    mode = t.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help=RESUME_HELP)
    mode.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    t.add_argument("--threads", type=int, help="torch threads (default torch's; at most the CPUs)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
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


_FIELDS = ("dataset", "csv", "columns", "date_column", "horizon", "validation", "season",
           "lookback", "log", "diff", "strategy", "hidden_size", "num_layers", "dropout",
           "epochs", "batch_size", "lr", "weight_decay", "seed", "backend")  # fmt: skip


def _flag(name: str) -> str:
    return {"columns": "--column", "num_layers": "--layers"}.get(
        name, "--" + name.replace("_", "-")
    )


def _config(args: argparse.Namespace):
    from ..training.forecast import ForecastConfig

    given = {k: getattr(args, k) for k in _FIELDS if hasattr(args, k)}
    if "csv" not in given and ("columns" in given or "date_column" in given):
        raise ValueError("expected --column/--date-column only with --csv")
    if "csv" in given:
        given["dataset"] = None
    if args.resume:
        return _resume_config(args, given)
    return ForecastConfig(**given)


def _resume_config(args: argparse.Namespace, given: dict[str, Any]):
    """The run's own (resolved) config, --epochs applied; other options given must match."""
    from ..training import RunDir
    from ..training.forecast import ForecastConfig

    run = RunDir(args.out)
    if not run.config.is_file():
        raise FileNotFoundError(f"expected a run to resume in {args.out}, found no config.json")
    saved = run.read_config().get("config")
    if not isinstance(saved, dict) or set(saved) != set(_FIELDS):
        raise ValueError(f"expected a forecast run to resume in {args.out}, got another")
    diff = [k for k, v in given.items() if k != "epochs" and v != saved[k]]
    if diff:
        got = ", ".join(f"{_flag(k)} {given[k]!r} (the run's: {saved[k]!r})" for k in diff)
        raise ValueError(
            f"expected --resume with the run's own settings (only --epochs may change), got {got}"
        )
    return ForecastConfig(**{**saved, "epochs": given.get("epochs", saved["epochs"])})


def _data_line(report: dict[str, int]) -> str:
    return (
        f"data: {report['missing_values']} missing values, {report['inserted_timestamps']} "
        f"missing timestamps inserted; {report['filled_values']} values filled by linear "
        f"interpolation"
    )


def _train(args: argparse.Namespace) -> int:
    from ..training import RunDir
    from ..training.forecast import train_forecast
    from .lm import set_threads

    set_threads(args.threads)
    config = _config(args)
    if not args.resume and not args.overwrite and RunDir(args.out).holds_files():
        raise ValueError(
            f"expected --out to be a new or empty folder, got {args.out} holding files (a run?); "
            "pass --resume to continue it or --overwrite to replace it"
        )
    s = train_forecast(
        config, args.out, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet
    )
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
    from ..training.checkpoint import atomic_write, check_writable_target
    from ..training.forecast import predict_forecast
    from .lm import set_threads

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
    lo, hi = (round(q * 100) for q in f["interval"])
    header = ["time", f"q{lo}", "median", f"q{hi}"]
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
