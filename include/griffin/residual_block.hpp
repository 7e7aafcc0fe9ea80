// griffin/residual_block.hpp: the pre-norm residual block every layer is,
// matching recurrentgemma torch/modules.py ResidualBlock.forward:
//
//   residual = temporal_block(temporal_pre_norm(x)) + x
//   out      = mlp_block(channel_pre_norm(residual)) + residual
//
// and the three blocks schedules are written in: R, A and G.
#pragma once

#include <cstddef>
#include <string>

#include "griffin/attention_block.hpp"
#include "griffin/block_io.hpp"
#include "griffin/concepts.hpp"
#include "griffin/config.hpp"
#include "griffin/mlp_block.hpp"
#include "griffin/recurrent_block.hpp"
#include "griffin/rms_norm.hpp"
#include "griffin/weights.hpp"

namespace griffin {

template <TemporalMixer Mixer>
struct residual_block {
  using temporal_mixer = Mixer;
  using state = typename Mixer::state;

  struct weights {
    using block_type = residual_block;
    rms_norm::weights temporal_pre_norm;
    typename Mixer::weights temporal_block;
    rms_norm::weights channel_pre_norm;
    mlp_block::weights mlp;
  };

  /// Loads `blocks.<layer>.{temporal_pre_norm, <mixer>, channel_pre_norm, mlp_block}`.
  static weights load(weight_reader& r, std::size_t layer, const config& c) {
    const std::string prefix = "blocks." + std::to_string(layer);
    r.set_context("layer " + std::to_string(layer) + " (" + Mixer::symbol + ", " + Mixer::reference_name + ")");
    weights w;
    w.temporal_pre_norm = rms_norm::load(r, prefix + ".temporal_pre_norm", c.width);
    w.temporal_block = Mixer::load(r, prefix + "." + Mixer::reference_name, c, layer);
    w.channel_pre_norm = rms_norm::load(r, prefix + ".channel_pre_norm", c.width);
    w.mlp = mlp_block::load(r, prefix + ".mlp_block", c.width, c.mlp_expanded_width);
    r.set_context({});
    return w;
  }

  static state make_state(const config& c, std::size_t layer, std::size_t batch) {
    return Mixer::make_state(c, layer, batch);
  }

  /// Advances the residual stream io.x [B, T, D] through the block.
  static void forward(const weights& w, state* st, const block_io& io) {
    detail::scratch_frame frame(*io.scratch);
    const std::size_t rows = io.rows(), D = w.temporal_pre_norm.scale.size();
    float* normed = io.scratch->take(rows * D);  // [B, T, D]
    rms_norm::forward(w.temporal_pre_norm, io.x, normed, rows, D, io.pool);
    Mixer::forward(w.temporal_block, st, normed, io);
    rms_norm::forward(w.channel_pre_norm, io.x, normed, rows, D, io.pool);
    mlp_block::forward(w.mlp, normed, io.x, rows, *io.scratch, io.pool);
  }
};

/// A residual block around the recurrent block (RG-LRU).
using R = residual_block<recurrent_block>;
/// A residual block around local (sliding-window) multi-query attention.
using A = residual_block<local_attention_block>;
/// A residual block around global multi-query attention.
using G = residual_block<global_attention_block>;

static_assert(ResidualBlock<R> && ResidualBlock<A> && ResidualBlock<G>);

}  // namespace griffin
