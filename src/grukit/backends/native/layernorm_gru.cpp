// The serial loops of grukit's LayerNormGRU (grukit/backends/layernorm_loops.py), for the CPU.
//
// Shapes: S rows of all steps (T·N padded, or sum(batch_sizes) packed), N batch, H hidden.
// Packed data: step t owns rows [off_t, off_t + N_t); rows b >= N_t keep their state.
// Gate order r, z, n. m: recurrent dropout mask (N, H), k: zoneout's keep (S, H).
//
//   forward   hm = h ⊙ m;  reset_after: a = hm W_hhᵀ (3H), x̂ = (a − μ) rstd over 3H,
//             gh = x̂ γ + b;  r, z = σ(gi + gh);  n = tanh(gi_n + r gh_n)
//             otherwise: a_rz = hm W_rzᵀ normalised over 2H; r, z; a_n = (r ⊙ hm) W_hnᵀ
//             normalised over H; n = tanh(gi_n + x̂_n γ_n + b_n)
//             h' = n + z' (h − n), z' = z + k (1 − z)
//   backward  d = dh' + dout;  da_n = d (1 − z')(1 − n²);  da_z = d (h − n)(1 − k) z (1 − z)
//             reset_after: da_r = da_n gh_n r (1 − r); dgh = [da_r, da_z, da_n r];
//                          da = LN'(dgh γ);  dh = d z' + m ⊙ (da W_hh)
//             otherwise:   da_n' = LN'(da_n γ_n); drh = da_n' W_hn; da_r = drh hm r (1 − r);
//                          da_rz' = LN'([da_r, da_z] γ_rz); dh = d z' + m ⊙ (drh r + da_rz' W_rz)
//             LN'(g) = rstd (g − mean g − x̂ mean(g x̂)) per row.
// One GEMM per step (two for reset_after = false) and vectorised row-wise work, with
// gru.cpp's building blocks (loops.h).

#include "layernorm_gru.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include "gemm.h"
#include "loops.h"

#include <cmath>
#include <type_traits>
#include <vector>

namespace {

using at::Tensor;
using at::vec::Vectorized;
using namespace grukit::loops;  // NOLINT: the shared building blocks (loops.h)

constexpr double kEps = 1e-5;  // grukit.functional.LN_EPS

// μ and rstd = 1 / sqrt(σ² + ε) of a row a (K), biased σ², two passes.
template <typename T>
inline void row_stats(const T* a, int64_t K, T& mu, T& rs) {
  using V = Vectorized<T>;
  V acc(T(0));
  vec_cols<T>(K, [&](int64_t j, int64_t c) { acc = acc + V::loadu(a + j, c); });
  mu = hsum(acc) / T(K);
  const V m(mu);
  V acc2(T(0));
  vec_cols<T>(K, [&](int64_t j, int64_t c) {
    V x = V::loadu(a + j, c) - m;
    if (c < V::size()) x = V::set(V(T(0)), x, c);  // the lanes past the row's end
    acc2 = at::vec::fmadd(x, x, acc2);
  });
  rs = T(1) / std::sqrt(hsum(acc2) / T(K) + T(kEps));
}

// g (K) → LN'(g) in place: rs (g − mean g − x̂ mean(g x̂)), with Σg and Σ g x̂ given.
template <typename T>
inline void norm_backward_row(T* g, const T* xh, int64_t K, T sg, T sgx, T rs) {
  using V = Vectorized<T>;
  const V mg(sg / T(K)), mgx(sgx / T(K)), vrs(rs);
  vec_cols<T>(K, [&](int64_t j, int64_t c) {
    (vrs * (V::loadu(g + j, c) - mg - V::loadu(xh + j, c) * mgx)).store(g + j, c);
  });
}

// t: a CPU tensor of like's dtype (float32/float64) with exactly these sizes.
void check(const char* fn, const char* name, const Tensor& t, const Tensor& like,
           at::IntArrayRef sizes) {
  TORCH_CHECK(t.defined() && t.device().is_cpu(), fn, ": expected ", name, ", a CPU tensor");
  TORCH_CHECK(like.scalar_type() == at::kFloat || like.scalar_type() == at::kDouble, fn,
              ": expected float32 or float64, got ", like.scalar_type());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), fn, ": expected ", name, " of dtype ",
              like.scalar_type(), ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == sizes, fn, ": expected ", name, " of shape ", sizes, ", got ",
              t.sizes());
}

