// griffin/concepts.hpp: the roles a type plays in a schedule.
//
//   TemporalMixer  recurrent_block, local_attention_block, global_attention_block:
//                  weights, per-row decode state, load, forward
//   ResidualBlock  residual_block<M>: pre-norm mixer + pre-norm MLP, each residual
//   Schedule       schedule<B...> of ResidualBlocks (or dynamic_schedule)
#pragma once

#include <concepts>
#include <cstddef>
#include <string>
#include <type_traits>

#include "griffin/block_io.hpp"
#include "griffin/config.hpp"
#include "griffin/weights.hpp"

namespace griffin {

/// A temporal-mixing block: it names its kind and letter, loads its weights
/// under a prefix, makes a decode state for a batch, and adds its output for a
/// chunk to the residual stream, reading and advancing the state when given one.
template <class M>
concept TemporalMixer =
    requires {
      { M::kind } -> std::convertible_to<block_kind>;
      { M::symbol } -> std::convertible_to<char>;
      { M::reference_name } -> std::convertible_to<const char*>;
      typename M::weights;
      typename M::state;
    } &&
    requires(weight_reader& r, const std::string& prefix, const config& c, std::size_t n,
             const typename M::weights& w, typename M::state* s, typename M::state& state, const float* x,
             const block_io& io) {
      { M::load(r, prefix, c, n) } -> std::same_as<typename M::weights>;
      { M::make_state(c, n, n) } -> std::same_as<typename M::state>;
      M::forward(w, s, x, io);
      { state.bytes() } -> std::convertible_to<std::size_t>;
      state.reset_row(n, n);
    };

/// A residual block: a temporal mixer plus the MLP, with weights loaded by layer index.
template <class B>
concept ResidualBlock =
    requires { typename B::temporal_mixer; } && TemporalMixer<typename B::temporal_mixer> &&
    requires(weight_reader& r, const config& c, std::size_t n, const typename B::weights& w,
             typename B::state* s, const block_io& io) {
      { B::load(r, n, c) } -> std::same_as<typename B::weights>;
      B::forward(w, s, io);
    };

template <class... Blocks>
struct schedule;

/// The schedule whose blocks are read from the config at run time.
struct dynamic_schedule {};

namespace detail {
template <class S>
inline constexpr bool is_static_schedule = false;
template <class... B>
inline constexpr bool is_static_schedule<schedule<B...>> = (ResidualBlock<B> && ...);
}  // namespace detail

/// A compiled list of residual blocks, or `dynamic_schedule`.
template <class S>
concept Schedule = detail::is_static_schedule<S> || std::same_as<S, dynamic_schedule>;

/// A schedule whose blocks are known at compile time.
template <class S>
concept StaticSchedule = detail::is_static_schedule<S>;

}  // namespace griffin
