// griffin/dtype.hpp: the element types a checkpoint may store, their
// safetensors names, and exact conversions of bfloat16 / float16 to float.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

namespace griffin {

/// Element types of the safetensors format.
enum class dtype : std::uint8_t { f64, f32, f16, bf16, i64, i32, i16, i8, u8, boolean };

/// Bytes per element.
constexpr std::size_t dtype_size(dtype t) noexcept {
  switch (t) {
    case dtype::f64:
    case dtype::i64: return 8;
    case dtype::f32:
    case dtype::i32: return 4;
    case dtype::f16:
    case dtype::bf16:
    case dtype::i16: return 2;
    case dtype::i8:
    case dtype::u8:
    case dtype::boolean: return 1;
  }
  return 0;
}

/// The safetensors spelling: "F32", "BF16", ...
constexpr std::string_view dtype_name(dtype t) noexcept {
  switch (t) {
    case dtype::f64: return "F64";
    case dtype::f32: return "F32";
    case dtype::f16: return "F16";
    case dtype::bf16: return "BF16";
    case dtype::i64: return "I64";
    case dtype::i32: return "I32";
    case dtype::i16: return "I16";
    case dtype::i8: return "I8";
    case dtype::u8: return "U8";
    case dtype::boolean: return "BOOL";
  }
  return "?";
}

/// Parses a safetensors dtype name; nullopt for names griffin does not know.
constexpr std::optional<dtype> parse_dtype(std::string_view name) noexcept {
  for (dtype t : {dtype::f64, dtype::f32, dtype::f16, dtype::bf16, dtype::i64, dtype::i32, dtype::i16, dtype::i8,
                  dtype::u8, dtype::boolean})
    if (dtype_name(t) == name) return t;
  return std::nullopt;
}

/// bfloat16 bits -> float (exact).
constexpr float bf16_to_float(std::uint16_t bits) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

/// float -> bfloat16 bits, rounding to nearest even (as torch's .to(bfloat16)); NaN stays NaN.
constexpr std::uint16_t float_to_bf16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>((u + rounding) >> 16);
}

/// Rounds a float to the nearest bfloat16 value and returns it as a float.
constexpr float round_to_bf16(float f) noexcept { return bf16_to_float(float_to_bf16(f)); }

/// IEEE binary16 bits -> float (exact, subnormals included).
constexpr float f16_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return std::bit_cast<float>(sign);
  // Subnormal half: normalise it.
  int e = -1;
  do {
    ++e;
    mantissa <<= 1;
  } while ((mantissa & 0x400u) == 0);
  return std::bit_cast<float>(sign | ((112u - static_cast<std::uint32_t>(e)) << 23) | ((mantissa & 0x3ffu) << 13));
}

/// A bfloat16 value as stored in a checkpoint (its bits): bfloat16{bits},
/// bfloat16{float_to_bf16(x)}. Made from a float or double it does not
/// compile: as an aggregate, bfloat16(0.5f) was accepted by GCC (C++20
/// parenthesised aggregate initialisation, narrowing allowed) and held the
/// bits 0, the value 0.
struct bfloat16 {
  std::uint16_t bits;
  bfloat16() = default;  // trivial: uninitialised, or zero when value-initialised
  constexpr bfloat16(std::uint16_t b) noexcept : bits(b) {}  // NOLINT(google-explicit-constructor): bits, as stored
  template <class F>
    requires std::is_floating_point_v<F>
  bfloat16(F) = delete;  // a value is not its bits: use float_to_bf16
};

/// An IEEE binary16 value as stored in a checkpoint (its bits); as bfloat16,
/// float16{float_to_f16(x)}, never from a float directly.
struct float16 {
  std::uint16_t bits;
  float16() = default;
  constexpr float16(std::uint16_t b) noexcept : bits(b) {}  // NOLINT(google-explicit-constructor)
  template <class F>
    requires std::is_floating_point_v<F>
  float16(F) = delete;  // use float_to_f16
};
static_assert(std::is_trivially_copyable_v<bfloat16> && std::is_trivial_v<bfloat16> && sizeof(bfloat16) == 2);
static_assert(std::is_trivially_copyable_v<float16> && std::is_trivial_v<float16> && sizeof(float16) == 2);

/// The value of a stored weight element as a float.
constexpr float to_float(float v) noexcept { return v; }
constexpr float to_float(bfloat16 v) noexcept { return bf16_to_float(v.bits); }
constexpr float to_float(float16 v) noexcept { return f16_to_float(v.bits); }

/// The dtype of a weight element type.
template <class T>
inline constexpr dtype dtype_of = dtype::f32;
template <>
inline constexpr dtype dtype_of<bfloat16> = dtype::bf16;
template <>
inline constexpr dtype dtype_of<float16> = dtype::f16;
template <>
inline constexpr dtype dtype_of<std::int8_t> = dtype::i8;

/// float -> IEEE binary16 bits, rounding to nearest even; overflow gives infinity, NaN stays NaN.
constexpr std::uint16_t float_to_f16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;                  // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;                 // rounds to >= 65520: infinity
  if (abs < 0x38800000u) {                                       // below the smallest normal half: subnormal
    const float scaled = std::bit_cast<float>(abs) * 16777216.0f;  // 2^24: units of the smallest subnormal
    const auto q = static_cast<std::uint32_t>(scaled);
    const float rest = scaled - static_cast<float>(q);
    const std::uint32_t r = rest > 0.5f || (rest == 0.5f && (q & 1u)) ? q + 1 : q;
    return static_cast<std::uint16_t>(sign | r);
  }
  const std::uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);  // round the 13 dropped bits to nearest even
  return static_cast<std::uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

/// Converts `count` elements of type `from` stored (little-endian, any
/// alignment) in `bytes` to floats. Returns false for a non-float type.
inline bool convert_to_float(dtype from, const std::byte* bytes, std::size_t count, float* out) noexcept {
  switch (from) {
    case dtype::f32:
      if (count) std::memcpy(out, bytes, count * 4);  // memcpy of null pointers is undefined even for 0 bytes
      return true;
    case dtype::bf16:
    case dtype::f16:
      for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, bytes + 2 * i, 2);
        out[i] = from == dtype::bf16 ? bf16_to_float(bits) : f16_to_float(bits);
      }
      return true;
    case dtype::f64:
      for (std::size_t i = 0; i < count; ++i) {
        double d;
        std::memcpy(&d, bytes + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      return true;
    default: return false;
  }
}

}  // namespace griffin
