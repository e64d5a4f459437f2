// The cache of freed large CPU blocks (cache.h says why and what).
//
// One process-wide c10::Allocator. A block is the memory behind one storage: handed out, it
// is "in use"; when the storage's last reference dies, its deleter (release) puts it on the
// free list — unless that would take the cached bytes over the cap, in which case the
// largest cached blocks are freed first (and a block larger than the cap itself is freed at
// once). take(n) reuses the smallest free block of n to n + n/8 bytes. A mutex guards the
// lists (storages die on any thread: autograd's, DataLoader's); fork() takes it around the
// call so a child never inherits it locked. The object is never destroyed (tensors may
// outlive static destructors at interpreter exit).
#include "cache.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <pthread.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace grukit {
namespace {

size_t limit_from_env() {
  const char* env = std::getenv("GRUKIT_BLOCK_CACHE_MB");
  if (env == nullptr || *env == '\0') return size_t{512} << 20;
  char* end = nullptr;
  const long long mb = std::strtoll(env, &end, 10);
  TORCH_CHECK(end != env && *end == '\0' && mb >= 0,
              "GRUKIT_BLOCK_CACHE_MB: expected a whole number of MiB >= 0 (0 turns the cache off), "
              "got '", env, "'");
  return static_cast<size_t>(mb) << 20;
}

struct Block {
  void* ptr;
  size_t bytes;  // the block's size (>= the storage's)
};

class Cache final : public c10::Allocator {
 public:
  Cache() : limit_(limit_from_env()) {}

  static Cache& get() {
    static Cache* cache = [] {
      auto* c = new Cache();  // never destroyed: see the file comment
      pthread_atfork([] { get().mutex_.lock(); }, [] { get().mutex_.unlock(); },
                     [] { get().mutex_.unlock(); });
      return c;
    }();
    return *cache;
  }

  c10::DataPtr allocate(size_t n) override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n < kCacheMinBytes) return c10::GetCPUAllocator()->allocate(n);
    Block block{nullptr, n};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.lower_bound(n);
      if (it != free_.end() && it->first <= n + n / 8) {
        block = {it->second, it->first};
        free_.erase(it);
        cached_ -= block.bytes;
      }
    }
    if (block.ptr == nullptr) block.ptr = c10::alloc_cpu(n);  // throws when out of memory
    size_t used = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      used = in_use_ += block.bytes;
    }
    c10::reportMemoryUsageToProfiler(block.ptr, static_cast<int64_t>(block.bytes), used,
                                     used + cached_bytes(), cpu);
    return {block.ptr, new Block(block), &Cache::release, cpu};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  std::vector<int64_t> stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {static_cast<int64_t>(cached_), static_cast<int64_t>(free_.size()),
            static_cast<int64_t>(in_use_), static_cast<int64_t>(limit_)};
  }

  void clear() {
    std::multimap<size_t, void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      cached_ = 0;
    }
    for (auto& kv : blocks) c10::free_cpu(kv.second);
  }

  size_t set_limit(size_t bytes) {
    size_t old = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      old = limit_;
      limit_ = bytes;
    }
    trim();
    return old;
  }

 private:
  static void release(void* ctx) {
    Block* block = static_cast<Block*>(ctx);
    get().put(*block);
    delete block;
  }

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  void put(Block block) {
    size_t used = 0;
    bool keep = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      used = in_use_ -= block.bytes;
      keep = block.bytes <= limit_;
      if (keep) {
        free_.emplace(block.bytes, block.ptr);
        cached_ += block.bytes;
      }
    }
    c10::reportMemoryUsageToProfiler(block.ptr, -static_cast<int64_t>(block.bytes), used,
                                     used + cached_bytes(), c10::Device(c10::DeviceType::CPU));
    if (!keep) c10::free_cpu(block.ptr);
    trim();
  }

  // Frees the largest cached blocks until the cached bytes are within the cap.
  void trim() {
    while (true) {
      void* ptr = nullptr;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (cached_ <= limit_ || free_.empty()) return;
        auto last = std::prev(free_.end());
        ptr = last->second;
        cached_ -= last->first;
        free_.erase(last);
      }
      c10::free_cpu(ptr);
    }
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;  // bytes → block
  size_t cached_ = 0;                  // bytes on the free list
  size_t in_use_ = 0;                  // bytes handed out and not yet released
  size_t limit_;                       // cap on cached_
};

}  // namespace

at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  if (options.device().type() != c10::DeviceType::CPU) return at::empty(sizes, options);
  return at::detail::empty_generic(sizes, &Cache::get(),
                                   c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), std::nullopt);
}

std::vector<int64_t> cache_stats() { return Cache::get().stats(); }

void cache_clear() { Cache::get().clear(); }

int64_t cache_set_limit(int64_t bytes) {
  TORCH_CHECK(bytes >= 0, "grukit native cache_set_limit: expected bytes >= 0, got ", bytes);
  return static_cast<int64_t>(Cache::get().set_limit(static_cast<size_t>(bytes)));
}

}  // namespace grukit
