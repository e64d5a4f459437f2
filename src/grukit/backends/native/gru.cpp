// The serial loops of grukit's fused GRU (grukit/backends/fused.py), compiled for the CPU.
//
// Shapes: S rows of all steps (T·N padded, or sum(batch_sizes) packed), N batch, H hidden.
// Packed data: step t owns rows [off_t, off_t + N_t); rows b >= N_t keep their state.
// Gate order r, z, n (torch's). Element-wise work is vectorised with at::vec::Vectorized,
// whose width is the capability the build defines: build.py reads /proc/cpuinfo and defines
// CPU_CAPABILITY_AVX512 (avx512f/bw/dq/vl + fma), else CPU_CAPABILITY_AVX2 (avx2 + fma),
// else nothing (at::vec's scalar fallback); cpu_capability() reports which.
//
//   forward   a_r = gi_r + gh_r, a_z = gi_z + gh_z            (gh = h W_hhᵀ + b_hh)
//             r = σ(a_r), z = σ(a_z)
//             n = tanh(gi_n + r ⊙ hn), hn = W_hn h + b_hn      (reset_after)
//             n = tanh(gi_n + W_hn (r ⊙ h) + b_hn)             (reset_after = false)
//             h' = n + z ⊙ (h − n)
//   backward  d = dh' (+ dout_t);  da_n = d (1 − z)(1 − n²);  da_z = d (h − n) z (1 − z)
//             reset_after:  da_r = da_n hn r (1 − r);  dgi = [da_r, da_z, da_n],
//                           dgh = [da_r, da_z, da_n r];  dh = d z + dgh W_hh
//             otherwise:    drh = da_n W_hn;  da_r = drh h r (1 − r);  dgi = dgh = [da_r, da_z, da_n]
//                           dh = d z + drh r + [da_r, da_z] [W_hr; W_hz]
//
// Noise (optional, grukit.backends.spec.Noise). Recurrent dropout m (N, H), rows [0, N_t) at
// step t: every product with W_hh reads h ⊙ m (a scratch buffer), so the backward's GEMM
// terms (dgh W_hh, drh r + [da_r, da_z] W_rz) come back multiplied by m, and da_r reads
// h ⊙ m (reset_after = false). Zoneout keep k (S, H), a row per step row: it folds into the
// update gate, z' = z + k (1 − z), h' = n + z' (h − n); the gates keep z itself, and
//           1 − z' = (1 − k)(1 − z):  da_n = d (1 − z')(1 − n²),  da_z = d (h − n)(1 − k) z (1 − z),
//           the direct path dh = d z'. Without noise none of this runs (template flags).

#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include "cache.h"
#include "gemm.h"
#include "gru_gates.h"
#include "loops.h"

#include <type_traits>
#include <vector>

namespace {

using at::Tensor;
using at::vec::Vectorized;
using namespace grukit::loops;  // NOLINT: the shared building blocks (loops.h)
using namespace grukit::gates;  // NOLINT: the forward gates (gru_gates.h)


// Backward element-wise work of one step. d = dh + dout (n, H) is formed here; dh is left
// holding d ⊙ z (the direct path), the GEMM term is added by the caller. reset_after: dgh's
// n columns da_n ⊙ r go to dghn (S rows, H) and the step's dgh rows [da_r, da_z, da_n ⊙ r]
// to the scratch dg (n, 3H), the GEMM operand, which stays in cache from step to step.
// Zoneout (keep, n rows, or unused): the update weight is z' = 1 − (1 − k)(1 − z).
template <typename T, bool Zoneout = false>
void backward_gates(int64_t n, int64_t H, bool reset_after, const T* dout, T* dh, const T* gates,
                    const T* hn, const T* hprev, T* dgi, T* dg, T* dghn,
                    const T* keep = nullptr) {
  using V = Vectorized<T>;
  const V one(T(1));
  rows(n, H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* g_i = gates + i * 3 * H;
      T* dgi_i = dgi + i * 3 * H;
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V d = V::loadu(dh + i * H + j, c) + V::loadu(dout + i * H + j, c);
        V r = V::loadu(g_i + j, c), z = V::loadu(g_i + H + j, c);
        V nn = V::loadu(g_i + 2 * H + j, c);
        V hp = V::loadu(hprev + i * H + j, c);
        const auto [da_n, da_z, zu] =
            update_backward<T, Zoneout>(d, z, nn, hp, keep, i * H + j, c);
        (d * zu).store(dh + i * H + j, c);
        da_z.store(dgi_i + H + j, c);
        da_n.store(dgi_i + 2 * H + j, c);
        if (reset_after) {
          V da_r = da_n * V::loadu(hn + i * H + j, c) * r * (one - r);
          T* dg_i = dg + i * 3 * H;
          V da_nr = da_n * r;
          da_r.store(dgi_i + j, c);
          da_r.store(dg_i + j, c);
          da_z.store(dg_i + H + j, c);
          da_nr.store(dg_i + 2 * H + j, c);
          da_nr.store(dghn + i * H + j, c);
        }
      });
    }
  });
}

