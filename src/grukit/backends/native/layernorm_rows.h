// The LayerNormGRU's per-step row work (layernorm_gru.cpp's loops call these once per step).
//
// Pointers are row 0 of the step's n rows. Both normalisations run here, row by row: the
// input side's x̂_i = (a_i − μ_i) rstd_i of the raw projection a_i = x W_ihᵀ (over 3H) and
// the recurrent side's x̂ of a = hm W_hhᵀ (over 3H; with reset_after = false over 2H for r, z
// and over H for n). The backward turns the gate gradients into the gradients of both raw
// products in place, LN'(g) = rstd (g − mean g − x̂ mean(g x̂)), with the two row sums taken
// in the pass that makes g, and adds the gains' and biases' column sums to a piece's
// accumulators (``Sums``): no tensor of all S rows is made or read again after the loop.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include "loops.h"

#include <algorithm>
#include <cmath>

namespace grukit::ln {

using at::vec::Vectorized;
using namespace grukit::loops;  // NOLINT: the shared building blocks (loops.h)

constexpr double kEps = 1e-5;  // grukit.functional.LN_EPS

// μ and rstd = 1 / sqrt(σ² + ε) of a row a (K), biased σ², in one pass over the row shifted
// by its first value k = a_0 (the "shifted data" algorithm): with d = a − k, μ = k + mean d
// and σ² = mean d² − (mean d)². The shift keeps mean d² within a few σ² for any offset of
// the row (no cancellation of a large μ² as in mean a² − μ²), so the result is the two-pass
// one up to rounding; one read of the row instead of two.
template <typename T>
inline void row_stats(const T* a, int64_t K, T& mu, T& rs) {
  using V = Vectorized<T>;
  const T k = a[0];
  const V vk(k);
  V s(T(0)), q(T(0));
  vec_cols<T>(K, [&](int64_t j, int64_t c) {
    V d = V::loadu(a + j, c) - vk;
    if (c < V::size()) d = V::set(V(T(0)), d, c);  // the lanes past the row's end
    s = s + d;
    q = at::vec::fmadd(d, d, q);
  });
  const T md = hsum(s) / T(K);
  mu = k + md;
  rs = T(1) / std::sqrt(std::max(hsum(q) / T(K) - md * md, T(0)) + T(kEps));
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

// Rows [0, n) in at most `pieces` contiguous pieces, f(piece, lo, hi), in parallel when there
// is enough work (as loops.h's rows()). A piece owns its accumulators, so no two threads share
// one, and which thread ran a piece does not change the sums.
template <typename F>
inline void row_pieces(int64_t n, int64_t W, int64_t pieces, const F& f) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(W, 1));
  const int64_t p = std::min(pieces, (n + grain - 1) / grain);
  if (n * W < 65536 || p <= 1) {
    f(0, 0, n);
    return;
  }
  const int64_t len = (n + p - 1) / p;
  at::parallel_for(0, p, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) f(k, std::min(n, k * len), std::min(n, (k + 1) * len));
  });
}

// The column sums of one piece, each (3H): Σ dgi x̂_i, Σ dgi, Σ dgh x̂_h, Σ dgh (the gradients
// of γ_ih, b_ih, γ_hh, b_hh); piece k's start at base + 4·3H·k.
template <typename T>
struct Sums {
  T *gi, *bi, *gh, *bh;
  Sums(T* base, int64_t H, int64_t k)
      : gi(base + 12 * H * k), bi(gi + 3 * H), gh(bi + 3 * H), bh(gh + 3 * H) {}
};

// acc[j] += v (+ v x), count lanes.
template <typename T>
inline void add_to(T* acc, const Vectorized<T>& v, int64_t c) {
  (Vectorized<T>::loadu(acc, c) + v).store(acc, c);
}

// ----------------------------------------------------------------------------------------------
// Forward. ai (n, 3H) the raw projections, overwritten by x̂_i when xi_save; gam_i, b_i, gam, b
// (3H,); keep (n, H) or null; gates, xhat (n, 3H) and rstd (n, 2), rstd_i (n, 1) or null.

// Inference (nothing saved): the input side of every row at once, before the serial loop,
// gi = x̂_i γ_ih + b_ih over all S rows in place of a_i — in parallel over the rows, where
// inside the loop it would run on one thread beside the step's GEMM. The loop's kernels then
// read gi as it is (their Ready = true).
template <typename T>
void input_rows(int64_t S, int64_t H, T* ai, const T* gam_i, const T* b_i) {
  using V = Vectorized<T>;
  rows(S, 3 * H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T* a = ai + i * 3 * H;
      T mi, ri;
      row_stats(a, 3 * H, mi, ri);
      const V vmi(mi), vri(ri);
      vec_cols<T>(3 * H, [&](int64_t j, int64_t c) {
        ((V::loadu(a + j, c) - vmi) * vri * V::loadu(gam_i + j, c) + V::loadu(b_i + j, c))
            .store(a + j, c);
      });
    }
  });
}

