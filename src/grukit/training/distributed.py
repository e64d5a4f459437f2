"""Training on several processes with PyTorch's own engine: torchrun starts the processes,
``torch.distributed`` connects them (gloo on the CPU, nccl on GPUs), and
``DistributedDataParallel`` averages the gradients during backward.

    torchrun --nproc_per_node 2 -m grukit lm train --out runs/x ...
    torchrun --nnodes 2 --node_rank R --rdzv_endpoint HOST:PORT --nproc_per_node 4 -m grukit ...

How the loop (trainer.py) divides the work among K processes (ranks):
- every rank draws the same global batches (the same seeds), and takes its own rows of
  each: rank r the rows [⌊B·r/K⌋, ⌊B·(r+1)/K⌋) of a batch of B rows (``rows``). For the
  language model's sequential batches these are the same streams every batch, so each
  rank carries its own hidden state over contiguous text;
- each rank's mean loss is weighted by its share of the rows (k_r·K/B), so that DDP's
  average of the gradients is the gradient of the global batch's mean loss: the same
  model as one process with the same --batch-size, up to the order of float additions
  (dropout aside: its masks are drawn per rank);
- rank 0 alone writes the run directory; every rank reads it to resume, so a run may be
  resumed with another number of processes.

Nothing here starts processes or reads flags: the CLI calls ``init_from_env`` when
torchrun's variables are set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["World", "all_sum", "any_true", "barrier", "init_from_env", "rows", "world", "wrap"]


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes the run directory (rank 0)."""
        return self.rank == 0


def world() -> World:
    """The current process group's rank and size (0 of 1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def init_from_env() -> World:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``,
    ``MASTER_ADDR``…): gloo for CPU tensors, nccl for CUDA ones where torch has it.
    Nothing happens without
    torchrun's variables or with a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise RuntimeError("init_from_env: this torch build has no torch.distributed")
        nccl = torch.cuda.is_available() and dist.is_nccl_available()
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if nccl else "gloo")
    return world()


def rows(n: int, w: World) -> slice:
    """Rank ``w.rank``'s rows of a batch of ``n``: [⌊n·r/K⌋, ⌊n·(r+1)/K⌋)."""
    return slice(n * w.rank // w.size, n * (w.rank + 1) // w.size)


def wrap(module: nn.Module, w: World) -> nn.Module:
    """``module`` in DistributedDataParallel when there are several processes."""
    if w.size == 1:
        return module
    return nn.parallel.DistributedDataParallel(module)


def all_sum(values: Sequence[float], w: World) -> list[float]:
    """The sums over all ranks of ``values`` (float64), the same on every rank."""
    if w.size == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t]


def any_true(flag: bool, w: World) -> bool:
    """Whether ``flag`` holds on any rank (so every rank takes the same branch)."""
    return all_sum([float(flag)], w)[0] > 0


def barrier(w: World) -> None:
    if w.size > 1:
        dist.barrier()
