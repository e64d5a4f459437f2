// The streaming step (step.cpp), bound in gru.cpp's module.
#pragma once

#include <ATen/ATen.h>

#include <tuple>
#include <vector>

// One GRUCell step, no autograd: x (N, I), h (N, H), w_ih (3H, I), w_hh (3H, H), biases (3H,)
// or none → h' (N, H).
at::Tensor gru_cell(const at::Tensor& x, const at::Tensor& h, const at::Tensor& w_ih,
                    const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_ih,
                    const c10::optional<at::Tensor>& b_hh, bool reset_after);

// A GRU layer's one-step call, every layer and direction, no autograd: x (1, N, I), or
// (N, 1, I) batch_first; h0 (L·D, N, H) or none (zeros), H = hidden_size; weights per layer
// and direction [w_ih, w_hh(, b_ih, b_hh)], torch.nn.GRU's order and shapes → output
// (1, N, D·H) or (N, 1, D·H), and h_n (L·D, N, H), each a new tensor.
std::tuple<at::Tensor, at::Tensor> gru_step(const at::Tensor& x,
                                            const c10::optional<at::Tensor>& h0,
                                            const std::vector<at::Tensor>& weights,
                                            int64_t hidden_size, int64_t num_layers,
                                            bool bidirectional, bool bias, bool reset_after,
                                            bool batch_first);