// reset_after = false, after drh = da_n W_hn (n, H): da_r into dgi and dh += drh ⊙ r.
// Masked (recurrent dropout m, n rows): W_hn read r ⊙ h ⊙ m, so da_r = drh (h ⊙ m) r (1 − r),
// and drh ⊙ r goes to dhm (n, H), the gradient of h ⊙ m that the caller completes and masks.
template <typename T, bool Masked = false>
void backward_r(int64_t n, int64_t H, const T* drh, const T* gates, const T* hprev, T* dh,
                T* dgi, const T* mask = nullptr, T* dhm = nullptr) {
  using V = Vectorized<T>;
  const V one(T(1));
  rows(n, H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V r = V::loadu(gates + i * 3 * H + j, c);
        V g = V::loadu(drh + i * H + j, c);
        V hp = V::loadu(hprev + i * H + j, c);
        if constexpr (Masked) {
          hp = hp * V::loadu(mask + i * H + j, c);
          (g * r).store(dhm + i * H + j, c);
        } else {
          (V::loadu(dh + i * H + j, c) + g * r).store(dh + i * H + j, c);
        }
        (g * hp * r * (one - r)).store(dgi + i * 3 * H + j, c);
      });
    }
  });
}

// out = a ⊙ m over n rows of H: the state W_hh multiplies under recurrent dropout.
template <typename T>
void mul_rows(int64_t n, int64_t H, const T* a, const T* m, T* out) {
  using V = Vectorized<T>;
  rows(n, H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        (V::loadu(a + i * H + j, c) * V::loadu(m + i * H + j, c)).store(out + i * H + j, c);
      });
    }
  });
}

// acc += a ⊙ m over n rows of H: the gradient of h ⊙ m back to h.
template <typename T>
void add_masked(int64_t n, int64_t H, const T* a, const T* m, T* acc) {
  using V = Vectorized<T>;
  rows(n, H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V v = V::loadu(acc + i * H + j, c) + V::loadu(a + i * H + j, c) * V::loadu(m + i * H + j, c);
        v.store(acc + i * H + j, c);
      });
    }
  });
}

// The optional noise tensors, checked and made contiguous (undefined when not given).
Tensor noise_arg(const char* fn, const char* name, const c10::optional<Tensor>& t,
                 const Tensor& like, at::IntArrayRef sizes) {
  if (!given(t)) return Tensor();
  check_tensor(fn, name, *t, like, sizes);
  return t->contiguous();
}

}  // namespace

