// griffin/embedder.hpp: token embedding in, tied logits out, matching
// recurrentgemma torch/modules.py Embedder and the end of Griffin.forward:
//
//   encode: x = input_embedding[token] * bf16(sqrt(width))  (scale optional)
//   decode: logits = x @ input_embedding^T;  tanh(logits / c) * c  if c != 0
//
// The scale is sqrt(width) rounded to bfloat16 first (50.5 for width 2560,
// not 50.596), then multiplied in float32, as the reference does "to match
// training".
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/kernels/matmul.hpp"
#include "griffin/kernels/simd.hpp"
#include "griffin/tensor.hpp"
#include "griffin/weight_matrix.hpp"
#include "griffin/weights.hpp"

namespace griffin {

struct embedder {
  struct weights {
    weight_matrix input_embedding;  // [V, D], out x in: decode maps D -> V
    std::size_t vocab_size = 0;
    std::size_t width = 0;
    bool scale_by_sqrt_dim = false;
    float logits_soft_cap = 0.0f;
  };

  /// The embedding scale: sqrt(width) rounded to bfloat16.
  static float sqrt_width_scale(std::size_t width) noexcept {
    return round_to_bf16(static_cast<float>(std::sqrt(static_cast<double>(width))));
  }

  /// Loads `embedder.input_embedding` [V, D].
  static weights load(weight_reader& r, const config& c) {
    return {r.load_matrix("embedder.input_embedding", {c.vocab_size, c.width}, {}, weight_layout::out_in), c.vocab_size,
            c.width, c.embeddings_scale_by_sqrt_dim, c.logits_soft_cap};
  }

  /// x [n, D] = the embeddings of tokens [n]; ids must already be in range.
  static void encode(const weights& w, const std::int32_t* tokens, std::size_t n, float* x) {
    const float scale = sqrt_width_scale(w.width);
    for (std::size_t i = 0; i < n; ++i) {
      float* out = x + i * w.width;
      w.input_embedding.row_to_float(static_cast<std::size_t>(tokens[i]), out);
      if (w.scale_by_sqrt_dim)
        kernels::transform<default_arch>(out, out, w.width, [scale](auto e) { return e * scale; });
    }
  }

  /// logits [n, V] = x [n, D] (row stride ldx) @ input_embedding^T, soft-capped.
  static void decode(const weights& w, const float* x, std::size_t ldx, std::size_t n, float* logits,
                     thread_pool* pool = nullptr) {
    w.input_embedding.apply<default_arch>(x, ldx, nullptr, logits, w.vocab_size, n, false, pool);
    if (w.logits_soft_cap > 0.0f) {
      const float c = w.logits_soft_cap;
      kernels::transform<default_arch>(pool, logits, logits, n * w.vocab_size, [c](auto l) {
        using std::tanh;
        using xsimd::tanh;
        return tanh(l / c) * c;
      });
    }
  }
};

}  // namespace griffin
