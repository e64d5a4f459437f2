"""The speed benchmark: every contender on every grid point, timed interleaved.

``run_benchmark(BenchConfig())`` returns a JSON-ready dict (meta, points with their
rows of times and ratios, raw block samples, targets, notes); ``render_markdown``
in ``grukit.benchmark.report`` turns it into tables. Nothing here writes files; a
tqdm progress bar goes to stderr when ``progress`` is on (tqdm: the ``cli`` extra).
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import _autocast
from .._extras import require
from ..backends.native import build as native_build
from .openvino import openvino_version
from .ort import SPINNING_NOTE, ort_version
from .peers import PRECISIONS, Contender, GridPoint, build_contenders
from .report import Measurement, check_targets, summarize
from .timing import TimingConfig, median, time_interleaved

__all__ = ["GRID", "QUICK_GRID", "BenchConfig", "run_benchmark"]

#: DESIGN.md §5: (I, H, N, T) — the d2l LM, a small series model, two large layers,
#: and one streaming step; then the d2l size stacked two deep and bidirectional (issue 21).
GRID: tuple[GridPoint, ...] = (
    GridPoint(28, 256, 32, 35),
    GridPoint(8, 64, 32, 50),
    GridPoint(256, 512, 64, 100),
    GridPoint(512, 1024, 16, 100),
    GridPoint(64, 128, 1, 1),
    GridPoint(28, 256, 32, 35, layers=2),
    GridPoint(28, 256, 32, 35, bidirectional=True),
)

#: A smoke run: every code path (sequence, streaming step, stacked bidirectional) at toy sizes.
QUICK_GRID: tuple[GridPoint, ...] = (
    GridPoint(8, 32, 4, 10),
    GridPoint(8, 32, 1, 1),
    GridPoint(8, 32, 4, 10, layers=2, bidirectional=True),
)

#: Backends left out unless asked for: the reference backend is the readable oracle (a
#: Python loop with autograd), not a speed contender, and at the large grid points its
#: training step alone would take a third of the run's time budget.
DEFAULT_SKIP: tuple[str, ...] = ("reference",)

#: Largest |contender − nn.GRU| accepted before a contender is reported as wrong.
OUTPUT_ATOL = 1e-4  # float32 over T ≤ 100 steps differs by ~1e-6; 1e-4 flags real errors
#: Under bf16 both nn.GRU and grukit are ~3e-3 (relative) from float32, by other roundings.
OUTPUT_ATOL_BF16 = 5e-2


@dataclass(frozen=True)
class BenchConfig:
    """What the benchmark runs."""

    grid: tuple[GridPoint, ...] = GRID  # DESIGN.md §5's grid
    threads: int = 2  # the target machine has 2 cores; ratios are per thread count
    timing: TimingConfig = field(default_factory=TimingConfig)
    backends: tuple[str, ...] | None = None  # None: available ones but DEFAULT_SKIP
    seed: int = 0  # weights and inputs; any seed measures the same work
    progress: bool = True  # tqdm bar on stderr while the grid runs
    precision: str = "float32"  # or "bf16": peers.PRECISIONS

    def __post_init__(self) -> None:
        if isinstance(self.threads, bool) or not isinstance(self.threads, int):
            raise TypeError(f"BenchConfig: expected threads to be an int, got {self.threads!r}")
        if self.threads < 1:
            raise ValueError(f"BenchConfig: expected threads >= 1, got {self.threads}")
        if not self.grid:
            raise ValueError("BenchConfig: expected at least one grid point, got none")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"BenchConfig: expected precision in {PRECISIONS}, got {self.precision!r}"
            )


def _max_error(contenders: list[Contender]) -> dict[str, float]:
    """max |output − nn.GRU's output| for every contender that has an output."""
    reference = contenders[0].output
    if reference is None:
        raise ValueError("_max_error: expected the first contender (nn.GRU) to have an output")
    ref = reference()  # (T, N, H), nn.GRU
    errors = {}
    for c in contenders[1:]:
        if c.output is not None:
            errors[c.name] = float((c.output().to(ref.dtype) - ref).abs().max())
    return errors


