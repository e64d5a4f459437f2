"""The ``grukit`` command: a thin shell over training, models and benchmarks.

Each sub-command lives in its own module here, exposing
``register(subparsers) -> None``, which adds its parser and sets ``func`` (a
callable taking the parsed ``argparse.Namespace`` and returning an exit code).

``main`` is the one error boundary. Exit codes: 0 done; 2 anything the user can
cause (a flag, a file's content, a missing or foreign file, permissions, a full
disk), as one line on stderr ``grukit CMD: error: what and where``; 130 Ctrl-C
(``grukit CMD: interrupted; resume with --resume`` for the train commands); 1 a bug
in grukit, as one line naming the exception, with the full traceback only under
the global ``--debug`` (``grukit --debug lm train ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import logging
import sys
import traceback
from collections.abc import Iterator
from typing import NoReturn

from .._extras import MissingExtraError

#: sub-command → module (imported lazily, so ``grukit --help`` stays fast).
COMMANDS = {
    "lm": "grukit.cli.lm",
    "forecast": "grukit.cli.forecast",
    "bench": "grukit.cli.bench",
    "export": "grukit.cli.export",
}

#: Exceptions a user's input or environment can cause (exit code 2). OSError covers
#: FileNotFoundError, PermissionError, IsADirectoryError, a read-only file system and
#: a full disk (ENOSPC); UnicodeDecodeError and json.JSONDecodeError are ValueErrors.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    OSError,
    KeyError,
    RecursionError,
    OverflowError,
    MemoryError,
    csv.Error,
    MissingExtraError,
)
#: Messages of torch's ``load_state_dict`` (a checkpoint of another shape or model).
_FOREIGN_STATE = (
    "Error(s) in loading state_dict",
    "size mismatch",
    "Missing key",
    "Unexpected key",
)
#: Sub-commands that ``--resume`` continues: (command, action attribute, action).
_RESUMABLE = {("lm", "lm_command", "train"), ("forecast", "action", "train")}
#: Options naming files or folders (destinations as argparse stores them).
_PATH_FLAGS = ("run", "out", "output", "csv", "text")


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (sub-parsers inherit the class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="grukit", description="Gated recurrent networks: train, forecast, benchmark."
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an unexpected error (a bug), print the full traceback",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # a command not built yet
        module.register(sub)
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.replace("\r", "\n").split("\n")).strip()


def _is_user_error(err: BaseException) -> bool:
    if isinstance(err, USER_ERRORS):
        return True
    return isinstance(err, RuntimeError) and any(s in str(err) for s in _FOREIGN_STATE)


def _paths(args: argparse.Namespace) -> str | None:
    """The files and folders the command was given, for errors that name none."""
    given = [f"--{flag} {getattr(args, flag)}" for flag in _PATH_FLAGS if getattr(args, flag, None)]
    return ", ".join(given) or None


def describe(err: BaseException, command: str, paths: str | None = None) -> str:
    """One line saying what went wrong and where, without repeating ``grukit CMD:``.

    ``paths``: the command's file arguments, named when the error names no file.
    """
    if isinstance(err, OSError) and err.strerror:
        if err.filename is not None:
            where = str(err.filename)
            if err.filename2 is not None:
                where += f" -> {err.filename2}"
            text = f"{where}: {err.strerror}"
        else:
            text = err.strerror + (f" (with {paths})" if paths else "")
    elif isinstance(err, UnicodeDecodeError):
        text = f"expected UTF-8 text, got undecodable bytes ({err.reason})"
    elif isinstance(err, KeyError):
        key = _one_line(repr(err.args[0]) if err.args else "")[:80]
        text = (
            f"expected an entry {key} that is missing"
            + (f" in {paths}" if paths else "")
            + " (a run or checkpoint written by another command or version?)"
        )
    elif isinstance(err, RecursionError):
        text = "expected a file of ordinary depth, got one nested too deeply to read" + (
            f" (with {paths})" if paths else ""
        )
    elif isinstance(err, MemoryError):
        text = "not enough memory for this input"
    elif isinstance(err, RuntimeError):
        where = f" in {paths}" if paths else ""
        text = f"expected a checkpoint of this model{where}, got another: {err}"
    else:
        text = str(err) or type(err).__name__
        if isinstance(err, (OverflowError, csv.Error)):
            text = f"{type(err).__name__}: {text}"
    text = _one_line(text)
    for prefix in (f"grukit {command}: error: ", f"grukit {command}: ", "grukit: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text[:2000]


def _interrupted(args: argparse.Namespace) -> str:
    for command, attr, action in _RESUMABLE:
        if args.command == command and getattr(args, attr, None) == action:
            return "interrupted; resume with --resume"
    return "interrupted"


class _BuildNotes(logging.Handler):
    """Shows the native kernel's one-time build (about a minute) on stderr while a command
    runs: the library logs it (``grukit.native``, INFO); the command shows it."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"grukit: {record.getMessage()}", file=sys.stderr)  # the stderr of now


@contextlib.contextmanager
def _build_notes() -> Iterator[None]:
    log, handler = logging.getLogger("grukit.native"), _BuildNotes(logging.INFO)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Run ``grukit`` with ``argv`` (default sys.argv[1:]); returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return stop.code if isinstance(stop.code, int) else 2
    name = f"grukit {args.command}"
    try:
        with _build_notes():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{name}: {_interrupted(args)}", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            traceback.print_exc()
        if _is_user_error(err):
            print(f"{name}: error: {describe(err, args.command, _paths(args))}", file=sys.stderr)
            return 2
        hint = "" if args.debug else "; rerun with --debug for the traceback"
        detail = _one_line(str(err))[:500]
        print(
            f"{name}: internal error (a bug in grukit, please report it): "
            f"{type(err).__name__}: {detail}{hint}",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
