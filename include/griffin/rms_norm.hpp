// griffin/rms_norm.hpp: RMSNorm, matching recurrentgemma torch/layers.py
// RMSNorm.forward:
//   var = mean(x^2, axis=-1); y = x * rsqrt(var + 1e-6) * (1 + scale)
// Statistics in float32; `scale` is stored as the reference stores it (the
// offset 1 is added when applied).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "griffin/extent.hpp"
#include "griffin/kernels/simd.hpp"
#include "griffin/tensor.hpp"
#include "griffin/weights.hpp"

namespace griffin {
namespace kernels {

/// Scalar reference. x, y: [width] (may alias); scale: [width].
inline void rms_norm_scalar(const float* x, const float* scale, float* y, std::size_t width, float eps = 1e-6f) {
  float sum = 0.0f;
  for (std::size_t i = 0; i < width; ++i) sum += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(sum / static_cast<float>(width) + eps);
  for (std::size_t i = 0; i < width; ++i) y[i] = (x[i] * inv) * (scale[i] + 1.0f);
}

/// SIMD kernel with the contract of `rms_norm_scalar`; `width` may be fixed<N>.
template <class Arch = default_arch, Extent Width>
inline void rms_norm(const float* x, const float* scale, float* y, Width width_, float eps = 1e-6f) {
  using B = batch<Arch>;
  const std::size_t width = extent_value(width_);
  B acc(0.0f);
  float tail = 0.0f;
  simd_for<Arch>(
      width,
      [&](std::size_t i) {
        const B v = B::load_unaligned(x + i);
        acc = xsimd::fma(v, v, acc);
      },
      [&](std::size_t i) { tail += x[i] * x[i]; });
  const float inv = 1.0f / std::sqrt((xsimd::hadd(acc) + tail) / static_cast<float>(width) + eps);
  const B vinv(inv);
  simd_for<Arch>(
      width,
      [&](std::size_t i) {
        ((B::load_unaligned(x + i) * vinv) * (B::load_unaligned(scale + i) + 1.0f)).store_unaligned(y + i);
      },
      [&](std::size_t i) { y[i] = (x[i] * inv) * (scale[i] + 1.0f); });
}

}  // namespace kernels

/// RMSNorm over the last dimension (reference: layers.RMSNorm).
struct rms_norm {
  static constexpr float eps = 1e-6f;

  struct weights {
    aligned_vector<float> scale;  // [width]
  };

  /// Loads `<prefix>.scale` of shape [width].
  static weights load(weight_reader& r, const std::string& prefix, std::size_t width) {
    return {r.load(prefix + ".scale", {width})};
  }

  /// x, y: [rows, width] contiguous (may alias). Rows are shared out over
  /// `pool` when there are enough of them.
  static void forward(const weights& w, const float* x, float* y, std::size_t rows, std::size_t width,
                      thread_pool* pool = nullptr) {
    const std::size_t min_rows = kernels::parallel_transform_min / std::max<std::size_t>(width, 1);
    parallel_pieces(pool, 1, rows, 1, std::max<std::size_t>(min_rows, 1), [&](std::size_t, std::size_t r0, std::size_t r1) {
      for (std::size_t r = r0; r < r1; ++r)
        kernels::rms_norm<default_arch>(x + r * width, w.scale.data(), y + r * width, width, eps);
    });
  }
};

}  // namespace griffin
