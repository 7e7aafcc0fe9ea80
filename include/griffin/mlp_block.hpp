// griffin/mlp_block.hpp: the gated MLP of every residual block, matching
// recurrentgemma torch/modules.py MLPBlock.forward:
//   out = ffw_up(x)                       # [2, rows, F]
//   y   = ffw_down(gelu_tanh(out[0]) * out[1])
// ffw_up is stored [2, D, F] (in x out): `gate` is half 0 (through the GELU),
// `up` half 1 (the linear branch), the names transformers uses (where each is
// stored [F, D]). Either is used in place. Where a kernel computes both
// halves and the GELU x up in one pass (bf16 and int8 on AMX: kernels::matmul_gated)
// the two products are never written out.
#pragma once

#include <array>
#include <cstddef>
#include <string>

#include "griffin/detail/scratch.hpp"
#include "griffin/kernels/simd.hpp"
#include "griffin/linear.hpp"
#include "griffin/weights.hpp"

namespace griffin {

struct mlp_block {
  struct weights {
    linear gate;  // D -> F: ffw_up.w[0], ffw_up.b[0]
    linear up;    // D -> F: ffw_up.w[1], ffw_up.b[1]
    linear down;  // [D, F] + [D]: ffw_down

    /// The block's linear layers.
    auto linears() noexcept { return std::array{&gate, &up, &down}; }
  };

  /// Loads `<prefix>.ffw_up.{w,b}` and `<prefix>.ffw_down.{weight,bias}`.
  static weights load(weight_reader& r, const std::string& prefix, std::size_t width, std::size_t expanded) {
    weights out;
    for (std::size_t half = 0; half < 2; ++half) {
      linear& l = half == 0 ? out.gate : out.up;
      l.weight = r.load_matrix(prefix + ".ffw_up.w", {2, width, expanded}, half, weight_layout::in_out);
      l.bias = r.load(prefix + ".ffw_up.b", {2, 1, 1, expanded}, half);
    }
    out.down = linear::load(r, prefix + ".ffw_down", width, expanded, true);
    return out;
  }

  /// x: [rows, D]; the block's output is added to y: [rows, D] (the residual stream).
  static void forward(const weights& w, const float* x, float* y, std::size_t rows, detail::scratch& s,
                      thread_pool* pool = nullptr) {
    detail::scratch_frame frame(s);
    const std::size_t F = w.gate.out();
    float* gate = s.take(rows * F);  // [rows, F], then gelu(gate) * up
    if (!gated(w, x, gate, rows, pool)) {
      float* up = s.take(rows * F);  // [rows, F]
      w.gate.forward(x, gate, rows, pool);
      w.up.forward(x, up, rows, pool);
      kernels::transform<default_arch>(pool, gate, up, gate, rows * F,
                                       [](auto g, auto u) { return kernels::gelu_tanh_fn{}(g) * u; });
    }
    w.down.forward(gate, y, rows, pool, /*accumulate=*/true);
  }

 private:
  // gelu(x gate + b) * (x up + b) in one pass where kernels::matmul_gated
  // serves the stored type (bf16 and int8 on AMX); false where it does not.
  static bool gated(const weights& w, const float* x, float* out, std::size_t rows, thread_pool* pool) {
    if (w.up.weight.type() != w.gate.weight.type()) return false;
    const std::size_t D = w.gate.in(), F = w.gate.out();
    return w.gate.weight.visit([&]<class T>(kernels::weights_view<T> gate) {
      return kernels::matmul_gated<default_arch>({x, rows, D, D}, gate, w.gate.bias.empty() ? nullptr : w.gate.bias.data(),
                                                 w.up.weight.view<T>(), w.up.bias.empty() ? nullptr : w.up.bias.data(),
                                                 kernels::dense(out, rows, F), pool);
    });
  }
};

}  // namespace griffin
