"""``grukit lm train | generate | demo``: the character-level language model from the shell.

    grukit lm train --out runs/d2l --preset d2l            d2l chapter 9.1, exactly
    grukit lm train --out runs/book --preset book          the whole book, held-out last 10%
    grukit lm train --out runs/x --text my.txt --raw-chars --epochs 20 --hidden-size 128
    grukit lm train --out runs/d2l --resume                continue from the last checkpoint
    grukit lm train --out runs/d2l --overwrite             replace the run in runs/d2l
    grukit lm generate --run runs/d2l --prefix "time traveller" --length 50
    grukit lm demo --out runs/demo                         a short run, then a continuation

Every field of ``grukit.training.lm_config.LMConfig`` is an option (``--hidden-size``, ``--lr``,
``--max-tokens none``, ``--letters-only/--raw-chars``, …), overriding the preset.

An existing run is never replaced unless ``--overwrite`` is given; ``--resume`` continues
the run's own config (only ``--epochs`` may change, to extend it), as ``grukit forecast``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing

import torch

__all__ = ["OVERWRITE_HELP", "RESUME_HELP", "register", "set_threads"]

OVERWRITE_HELP = (
    "replace the run already in --out: the new run is built in a hidden folder beside it "
    "and swapped in, in one step, once its config and first checkpoint are written (the "
    "earlier run is then deleted). Without it, an --out holding files is refused"
)
RESUME_HELP = (
    "continue the run in --out from its last checkpoint, with the run's own settings: "
    "options given with it must equal the run's, except --epochs, which may extend it. "
    "Refused if the data, the settings or the checkpoint's integrity check do not match"
)

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
    t.add_argument("--preset", default=None, help="d2l (default), book or demo")
    mode = t.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help=RESUME_HELP)
    mode.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    t.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help="torch threads (at most the CPUs this process may use)",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_options(t)
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


def _config_from(args: argparse.Namespace):
    """(config, overrides): the preset (d2l by default) with the options given on top."""
    from ..training.lm_config import LMConfig, preset

    base = preset(args.preset or "d2l")
    names = [f.name for f in dataclasses.fields(LMConfig)]
    overrides = {n: getattr(args, n) for n in names if hasattr(args, n)}  # given options only
    return dataclasses.replace(base, **overrides), overrides


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _resume_config(args: argparse.Namespace):
    """The run's own config, --epochs applied; other options given must match it."""
    from ..training import RunDir
    from ..training.lm import LMConfig

    run = RunDir(args.out)
    if not run.config.is_file():
        raise FileNotFoundError(f"expected a run to resume in {args.out}, found no config.json")
    saved = run.read_config()
    if not isinstance(saved.get("lm"), dict):
        raise ValueError(f"expected a language-model run to resume in {args.out}, got another")
    theirs = LMConfig.from_dict(saved["lm"])
    given, overrides = _config_from(args)
    wanted = given.to_dict() if args.preset else overrides
    diff = [k for k, v in wanted.items() if k != "epochs" and v != getattr(theirs, k)]
    if diff:
        got = ", ".join(
            f"{_flag(k)} {wanted[k]!r} (the run's: {getattr(theirs, k)!r})" for k in diff
        )
        raise ValueError(
            f"expected --resume with the run's own settings (only --epochs may change), got {got}"
        )
    return dataclasses.replace(theirs, epochs=wanted.get("epochs", theirs.epochs))


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(threads: int | None) -> None:
    """torch's thread count: > 0, capped (with a note) at the CPUs this process may use
    (libgomp crashes on huge counts)."""
    if threads is None:
        return
    if threads <= 0:
        raise ValueError(f"expected --threads > 0, got {threads}")
    cpus = usable_cpus()
    if threads > cpus:
        print(
            f"note: --threads {threads} is more than the {cpus} CPU(s) here; using {cpus}",
            file=sys.stderr,
        )
        threads = cpus
    torch.set_num_threads(threads)


def _refuse_existing(out: str) -> None:
    from ..training import RunDir

    if RunDir(out).holds_files():
        raise ValueError(
            f"expected --out to be a new or empty folder, got {out} holding files (a run?); "
            "pass --resume to continue it or --overwrite to replace it"
        )


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
    from ..training.lm import train

    set_threads(args.threads)
    if args.resume:
        config = _resume_config(args)
    else:
        config, _ = _config_from(args)
        if not args.overwrite:
            _refuse_existing(args.out)
    summary = train(
        config,
        args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
    )
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


def _is_demo_run(out: str, config) -> bool:
    """Whether ``out`` holds a run of exactly this config (rerunning it loses nothing)."""
    from ..training import RunDir

    run = RunDir(out)
    try:
        return run.read_config().get("lm") == config.to_dict()
    except (OSError, ValueError):
        return False


def _demo(args: argparse.Namespace) -> int:
    from ..training import RunDir
    from ..training.lm import PRESETS, generate, load_run, train

    set_threads(args.threads)
    config = PRESETS["demo"]
    overwrite = args.overwrite or _is_demo_run(args.out, config)
    if not overwrite:
        _refuse_existing(args.out)
    print(
        f"training d2l's GRU language model on The Time Machine, {config.epochs} epochs of Adam "
        f"(the d2l preset: 500 of SGD) into {args.out}",
        file=sys.stderr,
    )
    summary = train(config, args.out, overwrite=overwrite, show_progress=not args.no_progress)
    _report(summary, args.out)
    model, vocab, _ = load_run(args.out)
    print("greedy continuation:", generate(model, vocab, "time traveller", 50))
    run = RunDir(args.out)
    print(f"plot: {run.file('perplexity.png')}")
    print(f"checkpoint: {run.checkpoint} (weights: {run.model})")
    return 0
