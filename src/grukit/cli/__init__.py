"""The ``grukit`` command: a thin shell over training, models and benchmarks.

Each sub-command lives in its own module here, exposing
``register(subparsers) -> None``, which adds its parser and sets ``func`` (a
callable taking the parsed ``argparse.Namespace`` and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command → module (imported lazily, so ``grukit --help`` stays fast).
COMMANDS = {
    "lm": "grukit.cli.lm",
    "forecast": "grukit.cli.forecast",
    "bench": "grukit.cli.bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grukit", description="Gated recurrent networks: train, forecast, benchmark."
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"grukit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
