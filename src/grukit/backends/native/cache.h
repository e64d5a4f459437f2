// A cache of freed large CPU blocks for the kernels' row-sized tensors (cache.cpp).
//
// Why: a training step allocates and frees the same few large tensors every call (the input
// projection gi (S, 3H), the gates, dgi, out). The C library hands blocks above its mmap
// threshold (32 MiB in glibc, less after trimming) back to the kernel on free, so each call
// maps fresh pages and pays a page fault per 4 KiB on first touch: measured on a 2-core EPYC
// VM, ~2 µs a fault, 19 ms to first-touch one (6400, 1536) float32 tensor that a reused
// buffer fills in 1.2 ms, and 11-20% of the training step at (I, H, N, T) = (256, 512, 64,
// 100). Blocks of at least kCacheMinBytes freed here are kept (up to a cap, default 512 MiB,
// GRUKIT_BLOCK_CACHE_MB to change it, 0 to turn the cache off) and handed out again for a request
// of the same size (up to 1/8 larger), so the steady state maps nothing.
//
// Tensors made here are ordinary resizable CPU tensors; their memory returns to the cache
// when the last reference dies (from any thread). Smaller requests go to torch's CPU
// allocator.
#pragma once

#include <torch/extension.h>

#include <cstdint>

namespace grukit {

// Requests below this go to torch's CPU allocator: the C library keeps such blocks on its
// heap, and a page fault per 4 KiB is small next to the work that fills a smaller tensor.
// Bound as the module's `cache_min_bytes` (NativeLoops.empty skips the call below it).
constexpr size_t kCacheMinBytes = size_t{1} << 20;

// An empty CPU tensor (like at::empty) whose storage comes from the cache.
at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

// (cached bytes, cached blocks, bytes in use from the cache, cap in bytes).
std::vector<int64_t> cache_stats();

// Frees every cached block (blocks in use return to the cache as usual).
void cache_clear();

// Sets the cap on cached (free) bytes; 0 turns caching off. Returns the previous cap.
int64_t cache_set_limit(int64_t bytes);

}  // namespace grukit
