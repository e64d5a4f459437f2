"""The count baselines of docs/lm.md: unigram and Kneser-Ney n-grams on the LM's own split.

    .venv/bin/python benchmarks/ngram.py --out runs/bench-ngram

The tokens and split are those of ``grukit lm train --preset book`` (``load_data``: d2l's
preprocessing of The Time Machine, the last 10% held out, the whole training part). For
every discount variant and order this fits ``KneserNeyLM`` on the training part, scores the
validation part as one stream (every token after the first), and reports the perplexity on
the training part's last 10% (fitted on the rest: how ``best_kneser_ney`` picks the order,
never looking at the validation text), the validation perplexity and the fit seconds (median
of --repeats). Prints a Markdown table and writes it, with every figure, to OUT/ngram.md and
OUT/ngram.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from grukit.models.ngram import Discount, KneserNeyLM, UnigramLM, holdout_perplexities
from grukit.training import write_json
from grukit.training.lm import PRESETS, load_data

VARIANTS: tuple[Discount, ...] = ("modified", "single", 0.75)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench-ngram", help="folder for the table")
    ap.add_argument("--orders", nargs="+", type=int, default=list(range(2, 9)))
    ap.add_argument("--repeats", type=int, default=3, help="fits timed per order (median)")
    args = ap.parse_args(argv)
    train_t, val_t, vocab = load_data(PRESETS["book"])
    train, val, v = train_t.numpy(), val_t.numpy(), len(vocab)
    rows: list[dict[str, Any]] = []
    for variant in VARIANTS:
        holdout = holdout_perplexities(train, v, args.orders, discount=variant)
        for n in args.orders:
            secs = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                model = KneserNeyLM(n, v, discount=variant).fit(train)
                secs.append(time.perf_counter() - t0)
            rows.append(
                {
                    "discount": variant,
                    "order": n,
                    "holdout_perplexity": holdout[n],
                    "val_perplexity": model.perplexity(val),
                    "fit_seconds": statistics.median(secs),
                    "best_on_holdout": n == min(holdout, key=lambda k: (holdout[k], k)),
                }
            )
    unigram = UnigramLM(v).fit(train).perplexity(val)
    table = _table(rows, unigram, len(train), len(val), v)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ngram.md").write_text(table + "\n")
    write_json(
        out / "ngram.json",
        {
            "train_tokens": len(train),
            "val_tokens": len(val),
            "vocab_size": v,
            "unigram_val_perplexity": unigram,
            "kneser_ney": rows,
        },
    )
    return 0


def _table(rows: list[dict[str, Any]], unigram: float, n_train: int, n_val: int, v: int) -> str:
    lines = [
        f"Time Machine, d2l preprocessing: {n_train:,} training tokens, {n_val:,} validation "
        f"tokens, V = {v}. Add-one unigram: validation perplexity {unigram:.3f}.",
        "",
        "| discount | order | train-tail perplexity | validation perplexity | fit s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        mark = " (chosen)" if r["best_on_holdout"] else ""
        d = r["discount"] if isinstance(r["discount"], str) else f"fixed D = {r['discount']}"
        lines.append(
            f"| {d} | {r['order']}{mark} | {r['holdout_perplexity']:.3f} | "
            f"{r['val_perplexity']:.3f} | {r['fit_seconds']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
