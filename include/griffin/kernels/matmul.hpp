// griffin/kernels/matmul.hpp: y = x w + b for float activations and weights
// stored as float, bfloat16 or float16, in either layout a checkpoint uses:
// out x in (torch nn.Linear: every linear layer, the tied logits) or in x out
// (einsum weights: the reference's ffw_up.w and the block-diagonal RG-LRU
// gates), so no checkpoint needs a transposed copy. Decode is the M = batch
// case of the same kernels (matrix-vector products sharing one pass over w).
#pragma once

#include <array>
#include <cassert>
#include <cstddef>

#include "griffin/kernels/convert.hpp"
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

/// Scalar reference. x: [M, K]; w: [N, K] (out x in, the torch nn.Linear
/// layout); bias: [N] or null; y: [M, N].
/// y[m, n] = (sum_k x[m, k] w[n, k]) + bias[n], added to y when `accumulate`.
template <WeightElement T>
inline void matmul_scalar(matrix_view<const float> x, matrix_view<const T> w, const float* bias, matrix_view<float> y,
                          bool accumulate = false) {
  assert(x.cols == w.cols && y.rows == x.rows && y.cols == w.rows);
  for (std::size_t m = 0; m < x.rows; ++m)
    for (std::size_t n = 0; n < w.rows; ++n) {
      float acc = 0.0f;
      for (std::size_t k = 0; k < x.cols; ++k) acc += x.row(m)[k] * load_scalar(w.row(n), k);
      if (bias) acc += bias[n];
      y.row(m)[n] = accumulate ? y.row(m)[n] + acc : acc;
    }
}

/// Scalar reference with w: [K, N] (in x out, the layout of an einsum weight
/// such as the reference's ffw_up.w and the RG-LRU gates).
template <WeightElement T>
inline void matmul_in_out_scalar(matrix_view<const float> x, matrix_view<const T> w, const float* bias,
                                 matrix_view<float> y, bool accumulate = false) {
  assert(x.cols == w.rows && y.rows == x.rows && y.cols == w.cols);
  for (std::size_t m = 0; m < x.rows; ++m)
    for (std::size_t n = 0; n < w.cols; ++n) {
      float acc = 0.0f;
      for (std::size_t k = 0; k < x.cols; ++k) acc += x.row(m)[k] * load_scalar(w.row(k), n);
      if (bias) acc += bias[n];
      y.row(m)[n] = accumulate ? y.row(m)[n] + acc : acc;
    }
}

namespace detail {

// One MR x NR register tile of y: MR rows of x against NR rows of w (out x in),
// the reduction over K vectorised, its remainder scalar.
template <class Arch, std::size_t MR, std::size_t NR, class T>
inline void matmul_tile(matrix_view<const float> x, matrix_view<const T> w, const float* bias, matrix_view<float> y,
                        std::size_t m0, std::size_t n0, bool accumulate) {
  using B = batch<Arch>;
  constexpr std::size_t L = B::size;
  const std::size_t K = x.cols;
  const std::size_t kv = K - K % L;

  std::array<B, MR * NR> acc;
  acc.fill(B(0.0f));
  const float* xr[MR];
  const T* wr[NR];
  for (std::size_t i = 0; i < MR; ++i) xr[i] = x.row(m0 + i);
  for (std::size_t j = 0; j < NR; ++j) wr[j] = w.row(n0 + j);

  for (std::size_t k = 0; k < kv; k += L) {
    B wv[NR];
    for (std::size_t j = 0; j < NR; ++j) wv[j] = load_batch<Arch>(wr[j] + k);
    for (std::size_t i = 0; i < MR; ++i) {
      const B xv = B::load_unaligned(xr[i] + k);
      for (std::size_t j = 0; j < NR; ++j) acc[i * NR + j] = xsimd::fma(xv, wv[j], acc[i * NR + j]);
    }
  }
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t j = 0; j < NR; ++j) {
      float sum = xsimd::hadd(acc[i * NR + j]);
      for (std::size_t k = kv; k < K; ++k) sum += xr[i][k] * load_scalar(wr[j], k);
      if (bias) sum += bias[n0 + j];
      float& out = y.row(m0 + i)[n0 + j];
      out = accumulate ? out + sum : sum;
    }
}

