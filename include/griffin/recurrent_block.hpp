// griffin/recurrent_block.hpp: Griffin's recurrent temporal mixer, matching
// recurrentgemma torch/modules.py RecurrentBlock.forward:
//
//   y = gelu_tanh(linear_y(x))                   # [B, T, E]
//   x = rg_lru(conv_1d(linear_x(x)))             # [B, T, E]
//   out = linear_out(x * y)                      # [B, T, D]
//
// State per batch row: the conv1d history [tw - 1, E] and the RG-LRU state
// h [E] (float32); its size does not depend on the sequence length.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "griffin/block_io.hpp"
#include "griffin/config.hpp"
#include "griffin/conv1d.hpp"
#include "griffin/kernels/simd.hpp"
#include "griffin/linear.hpp"
#include "griffin/session.hpp"
#include "griffin/rg_lru.hpp"
#include "griffin/weights.hpp"

namespace griffin {

struct recurrent_block {
  static constexpr block_kind kind = block_kind::recurrent;
  static constexpr char symbol = 'R';
  /// The reference's module name, as it appears in parameter names.
  static constexpr const char* reference_name = "recurrent_block";

  struct weights {
    linear linear_y;    // [E, D] + [E]
    linear linear_x;    // [E, D] + [E]
    linear linear_out;  // [D, E] + [D]
    conv1d::weights conv_1d;
    ::griffin::rg_lru::weights rg_lru;

    /// The block's linear layers (not the RG-LRU's gates).
    auto linears() noexcept { return std::array{&linear_y, &linear_x, &linear_out}; }
    /// The RG-LRU's block-diagonal gates.
    auto block_diagonals() noexcept { return std::array{&rg_lru.input_gate, &rg_lru.a_gate}; }
  };

  /// Decode state of all batch rows.
  struct state {
    aligned_vector<float> conv1d_state;  // [B, tw - 1, E], oldest input first
    aligned_vector<float> rg_lru_state;  // [B, E]

    [[nodiscard]] std::size_t bytes() const noexcept {
      return (conv1d_state.size() + rg_lru_state.size()) * sizeof(float);
    }
    /// Forgets batch row b (as at a document start).
    void reset_row(std::size_t b, std::size_t batch) {
      auto clear = [&](aligned_vector<float>& v) {
        const std::size_t n = v.size() / batch;
        std::fill(v.begin() + static_cast<std::ptrdiff_t>(b * n), v.begin() + static_cast<std::ptrdiff_t>((b + 1) * n), 0.0f);
      };
      clear(conv1d_state);
      clear(rg_lru_state);
    }

    /// Row b in the session format (session.hpp): E, tw - 1, conv1d history, h.
    static constexpr char symbol = 'R';
    void save_row(std::size_t b, std::size_t batch, detail::byte_writer& out) const {
      const std::size_t E = rg_lru_state.size() / batch, H = conv1d_state.size() / batch / E;
      out.put(std::uint64_t{E});
      out.put(std::uint64_t{H});
      out.put_floats(conv1d_state.data() + b * H * E, H * E);
      out.put_floats(rg_lru_state.data() + b * E, E);
    }
    void load_row(std::size_t b, std::size_t batch, detail::byte_reader& in) {
      const std::size_t E = rg_lru_state.size() / batch, H = conv1d_state.size() / batch / E;
      in.expect(E, "recurrent block width");
      in.expect(H, "conv1d history length");
      in.get_floats(conv1d_state.data() + b * H * E, H * E, "conv1d history");
      in.get_floats(rg_lru_state.data() + b * E, E, "RG-LRU state");
    }
  };

  /// Loads `<prefix>.{linear_y, linear_x, linear_out, conv_1d, rg_lru}`.
  static weights load(weight_reader& r, const std::string& prefix, const config& c, std::size_t /*layer*/) {
    const std::size_t D = c.width, E = c.lru_width;
    weights w;
    w.linear_y = linear::load(r, prefix + ".linear_y", E, D, true);
    w.linear_x = linear::load(r, prefix + ".linear_x", E, D, true);
    w.linear_out = linear::load(r, prefix + ".linear_out", D, E, true);
    w.conv_1d = conv1d::load(r, prefix + ".conv_1d", c.conv1d_temporal_width, E);
    w.rg_lru = ::griffin::rg_lru::load(r, prefix + ".rg_lru", E, c.num_heads);
    return w;
  }

