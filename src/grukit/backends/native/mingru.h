// MinGRU's linear recurrence (mingru.cpp), bound in gru.cpp's module.
#pragma once

#include <ATen/ATen.h>

#include <vector>

// gi (T, N, 2H) columns [k; pre], h0 (N, H) → out (T, N, H).
at::Tensor mingru_forward(const at::Tensor& gi, const at::Tensor& h0);

// dout (T, N, H), gi (T, N, 2H), h0 (N, H), out (T, N, H) → dgi (T, N, 2H), dh0 (N, H).
std::vector<at::Tensor> mingru_backward(const at::Tensor& dout, const at::Tensor& gi,
                                        const at::Tensor& h0, const at::Tensor& out);