// The input side's gate pre-activation of row ai_i at columns [j, j + c): gi itself when
// Ready (input_rows ran), else x̂_i γ_ih + b_ih with x̂_i = (a_i − μ_i) rstd_i, x̂_i into y.
template <bool Ready, typename T>
inline Vectorized<T> input_gate(const T* ai_i, const T* gam_i, const T* b_i, int64_t j,
                                int64_t c, const Vectorized<T>& vmi, const Vectorized<T>& vri,
                                Vectorized<T>& y) {
  using V = Vectorized<T>;
  if constexpr (Ready) {
    return V::loadu(ai_i + j, c);
  } else {
    y = (V::loadu(ai_i + j, c) - vmi) * vri;
    return y * V::loadu(gam_i + j, c) + V::loadu(b_i + j, c);
  }
}

// reset_after: both normalisations, the gates and h' in one pass.
template <bool Ready, typename T>
void fwd_reset_after(int64_t n, int64_t H, T* ai, const T* gam_i, const T* b_i, const T* a,
                     const T* gam, const T* b, const T* keep, T* h, T* out, T* gates, T* xhat,
                     T* rstd, T* rstd_i) {
  using V = Vectorized<T>;
  rows(n, 6 * H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T* ai_i = ai + i * 3 * H;
      const T* a_i = a + i * 3 * H;
      T mi = T(0), ri = T(0), mu, rs;
      if constexpr (!Ready) row_stats(ai_i, 3 * H, mi, ri);
      row_stats(a_i, 3 * H, mu, rs);
      const V vmi(mi), vri(ri), vmu(mu), vrs(rs);
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V yr, yz, yn;  // x̂_i (not Ready)
        V gr = input_gate<Ready>(ai_i, gam_i, b_i, j, c, vmi, vri, yr);
        V gz = input_gate<Ready>(ai_i, gam_i, b_i, H + j, c, vmi, vri, yz);
        V gn = input_gate<Ready>(ai_i, gam_i, b_i, 2 * H + j, c, vmi, vri, yn);
        V xr = (V::loadu(a_i + j, c) - vmu) * vrs;  // x̂_h
        V xz = (V::loadu(a_i + H + j, c) - vmu) * vrs;
        V xn = (V::loadu(a_i + 2 * H + j, c) - vmu) * vrs;
        V r = vsigmoid(gr + (xr * V::loadu(gam + j, c) + V::loadu(b + j, c)));
        V z = vsigmoid(gz + (xz * V::loadu(gam + H + j, c) + V::loadu(b + H + j, c)));
        V ghn = xn * V::loadu(gam + 2 * H + j, c) + V::loadu(b + 2 * H + j, c);
        V nn = vtanh(gn + r * ghn);
        V hp = V::loadu(h + i * H + j, c);
        V hnew = nn + z * (hp - nn);
        if (keep) hnew = hnew + V::loadu(keep + i * H + j, c) * (hp - hnew);
        hnew.store(h + i * H + j, c);
        hnew.store(out + i * H + j, c);
        if constexpr (!Ready) {
          if (gates) {
            T* g_i = gates + i * 3 * H;
            T* x_i = xhat + i * 3 * H;
            r.store(g_i + j, c), z.store(g_i + H + j, c), nn.store(g_i + 2 * H + j, c);
            xr.store(x_i + j, c), xz.store(x_i + H + j, c), xn.store(x_i + 2 * H + j, c);
            yr.store(ai_i + j, c), yz.store(ai_i + H + j, c), yn.store(ai_i + 2 * H + j, c);
          }
        }
      });
      if (rstd) rstd[i * 2] = rs, rstd[i * 2 + 1] = T(0), rstd_i[i] = ri;
    }
  });
}

