// griffin/kernels/simd.hpp: what every SIMD kernel shares. Kernels are
// functions templated on an xsimd architecture tag `Arch`; they run a vector
// loop over `xsimd::batch<float, Arch>` and finish with a scalar tail, so any
// count and any alignment is valid. Math functors are written once for both a
// float and a batch (xsimd overloads `exp`, `tanh`, ... for both).
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "griffin/parallel.hpp"

// Put before a loop over a register array (accumulators [MR][U], a tile's
// weight vectors) to unroll it completely. At -O2 GCC unrolls only loops that
// do not grow the code, and an array indexed by a loop that is not unrolled
// stays in memory: every step a load and a store, and bf16 decode at half
// speed (measured). With the pragma -O2 and -O3 build the same kernels.
#if defined(__clang__)
#define GRIFFIN_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define GRIFFIN_UNROLL _Pragma("GCC unroll 64")
#else
#define GRIFFIN_UNROLL
#endif

namespace griffin {

/// The architecture griffin's kernels use unless told otherwise: the best one
/// the compiler targets (AVX-512 under -march=native on a Zen 4/5 or newer Xeon).
using default_arch = xsimd::default_arch;

namespace kernels {

template <class Arch>
using batch = xsimd::batch<float, Arch>;

/// Lanes of a float batch on `Arch` (16 for AVX-512, 8 for AVX2, 4 for SSE2).
template <class Arch>
inline constexpr std::size_t lanes = batch<Arch>::size;

/// Whether `Arch` has a fused multiply-add. Without one xsimd::fma is a
/// multiply and an add, which a compiler targeting a CPU with FMA may fuse
/// in one place and not in another: two copies of a loop can then round
/// differently.
template <class Arch>
inline constexpr bool has_fma = std::is_base_of_v<xsimd::fma3<xsimd::sse4_2>, Arch> ||
                                std::is_base_of_v<xsimd::fma3<xsimd::avx>, Arch> ||
                                std::is_base_of_v<xsimd::fma3<xsimd::avx2>, Arch> || std::is_base_of_v<xsimd::avx512f, Arch>;

/// Calls `vec(i)` for i = 0, L, 2L, ... while a full batch fits in [0, n), then
/// `scalar(i)` for each remaining index: the vector loop + scalar tail.
template <class Arch, class Vec, class Scalar>
inline void simd_for(std::size_t n, Vec&& vec, Scalar&& scalar) {
  constexpr std::size_t L = lanes<Arch>;
  const std::size_t vector_end = n - n % L;
  for (std::size_t i = 0; i < vector_end; i += L) vec(i);
  for (std::size_t i = vector_end; i < n; ++i) scalar(i);
}

/// y[i] = f(x[i]) for i < n; x and y may alias.
template <class Arch, class F>
inline void transform(const float* x, float* y, std::size_t n, F f) {
  simd_for<Arch>(
      n, [&](std::size_t i) { f(batch<Arch>::load_unaligned(x + i)).store_unaligned(y + i); },
      [&](std::size_t i) { y[i] = f(x[i]); });
}

/// z[i] = f(x[i], y[i]) for i < n; z may alias x or y.
template <class Arch, class F>
inline void transform(const float* x, const float* y, float* z, std::size_t n, F f) {
  simd_for<Arch>(
      n,
      [&](std::size_t i) {
        f(batch<Arch>::load_unaligned(x + i), batch<Arch>::load_unaligned(y + i)).store_unaligned(z + i);
      },
      [&](std::size_t i) { z[i] = f(x[i], y[i]); });
}

/// Elements below which a threaded transform runs inline: a job on the pool
/// costs microseconds, a decode step's 2560-wide GELU less than one.
inline constexpr std::size_t parallel_transform_min = std::size_t{1} << 15;

/// `transform` shared out over `pool` (inline when null or n is small); the
/// same results, bit for bit (parallel_pieces).
template <class Arch, class F>
inline void transform(thread_pool* pool, const float* x, float* y, std::size_t n, F f) {
  parallel_pieces(pool, 1, n, lanes<Arch>, parallel_transform_min,
                  [&](std::size_t, std::size_t i0, std::size_t i1) { transform<Arch>(x + i0, y + i0, i1 - i0, f); });
}
template <class Arch, class F>
inline void transform(thread_pool* pool, const float* x, const float* y, float* z, std::size_t n, F f) {
  parallel_pieces(pool, 1, n, lanes<Arch>, parallel_transform_min,
                  [&](std::size_t, std::size_t i0, std::size_t i1) { transform<Arch>(x + i0, y + i0, z + i0, i1 - i0, f); });
}

/// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
/// as torch.nn.functional.gelu(x, approximate="tanh") computes it.
struct gelu_tanh_fn {
  template <class T>
  T operator()(const T& x) const {
    using std::tanh;
    using xsimd::tanh;
    constexpr float beta = 0.7978845608028654f;  // sqrt(2 / pi)
    constexpr float kappa = 0.044715f;
    const T inner = beta * (x + kappa * (x * x * x));
    return 0.5f * x * (1.0f + tanh(inner));
  }
};

/// The logistic sigmoid 1 / (1 + exp(-x)).
struct sigmoid_fn {
  template <class T>
  T operator()(const T& x) const {
    using std::exp;
    using xsimd::exp;
    return 1.0f / (1.0f + exp(-x));
  }
};

struct multiplies_fn {
  template <class T>
  T operator()(const T& x, const T& y) const {
    return x * y;
  }
};

struct plus_fn {
  template <class T>
  T operator()(const T& x, const T& y) const {
    return x + y;
  }
};

/// Makes the compiler hold `v` in a register from here on. A vector loaded
/// once and used by several FMAs is otherwise often re-read by each of them
/// (GCC 12 folds the load into every use), and a tile loop meant to load 8
/// vectors per 16 FMAs issues 20: load-bound instead of FMA-bound.
template <class B>
inline void keep_in_register(B& v) noexcept {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  typename B::register_type r = v;
  asm("" : "+v"(r));
  v = B(r);
#else
  (void)v;
#endif
}

/// The L = lanes<Arch> sums of L batches as one batch: lane i = the sum of
/// rows[i]'s lanes, folded in the same order for every i (so a sum does not
/// depend on the lane it lands in). Debian's xsimd 8.1 `haddp` permutes the
/// lanes on AVX-512 ([0 1 4 5 2 3 6 7 ...]); the AVX-512 fold is ours.
template <class Arch>
inline batch<Arch> fold_sums(const batch<Arch>* rows) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    // Per 128-bit lane: (e0 + e2) + (e1 + e3), rows in pairs, then fours.
    __m512 pairs[8], fours[4], eights[2];
    GRIFFIN_UNROLL for (int i = 0; i < 8; ++i)
      pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]),
                               _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]));
    GRIFFIN_UNROLL for (int i = 0; i < 4; ++i) {
      const __m512d a = _mm512_castps_pd(pairs[2 * i]), b = _mm512_castps_pd(pairs[2 * i + 1]);
      fours[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    // Then across 128-bit lanes: (L0 + L1) + (L2 + L3).
    GRIFFIN_UNROLL for (int i = 0; i < 2; ++i)
      eights[i] = _mm512_add_ps(_mm512_shuffle_f32x4(fours[2 * i], fours[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                                _mm512_shuffle_f32x4(fours[2 * i], fours[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(eights[0], eights[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(eights[0], eights[1], _MM_SHUFFLE(3, 1, 3, 1)));
  } else
#endif
  {
    return xsimd::haddp(rows);
  }
}

/// Scalar reference of `transform`: the same functor, one element at a time.
template <class F>
inline void transform_scalar(const float* x, float* y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <class F>
inline void transform_scalar(const float* x, const float* y, float* z, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) z[i] = f(x[i], y[i]);
}

}  // namespace kernels
}  // namespace griffin
