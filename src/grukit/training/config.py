"""What the training configs share: frozen dataclasses with every field a concrete value,
checked on construction, stored as JSON and read back, and described well enough for the
CLI to build an option from each field (``metadata={"help": ...}``).

``LMConfig`` (lm_config.py) and ``ForecastConfig`` (forecast_config.py) derive from
``TrainConfig``, whose fields are the training loop's own settings (trainer.py): epochs,
learning rate and its schedule, gradient clipping, which epoch's weights to keep, seed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["TrainConfig", "option"]

C = TypeVar("C", bound="TrainConfig")

#: Choices of the fields that take one of a few names.
SCHEDULES = ("constant", "cosine")
KEEP = ("last", "best")
KEEP_HELP = "whose weights model.safetensors holds: the last epoch's, or the best validation's"


def option(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with its help text (and any other CLI hints) in its metadata."""
    if isinstance(default, (list, dict, set)):
        raise TypeError(f"option: expected an immutable default, got {type(default).__name__}")
    return field(default=default, metadata={"help": help, **extra})


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class TrainConfig:
    """The training loop's settings, common to every job (see ``trainer.fit``)."""

    epochs: int = option(1, "passes over the training data")
    batch_size: int = option(
        32, "rows per step: the global batch, split among the processes under torchrun"
    )
    lr: float = option(1.0, "the optimizer's learning rate")
    lr_schedule: str = option(
        "constant", "constant, or cosine: decay to lr_min over the run", choices=SCHEDULES
    )
    lr_min: float = option(0.0, "the cosine schedule's floor")
    clip: float = option(1.0, "clip the gradients' global norm to this")
    keep: str = option("last", KEEP_HELP, choices=KEEP)
    seed: int = option(0, "seed of the initial weights, data order and dropout")

    # --- checks ----------------------------------------------------------------------------
    def _bad(self, name: str, expected: str) -> typing.NoReturn:
        got = getattr(self, name)
        raise ValueError(f"{type(self).__name__}: expected {name} {expected}, got {got!r}")

    def _positive_ints(self, *names: str) -> None:
        for name in names:
            v = getattr(self, name)
            if not _is_int(v) or v <= 0:
                self._bad(name, "to be a positive int")

    def _finite(self, *names: str, low: float = -math.inf, low_open: bool = False) -> None:
        """Each a finite number >= ``low`` (> ``low`` if ``low_open``)."""
        for name in names:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                self._bad(name, "to be a finite number")
            if v < low or (low_open and v == low):
                self._bad(name, f"{'>' if low_open else '>='} {low:g}")

    def _one_of(self, name: str, choices: typing.Sequence[object]) -> None:
        if getattr(self, name) not in choices:
            self._bad(name, f"in {list(choices)}")

    def _bools(self, *names: str) -> None:
        for name in names:
            if not isinstance(getattr(self, name), bool):
                self._bad(name, "to be a bool")

    def __post_init__(self) -> None:
        self._positive_ints("epochs", "batch_size")
        self._finite("lr", low=0.0, low_open=True)
        self._finite("lr_min", "clip", low=0.0)
        if self.clip == 0:
            self._bad("clip", "> 0")
        self._one_of("lr_schedule", SCHEDULES)
        self._one_of("keep", KEEP)
        if not _is_int(self.seed) or self.seed < 0:
            self._bad("seed", "to be an int >= 0")

    def lr_at(self, fraction: float) -> float:
        """The learning rate ``fraction`` (in [0, 1]) of the way through the run: ``lr``, or
        the cosine decay lr_min + (lr − lr_min)·(1 + cos(π·fraction))/2."""
        if self.lr_schedule == "constant":
            return self.lr
        cos = 0.5 * (1.0 + math.cos(math.pi * min(fraction, 1.0)))
        return self.lr_min + (self.lr - self.lr_min) * cos

    # --- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (tuples become lists)."""
        out: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self)))
        return out

    @classmethod
    def from_dict(cls: type[C], d: object) -> C:
        """The config of a dict of its fields (a run's config.json); lists become the
        tuples the fields hold. Unknown or missing fields raise ValueError."""
        name = cls.__name__
        if not isinstance(d, dict):
            raise ValueError(f"{name}: expected a dict of fields, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(d) - names))
        if unknown:
            raise ValueError(f"{name}: expected fields from {sorted(names)}, got {unknown}")
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {
            k: tuple(v) if _is_tuple(hints[k]) and isinstance(v, list) else v for k, v in d.items()
        }
        return cls(**values)

    @classmethod
    def field_types(cls) -> dict[str, tuple[type, bool]]:
        """Each field's (base type, whether None is allowed): what the CLI parses."""
        hints = typing.get_type_hints(cls)
        out: dict[str, tuple[type, bool]] = {}
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = isinstance(hint, types.UnionType) and len(args) == 1
            base = args[0] if optional else hint
            out[f.name] = (tuple if _is_tuple(base) else base, optional)
        return out


def _is_tuple(hint: object) -> bool:
    return hint is tuple or typing.get_origin(hint) is tuple
