"""What ``grukit lm train`` and ``grukit forecast train`` share: options built from their
typed configs, the run options (--out, --resume, --overwrite, --threads, --no-progress),
the resume rule, and the process-wide settings a training command opts into.

Every field of the config is an option: ``--hidden-size 64``, ``--max-tokens none`` for a
field that may be None, ``--letters-only/--no-letters-only`` for a bool, ``--column A
--column B`` for a tuple; its help is the field's. Only the options given are set, on top
of the preset (``--resume``: on top of the run's own config, which they must equal except
``--epochs``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from ..training import RunDir, distributed
from ..training.config import TrainConfig
from ..training.distributed import World
from ..training.memory import keep_freed_memory

__all__ = [
    "add_config_options",
    "add_run_options",
    "flag",
    "given_options",
    "resume_config",
    "set_threads",
    "start_training",
]

C = TypeVar("C", bound=TrainConfig)

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
#: Threads for training. The models' GEMMs (d2l's 32×256 by 256×768) gain little from a
#: second thread, and on a CPU shared with other work two spinning OpenMP threads can run
#: 10× slower.
DEFAULT_THREADS = 1


#: Options not named after their field: a repeated option, one value each.
_FLAGS = {"columns": ("--column", "NAME")}


def flag(name: str) -> str:
    """The option of config field ``name``: ``--hidden-size``."""
    return _FLAGS[name][0] if name in _FLAGS else "--" + name.replace("_", "-")


def _optional(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = f"{kind.__name__} or none"  # argparse's "invalid … value"
    return parse


def add_config_options(p: argparse.ArgumentParser, cls: type[TrainConfig], title: str) -> None:
    """An option per field of ``cls``, each unset unless given (argparse.SUPPRESS)."""
    g = p.add_argument_group(title)
    types = cls.field_types()
    loop = {f.name for f in dataclasses.fields(TrainConfig)}
    fields = sorted(dataclasses.fields(cls), key=lambda f: f.name in loop)  # the job's first
    for f in fields:
        base, optional = types[f.name]
        default = "none" if f.default is None else f.default
        shown = "" if base is tuple else f" (default {default!s})"
        help_text = f"{f.metadata.get('help', '')}{shown}"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif base is tuple:
            kw.update(action="append", metavar=_FLAGS.get(f.name, ("", "VALUE"))[1])
        else:
            kw.update(type=_optional(base) if optional else base, metavar=f.name.upper())
            choices = f.metadata.get("choices")
            if choices is not None:
                kw["metavar"] = (
                    "{" + ",".join("none" if c is None else str(c) for c in choices) + "}"
                )
        g.add_argument(flag(f.name), **kw)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """--out, --resume | --overwrite, --threads, --no-progress."""
    p.add_argument("--out", required=True, metavar="DIR", help="run directory")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help=RESUME_HELP)
    mode.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch threads (default {DEFAULT_THREADS}; at most the CPUs this process may use)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def given_options(args: argparse.Namespace, cls: type[TrainConfig]) -> dict[str, Any]:
    """The config fields given on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def resume_config(
    args: argparse.Namespace, cls: type[C], given: dict[str, Any], config_key: str, kind: str
) -> C:
    """The config of the run in --out, --epochs applied; other options given must equal it."""
    run = RunDir(args.out)
    if not run.config.is_file():
        raise FileNotFoundError(f"expected a run to resume in {args.out}, found no config.json")
    saved = run.read_config().get(config_key)
    if not isinstance(saved, dict):
        raise ValueError(f"expected a {kind} run to resume in {args.out}, got another")
    theirs = cls.from_dict(saved)
    mine = cls.from_dict({**theirs.to_dict(), **given}).to_dict()
    diff = [k for k in given if k != "epochs" and mine[k] != theirs.to_dict()[k]]
    if diff:
        got = ", ".join(f"{flag(k)} {mine[k]!r} (the run's: {theirs.to_dict()[k]!r})" for k in diff)
        raise ValueError(
            f"expected --resume with the run's own settings (only --epochs may change), got {got}"
        )
    return dataclasses.replace(theirs, epochs=given.get("epochs", theirs.epochs))


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


def start_training(args: argparse.Namespace, *, overwrite: bool | None = None) -> World:
    """What a training command does before training: join the processes torchrun started
    (if it did); threads; glibc's malloc keeping freed buffers (a process-wide setting, so
    the command's and not the library's); and refusing an --out holding files unless
    --resume or --overwrite. Returns this process's place (only the main one prints)."""
    w = distributed.init_from_env()
    set_threads(args.threads)
    keep_freed_memory()
    overwrite = args.overwrite if overwrite is None else overwrite
    resume = getattr(args, "resume", False)
    if w.main and not resume and not overwrite and RunDir(args.out).holds_files():
        raise ValueError(
            f"expected --out to be a new or empty folder, got {args.out} holding files (a run?); "
            "pass --resume to continue it or --overwrite to replace it"
        )
    return w
