"""The language model's configuration: ``LMConfig`` and its presets (d2l, book, demo).

Every field is a ``grukit lm train`` option (built from the field's type and help); a run
stores its config in config.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models.charlm import CELLS as _CELLS
from .config import KEEP, KEEP_HELP, TrainConfig, option

__all__ = ["PRESETS", "LMConfig", "preset"]

PARTITIONS = ("sequential", "random")
CELLS = tuple(_CELLS)  # the cells CharLM builds: adding one there adds it here
OPTIMIZERS = ("sgd", "adam", "adamw")
PRECISIONS = ("float32", "bf16")


@dataclass(frozen=True)
class LMConfig(TrainConfig):
    """Everything that determines a language-model run. Defaults are d2l's (chapter 9.1)."""

    # data
    text: str | None = option(None, "a UTF-8 text file to train on (none: The Time Machine)")
    letters_only: bool = option(True, "d2l's preprocessing: lower-case letters and spaces")
    max_tokens: int | None = option(
        10_000, "train on the first this many tokens (none: all; d2l keeps 10,000)"
    )
    val_fraction: float = option(0.1, "the last this fraction of the text, held out")
    partition: str = option(
        "sequential", "sequential (the state carries across batches) or random", choices=PARTITIONS
    )
    num_steps: int = option(35, "T time steps per sequence")
    # model
    cell: str = option("gru", "the recurrent cell", choices=CELLS)
    hidden_size: int = option(256, "H hidden units")
    num_layers: int = option(1, "stacked recurrent layers")
    reset_after: bool = option(True, "nn.GRU's variant (else Cho et al.'s, as d2l's scratch GRU)")
    embedding_dim: int | None = option(None, "an embedding of this size (none: one-hot, as d2l)")
    dropout: float = option(
        0.0, "dropout between layers, and on the embedding and before the head unless set apart"
    )
    embedding_dropout: float | None = option(None, "dropout on the embedding (none: dropout)")
    output_dropout: float | None = option(None, "dropout before the head (none: dropout)")
    variational: bool = option(
        False, "embedding and output dropout: one mask per sequence, the same at every step"
    )
    tie_weights: bool = option(
        False, "the head's weight is the embedding's (a projection first when H != E)"
    )
    recurrent_dropout: float = option(
        0.0, "dropout of the recurrent state, one mask per sequence (gru, layernorm-gru)"
    )
    zoneout: float = option(0.0, "each unit keeps its previous value with this probability")
    backend: str = option("auto", "the layers' backend (auto: the fastest exact one)")
    precision: str = option(
        "float32",
        "bf16: the forward under torch.autocast('cpu', bfloat16) — the GRU's large GEMMs in "
        "bfloat16 on CPUs with bfloat16 units, its recurrence float32; validation in float32",
        choices=PRECISIONS,
    )
    # optimisation (and the loop's fields, with d2l's defaults)
    optimizer: str = option(
        "sgd", "sgd (d2l), adam, or adamw (weight decay decoupled)", choices=OPTIMIZERS
    )
    lr: float = option(1.0, "the optimizer's learning rate")
    weight_decay: float = option(0.0, "L2 penalty")
    warmup: float = option(0.0, "epochs of linear learning-rate warm-up from 0 (fractions too)")
    ema: float = option(
        0.0, "average the weights (decay per step; 0: off): validation and the kept weights"
    )
    epochs: int = option(500, "passes over the training text")
    keep: str = option("best", KEEP_HELP, choices=KEEP)
    eval_batch_size: int = option(128, "streams read at once for validation")

    def _probability(self, name: str) -> None:
        """A finite number in [0, 1)."""
        self._finite(name, low=0.0)
        if getattr(self, name) >= 1.0:
            self._bad(name, "in [0, 1)")

    def lr_at(self, fraction: float) -> float:
        """The schedule's rate (``TrainConfig.lr_at``) times the warm-up's ramp: rising
        linearly from 0 over the first ``warmup`` epochs."""
        ramp = 1.0 if self.warmup == 0 else min(1.0, fraction * self.epochs / self.warmup)
        return super().lr_at(fraction) * ramp

    def __post_init__(self) -> None:
        super().__post_init__()
        self._positive_ints("num_steps", "hidden_size", "num_layers")
        self._positive_ints("eval_batch_size")
        self._one_of("precision", PRECISIONS)
        for name in ("max_tokens", "embedding_dim"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                self._bad(name, "to be a positive int or None")
        if self.text is not None and not isinstance(self.text, str):
            self._bad("text", "to be a path or None")
        self._bools("letters_only", "reset_after")
        self._bools("variational", "tie_weights")
        self._finite("val_fraction", "weight_decay", "warmup", low=0.0)
        if self.val_fraction >= 1.0:
            self._bad("val_fraction", "in [0, 1)")
        for name in ("dropout", "embedding_dropout", "output_dropout", "recurrent_dropout"):
            if getattr(self, name) is not None:
                self._probability(name)
        self._probability("zoneout")
        self._probability("ema")
        if self.tie_weights and self.embedding_dim is None:
            self._bad("embedding_dim", "to be set with tie_weights (one-hot has no embedding)")
        if (self.recurrent_dropout or self.zoneout) and self.cell not in ("gru", "layernorm-gru"):
            self._bad("cell", "to be gru or layernorm-gru with recurrent_dropout or zoneout")
        self._one_of("partition", PARTITIONS)
        self._one_of("cell", CELLS)
        self._one_of("optimizer", OPTIMIZERS)
        if not isinstance(self.backend, str):
            self._bad("backend", "to be a backend name")


#: Every preset keeps the best validation epoch's weights in model.safetensors (LMConfig's
#: default) but d2l, which keeps its last epoch's as d2l does.
#: d2l: the GRU of d2l chapter 9.1 exactly (LMConfig's defaults, the last epoch kept).
#: book: the whole book (last 10% held out), the lowest validation perplexity found that
#: trains in at most 10 minutes on a 2-core CPU with ``--threads 2`` (docs/lm.md: the
#: search; it does not beat the Kneser-Ney 7-gram: 4.219 against 4.180).
#: demo: a short run for ``make demo``.
PRESETS: dict[str, LMConfig] = {
    "d2l": LMConfig(keep="last"),
    "book": LMConfig(
        max_tokens=None,
        batch_size=64,
        num_steps=64,
        num_layers=2,
        hidden_size=384,
        embedding_dim=64,
        dropout=0.1,
        zoneout=0.1,
        optimizer="adamw",
        weight_decay=0.1,
        lr=3e-3,
        lr_schedule="cosine",
        lr_min=1e-4,
        clip=1.0,
        epochs=28,
    ),
    # d2l's data and model; Adam with a cosine decay reaches d2l's 500-epoch perplexity
    # range in 40 epochs (about a minute on one core).
    "demo": LMConfig(optimizer="adam", lr=0.01, lr_schedule="cosine", epochs=40),
}


def preset(name: str) -> LMConfig:
    if name not in PRESETS:
        raise ValueError(f"preset: expected a preset in {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]
