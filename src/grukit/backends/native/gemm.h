// A small GEMM for the recurrent product of every step: C (+)= A B with B packed once.
//
// The serial loops multiply a few rows (A: h (N_t, H) forward, dgh (N_t, 3H) backward) by the
// same weight matrix (B: W_hhᵀ (H, 3H) forward, W_hh (3H, H) backward) at every time step.
// A BLAS call re-packs B on each call (measured here: 12-16% of MKL's time for the d2l
// step, 32 × 256 × 768); packing B once per sequence and running a register-blocked kernel
// over it removes that cost. float32 with AVX-512 only; the callers use at::mm otherwise.
//
// Packed B: panels of NR = 48 columns; panel p is K rows of NR floats (zero past the last
// column), 64-byte aligned. Kernel: MR = 8 rows × 48 columns of C in 24 zmm accumulators,
// one broadcast of A and three loads of B per k; the sum over k runs in order 0..K−1.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(CPU_CAPABILITY_AVX512)
#include <immintrin.h>
#define GRUKIT_PACKED_GEMM 1
#else
#define GRUKIT_PACKED_GEMM 0
#endif

namespace grukit {

constexpr int64_t kPanel = 48;  // NR: columns per packed panel (3 zmm of floats)
constexpr int64_t kRows = 8;    // MR: rows of C per kernel call

// Floats of B (K, n) packed: ceil(n / NR) panels of K × NR.
inline int64_t packed_size(int64_t K, int64_t n) { return (n + kPanel - 1) / kPanel * K * kPanel; }

// B (K, n) with B(k, j) = src[k * sk + j * sj] → dst (packed_size(K, n),), 64-byte aligned.
// Reads run along src's contiguous axis: rows of B (sj = 1, W_hh backward) are copied in
// NR-wide pieces; columns of B (sk = 1, W_hhᵀ forward) are scattered down the panel.
inline void pack_b(const float* src, int64_t K, int64_t n, int64_t sk, int64_t sj, float* dst) {
  const int64_t panels = (n + kPanel - 1) / kPanel;
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t j0 = p * kPanel, cols = std::min(kPanel, n - j0);
    float* panel = dst + p * K * kPanel;
    if (cols < kPanel) {
      for (int64_t k = 0; k < K; ++k) std::fill_n(panel + k * kPanel + cols, kPanel - cols, 0.0f);
    }
    if (sj == 1) {
      for (int64_t k = 0; k < K; ++k) std::copy_n(src + k * sk + j0, cols, panel + k * kPanel);
    } else {
      for (int64_t c = 0; c < cols; ++c) {
        const float* col = src + (j0 + c) * sj;
        for (int64_t k = 0; k < K; ++k) panel[k * kPanel + c] = col[k * sk];
      }
    }
  }
}

// A reusable, 64-byte aligned buffer per thread for packed weights: the loops pack W_hh at
// the start of every call, and a fresh allocation of that size costs page faults each time.
inline float* scratch(int64_t floats, int slot) {
  static thread_local std::vector<float> buffers[2];
  std::vector<float>& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < floats + 16) b.resize(floats + 16);
  const auto address = reinterpret_cast<std::uintptr_t>(b.data());
  return reinterpret_cast<float*>((address + 63) & ~std::uintptr_t(63));
}

#if GRUKIT_PACKED_GEMM

inline __mmask16 column_mask(int64_t cols, int64_t q) {
  const int64_t left = cols - 16 * q;
  return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
}

// C[0:R, 0:cols] (+)= A[0:R, 0:K] · panel (K, NR).
template <int R>
inline void gemm_kernel(int64_t K, const float* A, int64_t lda, const float* panel, float* C,
                        int64_t ldc, int64_t cols, bool accumulate) {
  __m512 acc[R][3];
  const __mmask16 m0 = column_mask(cols, 0), m1 = column_mask(cols, 1), m2 = column_mask(cols, 2);
  for (int i = 0; i < R; ++i) {
    if (accumulate) {
      acc[i][0] = _mm512_maskz_loadu_ps(m0, C + i * ldc);
      acc[i][1] = _mm512_maskz_loadu_ps(m1, C + i * ldc + 16);
      acc[i][2] = _mm512_maskz_loadu_ps(m2, C + i * ldc + 32);
    } else {
      acc[i][0] = acc[i][1] = acc[i][2] = _mm512_setzero_ps();
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* b = panel + k * kPanel;
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), b2 = _mm512_load_ps(b + 32);
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_set1_ps(A[i * lda + k]);
      acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(a, b2, acc[i][2]);
    }
  }
  for (int i = 0; i < R; ++i) {
    _mm512_mask_storeu_ps(C + i * ldc, m0, acc[i][0]);
    _mm512_mask_storeu_ps(C + i * ldc + 16, m1, acc[i][1]);
    _mm512_mask_storeu_ps(C + i * ldc + 32, m2, acc[i][2]);
  }
}

// Panels [p0, p1) of C (M, n) (+)= A (M, K) · B.
inline void gemm_panels(int64_t p0, int64_t p1, int64_t M, int64_t n, int64_t K, const float* A,
                        int64_t lda, const float* packed, float* C, int64_t ldc, bool accumulate) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* panel = packed + p * K * kPanel;
    const int64_t j0 = p * kPanel, cols = std::min(kPanel, n - j0);
    for (int64_t i0 = 0; i0 < M; i0 += kRows) {
      const float* a = A + i0 * lda;
      float* c = C + i0 * ldc + j0;
      switch (std::min(kRows, M - i0)) {
        case 8: gemm_kernel<8>(K, a, lda, panel, c, ldc, cols, accumulate); break;
        case 7: gemm_kernel<7>(K, a, lda, panel, c, ldc, cols, accumulate); break;
        case 6: gemm_kernel<6>(K, a, lda, panel, c, ldc, cols, accumulate); break;
        case 5: gemm_kernel<5>(K, a, lda, panel, c, ldc, cols, accumulate); break;
        case 4: gemm_kernel<4>(K, a, lda, panel, c, ldc, cols, accumulate); break;
        case 3: gemm_kernel<3>(K, a, lda, panel, c, ldc, cols, accumulate); break;
        case 2: gemm_kernel<2>(K, a, lda, panel, c, ldc, cols, accumulate); break;
        default: gemm_kernel<1>(K, a, lda, panel, c, ldc, cols, accumulate); break;
      }
    }
  }
}

// C (M, n) (+)= A (M, K) · B, B packed by pack_b; row strides lda, ldc. With several
// threads (at::get_num_threads), large products split their panels between them.
inline void gemm_packed(int64_t M, int64_t n, int64_t K, const float* A, int64_t lda,
                        const float* packed, float* C, int64_t ldc, bool accumulate) {
  const int64_t panels = (n + kPanel - 1) / kPanel;
  const int64_t per_thread = M * n * K < (int64_t(1) << 19) ? panels : 1;  // ~25 us serial
  at::parallel_for(0, panels, per_thread, [&](int64_t lo, int64_t hi) {
    gemm_panels(lo, hi, M, n, K, A, lda, packed, C, ldc, accumulate);
  });
}

#endif  // GRUKIT_PACKED_GEMM

}  // namespace grukit
