"""A folder of forecast runs made by one command: an ensemble's members, a backtest's folds.

    DIR/config.json            the command's config (and what predicting needs)
    DIR/checkpoint.safetensors a small record of the group ({"kind", "parts"}), so that
                               ``RunDir.check_resumable`` and the swap-in rules hold
    DIR/metrics.jsonl          empty (each part keeps its own)
    DIR/<part>/                one ordinary run directory per part (trainer.py's rules)
    DIR/summary.json           the group's figures, written last

The group follows the run-directory rules of a single run (DESIGN.md §3): a folder
holding files is refused unless ``overwrite`` (the new group is swapped in once its
config is written, replacing the earlier one with all its parts); ``resume`` needs a
group of the same kind whose config equals this one but for ``epochs``. A resumed group
keeps its parts: a finished part is reloaded as it is (no epoch runs again), a part
interrupted mid-training resumes from its checkpoint, a part not yet begun starts.
"""

from __future__ import annotations

import os
from typing import Any

from . import distributed
from .run_dir import RunDir

__all__ = ["open_group", "part_mode"]


def open_group(
    owner: str,
    kind: str,
    out: str | os.PathLike[str],
    config: dict[str, Any],
    *,
    resume: bool,
    overwrite: bool,
) -> RunDir:
    """The group's folder ``out``, begun (new, or replacing an earlier run with
    ``overwrite``) or checked for resuming: config.json's "config" must equal
    ``config["config"]`` except "epochs", and its "group" must be ``kind``. An extended
    run (other epochs) gets the new config.json."""
    run, main = RunDir(out), distributed.world().main
    if not resume:
        if main:
            run.check_new(overwrite=overwrite)
            run.begin(config, {"kind": kind, "parts": config["group"]["parts"]},
                      overwrite=overwrite)  # fmt: skip
        distributed.barrier(distributed.world())
        return run
    run.check_resumable()
    saved = run.read_config()
    if saved.get("group", {}).get("kind") != kind or not isinstance(saved.get("config"), dict):
        raise ValueError(
            f"{owner}: expected {kind} run to resume in {run.path}, got another kind of run"
        )
    old, new = saved["config"], config["config"]
    diff = sorted(k for k in set(old) | set(new) if k != "epochs" and old.get(k) != new.get(k))
    if diff:
        got = ", ".join(f"{k} {new.get(k)!r} (the run's: {old.get(k)!r})" for k in diff)
        raise ValueError(
            f"{owner}: expected the config of the run in {run.path} to resume (only epochs "
            f"may change), got {got}"
        )
    if saved.get("data_sha256") != config.get("data_sha256"):
        raise ValueError(
            f"{owner}: expected the data the run in {run.path} trained on to resume, got "
            "different data"
        )
    if old.get("epochs") != new.get("epochs") and main:
        run.write_config(config)
    return run


def part_mode(part: RunDir, resume: bool) -> bool:
    """Whether the part ``part`` of a group is resumed (it has begun: config and
    checkpoint) rather than started."""
    return resume and part.config.is_file() and part.has_checkpoint()
