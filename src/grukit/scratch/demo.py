r"""Train a small GRU with plain SGD, in NumPy alone: ``python -m grukit.scratch.demo``.

The task: continue a sine wave. Each sequence is :math:`s_t = \sin(\omega t + \varphi)`
with its own frequency ω and phase φ; at every step the model sees :math:`s_t` and
predicts :math:`s_{t+1}`. One value cannot tell where the wave goes next (rising or
falling, how fast), so the GRU must carry ω and the direction in its hidden state.

Model and loss (T steps, N sequences, H hidden units):

.. math::
    h_{1..T} = \mathrm{GRU}(s_{0..T-1}), \quad \hat s_{t+1} = W_o h_t + b_o, \quad
    L = \frac{1}{TN} \sum_{t,n} (\hat s_{t+1} - s_{t+1})^2

Gradients: :math:`\bar{\hat s} = 2 (\hat s - s) / (TN)`, the head's by hand, and
:math:`\bar h = \bar{\hat s}\, W_o` handed to ``gru_backward``. Updates are plain SGD,
:math:`\theta \leftarrow \theta - \eta\, \bar\theta`, after clipping the global gradient
norm. Printing happens only in ``main``; ``train`` returns the losses.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .gru import gru_backward, gru_forward

__all__ = ["DemoConfig", "make_batch", "init_params", "train", "main"]


@dataclass
class DemoConfig:
    hidden_size: int = 32  # enough to hold frequency and direction; each step stays microseconds
    seq_len: int = 40  # several periods of the slowest wave, so memory pays off
    batch_size: int = 32  # averages out the per-sequence noise of one SGD step
    steps: int = 400  # the loss falls by well over 10x in this many steps (a few seconds)
    lr: float = 0.5  # plain SGD on an MSE of values ~1; larger steps diverge early on
    clip: float = 1.0  # global-norm clip: RNN gradients can spike when the state saturates
    omega: tuple[float, float] = (0.15, 0.6)  # radians per step: periods of ~10 to ~40 steps
    reset_after: bool = True  # torch's GRU variant; False trains d2l's just as well
    seed: int = 0  # one seed for data and init, so a run is reproducible


def make_batch(
    rng: np.random.Generator, config: DemoConfig, dtype: npt.DTypeLike = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of sine waves: inputs (T, N, 1) = s_0 … s_{T-1}, targets (T, N, 1) = s_1 … s_T."""
    T, N = config.seq_len, config.batch_size
    omega = rng.uniform(*config.omega, size=N)  # (N,)
    phase = rng.uniform(0, 2 * np.pi, size=N)  # (N,)
    s = np.sin(np.arange(T + 1)[:, None] * omega + phase)  # (T + 1, N)
    s = s[:, :, None].astype(dtype)  # (T + 1, N, 1)
    return s[:-1], s[1:]


def init_params(
    rng: np.random.Generator, input_size: int, hidden_size: int, dtype: npt.DTypeLike = np.float64
) -> dict[str, np.ndarray]:
    """GRU weights (torch's names and init U(−1/√H, 1/√H)) plus a linear head
    "head_w" (1, H) and "head_b" (1,)."""
    k = 1 / np.sqrt(hidden_size)
    shapes = {
        "weight_ih": (3 * hidden_size, input_size),
        "weight_hh": (3 * hidden_size, hidden_size),
        "bias_ih": (3 * hidden_size,),
        "bias_hh": (3 * hidden_size,),
        "head_w": (1, hidden_size),
        "head_b": (1,),
    }
    return {name: rng.uniform(-k, k, size=s).astype(dtype) for name, s in shapes.items()}


def _loss_and_grads(
    params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, reset_after: bool
) -> tuple[float, dict[str, np.ndarray]]:
    """MSE of the one-step-ahead prediction and its gradient for every parameter."""
    T, N, _ = x.shape
    H = params["weight_hh"].shape[1]
    gru = {k: params[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    h0 = np.zeros((N, H), dtype=x.dtype)  # (N, H)
    hs, cache = gru_forward(x, h0, gru, reset_after=reset_after)  # (T, N, H)
    pred = hs @ params["head_w"].T + params["head_b"]  # (T, N, 1)
    err = pred - y  # (T, N, 1)
    loss = float(np.mean(err * err))
    dpred = 2 * err / err.size  # (T, N, 1)
    grads = gru_backward(dpred @ params["head_w"], cache)  # dhs: (T, N, 1) @ (1, H)
    grads["head_w"] = dpred.reshape(T * N, 1).T @ hs.reshape(T * N, H)  # (1, T·N) @ (T·N, H)
    grads["head_b"] = dpred.sum(axis=(0, 1))
    return loss, grads


def train(config: DemoConfig | None = None) -> list[float]:
    """Train with plain SGD; return the loss of every step (each on a fresh batch)."""
    config = DemoConfig() if config is None else config
    rng = np.random.default_rng(config.seed)
    params = init_params(rng, 1, config.hidden_size)
    losses = []
    for _ in range(config.steps):
        x, y = make_batch(rng, config)
        loss, grads = _loss_and_grads(params, x, y, config.reset_after)
        norm = np.sqrt(sum(float(np.sum(grads[k] ** 2)) for k in params))
        scale = config.lr * min(1.0, config.clip / (norm + 1e-12))
        for k in params:
            params[k] -= scale * grads[k]
        losses.append(loss)
    return losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grukit.scratch.demo",
        description="Train a NumPy GRU with SGD to continue sine waves; print the loss falling.",
    )
    defaults = DemoConfig()
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--hidden-size", type=int, default=defaults.hidden_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--reset-before", action="store_true", help="use reset_after=False (Cho et al., d2l)"
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.hidden_size < 1 or not args.lr > 0:
        parser.error("expected --steps >= 1, --hidden-size >= 1 and --lr > 0")
    config = DemoConfig(
        hidden_size=args.hidden_size,
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
        reset_after=not args.reset_before,
    )
    start = time.perf_counter()
    losses = train(config)
    seconds = time.perf_counter() - start
    every = max(1, config.steps // 10)
    x, y = make_batch(np.random.default_rng(config.seed + 1), config)
    zero, repeat = float(np.mean(y * y)), float(np.mean((y - x) ** 2))
    print(
        f"GRU in NumPy (reset_after={config.reset_after}, H={config.hidden_size}), "
        f"SGD lr={config.lr}"
    )
    print(f"task: predict s_t+1 of a sine wave; loss = MSE, mean over each {every} steps")
    for end in range(every, config.steps + 1, every):
        print(f"step {end:5d}  loss {np.mean(losses[end - every : end]):.5f}")
    print(f"baselines: predict 0 -> {zero:.4f}; predict s_t+1 = s_t -> {repeat:.4f}")
    print(f"trained in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
