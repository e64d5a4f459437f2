// The serial loops of grukit's LayerNormGRU (grukit/backends/layernorm_loops.py), for the CPU.
//
// Shapes: S rows of all steps (T·N padded, or sum(batch_sizes) packed), N batch, H hidden.
// Packed data: step t owns rows [off_t, off_t + N_t); rows b >= N_t keep their state.
// Gate order r, z, n. m: recurrent dropout mask (N, H), k: zoneout's keep (S, H).
//
//   forward   gi = x̂_i γ_ih + b_ih, x̂_i = (a_i − μ_i) rstd_i over 3H of the raw a_i = x W_ihᵀ
//             (normalised here, row by row: a_i is overwritten with x̂_i when saving)
//             hm = h ⊙ m;  reset_after: a = hm W_hhᵀ (3H), x̂ = (a − μ) rstd over 3H,
//             gh = x̂ γ + b;  r, z = σ(gi + gh);  n = tanh(gi_n + r gh_n)
//             otherwise: a_rz = hm W_rzᵀ normalised over 2H; r, z; a_n = (r ⊙ hm) W_hnᵀ
//             normalised over H; n = tanh(gi_n + x̂_n γ_n + b_n)
//             h' = n + z' (h − n), z' = z + k (1 − z)
//   backward  d = dh' + dout;  da_n = d (1 − z')(1 − n²);  da_z = d (h − n)(1 − k) z (1 − z)
//             reset_after: da_r = da_n gh_n r (1 − r); dgh = [da_r, da_z, da_n r];
//                          da = LN'(dgh γ);  dh = d z' + m ⊙ (da W_hh)
//             otherwise:   da_n' = LN'(da_n γ_n); drh = da_n' W_hn; da_r = drh hm r (1 − r);
//                          da_rz' = LN'([da_r, da_z] γ_rz); dh = d z' + m ⊙ (drh r + da_rz' W_rz)
//             dgi = [da_r, da_z, da_n];  da_i = LN'_i(dgi γ_ih) over 3H;
//             sums (4, 3H) = Σ over rows of [dgi x̂_i, dgi, dgh x̂, dgh] (γ_ih, b_ih, γ_hh, b_hh)
//             LN'(g) = rstd (g − mean g − x̂ mean(g x̂)) per row.
// One GEMM per step (two for reset_after = false) and vectorised row-wise work
// (layernorm_rows.h), with gru.cpp's building blocks (loops.h).

#include "layernorm_gru.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include "cache.h"
#include "gemm.h"
#include "layernorm_rows.h"
#include "loops.h"

#include <type_traits>
#include <vector>