// reset_after = false, first half: r, z into gates (n, 3H) and rh = r ⊙ hm (n, H) from the
// recurrent product a (n, 2H) normalised over 2H; the input rows' μ_i, rstd_i into istat (n, 2)
// for fwd_n; x̂_i's r, z columns in place when saving.
template <bool Ready, typename T>
void fwd_rz(int64_t n, int64_t H, T* ai, const T* gam_i, const T* b_i, const T* a, const T* gam,
            const T* b, const T* hm, T* gates, T* rh, T* xhat, T* rstd, T* istat) {
  using V = Vectorized<T>;
  rows(n, 5 * H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T* ai_i = ai + i * 3 * H;
      const T* a_i = a + i * 2 * H;
      T mi = T(0), ri = T(0), mu, rs;
      if constexpr (!Ready) row_stats(ai_i, 3 * H, mi, ri);
      row_stats(a_i, 2 * H, mu, rs);
      istat[i * 2] = mi, istat[i * 2 + 1] = ri;
      const V vmi(mi), vri(ri), vmu(mu), vrs(rs);
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V yr, yz;
        V gr = input_gate<Ready>(ai_i, gam_i, b_i, j, c, vmi, vri, yr);
        V gz = input_gate<Ready>(ai_i, gam_i, b_i, H + j, c, vmi, vri, yz);
        V xr = (V::loadu(a_i + j, c) - vmu) * vrs;
        V xz = (V::loadu(a_i + H + j, c) - vmu) * vrs;
        V r = vsigmoid(gr + (xr * V::loadu(gam + j, c) + V::loadu(b + j, c)));
        V z = vsigmoid(gz + (xz * V::loadu(gam + H + j, c) + V::loadu(b + H + j, c)));
        (r * V::loadu(hm + i * H + j, c)).store(rh + i * H + j, c);
        r.store(gates + i * 3 * H + j, c);
        z.store(gates + i * 3 * H + H + j, c);
        if constexpr (!Ready) {
          if (xhat) {
            xr.store(xhat + i * 3 * H + j, c), xz.store(xhat + i * 3 * H + H + j, c);
            yr.store(ai_i + j, c), yz.store(ai_i + H + j, c);
          }
        }
      });
      if (rstd) rstd[i * 2] = rs;
    }
  });
}

// reset_after = false, second half: a_n (n, H) normalised over H, n and h'.
template <bool Ready, typename T>
void fwd_n(int64_t n, int64_t H, T* ai, const T* gam_i, const T* b_i, const T* istat, const T* a,
           const T* gam, const T* b, const T* keep, T* h, T* out, T* gates, T* xhat, T* rstd,
           T* rstd_i) {
  using V = Vectorized<T>;
  rows(n, 2 * H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* a_i = a + i * H;
      T* ain = ai + i * 3 * H + 2 * H;
      T mu, rs;
      row_stats(a_i, H, mu, rs);
      const V vmu(mu), vrs(rs), vmi(istat[i * 2]), vri(istat[i * 2 + 1]);
      T* g_i = gates + i * 3 * H;
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V yn;
        V gn = input_gate<Ready>(ain, gam_i + 2 * H, b_i + 2 * H, j, c, vmi, vri, yn);
        V xn = (V::loadu(a_i + j, c) - vmu) * vrs;
        V nn = vtanh(gn + (xn * V::loadu(gam + 2 * H + j, c) + V::loadu(b + 2 * H + j, c)));
        V z = V::loadu(g_i + H + j, c);
        V hp = V::loadu(h + i * H + j, c);
        V hnew = nn + z * (hp - nn);
        if (keep) hnew = hnew + V::loadu(keep + i * H + j, c) * (hp - hnew);
        nn.store(g_i + 2 * H + j, c);
        hnew.store(h + i * H + j, c);
        hnew.store(out + i * H + j, c);
        if constexpr (!Ready) {
          if (xhat) xn.store(xhat + i * 3 * H + 2 * H + j, c), yn.store(ain + j, c);
        }
      });
      if (rstd) rstd[i * 2 + 1] = rs, rstd_i[i] = istat[i * 2 + 1];
    }
  });
}

// ----------------------------------------------------------------------------------------------
// Backward. xi, xh (n, 3H) the saved x̂_i, x̂; rs_i (n, 1), rs (n, 2); gi_ = γ_ih, gam = γ_hh,
// b = b_hh (3H,); dai, da (n, 3H) the results: the gradients of the raw products a_i and a.

