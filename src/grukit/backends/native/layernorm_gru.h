// The LayerNormGRU serial loops (layernorm_gru.cpp), bound in gru.cpp's module.
#pragma once

#include <ATen/ATen.h>

#include <vector>

// gi (S, 3H), h0 (N, H), w_hh (3H, H), b_hh (3H,) or None, ln_hh (3H,), h_mask (N, H) or None,
// keep (S, H) or None, batch_sizes (T,) → out (S, H), gates (S or 0, 3H), xhat (S or 0, 3H),
// rstd (S or 0, 2), h_n (N, H).
std::vector<at::Tensor> ln_gru_forward(const at::Tensor& gi, const at::Tensor& h0,
                                       const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_hh,
                                       const at::Tensor& ln_hh,
                                       const c10::optional<at::Tensor>& h_mask,
                                       const c10::optional<at::Tensor>& keep,
                                       const at::Tensor& batch_sizes, bool reverse,
                                       bool reset_after, bool save, bool copy_operand);

// → dgi (S, 3H), dghn (S, H), da (S, 3H), dh0 (N, H) (grukit/backends/layernorm_loops.py).
std::vector<at::Tensor> ln_gru_backward(const at::Tensor& dout, const at::Tensor& dh_n,
                                        const at::Tensor& gates, const at::Tensor& xhat,
                                        const at::Tensor& rstd, const at::Tensor& hprev,
                                        const at::Tensor& w_hh,
                                        const c10::optional<at::Tensor>& b_hh,
                                        const at::Tensor& ln_hh,
                                        const c10::optional<at::Tensor>& h_mask,
                                        const c10::optional<at::Tensor>& keep,
                                        const at::Tensor& batch_sizes, bool reverse,
                                        bool reset_after);
