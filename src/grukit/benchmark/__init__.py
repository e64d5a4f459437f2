"""Speed benchmark of grukit's backends against torch.nn.GRU, ONNX Runtime and the
GEMM-only bound (DESIGN.md §5); run it as ``grukit bench`` or ``benchmarks/speed.py``.

    peers.py     the contenders at one grid point, on shared weights
    ort.py       ONNX Runtime's GRU operator built with onnx.helper
    gemm.py      the GEMM-only lower bound
    timing.py    interleaved block timing, medians
    memory.py    bytes saved for backward by a training step
    flops.py     FLOPs of a GRU's matrix products
    roofline.py  the cores' measured multiply-add peak; ceilings and needed shares
    isa.py       the native kernel's ratios under one instruction set against another's
    report.py    ratios, targets, markdown
    runner.py    the grid loop
"""

from .peers import GridPoint
from .report import render_markdown
from .runner import GRID, QUICK_GRID, BenchConfig, run_benchmark
from .timing import TimingConfig

__all__ = [
    "GRID",
    "QUICK_GRID",
    "BenchConfig",
    "GridPoint",
    "TimingConfig",
    "render_markdown",
    "run_benchmark",
]
