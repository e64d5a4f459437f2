"""Training, evaluation and generation for the character-level language model.

d2l's ``train_ch8`` / ``train_epoch_ch8`` / ``predict_ch8``, made resumable and measured:

    per epoch: a data generator seeded from (seed, epoch) draws the offset (and order);
    per batch (X, Y (N, T)): state = 0 at the epoch's start (and every batch with random
        partitioning), else the previous batch's state, detached;
        loss = mean cross-entropy of logits against Y (time-major, as d2l);
        backward; clip the gradients' global norm to ``clip``; optimizer step.
    perplexity = exp(mean cross-entropy per token).

``train_lm`` runs this through the one training loop (trainer.py: its run directory,
checkpoint, resume, divergence and interruption rules): config.json (with the sha256 of
the tokens trained on), metrics.jsonl, model.safetensors, perplexity.png, summary.json.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..data.text import (
    Corpus,
    RandomBatches,
    SequentialBatches,
    Vocab,
    as_batch,
    preprocess,
    split_corpus,
)
from ..data.token_store import drop_resident, load_corpus_mapped
from ..models.charlm import CharLM, State
from ..models.ngram import lm_baselines
from ..models.recurrent import backend_name
from .checkpoint import load_weights
from .integrity import TrainingDiverged, check_state_dict
from .lm_config import PRESETS, LMConfig
from .plots import plot_curves
from .run_dir import RunDir
from .trainer import describe_run, optimizer_step, train

__all__ = [
    "PRESETS",
    "LMConfig",
    "TrainingDiverged",
    "evaluate",
    "generate",
    "load_run",
    "train_lm",
    "train_step",
]


# --- data and model ------------------------------------------------------------------------


def load_data(config: LMConfig) -> tuple[Corpus, Corpus, Vocab]:
    """(train (S_train,), validation (S_val,), vocab): split by position, then the training
    part cut to ``max_tokens`` (d2l's preset trains on the book's first 10,000 tokens). The
    parts are views of a read-only memory map of the token ids (data/token_store.py)."""
    return _load_data(config)[:3]


def _load_data(config: LMConfig) -> tuple[Corpus, Corpus, Vocab, str]:
    """From the text's token store (data/token_store.py: encoded once, memory-mapped, so a
    text larger than memory trains in bounded memory); the digest (sha256 of the vocabulary's
    JSON and the ids as int64) is the store's, recorded in config.json."""
    mapped = load_corpus_mapped(config.text, letters_only=config.letters_only)
    vocab, digest = mapped.vocab, mapped.data_sha256
    train_part, val_part = split_corpus(mapped.tokens, config.val_fraction)
    if config.max_tokens is not None:
        train_part = train_part[: config.max_tokens]
    need = config.batch_size * config.num_steps + config.num_steps + 1
    if len(train_part) < need:
        raise ValueError(
            f"load_data: expected at least {need} training tokens for one batch of "
            f"{config.batch_size} × {config.num_steps}, got {len(train_part)}"
        )
    return train_part, val_part, vocab, digest


def perplexity(mean_nll: float) -> float:
    """exp(mean cross-entropy); +inf (not OverflowError) past float64's range."""
    return math.exp(mean_nll) if mean_nll < 709.0 else float("inf")


def build_model(config: LMConfig, vocab_size: int) -> CharLM:
    return CharLM(
        vocab_size,
        config.hidden_size,
        config.num_layers,
        cell=config.cell,
        reset_after=config.reset_after,
        embedding_dim=config.embedding_dim,
        dropout=config.dropout,
        backend=config.backend,
        embedding_dropout=config.embedding_dropout,
        output_dropout=config.output_dropout,
        variational=config.variational,
        tie_weights=config.tie_weights,
        recurrent_dropout=config.recurrent_dropout,
        zoneout=config.zoneout,
    )


