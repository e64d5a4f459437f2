"""Mixed precision's accuracy: ``grukit.GRU`` under ``torch.autocast("cpu", bfloat16)`` with
its large GEMMs in bfloat16 (``GRUKIT_BF16_GEMMS=1``, grukit/_autocast.py) against the same
layer in float32, on the speed benchmark's grid; and, for comparison, ``torch.nn.GRU``'s
output under the same autocast against the same float32 output (nn.GRU returns float32
there, computed from bfloat16-rounded operands).

Relative error = ‖bf16 − float32‖ / ‖float32‖ (Frobenius) of the output, h_n and each
gradient (input, W_ih, W_hh, b_ih, b_hh) of a fixed loss Σ out ⊙ c. Accuracy only: on a CPU
without bfloat16 units the GEMMs are emulated and slow, so no times are reported.

    .venv/bin/python benchmarks/bf16_accuracy.py                  # the grid (~1 min, AVX2)
"""

from __future__ import annotations

import argparse
import os

import torch

import grukit
from grukit import _autocast

GRID = [(28, 256, 32, 35), (8, 64, 32, 50), (256, 512, 64, 100), (512, 1024, 16, 100)]
NAMES = ["output", "h_n", "dx", "dW_ih", "dW_hh", "db_ih", "db_hh"]


def run(gru: torch.nn.Module, x: torch.Tensor, c: torch.Tensor, bf16: bool) -> list[torch.Tensor]:
    gru.zero_grad()
    xx = x.clone().requires_grad_()
    os.environ[_autocast.ENV] = "1" if bf16 else "0"
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out, h_n = gru(xx)
    (out * c).sum().backward()
    grads = [xx.grad, *(p.grad for p in gru.parameters())]
    return [out.detach(), h_n.detach(), *(g for g in grads if g is not None)]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| (I, H, N, T) | " + " | ".join(NAMES) + " | nn.GRU under autocast, output |")
    print("|---|" + "--:|" * (len(NAMES) + 1))
    for I, H, N, T in GRID:
        torch.manual_seed(0)
        gru = grukit.GRU(I, H)
        ref = torch.nn.GRU(I, H)
        ref.load_state_dict(gru.state_dict())
        x, c = torch.randn(T, N, I), torch.randn(T, N, H)
        low, full = run(gru, x, c, True), run(gru, x, c, False)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            torch_out = ref(x)[0].float()
        errs = [rel(a, b) for a, b in zip(low, full, strict=True)]
        cells = " | ".join(f"{e:.1e}" for e in errs)
        print(f"| {I}, {H}, {N}, {T} | {cells} | {rel(torch_out, full[0]):.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