// reset_after: the whole step's element-wise work up to da's GEMM. Writes dh = d z' (the
// direct path), dai = LN'(dgi γ_ih) and da = LN'(dgh γ_hh) over 3H, and the column sums.
template <typename T>
void bwd_reset_after(int64_t n, int64_t H, int64_t pieces, const T* dout, T* dh, const T* gates,
                     const T* xi, const T* rs_i, const T* xh, const T* rs, const T* hprev,
                     const T* keep, const T* gam_i, const T* gam, const T* b, T* dai, T* da,
                     T* acc) {
  using V = Vectorized<T>;
  const V one(T(1));
  row_pieces(n, 6 * H, pieces, [&](int64_t k, int64_t lo, int64_t hi) {
    const Sums<T> s(acc, H, k);
    for (int64_t i = lo; i < hi; ++i) {
      const T* g_i = gates + i * 3 * H;
      const T* x_i = xh + i * 3 * H;
      const T* y_i = xi + i * 3 * H;
      T* dai_i = dai + i * 3 * H;
      T* da_i = da + i * 3 * H;
      V sg(T(0)), sgx(T(0)), si(T(0)), six(T(0));
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V d = V::loadu(dh + i * H + j, c) + V::loadu(dout + i * H + j, c);
        V r = V::loadu(g_i + j, c), z = V::loadu(g_i + H + j, c);
        V nn = V::loadu(g_i + 2 * H + j, c);
        V hp = V::loadu(hprev + i * H + j, c);
        const auto [da_n, da_z, zu] =
            keep ? update_backward<T, true>(d, z, nn, hp, keep, i * H + j, c)
                 : update_backward<T, false>(d, z, nn, hp, keep, i * H + j, c);
        (d * zu).store(dh + i * H + j, c);
        V xr = V::loadu(x_i + j, c), xz = V::loadu(x_i + H + j, c);
        V xn = V::loadu(x_i + 2 * H + j, c);
        V ghn = xn * V::loadu(gam + 2 * H + j, c) + V::loadu(b + 2 * H + j, c);
        V da_r = da_n * ghn * r * (one - r);
        V da_nr = da_n * r;  // dgh = [da_r, da_z, da_n r], dgi = [da_r, da_z, da_n]
        V gr = da_r * V::loadu(gam + j, c), gz = da_z * V::loadu(gam + H + j, c);
        V gn = da_nr * V::loadu(gam + 2 * H + j, c);
        gr.store(da_i + j, c), gz.store(da_i + H + j, c), gn.store(da_i + 2 * H + j, c);
        sg = sg + gr + gz + gn;
        sgx = sgx + gr * xr + gz * xz + gn * xn;
        V yr = V::loadu(y_i + j, c), yz = V::loadu(y_i + H + j, c);
        V yn = V::loadu(y_i + 2 * H + j, c);
        V fr = da_r * V::loadu(gam_i + j, c), fz = da_z * V::loadu(gam_i + H + j, c);
        V fn = da_n * V::loadu(gam_i + 2 * H + j, c);
        fr.store(dai_i + j, c), fz.store(dai_i + H + j, c), fn.store(dai_i + 2 * H + j, c);
        si = si + fr + fz + fn;
        six = six + fr * yr + fz * yz + fn * yn;
        add_to(s.gi + j, da_r * yr, c), add_to(s.gi + H + j, da_z * yz, c);
        add_to(s.gi + 2 * H + j, da_n * yn, c);
        add_to(s.bi + j, da_r, c), add_to(s.bi + H + j, da_z, c), add_to(s.bi + 2 * H + j, da_n, c);
        add_to(s.gh + j, da_r * xr, c), add_to(s.gh + H + j, da_z * xz, c);
        add_to(s.gh + 2 * H + j, da_nr * xn, c);
        add_to(s.bh + 2 * H + j, da_nr, c);  // its r, z columns are bi's (filled after the loop)
      });
      norm_backward_row(da_i, x_i, 3 * H, hsum(sg), hsum(sgx), rs[i * 2]);
      norm_backward_row(dai_i, y_i, 3 * H, hsum(si), hsum(six), rs_i[i]);
    }
  });
}

