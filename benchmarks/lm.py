"""End-to-end speed of the d2l language model: grukit's CharLM against the same model built
the d2l way on ``torch.nn.GRU``, training side by side in one process.

Both train the d2l preset's model (one-hot input over 28 tokens, one GRU layer of 256, a
Linear head; SGD lr 1, gradient norm clipped at 1) on the same batches of The Time Machine
(batch 32, 35 steps, sequential partitioning, state carried and detached) from the same
initial weights. The d2l peer is d2l's code: ``RNNModel`` (``F.one_hot`` then ``nn.GRU``),
``train_epoch_ch8``'s step and ``grad_clipping``. The grukit peers are ``CharLM`` and the
step of ``grukit lm train`` (``grukit.training.lm.train_step``), once per backend. The
process keeps freed memory for reuse as ``grukit lm train`` does
(``grukit.training.memory``); every peer runs under that allocator setting.

Timing (DESIGN.md §5): a fixed thread count, warm-up, interleaved blocks of training
iterations with rotated order, median of ``--repeats`` blocks per peer; tokens/s and the
ratio to the d2l peer. Writes ``lm.json`` and ``lm.md`` to ``--out``.

    .venv/bin/python benchmarks/lm.py --out runs/bench-lm
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import grukit
from grukit.benchmark.timing import TimingConfig, median, time_interleaved
from grukit.data.text import load_corpus, seq_data_iter_sequential
from grukit.models.charlm import CharLM
from grukit.training import write_json
from grukit.training.lm import PRESETS, train_step
from grukit.training.memory import keep_freed_memory


class D2LRNNModel(nn.Module):
    """d2l's ``RNNModel`` (d2l 0.17, chapter 8.6), verbatim in substance."""

    def __init__(self, rnn_layer: nn.GRU, vocab_size: int) -> None:
        super().__init__()
        self.rnn, self.vocab_size = rnn_layer, vocab_size
        self.num_hiddens = self.rnn.hidden_size
        self.linear = nn.Linear(self.num_hiddens, self.vocab_size)

    def forward(self, inputs, state):
        X = F.one_hot(inputs.T.long(), self.vocab_size)
        X = X.to(torch.float32)
        Y, state = self.rnn(X, state)
        output = self.linear(Y.reshape((-1, Y.shape[-1])))
        return output, state

    def begin_state(self, batch_size: int = 1):
        return torch.zeros((self.rnn.num_layers, batch_size, self.num_hiddens))


def d2l_grad_clipping(net: nn.Module, theta: float) -> None:
    """d2l's ``grad_clipping``."""
    params = [p for p in net.parameters() if p.requires_grad]
    norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))
    if norm > theta:
        for param in params:
            param.grad[:] *= theta / norm


def _batches(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    cfg = PRESETS["d2l"]
    corpus, _ = load_corpus(max_tokens=cfg.max_tokens)
    g = torch.Generator().manual_seed(seed)
    return list(seq_data_iter_sequential(corpus, cfg.batch_size, cfg.num_steps, generator=g))


def _d2l_peer(model: D2LRNNModel, batches) -> Callable[[], None]:
    loss_fn = nn.CrossEntropyLoss()
    updater = torch.optim.SGD(model.parameters(), 1.0)
    it = {"i": 0, "state": None}

    def step() -> None:  # train_epoch_ch8's body, one batch
        i = it["i"] % len(batches)
        X, Y = batches[i]
        state = model.begin_state(X.shape[0]) if i == 0 else it["state"].detach_()
        y = Y.T.reshape(-1)
        y_hat, state = model(X, state)
        loss = loss_fn(y_hat, y.long()).mean()
        updater.zero_grad()
        loss.backward()
        d2l_grad_clipping(model, 1)
        updater.step()
        float(loss)  # d2l accumulates l * numel into its metric (a sync)
        it["i"], it["state"] = it["i"] + 1, state

    return step


def _grukit_peer(model: CharLM, batches) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    it = {"i": 0, "state": None}

    def step() -> None:  # grukit.training.lm.train's body, one batch
        i = it["i"] % len(batches)
        x, y = batches[i]
        state = None if i == 0 else model.detach_state(it["state"])
        _, state = train_step(model, opt, x, y, state, clip=1.0)
        it["i"], it["state"] = it["i"] + 1, state

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/bench-lm", help="folder for lm.json and lm.md")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=15, help="blocks per peer (>= 10)")
    parser.add_argument("--block-s", type=float, default=0.5, help="seconds per block")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads <= 0 or args.repeats <= 0:
        print("lm.py: error: expected --threads and --repeats > 0", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    # As `grukit lm train` does; process-wide, so the d2l peer runs under the same allocator.
    keep_freed_memory()
    batches = _batches(args.seed)
    cfg = PRESETS["d2l"]
    vocab = 28

    torch.manual_seed(args.seed)
    reference = CharLM(vocab, cfg.hidden_size)
    d2l = D2LRNNModel(nn.GRU(vocab, cfg.hidden_size), vocab)
    d2l.rnn.load_state_dict(reference.rnn.state_dict())
    d2l.linear.load_state_dict(reference.head.state_dict())
    peers: dict[str, Callable[[], None]] = {"d2l nn.GRU": _d2l_peer(d2l, batches)}
    backends = ["auto"] + [b for b in grukit.available_backends() if b != "reference"]
    for backend in backends:
        model = CharLM(vocab, cfg.hidden_size, backend=backend)
        model.load_state_dict(reference.state_dict())
        peers[f"grukit {backend}"] = _grukit_peer(model, batches)

    # Same start, same batches: the first losses agree (a check that the peers are one model).
    check = {}
    for name, m in [("d2l", d2l), ("grukit", reference)]:
        logits, _ = m(batches[0][0], None if name == "grukit" else m.begin_state(32))
        check[name] = float(F.cross_entropy(logits, batches[0][1].T.reshape(-1)).detach())
    if abs(check["d2l"] - check["grukit"]) > 1e-5:
        print(f"lm.py: error: the peers disagree at the start: {check}", file=sys.stderr)
        return 1

    timing = TimingConfig(repeats=args.repeats, warmup_s=1.0, block_s=args.block_s, pause_s=0.05)
    samples = time_interleaved(peers, timing)
    tokens = cfg.batch_size * cfg.num_steps
    tps = {name: tokens / median(s) for name, s in samples.items()}
    base = tps["d2l nn.GRU"]
    result = {
        "model": "d2l preset: one-hot 28 → GRU 256 → Linear 28; SGD lr 1, clip 1; N=32, T=35",
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "available_backends": grukit.available_backends(),
        "tokens_per_second": tps,
        "ratio_to_d2l": {name: v / base for name, v in tps.items()},
        "samples_seconds_per_iteration": samples,
    }
    out = Path(args.out)
    write_json(out / "lm.json", result)
    lines = [
        f"d2l language model, one training iteration = {tokens} tokens; "
        f"{args.threads} thread(s), median of {args.repeats} interleaved blocks",
        "",
        "| peer | tokens/s | × d2l nn.GRU |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {n} | {v:,.0f} | {v / base:.2f} |" for n, v in tps.items()]
    (out / "lm.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
