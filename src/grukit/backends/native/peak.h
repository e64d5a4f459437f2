// The cores' multiply-add peak (peak.cpp), bound in gru.cpp's module.
#pragma once

#include <cstdint>
#include <tuple>

// Every one of at::get_num_threads() threads runs `iterations` steps of a ← a·b + c on
// kChains independent vectors of the build's at::vec width (float32), nothing else: the rate
// of fused multiply-adds the build can issue, the roof no kernel of this build can pass.
// Returns (seconds of the parallel region, threads, floats per vector, checksum); the
// checksum Σ over threads and chains of lane 0's final value, from a_j = j at the start, lets
// a caller check that every step ran (b = c = 1: a_j = j + iterations, exact below 2²⁴).
std::tuple<double, int64_t, int64_t, double> fma_chains(int64_t iterations, double b, double c);

// Independent accumulators per thread: enough to cover the multiply-add latency on every
// port (AVX2: 5 cycles × 2 ports; AVX-512: 4 × 2), below the 16 vector registers of AVX2.
constexpr int64_t kChains = 12;