namespace {

using at::Tensor;
using at::vec::Vectorized;
using namespace grukit::loops;  // NOLINT: the shared building blocks (loops.h)
using namespace grukit::ln;     // NOLINT: the row work (layernorm_rows.h)

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

std::vector<Tensor> ln_gru_forward(const Tensor& a_i_, const Tensor& h0, const Tensor& w_hh_,
                                   const c10::optional<Tensor>& b_ih,
                                   const c10::optional<Tensor>& b_hh, const Tensor& ln_ih_,
                                   const Tensor& ln_hh_, const c10::optional<Tensor>& h_mask_,
                                   const c10::optional<Tensor>& keep_, const Tensor& batch_sizes,
                                   bool reverse, bool reset_after, bool save, bool copy_operand) {
  const char* fn = "grukit native ln_gru_forward";
  check_2d(fn, "h0", h0);
  check_2d(fn, "a_i", a_i_);
  const int64_t N = h0.size(0), H = h0.size(1), S = a_i_.size(0);
  check(fn, "h0", h0, h0, {N, H});
  check(fn, "a_i", a_i_, h0, {S, 3 * H});
  check(fn, "w_hh", w_hh_, h0, {3 * H, H});
  check(fn, "ln_ih", ln_ih_, h0, {3 * H});
  check(fn, "ln_hh", ln_hh_, h0, {3 * H});
  if (given(b_ih)) check(fn, "b_ih", *b_ih, h0, {3 * H});
  if (given(b_hh)) check(fn, "b_hh", *b_hh, h0, {3 * H});
  if (given(h_mask_)) check(fn, "h_mask", *h_mask_, h0, {N, H});
  if (given(keep_)) check(fn, "keep", *keep_, h0, {S, H});
  check_batch_sizes(fn, batch_sizes, N, S);
  // With save, a_i's rows become x̂_i (returned): a_i itself if contiguous, else a copy.
  Tensor ai = a_i_.contiguous();
  const Tensor w_hh = w_hh_.contiguous(), gam = ln_hh_.contiguous(), gam_i = ln_ih_.contiguous();
  const Tensor mask = contiguous_or_empty(h_mask_), keep = contiguous_or_empty(keep_);
  const Steps steps(batch_sizes);
  auto opt = ai.options();
  const int64_t R = save ? S : 0;
  Tensor out = grukit::cached_empty({S, H}, opt);
  Tensor gates = grukit::cached_empty({save ? S : (reset_after ? 0 : N), 3 * H}, opt);
  Tensor xhat = grukit::cached_empty({R, 3 * H}, opt);
  Tensor rstd = grukit::cached_empty({R, 2}, opt), rstd_i = grukit::cached_empty({R, 1}, opt);
  Tensor h = h0.contiguous().clone();  // (N, H) running state
  Tensor hm = grukit::cached_empty({mask.defined() ? N : 0, H}, opt);
  Tensor a = grukit::cached_empty({N, reset_after ? 3 * H : 2 * H}, opt);
  Tensor an = grukit::cached_empty({reset_after ? 0 : N, H}, opt);
  Tensor rh = grukit::cached_empty({reset_after ? 0 : N, H}, opt);
  Tensor istat = grukit::cached_empty({reset_after ? 0 : N, 2}, opt);  // the input rows' μ_i, rstd_i
  Tensor b = bias_or_zeros(b_hh, 3 * H, ai), bi = bias_or_zeros(b_ih, 3 * H, ai);
  Tensor w_hh_t = w_hh.t();  // (H, 3H)
  const int64_t first = reset_after ? 3 * H : 2 * H;
  if (copy_operand && !StepGemm::packs(w_hh_t.narrow(1, 0, first), steps.T())) {
    w_hh_t = w_hh_t.contiguous();
  }
  Tensor w_rz = w_hh_t.narrow(1, 0, 2 * H), w_n = w_hh_t.narrow(1, 2 * H, H);
  const StepGemm gemm_h(reset_after ? w_hh_t : w_rz, steps.T(), 0);
  const StepGemm gemm_rh(reset_after ? w_hh_t.narrow(1, 0, 0) : w_n, steps.T(), 1);
  AT_DISPATCH_FLOATING_TYPES(ai.scalar_type(), "ln_gru_forward", [&] {
    using T = scalar_t;
    const T *gi_p = gam_i.data_ptr<T>(), *bi_p = bi.data_ptr<T>();
    const T *g_p = gam.data_ptr<T>(), *b_p = b.data_ptr<T>();
    // Inference: the input side of all S rows first, in parallel (input_rows); the loop's
    // kernels then read gi (Ready). With save, each step normalises its own rows.
    auto loop = [&](auto ready) {
    constexpr bool R = decltype(ready)::value;
    for (int64_t q = 0; q < steps.T(); ++q) {
      const int64_t t = reverse ? steps.T() - 1 - q : q, n = steps.size[t], off = steps.offset[t];
      if (n == 0) continue;
      // Rows [lo, hi) of the step: each row's product and normalisations read only that
      // row, so the threads split the rows (split_rows) and sync once per step.
      auto step_rows = [&](int64_t, int64_t lo, int64_t hi) {
        const int64_t m = hi - lo, row = off + lo;
        T* h_p = h.data_ptr<T>() + lo * H;
        const T* hm_p = h_p;
        if (mask.defined()) {
          mask_rows<T>(m, H, h_p, mask.data_ptr<T>() + lo * H, hm.data_ptr<T>() + lo * H);
          hm_p = hm.data_ptr<T>() + lo * H;
        }
        Tensor av = a.narrow(0, lo, m);
        gemm_h((mask.defined() ? hm : h).narrow(0, lo, m), av, false);
        T* ai_t = ai.data_ptr<T>() + row * 3 * H;
        T* out_t = out.data_ptr<T>() + row * H;
        T* a_p = a.data_ptr<T>() + lo * a.size(1);
        const T* keep_t = ptr_or_null<T>(keep, row * H);
        T* x_t = save ? xhat.data_ptr<T>() + row * 3 * H : nullptr;
        T* rs_t = save ? rstd.data_ptr<T>() + row * 2 : nullptr;
        T* rsi_t = save ? rstd_i.data_ptr<T>() + row : nullptr;
        if (reset_after) {
          fwd_reset_after<R, T>(m, H, ai_t, gi_p, bi_p, a_p, g_p, b_p, keep_t, h_p, out_t,
                                save ? gates.data_ptr<T>() + row * 3 * H : nullptr, x_t, rs_t,
                                rsi_t);
        } else {
          T* g = gates.data_ptr<T>() + (save ? row : lo) * 3 * H;
          T* rh_p = rh.data_ptr<T>() + lo * H;
          T* is_p = istat.data_ptr<T>() + lo * 2;
          fwd_rz<R, T>(m, H, ai_t, gi_p, bi_p, a_p, g_p, b_p, hm_p, g, rh_p, x_t, rs_t, is_p);
          Tensor anv = an.narrow(0, lo, m);
          gemm_rh(rh.narrow(0, lo, m), anv, false);
          fwd_n<R, T>(m, H, ai_t, gi_p, bi_p, is_p, an.data_ptr<T>() + lo * H, g_p, b_p, keep_t,
                      h_p, out_t, g, x_t, rs_t, rsi_t);
        }
      };
      split_rows(n, w_hh.nbytes(), step_rows);
    }
    };
    if (save) {
      loop(std::false_type{});
    } else {
      input_rows<T>(S, H, ai.data_ptr<T>(), gi_p, bi_p);
      loop(std::true_type{});
    }
  });
  if (!save) gates = grukit::cached_empty({0, 3 * H}, opt);
  Tensor xhat_i = save ? ai : grukit::cached_empty({0, 3 * H}, opt);
  return {out, h, gates, xhat_i, rstd_i, xhat, rstd};
}

std::vector<Tensor> ln_gru_backward(const Tensor& dout_, const Tensor& dh_n, const Tensor& gates_,
                                    const Tensor& xhat_i_, const Tensor& rstd_i_,
                                    const Tensor& xhat_, const Tensor& rstd_, const Tensor& hprev_,
                                    const Tensor& w_hh_, const c10::optional<Tensor>& b_hh,
                                    const Tensor& ln_ih_, const Tensor& ln_hh_,
                                    const c10::optional<Tensor>& h_mask_,
                                    const c10::optional<Tensor>& keep_, const Tensor& batch_sizes,
                                    bool reverse, bool reset_after) {
  const char* fn = "grukit native ln_gru_backward";
  check_2d(fn, "dh_n", dh_n);
  check_2d(fn, "dout", dout_);
  const int64_t N = dh_n.size(0), H = dh_n.size(1), S = dout_.size(0);
  check(fn, "dh_n", dh_n, dh_n, {N, H});
  check(fn, "dout", dout_, dh_n, {S, H});
  check(fn, "gates", gates_, dh_n, {S, 3 * H});
  check(fn, "xhat_i", xhat_i_, dh_n, {S, 3 * H});
  check(fn, "rstd_i", rstd_i_, dh_n, {S, 1});
  check(fn, "xhat", xhat_, dh_n, {S, 3 * H});
  check(fn, "rstd", rstd_, dh_n, {S, 2});
  check(fn, "hprev", hprev_, dh_n, {S, H});
  check(fn, "w_hh", w_hh_, dh_n, {3 * H, H});
  check(fn, "ln_ih", ln_ih_, dh_n, {3 * H});
  check(fn, "ln_hh", ln_hh_, dh_n, {3 * H});
  if (given(b_hh)) check(fn, "b_hh", *b_hh, dh_n, {3 * H});
  if (given(h_mask_)) check(fn, "h_mask", *h_mask_, dh_n, {N, H});
  if (given(keep_)) check(fn, "keep", *keep_, dh_n, {S, H});
  check_batch_sizes(fn, batch_sizes, N, S);
  const Tensor dout = dout_.contiguous(), gates = gates_.contiguous(), xhat = xhat_.contiguous();
  const Tensor xhat_i = xhat_i_.contiguous(), rstd_i = rstd_i_.contiguous();
  const Tensor rstd = rstd_.contiguous(), hprev = hprev_.contiguous();
  const Tensor w_hh = w_hh_.contiguous(), gam = ln_hh_.contiguous(), gam_i = ln_ih_.contiguous();
  const Tensor mask = contiguous_or_empty(h_mask_), keep = contiguous_or_empty(keep_);
  const Steps steps(batch_sizes);
  auto opt = dout.options();
  Tensor dai = grukit::cached_empty({S, 3 * H}, opt);
  Tensor da = grukit::cached_empty({S, 3 * H}, opt);
  Tensor dh = dh_n.contiguous().clone();  // (N, H)
  Tensor dhm = grukit::cached_empty({N, H}, opt);     // the gradient of hm, when masked (or reset_after=false)
  Tensor drh = grukit::cached_empty({reset_after ? 0 : N, H}, opt);
  Tensor part = grukit::cached_empty({reset_after ? 0 : N, 4}, opt);  // bwd_zn's row sums for bwd_r
  const int64_t pieces = std::max<int64_t>(1, at::get_num_threads());
  Tensor acc = at::zeros({pieces, 4, 3 * H}, opt);  // each piece's column sums (Sums)
  Tensor b = bias_or_zeros(b_hh, 3 * H, dout);
  Tensor w_rz = w_hh.narrow(0, 0, 2 * H), w_n = w_hh.narrow(0, 2 * H, H);  // (2H, H), (H, H)
  const StepGemm gemm_dh(reset_after ? w_hh : w_rz, steps.T(), 0);
  const StepGemm gemm_drh(reset_after ? w_hh.narrow(0, 0, 0) : w_n, steps.T(), 1);
  AT_DISPATCH_FLOATING_TYPES(dout.scalar_type(), "ln_gru_backward", [&] {
    using T = scalar_t;
    for (int64_t q = steps.T() - 1; q >= 0; --q) {
      const int64_t t = reverse ? steps.T() - 1 - q : q, n = steps.size[t], off = steps.offset[t];
      if (n == 0) continue;
      // Rows [lo, hi) of the step, as piece k (split_rows): each row's gradient reads only
      // that row; the gains' column sums go to piece k's accumulators (one piece inside).
      auto step_rows = [&](int64_t k, int64_t lo, int64_t hi) {
        const int64_t m = hi - lo, row = off + lo;
        const bool split = m < n;
        const int64_t inner = split ? 1 : pieces;
        T* acc_p = acc.data_ptr<T>() + (split ? k * 4 * 3 * H : 0);
        const T* g_t = gates.data_ptr<T>() + row * 3 * H;
        const T* x_t = xhat.data_ptr<T>() + row * 3 * H;
        const T* y_t = xhat_i.data_ptr<T>() + row * 3 * H;
        const T* rs_t = rstd.data_ptr<T>() + row * 2;
        const T* rsi_t = rstd_i.data_ptr<T>() + row;
        const T* hp_t = hprev.data_ptr<T>() + row * H;
        const T* dout_t = dout.data_ptr<T>() + row * H;
        const T* keep_t = ptr_or_null<T>(keep, row * H);
        const T* mask_p = ptr_or_null<T>(mask, lo * H);
        T* dai_t = dai.data_ptr<T>() + row * 3 * H;
        T* da_t = da.data_ptr<T>() + row * 3 * H;
        T* dh_p = dh.data_ptr<T>() + lo * H;
        T* dhm_p = dhm.data_ptr<T>() + lo * H;
        Tensor dav = da.narrow(0, row, m);  // (m, 3H)
        Tensor dhv = dh.narrow(0, lo, m), dhmv = dhm.narrow(0, lo, m);
        if (reset_after) {
          bwd_reset_after<T>(m, H, inner, dout_t, dh_p, g_t, y_t, rsi_t, x_t, rs_t, hp_t, keep_t,
                             gam_i.data_ptr<T>(), gam.data_ptr<T>(), b.data_ptr<T>(), dai_t,
                             da_t, acc_p);
          if (mask.defined()) {
            gemm_dh(dav, dhmv, false);  // (m, 3H) (3H, H)
            add_masked<T>(m, H, dhm_p, mask_p, dh_p);
          } else {
            gemm_dh(dav, dhv, true);
          }
        } else {
          T* part_p = part.data_ptr<T>() + lo * 4;
          bwd_zn<T>(m, H, inner, dout_t, dh_p, g_t, y_t, x_t, rs_t, hp_t, keep_t,
                    gam_i.data_ptr<T>(), gam.data_ptr<T>(), dai_t, da_t, part_p, acc_p);
          Tensor drhv = drh.narrow(0, lo, m);
          gemm_drh(dav.narrow(1, 2 * H, H), drhv, false);  // da_n' W_hn
          // The gradient of hm: into dh directly without a mask (dh holds d z' already).
          Tensor& target = mask.defined() ? dhmv : dhv;
          if (mask.defined()) dhmv.zero_();
          bwd_r<T>(m, H, inner, drh.data_ptr<T>() + lo * H, g_t, y_t, rsi_t, x_t, rs_t, hp_t,
                   mask_p, gam_i.data_ptr<T>(), gam.data_ptr<T>(), part_p, target.data_ptr<T>(),
                   dai_t, da_t, acc_p);
          gemm_dh(dav.narrow(1, 0, 2 * H), target, true);  // + da_rz' W_rz
          if (mask.defined()) add_masked<T>(m, H, dhm_p, mask_p, dh_p);
        }
      };
      split_rows_if_packed(gemm_dh, n, w_hh.nbytes(), step_rows);
    }
  });
  // The pieces' sums in a fixed order; dgh's r, z columns are dgi's (all of dgh without
  // reset_after), so b_hh's sums there are b_ih's.
  Tensor sums = acc.sum(0);  // (4, 3H)
  const int64_t shared = reset_after ? 2 * H : 3 * H;
  sums[3].narrow(0, 0, shared).copy_(sums[1].narrow(0, 0, shared));
  return {dai, da, dh, sums};
}