  static state make_state(const config& c, std::size_t /*layer*/, std::size_t batch) {
    return {aligned_vector<float>(batch * (c.conv1d_temporal_width - 1) * c.lru_width, 0.0f),
            aligned_vector<float>(batch * c.lru_width, 0.0f)};
  }

  /// Adds the block's output for `normed` [B, T, D] to io.x; reads and writes `st` when given.
  static void forward(const weights& w, state* st, const float* normed, const block_io& io) {
    detail::scratch& s = *io.scratch;
    detail::scratch_frame frame(s);
    const std::size_t rows = io.rows(), T = io.length, E = w.linear_x.out();
    const std::size_t tw = w.conv_1d.temporal_width;

    float* y = s.take(rows * E);  // [B, T, E] the GELU branch
    w.linear_y.forward(normed, y, rows, io.pool);
    kernels::transform<default_arch>(io.pool, y, y, rows * E, kernels::gelu_tanh_fn{});

    float* xb = s.take(rows * E);  // [B, T, E] linear_x, later the RG-LRU output
    w.linear_x.forward(normed, xb, rows, io.pool);

    // The convolution, rows by slices of channels on the pool (the same
    // bits as one call a row), then each row's history.
    float* xc = s.take(rows * E);  // [B, T, E] conv1d output
    const std::size_t min_channels = kernels::parallel_transform_min / std::max<std::size_t>(T, 1);
    const auto conv_row = [&](std::size_t b) {
      float* history = st ? st->conv1d_state.data() + b * (tw - 1) * E : nullptr;
      return kernels::conv1d_args{xb + b * T * E, E, history, io.positions(b), w.conv_1d.w.data(), w.conv_1d.b.data(),
                                  xc + b * T * E, E, T, E, tw};
    };
    parallel_pieces(io.pool, io.batch, E, kernels::lanes<default_arch>, min_channels,
                    [&](std::size_t b, std::size_t c0, std::size_t c1) {
                      kernels::conv1d<default_arch>(kernels::conv1d_channels(conv_row(b), c0, c1));
                    });
    if (st) {
      float* next_history = s.take((tw - 1) * E);
      for (std::size_t b = 0; b < io.batch; ++b) {
        const kernels::conv1d_args row = conv_row(b);
        kernels::conv1d_next_history(row, next_history);
        std::copy(next_history, next_history + (tw - 1) * E, st->conv1d_state.data() + b * (tw - 1) * E);
      }
    }

    float* gate_x = s.take(rows * E);
    float* gate_a = s.take(rows * E);
    w.rg_lru.input_gate.forward(xc, gate_x, rows, io.pool);
    w.rg_lru.a_gate.forward(xc, gate_a, rows, io.pool);
    // The scan, rows by slices of channels on the pool (parallel_pieces:
    // the same bits as one call a row).
    float* fresh = st ? nullptr : s.take(io.batch * E);
    if (fresh) std::fill_n(fresh, io.batch * E, 0.0f);
    parallel_pieces(io.pool, io.batch, E, kernels::lanes<default_arch>, min_channels,
                    [&](std::size_t b, std::size_t c0, std::size_t c1) {
                      float* h = (st ? st->rg_lru_state.data() : fresh) + b * E;
                      const std::size_t o = b * T * E;
                      const kernels::rg_lru_args row{xc + o, gate_x + o, gate_a + o, w.rg_lru.log_a_scale.data(),
                                                     io.positions(b), h, xb + o, E, T, E};
                      kernels::rg_lru<default_arch>(kernels::rg_lru_channels(row, c0, c1));
                    });

    kernels::transform<default_arch>(io.pool, xb, y, xb, rows * E, kernels::multiplies_fn{});
    w.linear_out.forward(xb, io.x, rows, io.pool, /*accumulate=*/true);
  }
};

}  // namespace griffin
