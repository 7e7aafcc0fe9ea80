// griffin/extent.hpp: one code path for sizes fixed at compile time or read
// at run time (the CuTe habit). A kernel takes its sizes as `Extent`s: a
// plain `std::size_t` read from a config, or `fixed<N>` when the caller
// knows N at compile time and wants the compiler to unroll for it.
//
//   kernels::rms_norm<Arch>(x, scale, y, cfg.width);   // dynamic
//   kernels::rms_norm<Arch>(x, scale, y, fixed<64>{}); // static, same code
#pragma once

#include <concepts>
#include <cstddef>
#include <type_traits>

namespace griffin {

/// A size known at compile time.
template <std::size_t N>
using fixed = std::integral_constant<std::size_t, N>;

namespace detail {
template <class T>
inline constexpr bool is_fixed_extent = false;
template <class I, I N>
inline constexpr bool is_fixed_extent<std::integral_constant<I, N>> = std::is_integral_v<I> && N >= 0;
}  // namespace detail

/// A size: an unsigned integer known at run time, or a `fixed<N>`.
template <class E>
concept Extent = std::unsigned_integral<E> || detail::is_fixed_extent<E>;

/// True when the extent's value is part of its type.
template <Extent E>
inline constexpr bool is_static_extent = detail::is_fixed_extent<E>;

/// The value of an extent, as a `std::size_t`.
template <Extent E>
constexpr std::size_t extent_value(E e) noexcept {
  return static_cast<std::size_t>(e);
}

}  // namespace griffin
