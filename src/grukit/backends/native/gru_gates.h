// The forward gate arithmetic of one GRU step over n rows (the formulas in gru.cpp's header),
// shared by the sequence loops (gru.cpp) and the streaming step (step.cpp).
#pragma once

#include <ATen/cpu/vec/vec.h>

#include "loops.h"

namespace grukit::gates {

using at::vec::Vectorized;
using namespace grukit::loops;  // NOLINT: rows, vec_cols, vsigmoid, vtanh

// Pointers below are row 0 of the step's rows; b is b_hh (3H,) (zeros without bias).

// reset_after: r, z, n and h' from gi (n, 3H) and gh = h W_hhᵀ (n, 3H) in one pass.
// Zoneout (keep, n rows of H, or unused): z' = z + k (1 − z) in h'; gates keep z.
template <typename T, bool Zoneout = false>
void gates_reset_after(int64_t n, int64_t H, const T* gi, const T* gh, const T* b, T* h, T* out,
                       T* gates, T* hn_save, const T* keep = nullptr) {
  using V = Vectorized<T>;
  rows(n, H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* gi_i = gi + i * 3 * H;
      const T* gh_i = gh + i * 3 * H;
      T* h_i = h + i * H;
      T* out_i = out + i * H;
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V r = vsigmoid(V::loadu(gi_i + j, c) + (V::loadu(gh_i + j, c) + V::loadu(b + j, c)));
        V z = vsigmoid(V::loadu(gi_i + H + j, c) +
                       (V::loadu(gh_i + H + j, c) + V::loadu(b + H + j, c)));
        V hn = V::loadu(gh_i + 2 * H + j, c) + V::loadu(b + 2 * H + j, c);
        V nn = vtanh(V::loadu(gi_i + 2 * H + j, c) + r * hn);
        V hp = V::loadu(h_i + j, c);
        V zu = z;  // the update's weight on h: z, or z' with zoneout
        if constexpr (Zoneout) zu = z + V::loadu(keep + i * H + j, c) * (V(T(1)) - z);
        V hnew = nn + zu * (hp - nn);
        hnew.store(h_i + j, c);
        hnew.store(out_i + j, c);
        if (gates) {
          T* g_i = gates + i * 3 * H;
          r.store(g_i + j, c);
          z.store(g_i + H + j, c);
          nn.store(g_i + 2 * H + j, c);
          hn.store(hn_save + i * H + j, c);
        }
      });
    }
  });
}

// reset_after = false, first half: r, z into gates (n, 3H) and r ⊙ h into rh (n, H),
// from gh = h [W_hr; W_hz]ᵀ (n, 2H).
template <typename T>
void gates_rz(int64_t n, int64_t H, const T* gi, const T* gh, const T* b, const T* h, T* gates,
              T* rh) {
  using V = Vectorized<T>;
  rows(n, H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* gi_i = gi + i * 3 * H;
      const T* gh_i = gh + i * 2 * H;
      T* g_i = gates + i * 3 * H;
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V r = vsigmoid(V::loadu(gi_i + j, c) + (V::loadu(gh_i + j, c) + V::loadu(b + j, c)));
        V z = vsigmoid(V::loadu(gi_i + H + j, c) +
                       (V::loadu(gh_i + H + j, c) + V::loadu(b + H + j, c)));
        (r * V::loadu(h + i * H + j, c)).store(rh + i * H + j, c);
        r.store(g_i + j, c);
        z.store(g_i + H + j, c);
      });
    }
  });
}

// reset_after = false, second half: n = tanh(gi_n + ghn + b_hn) and h', ghn = (r ⊙ h) W_hnᵀ.
template <typename T, bool Zoneout = false>
void gates_n(int64_t n, int64_t H, const T* gi, const T* ghn, const T* b, T* h, T* out,
             T* gates, const T* keep = nullptr) {
  using V = Vectorized<T>;
  rows(n, H, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T* g_i = gates + i * 3 * H;
      vec_cols<T>(H, [&](int64_t j, int64_t c) {
        V a = V::loadu(gi + i * 3 * H + 2 * H + j, c) +
              (V::loadu(ghn + i * H + j, c) + V::loadu(b + 2 * H + j, c));
        V nn = vtanh(a);
        V z = V::loadu(g_i + H + j, c);
        if constexpr (Zoneout) z = z + V::loadu(keep + i * H + j, c) * (V(T(1)) - z);
        V hp = V::loadu(h + i * H + j, c);
        V hnew = nn + z * (hp - nn);
        nn.store(g_i + 2 * H + j, c);
        hnew.store(h + i * H + j, c);
        hnew.store(out + i * H + j, c);
      });
    }
  });
}

}  // namespace grukit::gates