// gi (S, 3H), h0 (N, H), w_hh (3H, H), b_hh (3H,) or None, batch_sizes (T,); copy_operand:
// give at::mm a contiguous W_hhᵀ where the packed kernel is not used (fused.copies_operand);
// h_mask (N, H) recurrent dropout and keep (S, H) zoneout, each or None (header comment).
// → out (S, H), gates (S or 0, 3H) [r, z, n], hn (S or 0, H), h_n (N, H).
std::vector<Tensor> gru_forward(const Tensor& gi_, const Tensor& h0, const Tensor& w_hh_,
                                const c10::optional<Tensor>& b_hh, const Tensor& batch_sizes,
                                bool reverse, bool reset_after, bool save, bool copy_operand,
                                const c10::optional<Tensor>& h_mask_,
                                const c10::optional<Tensor>& keep_) {
  const char* fn = "grukit native gru_forward";
  check_2d(fn, "h0", h0);
  const int64_t N = h0.size(0), H = h0.size(1);
  check_2d(fn, "gi", gi_);
  const int64_t S = gi_.size(0);
  check_tensor(fn, "gi", gi_, h0, {S, 3 * H});
  check_tensor(fn, "w_hh", w_hh_, h0, {3 * H, H});
  if (given(b_hh)) check_tensor(fn, "b_hh", *b_hh, h0, {3 * H});
  check_batch_sizes(fn, batch_sizes, N, S);
  const Tensor h_mask = noise_arg(fn, "h_mask", h_mask_, h0, {N, H});
  const Tensor keep = noise_arg(fn, "keep", keep_, h0, {S, H});
  const bool masked = h_mask.defined(), zoneout = keep.defined();
  const Tensor gi = gi_.contiguous(), w_hh = w_hh_.contiguous();
  const Steps steps(batch_sizes);
  auto opt = gi.options();
  Tensor out = grukit::cached_empty({S, H}, opt);
  Tensor hm = grukit::cached_empty({masked ? N : 0, H}, opt);  // h ⊙ m, what W_hh multiplies
  // reset_after = false needs r, z within a step even for inference: N scratch rows suffice.
  Tensor gates = grukit::cached_empty({save ? S : (reset_after ? 0 : N), 3 * H}, opt);
  Tensor hn = grukit::cached_empty({save && reset_after ? S : 0, H}, opt);
  Tensor h = h0.contiguous().clone();  // (N, H) running state
  Tensor gh = grukit::cached_empty({N, reset_after ? 3 * H : 2 * H}, opt);
  Tensor ghn = grukit::cached_empty({reset_after ? 0 : N, H}, opt);
  Tensor rh = grukit::cached_empty({reset_after ? 0 : N, H}, opt);
  Tensor b = bias_or_zeros(b_hh, 3 * H, gi);
  Tensor w_hh_t = w_hh.t();  // (H, 3H)
  const int64_t first = reset_after ? 3 * H : 2 * H;  // columns of the first product
  if (copy_operand && !StepGemm::packs(w_hh_t.narrow(1, 0, first), steps.T())) {
    w_hh_t = w_hh_t.contiguous();  // at::mm runs the first product: 5-10% faster on a copy
  }
  Tensor w_rz = w_hh_t.narrow(1, 0, 2 * H), w_n = w_hh_t.narrow(1, 2 * H, H);  // (H, 2H), (H, H)
  const StepGemm gemm_h(reset_after ? w_hh_t : w_rz, steps.T(), 0);  // h W_hhᵀ or h W_rzᵀ
  const StepGemm gemm_rh(reset_after ? w_hh_t.narrow(1, 0, 0) : w_n, steps.T(), 1);  // (r⊙h) W_hnᵀ
  AT_DISPATCH_FLOATING_TYPES(gi.scalar_type(), "gru_forward", [&] {
    using T = scalar_t;
    for (int64_t k = 0; k < steps.T(); ++k) {
      const int64_t t = reverse ? steps.T() - 1 - k : k, n = steps.size[t], off = steps.offset[t];
      // Rows [lo, hi) of the step, start to end: every row's product and gates read only
      // that row, so the threads split the rows (split_rows) and sync once per step.
      auto step_rows = [&](int64_t, int64_t lo, int64_t hi) {
        const int64_t m = hi - lo;
        Tensor hv = h.narrow(0, lo, m);
        if (masked) {  // the products read h ⊙ m; the update keeps h
          mul_rows<T>(m, H, h.data_ptr<T>() + lo * H, h_mask.data_ptr<T>() + lo * H,
                      hm.data_ptr<T>() + lo * H);
          hv = hm.narrow(0, lo, m);
        }
        Tensor ghv = gh.narrow(0, lo, m);  // (m, 3H) or (m, 2H)
        gemm_h(hv, ghv, false);
        const T* gi_t = gi.data_ptr<T>() + (off + lo) * 3 * H;
        T* out_t = out.data_ptr<T>() + (off + lo) * H;
        T* h_t = h.data_ptr<T>() + lo * H;
        const T* keep_t = zoneout ? keep.data_ptr<T>() + (off + lo) * H : nullptr;
        T* gh_t = gh.data_ptr<T>() + lo * gh.size(1);
        if (reset_after) {
          T* g = save ? gates.data_ptr<T>() + (off + lo) * 3 * H : nullptr;
          T* hn_t = save ? hn.data_ptr<T>() + (off + lo) * H : nullptr;
          if (zoneout) {
            gates_reset_after<T, true>(m, H, gi_t, gh_t, b.data_ptr<T>(), h_t, out_t, g, hn_t,
                                       keep_t);
          } else {
            gates_reset_after<T>(m, H, gi_t, gh_t, b.data_ptr<T>(), h_t, out_t, g, hn_t);
          }
        } else {
          T* g = gates.data_ptr<T>() + (save ? (off + lo) * 3 * H : lo * 3 * H);
          T* rh_t = rh.data_ptr<T>() + lo * H;
          gates_rz<T>(m, H, gi_t, gh_t, b.data_ptr<T>(),
                      masked ? hm.data_ptr<T>() + lo * H : h_t, g, rh_t);
          Tensor ghnv = ghn.narrow(0, lo, m);  // (m, H)
          gemm_rh(rh.narrow(0, lo, m), ghnv, false);
          T* ghn_t = ghn.data_ptr<T>() + lo * H;
          if (zoneout) {
            gates_n<T, true>(m, H, gi_t, ghn_t, b.data_ptr<T>(), h_t, out_t, g, keep_t);
          } else {
            gates_n<T>(m, H, gi_t, ghn_t, b.data_ptr<T>(), h_t, out_t, g);
          }
        }
      };
      split_rows(n, w_hh.nbytes(), step_rows);
    }
  });
  return {out, gates, hn, h};
}

