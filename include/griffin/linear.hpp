// griffin/linear.hpp: an affine map y = x W + b (reference: every nn.Linear
// of torch/modules.py and torch/layers.py). W is a weight_matrix: stored as the
// checkpoint stores it (f32, bf16 or f16; [out, in] or [in, out]).
#pragma once

#include <cstddef>
#include <string>

#include "griffin/parallel.hpp"
#include "griffin/tensor.hpp"
#include "griffin/weight_matrix.hpp"
#include "griffin/weights.hpp"

namespace griffin {

struct linear {
  weight_matrix weight;        // maps in -> out
  aligned_vector<float> bias;  // [out], or empty for no bias

  /// Loads `<prefix>.weight` [out, in] and, when `with_bias`, `<prefix>.bias` [out].
  static linear load(weight_reader& r, const std::string& prefix, std::size_t out, std::size_t in, bool with_bias) {
    linear l;
    l.weight = r.load_matrix(prefix + ".weight", {out, in}, {}, weight_layout::out_in);
    if (with_bias) l.bias = r.load(prefix + ".bias", {out});
    return l;
  }

  [[nodiscard]] std::size_t out() const noexcept { return weight.out(); }
  [[nodiscard]] std::size_t in() const noexcept { return weight.in(); }

  /// y [rows, out] (row stride ldy) = x [rows, in] (row stride ldx) W + b;
  /// added to y when `accumulate`. Output channels are split over `pool`.
  void forward(const float* x, std::size_t ldx, float* y, std::size_t ldy, std::size_t rows, thread_pool* pool,
               bool accumulate = false) const {
    weight.apply<default_arch>(x, ldx, bias.empty() ? nullptr : bias.data(), y, ldy, rows, accumulate, pool);
  }
  /// Contiguous rows.
  void forward(const float* x, float* y, std::size_t rows, thread_pool* pool, bool accumulate = false) const {
    forward(x, in(), y, out(), rows, pool, accumulate);
  }
};

}  // namespace griffin
