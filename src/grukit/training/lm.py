"""Training, evaluation and generation for the character-level language model.

d2l's ``train_ch8`` / ``train_epoch_ch8`` / ``predict_ch8``, made resumable and measured:

    per epoch: a data generator seeded from (seed, epoch) draws the offset (and order);
    per batch (X, Y (N, T)): state = 0 at the epoch's start (and every batch with random
        partitioning), else the previous batch's state, detached;
        loss = mean cross-entropy of logits against Y (time-major, as d2l);
        backward; clip the gradients' global norm to ``clip``; optimizer step.
    perplexity = exp(mean cross-entropy per token).

The run directory (``RunDir``) gets config.json (with the sha256 of the tokens trained
on), a checkpoint at the start and after every epoch (model, optimizer, torch RNG, epoch,
accumulated time), metrics.jsonl, model.safetensors, perplexity.png and summary.json.
An existing run is replaced only with ``overwrite=True``. ``resume=True`` continues from
the checkpoint and ends bitwise equal to an uninterrupted run on the CPU (same thread
count); it refuses changed text, a changed config (only ``epochs`` may grow) and a
checkpoint that fails its digest or invariants. A non-finite loss, perplexity or weight
stops the run (``TrainingDiverged``) with the last good checkpoint kept.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..backends import resolve
from ..data.text import (
    Vocab,
    load_corpus,
    preprocess,
    seq_data_iter_random,
    seq_data_iter_sequential,
    split_corpus,
)
from ..models.charlm import CharLM, State
from .checkpoint import load_weights, rng_state, save_weights, set_rng_state
from .integrity import (
    TrainingDiverged,
    check_epoch,
    check_optimizer_state,
    check_rng_state,
    check_state_dict,
    finite_number,
)
from .lm_config import PRESETS, LMConfig
from .memory import keep_freed_memory
from .plots import plot_curves
from .progress import progress
from .run_dir import RunDir

__all__ = [
    "PRESETS",
    "LMConfig",
    "TrainingDiverged",
    "evaluate",
    "generate",
    "load_run",
    "train",
    "train_step",
]


# --- data and model ------------------------------------------------------------------------


def data_sha256(corpus: Tensor, vocab: Vocab) -> str:
    """sha256 of the token ids (S,) and the vocabulary: what a run trains on, stored in
    config.json so that resuming on an edited text is refused."""
    h = hashlib.sha256(json.dumps(vocab.to_list()).encode())
    h.update(corpus.to(torch.int64).numpy().tobytes())
    return h.hexdigest()


def load_data(config: LMConfig) -> tuple[Tensor, Tensor, Vocab]:
    """(train (S_train,), validation (S_val,), vocab): split by position, then the training
    part cut to ``max_tokens`` (d2l's preset trains on the book's first 10,000 tokens)."""
    return _load_data(config)[:3]


def _load_data(config: LMConfig) -> tuple[Tensor, Tensor, Vocab, str]:
    corpus, vocab = load_corpus(config.text, letters_only=config.letters_only)
    digest = data_sha256(corpus, vocab)
    train_part, val_part = split_corpus(corpus, config.val_fraction)
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
    )


def _optimizer(config: LMConfig, model: CharLM) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _lr_at(config: LMConfig, progress_fraction: float) -> float:
    if config.lr_schedule == "constant":
        return config.lr
    cos = 0.5 * (1.0 + math.cos(math.pi * min(progress_fraction, 1.0)))
    return config.lr_min + (config.lr - config.lr_min) * cos


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The data order of ``epoch`` depends on (seed, epoch) only: nothing to checkpoint."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


# --- evaluation and generation -------------------------------------------------------------


@torch.no_grad()
def evaluate(model: CharLM, corpus: Tensor, *, batch_size: int, num_steps: int) -> float:
    """Perplexity of ``model`` on ``corpus`` (S,): exp(mean cross-entropy of every next token),
    read as up to ``batch_size`` contiguous streams with the state carried through each."""
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
        logits, state = model(xs[:, i : i + num_steps], state)
        target = ys[:, i : i + num_steps].t().reshape(-1)  # (T·N,) time-major
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
        kind = "a forecast run" if "config" in saved and "scaler" in saved else "another file"
        raise ValueError(
            f"load_run: expected a language-model run's config.json in {run.path}, got {kind} "
            f"(keys {sorted(saved)[:8]})"
        )
    try:
        return LMConfig.from_dict(saved["lm"]), saved
    except TypeError as err:
        raise ValueError(f"load_run: expected a valid config in {run.config}, got: {err}") from None


def load_run(path: str | os.PathLike) -> tuple[CharLM, Vocab, LMConfig]:
    """(model in eval mode, vocab, config) of a run directory written by ``train``; weights
    that fail their digest, do not fit the config's model or are not finite are refused."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise FileNotFoundError(f"load_run: expected a run directory at {run.path}, found none")
    config, saved = _run_config(run)
    if not all(isinstance(t, str) for t in saved["vocab"]):
        raise ValueError(f"load_run: expected a vocabulary of strings in {run.config}")
    vocab = Vocab.from_list(saved["vocab"])
    model = build_model(config, len(vocab))
    if run.model.is_file():
        weights, where = load_weights(run.model)[0], run.model
    else:
        weights, where = run.load_checkpoint().get("model"), run.checkpoint
    model.load_state_dict(check_state_dict("load_run", weights, model.state_dict(), where))
    return model.eval(), vocab, config


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
    logits, state = model(x, state)  # (T·N, V)
    loss = F.cross_entropy(logits, y.t().reshape(-1))  # time-major targets (T·N,)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True)
    opt.step()
    return float(loss.detach()), state


