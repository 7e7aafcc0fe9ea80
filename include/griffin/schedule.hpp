// griffin/schedule.hpp: a model's layer schedule is a type list of residual
// blocks, written in the paper's notation:
//
//   using hybrid = schedule<A, R, R, R>;          // one line, any pattern
//   using same   = pattern<"A R R R">;            // the same, from a string
//   using deep   = cycle_c<26, pattern<"R R A">>; // RecurrentGemma-2B's 26 blocks
//   pattern_string<deep>() == "R R A R R A ... R R"
//
// The algebra (concat, repeat_c, cycle_c, take_c, at_c, count_c) works on
// plain templates, as Boost.Mp11 does; every result is again a schedule.
#pragma once

#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "griffin/concepts.hpp"
#include "griffin/config.hpp"
#include "griffin/residual_block.hpp"

namespace griffin {

/// A list of residual blocks, first to last.
template <class... Blocks>
struct schedule {
  static constexpr std::size_t size = sizeof...(Blocks);
};

namespace detail {

template <class... S>
struct concat_impl;
template <>
struct concat_impl<> {
  using type = schedule<>;
};
template <class... B>
struct concat_impl<schedule<B...>> {
  using type = schedule<B...>;
};
template <class... B1, class... B2, class... Rest>
struct concat_impl<schedule<B1...>, schedule<B2...>, Rest...> : concat_impl<schedule<B1..., B2...>, Rest...> {};

template <std::size_t N, class S>
struct cycle_impl;
template <std::size_t N, class... B>
struct cycle_impl<N, schedule<B...>> {
  static_assert(N == 0 || sizeof...(B) > 0, "griffin::cycle_c: cannot cycle an empty schedule");
  template <std::size_t... I>
  static auto make(std::index_sequence<I...>) -> schedule<std::tuple_element_t<I % sizeof...(B), std::tuple<B...>>...>;
  using type = decltype(make(std::make_index_sequence<N>{}));
};

template <class S, std::size_t I>
struct at_impl;
template <class... B, std::size_t I>
struct at_impl<schedule<B...>, I> {
  static_assert(I < sizeof...(B), "griffin::at_c: block index out of range");
  using type = std::tuple_element_t<I, std::tuple<B...>>;
};

template <std::size_t N, class S>
struct take_impl {
  static_assert(N <= S::size, "griffin::take_c: N exceeds the schedule's size");
  using type = typename cycle_impl<N, S>::type;
};

template <class S>
struct symbols_impl;
template <class... B>
struct symbols_impl<schedule<B...>> {
  static constexpr char value[] = {B::temporal_mixer::symbol..., '\0'};
  static constexpr block_kind kinds[] = {B::temporal_mixer::kind..., block_kind::recurrent};
};

}  // namespace detail

/// The blocks of S1, then S2, ...
template <class... S>
using concat = typename detail::concat_impl<S...>::type;

/// The first N blocks of S repeated cyclically (how transformers' RecurrentGemma
/// config expands `block_types`): cycle_c<5, schedule<R, R, A>> = R R A R R.
template <std::size_t N, class S>
using cycle_c = typename detail::cycle_impl<N, S>::type;

/// S, N times over.
template <std::size_t N, class S>
using repeat_c = cycle_c<N * S::size, S>;

/// The first N blocks of S.
template <std::size_t N, class S>
using take_c = typename detail::take_impl<N, S>::type;

/// Block I of S.
template <class S, std::size_t I>
using at_c = typename detail::at_impl<S, I>::type;

/// How many blocks of S have temporal mixer M.
template <class S, class M>
inline constexpr std::size_t count_c = 0;
template <class... B, class M>
inline constexpr std::size_t count_c<schedule<B...>, M> = (std::size_t{0} + ... + std::is_same_v<typename B::temporal_mixer, M>);

/// The schedule's temporal mixers in R/A/G notation, e.g. "R R A".
template <StaticSchedule S>
std::string pattern_string() {
  std::string s;
  for (const char* c = detail::symbols_impl<S>::value; *c; ++c) {
    if (!s.empty()) s += ' ';
    s += *c;
  }
  return s;
}

/// The schedule's block kinds, in order (a config's block_types).
template <StaticSchedule S>
std::vector<block_kind> block_kinds() {
  return {std::begin(detail::symbols_impl<S>::kinds), std::begin(detail::symbols_impl<S>::kinds) + S::size};
}

/// A string literal usable as a template argument.
template <std::size_t N>
struct fixed_string {
  char chars[N]{};
  constexpr fixed_string(const char (&s)[N]) {  // NOLINT(google-explicit-constructor)
    for (std::size_t i = 0; i < N; ++i) chars[i] = s[i];
  }
  [[nodiscard]] constexpr std::size_t size() const noexcept { return N - 1; }
};

namespace detail {

template <char C>
struct block_for_symbol {
  static_assert(C == 'R' || C == 'A' || C == 'G',
                "griffin::pattern: letters are R (recurrent), A (local attention) and G (global attention), "
                "separated by spaces");
  using type = R;
};
template <>
struct block_for_symbol<'A'> {
  using type = A;
};
template <>
struct block_for_symbol<'G'> {
  using type = G;
};

constexpr bool is_space(char c) noexcept { return c == ' ' || c == ',' || c == '\t' || c == '\n'; }

template <fixed_string P>
constexpr std::size_t pattern_length() {
  std::size_t n = 0;
  for (std::size_t i = 0; i < P.size(); ++i)
    if (!is_space(P.chars[i])) ++n;
  return n;
}

template <fixed_string P>
constexpr char pattern_letter(std::size_t k) {
  for (std::size_t i = 0; i < P.size(); ++i)
    if (!is_space(P.chars[i]) && k-- == 0) return P.chars[i];
  return '\0';
}

template <fixed_string P, std::size_t... I>
auto parse_pattern(std::index_sequence<I...>) -> schedule<typename block_for_symbol<pattern_letter<P>(I)>::type...>;

}  // namespace detail

/// The schedule spelled by a string of R, A and G: pattern<"A R R R">.
template <fixed_string P>
using pattern = decltype(detail::parse_pattern<P>(std::make_index_sequence<detail::pattern_length<P>()>{}));

}  // namespace griffin
