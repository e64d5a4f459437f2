// MinGRU's time loop for the CPU (grukit/backends/mingru_ops.py; the math is
// grukit.functional.mingru_cell and mingru_coefficients): after the one input GEMM, the
// recurrence is element-wise, so each (n, j) lane runs its own loop over time.
//
// Shapes: T time, N batch, H hidden; gi (T, N, 2H) with columns [k; pre], row t·N + n.
//
//   forward   z = σ(k_t),  a_t = 1 − z,  b_t = z ⊙ g(pre_t),  h_t = a_t ⊙ h_{t−1} + b_t
//             g(p) = p + 0.5 (p ≥ 0), σ(p) (p < 0)
//   backward  ĝ_t = dout_t + a_{t+1} ⊙ ĝ_{t+1}   (ĝ_{T+1} = 0; the reverse recurrence)
//             dk_t = ĝ_t ⊙ a_t z_t (g(pre_t) − h_{t−1}),  dpre_t = ĝ_t ⊙ z_t g'(pre_t),
//             g'(p) = 1 (p ≥ 0), σ(p)(1 − σ(p)) (p < 0);  dh_0 = a_1 ⊙ ĝ_1
//
// One pass over gi and out each way, no logarithms. Work is split over the batch rows n
// (at::parallel_for): each thread runs every step for its rows, so the state stays in cache.

#include "mingru.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include "cache.h"
#include "loops.h"

namespace {

using at::Tensor;
using at::vec::Vectorized;
using namespace grukit::loops;  // NOLINT: the shared building blocks (loops.h)

// σ with Sleef's exp (1 ulp), not exp_u20: these are the whole computation, and float32
// must stay within 1e-5 of torch.sigmoid's sequential oracle after thousands of steps.
template <typename T>
inline Vectorized<T> sigmoid_u10(const Vectorized<T>& a) {
  const Vectorized<T> one(T(1));
  return keep_nan(one / (one + a.neg().exp()), a);
}

// z, a = 1 − z, g(pre) and g'(pre) of one vector of lanes.
template <typename T>
struct Coefficients {
  Vectorized<T> z, a, g, dg;
  Coefficients(const Vectorized<T>& k, const Vectorized<T>& pre) {
    using V = Vectorized<T>;
    const V one(T(1)), half(T(0.5)), zero(T(0));
    z = sigmoid_u10(k);
    a = one - z;
    const V s = sigmoid_u10(pre), positive = pre >= zero;
    g = V::blendv(s, pre + half, positive);
    dg = V::blendv(s * (one - s), one, positive);
  }
};

// Rows [0, N) in parallel when there is enough work per step to pay for the threads.
template <typename F>
void batch_rows(int64_t T, int64_t N, int64_t H, const F& f) {
  if (N < 2 || T * N * H < 65536) {
    f(0, N);
  } else {
    at::parallel_for(0, N, 1, f);
  }
}

template <typename T>
void forward_loop(int64_t T_, int64_t N, int64_t H, const T* gi, const T* h0, T* out) {
  using V = Vectorized<T>;
  batch_rows(T_, N, H, [&](int64_t lo, int64_t hi) {
    for (int64_t t = 0; t < T_; ++t) {
      for (int64_t n = lo; n < hi; ++n) {
        const T* k = gi + (t * N + n) * 2 * H;  // (H,) k, then (H,) pre
        const T* h = t == 0 ? h0 + n * H : out + ((t - 1) * N + n) * H;
        T* o = out + (t * N + n) * H;
        vec_cols<T>(H, [&](int64_t j, int64_t c) {
          const Coefficients<T> q(V::loadu(k + j, c), V::loadu(k + H + j, c));
          const V h_new = q.a * V::loadu(h + j, c) + q.z * q.g;
          h_new.store(o + j, c);
        });
      }
    }
  });
}

template <typename T>
void backward_loop(int64_t T_, int64_t N, int64_t H, const T* dout, const T* gi, const T* h0,
                   const T* out, T* dgi, T* carry) {
  using V = Vectorized<T>;
  batch_rows(T_, N, H, [&](int64_t lo, int64_t hi) {
    for (int64_t t = T_ - 1; t >= 0; --t) {
      for (int64_t n = lo; n < hi; ++n) {
        const int64_t row = t * N + n;
        const T* k = gi + row * 2 * H;
        const T* h = t == 0 ? h0 + n * H : out + (row - N) * H;  // h_{t−1}
        const T* d = dout + row * H;
        T* dk = dgi + row * 2 * H;
        T* c_n = carry + n * H;  // a_{t+1} ⊙ ĝ_{t+1} in, a_t ⊙ ĝ_t out
        vec_cols<T>(H, [&](int64_t j, int64_t c) {
          const Coefficients<T> q(V::loadu(k + j, c), V::loadu(k + H + j, c));
          const V g_hat = V::loadu(d + j, c) + V::loadu(c_n + j, c);
          (g_hat * q.a * q.z * (q.g - V::loadu(h + j, c))).store(dk + j, c);
          (g_hat * q.z * q.dg).store(dk + H + j, c);
          (q.a * g_hat).store(c_n + j, c);
        });
      }
    }
  });
}

void check_scan(const char* fn, const Tensor& gi, const Tensor& h0) {
  check_floating(fn, "gi", gi);
  TORCH_CHECK(gi.dim() == 3 && gi.size(2) % 2 == 0, fn,
              ": expected gi of shape (T, N, 2H), got ", gi.sizes());
  const int64_t N = gi.size(1), H = gi.size(2) / 2;
  check_tensor(fn, "h0", h0, gi, {N, H});
}

}  // namespace

Tensor mingru_forward(const Tensor& gi_, const Tensor& h0_) {
  const char* fn = "grukit native mingru_forward";
  check_scan(fn, gi_, h0_);
  const Tensor gi = gi_.contiguous(), h0 = h0_.contiguous();
  const int64_t T = gi.size(0), N = gi.size(1), H = gi.size(2) / 2;
  Tensor out = grukit::cached_empty({T, N, H}, gi.options());
  AT_DISPATCH_FLOATING_TYPES(gi.scalar_type(), "mingru_forward", [&] {
    forward_loop<scalar_t>(T, N, H, gi.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(),
                           out.data_ptr<scalar_t>());
  });
  return out;
}

std::vector<Tensor> mingru_backward(const Tensor& dout_, const Tensor& gi_, const Tensor& h0_,
                                    const Tensor& out_) {
  const char* fn = "grukit native mingru_backward";
  check_scan(fn, gi_, h0_);
  const int64_t T = gi_.size(0), N = gi_.size(1), H = gi_.size(2) / 2;
  check_tensor(fn, "dout", dout_, gi_, {T, N, H});
  check_tensor(fn, "out", out_, gi_, {T, N, H});
  const Tensor gi = gi_.contiguous(), h0 = h0_.contiguous();
  const Tensor dout = dout_.contiguous(), out = out_.contiguous();
  Tensor dgi = grukit::cached_empty(gi.sizes(), gi.options());
  Tensor dh0 = at::zeros_like(h0);  // the carry a_{t+1} ⊙ ĝ_{t+1}; after step 1, dh_0
  AT_DISPATCH_FLOATING_TYPES(gi.scalar_type(), "mingru_backward", [&] {
    backward_loop<scalar_t>(T, N, H, dout.data_ptr<scalar_t>(), gi.data_ptr<scalar_t>(),
                            h0.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                            dgi.data_ptr<scalar_t>(), dh0.data_ptr<scalar_t>());
  });
  return {dgi, dh0};
}
