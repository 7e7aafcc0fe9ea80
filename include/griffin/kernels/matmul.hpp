// griffin/kernels/matmul.hpp: y = x w^T + b, the product behind every
// nn.Linear of the reference (torch layout: w is [out, in]), the block-diagonal
// RG-LRU gates (one call per head) and the tied logits (w = the embedding).
// Decode is the M = batch case of the same kernel (a batch of matrix-vector
// products that share one pass over w).
#pragma once

#include <array>
#include <cassert>
#include <cstddef>

#include "griffin/kernels/simd.hpp"

namespace griffin::kernels {

/// A row-major matrix view: element (r, c) is data[r * stride + c].
template <class T>
struct matrix_view {
  T* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t stride = 0;

  [[nodiscard]] T* row(std::size_t r) const noexcept { return data + r * stride; }
};

template <class T>
matrix_view(T*, std::size_t, std::size_t, std::size_t) -> matrix_view<T>;

/// A contiguous rows x cols view.
template <class T>
[[nodiscard]] constexpr matrix_view<T> dense(T* data, std::size_t rows, std::size_t cols) noexcept {
  return {data, rows, cols, cols};
}

/// Scalar reference. x: [M, K], w: [N, K], bias: [N] or null, y: [M, N];
/// y[m, n] = (sum_k x[m, k] w[n, k]) + bias[n], added to y when `accumulate`.
inline void matmul_scalar(matrix_view<const float> x, matrix_view<const float> w, const float* bias,
                          matrix_view<float> y, bool accumulate = false) {
  assert(x.cols == w.cols && y.rows == x.rows && y.cols == w.rows);
  for (std::size_t m = 0; m < x.rows; ++m)
    for (std::size_t n = 0; n < w.rows; ++n) {
      float acc = 0.0f;
      for (std::size_t k = 0; k < x.cols; ++k) acc += x.row(m)[k] * w.row(n)[k];
      if (bias) acc += bias[n];
      y.row(m)[n] = accumulate ? y.row(m)[n] + acc : acc;
    }
}

namespace detail {

// One MR x NR register tile of y: MR rows of x against NR rows of w, the
// reduction over K vectorised, its remainder scalar.
template <class Arch, std::size_t MR, std::size_t NR>
inline void matmul_tile(matrix_view<const float> x, matrix_view<const float> w, const float* bias, matrix_view<float> y,
                        std::size_t m0, std::size_t n0, bool accumulate) {
  using B = batch<Arch>;
  constexpr std::size_t L = B::size;
  const std::size_t K = x.cols;
  const std::size_t kv = K - K % L;

  std::array<B, MR * NR> acc;
  acc.fill(B(0.0f));
  const float* xr[MR];
  const float* wr[NR];
  for (std::size_t i = 0; i < MR; ++i) xr[i] = x.row(m0 + i);
  for (std::size_t j = 0; j < NR; ++j) wr[j] = w.row(n0 + j);

  for (std::size_t k = 0; k < kv; k += L) {
    B wv[NR];
    for (std::size_t j = 0; j < NR; ++j) wv[j] = B::load_unaligned(wr[j] + k);
    for (std::size_t i = 0; i < MR; ++i) {
      const B xv = B::load_unaligned(xr[i] + k);
      for (std::size_t j = 0; j < NR; ++j) acc[i * NR + j] = xsimd::fma(xv, wv[j], acc[i * NR + j]);
    }
  }
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t j = 0; j < NR; ++j) {
      float sum = xsimd::hadd(acc[i * NR + j]);
      for (std::size_t k = kv; k < K; ++k) sum += xr[i][k] * wr[j][k];
      if (bias) sum += bias[n0 + j];
      float& out = y.row(m0 + i)[n0 + j];
      out = accumulate ? out + sum : sum;
    }
}

template <class Arch, std::size_t MR>
inline void matmul_row_block(matrix_view<const float> x, matrix_view<const float> w, const float* bias,
                             matrix_view<float> y, std::size_t m0, bool accumulate) {
  constexpr std::size_t NR = 4;
  std::size_t n = 0;
  for (; n + NR <= w.rows; n += NR) matmul_tile<Arch, MR, NR>(x, w, bias, y, m0, n, accumulate);
  switch (w.rows - n) {
    case 3: matmul_tile<Arch, MR, 3>(x, w, bias, y, m0, n, accumulate); break;
    case 2: matmul_tile<Arch, MR, 2>(x, w, bias, y, m0, n, accumulate); break;
    case 1: matmul_tile<Arch, MR, 1>(x, w, bias, y, m0, n, accumulate); break;
    default: break;
  }
}

}  // namespace detail

/// SIMD kernel with the contract of `matmul_scalar`: x [M, K], w [N, K] (the
/// torch nn.Linear layout), bias [N] or null, y [M, N]. Rows may have any
/// stride and any alignment; y must not overlap x or w.
template <class Arch = default_arch>
inline void matmul(matrix_view<const float> x, matrix_view<const float> w, const float* bias, matrix_view<float> y,
                   bool accumulate = false) {
  assert(x.cols == w.cols && y.rows == x.rows && y.cols == w.rows);
  constexpr std::size_t MR = 4;
  std::size_t m = 0;
  for (; m + MR <= x.rows; m += MR) detail::matmul_row_block<Arch, MR>(x, w, bias, y, m, accumulate);
  switch (x.rows - m) {
    case 3: detail::matmul_row_block<Arch, 3>(x, w, bias, y, m, accumulate); break;
    case 2: detail::matmul_row_block<Arch, 2>(x, w, bias, y, m, accumulate); break;
    case 1: detail::matmul_row_block<Arch, 1>(x, w, bias, y, m, accumulate); break;
    default: break;
  }
}

/// Scalar reference: sum_i a[i] b[i].
inline float dot_scalar(const float* a, const float* b, std::size_t n) {
  float acc = 0.0f;
  for (std::size_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

/// SIMD kernel with the contract of `dot_scalar`.
template <class Arch = default_arch>
inline float dot(const float* a, const float* b, std::size_t n) {
  using B = batch<Arch>;
  B acc(0.0f);
  float tail = 0.0f;
  simd_for<Arch>(
      n, [&](std::size_t i) { acc = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc); },
      [&](std::size_t i) { tail += a[i] * b[i]; });
  return xsimd::hadd(acc) + tail;
}

/// Scalar reference: y[i] += alpha * x[i].
inline void axpy_scalar(float alpha, const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

/// SIMD kernel with the contract of `axpy_scalar`.
template <class Arch = default_arch>
inline void axpy(float alpha, const float* x, float* y, std::size_t n) {
  using B = batch<Arch>;
  const B a(alpha);
  simd_for<Arch>(
      n, [&](std::size_t i) { xsimd::fma(a, B::load_unaligned(x + i), B::load_unaligned(y + i)).store_unaligned(y + i); },
      [&](std::size_t i) { y[i] += alpha * x[i]; });
}

}  // namespace griffin::kernels
