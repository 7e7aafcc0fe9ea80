// griffin/kernels/convert.hpp: loads a batch of floats from weights stored as
// float, bfloat16 or float16, converting in registers (AVX-512, AVX2 + F16C,
// SSE2), so bf16 and f16 checkpoints compute straight from their memory map.
// Any alignment of the source is valid.
#pragma once

#include <concepts>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include <immintrin.h>

#include "griffin/dtype.hpp"
#include "griffin/kernels/simd.hpp"

namespace griffin::kernels {

/// Weight element types the kernels read. int8 weights carry a scale per
/// output channel, which the matrix kernels apply; here they are integers.
template <class T>
concept WeightElement = std::same_as<T, float> || std::same_as<T, bfloat16> || std::same_as<T, float16> ||
                        std::same_as<T, std::int8_t>;

/// Scalar reference: element i of a weight array as a float (any alignment).
template <WeightElement T>
inline float load_scalar(const T* p, std::size_t i = 0) noexcept {
  T v;
  std::memcpy(&v, reinterpret_cast<const std::byte*>(p) + i * sizeof(T), sizeof(T));
  if constexpr (std::is_same_v<T, std::int8_t>)
    return static_cast<float>(v);
  else
    return to_float(v);
}

/// lanes<Arch> consecutive weights from p as a float batch.
template <class Arch, WeightElement T>
inline batch<Arch> load_batch(const T* p) noexcept {
  using B = batch<Arch>;
  if constexpr (std::is_same_v<T, float>) {
    return B::load_unaligned(p);
  }
#if defined(__AVX512F__)
  else if constexpr (std::is_base_of_v<xsimd::avx512f, Arch> && std::is_same_v<T, std::int8_t>) {
    return B(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))));
  }
  else if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    if constexpr (std::is_same_v<T, bfloat16>)
      return B(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
    else
      return B(_mm512_cvtph_ps(h));
  }
#endif
#if defined(__AVX2__)
  else if constexpr (std::is_base_of_v<xsimd::avx2, Arch> && std::is_same_v<T, std::int8_t>) {
    return B(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))));
  }
  else if constexpr (std::is_base_of_v<xsimd::avx2, Arch> && std::is_same_v<T, bfloat16>) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return B(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
  }
#endif
#if defined(__AVX2__) && defined(__F16C__)
  else if constexpr (std::is_base_of_v<xsimd::avx2, Arch> && std::is_same_v<T, float16>) {
    return B(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
#endif
#if defined(__SSE2__)
  else if constexpr (std::is_base_of_v<xsimd::sse2, Arch> && std::is_same_v<T, bfloat16>) {
    const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return B(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h)));
  }
#endif
  else {
    alignas(64) float tmp[lanes<Arch>];
    for (std::size_t i = 0; i < lanes<Arch>; ++i) tmp[i] = load_scalar(p, i);
    return B::load_aligned(tmp);
  }
}

}  // namespace griffin::kernels
