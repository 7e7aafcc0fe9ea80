// griffin/rg_lru.hpp: the Real-Gated Linear Recurrent Unit, matching
// recurrentgemma torch/layers.py RGLRU.forward and rnn_scan:
//
//   gate_x = sigmoid(input_gate(x)); gate_a = sigmoid(a_gate(x))   # block-diagonal
//   log_a  = -8 * gate_a * softplus(a_param);  a = exp(log_a)
//   mult   = sqrt(1 - exp(2 log_a)), or 1 at a document start
//   h_t    = a_t * h_{t-1} + (x_t * gate_x) * mult,  with a_t = 0 at a document start
//
// The state h is float32. The scan is vectorised across channels: each lane
// carries one channel's recurrence through time.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "griffin/kernels/matmul.hpp"
#include "griffin/kernels/simd.hpp"
#include "griffin/tensor.hpp"
#include "griffin/weight_matrix.hpp"
#include "griffin/weights.hpp"

namespace griffin {
namespace kernels {

/// Arguments of one RG-LRU scan over one batch row. Every [T, E] operand has row stride `stride`.
struct rg_lru_args {
  const float* x = nullptr;            // [T, E] the conv1d output
  const float* gate_x = nullptr;       // [T, E] input_gate(x), before the sigmoid
  const float* gate_a = nullptr;       // [T, E] a_gate(x), before the sigmoid
  const float* log_a_scale = nullptr;  // [E]    -8 * softplus(a_param)
  const std::int32_t* segment_pos = nullptr;  // [T]; 0 resets the state
  float* h = nullptr;                  // [E]    state in, state out
  float* y = nullptr;                  // [T, E] every h_t
  std::size_t stride = 0;
  std::size_t length = 0;              // T
  std::size_t width = 0;               // E
};

/// Channels [c0, c1) of `a`: each channel's scan is independent of the
/// others', so the slices of a row may run on different threads.
inline rg_lru_args rg_lru_channels(const rg_lru_args& a, std::size_t c0, std::size_t c1) noexcept {
  rg_lru_args s = a;
  s.x += c0;
  s.gate_x += c0;
  s.gate_a += c0;
  s.log_a_scale += c0;
  s.h += c0;
  s.y += c0;
  s.width = c1 - c0;
  return s;
}

/// One channel's step.
inline float rg_lru_step_scalar(float x, float gx_pre, float ga_pre, float log_a_scale, bool reset, float h) {
  const float gate_x = 1.0f / (1.0f + std::exp(-gx_pre));
  const float gate_a = 1.0f / (1.0f + std::exp(-ga_pre));
  const float log_a = gate_a * log_a_scale;
  const float a = std::exp(log_a);
  const float multiplier = reset ? 1.0f : std::sqrt(1.0f - std::exp(2.0f * log_a));
  const float normalized = (x * gate_x) * multiplier;
  return (reset ? 0.0f : a) * h + normalized;
}

/// One channel's scan through the chunk, shared by the reference and the SIMD tail.
inline void rg_lru_channel_scalar(const rg_lru_args& a, std::size_t c) {
  float h = a.h[c];
  for (std::size_t t = 0; t < a.length; ++t) {
    const std::size_t i = t * a.stride + c;
    h = rg_lru_step_scalar(a.x[i], a.gate_x[i], a.gate_a[i], a.log_a_scale[c], a.segment_pos[t] == 0, h);
    a.y[i] = h;
  }
  a.h[c] = h;
}

/// Scalar reference.
inline void rg_lru_scalar(const rg_lru_args& a) {
  for (std::size_t c = 0; c < a.width; ++c) rg_lru_channel_scalar(a, c);
}

/// SIMD kernel with the contract of `rg_lru_scalar`: a token's row at a time
/// (the state h [E] carried in `a.h`), each batch of lanes one slice of
/// channels. Walking a slice of channels down all T rows instead read each
/// operand a row stride (10 KiB in the 2B model) apart, a page apart, which
/// no hardware prefetcher follows: a 512 x 2560 scan, one thread, operands
/// from memory, took 9.1-9.7 ms on a Xeon with AMX, against 2.6 ms row by
/// row. Each channel's operations are the same either way, so are the bits.
template <class Arch = default_arch>
inline void rg_lru(const rg_lru_args& a) {
  using B = batch<Arch>;
  const sigmoid_fn sigmoid;
  for (std::size_t t = 0; t < a.length; ++t) {
    const std::size_t row = t * a.stride;
    const bool reset = a.segment_pos[t] == 0;
    simd_for<Arch>(
        a.width,
        [&](std::size_t c) {
          const std::size_t i = row + c;
          const B gate_x = sigmoid(B::load_unaligned(a.gate_x + i));
          const B log_a = sigmoid(B::load_unaligned(a.gate_a + i)) * B::load_unaligned(a.log_a_scale + c);
          const B normalized = B::load_unaligned(a.x + i) * gate_x;
          B h = normalized;  // at a document start: a = 0, multiplier = 1
          if (!reset) {
            const B multiplier = xsimd::sqrt(1.0f - xsimd::exp(2.0f * log_a));
            h = xsimd::exp(log_a) * B::load_unaligned(a.h + c) + normalized * multiplier;
          }
          h.store_unaligned(a.h + c);
          h.store_unaligned(a.y + i);
        },
        [&](std::size_t c) {
          const std::size_t i = row + c;
          a.h[c] = rg_lru_step_scalar(a.x[i], a.gate_x[i], a.gate_a[i], a.log_a_scale[c], reset, a.h[c]);
          a.y[i] = a.h[c];
        });
  }
}

}  // namespace kernels

/// A block-diagonal linear map (reference: layers.BlockDiagonalLinear):
/// x [.., H * b] split into H blocks, y[h, j] = sum_i x[h, i] w[h, i, j] + b[h, j].
/// w [H, b, b] is used in place: block h is stored rows [h * b, (h + 1) * b), in x out.
struct block_diagonal_linear {
  weight_matrix weight;        // [H * b (in), b (out)]
  aligned_vector<float> bias;  // [H * b]
  std::size_t num_blocks = 0;
  std::size_t block_width = 0;