// dout (S, H), dh_n (N, H), gates (S, 3H), hn (S, H) or empty, hprev (S, H), w_hh (3H, H),
// h_mask (N, H) and keep (S, H) or None: the forward's noise.
// → dgi (S, 3H), dghn (S, H) the n columns of dgh (its r, z columns are dgi's; for
// reset_after = false all of dgh is dgi, and dghn a view of it), dh0 (N, H).
std::vector<Tensor> gru_backward(const Tensor& dout_, const Tensor& dh_n, const Tensor& gates_,
                                 const Tensor& hn_, const Tensor& hprev_, const Tensor& w_hh_,
                                 const Tensor& batch_sizes, bool reverse, bool reset_after,
                                 const c10::optional<Tensor>& h_mask_,
                                 const c10::optional<Tensor>& keep_) {
  const char* fn = "grukit native gru_backward";
  check_2d(fn, "dh_n", dh_n);
  const int64_t N = dh_n.size(0), H = dh_n.size(1);
  check_2d(fn, "dout", dout_);
  const int64_t S = dout_.size(0);
  check_tensor(fn, "dout", dout_, dh_n, {S, H});
  check_tensor(fn, "gates", gates_, dh_n, {S, 3 * H});
  if (reset_after) check_tensor(fn, "hn", hn_, dh_n, {S, H});  // unused otherwise
  check_tensor(fn, "hprev", hprev_, dh_n, {S, H});
  check_tensor(fn, "w_hh", w_hh_, dh_n, {3 * H, H});
  check_batch_sizes(fn, batch_sizes, N, S);
  const Tensor h_mask = noise_arg(fn, "h_mask", h_mask_, dh_n, {N, H});
  const Tensor keep = noise_arg(fn, "keep", keep_, dh_n, {S, H});
  const bool masked = h_mask.defined(), zoneout = keep.defined();
  const Tensor dout = dout_.contiguous(), gates = gates_.contiguous();
  const Tensor hn = reset_after ? hn_.contiguous() : Tensor();
  const Tensor hprev = hprev_.contiguous(), w_hh = w_hh_.contiguous();
  const Steps steps(batch_sizes);
  auto opt = dout.options();
  Tensor dgi = grukit::cached_empty({S, 3 * H}, opt);
  Tensor dghn = reset_after ? grukit::cached_empty({S, H}, opt) : dgi.narrow(1, 2 * H, H);
  Tensor dg = grukit::cached_empty({reset_after ? N : 0, 3 * H}, opt);  // (N, 3H) scratch
  Tensor dh = dh_n.contiguous().clone();  // (N, H)
  Tensor drh = grukit::cached_empty({reset_after ? 0 : N, H}, opt);
  Tensor dhm = grukit::cached_empty({masked ? N : 0, H}, opt);  // (N, H) gradient of h ⊙ m
  Tensor w_rz = w_hh.narrow(0, 0, 2 * H), w_n = w_hh.narrow(0, 2 * H, H);  // (2H, H), (H, H)
  const StepGemm gemm_dh(reset_after ? w_hh : w_rz, steps.T(), 0);  // dgh W_hh or [da_r, da_z] W_rz
  const StepGemm gemm_drh(reset_after ? w_hh.narrow(0, 0, 0) : w_n, steps.T(), 1);  // da_n W_hn
  AT_DISPATCH_FLOATING_TYPES(dout.scalar_type(), "gru_backward", [&] {
    using T = scalar_t;
    for (int64_t k = steps.T() - 1; k >= 0; --k) {  // the forward pass's order, reversed
      const int64_t t = reverse ? steps.T() - 1 - k : k, n = steps.size[t], off = steps.offset[t];
      // Rows [lo, hi) of the step (each row's gradient reads only that row: split_rows).
      auto step_rows = [&](int64_t, int64_t lo, int64_t hi) {
        const int64_t m = hi - lo, row = off + lo;
        T* dgi_t = dgi.data_ptr<T>() + row * 3 * H;
        const T* g_t = gates.data_ptr<T>() + row * 3 * H;
        const T* hp_t = hprev.data_ptr<T>() + row * H;
        const T* dout_t = dout.data_ptr<T>() + row * H;
        const T* hn_t = reset_after ? hn.data_ptr<T>() + row * H : nullptr;
        T* dg_p = reset_after ? dg.data_ptr<T>() + lo * 3 * H : nullptr;
        T* dghn_t = reset_after ? dghn.data_ptr<T>() + row * H : nullptr;
        T* dh_t = dh.data_ptr<T>() + lo * H;
        if (zoneout) {
          backward_gates<T, true>(m, H, reset_after, dout_t, dh_t, g_t, hn_t, hp_t, dgi_t, dg_p,
                                  dghn_t, keep.data_ptr<T>() + row * H);
        } else {
          backward_gates<T>(m, H, reset_after, dout_t, dh_t, g_t, hn_t, hp_t, dgi_t, dg_p,
                            dghn_t);
        }
        // dh holds the direct path d z'; the products' terms are the gradient of h ⊙ m,
        // accumulated into dh itself, or into dhm and then masked.
        Tensor dhv = dh.narrow(0, lo, m);
        Tensor dhmv = masked ? dhm.narrow(0, lo, m) : dhv;
        if (reset_after) {
          gemm_dh(dg.narrow(0, lo, m), dhmv, !masked);  // (m, 3H) (3H, H)
        } else {
          Tensor dgv = dgi.narrow(0, row, m);  // (m, 3H)
          Tensor drhv = drh.narrow(0, lo, m);  // (m, H)
          gemm_drh(dgv.narrow(1, 2 * H, H), drhv, false);
          T* drh_t = drh.data_ptr<T>() + lo * H;
          if (masked) {
            backward_r<T, true>(m, H, drh_t, g_t, hp_t, dh_t, dgi_t,
                                h_mask.data_ptr<T>() + lo * H, dhm.data_ptr<T>() + lo * H);
          } else {
            backward_r<T>(m, H, drh_t, g_t, hp_t, dh_t, dgi_t);
          }
          gemm_dh(dgv.narrow(1, 0, 2 * H), dhmv, true);
        }
        if (masked) {
          add_masked<T>(m, H, dhm.data_ptr<T>() + lo * H, h_mask.data_ptr<T>() + lo * H, dh_t);
        }
      };
      split_rows_if_packed(gemm_dh, n, w_hh.nbytes(), step_rows);
    }
  });
  return {dgi, dghn, dh};
}