Tensor contiguous_or_empty(const c10::optional<Tensor>& t) {
  return given(t) ? t->contiguous() : Tensor();
}

template <typename T>
const T* ptr_or_null(const Tensor& t, int64_t offset = 0) {
  return t.defined() ? t.data_ptr<T>() + offset : nullptr;
}

// hm = h ⊙ m for rows [0, n).
template <typename T>
void mask_rows(int64_t n, int64_t H, const T* h, const T* m, T* hm) {
  using V = Vectorized<T>;
  rows(n, H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        (V::loadu(h + i * H + j, c) * V::loadu(m + i * H + j, c)).store(hm + i * H + j, c);
      });
    }
  });
}

// reset_after: from gi (n, 3H) and the raw product a (n, 3H): stats, gates and h' in one pass.
// gam, b (3H,); keep (n, H) or null; gates, xhat (n, 3H) and rstd (n, 2) or null (no save).
template <typename T>
void fwd_reset_after(int64_t n, int64_t H, const T* gi, const T* a, const T* gam, const T* b,
                     const T* keep, T* h, T* out, T* gates, T* xhat, T* rstd) {
  using V = Vectorized<T>;
  const V one(T(1));
  rows(n, 3 * H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* a_i = a + i * 3 * H;
      const T* gi_i = gi + i * 3 * H;
      T mu, rs;
      row_stats(a_i, 3 * H, mu, rs);
      const V vmu(mu), vrs(rs);
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V xr = (V::loadu(a_i + j, c) - vmu) * vrs;
        V xz = (V::loadu(a_i + H + j, c) - vmu) * vrs;
        V xn = (V::loadu(a_i + 2 * H + j, c) - vmu) * vrs;
        V r = vsigmoid(V::loadu(gi_i + j, c) + (xr * V::loadu(gam + j, c) + V::loadu(b + j, c)));
        V z = vsigmoid(V::loadu(gi_i + H + j, c) +
                       (xz * V::loadu(gam + H + j, c) + V::loadu(b + H + j, c)));
        V ghn = xn * V::loadu(gam + 2 * H + j, c) + V::loadu(b + 2 * H + j, c);
        V nn = vtanh(V::loadu(gi_i + 2 * H + j, c) + r * ghn);
        V hp = V::loadu(h + i * H + j, c);
        V hnew = nn + z * (hp - nn);
        if (keep) hnew = hnew + V::loadu(keep + i * H + j, c) * (hp - hnew);
        hnew.store(h + i * H + j, c);
        hnew.store(out + i * H + j, c);
        if (gates) {
          T* g_i = gates + i * 3 * H;
          T* x_i = xhat + i * 3 * H;
          r.store(g_i + j, c), z.store(g_i + H + j, c), nn.store(g_i + 2 * H + j, c);
          xr.store(x_i + j, c), xz.store(x_i + H + j, c), xn.store(x_i + 2 * H + j, c);
        }
      });
      if (rstd) rstd[i * 2] = rs, rstd[i * 2 + 1] = T(0);
    }
  });
}