def _blocks(contenders: list[Contender], repeats: int) -> int:
    fns = sum((c.infer is not None) + (c.train is not None) for c in contenders)
    return fns * repeats


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Run the grid; see the module docstring for the result's layout."""
    tqdm = require("tqdm.auto", "cli", "grukit.benchmark.run_benchmark").tqdm
    load_start = _loadavg()
    busy_start, own_start, wall_start = _cpu_busy_s(), time.process_time(), time.perf_counter()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    backends = list(cfg.backends) if cfg.backends is not None else _default_backends()
    points, notes = [], []
    try:
        built = []
        for point in cfg.grid:
            contenders, point_notes = build_contenders(
                point, threads=cfg.threads, backends=backends, seed=cfg.seed,
                precision=cfg.precision,
            )  # fmt: skip
            built.append((point, contenders))
            notes += point_notes
        total = sum(_blocks(c, cfg.timing.repeats) for _, c in built)
        bar = tqdm(
            total=total, unit="block", file=sys.stderr, disable=not cfg.progress, dynamic_ncols=True
        )
        with bar:
            for point, contenders in built:
                bar.set_description(point.label)
                points.append(_run_point(point, contenders, cfg, bar.update, notes))
    finally:
        torch.set_num_threads(old_threads)
    load_end = _loadavg()
    busy_end, own_end, wall_end = _cpu_busy_s(), time.process_time(), time.perf_counter()
    other_share = None
    if busy_start is not None and busy_end is not None:
        other_s = (busy_end - busy_start) - (own_end - own_start)  # CPU-s of other processes
        other_share = round(
            max(0.0, other_s) / ((wall_end - wall_start) * (os.cpu_count() or 1)), 3
        )
    notes += _contention_notes(other_share, cfg.threads)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "precision": cfg.precision,
        "bf16_gemms": _autocast.bf16_gemms() if cfg.precision == "bf16" else None,
        "threads": cfg.threads,
        "torch": torch.__version__,
        "onnxruntime": ort_version(),
        "openvino": openvino_version(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, {platform.system()}",
        "processor": _cpu_model(),
        "backends": backends,
        "native_isa": _native_isa(),
        "repeats": cfg.timing.repeats,
        "loadavg_1min_start_end": [load_start, load_end],
        "other_processes_cpu_share": other_share,
        "timing": {
            "block_s": cfg.timing.block_s,
            "pause_s": cfg.timing.pause_s,
            "warmup_s": cfg.timing.warmup_s,
        },
        "interleaving": "round-robin blocks, order rotated each round, "
        f"{cfg.timing.pause_s * 1000:.0f} ms pause after every block",
        "ort_threads": SPINNING_NOTE,
        "memory": "bytes of distinct storages saved for backward by one training forward, "
        "parameters and inputs excluded (grukit.benchmark.memory)",
    }
    targets = check_targets(points, cfg.precision)
    return {"meta": meta, "points": points, "targets": targets, "notes": notes}


def _native_isa() -> str:
    """What the native kernel was built for ("AVX512", "AVX2", "DEFAULT": GRUKIT_ISA or the
    CPU's best), or why there is none."""
    kernel = native_build.load()
    if kernel is None:
        return f"none ({native_build.failure()})"
    return str(kernel.cpu_capability())


def _cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> float | None:
    """The 1-minute load average (None where the OS does not report one)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu_busy_s() -> float | None:
    """CPU-seconds all processes have spent busy since boot (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _contention_notes(other_share: float | None, threads: int) -> list[str]:
    """A warning when other processes used the cores during the run.

    With as many threads as cores, every OpenMP parallel region waits at its barrier
    for a thread the OS has descheduled in favour of the other process: measured here,
    nn.GRU's inference at (28, 256, 32, 35) went from ~9 ms to ~90-250 ms with 2 threads
    beside one busy process, while 1 thread stayed near 9 ms. Times (and ratios between
    peers with different numbers of parallel regions) are then not the kernels' own.
    """
    if other_share is None or other_share < 0.1:  # 10%: daemons and the shell stay below
        return []
    return [
        f"other processes used {other_share:.0%} of the CPU during the run: with {threads} "
        "thread(s) on a shared machine, OpenMP barriers wait on descheduled threads and "
        "times are inflated, by up to 10-30× for many small ops; rerun on an idle machine, "
        "or compare with one thread"
    ]


def _default_backends() -> list[str]:
    import grukit

    return [b for b in grukit.available_backends() if b not in DEFAULT_SKIP]


def _run_point(
    point: GridPoint,
    contenders: list[Contender],
    cfg: BenchConfig,
    on_block: Any,
    notes: list[str],
) -> dict[str, Any]:
    errors = _max_error(contenders)
    atol = OUTPUT_ATOL_BF16 if cfg.precision == "bf16" else OUTPUT_ATOL
    for name, err in errors.items():
        if err > atol:
            notes.append(f"{point.label}: {name} differs from nn.GRU by {err:.2e} (> {atol})")
    fns = {}
    for c in contenders:
        if c.infer is not None:
            fns[f"{c.name}|infer"] = c.infer
        if c.train is not None:
            fns[f"{c.name}|train"] = c.train
    samples = time_interleaved(fns, cfg.timing, on_block)
    measurements = {}
    for c in contenders:
        inf = samples.get(f"{c.name}|infer")
        tr = samples.get(f"{c.name}|train")
        measurements[c.name] = Measurement(
            infer_ms=None if inf is None else median(inf) * 1e3,
            train_ms=None if tr is None else median(tr) * 1e3,
            mem_bytes=None if c.memory is None else c.memory(),
        )
    return {
        "I": point.I,
        "H": point.H,
        "N": point.N,
        "T": point.T,
        "layers": point.layers,
        "bidirectional": point.bidirectional,
        "shape": point.shape,
        "label": point.label,
        "rows": summarize(measurements, streaming=point.T == 1),
        "max_abs_err_vs_torch": errors,
        "samples_ms": {k: [round(s * 1e3, 6) for s in v] for k, v in samples.items()},
    }