// A bidirectional layer's two directions at once: first() on one thread, second() on the
// other (on_threads over the pair; inside it every nested at::parallel_for, the packed
// kernel's and split_rows' included, runs inline, and MKL runs single-threaded in the
// parallel region). Each direction's arithmetic is the same as alone: the results are
// equal to two separate calls. With one thread the two run one after the other.
template <typename First, typename Second>
std::vector<std::vector<Tensor>> both(const First& first, const Second& second) {
  std::vector<Tensor> a, b;
  on_threads(2, [&](int64_t k) {
    if (k == 0) a = first();
    else b = second();
  });
  return {a, b};
}

using Args = std::vector<c10::optional<Tensor>>;

Tensor arg(const Args& a, size_t i) {
  TORCH_CHECK(i < a.size() && given(a[i]), "grukit native: expected a tensor at argument ", i);
  return *a[i];
}

// gru_forward for both directions: f and b = [gi, h0, w_hh, b_hh, h_mask, keep] (None where
// gru_forward takes None); b runs reversed. → [forward's result, backward direction's].
std::vector<std::vector<Tensor>> gru_forward_both(const Args& f, const Args& b,
                                                  const Tensor& batch_sizes, bool reset_after,
                                                  bool save, bool copy_operand) {
  TORCH_CHECK(f.size() == 6 && b.size() == 6, "grukit native gru_forward_both: expected 6 "
              "arguments per direction, got ", f.size(), " and ", b.size());
  auto run = [&](const Args& a, bool reverse) {
    return gru_forward(arg(a, 0), arg(a, 1), arg(a, 2), a[3], batch_sizes, reverse, reset_after,
                       save, copy_operand, a[4], a[5]);
  };
  return both([&] { return run(f, false); }, [&] { return run(b, true); });
}