// reset_after = false, first half: r, z into gates (n, 3H) and rh = r ⊙ hm (n, H) from the
// raw product a (n, 2H) normalised over 2H; xhat (n, 3H) and rstd (n, 2) or null.
template <typename T>
void fwd_rz(int64_t n, int64_t H, const T* gi, const T* a, const T* gam, const T* b,
            const T* hm, T* gates, T* rh, T* xhat, T* rstd) {
  using V = Vectorized<T>;
  rows(n, 2 * H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* a_i = a + i * 2 * H;
      const T* gi_i = gi + i * 3 * H;
      T mu, rs;
      row_stats(a_i, 2 * H, mu, rs);
      const V vmu(mu), vrs(rs);
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V xr = (V::loadu(a_i + j, c) - vmu) * vrs;
        V xz = (V::loadu(a_i + H + j, c) - vmu) * vrs;
        V r = vsigmoid(V::loadu(gi_i + j, c) + (xr * V::loadu(gam + j, c) + V::loadu(b + j, c)));
        V z = vsigmoid(V::loadu(gi_i + H + j, c) +
                       (xz * V::loadu(gam + H + j, c) + V::loadu(b + H + j, c)));
        (r * V::loadu(hm + i * H + j, c)).store(rh + i * H + j, c);
        r.store(gates + i * 3 * H + j, c);
        z.store(gates + i * 3 * H + H + j, c);
        if (xhat) xr.store(xhat + i * 3 * H + j, c), xz.store(xhat + i * 3 * H + H + j, c);
      });
      if (rstd) rstd[i * 2] = rs;
    }
  });
}

// reset_after = false, second half: a_n (n, H) normalised over H, n and h'.
template <typename T>
void fwd_n(int64_t n, int64_t H, const T* gi, const T* a, const T* gam, const T* b,
           const T* keep, T* h, T* out, T* gates, T* xhat, T* rstd) {
  using V = Vectorized<T>;
  rows(n, H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* a_i = a + i * H;
      T mu, rs;
      row_stats(a_i, H, mu, rs);
      const V vmu(mu), vrs(rs);
      T* g_i = gates + i * 3 * H;
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V xn = (V::loadu(a_i + j, c) - vmu) * vrs;
        V nn = vtanh(V::loadu(gi + i * 3 * H + 2 * H + j, c) +
                     (xn * V::loadu(gam + 2 * H + j, c) + V::loadu(b + 2 * H + j, c)));
        V z = V::loadu(g_i + H + j, c);
        V hp = V::loadu(h + i * H + j, c);
        V hnew = nn + z * (hp - nn);
        if (keep) hnew = hnew + V::loadu(keep + i * H + j, c) * (hp - hnew);
        nn.store(g_i + 2 * H + j, c);
        hnew.store(h + i * H + j, c);
        hnew.store(out + i * H + j, c);
        if (xhat) xn.store(xhat + i * 3 * H + 2 * H + j, c);
      });
      if (rstd) rstd[i * 2 + 1] = rs;
    }
  });
}

