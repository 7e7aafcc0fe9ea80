// griffin/linear.hpp: an affine map y = x w^T + b with the weight in the
// torch nn.Linear layout [out, in] (reference: every nn.Linear of
// torch/modules.py and torch/layers.py).
#pragma once

#include <cstddef>
#include <string>

#include "griffin/kernels/matmul.hpp"
#include "griffin/tensor.hpp"
#include "griffin/weights.hpp"

namespace griffin {

struct linear {
  aligned_vector<float> weight;  // [out, in]
  aligned_vector<float> bias;    // [out], or empty for no bias
  std::size_t out = 0;
  std::size_t in = 0;

  /// Loads `<prefix>.weight` [out, in] and, when `with_bias`, `<prefix>.bias` [out].
  static linear load(weight_reader& r, const std::string& prefix, std::size_t out, std::size_t in, bool with_bias) {
    linear l;
    l.out = out;
    l.in = in;
    l.weight = r.load(prefix + ".weight", {out, in});
    if (with_bias) l.bias = r.load(prefix + ".bias", {out});
    return l;
  }

  [[nodiscard]] kernels::matrix_view<const float> matrix() const noexcept { return kernels::dense(weight.data(), out, in); }

  /// y [rows, out] (row stride ldy) = x [rows, in] (row stride ldx) w^T + b; added to y when `accumulate`.
  void forward(const float* x, std::size_t ldx, float* y, std::size_t ldy, std::size_t rows, bool accumulate = false) const {
    kernels::matmul<default_arch>({x, rows, in, ldx}, matrix(), bias.empty() ? nullptr : bias.data(), {y, rows, out, ldy},
                                  accumulate);
  }
  /// Contiguous rows.
  void forward(const float* x, float* y, std::size_t rows, bool accumulate = false) const {
    forward(x, in, y, out, rows, accumulate);
  }
};

}  // namespace griffin
