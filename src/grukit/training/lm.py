"""Training, evaluation and generation for the character-level language model.

d2l's ``train_ch8`` / ``train_epoch_ch8`` / ``predict_ch8``, made resumable and measured:

    per epoch: a data generator seeded from (seed, epoch) draws the offset (and order);
    per batch (X, Y (N, T)): state = 0 at the epoch's start (and every batch with random
        partitioning), else the previous batch's state, detached;
        loss = mean cross-entropy of logits against Y (time-major, as d2l);
        backward; clip the gradients' global norm to ``clip``; optimizer step.
    perplexity = exp(mean cross-entropy per token).

The run directory (``RunDir``) gets config.json, a checkpoint every epoch (model,
optimizer, torch RNG, epoch, accumulated time), metrics.jsonl, model.safetensors,
perplexity.png and summary.json. ``resume=True`` continues from the checkpoint and ends
bitwise equal to an uninterrupted run on the CPU (same thread count).
"""

from __future__ import annotations

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
from .lm_config import PRESETS, LMConfig
from .memory import keep_freed_memory
from .plots import plot_curves
from .progress import progress
from .run_dir import RunDir

__all__ = [
    "PRESETS",
    "LMConfig",
    "evaluate",
    "generate",
    "load_run",
    "train",
    "train_step",
]


# --- data and model ------------------------------------------------------------------------


def load_data(config: LMConfig) -> tuple[Tensor, Tensor, Vocab]:
    """(train (S_train,), validation (S_val,), vocab): split by position, then the training
    part cut to ``max_tokens`` (d2l's preset trains on the book's first 10,000 tokens)."""
    corpus, vocab = load_corpus(config.text, letters_only=config.letters_only)
    train_part, val_part = split_corpus(corpus, config.val_fraction)
    if config.max_tokens is not None:
        train_part = train_part[: config.max_tokens]
    need = config.batch_size * config.num_steps + config.num_steps + 1
    if len(train_part) < need:
        raise ValueError(
            f"grukit lm: expected at least {need} training tokens for one batch of "
            f"{config.batch_size} × {config.num_steps}, got {len(train_part)}"
        )
    return train_part, val_part, vocab


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
    return math.exp(total / (streams * per))


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

    Greedy (argmax, as d2l) when temperature is None or 0; else sampled from
    softmax(logits / temperature), restricted to the ``top_k`` likeliest tokens if given.
    """
    if not isinstance(length, int) or length < 0:
        raise ValueError(f"generate: expected length >= 0, got {length!r}")
    if temperature is not None and temperature < 0:
        raise ValueError(f"generate: expected temperature >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= len(vocab):
        raise ValueError(f"generate: expected top_k in [1, {len(vocab)}], got {top_k}")
    tokens = preprocess(prefix, letters_only=letters_only) if letters_only else list(prefix)
    if letters_only and prefix[:1] == " ":
        tokens = [" ", *tokens]  # keep a leading space the user asked for
    if not tokens:
        raise ValueError(f"generate: expected a prefix with at least one token, got {prefix!r}")
    was_training = model.training
    model.eval()
    ids = vocab.encode(tokens)
    logits, state = model(torch.tensor([ids]), None)  # (T, V), the prefix in one pass
    out = list(ids)
    for _ in range(length):
        last = logits[-1]  # (V,)
        if not temperature:
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


def load_run(path: str | os.PathLike) -> tuple[CharLM, Vocab, LMConfig]:
    """(model in eval mode, vocab, config) of a run directory written by ``train``."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise FileNotFoundError(f"expected a run directory at {run.path}, found none")
    saved = run.read_config()
    if "lm" not in saved or "vocab" not in saved:
        raise ValueError(
            f"expected a language-model config.json in {run.path}, got {sorted(saved)}"
        )
    config = LMConfig.from_dict(saved["lm"])
    vocab = Vocab.from_list(saved["vocab"])
    model = build_model(config, len(vocab))
    if run.model.is_file():
        weights, _ = load_weights(run.model)
    else:
        weights = run.load_checkpoint()["model"]
    model.load_state_dict(weights)
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
    show_progress: bool = True,
    until_epoch: int | None = None,
) -> dict[str, Any]:
    """Train ``config`` into the run directory ``out``; return summary.json's figures.

    resume: continue from ``out``'s checkpoint (its config.json must equal ``config``).
    until_epoch: stop after this epoch (as if interrupted); the run stays resumable.
    """
    keep_freed_memory()  # the steps' large buffers are reused, not page-faulted in again
    run = RunDir(out).create()
    train_part, val_part, vocab = load_data(config)
    if resume:
        if not run.has_checkpoint():
            raise FileNotFoundError(f"expected a checkpoint to resume in {run.path}, found none")
        saved = LMConfig.from_dict(run.read_config()["lm"])
        if saved != config:
            raise ValueError(f"expected the config of the run in {run.path} to resume, got another")
    torch.manual_seed(config.seed)
    model = build_model(config, len(vocab))
    opt = _optimizer(config, model)
    start, totals = 0, {"tokens": 0, "train_seconds": 0.0, "wall_seconds": 0.0}
    if resume:
        ckpt = run.load_checkpoint()
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        start, totals = int(ckpt["epoch"]), dict(ckpt["totals"])
        records = run.keep_metrics_until(start)
    else:
        run.write_config(
            {"lm": config.to_dict(), "model": model.config(), "vocab": vocab.to_list()}
        )
        records = []
        run.keep_metrics_until(0)
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
            loss_sum += loss * y.numel()
            count += y.numel()
            bar.update(1 / len(batches))
            if i % 8 == 0:
                postfix["ppl"] = f"{math.exp(loss_sum / count):.3f}"  # running, this epoch
                bar.set_postfix(postfix)
        seconds = time.perf_counter() - t0
        val_ppl = None
        if len(val_part) >= 2:
            val_ppl = evaluate(
                model, val_part, batch_size=config.eval_batch_size, num_steps=config.num_steps
            )
        totals["tokens"] += count
        totals["train_seconds"] += seconds
        totals["wall_seconds"] += time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "train_perplexity": math.exp(loss_sum / count),
            "val_perplexity": val_ppl,
            "tokens_per_second": count / seconds,
            "lr": opt.param_groups[0]["lr"],
            "seconds": seconds,
        }
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
        "backend": _resolved_backend(model),
    }
    run.write_summary(summary)
    return summary