// Backward, the step's element-wise work up to the first normalisation's backward. Writes
// dgi (n, 3H), dh = d z' (the direct path), and, reset_after: dghn (n, H) and da (n, 3H) =
// LN'(dgh γ) over 3H; otherwise da's n columns = LN'(da_n γ_n) over H.
template <typename T>
void bwd_gates(int64_t n, int64_t H, bool reset_after, const T* dout, T* dh, const T* gates,
               const T* xhat, const T* rstd, const T* hprev, const T* keep, const T* gam,
               const T* b, T* dgi, T* dghn, T* da) {
  using V = Vectorized<T>;
  const V one(T(1));
  rows(n, 3 * H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* g_i = gates + i * 3 * H;
      const T* x_i = xhat + i * 3 * H;
      T* dgi_i = dgi + i * 3 * H;
      T* da_i = da + i * 3 * H;
      V sg(T(0)), sgx(T(0));
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V d = V::loadu(dh + i * H + j, c) + V::loadu(dout + i * H + j, c);
        V r = V::loadu(g_i + j, c), z = V::loadu(g_i + H + j, c);
        V nn = V::loadu(g_i + 2 * H + j, c);
        V dz = d * (V::loadu(hprev + i * H + j, c) - nn);
        V zk = z;
        if (keep) {
          V k = V::loadu(keep + i * H + j, c);
          zk = z + k * (one - z);
          dz = dz * (one - k);
        }
        V da_n = d * (one - zk) * (one - nn * nn);
        V da_z = dz * z * (one - z);
        (d * zk).store(dh + i * H + j, c);
        da_z.store(dgi_i + H + j, c);
        da_n.store(dgi_i + 2 * H + j, c);
        V xn = V::loadu(x_i + 2 * H + j, c);
        if (reset_after) {
          V ghn = xn * V::loadu(gam + 2 * H + j, c) + V::loadu(b + 2 * H + j, c);
          V da_r = da_n * ghn * r * (one - r);
          V da_nr = da_n * r;
          da_r.store(dgi_i + j, c);
          da_nr.store(dghn + i * H + j, c);
          V gr = da_r * V::loadu(gam + j, c), gz = da_z * V::loadu(gam + H + j, c);
          V gn = da_nr * V::loadu(gam + 2 * H + j, c);
          gr.store(da_i + j, c), gz.store(da_i + H + j, c), gn.store(da_i + 2 * H + j, c);
          sg = sg + gr + gz + gn;
          sgx = sgx + gr * V::loadu(x_i + j, c) + gz * V::loadu(x_i + H + j, c) + gn * xn;
        } else {
          V gn = da_n * V::loadu(gam + 2 * H + j, c);
          gn.store(da_i + 2 * H + j, c);
          sg = sg + gn;
          sgx = sgx + gn * xn;
        }
      });
      if (reset_after) {
        norm_backward_row(da_i, x_i, 3 * H, hsum(sg), hsum(sgx), rstd[i * 2]);
      } else {
        norm_backward_row(da_i + 2 * H, x_i + 2 * H, H, hsum(sg), hsum(sgx), rstd[i * 2 + 1]);
      }
    }
  });
}

// reset_after = false, after drh = da_n' W_hn (n, H): da_r into dgi, drh ⊙ r added to dhm,
// and da's r, z columns = LN'([da_r, da_z] γ_rz) over 2H.
template <typename T>
void bwd_rz(int64_t n, int64_t H, const T* drh, const T* gates, const T* xhat, const T* rstd,
            const T* hprev, const T* mask, const T* gam, T* dhm, T* dgi, T* da) {
  using V = Vectorized<T>;
  const V one(T(1));
  rows(n, 2 * H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* x_i = xhat + i * 3 * H;
      T* dgi_i = dgi + i * 3 * H;
      T* da_i = da + i * 3 * H;
      V sg(T(0)), sgx(T(0));
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V r = V::loadu(gates + i * 3 * H + j, c);
        V g = V::loadu(drh + i * H + j, c);
        V hm = V::loadu(hprev + i * H + j, c);
        if (mask) hm = hm * V::loadu(mask + i * H + j, c);
        V da_r = g * hm * r * (one - r);
        da_r.store(dgi_i + j, c);
        (V::loadu(dhm + i * H + j, c) + g * r).store(dhm + i * H + j, c);
        V gr = da_r * V::loadu(gam + j, c);
        V gz = V::loadu(dgi_i + H + j, c) * V::loadu(gam + H + j, c);
        gr.store(da_i + j, c), gz.store(da_i + H + j, c);
        sg = sg + gr + gz;
        sgx = sgx + gr * V::loadu(x_i + j, c) + gz * V::loadu(x_i + H + j, c);
      });
      norm_backward_row(da_i, x_i, 2 * H, hsum(sg), hsum(sgx), rstd[i * 2]);
    }
  });
}

