"""The forecasting tables in docs/forecasting.md and the README: GRU (one model and a seed
ensemble) vs baselines over seeds, and a rolling-origin backtest.

    .venv/bin/python benchmarks/forecast_seeds.py --out runs/forecast-seeds

For each bundled series, each ensemble size K in --ensembles and each seed S this runs
``grukit forecast train --dataset NAME --seed S --ensemble K`` (the dataset's preset
settings) into OUT/NAME-kK-seedS; with --folds F > 0 it also runs ``grukit forecast
backtest --dataset NAME --folds F`` (K = 1, seed 0) into OUT/NAME-backtest. It prints
Markdown tables — test MAE, the 80% interval's coverage (raw → calibrated), pinball loss
and CRPS (mean ± sample std over seeds) beside the deterministic baselines (naive,
seasonal naive, Holt-Winters with the ``forecast`` extra); the backtest's mean ± std over
folds — and writes them with every figure to OUT/table.md and OUT/results.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from grukit.training import write_json
from grukit.training.backtest import backtest_forecast
from grukit.training.forecast import forecast_config, train_forecast


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/forecast-seeds", help="folder for the runs")
    ap.add_argument("--datasets", nargs="+", default=["airline", "co2"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--ensembles", nargs="+", type=int, default=[1, 5], help="sizes K")
    ap.add_argument("--folds", type=int, default=4, help="backtest folds (0: none)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results: dict[str, Any] = {}
    for name in args.datasets:
        for k in args.ensembles:
            runs = []
            for seed in args.seeds:
                t0 = time.perf_counter()
                s = train_forecast(
                    forecast_config(dataset=name, seed=seed, ensemble=k),
                    out / f"{name}-k{k}-seed{seed}",
                    overwrite=True,  # a benchmark re-run replaces its own earlier runs
                    show_progress=False,
                )
                runs.append({"seed": seed, "seconds": time.perf_counter() - t0, **s})
                print(f"{name} K={k} seed {seed}: MAE {s['test']['mae']:.4g}, coverage "
                      f"{s['test']['coverage']:.2f}", file=sys.stderr)  # fmt: skip
            results[f"{name} K={k}"] = _collect(runs)
            write_json(out / "results.json", {"args": vars(args), "results": results})
        if args.folds:  # airline's 144 points hold 4 folds of 12, not of its 24-month horizon
            given = {"horizon": 12} if name == "airline" else {}
            cfg = forecast_config(dataset=name, seed=0, **given)
            b = backtest_forecast(cfg, out / f"{name}-backtest", folds=args.folds,
                                  overwrite=True, show_progress=False)  # fmt: skip
            results[f"{name} backtest"] = b
            write_json(out / "results.json", {"args": vars(args), "results": results})
    table = _table(results, len(args.seeds))
    print(table)
    (out / "table.md").write_text(table + "\n")
    return 0


def _collect(runs: list[dict[str, Any]]) -> dict[str, Any]:
    t = [r["test"] for r in runs]
    return {
        **{
            m: [x[m] for x in t]
            for m in ("mae", "mase", "coverage", "coverage_raw", "pinball", "crps")
        },  # fmt: skip
        "margin": [r["calibration"].get("margin") for r in runs],
        "seconds": [r["seconds"] for r in runs],
        "per_seed": [
            {"seed": r["seed"], "test": r["test"], "members": r.get("members")} for r in runs
        ],  # fmt: skip
        "baselines": runs[0]["baselines"],  # deterministic: the same for every seed
        "notes": runs[0]["notes"],
        "horizon": runs[0]["horizon"],
    }


def _pm(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.4g} ± {sd:.2g}"


def _table(results: dict[str, Any], n: int) -> str:
    rows = [
        f"| series | forecast | test MAE (mean ± std, {n} seeds) | 80% coverage (raw → "
        "calibrated) | pinball | CRPS |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    names = {"naive": "naive", "seasonal_naive": "seasonal naive",
             "holt_winters": "Holt-Winters"}  # fmt: skip
    done = set()
    for key, r in results.items():
        name, what = key.split(" ", 1)
        if what == "backtest":
            continue
        rows.append(f"| {name} | GRU {what} | {_pm(r['mae'])} | {_pm(r['coverage_raw'])} → "
                    f"{_pm(r['coverage'])} | {_pm(r['pinball'])} | {_pm(r['crps'])} |")  # fmt: skip
        if name not in done:
            done.add(name)
            for b, label in names.items():
                if b in r["baselines"]:
                    v = r["baselines"][b]
                    rows.append(f"| {name} | {label} | {v['mae']:.4g} | — | {v['pinball']:.4g} "
                                f"| {v['crps']:.4g} |")  # fmt: skip
    backtests = {k: v for k, v in results.items() if k.endswith("backtest")}
    if backtests:
        rows += ["", "| series | method | backtest MAE (mean ± std over folds) | 80% coverage "
                 "| pinball |", "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
        for key, b in backtests.items():
            for m in b["methods"]:
                mean, sd = b["mean"][m], b["std"][m]
                cov = f"{mean['coverage']:.3g} ± {sd['coverage']:.2g}" if m == "gru" else "—"
                rows.append(f"| {key.split()[0]} ({b['folds']} folds) | "
                            f"{names.get(m, 'GRU')} | {mean['mae']:.4g} ± {sd['mae']:.2g} | "
                            f"{cov} | {mean['pinball']:.4g} ± {sd['pinball']:.2g} |")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
