// A small GEMM for the recurrent product of every step: C (+)= A B with B packed once.
//
// The serial loops multiply a few rows (A: h (N_t, H) forward, dgh (N_t, 3H) backward) by the
// same weight matrix (B: W_hhᵀ (H, 3H) forward, W_hh (3H, H) backward) at every time step.
// A BLAS call re-packs B on each call (measured here: 12-16% of MKL's time for the d2l
// step, 32 × 256 × 768); packing B once per sequence and running a register-blocked kernel
// over it removes that cost. float32 with AVX-512 only; the callers use at::mm otherwise.
//
// Packed B: panels of NR = 48 or 32 columns (whichever leaves fewer padded columns: 48 for
// 3H = 768, 32 for H = 256); panel p is K rows of NR floats (zero past the last column),
// 64-byte aligned. Kernel: MR rows × NR columns of C in 24 zmm accumulators (8 × 48 or
// 12 × 32), one broadcast of A and NR/16 loads of B per k; the sum over k runs in order.
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

// B (K, n) packed in panels of `width` columns.
struct Packed {
  float* data = nullptr;
  int64_t K = 0, n = 0, width = 48;
  int64_t panels() const { return (n + width - 1) / width; }
  int64_t size() const { return panels() * K * width; }
};

// The panel width with the fewer padded columns (48 on a tie: more work per load of A).
inline int64_t panel_width(int64_t n) {
  const int64_t pad48 = (48 - n % 48) % 48, pad32 = (32 - n % 32) % 32;
  return pad32 < pad48 ? 32 : 48;
}

// B (K, n) with B(k, j) = src[k * sk + j * sj] → dst (size() floats, 64-byte aligned).
// Reads run along src's contiguous axis: rows of B (sj = 1, W_hh backward) are copied in
// panel-wide pieces; columns of B (sk = 1, W_hhᵀ forward) are scattered down the panel.
inline void pack_b(const float* src, int64_t sk, int64_t sj, const Packed& dst) {
  const int64_t K = dst.K, w = dst.width;
  for (int64_t p = 0; p < dst.panels(); ++p) {
    const int64_t j0 = p * w, cols = std::min(w, dst.n - j0);
    float* panel = dst.data + p * K * w;
    if (cols < w) {
      for (int64_t k = 0; k < K; ++k) std::fill_n(panel + k * w + cols, w - cols, 0.0f);
    }
    if (sj == 1) {
      for (int64_t k = 0; k < K; ++k) std::copy_n(src + k * sk + j0, cols, panel + k * w);
    } else {
      for (int64_t c = 0; c < cols; ++c) {
        const float* col = src + (j0 + c) * sj;
        for (int64_t k = 0; k < K; ++k) panel[k * w + c] = col[k * sk];
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

// C[0:R, 0:cols] (+)= A[0:R, 0:K] · panel (K, 16 V).
template <int V, int R>
inline void gemm_kernel(int64_t K, const float* A, int64_t lda, const float* panel, float* C,
                        int64_t ldc, int64_t cols, bool accumulate) {
  __m512 acc[R][V];
  __mmask16 mask[V];
  for (int q = 0; q < V; ++q) mask[q] = column_mask(cols, q);
  for (int i = 0; i < R; ++i) {
    for (int q = 0; q < V; ++q) {
      acc[i][q] = accumulate ? _mm512_maskz_loadu_ps(mask[q], C + i * ldc + 16 * q)
                             : _mm512_setzero_ps();
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* b = panel + k * 16 * V;
    __m512 bk[V];
    for (int q = 0; q < V; ++q) bk[q] = _mm512_load_ps(b + 16 * q);
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_set1_ps(A[i * lda + k]);
      for (int q = 0; q < V; ++q) acc[i][q] = _mm512_fmadd_ps(a, bk[q], acc[i][q]);
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int q = 0; q < V; ++q) _mm512_mask_storeu_ps(C + i * ldc + 16 * q, mask[q], acc[i][q]);
  }
}

// Rows [0, M) of one panel, in blocks of MR = 24 / V rows (the last one shorter).
template <int V>
inline void gemm_panel_rows(int64_t M, int64_t K, const float* A, int64_t lda,
                            const float* panel, float* C, int64_t ldc, int64_t cols,
                            bool accumulate) {
  constexpr int64_t MR = 24 / V;
  for (int64_t i0 = 0; i0 < M; i0 += MR) {
    const float* a = A + i0 * lda;
    float* c = C + i0 * ldc;
    switch (std::min(MR, M - i0)) {
#define GRUKIT_ROWS(r) \
  case r: gemm_kernel<V, r>(K, a, lda, panel, c, ldc, cols, accumulate); break;
      GRUKIT_ROWS(12) GRUKIT_ROWS(11) GRUKIT_ROWS(10) GRUKIT_ROWS(9) GRUKIT_ROWS(8)
      GRUKIT_ROWS(7) GRUKIT_ROWS(6) GRUKIT_ROWS(5) GRUKIT_ROWS(4) GRUKIT_ROWS(3)
      GRUKIT_ROWS(2) default: gemm_kernel<V, 1>(K, a, lda, panel, c, ldc, cols, accumulate);
#undef GRUKIT_ROWS
    }
  }
}

// C (M, n) (+)= A (M, K) · B, B packed; row strides lda, ldc. With several threads
// (at::get_num_threads), large products split their panels between them.
inline void gemm_packed(int64_t M, const float* A, int64_t lda, const Packed& B, float* C,
                        int64_t ldc, bool accumulate) {
  const int64_t K = B.K, w = B.width;
  const int64_t per_thread = M * B.n * K < (int64_t(1) << 19) ? B.panels() : 1;  // ~25 us
  at::parallel_for(0, B.panels(), per_thread, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const float* panel = B.data + p * K * w;
      const int64_t cols = std::min(w, B.n - p * w);
      if (w == 32) {
        gemm_panel_rows<2>(M, K, A, lda, panel, C + p * w, ldc, cols, accumulate);
      } else {
        gemm_panel_rows<3>(M, K, A, lda, panel, C + p * w, ldc, cols, accumulate);
      }
    }
  });
}

#endif  // GRUKIT_PACKED_GEMM

}  // namespace grukit