def _resolved_backend(model: CharLM) -> str:
    """The backend that "auto" (or the configured name) runs the model's layers on."""
    w = model.rnn.weight_ih_l0
    return resolve("CharLM", model.rnn.backend, model.rnn.spec, w.new_zeros(1, 1, w.shape[1])).name


def _checkpoint(model: CharLM, opt: torch.optim.Optimizer, epoch: int, totals: dict) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": rng_state(),
        "epoch": epoch,
        "totals": dict(totals),
    }


def _check_resume(run: RunDir, config: LMConfig, run_config: dict) -> bool:
    """Refuse a run whose config (``epochs`` aside) or data differ; True if epochs differ."""
    saved_config, saved = _run_config(run)
    mine, theirs = config.to_dict(), saved_config.to_dict()
    diff = [k for k in mine if k != "epochs" and mine[k] != theirs[k]]
    if diff:
        got = ", ".join(f"{k} {mine[k]!r} (the run's: {theirs[k]!r})" for k in diff)
        raise ValueError(
            f"lm train: expected the config of the run in {run.path} to resume (only epochs "
            f"may change), got {got}"
        )
    if (
        saved.get("data_sha256") != run_config["data_sha256"]
        or saved["vocab"] != run_config["vocab"]
    ):
        raise ValueError(
            f"lm train: expected the text the run in {run.path} trained on (sha256 "
            f"{str(saved.get('data_sha256'))[:12]}…) to resume, got a different text (sha256 "
            f"{run_config['data_sha256'][:12]}…)"
        )
    return mine["epochs"] != theirs["epochs"]


def _load_checkpoint(run: RunDir, model: CharLM, opt: torch.optim.Optimizer, epochs: int):
    """(epoch, totals) of the run's checkpoint, loaded into model and opt after every check
    (digest, keys, dtypes, shapes, finite values, epoch in [0, epochs])."""
    ckpt, where, owner = run.load_checkpoint(), run.checkpoint, "lm train"
    if set(ckpt) != {"model", "optimizer", "rng", "epoch", "totals"}:
        raise ValueError(
            f"{owner}: expected a language-model checkpoint in {where}, got keys "
            f"{sorted(map(str, ckpt))[:8]}"
        )
    epoch = check_epoch(owner, ckpt["epoch"], epochs, where)
    weights = check_state_dict(owner, ckpt["model"], model.state_dict(), where)
    opt_state = check_optimizer_state(owner, ckpt["optimizer"], opt, where)
    rng = check_rng_state(owner, ckpt["rng"], where)
    totals = ckpt["totals"]
    if not isinstance(totals, dict) or set(totals) != {"tokens", "train_seconds", "wall_seconds"}:
        raise ValueError(f"{owner}: expected the run's totals in {where}, got {totals!r}")
    for k, v in totals.items():
        if finite_number(owner, k, v) < 0:
            raise ValueError(f"{owner}: expected {k} >= 0 in {where}, got {v}")
    model.load_state_dict(weights)
    opt.load_state_dict(opt_state)
    set_rng_state(rng)
    return epoch, dict(totals)


def _all_finite(model: CharLM) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _save_outputs(run: RunDir, model: CharLM, config: LMConfig, records: list[dict]) -> None:
    save_weights(run.model, model.state_dict(), {"lm": config.to_dict(), **model.config()})
    curves = {"train": [r["train_perplexity"] for r in records]}
    if all(r.get("val_perplexity") is not None for r in records):
        curves["validation"] = [r["val_perplexity"] for r in records]
    plot_curves(run.file("perplexity.png"), curves, ylabel="perplexity", logy=True)