// dh += dhm ⊙ m for rows [0, n).
template <typename T>
void add_masked(int64_t n, int64_t H, const T* dhm, const T* m, T* dh) {
  using V = Vectorized<T>;
  rows(n, H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        (V::loadu(dh + i * H + j, c) + V::loadu(dhm + i * H + j, c) * V::loadu(m + i * H + j, c))
            .store(dh + i * H + j, c);
      });
    }
  });
}

}  // namespace

std::vector<Tensor> ln_gru_forward(const Tensor& gi_, const Tensor& h0, const Tensor& w_hh_,
                                   const c10::optional<Tensor>& b_hh, const Tensor& ln_hh_,
                                   const c10::optional<Tensor>& h_mask_,
                                   const c10::optional<Tensor>& keep_, const Tensor& batch_sizes,
                                   bool reverse, bool reset_after, bool save, bool copy_operand) {
  const char* fn = "grukit native ln_gru_forward";
  check_2d(fn, "h0", h0);
  check_2d(fn, "gi", gi_);
  const int64_t N = h0.size(0), H = h0.size(1), S = gi_.size(0);
  check(fn, "h0", h0, h0, {N, H});
  check(fn, "gi", gi_, h0, {S, 3 * H});
  check(fn, "w_hh", w_hh_, h0, {3 * H, H});
  check(fn, "ln_hh", ln_hh_, h0, {3 * H});
  if (given(b_hh)) check(fn, "b_hh", *b_hh, h0, {3 * H});
  if (given(h_mask_)) check(fn, "h_mask", *h_mask_, h0, {N, H});
  if (given(keep_)) check(fn, "keep", *keep_, h0, {S, H});
  check_batch_sizes(fn, batch_sizes, N, S);
  const Tensor gi = gi_.contiguous(), w_hh = w_hh_.contiguous(), gam = ln_hh_.contiguous();
  const Tensor mask = contiguous_or_empty(h_mask_), keep = contiguous_or_empty(keep_);
  const Steps steps(batch_sizes);
  auto opt = gi.options();
  Tensor out = at::empty({S, H}, opt);
  Tensor gates = at::empty({save ? S : (reset_after ? 0 : N), 3 * H}, opt);
  Tensor xhat = at::empty({save ? S : 0, 3 * H}, opt);
  Tensor rstd = at::zeros({save ? S : 0, 2}, opt);
  Tensor h = h0.contiguous().clone();  // (N, H) running state
  Tensor hm = at::empty({mask.defined() ? N : 0, H}, opt);
  Tensor a = at::empty({N, reset_after ? 3 * H : 2 * H}, opt);
  Tensor an = at::empty({reset_after ? 0 : N, H}, opt);
  Tensor rh = at::empty({reset_after ? 0 : N, H}, opt);
  Tensor b = given(b_hh) ? b_hh->contiguous() : at::zeros({3 * H}, opt);
  Tensor w_hh_t = w_hh.t();  // (H, 3H)
  const int64_t first = reset_after ? 3 * H : 2 * H;
  if (copy_operand && !StepGemm::packs(w_hh_t.narrow(1, 0, first), steps.T())) {
    w_hh_t = w_hh_t.contiguous();
  }
  Tensor w_rz = w_hh_t.narrow(1, 0, 2 * H), w_n = w_hh_t.narrow(1, 2 * H, H);
  const StepGemm gemm_h(reset_after ? w_hh_t : w_rz, steps.T(), 0);
  const StepGemm gemm_rh(reset_after ? w_hh_t.narrow(1, 0, 0) : w_n, steps.T(), 1);
  AT_DISPATCH_FLOATING_TYPES(gi.scalar_type(), "ln_gru_forward", [&] {
    using T = scalar_t;
    for (int64_t q = 0; q < steps.T(); ++q) {
      const int64_t t = reverse ? steps.T() - 1 - q : q, n = steps.size[t], off = steps.offset[t];
      if (n == 0) continue;
      const T* hm_p = h.data_ptr<T>();
      if (mask.defined()) {
        mask_rows<T>(n, H, h.data_ptr<T>(), mask.data_ptr<T>(), hm.data_ptr<T>());
        hm_p = hm.data_ptr<T>();
      }
      Tensor av = a.narrow(0, 0, n);
      gemm_h((mask.defined() ? hm : h).narrow(0, 0, n), av, false);
      const T* gi_t = gi.data_ptr<T>() + off * 3 * H;
      T* out_t = out.data_ptr<T>() + off * H;
      const T* keep_t = ptr_or_null<T>(keep, off * H);
      T* x_t = save ? xhat.data_ptr<T>() + off * 3 * H : nullptr;
      T* rs_t = save ? rstd.data_ptr<T>() + off * 2 : nullptr;
      if (reset_after) {
        fwd_reset_after<T>(n, H, gi_t, a.data_ptr<T>(), gam.data_ptr<T>(), b.data_ptr<T>(), keep_t,
                           h.data_ptr<T>(), out_t, save ? gates.data_ptr<T>() + off * 3 * H : nullptr,
                           x_t, rs_t);
      } else {
        T* g = gates.data_ptr<T>() + (save ? off * 3 * H : 0);
        fwd_rz<T>(n, H, gi_t, a.data_ptr<T>(), gam.data_ptr<T>(), b.data_ptr<T>(), hm_p, g,
                  rh.data_ptr<T>(), x_t, rs_t);
        Tensor anv = an.narrow(0, 0, n);
        gemm_rh(rh.narrow(0, 0, n), anv, false);
        fwd_n<T>(n, H, gi_t, an.data_ptr<T>(), gam.data_ptr<T>(), b.data_ptr<T>(), keep_t,
                 h.data_ptr<T>(), out_t, g, x_t, rs_t);
      }
    }
  });
  if (!save) gates = gates.narrow(0, 0, 0);
  return {out, gates, xhat, rstd, h};
}

