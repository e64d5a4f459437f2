// The streaming step: one GRU step without autograd, for generation loops that call
// GRUCell(x_t, h) or GRU(x_t, h) once per token. At these sizes the weights' load and the
// call's overhead are the cost, so each call does everything in C++: the products (here for
// small problems, at::mm for larger), the gates (gru_gates.h), and for the layer every layer
// and direction in turn, into tensors allocated once per call.

#include "step.h"

#include <ATen/cpu/vec/vec.h>

#include "gru_gates.h"
#include "loops.h"

#include <algorithm>
#include <vector>

namespace {

using at::Tensor;
using at::vec::Vectorized;
using namespace grukit::loops;  // NOLINT: checks, hsum
using namespace grukit::gates;  // NOLINT: the forward gates

// out[i, r] = bias[r] + Σ_j a[i, j] w[r, j] for a (n, k), w (m, k) row-major, bias (m,) or
// null. For the streaming step: small n, where a BLAS call costs more than the arithmetic.

template <typename T>
void small_matmul_nt(int64_t n, int64_t m, int64_t k, const T* a, int64_t lda, const T* w,
                     const T* bias, T* out, int64_t ldo) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  const int64_t kv = k - k % W;  // the vectorised part of each dot product
  // Four rows of w at a time: four independent FMA chains, then four tree reductions.
  auto dot4 = [&](const T* a_i, int64_t r, T* o) {
    const T* w0 = w + r * k;
    V acc0(T(0)), acc1(T(0)), acc2(T(0)), acc3(T(0));
    for (int64_t j = 0; j < kv; j += W) {
      const V x = V::loadu(a_i + j);
      acc0 = at::vec::fmadd(x, V::loadu(w0 + j), acc0);
      acc1 = at::vec::fmadd(x, V::loadu(w0 + k + j), acc1);
      acc2 = at::vec::fmadd(x, V::loadu(w0 + 2 * k + j), acc2);
      acc3 = at::vec::fmadd(x, V::loadu(w0 + 3 * k + j), acc3);
    }
    T s[4] = {hsum<T>(acc0), hsum<T>(acc1),
              hsum<T>(acc2), hsum<T>(acc3)};
    for (int64_t q = 0; q < 4; ++q) {
      for (int64_t j = kv; j < k; ++j) s[q] += a_i[j] * w0[q * k + j];
      o[q] = (bias ? bias[r + q] : T(0)) + s[q];
    }
  };
  for (int64_t i = 0; i < n; ++i) {
    const T* a_i = a + i * lda;
    int64_t r = 0;
    for (; r + 4 <= m; r += 4) dot4(a_i, r, out + i * ldo + r);
    for (; r < m; ++r) {
      const T* w_r = w + r * k;
      V acc(T(0));
      for (int64_t j = 0; j < kv; j += W) acc = at::vec::fmadd(V::loadu(a_i + j), V::loadu(w_r + j), acc);
      T sum = hsum<T>(acc);
      for (int64_t j = kv; j < k; ++j) sum += a_i[j] * w_r[j];
      out[i * ldo + r] = (bias ? bias[r] : T(0)) + sum;
    }
  }
}

