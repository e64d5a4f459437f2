"""Training: run directories, safe checkpoints, progress bars, plots.

The only part of grukit (with ``grukit.cli``) that prints or touches files.
"""

from .checkpoint import (
    atomic_write,
    load_state,
    load_weights,
    read_json,
    rng_state,
    save_state,
    save_weights,
    set_rng_state,
    write_json,
)
from .plots import plot_curves, plot_forecast
from .progress import progress
from .run_dir import RunDir

__all__ = [
    "RunDir",
    "atomic_write",
    "load_state",
    "load_weights",
    "plot_curves",
    "plot_forecast",
    "progress",
    "read_json",
    "rng_state",
    "save_state",
    "save_weights",
    "set_rng_state",
    "write_json",
]