std::vector<Tensor> ln_gru_backward(const Tensor& dout_, const Tensor& dh_n, const Tensor& gates_,
                                    const Tensor& xhat_, const Tensor& rstd_, const Tensor& hprev_,
                                    const Tensor& w_hh_, const c10::optional<Tensor>& b_hh,
                                    const Tensor& ln_hh_, const c10::optional<Tensor>& h_mask_,
                                    const c10::optional<Tensor>& keep_, const Tensor& batch_sizes,
                                    bool reverse, bool reset_after) {
  const char* fn = "grukit native ln_gru_backward";
  check_2d(fn, "dh_n", dh_n);
  check_2d(fn, "dout", dout_);
  const int64_t N = dh_n.size(0), H = dh_n.size(1), S = dout_.size(0);
  check(fn, "dh_n", dh_n, dh_n, {N, H});
  check(fn, "dout", dout_, dh_n, {S, H});
  check(fn, "gates", gates_, dh_n, {S, 3 * H});
  check(fn, "xhat", xhat_, dh_n, {S, 3 * H});
  check(fn, "rstd", rstd_, dh_n, {S, 2});
  check(fn, "hprev", hprev_, dh_n, {S, H});
  check(fn, "w_hh", w_hh_, dh_n, {3 * H, H});
  check(fn, "ln_hh", ln_hh_, dh_n, {3 * H});
  if (given(b_hh)) check(fn, "b_hh", *b_hh, dh_n, {3 * H});
  if (given(h_mask_)) check(fn, "h_mask", *h_mask_, dh_n, {N, H});
  if (given(keep_)) check(fn, "keep", *keep_, dh_n, {S, H});
  check_batch_sizes(fn, batch_sizes, N, S);
  const Tensor dout = dout_.contiguous(), gates = gates_.contiguous(), xhat = xhat_.contiguous();
  const Tensor rstd = rstd_.contiguous(), hprev = hprev_.contiguous();
  const Tensor w_hh = w_hh_.contiguous(), gam = ln_hh_.contiguous();
  const Tensor mask = contiguous_or_empty(h_mask_), keep = contiguous_or_empty(keep_);
  const Steps steps(batch_sizes);
  auto opt = dout.options();
  Tensor dgi = at::empty({S, 3 * H}, opt);
  Tensor dghn = reset_after ? at::empty({S, H}, opt) : dgi.narrow(1, 2 * H, H);
  Tensor da = at::empty({S, 3 * H}, opt);
  Tensor dh = dh_n.contiguous().clone();  // (N, H)
  Tensor dhm = at::empty({N, H}, opt);     // the gradient of hm, when masked (or reset_after=false)
  Tensor drh = at::empty({reset_after ? 0 : N, H}, opt);
  Tensor b = given(b_hh) ? b_hh->contiguous() : at::zeros({3 * H}, opt);
  Tensor w_rz = w_hh.narrow(0, 0, 2 * H), w_n = w_hh.narrow(0, 2 * H, H);  // (2H, H), (H, H)
  const StepGemm gemm_dh(reset_after ? w_hh : w_rz, steps.T(), 0);
  const StepGemm gemm_drh(reset_after ? w_hh.narrow(0, 0, 0) : w_n, steps.T(), 1);
  AT_DISPATCH_FLOATING_TYPES(dout.scalar_type(), "ln_gru_backward", [&] {
    using T = scalar_t;
    for (int64_t q = steps.T() - 1; q >= 0; --q) {
      const int64_t t = reverse ? steps.T() - 1 - q : q, n = steps.size[t], off = steps.offset[t];
      if (n == 0) continue;
      const T* g_t = gates.data_ptr<T>() + off * 3 * H;
      const T* x_t = xhat.data_ptr<T>() + off * 3 * H;
      const T* rs_t = rstd.data_ptr<T>() + off * 2;
      const T* hp_t = hprev.data_ptr<T>() + off * H;
      T* dgi_t = dgi.data_ptr<T>() + off * 3 * H;
      T* da_t = da.data_ptr<T>() + off * 3 * H;
      bwd_gates<T>(n, H, reset_after, dout.data_ptr<T>() + off * H, dh.data_ptr<T>(), g_t, x_t,
                   rs_t, hp_t, ptr_or_null<T>(keep, off * H), gam.data_ptr<T>(), b.data_ptr<T>(),
                   dgi_t, reset_after ? dghn.data_ptr<T>() + off * H : nullptr, da_t);
      Tensor dav = da.narrow(0, off, n);  // (N_t, 3H)
      Tensor dhv = dh.narrow(0, 0, n), dhmv = dhm.narrow(0, 0, n);
      if (reset_after) {
        if (mask.defined()) {
          gemm_dh(dav, dhmv, false);  // (N_t, 3H) (3H, H)
          add_masked<T>(n, H, dhm.data_ptr<T>(), mask.data_ptr<T>(), dh.data_ptr<T>());
        } else {
          gemm_dh(dav, dhv, true);
        }
      } else {
        Tensor drhv = drh.narrow(0, 0, n);
        gemm_drh(dav.narrow(1, 2 * H, H), drhv, false);  // da_n' W_hn
        // The gradient of hm: into dh directly without a mask (dh holds d z' already).
        Tensor& target = mask.defined() ? dhmv : dhv;
        if (mask.defined()) dhmv.zero_();
        bwd_rz<T>(n, H, drh.data_ptr<T>(), g_t, x_t, rs_t, hp_t, ptr_or_null<T>(mask),
                  gam.data_ptr<T>(), target.data_ptr<T>(), dgi_t, da_t);
        gemm_dh(dav.narrow(1, 0, 2 * H), target, true);  // + da_rz' W_rz
        if (mask.defined()) {
          add_masked<T>(n, H, dhm.data_ptr<T>(), mask.data_ptr<T>(), dh.data_ptr<T>());
        }
      }
    }
  });
  return {dgi, dghn, da, dh};
}
