"""``grukit lm train | generate | demo``: the character-level language model from the shell.

    grukit lm train --out runs/d2l --preset d2l            d2l chapter 9.1, exactly
    grukit lm train --out runs/book --preset book          the whole book, held-out last 10%
    grukit lm train --out runs/x --text my.txt --raw-chars --epochs 20 --hidden-size 128
    grukit lm train --out runs/d2l --resume                continue from the last checkpoint
    grukit lm train --out runs/d2l --overwrite             replace the run in runs/d2l
    grukit lm generate --run runs/d2l --prefix "time traveller" --length 50
    grukit lm demo --out runs/demo                         a short run, then a continuation

Every field of ``grukit.training.lm_config.LMConfig`` is an option (``--hidden-size``, ``--lr``,
``--max-tokens none``, ``--letters-only/--raw-chars``, …), overriding the preset. The run
options and their rules (``--out``, ``--resume``, ``--overwrite``, ``--threads``,
``--no-progress``) are ``grukit forecast train``'s too (train_options.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

from ..training.lm_config import PRESETS, LMConfig
from .train_options import (
    DEFAULT_THREADS,
    OVERWRITE_HELP,
    add_config_options,
    add_run_options,
    given_options,
    resume_config,
    start_training,
)

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("lm", help="character-level language model (d2l's Time Machine)")
    sub = p.add_subparsers(dest="lm_command", required=True)

    t = sub.add_parser("train", help="train into a run directory")
    add_run_options(t)
    t.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default d2l")
    add_config_options(t, LMConfig, "config (each overrides the preset's; defaults: d2l's)")
    t.add_argument(
        "--raw-chars",
        dest="letters_only",
        action="store_false",
        default=argparse.SUPPRESS,
        help="every character a token (the same as --no-letters-only)",
    )
    t.set_defaults(func=_train)

    g = sub.add_parser("generate", help="continue a prefix with a trained model")
    g.add_argument("--run", required=True, help="run directory written by `grukit lm train`")
    g.add_argument("--prefix", default="time traveller")
    g.add_argument("--length", type=int, default=50)
    g.add_argument("--temperature", type=float, default=None, help="> 0: sample (default: greedy)")
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--seed", type=int, default=0, help="sampling seed")
    g.set_defaults(func=_generate)

    d = sub.add_parser(
        "demo",
        help="a short training run, then a continuation",
        description="Trains the demo preset into --out. An earlier demo run there (the same "
        "config, so the same result) is replaced; any other run is refused unless --overwrite.",
    )
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    d.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=_demo)


def _config(args: argparse.Namespace) -> LMConfig:
    """The preset (d2l by default) with the options given on top; with --resume the run's
    own config, which a --preset's fields and the options given must equal (--epochs
    aside)."""
    given = given_options(args, LMConfig)
    if args.resume:
        wanted = {**PRESETS[args.preset].to_dict(), **given} if args.preset else given
        return resume_config(args, LMConfig, wanted, "lm", "language-model")
    return LMConfig.from_dict({**PRESETS[args.preset or "d2l"].to_dict(), **given})


def _report(summary: dict[str, Any]) -> None:
    val, kept = summary["val_perplexity"], summary["kept_epoch"]
    which = "" if kept == summary["epochs_completed"] else f" (epoch {kept}, the best validation)"
    print(
        f"perplexity{which}: train {summary['train_perplexity']:.3f}, "
        f"validation {'-' if val is None else f'{val:.3f}'}; "
        f"{summary['tokens_per_second']:,.0f} tokens/s ({summary['backend']} backend, "
        f"{summary['threads']} thread(s)); {summary['epochs_completed']} epochs in "
        f"{summary['wall_seconds']:.1f} s"
    )
    b = summary.get("baselines")
    if b is not None and val is not None:
        kn = b["kneser_ney"]
        print(
            f"baselines on the same validation text: unigram {b['unigram']['val_perplexity']:.3f}"
            f", Kneser-Ney {kn['order']}-gram {kn['val_perplexity']:.3f}"
        )
        if val > kn["val_perplexity"]:
            print(
                f"note: the {kn['order']}-gram count model predicts the validation text better "
                f"than this model ({kn['val_perplexity']:.3f} < {val:.3f})"
            )


def _train(args: argparse.Namespace) -> int:
    from ..training.lm import train_lm

    config = _config(args)
    w = start_training(args)
    summary = train_lm(
        config,
        args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
    )
    if w.main:  # under torchrun, one report
        _report(summary)
        print(f"run directory: {args.out}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from ..training.lm import generate, load_run

    model, vocab, config = load_run(args.run)
    gen = torch.Generator().manual_seed(args.seed)
    text = generate(
        model,
        vocab,
        args.prefix,
        args.length,
        letters_only=config.letters_only,
        temperature=args.temperature,
        top_k=args.top_k,
        generator=gen,
    )
    print(text)
    return 0


def _is_demo_run(out: str, config: LMConfig) -> bool:
    """Whether ``out`` holds a run of exactly this config (rerunning it loses nothing)."""
    from ..training import RunDir

    run = RunDir(out)
    try:
        return run.read_config().get("lm") == config.to_dict()
    except (OSError, ValueError):
        return False


def _demo(args: argparse.Namespace) -> int:
    from ..training import RunDir
    from ..training.lm import generate, load_run, train_lm

    config = PRESETS["demo"]
    overwrite = args.overwrite or _is_demo_run(args.out, config)
    start_training(args, overwrite=overwrite)
    print(
        f"training d2l's GRU language model on The Time Machine, {config.epochs} epochs of Adam "
        f"(the d2l preset: 500 of SGD) into {args.out}",
        file=sys.stderr,
    )
    summary = train_lm(config, args.out, overwrite=overwrite, show_progress=not args.no_progress)
    _report(summary)
    model, vocab, _ = load_run(args.out)
    print("greedy continuation:", generate(model, vocab, "time traveller", 50))
    run = RunDir(args.out)
    print(f"plot: {run.file('perplexity.png')}")
    print(f"checkpoint: {run.checkpoint} (weights: {run.model})")
    return 0