def _optimizer(config: LMConfig, model: CharLM) -> torch.optim.Optimizer:
    """SGD or Adam with ``weight_decay`` as an L2 penalty in the gradient; AdamW with it
    decoupled (Loshchilov & Hutter 2019: θ ← θ − lr·wd·θ beside Adam's step)."""
    kinds = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    opt: torch.optim.Optimizer = kinds[config.optimizer](
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    return opt


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The data order of ``epoch`` depends on (seed, epoch) only: nothing to checkpoint."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


# --- evaluation and generation -------------------------------------------------------------


@torch.no_grad()
def evaluate(model: CharLM, corpus: Corpus, *, batch_size: int, num_steps: int) -> float:
    """Perplexity of ``model`` on ``corpus`` (S,) (a tensor or a memory map of token ids):
    exp(mean cross-entropy of every next token), read as up to ``batch_size`` contiguous
    streams with the state carried through each."""
    if len(corpus) < 2:
        raise ValueError(f"evaluate: expected a corpus of at least 2 tokens, got {len(corpus)}")
    was_training = model.training
    model.eval()
    streams = max(1, min(batch_size, (len(corpus) - 1) // num_steps))
    per = (len(corpus) - 1) // streams
    xs = corpus[: streams * per].reshape(streams, per)  # (N, S/N)
    ys = corpus[1 : streams * per + 1].reshape(streams, per)  # (N, S/N)
    state, total = None, 0.0
    for i in range(0, per, num_steps):
        logits, state = model(as_batch(xs[:, i : i + num_steps]), state)
        target = as_batch(ys[:, i : i + num_steps]).t().reshape(-1)  # (T·N,) time-major
        total += float(F.cross_entropy(logits, target, reduction="sum"))
    model.train(was_training)
    return perplexity(total / (streams * per))


@torch.no_grad()
def generate(
    model: CharLM,
    vocab: Vocab,
    prefix: str,
    length: int,
    *,
    letters_only: bool = True,
    temperature: float | None = None,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> str:
    """The prefix and ``length`` tokens after it (d2l's ``predict_ch8``).

    Greedy (argmax, as d2l) when temperature is None; else sampled from
    softmax(logits / temperature), restricted to the ``top_k`` likeliest tokens if given.
    Characters of the prefix that the vocabulary lacks raise ValueError naming them.
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"generate: expected length >= 0, got {length!r}")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(
            f"generate: expected a finite temperature > 0 (or None: greedy), got {temperature!r}"
        )
    if top_k is not None and not 1 <= top_k <= len(vocab):
        raise ValueError(f"generate: expected top_k in [1, {len(vocab)}], got {top_k}")
    tokens = preprocess(prefix, letters_only=letters_only) if letters_only else list(prefix)
    if letters_only and prefix[:1] == " ":
        tokens = [" ", *tokens]  # keep a leading space the user asked for
    if not tokens:
        raise ValueError(f"generate: expected a prefix with at least one token, got {prefix!r}")
    unknown = sorted({t for t in tokens if t not in vocab.token_to_idx})
    if unknown:
        raise ValueError(
            f"generate: expected prefix characters from the model's vocabulary of "
            f"{len(vocab)}, got {', '.join(repr(t) for t in unknown)} not in it"
        )
    was_training = model.training
    model.eval()
    ids = vocab.encode(tokens)
    logits, state = model(torch.tensor([ids]), None)  # (T, V), the prefix in one pass
    out = list(ids)
    for _ in range(length):
        last = logits[-1]  # (V,)
        if temperature is None:
            nxt = int(last.argmax())
        else:
            scaled = last / temperature
            if top_k is not None:
                kth = torch.topk(scaled, top_k).values[-1]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            nxt = int(torch.multinomial(torch.softmax(scaled, -1), 1, generator=generator))
        out.append(nxt)
        logits, state = model(torch.tensor([[nxt]]), state)
    model.train(was_training)
    return vocab.decode(out)


# --- runs ----------------------------------------------------------------------------------


def _run_config(run: RunDir) -> tuple[LMConfig, dict[str, Any]]:
    """(LMConfig, the whole config.json) of a language-model run; anything else is refused."""
    saved = run.read_config()
    if not isinstance(saved.get("lm"), dict) or not isinstance(saved.get("vocab"), list):
        raise ValueError(
            f"load_run: expected a language-model run's config.json in {run.path}, got "
            f"{describe_run(saved)}"
        )
    try:
        return LMConfig.from_dict(saved["lm"]), saved
    except TypeError as err:
        raise ValueError(f"load_run: expected a valid config in {run.config}, got: {err}") from None


def load_run(path: str | os.PathLike[str]) -> tuple[CharLM, Vocab, LMConfig]:
    """(model in eval mode, vocab, config) of a run directory written by ``train_lm``;
    weights that fail their digest, do not fit the config's model or are not finite are
    refused."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise FileNotFoundError(f"load_run: expected a run directory at {run.path}, found none")
    config, saved = _run_config(run)
    if not all(isinstance(t, str) for t in saved["vocab"]):
        raise ValueError(f"load_run: expected a vocabulary of strings in {run.config}")
    vocab = Vocab.from_list(saved["vocab"])
    model = build_model(config, len(vocab))
    weights: object
    if run.model.is_file():
        weights, where = load_weights(run.model)[0], run.model
    else:
        weights, where = run.load_checkpoint().get("model"), run.checkpoint
    model.load_state_dict(check_state_dict("load_run", weights, model.state_dict(), where))
    return model.eval(), vocab, config


def _loss(model: CharLM, x: Tensor, y: Tensor, state: State | None) -> tuple[Tensor, State]:
    """Mean cross-entropy of the next tokens Y (N, T) given X (N, T) from ``state``."""
    logits, state = model(x, state)  # (T·N, V)
    return F.cross_entropy(logits, y.t().reshape(-1)), state  # time-major targets (T·N,)


def train_step(
    model: CharLM,
    opt: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    state: State | None,
    *,
    clip: float,
) -> tuple[float, State]:
    """One step on a batch X, Y (N, T): forward from ``state``, mean cross-entropy, backward,
    clip the gradients' global norm to ``clip``, update. Returns (loss, final state)."""
    loss, state = _loss(model, x, y, state)
    return optimizer_step(model, opt, loss, clip), state


def _resolved_backend(model: CharLM) -> str:
    """The backend that "auto" (or the configured name) runs the model's layers on."""
    return backend_name("CharLM", model.rnn)


class LMJob:
    """The language model as a ``trainer.Job``: d2l's batches of the training text, the
    state carried between sequential batches, perplexity on the held-out text."""

    name, kind, config_key, unit, title = "train_lm", "language-model", "lm", "token", "lm train"

    def __init__(self, config: LMConfig) -> None:
        self.config = config
        self.train_part, self.val_part, self.vocab, self.digest = _load_data(config)
        torch.manual_seed(config.seed)
        self.model = build_model(config, len(self.vocab))
        self.backend = _resolved_backend(self.model)  # a cell it cannot run is refused here
        self.optimizer = _optimizer(config, self.model)
        self.steps = 0

    def run_config(self) -> dict[str, Any]:
        return {
            "lm": self.config.to_dict(),
            "model": self.model.config(),
            "vocab": self.vocab.to_list(),
            "data_sha256": self.digest,
        }

    def batches(self, epoch: int) -> Sequence[tuple[Tensor, Tensor]]:
        """The epoch's batches, each read from the token map when the loop takes it."""
        c, gen = self.config, _epoch_generator(self.config.seed, epoch)
        read = SequentialBatches if c.partition == "sequential" else RandomBatches
        return read(self.train_part, c.batch_size, c.num_steps, generator=gen)

    def loss(self, batch: tuple[Tensor, Tensor], carry: State | None) -> tuple[Tensor, State, int]:
        x, y = batch
        self.steps += 1
        if self.steps % 4096 == 0:  # pages of the map read so far leave the resident set
            drop_resident(self.train_part)
        if carry is not None and self.config.partition == "sequential":
            carry = self.model.detach_state(carry)
        else:
            carry = None  # zeros: each epoch's start, every random batch
        bf16 = self.config.precision == "bf16"  # mixed precision (grukit/_autocast.py)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, state = _loss(self.model, x, y, carry)
        return loss, state, y.numel()

    def validate(self) -> float | None:
        if len(self.val_part) < 2:
            return None
        c = self.config
        return evaluate(
            self.model, self.val_part, batch_size=c.eval_batch_size, num_steps=c.num_steps
        )

    def figures(self, train_loss: float, score: float | None) -> dict[str, float | None]:
        return {"train_perplexity": perplexity(train_loss), "val_perplexity": score}

    def weights_metadata(self) -> dict[str, Any]:
        return {"lm": self.config.to_dict(), **self.model.config()}

    def draw(self, run: RunDir, records: list[dict[str, Any]]) -> None:
        curves = {"train": [r["train_perplexity"] for r in records]}
        if records and all(r.get("val_perplexity") is not None for r in records):
            curves["validation"] = [r["val_perplexity"] for r in records]
        plot_curves(run.file("perplexity.png"), curves, ylabel="perplexity", logy=True)


def train_lm(
    config: LMConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    until_epoch: int | None = None,
) -> dict[str, Any]:
    """Train ``config`` into the run directory ``out``; return summary.json's figures: the
    perplexities of the epoch kept (``config.keep``) and, as "baselines", the validation
    perplexities of an add-one unigram and an interpolated Kneser-Ney n-gram (its order
    chosen on the training text) fitted on the same training tokens (models/ngram.py).

    ``trainer.train``'s options and rules (the same as ``train_forecast``'s): overwrite,
    resume (the same text; ``epochs`` may grow), until_epoch. Raises TrainingDiverged when
    the loss, a perplexity or a weight becomes non-finite.
    """
    job, run, result = train(lambda: LMJob(config), out, resume=resume, overwrite=overwrite,
                             show_progress=show_progress, until_epoch=until_epoch)  # fmt: skip
    kept = [r for r in result.records if r["epoch"] == result.kept_epoch]
    final = kept[0] if kept else {}  # the epoch whose weights model.safetensors holds
    summary = {
        "train_perplexity": final.get("train_perplexity"),
        "val_perplexity": final.get("val_perplexity"),
        **result.summary(job.unit),
        "backend": job.backend,
    }
    if result.world.main:  # the one process that writes (distributed.py)
        if len(job.val_part) >= 2:  # count models on the same tokens and split
            summary["baselines"] = lm_baselines(job.train_part, job.val_part, len(job.vocab))
        run.write_summary(summary)
    return summary
