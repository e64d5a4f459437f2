"""The forecasting table in docs/forecasting.md: GRU vs baselines over seeds.

    .venv/bin/python benchmarks/forecast_seeds.py --out runs/forecast-seeds

For each bundled series and seed this runs ``grukit forecast train --dataset NAME
--seed S`` (the dataset's preset settings) into OUT/NAME-seedS, then prints a
Markdown table of test MAE and MASE (mean ± sample std over seeds) for the GRU and the
baselines (Holt-Winters with the ``forecast`` extra), the 80% interval's coverage (raw →
calibrated on validation), the GRU's pinball loss and CRPS, and writes it with every
figure (calibration margins, validation MAE) to OUT/table.md and OUT/results.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from grukit.training import write_json
from grukit.training.forecast import forecast_config, train_forecast


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/forecast-seeds", help="folder for the runs")
    ap.add_argument("--datasets", nargs="+", default=["airline", "co2"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results: dict[str, dict] = {}
    for name in args.datasets:
        runs = []
        for seed in args.seeds:
            t0 = time.perf_counter()
            s = train_forecast(
                forecast_config(dataset=name, seed=seed),
                out / f"{name}-seed{seed}",
                overwrite=True,  # a benchmark re-run replaces its own earlier runs
                show_progress=False,
            )
            secs = time.perf_counter() - t0
            runs.append({"seed": seed, "seconds": secs, **s})
            print(
                f"{name} seed {seed}: GRU MAE {s['test']['mae']:.4g}, seasonal naive "
                f"{s['baselines']['seasonal_naive']['mae']:.4g} ({secs:.0f} s)",
                file=sys.stderr,
            )
        results[name] = {
            "mae": [r["test"]["mae"] for r in runs],
            "mase": [r["test"]["mase"] for r in runs],
            "coverage": [r["test"]["coverage"] for r in runs],
            "coverage_raw": [r["test"]["coverage_raw"] for r in runs],
            "pinball": [r["test"]["pinball"] for r in runs],
            "pinball_raw": [r["test"]["pinball_raw"] for r in runs],
            "crps": [r["test"]["crps"] for r in runs],
            "margin": [r["calibration"].get("margin") for r in runs],
            "conformal_margin": [r["calibration"].get("conformal_margin") for r in runs],
            "val_mae": [r["val_mae"] for r in runs],
            "notes": runs[0]["notes"],
            "seconds": [r["seconds"] for r in runs],
            "baselines": runs[0]["baselines"],  # deterministic: the same for every seed
            "horizon": runs[0]["horizon"],
            "season": runs[0]["season"],
            "frequency": runs[0]["frequency"],
        }
    table = _table(results, len(args.seeds))
    print(table)
    (out / "table.md").write_text(table + "\n")
    write_json(out / "results.json", {"seeds": args.seeds, "results": results})
    return 0


def _pm(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.4g} ± {sd:.2g}"


def _table(results: dict[str, dict], n: int) -> str:
    rows = [
        f"| series | H | GRU test MAE (mean ± std, {n} seeds) | Holt-Winters MAE | "
        "seasonal naive MAE | naive MAE | GRU MASE | Holt-Winters MASE | seasonal naive MASE "
        "| 80% interval coverage (raw → calibrated) | GRU pinball (calibrated) | GRU CRPS | "
        "Holt-Winters CRPS (= MAE) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for name, r in results.items():
        b = r["baselines"]
        hw = b.get("holt_winters")
        hw_mae, hw_mase = (f"{hw['mae']:.4g}", f"{hw['mase']:.3g}") if hw else ("skipped",) * 2
        rows.append(
            f"| {name} ({r['frequency']}, m={r['season']}) | {r['horizon']} | {_pm(r['mae'])} | "
            f"{hw_mae} | {b['seasonal_naive']['mae']:.4g} | {b['naive']['mae']:.4g} | "
            f"{_pm(r['mase'])} | {hw_mase} | {b['seasonal_naive']['mase']:.3g} | "
            f"{_pm(r['coverage_raw'])} → {_pm(r['coverage'])} | {_pm(r['pinball'])} | "
            f"{_pm(r['crps'])} | {hw_mae} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
