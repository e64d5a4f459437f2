"""The native kernel's cache of freed large blocks (``cache.h``): what it holds, its cap,
and releasing it — as ``torch.cuda.memory_stats`` / ``empty_cache`` do for CUDA.

The kernel's row-sized tensors (the input projection gi (S, 3H), the gates, out, dgi, the
weight gradients) come from a cache of freed blocks of at least 1 MiB, so a training loop
reuses the same memory every step instead of mapping fresh pages (one page fault per
4 KiB on first touch; 11-20% of a step at (I, H, N, T) = (256, 512, 64, 100) on a 2-core
EPYC). Freed blocks stay cached up to a cap on their total: 512 MiB by default, set by the
environment variable ``GRUKIT_BLOCK_CACHE_MB`` before the first call (0 turns the cache
off) or by ``set_cache_limit``. Tensors in use are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import build, extension

__all__ = ["CacheInfo", "cache_info", "empty_cache", "set_cache_limit"]


@dataclass(frozen=True)
class CacheInfo:
    """The block cache now: bytes and blocks cached (free, kept for reuse), bytes handed out
    and still in use, and the cap on the cached bytes."""

    cached_bytes: int
    cached_blocks: int
    in_use_bytes: int
    limit_bytes: int


def cache_info() -> CacheInfo:
    """What the block cache holds now (all zeros when the kernel is unavailable)."""
    if build.load() is None:
        return CacheInfo(0, 0, 0, 0)
    return CacheInfo(*extension().cache_stats())


def empty_cache() -> None:
    """Frees every cached block back to the system (blocks in use are untouched and return
    to the cache when their tensors die)."""
    if build.load() is not None:
        extension().cache_clear()


def set_cache_limit(limit_bytes: int) -> int:
    """Caps the cached bytes at ``limit_bytes`` (0: cache nothing; blocks above the cap are
    freed now, largest first). Returns the previous cap."""
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int):
        raise TypeError(
            f"set_cache_limit: expected limit_bytes an int, got {type(limit_bytes).__name__}"
        )
    if limit_bytes < 0:
        raise ValueError(f"set_cache_limit: expected limit_bytes >= 0, got {limit_bytes}")
    return extension().cache_set_limit(limit_bytes)  # RuntimeError: the kernel is unavailable
