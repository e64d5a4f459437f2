"""A training run's directory (DESIGN.md §3), the one place runs touch files.

    config.json          the run's config (and vocab / scaling, as the model needs)
    model.safetensors    the latest weights, config in the header metadata
    checkpoint.safetensors  everything ``--resume`` needs: model, optimizer, RNG, epoch
    metrics.jsonl        one JSON object per epoch
    summary.json         final figures
    *.png                plots

Every write is atomic; a resumed run first drops metric lines past its checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checkpoint import atomic_write, load_state, read_json, save_state, write_json

__all__ = ["RunDir"]


class RunDir:
    """Paths and safe reads/writes for one run directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.model = self.path / "model.safetensors"
        self.checkpoint = self.path / "checkpoint.safetensors"
        self.metrics = self.path / "metrics.jsonl"
        self.summary = self.path / "summary.json"

    def create(self) -> RunDir:
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"expected --out to be a directory, got the file {self.path}")
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def file(self, name: str) -> Path:
        return self.path / name

    # config / summary ------------------------------------------------------------------
    def write_config(self, config: Mapping[str, Any]) -> None:
        write_json(self.config, dict(config))

    def read_config(self) -> dict[str, Any]:
        return read_json(self.config, what="a run config (config.json)")

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        write_json(self.summary, dict(summary))

    # training state --------------------------------------------------------------------
    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        save_state(self.checkpoint, state)

    def load_checkpoint(self) -> dict[str, Any]:
        return load_state(self.checkpoint)

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    # metrics ---------------------------------------------------------------------------
    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line and fsync it."""
        with open(self.metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(record)) + "\n")
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
        """Rewrite metrics.jsonl keeping records with ``epoch <= epoch`` (for --resume)."""
        kept = [r for r in self.read_metrics() if int(r.get("epoch", 0)) <= epoch]
        atomic_write(self.metrics, "".join(json.dumps(r) + "\n" for r in kept).encode())
        return kept
