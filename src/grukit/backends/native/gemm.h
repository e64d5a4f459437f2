// A small GEMM for the recurrent product of every step: C (+)= A B with B packed once.
//
// The serial loops multiply a few rows (A: h (N_t, H) forward, dgh (N_t, 3H) backward) by the
// same weight matrix (B: W_hhᵀ (H, 3H) forward, W_hh (3H, H) backward) at every time step.
// A BLAS call re-packs B on each call (measured here: 12-16% of MKL's time for the d2l
// step, 32 × 256 × 768); packing B once per sequence and running a register-blocked kernel
// over it removes that cost. float32 with AVX-512 or AVX2 + FMA; the callers use at::mm
// otherwise (the generic build: other CPUs, ARM's NEON included, keep BLAS's own kernels).
//
// Packed B: panels of NR = 3 or 2 vectors of columns (AVX-512: 48 or 32; AVX2: 24 or 16;
// whichever leaves fewer padded columns), panel p is K rows of NR floats (zero past the last
// column), 64-byte aligned. Kernel: MR rows × NR columns of C in the accumulator registers
// (AVX-512: 24 zmm, 8 × 48 or 12 × 32; AVX2: 12 of its 16 ymm, 4 × 24 or 6 × 16), one
// broadcast of A and NR / lanes loads of B per k; the sum over k runs in order.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
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

// Floats per vector register of the build (the panels are 2 or 3 of them wide).
#if defined(CPU_CAPABILITY_AVX512)
constexpr int64_t kLanes = 16;
#else
constexpr int64_t kLanes = 8;
#endif

// The panel width with the fewer padded columns (3 vectors on a tie: more work per load of A).
inline int64_t panel_width(int64_t n) {
  const int64_t wide = 3 * kLanes, narrow = 2 * kLanes;
  const int64_t pad_wide = (wide - n % wide) % wide, pad_narrow = (narrow - n % narrow) % narrow;
  return pad_narrow < pad_wide ? narrow : wide;
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

// The few vector operations the kernel needs, on the build's registers: `Vec` of kLanes
// floats, `Mask` of the columns a store may touch (a partial last panel), kAccumulators the
// registers the kernel keeps C's block in (the rest hold B's loads and A's broadcast).
#if defined(CPU_CAPABILITY_AVX512)
using Vec = __m512;
using Mask = __mmask16;
constexpr int64_t kAccumulators = 24;  // of 32 zmm
inline Mask column_mask(int64_t cols, int64_t q) {
  const int64_t left = cols - 16 * q;
  return left >= 16 ? Mask(0xFFFF) : left <= 0 ? Mask(0) : Mask((1u << left) - 1);
}
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vload(const float* p) { return _mm512_load_ps(p); }  // 64-byte aligned
inline Vec vbroadcast(float a) { return _mm512_set1_ps(a); }
inline Vec vfmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vmaskload(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
inline void vmaskstore(float* p, Mask m, Vec v) { _mm512_mask_storeu_ps(p, m, v); }
inline Vec vloadu(const float* p) { return _mm512_loadu_ps(p); }
inline void vstoreu(float* p, Vec v) { _mm512_storeu_ps(p, v); }
#else  // AVX2 + FMA
using Vec = __m256;
using Mask = __m256i;  // lane j is written when its sign bit is set
constexpr int64_t kAccumulators = 12;  // of 16 ymm
inline Mask column_mask(int64_t cols, int64_t q) {
  const int64_t left = std::clamp<int64_t>(cols - 8 * q, 0, 8);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(left)), lane);
}
inline Vec vzero() { return _mm256_setzero_ps(); }
inline Vec vload(const float* p) { return _mm256_load_ps(p); }  // 32-byte aligned
inline Vec vbroadcast(float a) { return _mm256_set1_ps(a); }
inline Vec vfmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec vmaskload(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }
inline void vmaskstore(float* p, Mask m, Vec v) { _mm256_maskstore_ps(p, m, v); }
inline Vec vloadu(const float* p) { return _mm256_loadu_ps(p); }
inline void vstoreu(float* p, Vec v) { _mm256_storeu_ps(p, v); }
#endif

// C[0:R, 0:cols] (+)= A[0:R, 0:K] · panel (K, kLanes · V).
template <int V, int R>
inline void gemm_kernel(int64_t K, const float* A, int64_t lda, const float* panel, float* C,
                        int64_t ldc, int64_t cols, bool accumulate) {
  Vec acc[R][V];
  Mask mask[V];
  for (int q = 0; q < V; ++q) mask[q] = column_mask(cols, q);
  // A full panel loads and stores C with plain moves: masked stores (VMASKMOVPS) are slow
  // on AMD's cores, and a block of C has 12 of them (AVX2); never slower elsewhere.
  const bool full = cols == kLanes * V;
  for (int i = 0; i < R; ++i) {
    for (int q = 0; q < V; ++q) {
      float* c = C + i * ldc + kLanes * q;
      acc[i][q] = !accumulate ? vzero() : full ? vloadu(c) : vmaskload(mask[q], c);
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* b = panel + k * kLanes * V;
    Vec bk[V];
    for (int q = 0; q < V; ++q) bk[q] = vload(b + kLanes * q);
    for (int i = 0; i < R; ++i) {
      const Vec a = vbroadcast(A[i * lda + k]);
      for (int q = 0; q < V; ++q) acc[i][q] = vfmadd(a, bk[q], acc[i][q]);
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int q = 0; q < V; ++q) {
      float* c = C + i * ldc + kLanes * q;
      if (full) {
        vstoreu(c, acc[i][q]);
      } else {
        vmaskstore(c, mask[q], acc[i][q]);
      }
    }
  }
}

// Rows [0, M) of one panel, in blocks of MR = kAccumulators / V rows (the last one shorter).
template <int V>
inline void gemm_panel_rows(int64_t M, int64_t K, const float* A, int64_t lda,
                            const float* panel, float* C, int64_t ldc, int64_t cols,
                            bool accumulate) {
  constexpr int64_t MR = kAccumulators / V;
  for (int64_t i0 = 0; i0 < M; i0 += MR) {
    const float* a = A + i0 * lda;
    float* c = C + i0 * ldc;
    switch (std::min(MR, M - i0)) {
#define GRUKIT_ROWS(r) \
  case r:                 \
    if constexpr (r <= MR) gemm_kernel<V, r>(K, a, lda, panel, c, ldc, cols, accumulate); \
    break;
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
      if (w == 2 * kLanes) {
        gemm_panel_rows<2>(M, K, A, lda, panel, C + p * w, ldc, cols, accumulate);
      } else {
        gemm_panel_rows<3>(M, K, A, lda, panel, C + p * w, ldc, cols, accumulate);
      }
    }
  });
}

#endif  // GRUKIT_PACKED_GEMM

}  // namespace grukit
