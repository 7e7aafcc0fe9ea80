// Compile-time tests of the schedule algebra and the block concepts: this
// file passes by compiling. (The one runtime case prints schedules.)
#include <type_traits>

#include "test_util.hpp"

namespace g = ::griffin;
using g::A;
using g::G;
using g::R;
using g::schedule;

// ---- the paper's architectures are type-level schedules -----------------
static_assert(std::is_same_v<g::hawk<3>, schedule<R, R, R>>);
static_assert(std::is_same_v<g::griffin<6>, schedule<R, R, A, R, R, A>>);
static_assert(std::is_same_v<g::griffin<5>, schedule<R, R, A, R, R>>);  // cut mid-pattern, as transformers does
static_assert(std::is_same_v<g::mqa_transformer<2>, schedule<G, G>>);
static_assert(g::griffin<26>::size == 26);
static_assert(std::is_same_v<g::recurrentgemma_2b::schedule_type, g::griffin<26>>);
static_assert(std::is_same_v<g::recurrentgemma_9b::schedule_type, g::griffin<38>>);

// ---- patterns spell schedules ---------------------------------------------
static_assert(std::is_same_v<g::pattern<"A R R R">, schedule<A, R, R, R>>);
static_assert(std::is_same_v<g::pattern<"R,R,A">, schedule<R, R, A>>);
static_assert(std::is_same_v<g::pattern<"">, schedule<>>);
static_assert(std::is_same_v<g::pattern<"G">, g::mqa_transformer<1>>);

// ---- algebra laws ----------------------------------------------------------
using P = schedule<R, A, G>;
static_assert(std::is_same_v<g::concat<>, schedule<>>);
static_assert(std::is_same_v<g::concat<P, schedule<>>, P>);                     // identity
static_assert(std::is_same_v<g::concat<schedule<>, P>, P>);
static_assert(std::is_same_v<g::concat<g::concat<P, P>, P>, g::concat<P, g::concat<P, P>>>);  // associativity
static_assert(std::is_same_v<g::repeat_c<2, P>, g::concat<P, P>>);
static_assert(std::is_same_v<g::repeat_c<0, P>, schedule<>>);
static_assert(std::is_same_v<g::cycle_c<P::size, P>, P>);
static_assert(std::is_same_v<g::cycle_c<7, P>, g::concat<P, P, schedule<R>>>);
static_assert(std::is_same_v<g::take_c<2, P>, schedule<R, A>>);
static_assert(std::is_same_v<g::at_c<P, 2>, G>);
static_assert(std::is_same_v<g::at_c<g::griffin<26>, 23>, A>);  // every third block is attention
static_assert(g::count_c<g::griffin<26>, g::local_attention_block> == 8);
static_assert(g::count_c<g::griffin<26>, g::recurrent_block> == 18);
static_assert(g::count_c<g::hawk<4>, g::local_attention_block> == 0);

// ---- concepts: what is and is not a block or a schedule --------------------
static_assert(g::TemporalMixer<g::recurrent_block>);
static_assert(g::TemporalMixer<g::local_attention_block>);
static_assert(g::TemporalMixer<g::global_attention_block>);
static_assert(!g::TemporalMixer<int>);
static_assert(!g::TemporalMixer<g::mlp_block>);  // an MLP mixes channels, not time
static_assert(g::ResidualBlock<R> && g::ResidualBlock<A> && g::ResidualBlock<G>);
static_assert(!g::ResidualBlock<g::recurrent_block>);  // a mixer alone is not a residual block
static_assert(g::Schedule<g::griffin<6>>);
static_assert(g::Schedule<schedule<>>);
static_assert(g::Schedule<g::dynamic_schedule>);
static_assert(g::StaticSchedule<g::hawk<2>> && !g::StaticSchedule<g::dynamic_schedule>);

template <class S>
concept model_instantiable = requires { typename g::model<S>; };
static_assert(!g::Schedule<schedule<int>>);
static_assert(!g::Schedule<std::tuple<R, A>>);
static_assert(!model_instantiable<schedule<int>>);
static_assert(model_instantiable<g::griffin<3>>);

// ---- sizes: fixed and dynamic extents ----------------------------------------
static_assert(g::Extent<std::size_t> && g::Extent<g::fixed<4>>);
static_assert(!g::Extent<int> && !g::Extent<float>);
static_assert(g::is_static_extent<g::fixed<4>> && !g::is_static_extent<std::size_t>);
static_assert(g::extent_value(g::fixed<7>{}) == 7);

// ---- presets and dimension checks -------------------------------------------
static_assert(g::recurrentgemma_2b::dims.head_dim() == 256);
static_assert(g::recurrentgemma_9b::dims.head_dim() == 256);
static_assert(g::recurrentgemma_2b::dims.lru_block_width() == 256);
static_assert(g::first_problem(g::dimensions{.vocab_size = 8, .width = 30, .mlp_expanded_width = 8, .num_heads = 4,
                                             .lru_width = 32, .attention_window_size = 4},
                               true, true) == g::dimensions_problem::width_not_divisible_by_num_heads);
static_assert(g::first_problem(g::dimensions{.vocab_size = 8, .width = 30, .mlp_expanded_width = 8, .num_heads = 4,
                                             .lru_width = 32, .attention_window_size = 4},
                               true, false) == g::dimensions_problem::none);  // Hawk has no attention heads to split
static_assert(g::check_dimensions<g::hawk<2>, g::dimensions{.vocab_size = 8, .width = 30, .mlp_expanded_width = 8,
                                                            .num_heads = 4, .lru_width = 32}>());
static_assert(g::runs_as(g::block_kind::global_attention, g::block_kind::attention));
static_assert(!g::runs_as(g::block_kind::attention, g::block_kind::global_attention));

TEST_CASE("schedules print in the paper's R/A/G notation") {
  CHECK(g::pattern_string<g::griffin<6>>() == "R R A R R A");
  CHECK(g::pattern_string<g::pattern<"A R R R">>() == "A R R R");
  CHECK(g::pattern_string<schedule<>>().empty());
  CHECK(g::recurrentgemma_2b::make_config().pattern().size() == 26 * 2 - 1);
  CHECK(g::block_kinds<g::mqa_transformer<2>>() ==
        std::vector<g::block_kind>{g::block_kind::global_attention, g::block_kind::global_attention});
}