// One step on raw rows: state (N, H) becomes h' from x (N, I), rows lda apart, and itself.
// b_ih (3H,) or null; b_hh (3H,) never null (zeros without bias). Products here while
// N·3H·(I + H) ≤ 2^20 (no BLAS call, no temporaries), else at::mm.
template <typename T>
void step_rows(int64_t N, int64_t I, int64_t H, const T* x, int64_t lda, T* state,
               const Tensor& w_ih, const Tensor& w_hh, const T* b_ih, const T* b_hh,
               bool reset_after, const at::TensorOptions& opts) {
  std::vector<T> gi(N * 3 * H), gh(N * 3 * H), rh(reset_after ? 0 : N * H);
  std::vector<T> gates(reset_after ? 0 : N * 3 * H);
  const int64_t G = reset_after ? 3 * H : 2 * H;  // rows of W_hh in the first product
  const bool small = N * 3 * H * (I + H) <= (1 << 20);
  if (small) {
    small_matmul_nt<T>(N, 3 * H, I, x, lda, w_ih.data_ptr<T>(), b_ih, gi.data(), 3 * H);
    small_matmul_nt<T>(N, G, H, state, H, w_hh.data_ptr<T>(), nullptr, gh.data(), G);
  } else {
    Tensor t_gi = at::from_blob(gi.data(), {N, 3 * H}, opts);
    Tensor t_gh = at::from_blob(gh.data(), {N, G}, opts);
    at::mm_out(t_gi, at::from_blob(const_cast<T*>(x), {N, I}, {lda, 1}, opts), w_ih.t());
    if (b_ih) t_gi.add_(at::from_blob(const_cast<T*>(b_ih), {3 * H}, opts));
    at::mm_out(t_gh, at::from_blob(state, {N, H}, opts), w_hh.narrow(0, 0, G).t());
  }
  if (reset_after) {
    gates_reset_after<T>(N, H, gi.data(), gh.data(), b_hh, state, state, nullptr, nullptr);
    return;
  }
  gates_rz<T>(N, H, gi.data(), gh.data(), b_hh, state, gates.data(), rh.data());
  const T* w_n = w_hh.data_ptr<T>() + 2 * H * H;  // W_hn (H, H)
  if (small) {
    small_matmul_nt<T>(N, H, H, rh.data(), H, w_n, nullptr, gh.data(), H);
  } else {
    Tensor t_ghn = at::from_blob(gh.data(), {N, H}, opts);
    at::mm_out(t_ghn, at::from_blob(rh.data(), {N, H}, opts), w_hh.narrow(0, 2 * H, H).t());
  }
  gates_n<T>(N, H, gi.data(), gh.data(), b_hh, state, state, gates.data());
}

}  // namespace

Tensor gru_cell(const Tensor& x_, const Tensor& h_, const Tensor& w_ih_, const Tensor& w_hh_,
                const c10::optional<Tensor>& b_ih_, const c10::optional<Tensor>& b_hh,
                bool reset_after) {
  const char* fn = "grukit native gru_cell";
  check_2d(fn, "h", h_);
  check_2d(fn, "x", x_);
  const int64_t N = h_.size(0), H = h_.size(1), I = x_.size(1);
  check_tensor(fn, "x", x_, h_, {N, I});
  check_tensor(fn, "w_ih", w_ih_, h_, {3 * H, I});
  check_tensor(fn, "w_hh", w_hh_, h_, {3 * H, H});
  if (given(b_ih_)) check_tensor(fn, "b_ih", *b_ih_, h_, {3 * H});
  if (given(b_hh)) check_tensor(fn, "b_hh", *b_hh, h_, {3 * H});
  const Tensor x = x_.contiguous(), w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous();
  const bool has_bias = given(b_ih_);  // b_ih and b_hh each apply where given
  const Tensor b_ih = has_bias ? b_ih_->contiguous() : Tensor();
  const Tensor b = bias_or_zeros(b_hh, 3 * H, h_);
  const Tensor h = h_.contiguous();
  Tensor out = at::empty({N, H}, h.options());  // the state, updated in place
  AT_DISPATCH_FLOATING_TYPES(h_.scalar_type(), "gru_cell", [&] {
    using T = scalar_t;
    std::copy(h.data_ptr<T>(), h.data_ptr<T>() + N * H, out.data_ptr<T>());
    step_rows<T>(N, I, H, x.data_ptr<T>(), I, out.data_ptr<T>(), w_ih, w_hh,
                 has_bias ? b_ih.data_ptr<T>() : nullptr, b.data_ptr<T>(), reset_after,
                 h_.options());
  });
  return out;
}