def train(
    config: LMConfig,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    until_epoch: int | None = None,
) -> dict[str, Any]:
    """Train ``config`` into the run directory ``out``; return summary.json's figures.

    Everything is checked (config, text, model, backend) before a file is written.
    overwrite: replace a run already in ``out`` (swapped in once the new run's config and
        first checkpoint are written); without it a folder holding files is refused.
    resume: continue from ``out``'s checkpoint. The run's config must equal ``config``
        except ``epochs`` (which may extend the run) and the text must be the same.
    until_epoch: stop after this epoch (as if interrupted); the run stays resumable.
    Raises TrainingDiverged when the loss, a perplexity or a weight becomes non-finite.
    """
    keep_freed_memory()  # the steps' large buffers are reused, not page-faulted in again
    run = RunDir(out)
    if resume:
        run.check_resumable()
    else:
        run.check_new(overwrite=overwrite)
    train_part, val_part, vocab, digest = _load_data(config)
    torch.manual_seed(config.seed)
    model = build_model(config, len(vocab))
    backend = _resolved_backend(model)  # a cell the backend cannot run is refused here
    opt = _optimizer(config, model)
    run_config = {
        "lm": config.to_dict(),
        "model": model.config(),
        "vocab": vocab.to_list(),
        "data_sha256": digest,
    }
    start, totals = 0, {"tokens": 0, "train_seconds": 0.0, "wall_seconds": 0.0}
    if resume:
        extended = _check_resume(run, config, run_config)
        start, totals = _load_checkpoint(run, model, opt, config.epochs)
        records = run.keep_metrics_until(start)
        if extended:
            run.write_config(run_config)
    else:
        run.begin(run_config, _checkpoint(model, opt, 0, totals), overwrite=overwrite)
        records = []
    last = config.epochs if until_epoch is None else min(until_epoch, config.epochs)
    plot_every = max(10, config.epochs // 10)  # a PNG costs ~0.1-1 s: not every epoch
    bar = progress(
        config.epochs,
        "lm train",
        unit="epoch",
        disable=not show_progress,
        bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
    )
    bar.update(start)
    postfix: dict[str, str] = {}

    def diverged(what: str, epoch: int) -> TrainingDiverged:
        bar.close()
        return TrainingDiverged(
            f"lm train: expected finite training, got {what} in epoch {epoch + 1}; stopped, "
            f"keeping the last good checkpoint (epoch {epoch}) in {run.path} (a lower "
            f"learning rate or clip may help)"
        )

    model.train()
    for epoch in range(start, last):
        t0 = time.perf_counter()
        gen = _epoch_generator(config.seed, epoch)
        if config.partition == "sequential":
            batches = list(
                seq_data_iter_sequential(
                    train_part, config.batch_size, config.num_steps, generator=gen
                )
            )
        else:
            batches = list(
                seq_data_iter_random(train_part, config.batch_size, config.num_steps, generator=gen)
            )
        state, loss_sum, count = None, 0.0, 0
        for i, (x, y) in enumerate(batches):
            for group in opt.param_groups:
                group["lr"] = _lr_at(config, (epoch + i / len(batches)) / config.epochs)
            if state is not None and config.partition == "sequential":
                state = model.detach_state(state)
            else:
                state = None  # zeros: each epoch's start, every random batch
            loss, state = train_step(model, opt, x, y, state, clip=config.clip)
            if not math.isfinite(loss):
                raise diverged(f"a loss of {loss} at batch {i + 1}", epoch)
            loss_sum += loss * y.numel()
            count += y.numel()
            bar.update(1 / len(batches))
            if i % 8 == 0:
                postfix["ppl"] = f"{perplexity(loss_sum / count):.3f}"  # running, this epoch
                bar.set_postfix(postfix)
        seconds = time.perf_counter() - t0
        val_ppl = None
        if len(val_part) >= 2:
            val_ppl = evaluate(
                model, val_part, batch_size=config.eval_batch_size, num_steps=config.num_steps
            )
        record = {
            "epoch": epoch + 1,
            "train_perplexity": perplexity(loss_sum / count),
            "val_perplexity": val_ppl,
            "tokens_per_second": count / seconds,
            "lr": opt.param_groups[0]["lr"],
            "seconds": seconds,
        }
        for key in ("train_perplexity", "val_perplexity"):
            if record[key] is not None and not math.isfinite(record[key]):
                raise diverged(f"a {key.replace('_', ' ')} of {record[key]}", epoch)
        if not _all_finite(model):
            raise diverged("non-finite weights", epoch)
        totals["tokens"] += count
        totals["train_seconds"] += seconds
        totals["wall_seconds"] += time.perf_counter() - t0
        records.append(record)
        run.append_metrics(record)
        run.save_checkpoint(_checkpoint(model, opt, epoch + 1, totals))
        if (epoch + 1) % plot_every == 0 or epoch + 1 == last:
            _save_outputs(run, model, config, records)
        postfix.update(
            ppl=f"{record['train_perplexity']:.3f}",
            val=f"{val_ppl:.3f}" if val_ppl is not None else "-",
            tok_s=f"{record['tokens_per_second']:,.0f}",
        )
        bar.set_postfix(postfix)
    bar.close()
    final = records[-1] if records else {}
    summary = {
        "train_perplexity": final.get("train_perplexity"),
        "val_perplexity": final.get("val_perplexity"),
        "tokens_per_second": totals["tokens"] / max(totals["train_seconds"], 1e-12),
        "wall_seconds": totals["wall_seconds"],
        "epochs_completed": len(records),
        "epochs": config.epochs,
        "threads": torch.get_num_threads(),
        "backend": backend,
    }
    run.write_summary(summary)
    return summary