// gru_backward for both directions: f and b = [dout, dh_n, gates, hn, hprev, w_hh, h_mask,
// keep]; b ran reversed. → [forward direction's dgi, dghn, dh0; backward direction's].
std::vector<std::vector<Tensor>> gru_backward_both(const Args& f, const Args& b,
                                                   const Tensor& batch_sizes, bool reset_after) {
  TORCH_CHECK(f.size() == 8 && b.size() == 8, "grukit native gru_backward_both: expected 8 "
              "arguments per direction, got ", f.size(), " and ", b.size());
  auto run = [&](const Args& a, bool reverse) {
    return gru_backward(arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5),
                        batch_sizes, reverse, reset_after, a[6], a[7]);
  };
  return both([&] { return run(f, false); }, [&] { return run(b, true); });
}

#include "layernorm_gru.h"  // the LayerNormGRU loops (layernorm_gru.cpp), bound below
#include "step.h"  // the streaming step (step.cpp), bound below
#include "mingru.h"  // MinGRU's recurrence (mingru.cpp), bound below
#include "peak.h"  // the multiply-add peak (peak.cpp), bound below

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("ln_gru_forward", &ln_gru_forward, "LayerNormGRU forward loop (layernorm_loops.LNLoops)");
  m.def("ln_gru_backward", &ln_gru_backward, "LayerNormGRU BPTT loop (layernorm_loops.LNLoops)");
  namespace py = pybind11;
  m.def("gru_forward", &gru_forward, "GRU forward loop (grukit.backends.fused.Loops)",
        py::arg("gi"), py::arg("h0"), py::arg("w_hh"), py::arg("b_hh"), py::arg("batch_sizes"),
        py::arg("reverse"), py::arg("reset_after"), py::arg("save"), py::arg("copy_operand"),
        py::arg("h_mask") = py::none(), py::arg("keep") = py::none());
  m.def("gru_backward", &gru_backward, "GRU BPTT loop (grukit.backends.fused.Loops)",
        py::arg("dout"), py::arg("dh_n"), py::arg("gates"), py::arg("hn"), py::arg("hprev"),
        py::arg("w_hh"), py::arg("batch_sizes"), py::arg("reverse"), py::arg("reset_after"),
        py::arg("h_mask") = py::none(), py::arg("keep") = py::none());
  // The pair releases the GIL while its two threads run (nothing in them touches Python).
  m.def("gru_forward_both", &gru_forward_both,
        "both directions' forward loops at once (grukit.backends.native.both)",
        py::call_guard<py::gil_scoped_release>());
  m.def("gru_backward_both", &gru_backward_both,
        "both directions' BPTT loops at once (grukit.backends.native.both)",
        py::call_guard<py::gil_scoped_release>());
  m.def("gru_cell", &gru_cell, "one GRUCell step, no autograd");
  m.def("gru_step", &gru_step, "a GRU layer's one-step call, every layer and direction",
        py::arg("x"), py::arg("h0"), py::arg("weights"), py::arg("hidden_size"),
        py::arg("num_layers"), py::arg("bidirectional"), py::arg("bias"),
        py::arg("reset_after"), py::arg("batch_first"));
  m.def("cached_empty",
        [](const Tensor& like, std::vector<int64_t> sizes) {
          return grukit::cached_empty(sizes, like.options());
        },
        "an empty tensor of like's dtype with its storage from the block cache (cache.h)",
        py::arg("like"), py::arg("sizes"));
  m.def("cache_stats", &grukit::cache_stats,
        "the block cache's [cached bytes, cached blocks, bytes in use, cap in bytes]");
  m.attr("cache_min_bytes") = static_cast<int64_t>(grukit::kCacheMinBytes);
  m.def("cache_clear", &grukit::cache_clear, "frees the block cache's cached blocks");
  m.def("cache_set_limit", &grukit::cache_set_limit,
        "sets the cap on the block cache's cached bytes (0: off); returns the old cap",
        py::arg("bytes"));
  m.def("mingru_forward", &mingru_forward, "MinGRU recurrence (grukit.backends.mingru_ops)",
        py::arg("gi"), py::arg("h0"));
  m.def("mingru_backward", &mingru_backward, "MinGRU reverse recurrence (mingru_ops)",
        py::arg("dout"), py::arg("gi"), py::arg("h0"), py::arg("out"));
  m.def("cpu_capability", [] {
#if defined(CPU_CAPABILITY_AVX512)
    return std::string("AVX512");
#elif defined(CPU_CAPABILITY_AVX2)
    return std::string("AVX2");
#else
    return std::string("DEFAULT");
#endif
  }, "the at::vec instruction set this build was compiled for");
  m.def("fma_chains", &fma_chains,
        "(seconds, threads, floats per vector, checksum) of kChains multiply-add chains of "
        "`iterations` steps on every thread (peak.h): the build's multiply-add peak",
        py::arg("iterations"), py::arg("b"), py::arg("c"));
  m.attr("fma_chains_per_thread") = kChains;
  m.def("packed_gemm", [] { return bool(GRUKIT_PACKED_GEMM); },
        "whether float32 per-step products use grukit's packed kernel (gemm.h), not at::mm");
}
