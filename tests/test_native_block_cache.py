"""The native kernel's cache of freed large blocks (``native/cache.h``, ``native/blocks.py``):
a freed block of >= 1 MiB is handed out again for a request of its size (up to 1/8 more),
never while a tensor still uses it; small requests and a cap of 0 bypass it; the cap
frees the largest blocks first; tensors from it are ordinary (resizable, any thread frees
them); and a layer's outputs and gradients are bitwise the same with the cache on and off
(float32), across steps whose sizes shrink into larger cached blocks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import torch

import grukit
from grukit.backends.native import blocks, extension

pytestmark = pytest.mark.usefixtures("native_kernel")  # skips where it is unavailable

MIB = 1 << 20


@pytest.fixture
def cache() -> Iterator[None]:
    """An empty cache with the default cap, restored afterwards."""
    blocks.empty_cache()
    old = blocks.set_cache_limit(512 * MIB)
    yield
    blocks.set_cache_limit(old)
    blocks.empty_cache()


def _empty(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return extension().cached_empty(torch.empty(0, dtype=dtype), list(shape))


@pytest.mark.usefixtures("cache")
def test_a_freed_block_is_reused_and_a_live_one_never() -> None:
    a = _empty(512, 1024)  # 2 MiB
    b = _empty(512, 1024)
    assert a.data_ptr() != b.data_ptr()
    a.fill_(1.0)
    b.fill_(2.0)
    assert torch.all(a == 1.0) and torch.all(b == 2.0)  # no overlap
    assert blocks.cache_info().in_use_bytes == 4 * MIB
    ptr = a.data_ptr()
    del a
    info = blocks.cache_info()
    assert (info.cached_bytes, info.cached_blocks, info.in_use_bytes) == (2 * MIB, 1, 2 * MIB)
    c = _empty(2 * MIB // 8 - 1000, 2)  # a little smaller: within 1/8, takes the block
    assert c.data_ptr() == ptr
    assert c.untyped_storage().nbytes() == (2 * MIB // 8 - 1000) * 2 * 4  # the request's size
    assert blocks.cache_info().cached_blocks == 0
    d = _empty(256, 1024)  # 1 MiB: the freed 2 MiB block would be too large
    del c
    e = _empty(256, 1024)
    assert e.data_ptr() != ptr and d.data_ptr() != ptr
    assert blocks.cache_info().cached_blocks == 1


@pytest.mark.usefixtures("cache")
def test_small_requests_and_a_zero_cap_bypass_the_cache() -> None:
    least_bytes = extension().cache_min_bytes  # also NativeLoops.empty's threshold
    assert least_bytes == MIB
    small = _empty(least_bytes // 4 - 1)
    del small
    assert blocks.cache_info().cached_blocks == 0  # < 1 MiB: torch's CPU allocator
    least = _empty(least_bytes // 4)
    del least
    assert blocks.cache_info().cached_blocks == 1
    blocks.empty_cache()
    blocks.set_cache_limit(0)
    big = _empty(1024, 1024)
    del big
    assert blocks.cache_info() == blocks.CacheInfo(0, 0, 0, 0)


@pytest.mark.usefixtures("cache")
def test_the_cap_frees_the_largest_blocks_first() -> None:
    ts = [_empty(n * MIB // 4) for n in (1, 2, 3)]  # 1, 2 and 3 MiB
    del ts
    assert blocks.cache_info().cached_bytes == 6 * MIB
    assert blocks.set_cache_limit(4 * MIB) == 512 * MIB
    info = blocks.cache_info()
    assert (info.cached_bytes, info.cached_blocks, info.limit_bytes) == (3 * MIB, 2, 4 * MIB)
    big = _empty(5 * MIB // 4)  # larger than the cap: freed at once
    del big
    assert blocks.cache_info().cached_bytes == 3 * MIB
    blocks.empty_cache()
    assert blocks.cache_info().cached_blocks == 0


@pytest.mark.usefixtures("cache")
def test_cached_tensors_resize_and_die_on_any_thread() -> None:
    t = _empty(256, 1024).fill_(3.0)
    t.resize_(512, 1024)  # the storage grows through the same allocator
    assert torch.all(t[:256] == 3.0)
    box = [t]
    del t
    thread = threading.Thread(target=box.clear)
    thread.start()
    thread.join()
    info = blocks.cache_info()
    assert info.in_use_bytes == 0 and info.cached_bytes == 3 * MIB  # the 1 and 2 MiB blocks


def test_set_cache_limit_rejects_bad_values() -> None:
    with pytest.raises(TypeError, match="set_cache_limit: expected limit_bytes an int, got float"):
        blocks.set_cache_limit(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="set_cache_limit: expected limit_bytes >= 0, got -1"):
        blocks.set_cache_limit(-1)


LAYERS = {
    "gru": lambda I, H: grukit.GRU(I, H, num_layers=2, backend="native"),
    "gru-bidirectional": lambda I, H: grukit.GRU(I, H, bidirectional=True, backend="native"),
    "layernorm-gru": lambda I, H: grukit.LayerNormGRU(I, H, num_layers=2, backend="native"),
}


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layer_results_are_the_same_with_the_cache_on_and_off(layer: str) -> None:
    torch.manual_seed(0)
    I, H = 64, 256
    gru = LAYERS[layer](I, H)

    def step(T: int, N: int) -> list[torch.Tensor]:
        x = torch.randn(T, N, I, generator=torch.Generator().manual_seed(T)).requires_grad_()
        out, h_n = gru(x)
        loss = (out * torch.cos(out)).sum() + (h_n**2).sum()
        return [out, h_n, *torch.autograd.grad(loss, [x, *gru.parameters()])]

    sizes = [(40, 32), (36, 32), (40, 32)]  # the second step fits in the first's blocks
    old = blocks.set_cache_limit(0)
    try:
        off = [step(T, N) for T, N in sizes]
    finally:
        blocks.set_cache_limit(old)
    blocks.empty_cache()
    on = [step(T, N) for T, N in sizes]
    assert blocks.cache_info().cached_blocks > 0  # the cache took part
    for got, want in zip(on, off, strict=True):
        for g, w in zip(got, want, strict=True):
            assert torch.equal(g, w)


def _child(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "from grukit.backends.native import blocks, extension; import torch; "
        "t = extension().cached_empty(torch.empty(0), [1 << 20]); del t; "
        "print(blocks.cache_info())"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )


def test_the_environment_variable_sets_the_cap() -> None:
    done = _child({"GRUKIT_BLOCK_CACHE_MB": "0"})
    assert done.returncode == 0, done.stderr
    assert "cached_blocks=0" in done.stdout and "limit_bytes=0" in done.stdout
    done = _child({"GRUKIT_BLOCK_CACHE_MB": "lots"})
    assert done.returncode != 0
    assert "GRUKIT_BLOCK_CACHE_MB: expected a whole number of MiB >= 0" in done.stderr
    assert "got 'lots'" in done.stderr
