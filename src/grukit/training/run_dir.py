"""A training run's directory (DESIGN.md §3), the one place runs touch files.

    config.json          the run's config (and vocab / scaling, as the model needs)
    model.safetensors    the latest weights, config in the header metadata
    checkpoint.safetensors  everything resuming needs: model, optimizer, RNG, epoch
    metrics.jsonl        one JSON object per epoch
    summary.json         final figures
    *.png                plots

A new run is never written over an earlier one by accident: ``begin`` refuses a folder
that holds files unless asked to replace it, and builds the new run in a hidden sibling
folder (config.json, a first checkpoint, an empty metrics.jsonl) that is moved into
place only once complete. A replaced run is swapped out in one step (Linux
``renameat2(RENAME_EXCHANGE)``; elsewhere two renames) and deleted after. So a folder
at ``path`` is either absent, the earlier run, or a new run with a checkpoint to resume.

Every write is atomic; a resumed run first drops metric lines past its checkpoint and
the temporary files a killed write left behind.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checkpoint import atomic_write, fsync_dir, load_state, read_json, save_state, umask
from .checkpoint import write_json as _write_json

__all__ = ["RunDir"]


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the
    system has no such call."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class RunDir:
    """Paths and safe reads/writes for one run directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.model = self.path / "model.safetensors"
        self.checkpoint = self.path / "checkpoint.safetensors"
        self.metrics = self.path / "metrics.jsonl"
        self.summary = self.path / "summary.json"

    def file(self, name: str) -> Path:
        return self.path / name

    # starting and reopening a run ------------------------------------------------------
    def holds_files(self) -> bool:
        """Whether ``path`` exists and is not an empty folder."""
        if not os.path.lexists(self.path):
            return False
        return not self.path.is_dir() or any(self.path.iterdir())

    def check_new(self, *, overwrite: bool) -> None:
        """Refuse to start a run here: ``path`` is a file, or holds files and ``overwrite``
        is False, or holds files that are not a grukit run (no config.json)."""
        if os.path.lexists(self.path) and not self.path.is_dir():
            raise ValueError(f"RunDir: expected {self.path} to be a folder or absent, got a file")
        if not self.holds_files():
            return
        if not overwrite:
            raise ValueError(
                f"RunDir: expected a new or empty folder for the run, got {self.path} holding "
                "files (an earlier run is never replaced unless asked)"
            )
        if not self.config.is_file():
            raise ValueError(
                f"RunDir: expected a grukit run (with config.json) to replace at {self.path}, "
                "got a folder of other files; it is left as it is"
            )

    def _siblings(self, kind: str) -> list[Path]:
        parent = self.path.parent
        return list(parent.glob(f".{self.path.name}.{kind}-*")) if parent.is_dir() else []

    def _remove_stale(self) -> None:
        """Staging folders of killed starts, and temporary files of killed writes."""
        for stage in self._siblings("new"):
            shutil.rmtree(stage, ignore_errors=True)
        if self.checkpoint.is_file():  # the swapped-out earlier run, once ours is in place
            for old in self._siblings("old"):
                shutil.rmtree(old, ignore_errors=True)
        if self.path.is_dir():
            for tmp in self.path.glob(".*.tmp"):
                if tmp.is_file():
                    tmp.unlink(missing_ok=True)

    def begin(
        self, config: Mapping[str, Any], checkpoint: Mapping[str, Any], *, overwrite: bool
    ) -> None:
        """Start a run: config.json, the first checkpoint and an empty metrics.jsonl,
        written in a hidden sibling folder and moved to ``path`` only when complete.
        With ``overwrite``, an earlier run at ``path`` is replaced in one step then."""
        self.check_new(overwrite=overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        stage = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.new-", dir=self.path.parent))
        try:
            os.chmod(stage, 0o777 & ~umask())  # mkdtemp makes 0700 whatever the umask
            staged = RunDir(stage)
            staged.write_config(config)
            staged.save_checkpoint(checkpoint)
            atomic_write(staged.metrics, b"")
            if self.holds_files():
                self._swap_in(stage)
            else:
                os.rename(stage, self.path)  # replaces an empty folder in one step
            fsync_dir(self.path.parent)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise

    def _swap_in(self, stage: Path) -> None:
        if _exchange(stage, self.path):
            shutil.rmtree(stage, ignore_errors=True)  # now the earlier run
            return
        old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old-", dir=self.path.parent))
        os.rename(self.path, old / "run")
        os.rename(stage, self.path)
        shutil.rmtree(old, ignore_errors=True)

    def check_resumable(self) -> None:
        """Refuse to resume where there is no run; drop what killed writes left."""
        if not self.path.is_dir():
            raise FileNotFoundError(f"RunDir: expected a run to resume at {self.path}, found none")
        for f, what in ((self.config, "config.json"), (self.checkpoint, "a checkpoint")):
            if not f.is_file():
                raise FileNotFoundError(
                    f"RunDir: expected {what} to resume in {self.path}, found none"
                )
        self._remove_stale()

    # config / summary ------------------------------------------------------------------
    def write_config(self, config: Mapping[str, Any]) -> None:
        _write_json(self.config, dict(config))

    def read_config(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise FileNotFoundError(f"RunDir: expected a run directory at {self.path}, found none")
        config = read_json(self.config, what="a run config (config.json)")
        if not isinstance(config, dict):
            raise ValueError(
                f"RunDir: expected a JSON object in {self.config}, got {type(config).__name__}"
            )
        return config

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        _write_json(self.summary, dict(summary))

    # training state --------------------------------------------------------------------
    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        for tmp in self.path.glob(f".{self.checkpoint.name}.*.tmp"):  # a killed write's
            tmp.unlink(missing_ok=True)
        save_state(self.checkpoint, state)

    def load_checkpoint(self) -> dict[str, Any]:
        return load_state(self.checkpoint)

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    # metrics ---------------------------------------------------------------------------
    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line (strict JSON: NaN or infinity raise ValueError) and fsync."""
        line = json.dumps(dict(record), allow_nan=False) + "\n"
        with open(self.metrics, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics.is_file():
            return []
        lines = self.metrics.read_text(encoding="utf-8").splitlines()
        records = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if n == len(lines):
                    break  # a last line cut short by a crash: drop it
                raise ValueError(f"expected JSON on line {n} of {self.metrics}") from None
        return records

    def keep_metrics_until(self, epoch: int) -> list[dict[str, Any]]:
        """Rewrite metrics.jsonl keeping records with ``epoch <= epoch`` (for resuming)."""
        kept = [
            r
            for r in self.read_metrics()
            if isinstance(r, dict) and isinstance(r.get("epoch"), int) and r["epoch"] <= epoch
        ]
        atomic_write(self.metrics, "".join(json.dumps(r) + "\n" for r in kept).encode())
        return kept
