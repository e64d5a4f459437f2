"""The language model's configuration: ``LMConfig`` and its presets (d2l, book, demo).

Every field is a ``grukit lm train`` option; a run stores its config in config.json.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["PRESETS", "LMConfig", "preset"]


@dataclass(frozen=True)
class LMConfig:
    """Everything that determines a language-model run. Defaults are d2l's (chapter 9.1)."""

    # data
    text: str | None = None  # None: the bundled Time Machine
    letters_only: bool = True  # d2l: lower-case letters and single spaces
    max_tokens: int | None = 10_000  # d2l's load_data_time_machine keeps the first 10,000
    val_fraction: float = 0.1  # the last 10% of the text, held out by position
    partition: str = "sequential"  # d2l's default (use_random_iter=False)
    batch_size: int = 32  # d2l
    num_steps: int = 35  # d2l
    # model
    cell: str = "gru"  # d2l chapter 9.1
    hidden_size: int = 256  # d2l
    num_layers: int = 1  # d2l
    reset_after: bool = True  # nn.GRU's variant, as d2l's concise GRU
    embedding_dim: int | None = None  # None: one-hot input, as d2l
    dropout: float = 0.0  # d2l uses none
    backend: str = "auto"  # the fastest exact backend
    # optimisation
    optimizer: str = "sgd"  # d2l: torch.optim.SGD
    lr: float = 1.0  # d2l
    lr_schedule: str = "constant"  # d2l; "cosine" decays to lr_min over the run
    lr_min: float = 0.0  # the cosine schedule's floor
    weight_decay: float = 0.0  # d2l uses none
    clip: float = 1.0  # d2l's grad_clipping(net, 1): global norm
    epochs: int = 500  # d2l
    seed: int = 0
    eval_batch_size: int = 128  # streams for validation (no backward, so wider is faster)

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> None:
            got = getattr(self, name)
            raise ValueError(f"LMConfig: expected {name} {expected}, got {got!r}")

        def is_int(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        ints = ("batch_size", "num_steps", "hidden_size", "num_layers", "epochs", "eval_batch_size")
        for name in ints:
            if not is_int(getattr(self, name)) or getattr(self, name) <= 0:
                bad(name, "to be a positive int")
        for name in ("max_tokens", "embedding_dim"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v <= 0):
                bad(name, "to be a positive int or None")
        if self.text is not None and not isinstance(self.text, str):
            bad("text", "to be a path or None")
        for name in ("letters_only", "reset_after"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "to be a bool")
        for name in ("val_fraction", "dropout", "lr", "lr_min", "weight_decay", "clip"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(name, "to be a finite number")
        if not 0.0 <= self.val_fraction < 1.0:
            bad("val_fraction", "in [0, 1)")
        if self.partition not in ("sequential", "random"):
            bad("partition", "in ['sequential', 'random']")
        if self.cell not in ("gru", "rnn", "lstm"):
            bad("cell", "in ['gru', 'rnn', 'lstm']")
        if self.optimizer not in ("sgd", "adam"):
            bad("optimizer", "in ['sgd', 'adam']")
        if self.lr_schedule not in ("constant", "cosine"):
            bad("lr_schedule", "in ['constant', 'cosine']")
        if not self.lr > 0:
            bad("lr", "> 0")
        if self.lr_min < 0:
            bad("lr_min", ">= 0")
        if self.clip <= 0:
            bad("clip", "> 0")
        if self.weight_decay < 0:
            bad("weight_decay", ">= 0")
        if not isinstance(self.backend, str):
            bad("backend", "to be a backend name")
        if not 0.0 <= self.dropout < 1.0:
            bad("dropout", "in [0, 1)")
        if not is_int(self.seed) or self.seed < 0:
            bad("seed", "to be an int >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LMConfig:
        if not isinstance(d, dict):
            raise ValueError(f"LMConfig: expected a dict of fields, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"LMConfig: expected fields from {sorted(names)}, got {unknown}")
        return cls(**d)


#: d2l: the GRU of d2l chapter 9.1 exactly (LMConfig's defaults).
#: book: the whole book (last 10% held out), the lowest validation perplexity found that
#: trains in at most 10 minutes on a 2-core CPU (docs/lm.md explains the choices).
#: demo: a short run for ``make demo``.
PRESETS: dict[str, LMConfig] = {
    "d2l": LMConfig(),
    "book": LMConfig(
        max_tokens=None,
        batch_size=64,
        num_steps=64,
        hidden_size=512,
        embedding_dim=64,
        dropout=0.1,
        optimizer="adam",
        lr=3e-3,
        lr_schedule="cosine",
        lr_min=1e-4,
        clip=1.0,
        epochs=12,
    ),
    # d2l's data and model; Adam with a cosine decay reaches d2l's 500-epoch perplexity
    # range in 40 epochs (about a minute on one core).
    "demo": LMConfig(optimizer="adam", lr=0.01, lr_schedule="cosine", epochs=40),
}


def preset(name: str) -> LMConfig:
    if name not in PRESETS:
        raise ValueError(f"preset: expected a preset in {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]
