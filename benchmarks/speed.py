"""Speed benchmark: grukit's GRU backends against torch.nn.GRU, ONNX Runtime's GRU and
the GEMM-only bound, on DESIGN.md §5's grid. Same as ``grukit bench``.

    .venv/bin/python benchmarks/speed.py --out bench-out      # full grid (~5 min, 2 cores)
    .venv/bin/python benchmarks/speed.py --quick               # smoke run
"""

from __future__ import annotations

import argparse
import sys

from grukit.cli.bench import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, TypeError) as err:
        print(f"speed.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