std::tuple<Tensor, Tensor> gru_step(const Tensor& x_, const c10::optional<Tensor>& h0,
                                    const std::vector<Tensor>& weights, int64_t hidden_size,
                                    int64_t num_layers, bool bidirectional, bool bias,
                                    bool reset_after, bool batch_first) {
  const char* fn = "grukit native gru_step";
  check_floating(fn, "x", x_);
  TORCH_CHECK(x_.dim() == 3 && x_.size(batch_first ? 1 : 0) == 1, fn,
              ": expected x of one step, (1, N, I) or (N, 1, I) batch_first, got shape ",
              x_.sizes());
  const int64_t L = num_layers, D = bidirectional ? 2 : 1, per = bias ? 4 : 2;
  TORCH_CHECK(L >= 1 && static_cast<int64_t>(weights.size()) == L * D * per, fn, ": expected ",
              L * D * per, " weights, got ", weights.size());
  const int64_t N = x_.size(batch_first ? 0 : 1), I = x_.size(2), H = hidden_size;
  for (int64_t k = 0; k < L * D; ++k) {
    const Tensor* w = &weights[k * per];
    check_tensor(fn, "w_ih", w[0], x_, {3 * H, k < D ? I : D * H});
    check_tensor(fn, "w_hh", w[1], x_, {3 * H, H});
    if (bias) check_tensor(fn, "b_ih", w[2], x_, {3 * H});
    if (bias) check_tensor(fn, "b_hh", w[3], x_, {3 * H});
  }
  if (given(h0)) check_tensor(fn, "h0", *h0, x_, {L * D, N, H});
  const Tensor x = x_.contiguous();
  const Tensor h_0 = given(h0) ? h0->contiguous() : Tensor();
  Tensor h_n = at::empty({L * D, N, H}, x.options());  // each state, updated in place
  // (1, N, D·H) and (N, 1, D·H) are the same memory: row i is sample i
  Tensor out = batch_first ? at::empty({N, 1, D * H}, x.options())
                           : at::empty({1, N, D * H}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_step", [&] {
    using T = scalar_t;
    const std::vector<T> zeros(bias ? 0 : 3 * H, T(0));  // b_hh without bias
    std::vector<T> bufs[2] = {std::vector<T>(L > 1 ? N * D * H : 0),
                              std::vector<T>(L > 2 ? N * D * H : 0)};
    T* states = h_n.data_ptr<T>();
    if (h_0.defined()) {
      std::copy(h_0.data_ptr<T>(), h_0.data_ptr<T>() + L * D * N * H, states);
    } else {
      std::fill(states, states + L * D * N * H, T(0));
    }
    const T* in = x.data_ptr<T>();  // the layer's input (N, in_size)
    int64_t in_size = I;
    for (int64_t l = 0; l < L; ++l) {
      T* layer_out = l + 1 == L ? out.data_ptr<T>() : bufs[l % 2].data();  // (N, D·H)
      for (int64_t d = 0; d < D; ++d) {
        const Tensor* w = &weights[(l * D + d) * per];
        const Tensor w_ih = w[0].contiguous(), w_hh = w[1].contiguous();
        const Tensor b_ih = bias ? w[2].contiguous() : Tensor();
        const Tensor b_hh = bias ? w[3].contiguous() : Tensor();
        T* state = states + (l * D + d) * N * H;
        step_rows<T>(N, in_size, H, in, in_size, state, w_ih, w_hh,
                     bias ? b_ih.data_ptr<T>() : nullptr,
                     bias ? b_hh.data_ptr<T>() : zeros.data(), reset_after, x.options());
        for (int64_t i = 0; i < N; ++i) {
          std::copy(state + i * H, state + (i + 1) * H, layer_out + i * D * H + d * H);
        }
      }
      in = layer_out;
      in_size = D * H;
    }
  });
  return {out, h_n};
}
