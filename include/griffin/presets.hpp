// griffin/presets.hpp: the paper's three architectures as schedules, and the
// released RecurrentGemma checkpoints (plus the paper's 7B models) as presets
// that pair a schedule with its dimensions.
//
//   hawk<N>            R R R ...        every block recurrent
//   griffin<N>         R R A R R A ...  two recurrent blocks, then local MQA
//   mqa_transformer<N> G G G ...        global MQA everywhere
#pragma once

#include <cstddef>

#include "griffin/config.hpp"
#include "griffin/residual_block.hpp"
#include "griffin/schedule.hpp"

namespace griffin {

/// Hawk: N recurrent blocks.
template <std::size_t N>
using hawk = cycle_c<N, schedule<R>>;

/// Griffin: (recurrent, recurrent, local attention) repeated, cut at N blocks.
template <std::size_t N>
using griffin = cycle_c<N, schedule<R, R, A>>;

/// The MQA Transformer baseline: N global multi-query attention blocks.
template <std::size_t N>
using mqa_transformer = cycle_c<N, schedule<G>>;

namespace detail {
// Instantiated with the problem found, so the compiler's message names it:
// "required from 'struct dimensions_check<dimensions_problem::width_not_divisible_by_num_heads>'".
template <dimensions_problem P>
struct dimensions_check {
  static_assert(P == dimensions_problem::none,
                "griffin: these dimensions cannot run this schedule; the dimensions_check<...> above names the problem");
  static constexpr bool value = P == dimensions_problem::none;
};
}  // namespace detail

/// Checks dimensions for a schedule at compile time. On failure the compiler
/// names the `dimensions_problem` (problem_message explains each).
template <StaticSchedule S, dimensions D>
consteval bool check_dimensions() {
  constexpr bool recurrent = count_c<S, recurrent_block> > 0;
  constexpr bool attention = count_c<S, local_attention_block> + count_c<S, global_attention_block> > 0;
  return detail::dimensions_check<first_problem(D, recurrent, attention)>::value;
}

/// A schedule with its dimensions, checked at compile time.
template <StaticSchedule S, dimensions D>
struct preset {
  using schedule_type = S;
  static constexpr dimensions dims = D;
  static_assert(check_dimensions<S, D>());

  /// The runtime config of this preset.
  static config make_config() {
    config c;
    static_cast<dimensions&>(c) = D;
    c.block_types = block_kinds<S>();
    return c;
  }
};

/// google/recurrentgemma-2b (and -2b-it): 26 blocks, width 2560, 10 heads, window 2048.
using recurrentgemma_2b = preset<griffin<26>, dimensions{.vocab_size = 256000,
                                                         .width = 2560,
                                                         .mlp_expanded_width = 7680,
                                                         .num_heads = 10,
                                                         .lru_width = 2560,
                                                         .attention_window_size = 2048,
                                                         .logits_soft_cap = 30.0f,
                                                         .embeddings_scale_by_sqrt_dim = true}>;

/// google/recurrentgemma-9b (and -9b-it): 38 blocks, width 4096, 16 heads, window 2048.
using recurrentgemma_9b = preset<griffin<38>, dimensions{.vocab_size = 256000,
                                                         .width = 4096,
                                                         .mlp_expanded_width = 12288,
                                                         .num_heads = 16,
                                                         .lru_width = 4096,
                                                         .attention_window_size = 2048,
                                                         .logits_soft_cap = 30.0f,
                                                         .embeddings_scale_by_sqrt_dim = true}>;

/// The paper's 7B scale (Table 1: width 4096, 32 blocks, 32 heads, MLP expansion 3).
/// The paper gives the RNN width only as about 4/3 of the model width and
/// trains with a 1024-token local window; lru_width 5632 (4/3 x 4096 rounded
/// up to a multiple of 256) and the Gemma vocabulary are griffin's choices.
inline constexpr dimensions paper_7b_dimensions{.vocab_size = 256000,
                                                .width = 4096,
                                                .mlp_expanded_width = 3 * 4096,
                                                .num_heads = 32,
                                                .lru_width = 5632,
                                                .attention_window_size = 1024,
                                                .logits_soft_cap = 30.0f,
                                                .embeddings_scale_by_sqrt_dim = true};

/// The paper's Hawk-7B (dimensions as documented on paper_7b_dimensions).
using hawk_7b = preset<hawk<32>, paper_7b_dimensions>;
/// The paper's Griffin-7B (dimensions as documented on paper_7b_dimensions).
using griffin_7b = preset<griffin<32>, paper_7b_dimensions>;

}  // namespace griffin
