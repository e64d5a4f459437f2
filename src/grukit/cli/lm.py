"""``grukit lm train | generate | demo``: the character-level language model from the shell.

    grukit lm train --out runs/d2l --preset d2l            d2l chapter 9.1, exactly
    grukit lm train --out runs/book --preset book          the whole book, held-out last 10%
    grukit lm train --out runs/x --text my.txt --raw-chars --epochs 20 --hidden-size 128
    grukit lm train --out runs/d2l --resume                continue from the last checkpoint
    grukit lm generate --run runs/d2l --prefix "time traveller" --length 50
    grukit lm demo --out runs/demo                         a short run, then a continuation

Every field of ``grukit.training.lm_config.LMConfig`` is an option (``--hidden-size``, ``--lr``,
``--max-tokens none``, ``--letters-only/--raw-chars``, …), overriding the preset.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing

import torch

__all__ = ["register"]

#: Threads for training. The d2l-size GEMMs (32×256 by 256×768) gain little from a second
#: thread, and on a CPU shared with other work two spinning OpenMP threads can run 10× slower.
DEFAULT_THREADS = 1


def _optional(kind: type):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = f"{kind.__name__} or none"
    return parse


def _add_config_options(p: argparse.ArgumentParser) -> None:
    from ..training.lm_config import LMConfig

    hints = typing.get_type_hints(LMConfig)
    g = p.add_argument_group("config (override the preset)")
    for f in dataclasses.fields(LMConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        if hint is bool:
            g.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS
            )
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = isinstance(hint, types.UnionType) and len(args) == 1
        base = args[0] if optional else hint
        g.add_argument(
            flag,
            dest=f.name,
            type=_optional(base) if optional else base,
            default=argparse.SUPPRESS,
            metavar=f.name.upper(),
        )
    p.add_argument(
        "--raw-chars",
        dest="letters_only",
        action="store_false",
        default=argparse.SUPPRESS,
        help="every character a token (default: d2l's letters-only preprocessing)",
    )


def register(subparsers) -> None:
    p = subparsers.add_parser("lm", help="character-level language model (d2l's Time Machine)")
    sub = p.add_subparsers(dest="lm_command", required=True)

    t = sub.add_parser("train", help="train into a run directory")
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--preset", default="d2l", help="d2l (default), book or demo")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch threads")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_options(t)
    t.set_defaults(func=_train)

    g = sub.add_parser("generate", help="continue a prefix with a trained model")
    g.add_argument("--run", required=True, help="run directory written by `grukit lm train`")
    g.add_argument("--prefix", default="time traveller")
    g.add_argument("--length", type=int, default=50)
    g.add_argument("--temperature", type=float, default=None, help="sample (default: greedy)")
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--seed", type=int, default=0, help="sampling seed")
    g.set_defaults(func=_generate)

    d = sub.add_parser("demo", help="a short training run, then a continuation")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=_demo)


def _config_from(args: argparse.Namespace):
    from ..training.lm_config import LMConfig, preset

    base = preset(args.preset)
    names = [f.name for f in dataclasses.fields(LMConfig)]
    overrides = {n: getattr(args, n) for n in names if hasattr(args, n)}  # given options only
    return dataclasses.replace(base, **overrides), overrides


def _set_threads(threads: int) -> None:
    if threads <= 0:
        raise ValueError(f"expected --threads > 0, got {threads}")
    torch.set_num_threads(threads)


def _report(summary: dict, out: str) -> None:
    val = summary["val_perplexity"]
    print(
        f"perplexity: train {summary['train_perplexity']:.3f}, "
        f"validation {'-' if val is None else f'{val:.3f}'}; "
        f"{summary['tokens_per_second']:,.0f} tokens/s ({summary['backend']} backend, "
        f"{summary['threads']} thread(s)); {summary['epochs_completed']} epochs in "
        f"{summary['wall_seconds']:.1f} s"
    )


def _train(args: argparse.Namespace) -> int:
    from ..training import RunDir
    from ..training.lm import LMConfig, train

    _set_threads(args.threads)
    config, overrides = _config_from(args)
    if args.resume:
        run = RunDir(args.out)
        if not run.config.is_file():
            raise FileNotFoundError(f"expected a run to resume in {args.out}, found no config.json")
        config = LMConfig.from_dict(run.read_config()["lm"])
        if overrides or args.preset != "d2l":
            print("note: --resume continues with the run's own config.json", file=sys.stderr)
    summary = train(config, args.out, resume=args.resume, show_progress=not args.no_progress)
    _report(summary, args.out)
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


def _demo(args: argparse.Namespace) -> int:
    from ..training import RunDir
    from ..training.lm import PRESETS, generate, load_run, train

    _set_threads(args.threads)
    config = PRESETS["demo"]
    print(
        f"training d2l's GRU language model on The Time Machine, {config.epochs} epochs of Adam "
        f"(the d2l preset: 500 of SGD) into {args.out}",
        file=sys.stderr,
    )
    summary = train(config, args.out, show_progress=not args.no_progress)
    _report(summary, args.out)
    model, vocab, _ = load_run(args.out)
    print("greedy continuation:", generate(model, vocab, "time traveller", 50))
    run = RunDir(args.out)
    print(f"plot: {run.file('perplexity.png')}")
    print(f"checkpoint: {run.checkpoint} (weights: {run.model})")
    return 0
