"""Training: the one training loop (trainer.py), typed configs, run directories, safe
checkpoints, progress bars, plots.

The only part of grukit (with ``grukit.cli``) that touches files; only the progress bar
writes to the terminal (stderr).
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
from .config import TrainConfig
from .integrity import TrainingDiverged
from .plots import plot_curves, plot_forecast
from .progress import progress
from .run_dir import RunDir
from .trainer import Fit, Job, fit, open_run, optimizer_step

__all__ = [
    "Fit",
    "Job",
    "RunDir",
    "TrainConfig",
    "TrainingDiverged",
    "atomic_write",
    "fit",
    "load_state",
    "load_weights",
    "open_run",
    "optimizer_step",
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