  /// Loads `<prefix>.w` [H, b, b] and `<prefix>.b` [H, b].
  static block_diagonal_linear load(weight_reader& r, const std::string& prefix, std::size_t num_blocks,
                                    std::size_t block_width) {
    block_diagonal_linear l;
    l.num_blocks = num_blocks;
    l.block_width = block_width;
    l.weight = r.load_matrix(prefix + ".w", {num_blocks, block_width, block_width}, {}, weight_layout::in_out);
    l.bias = r.load(prefix + ".b", {num_blocks, block_width});
    return l;
  }

  /// x, y: [rows, H * b] contiguous. The blocks are split over `pool`.
  void forward(const float* x, float* y, std::size_t rows, thread_pool* pool = nullptr) const {
    const std::size_t bw = block_width, E = num_blocks * bw;
    parallel_run(pool, num_blocks, [&](std::size_t h) {
      weight.rows(h * bw, bw).apply<default_arch>(x + h * bw, E, bias.data() + h * bw, y + h * bw, E, rows);
    });
  }
};

/// The RG-LRU layer's parameters (reference: layers.RGLRU).
struct rg_lru {
  struct weights {
    block_diagonal_linear input_gate;
    block_diagonal_linear a_gate;
    aligned_vector<float> a_param;      // [E]
    aligned_vector<float> log_a_scale;  // [E] = -8 * softplus(a_param), derived once
  };

  /// softplus as torch computes it in float32 (threshold 20).
  static float softplus(float x) noexcept { return x > 20.0f ? x : std::log1p(std::exp(x)); }

  /// Loads `<prefix>.a_param` [E] and the two gates with `num_heads` diagonal blocks.
  static weights load(weight_reader& r, const std::string& prefix, std::size_t width, std::size_t num_heads) {
    weights w;
    w.a_param = r.load(prefix + ".a_param", {width});
    w.input_gate = block_diagonal_linear::load(r, prefix + ".input_gate", num_heads, width / num_heads);
    w.a_gate = block_diagonal_linear::load(r, prefix + ".a_gate", num_heads, width / num_heads);
    w.log_a_scale.resize(width);
    // -8 * gate_a * sp == gate_a * (-8 * sp) exactly: scaling by 8 is exact in binary floating point.
    for (std::size_t c = 0; c < width; ++c) w.log_a_scale[c] = -8.0f * softplus(w.a_param[c]);
    return w;
  }
};

}  // namespace griffin
