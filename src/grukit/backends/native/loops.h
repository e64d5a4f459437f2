// Building blocks of the serial loops, shared by gru.cpp (the GRU) and layernorm_gru.cpp
// (the LayerNormGRU): vectorised σ and tanh, row and column iteration, the steps of packed
// data, the per-step GEMM, and the argument checks that run before any memory is touched.
#pragma once

#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <ATen/cpu/vec/vec.h>

#include "gemm.h"

#include <type_traits>
#include <vector>

namespace grukit::loops {

using at::Tensor;
using at::vec::Vectorized;

// σ(a) = 1 / (1 + e^−a) and tanh(a) = 2σ(2a) − 1, each one exp and one division.
// exp_u20 is at::vec's polynomial exp (float: within 20 ulp, several times cheaper than
// Sleef's tanh; double: Sleef's exp). tanh this way is off by ~1e-7 (float) / ~1e-16
// (double) in absolute terms near 0, within the tests' tolerances (1e-5, 1e-10).
// NaN: float exp_u20 clamps its argument with min/max, which turn NaN into the clamp bound
// (σ(NaN) came out 0 and tanh(NaN) −1), so a NaN argument is blended back into the result:
// one compare and one blend, as torch's σ and tanh give NaN. ±Inf needs nothing: the clamp
// gives e^±inf a huge or zero value, hence σ(∓inf) ≈ 0 (or 1) and tanh(±inf) = ±1, as torch.
template <typename T>
inline Vectorized<T> keep_nan(const Vectorized<T>& result, const Vectorized<T>& a) {
  return Vectorized<T>::blendv(result, a, a.isnan());
}

template <typename T>
inline Vectorized<T> vsigmoid(const Vectorized<T>& a) {
  const Vectorized<T> one(T(1));
  return keep_nan(one / (one + a.neg().exp_u20()), a);
}

template <typename T>
inline Vectorized<T> vtanh(const Vectorized<T>& a) {
  const Vectorized<T> one(T(1)), two(T(2));
  return keep_nan(two / (one + (a * Vectorized<T>(T(-2))).exp_u20()) - one, a);
}

// The backward of the update h' = n + z' ⊙ (h − n), z' = z + k (1 − z) with zoneout's keep k
// (z' = z without): from d = ∂L/∂h' and the saved z, n and h, the gradients of the
// candidate's and the update gate's pre-activations, da_n = d (1 − z')(1 − n²) and
// da_z = d (h − n)(1 − k) z (1 − z), and zu = z', the direct path's weight (dh = d z').
// keep[off..off + c) is read only with Zoneout. Shared by the GRU's and the LayerNormGRU's
// backward loops.
template <typename T>
struct UpdateGrads {
  Vectorized<T> da_n, da_z, zu;
};

template <typename T, bool Zoneout>
inline UpdateGrads<T> update_backward(const Vectorized<T>& d, const Vectorized<T>& z,
                                      const Vectorized<T>& nn, const Vectorized<T>& hp,
                                      const T* keep, int64_t off, int64_t c) {
  using V = Vectorized<T>;
  const V one(T(1));
  if constexpr (Zoneout) {
    const V ok = one - V::loadu(keep + off, c);  // 1 − k
    const V omz = ok * (one - z);                // 1 − z'
    return {d * omz * (one - nn * nn), d * (hp - nn) * z * (one - z) * ok, one - omz};
  } else {
    return {d * (one - z) * (one - nn * nn), d * (hp - nn) * z * (one - z), z};
  }
}

// f(j, count) over [0, H) in vector-sized pieces, the last one partial.
template <typename T, typename F>
inline void vec_cols(int64_t H, const F& f) {
  constexpr int64_t V = Vectorized<T>::size();
  int64_t j = 0;
  for (; j + V <= H; j += V) f(j, V);
  if (j < H) f(j, H - j);
}

// Rows [0, n) in parallel when there is enough work to pay for the threads.
template <typename F>
inline void rows(int64_t n, int64_t H, const F& f) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(H, 1));
  if (n * H < 65536) {
    f(0, n);
  } else {
    at::parallel_for(0, n, grain, f);
  }
}

// The calling thread's autograd modes, for the loops' worker threads: grad mode (at::mm's
// out= form refuses to record autograd) and inference mode (outside it, writing into the
// caller's inference-mode tensors is refused). Nothing else of the thread-local state:
// copying all of it (at::ThreadLocalState) copies Python saved-tensor hooks, which takes
// the GIL, and the calling thread holds it while it waits for the workers (a hang;
// test_pair_under_python_saved_tensor_hooks).
struct CallerModes {
  bool grad = c10::GradMode::is_enabled();
  bool inference = c10::InferenceMode::is_enabled();
};