template <class Arch, std::size_t MR, class T>
inline void matmul_row_block(matrix_view<const float> x, matrix_view<const T> w, const float* bias,
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

// One MR x (NV batches) tile of y for w in x out: y[m, n0 ..] accumulates
// x[m, k] * w[k, n0 ..] over k, vectorised over n.
template <class Arch, std::size_t MR, std::size_t NV, class T>
inline void matmul_in_out_tile(matrix_view<const float> x, matrix_view<const T> w, const float* bias,
                               matrix_view<float> y, std::size_t m0, std::size_t n0, bool accumulate) {
  using B = batch<Arch>;
  constexpr std::size_t L = B::size;
  std::array<B, MR * NV> acc;
  acc.fill(B(0.0f));
  for (std::size_t k = 0; k < x.cols; ++k) {
    B wv[NV];
    for (std::size_t j = 0; j < NV; ++j) wv[j] = load_batch<Arch>(w.row(k) + n0 + j * L);
    for (std::size_t i = 0; i < MR; ++i) {
      const B xv(x.row(m0 + i)[k]);
      for (std::size_t j = 0; j < NV; ++j) acc[i * NV + j] = xsimd::fma(xv, wv[j], acc[i * NV + j]);
    }
  }
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t j = 0; j < NV; ++j) {
      float* out = y.row(m0 + i) + n0 + j * L;
      B v = acc[i * NV + j];
      if (bias) v = v + B::load_unaligned(bias + n0 + j * L);
      if (accumulate) v = v + B::load_unaligned(out);
      v.store_unaligned(out);
    }
}

template <class Arch, std::size_t MR, class T>
inline void matmul_in_out_row_block(matrix_view<const float> x, matrix_view<const T> w, const float* bias,
                                    matrix_view<float> y, std::size_t m0, bool accumulate) {
  constexpr std::size_t L = lanes<Arch>;
  const std::size_t N = w.cols;
  std::size_t n = 0;
  for (; n + 2 * L <= N; n += 2 * L) matmul_in_out_tile<Arch, MR, 2>(x, w, bias, y, m0, n, accumulate);
  for (; n + L <= N; n += L) matmul_in_out_tile<Arch, MR, 1>(x, w, bias, y, m0, n, accumulate);
  if (n < N) {  // the last columns: the reference on that sub-matrix
    const matrix_view<const T> wt{w.data + n, w.rows, N - n, w.stride};
    matmul_in_out_scalar(matrix_view<const float>{x.row(m0), MR, x.cols, x.stride}, wt, bias ? bias + n : nullptr,
                         matrix_view<float>{y.row(m0) + n, MR, N - n, y.stride}, accumulate);
  }
}

template <std::size_t MR, class F>
inline void for_row_blocks(std::size_t rows, F&& f) {
  std::size_t m = 0;
  for (; m + MR <= rows; m += MR) f(std::integral_constant<std::size_t, MR>{}, m);
  switch (rows - m) {
    case 3: f(std::integral_constant<std::size_t, 3>{}, m); break;
    case 2: f(std::integral_constant<std::size_t, 2>{}, m); break;
    case 1: f(std::integral_constant<std::size_t, 1>{}, m); break;
    default: break;
  }
}

}  // namespace detail

/// SIMD kernel with the contract of `matmul_scalar`: x [M, K], w [N, K] of
/// float, bfloat16 or float16, bias [N] or null, y [M, N]. Rows may have any
/// stride and any alignment; y must not overlap x or w.
template <class Arch = default_arch, WeightElement T>
inline void matmul(matrix_view<const float> x, matrix_view<const T> w, const float* bias, matrix_view<float> y,
                   bool accumulate = false) {
  assert(x.cols == w.cols && y.rows == x.rows && y.cols == w.rows);
  detail::for_row_blocks<4>(x.rows, [&](auto mr, std::size_t m) {
    detail::matmul_row_block<Arch, decltype(mr)::value>(x, w, bias, y, m, accumulate);
  });
}

/// SIMD kernel with the contract of `matmul_in_out_scalar` (w: [K, N]).
template <class Arch = default_arch, WeightElement T>
inline void matmul_in_out(matrix_view<const float> x, matrix_view<const T> w, const float* bias, matrix_view<float> y,
                          bool accumulate = false) {
  assert(x.cols == w.rows && y.rows == x.rows && y.cols == w.cols);
  detail::for_row_blocks<4>(x.rows, [&](auto mr, std::size_t m) {
    detail::matmul_in_out_row_block<Arch, decltype(mr)::value>(x, w, bias, y, m, accumulate);
  });
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