// reset_after = false, first half: dh = d z', da's n columns = LN'(da_n γ_n) over H, the z and
// n columns of dai's and da's g (γ times dgi; the r columns come with bwd_rz) and their row sums
// so far into part (n, 4), and the z, n column sums. Here dgh = dgi.
template <typename T>
void bwd_zn(int64_t n, int64_t H, int64_t pieces, const T* dout, T* dh, const T* gates,
            const T* xi, const T* xh, const T* rs, const T* hprev, const T* keep, const T* gam_i,
            const T* gam, T* dai, T* da, T* part, T* acc) {
  using V = Vectorized<T>;
  row_pieces(n, 4 * H, pieces, [&](int64_t k, int64_t lo, int64_t hi) {
    const Sums<T> s(acc, H, k);
    for (int64_t i = lo; i < hi; ++i) {
      const T* g_i = gates + i * 3 * H;
      const T* x_i = xh + i * 3 * H;
      const T* y_i = xi + i * 3 * H;
      T* dai_i = dai + i * 3 * H;
      T* da_i = da + i * 3 * H;
      V sn(T(0)), snx(T(0)), sz(T(0)), szx(T(0)), si(T(0)), six(T(0));
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V d = V::loadu(dh + i * H + j, c) + V::loadu(dout + i * H + j, c);
        V z = V::loadu(g_i + H + j, c), nn = V::loadu(g_i + 2 * H + j, c);
        V hp = V::loadu(hprev + i * H + j, c);
        const auto [da_n, da_z, zu] =
            keep ? update_backward<T, true>(d, z, nn, hp, keep, i * H + j, c)
                 : update_backward<T, false>(d, z, nn, hp, keep, i * H + j, c);
        (d * zu).store(dh + i * H + j, c);
        V xz = V::loadu(x_i + H + j, c), xn = V::loadu(x_i + 2 * H + j, c);
        V gz = da_z * V::loadu(gam + H + j, c), gn = da_n * V::loadu(gam + 2 * H + j, c);
        gz.store(da_i + H + j, c), gn.store(da_i + 2 * H + j, c);
        sn = sn + gn, snx = snx + gn * xn;
        sz = sz + gz, szx = szx + gz * xz;
        V yz = V::loadu(y_i + H + j, c), yn = V::loadu(y_i + 2 * H + j, c);
        V fz = da_z * V::loadu(gam_i + H + j, c), fn = da_n * V::loadu(gam_i + 2 * H + j, c);
        fz.store(dai_i + H + j, c), fn.store(dai_i + 2 * H + j, c);
        si = si + fz + fn, six = six + fz * yz + fn * yn;
        add_to(s.gi + H + j, da_z * yz, c), add_to(s.gi + 2 * H + j, da_n * yn, c);
        add_to(s.bi + H + j, da_z, c), add_to(s.bi + 2 * H + j, da_n, c);
        add_to(s.gh + H + j, da_z * xz, c), add_to(s.gh + 2 * H + j, da_n * xn, c);
      });
      norm_backward_row(da_i + 2 * H, x_i + 2 * H, H, hsum(sn), hsum(snx), rs[i * 2 + 1]);
      T* p = part + i * 4;
      p[0] = hsum(sz), p[1] = hsum(szx), p[2] = hsum(si), p[3] = hsum(six);
    }
  });
}

// reset_after = false, after drh = da_n' W_hn (n, H): da_r, drh ⊙ r added to dhm, da's r, z
// columns = LN'([da_r, da_z] γ_rz) over 2H, dai = LN'(dgi γ_ih) over 3H, the r column sums.
template <typename T>
void bwd_r(int64_t n, int64_t H, int64_t pieces, const T* drh, const T* gates, const T* xi,
           const T* rs_i, const T* xh, const T* rs, const T* hprev, const T* mask,
           const T* gam_i, const T* gam, const T* part, T* dhm, T* dai, T* da, T* acc) {
  using V = Vectorized<T>;
  const V one(T(1));
  row_pieces(n, 3 * H, pieces, [&](int64_t k, int64_t lo, int64_t hi) {
    const Sums<T> s(acc, H, k);
    for (int64_t i = lo; i < hi; ++i) {
      const T* x_i = xh + i * 3 * H;
      const T* y_i = xi + i * 3 * H;
      T* dai_i = dai + i * 3 * H;
      T* da_i = da + i * 3 * H;
      V sg(T(0)), sgx(T(0)), si(T(0)), six(T(0));
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V r = V::loadu(gates + i * 3 * H + j, c);
        V g = V::loadu(drh + i * H + j, c);
        V hm = V::loadu(hprev + i * H + j, c);
        if (mask) hm = hm * V::loadu(mask + i * H + j, c);
        V da_r = g * hm * r * (one - r);
        (V::loadu(dhm + i * H + j, c) + g * r).store(dhm + i * H + j, c);
        V xr = V::loadu(x_i + j, c), yr = V::loadu(y_i + j, c);
        V gr = da_r * V::loadu(gam + j, c), fr = da_r * V::loadu(gam_i + j, c);
        gr.store(da_i + j, c), fr.store(dai_i + j, c);
        sg = sg + gr, sgx = sgx + gr * xr;
        si = si + fr, six = six + fr * yr;
        add_to(s.gi + j, da_r * yr, c), add_to(s.bi + j, da_r, c), add_to(s.gh + j, da_r * xr, c);
      });
      const T* p = part + i * 4;
      norm_backward_row(da_i, x_i, 2 * H, hsum(sg) + p[0], hsum(sgx) + p[1], rs[i * 2]);
      norm_backward_row(dai_i, y_i, 3 * H, hsum(si) + p[2], hsum(six) + p[3], rs_i[i]);
    }
  });
}

}  // namespace grukit::ln