// Set on a worker thread for the duration of its work (declaration order: inference mode,
// which also sets grad mode, then the caller's grad mode).
class WorkerModes {
 public:
  explicit WorkerModes(const CallerModes& c) : inference_(c.inference), grad_(c.grad) {}

 private:
  c10::InferenceMode inference_;
  c10::AutoGradMode grad_;
};

// f(k) for every piece k in [0, pieces), one piece per thread (at::parallel_for with a
// grain of one: inline on this thread where there is one thread or already a parallel
// region), each in the caller's autograd modes. The loops' threads all start here.
template <typename F>
inline void on_threads(int64_t pieces, const F& f) {
  const CallerModes caller;
  at::parallel_for(0, pieces, 1, [&](int64_t b, int64_t e) {
    const WorkerModes modes(caller);
    for (int64_t k = b; k < e; ++k) f(k);
  });
}

// The most bytes of step weights split_rows has every thread read: measured on a 2-core
// EPYC (512 KiB L2 per core, 32 MiB L3), idle, old / new time with the rows split against
// the product's panels split: H = 512 (3 MiB) at N = 16, 32, 64 1.02-1.12 faster; H = 768
// (6.75 MiB) 0.94-1.08; H = 1024 (12 MiB) up to 1.36 slower at N = 16 (8 rows a thread
// each streaming all 12 MiB from L3 per step).
constexpr int64_t kSplitMaxBytes = int64_t(4) << 20;

// A step's rows [0, n), start to end (product and element-wise work), as f(piece, lo, hi):
// split into one contiguous piece per thread when each gets enough rows (>= 8) and the
// step's weights are small enough (kSplitMaxBytes) that every thread reading all of them
// costs less than a second parallel region; otherwise f(0, 0, n) on this thread (whose
// product may split its panels instead). Pieces < at::get_num_threads(), each on one
// thread (on_threads).
template <typename F>
inline void split_rows(int64_t n, int64_t weight_bytes, const F& f) {
  const int64_t threads = at::get_num_threads();
  if (threads < 2 || n < 16 || weight_bytes > kSplitMaxBytes || at::in_parallel_region()) {
    f(0, 0, n);
    return;
  }
  const int64_t pieces = std::min(threads, n / 8), len = (n + pieces - 1) / pieces;
  on_threads(pieces, [&](int64_t k) {
    f(k, std::min(n, k * len), std::min(n, (k + 1) * len));
  });
}

struct Steps {
  std::vector<int64_t> size, offset;  // per time step t: N_t and first row
  explicit Steps(const Tensor& batch_sizes) {
    auto bs = batch_sizes.to(at::kLong).contiguous();
    const int64_t* p = bs.data_ptr<int64_t>();
    int64_t off = 0;
    for (int64_t t = 0; t < bs.numel(); ++t) {
      size.push_back(p[t]);
      offset.push_back(off);
      off += p[t];
    }
  }
  int64_t T() const { return static_cast<int64_t>(size.size()); }
};

// The recurrent product of every step, C (+)= A B with B (K, n) the same for the whole loop:
// float32 on AVX-512 or AVX2 over enough steps packs B once and runs grukit's kernel (gemm.h),
// otherwise at::mm. A and C are the step's rows (row-major, unit column stride).
class StepGemm {
 public:
  StepGemm(const Tensor& B, int64_t steps, int slot) : B_(B) {
#if GRUKIT_PACKED_GEMM
    if (packs(B, steps)) {
      packed_.K = B.size(0), packed_.n = B.size(1), packed_.width = grukit::panel_width(B.size(1));
      packed_.data = grukit::scratch(packed_.size(), slot);
      grukit::pack_b(B.data_ptr<float>(), B.stride(0), B.stride(1), packed_);
    }
#endif
  }

  // Packing costs about half a step's product; narrow outputs waste a panel's columns.
  static bool packs(const Tensor& B, int64_t steps) {
    return GRUKIT_PACKED_GEMM && B.scalar_type() == at::kFloat && steps >= 4 && B.size(1) >= 128;
  }

  // Whether the product runs on the packed kernel (else at::mm).
  bool packed() const {
#if GRUKIT_PACKED_GEMM
    return packed_.data != nullptr;
#else
    return false;
#endif
  }

