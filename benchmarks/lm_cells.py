"""The language model's book preset with each recurrent cell: validation perplexity and
training tokens/s, one run each (``grukit.training.lm.train_lm``, as ``grukit lm train``).

The base is the book preset as it was when this table was made (one layer of 512, no
zoneout, Adam, 12 epochs: ``BASE``'s options over ``--preset book``), so that every cell,
LSTM and minGRU included (they take no zoneout), trains the same model size and schedule.

    gru              the base as it is
    layernorm-gru    grukit.LayerNormGRU
    gru + zoneout    grukit.GRU(zoneout=0.1)
    mingru           grukit.MinGRU (parallel scan)
    lstm             grukit.LSTM

Every run is ``grukit lm train --preset book BASE --cell C [--zoneout Z] --threads T``
with the same seed; the table gives the kept (best validation) epoch's figures and each run's
command. One torch thread by default, as ``grukit lm train``.

    .venv/bin/python benchmarks/lm_cells.py --out runs/lm-cells
    .venv/bin/python benchmarks/lm_cells.py --out runs/lm-cells --epochs 2   # shorter
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from grukit.training import write_json
from grukit.training.lm import train_lm
from grukit.training.lm_config import CELLS, LMConfig, preset

#: The base over today's book preset, and the CLI options that make it.
BASE: dict[str, Any] = {
    "num_layers": 1, "hidden_size": 512, "zoneout": 0.0, "optimizer": "adam",
    "weight_decay": 0.0, "epochs": 12,
}  # fmt: skip
BASE_OPTIONS = (
    "--num-layers 1 --hidden-size 512 --zoneout 0 --optimizer adam --weight-decay 0 --epochs 12"
)

#: (label, LMConfig overrides, the CLI options that make them)
VARIANTS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("gru", {"cell": "gru"}, "--cell gru"),
    ("layernorm-gru", {"cell": "layernorm-gru"}, "--cell layernorm-gru"),
    ("gru + zoneout 0.1", {"cell": "gru", "zoneout": 0.1}, "--cell gru --zoneout 0.1"),
    ("mingru", {"cell": "mingru"}, "--cell mingru"),
    ("lstm", {"cell": "lstm"}, "--cell lstm"),
)


def run(out: Path, epochs: int | None, threads: int) -> list[dict[str, Any]]:
    """Train every variant that LMConfig knows into out/<label>; their figures."""
    torch.set_num_threads(threads)
    fields = {f.name for f in dataclasses.fields(LMConfig)}
    rows = []
    for label, overrides, options in VARIANTS:
        if overrides["cell"] not in CELLS or not set(overrides) <= fields:
            print(f"{label}: not a cell of this grukit's LMConfig, skipped")
            continue
        config = dataclasses.replace(preset("book"), **{**BASE, **overrides})
        command = (
            f"grukit lm train --out runs/{label.split()[0]} --preset book {BASE_OPTIONS} {options}"
        )
        if epochs is not None:
            config = dataclasses.replace(config, epochs=epochs)
            command += f" --epochs {epochs}"
        command += f" --threads {threads}"
        start = time.perf_counter()
        summary = train_lm(config, out / label.replace(" ", ""), overwrite=True)
        rows.append(
            {
                "cell": label,
                "command": command,
                "kept_epoch": summary["kept_epoch"],
                "val_perplexity": summary["val_perplexity"],
                "train_perplexity": summary["train_perplexity"],
                "tokens_per_second": summary["tokens_per_second"],
                "wall_seconds": time.perf_counter() - start,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| cell | validation ppl | train ppl | kept epoch | tokens/s | wall | command |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {r['val_perplexity']:.3f} | {r['train_perplexity']:.3f} "
            f"| {r['kept_epoch']} | {r['tokens_per_second']:,.0f} | {r['wall_seconds']:.0f} s "
            f"| `{r['command']}` |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs")
    parser.add_argument("--epochs", type=int, default=None, help="instead of the preset's")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    rows = run(args.out, args.epochs, args.threads)
    write_json(args.out / "lm_cells.json", rows)
    text = table(rows)
    (args.out / "lm_cells.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
