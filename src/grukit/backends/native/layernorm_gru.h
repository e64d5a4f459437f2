// The LayerNormGRU serial loops (layernorm_gru.cpp), bound in gru.cpp's module.
#pragma once

#include <ATen/ATen.h>

#include <vector>

// a_i (S, 3H) the raw input projections x W_ihᵀ (overwritten with x̂_i when save), h0 (N, H),
// w_hh (3H, H), b_ih, b_hh (3H,) or None, ln_ih, ln_hh (3H,), h_mask (N, H) or None,
// keep (S, H) or None, batch_sizes (T,) → out (S, H), h_n (N, H), and (S rows with save, else
// 0) gates (3H), xhat_i (3H), rstd_i (1), xhat (3H), rstd (2).
std::vector<at::Tensor> ln_gru_forward(const at::Tensor& a_i, const at::Tensor& h0,
                                       const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_ih,
                                       const c10::optional<at::Tensor>& b_hh,
                                       const at::Tensor& ln_ih, const at::Tensor& ln_hh,
                                       const c10::optional<at::Tensor>& h_mask,
                                       const c10::optional<at::Tensor>& keep,
                                       const at::Tensor& batch_sizes, bool reverse,
                                       bool reset_after, bool save, bool copy_operand);

// → da_i (S, 3H), da (S, 3H), dh0 (N, H), sums (4, 3H) (grukit/backends/layernorm_loops.py).
std::vector<at::Tensor> ln_gru_backward(const at::Tensor& dout, const at::Tensor& dh_n,
                                        const at::Tensor& gates, const at::Tensor& xhat_i,
                                        const at::Tensor& rstd_i, const at::Tensor& xhat,
                                        const at::Tensor& rstd, const at::Tensor& hprev,
                                        const at::Tensor& w_hh,
                                        const c10::optional<at::Tensor>& b_hh,
                                        const at::Tensor& ln_ih, const at::Tensor& ln_hh,
                                        const c10::optional<at::Tensor>& h_mask,
                                        const c10::optional<at::Tensor>& keep,
                                        const at::Tensor& batch_sizes, bool reverse,
                                        bool reset_after);