  void operator()(const Tensor& A, Tensor& C, bool accumulate) const {
#if GRUKIT_PACKED_GEMM
    if (packed_.data) {
      grukit::gemm_packed(A.size(0), A.data_ptr<float>(), A.stride(0), packed_,
                          C.data_ptr<float>(), C.stride(0), accumulate);
      return;
    }
#endif
    if (accumulate) {
      C.addmm_(A, B_);
    } else {
      at::mm_out(C, A, B_);
    }
  }

 private:
  Tensor B_;
  grukit::Packed packed_;
};

// A backward step's rows: split_rows where its product runs on the packed kernel, else all
// on this thread (two concurrent at::mm calls of H = 64 were 5% slower than one).
template <typename F>
inline void split_rows_if_packed(const StepGemm& gemm, int64_t n, int64_t weight_bytes,
                                 const F& f) {
  if (gemm.packed()) {
    split_rows(n, weight_bytes, f);
  } else {
    f(0, 0, n);
  }
}

inline Tensor bias_or_zeros(const c10::optional<Tensor>& b, int64_t n, const Tensor& like) {
  return b.has_value() && b->defined() ? b->contiguous() : at::zeros({n}, like.options());
}

// Argument checks, run before any memory is touched: a wrong shape, dtype or device raises
// RuntimeError (c10::Error) naming the function, the argument, what was expected and what
// arrived, where it would otherwise read or write out of bounds.
inline bool given(const c10::optional<Tensor>& t) { return t.has_value() && t->defined(); }

inline void check_floating(const char* fn, const char* name, const Tensor& t) {
  TORCH_CHECK(t.defined(), fn, ": ", name, " is undefined");
  TORCH_CHECK(t.device().is_cpu(), fn, ": expected ", name, " on the CPU, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, fn, ": expected ",
              name, " of dtype float32 or float64, got ", t.scalar_type());
}

// t is a CPU tensor of `like`'s dtype with exactly the given sizes.
inline void check_tensor(const char* fn, const char* name, const Tensor& t, const Tensor& like,
                  at::IntArrayRef sizes) {
  check_floating(fn, name, t);
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), fn, ": expected ", name, " of dtype ",
              like.scalar_type(), ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == sizes, fn, ": expected ", name, " of shape ", sizes, ", got ",
              t.sizes());
}

inline void check_2d(const char* fn, const char* name, const Tensor& t) {
  check_floating(fn, name, t);
  TORCH_CHECK(t.dim() == 2, fn, ": expected ", name, " with 2 dimensions, got shape ", t.sizes());
}

// batch_sizes (T,): integers on the CPU, N >= N_0 >= N_1 >= ... >= 0 (a PackedSequence's, or T
// times N padded), summing to the S rows of the step tensors.
inline void check_batch_sizes(const char* fn, const Tensor& batch_sizes, int64_t N, int64_t S) {
  TORCH_CHECK(batch_sizes.defined() && batch_sizes.device().is_cpu() && batch_sizes.dim() == 1,
              fn, ": expected batch_sizes, a 1-D CPU tensor");
  TORCH_CHECK(!at::isFloatingType(batch_sizes.scalar_type()) &&
                  !at::isComplexType(batch_sizes.scalar_type()) &&
                  batch_sizes.scalar_type() != at::kBool,
              fn, ": expected integer batch_sizes, got ", batch_sizes.scalar_type());
  const Tensor bs = batch_sizes.to(at::kLong).contiguous();
  const int64_t* p = bs.data_ptr<int64_t>();
  int64_t sum = 0, previous = N;
  for (int64_t t = 0; t < bs.numel(); ++t) {
    TORCH_CHECK(p[t] >= 0 && p[t] <= previous, fn, ": expected batch_sizes non-increasing in [0, ",
                N, "] (N = ", N, "), got ", p[t], " at step ", t);
    previous = p[t];
    sum += p[t];
  }
  TORCH_CHECK(sum == S, fn, ": expected batch_sizes summing to the ", S, " rows, got ", sum);
}

// Σ of v's lanes: AVX-512's reduction sequence, else a pairwise tree over the stored lanes.
template <typename T>
inline T hsum(const Vectorized<T>& v) {
#if defined(CPU_CAPABILITY_AVX512)
  if constexpr (std::is_same_v<T, float>) return _mm512_reduce_add_ps(v);
  else return _mm512_reduce_add_pd(v);
#else
  constexpr int64_t W = Vectorized<T>::size();
  T lanes[W];
  v.store(lanes);
  for (int64_t w = W / 2; w > 0; w /= 2) {
    for (int64_t l = 0; l < w; ++l) lanes[l] += lanes[l + w];
  }
  return lanes[0];
#endif
}

}  // namespace grukit::loops
