// The multiply-add peak of this build on this machine (peak.h): what a roofline divides by.
// Twelve independent chains a ← a·b + c per thread keep both FMA ports busy with no load or
// store, so the rate is the cores' issue rate at the build's vector width (AVX-512, AVX2 or
// the generic at::vec — on ARM, NEON).

#include "peak.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <chrono>
#include <mutex>

std::tuple<double, int64_t, int64_t, double> fma_chains(int64_t iterations, double b,
                                                         double c) {
  using V = at::vec::Vectorized<float>;
  TORCH_CHECK(iterations >= 0, "fma_chains: expected iterations >= 0, got ", iterations);
  const int64_t threads = at::get_num_threads();
  std::mutex lock;
  double checksum = 0.0;
  int64_t ran = 0;  // pieces run (one per thread), under the lock
  const V vb(static_cast<float>(b)), vc(static_cast<float>(c));
  const auto start = std::chrono::steady_clock::now();
  at::parallel_for(0, threads, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      V a[kChains];
      for (int64_t j = 0; j < kChains; ++j) a[j] = V(static_cast<float>(j));
      for (int64_t i = 0; i < iterations; ++i) {
        for (int64_t j = 0; j < kChains; ++j) a[j] = at::vec::fmadd(a[j], vb, vc);
      }
      double sum = 0.0;
      float lanes[V::size()];
      for (int64_t j = 0; j < kChains; ++j) {
        a[j].store(lanes);
        sum += lanes[0];
      }
      const std::lock_guard<std::mutex> guard(lock);
      checksum += sum;
      ran += 1;
    }
  });
  const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - start;
  return {seconds.count(), ran, static_cast<int64_t>(V::size()), checksum};
}
