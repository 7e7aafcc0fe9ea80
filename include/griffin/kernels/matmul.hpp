// griffin/kernels/matmul.hpp: y = x W + b for float activations and weights
// stored as float, bfloat16, float16 or int8 (one scale per output channel),
// in either layout a checkpoint uses: out x in (torch nn.Linear: every linear
// layer, the tied logits) or in x out (einsum weights: the reference's
// ffw_up.w and the block-diagonal RG-LRU gates). No checkpoint needs a
// transposed or converted copy.
//
// Compute rules (what the scalar reference computes, and every path matches):
//   float, float16 weights: activations in float, weights converted exactly,
//     products summed in float.
//   bfloat16 weights: activations rounded to bfloat16 first, as a bf16 model
//     runs in the reference; the exact products are summed in float. On a CPU
//     with AVX512-BF16 this is one vdpbf16ps per 32 weights.
//   int8 weights: each activation row rounded to a 16-bit grid (its absolute
//     maximum / 32767 apart: a relative error of 2^-16 of the row's largest
//     value), products summed, times the channel's scale. With AVX512-VNNI
//     every path sums the integer products exactly (vpdpwssd) and moves the
//     sums to float once per 8192 (gemv) or 512 (gemm) elements of K; on
//     AVX2 the out x in gemv (vpmaddwd, once per 4096) and the gemm do too.
//
// Two paths, chosen by the number of activation rows M:
//   gemv (M < gemm_min_rows: decode steps, small batches): each output is a
//     dot product along a weight row streamed once from memory; memory-bound.
//     Up to gemv_row_max_rows rows each weight row is read alone; a larger
//     batch runs tiles of 4 rows x 4 weight rows (bf16, int8).
//   gemm (prefill, large batches): activations are packed once into
//     k-major panels; a register tile of 8 weight rows x 3 vectors of tokens
//     (48 on AVX-512, 24 on AVX2) runs over cache blocks of K (KC), tokens
//     (MC) and weight rows (NC), with weights broadcast from their own rows
//     in place (or from a small converted panel for int8, float16, bf16
//     without AVX512-BF16, in x out or odd K). Compute-bound. bf16 weights
//     on a CPU with AMX (amx.hpp) run on its tiles instead (amx_matmul),
//     from amx_min_rows rows (3 for [out, in], 12 for [in, out]) on, and
//     int8 [out, in] weights from amx_min_rows_int8 (10) on AMX-INT8.
// Both split the output channels over a thread pool (the gemv in shares that
// threads finish for each other: thread_pool::run_shares); every output is
// computed by the same code whatever the thread count or the piece it falls
// in, so results do not depend on either.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "griffin/kernels/amx.hpp"
#include "griffin/kernels/convert.hpp"
#include "griffin/kernels/simd.hpp"
#include "griffin/parallel.hpp"
#include "griffin/tensor.hpp"

namespace griffin {

/// How a matrix mapping `in` features to `out` features is stored.
enum class weight_layout : std::uint8_t {
  out_in,  ///< [out, in]: torch nn.Linear, embeddings
  in_out,  ///< [in, out]: einsum weights (the reference's ffw_up.w, the RG-LRU gates)
};

namespace kernels {

/// A row-major matrix view: element (r, c) is data[r * stride + c].
template <class T>
struct matrix_view {
  T* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t stride = 0;

  [[nodiscard]] T* row(std::size_t r) const noexcept { return data + r * stride; }
};

template <class T>
matrix_view(T*, std::size_t, std::size_t, std::size_t) -> matrix_view<T>;

/// A contiguous rows x cols view.
template <class T>
[[nodiscard]] constexpr matrix_view<T> dense(T* data, std::size_t rows, std::size_t cols) noexcept {
  return {data, rows, cols, cols};
}

/// Weights mapping `in` (K) features to `out` (N) features, stored as T in
/// `layout` with row stride `stride` (elements); `scale` [out] for int8.
template <WeightElement T>
struct weights_view {
  const T* data = nullptr;
  std::size_t out = 0;
  std::size_t in = 0;
  std::size_t stride = 0;
  weight_layout layout = weight_layout::out_in;
  const float* scale = nullptr;

  /// Element (n, k): the weight from input k to output n, as a float (unscaled for int8).
  [[nodiscard]] float at(std::size_t n, std::size_t k) const noexcept {
    return layout == weight_layout::out_in ? load_scalar(data + n * stride, k) : load_scalar(data + k * stride, n);
  }
};

/// Out x in weights [N, K], contiguous.
template <WeightElement T>
[[nodiscard]] constexpr weights_view<T> out_in(const T* data, std::size_t out, std::size_t in,
                                               const float* scale = nullptr) noexcept {
  return {data, out, in, in, weight_layout::out_in, scale};
}
/// In x out weights [K, N], contiguous.
template <WeightElement T>
[[nodiscard]] constexpr weights_view<T> in_out(const T* data, std::size_t out, std::size_t in,
                                               const float* scale = nullptr) noexcept {
  return {data, out, in, out, weight_layout::in_out, scale};
}

/// True when weights of type T compute with activations rounded to bfloat16.
template <class T>
inline constexpr bool bf16_activations = std::is_same_v<T, bfloat16>;

/// The grid step for a row whose largest |x| is amax: amax / 32767, 1 for
/// a zero row, and never below the smallest subnormal (so that x / step is
/// always defined for a row of tiny subnormals).
inline float int16_grid_step(float amax) noexcept {
  return amax > 0.0f ? std::max(amax / 32767.0f, std::numeric_limits<float>::denorm_min()) : 1.0f;
}
/// Scale of the 16-bit grid int8 weights round a row of K activations to:
/// int16_grid_step(max |x|) (NaN when the row is not finite).
inline float int16_grid_scale(const float* x, std::size_t K) noexcept {
  float amax = 0.0f;
  for (std::size_t k = 0; k < K; ++k) {
    if (!std::isfinite(x[k])) return std::numeric_limits<float>::quiet_NaN();
    amax = std::max(amax, std::abs(x[k]));
  }
  return int16_grid_step(amax);
}
/// x on that grid: the integer round(x / scale), or 0 when scale is NaN.
inline std::int16_t int16_grid(float x, float scale) noexcept {
  if (std::isnan(scale)) return 0;
  return static_cast<std::int16_t>(std::clamp(std::nearbyint(x / scale), -32767.0f, 32767.0f));
}

/// A row of K activations on its 16-bit grid: out[k] = int16_grid(x[k],
/// scale) for k < K, zeros up to `padded`; returns the row's scale
/// (int16_grid_scale). The vectorised int8 GEMV's activation step; equal to
/// the scalar functions bit for bit (tested), NaN and infinity included.
inline float to_int16_grid(const float* x, std::int16_t* out, std::size_t K, std::size_t padded) noexcept {
  std::size_t k = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
  // [K] -> max |x|, with any NaN or infinity flagged (fpclass 0x99: QNaN, SNaN, +-inf)
  __m512 amax16 = _mm512_setzero_ps();
  __mmask16 bad = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 v = _mm512_loadu_ps(x + k);
    bad |= _mm512_fpclass_ps_mask(v, 0x99);
    amax16 = _mm512_max_ps(amax16, _mm512_abs_ps(v));
  }
  if (k < K) {
    const auto mask = static_cast<__mmask16>((1u << (K - k)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + k);
    bad |= _mm512_fpclass_ps_mask(v, 0x99);
    amax16 = _mm512_max_ps(amax16, _mm512_abs_ps(v));
  }
  if (bad) {
    std::fill(out, out + padded, std::int16_t{0});
    return std::numeric_limits<float>::quiet_NaN();
  }
  const float scale = int16_grid_step(_mm512_reduce_max_ps(amax16));
  // round(x / scale) to nearest even (what nearbyint does in the default
  // rounding mode), clamped to +-32767: the division as the scalar rule does it
  const __m512 s = _mm512_set1_ps(scale), lim = _mm512_set1_ps(32767.0f);
  const auto grid16 = [&](__m512 v) {
    const __m512 q = _mm512_roundscale_ps(_mm512_div_ps(v, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(q, -lim), lim)));
  };
  for (k = 0; k + 16 <= K; k += 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + k), grid16(_mm512_loadu_ps(x + k)));
  for (; k < K; ++k) out[k] = int16_grid(x[k], scale);
  std::fill(out + K, out + padded, std::int16_t{0});
  return scale;
#else
  const float scale = int16_grid_scale(x, K);
  for (; k < K; ++k) out[k] = int16_grid(x[k], scale);
  std::fill(out + K, out + padded, std::int16_t{0});
  return scale;
#endif
}

/// The activation value weights of type T multiply: v itself, v rounded to
/// bf16, or (int8) v on its row's 16-bit grid of scale `grid`.
template <class T>
inline float activation_for(float v, [[maybe_unused]] float grid) noexcept {
  if constexpr (bf16_activations<T>)
    return round_to_bf16(v);
  else if constexpr (std::is_same_v<T, std::int8_t>)
    return static_cast<float>(int16_grid(v, grid)) * grid;
  else
    return v;
}

/// Scalar reference. x: [M, K]; w: N outputs from K inputs; bias: [N] or null;
/// y: [M, N]. y[m, n] = scale[n] * sum_k x'[m, k] w[n, k] + bias[n] (added to
/// y when `accumulate`), x' = x rounded to bf16 for bf16 weights, else x.
template <WeightElement T>
inline void matmul_scalar(matrix_view<const float> x, weights_view<T> w, const float* bias, matrix_view<float> y,
                          bool accumulate = false) {
  assert(x.cols == w.in && y.rows == x.rows && y.cols == w.out);
  for (std::size_t m = 0; m < x.rows; ++m)
    for (std::size_t n = 0; n < w.out; ++n) {
      const float grid = std::is_same_v<T, std::int8_t> ? int16_grid_scale(x.row(m), x.cols) : 1.0f;
      float acc = 0.0f;
      for (std::size_t k = 0; k < x.cols; ++k) acc += activation_for<T>(x.row(m)[k], grid) * w.at(n, k);
      if (w.scale) acc *= w.scale[n];
      if (bias) acc += bias[n];
      y.row(m)[n] = accumulate ? y.row(m)[n] + acc : acc;
    }
}

namespace detail {

// A per-thread buffer of at least n elements of T, one per Tag; it grows and
// is kept, so steady-state calls allocate nothing.
template <class Tag, class T>
inline T* thread_buffer(std::size_t n) {
  thread_local aligned_vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

inline std::uint32_t load_u32(const void* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Two bf16 values as one 32-bit word: `lo` in the low half (the even k).
inline std::uint32_t bf16_pair(float lo, float hi) noexcept {
  return static_cast<std::uint32_t>(float_to_bf16(lo)) | static_cast<std::uint32_t>(float_to_bf16(hi)) << 16;
}

// out[i] = x[i] as bf16 bits (nearest even), for i < n.
inline void to_bf16(const float* x, std::uint16_t* out, std::size_t n) noexcept {
  std::size_t i = 0;
#if defined(__AVX512BF16__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
#endif
  for (; i < n; ++i) out[i] = float_to_bf16(x[i]);
}

// The epilogue every path shares: y = scale * acc + bias (+ y).
inline void store_output(float acc, const float* scale, const float* bias, std::size_t n, float& out,
                         bool accumulate) noexcept {
  if (scale) acc *= scale[n];
  if (bias) acc += bias[n];
  out = accumulate ? out + acc : acc;
}

// Activation rows as the rule for T wants them: x itself, or rounded to
// bf16 into a per-thread buffer.
template <class T>
inline matrix_view<const float> activations_for(matrix_view<const float> x) {
  if constexpr (!bf16_activations<T> && !std::is_same_v<T, std::int8_t>) {
    return x;
  } else {
    struct tag;
    float* r = thread_buffer<tag, float>(x.rows * x.cols);
    for (std::size_t m = 0; m < x.rows; ++m) {
      const float* row = x.row(m);
      float* out = r + m * x.cols;
      if constexpr (bf16_activations<T>) {
        for (std::size_t k = 0; k < x.cols; ++k) out[k] = round_to_bf16(row[k]);
      } else {
        const float s = int16_grid_scale(row, x.cols);
        for (std::size_t k = 0; k < x.cols; ++k) out[k] = static_cast<float>(int16_grid(row[k], s)) * s;
      }
    }
    return dense<const float>(r, x.rows, x.cols);
  }
}

// Row stride of activations on their int16 grids: whole 32-element steps
// (the int8 kernels read them 64 bytes at a time, aligned), zeros past K.
inline constexpr std::size_t int16_grid_stride(std::size_t K) noexcept { return (K + 31) / 32 * 32; }

// x's rows on their 16-bit grids, xq [M, ldxq], and the grid steps xs [M],
// in per-thread buffers of the calling thread; rows split over `pool` when
// one is given.
struct int16_grid_rows {
  std::int16_t* xq;
  float* xs;
};
inline int16_grid_rows to_int16_grid_rows(matrix_view<const float> x, std::size_t ldxq, thread_pool* pool) {
  struct xq_tag;
  struct xs_tag;
  const std::size_t M = x.rows;
  std::int16_t* xq = thread_buffer<xq_tag, std::int16_t>(M * ldxq);
  float* xs = thread_buffer<xs_tag, float>(M);
  const std::size_t tasks = pool ? std::max<std::size_t>(1, std::min(pool->size(), M)) : 1, chunk = (M + tasks - 1) / tasks;
  parallel_run(pool, tasks, [&](std::size_t t) {
    for (std::size_t m = t * chunk; m < std::min(M, (t + 1) * chunk); ++m) xs[m] = to_int16_grid(x.row(m), xq + m * ldxq, x.cols, ldxq);
  });
  return {xq, xs};
}

// ---- gemv: dot products along out x in rows ---------------------------------

// Up to this many activation rows a bf16 or int8 gemv streams each weight row
// alone against them (decode); from here to gemm_min_rows, in tiles of
// weight rows (batched decode).
inline constexpr std::size_t gemv_row_max_rows = 4;
// True when int8 weights run on integers, in the gemv and the packed gemm:
// activations on their rows' 16-bit grids, weights widened to int16, pairs
// multiplied and summed exactly by vpdpwssd (AVX512-VNNI) or vpmaddwd +
// vpaddd (AVX2: gemv_row_madd, gemm_micro).
template <class T, class Arch>
inline constexpr bool int16_pairs = std::is_same_v<T, std::int8_t> &&
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
                                    (std::is_base_of_v<xsimd::avx512bw, Arch> || std::is_base_of_v<xsimd::avx2, Arch>);
#elif defined(__AVX2__)
                                    std::is_base_of_v<xsimd::avx2, Arch>;
#else
                                    false;
#endif
// True when bf16 weights multiply in pairs with vdpbf16ps (AVX512-BF16), in
// the packed gemm: activations packed as bf16 pairs, weight rows broadcast in
// place. Elsewhere the gemm converts bf16 weight panels to float (exactly)
// and packs the activations as floats rounded to bf16: the same products,
// summed by the float register tile in k order.
template <class T, class Arch>
inline constexpr bool bf16_pairs = std::is_same_v<T, bfloat16> &&
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
                                   std::is_base_of_v<xsimd::avx512bw, Arch>;
#else
                                   false;
#endif
// Weight rows a batched gemv runs against every block of activation rows
// before it moves on: 32 bf16 rows of RecurrentGemma's 2560 inputs (160 KiB)
// come from memory once and from L2 for the other blocks.
inline constexpr std::size_t gemv_tile_group = 32;

// Weights a thread claims at a time of its share of a gemv
// (thread_pool::run_shares). Each thread streams its own contiguous share, so
// the size only sets how finely the last pieces balance and how often a
// thread claims one: 16 KiB to 256 KiB ran the 2B decode alike, 256 KiB costs
// the least in matrices that fit in cache. A shared counter handing out small
// pieces in turn (each thread's reads no longer one sequence) ran the 2B
// decode at 65-90% of the speed of fixed halves.
inline constexpr std::size_t gemv_piece_bytes = std::size_t{256} << 10;

// Row n of y's columns for MR activation rows: dot products along weight row
// n (out x in), four batches in flight so the row streams from memory as one
// sequence (consecutive rows continue it); the remainder of K scalar.
template <class Arch, std::size_t MR, class T>
inline void gemv_row(matrix_view<const float> x, weights_view<T> w, const float* bias, matrix_view<float> y,
                     std::size_t m0, std::size_t n, bool accumulate) {
  using B = batch<Arch>;
  constexpr std::size_t L = B::size, U = 4;
  const std::size_t K = x.cols;
  B acc[MR][U];
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
    GRIFFIN_UNROLL for (std::size_t u = 0; u < U; ++u) acc[i][u] = B(0.0f);
  const T* wr = w.data + n * w.stride;
  std::size_t k = 0;
  for (; k + U * L <= K; k += U * L)
    GRIFFIN_UNROLL for (std::size_t u = 0; u < U; ++u) {
      const B wv = load_batch<Arch>(wr + k + u * L);
      GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) acc[i][u] = xsimd::fma(B::load_unaligned(x.row(m0 + i) + k + u * L), wv, acc[i][u]);
    }
  for (; k + L <= K; k += L) {
    const B wv = load_batch<Arch>(wr + k);
    GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) acc[i][0] = xsimd::fma(B::load_unaligned(x.row(m0 + i) + k), wv, acc[i][0]);
  }
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) {
    float sum = xsimd::hadd((acc[i][0] + acc[i][1]) + (acc[i][2] + acc[i][3]));
    for (std::size_t kk = k; kk < K; ++kk) sum += x.row(m0 + i)[kk] * load_scalar(wr, kk);
    store_output(sum, w.scale, bias, n, y.row(m0 + i)[n], accumulate);
  }
}

// How far ahead of its reads a gemv row asks for weights with a software
// prefetch (a prefetch past a row's end reaches the next row, or nothing
// harmful: prefetches never fault); 0, the default, issues none. On Zen 5 the
// hardware prefetchers already follow a row stream, and a prefetch 512 B to
// 2 KiB ahead cost 7-10% of decode speed (Hawk ~1B, bf16 and int8, 2 threads,
// measured interleaved in one process); other CPUs may differ.
#ifndef GRIFFIN_GEMV_PREFETCH
#define GRIFFIN_GEMV_PREFETCH 0
#endif
inline constexpr std::size_t gemv_prefetch_bytes = GRIFFIN_GEMV_PREFETCH;

}  // namespace detail

/// How far ahead (bytes; 0 for none) the AVX-512 gemv rows of 1-4
/// activation rows ask for their weights: into L2 (`prefetcht1`, bf16 rows
/// once per 128 B, int8 rows once per 64 B) and, for int8, a second, farther
/// one (`prefetcht2`, once per 64 B). Each CPU gets what measured fastest on
/// it (docs/09-performance.md, decode steps alternating in one process, 2B
/// shape, 2 threads, batch 1):
///   Zen 4 (AMD family 0x19 with AVX-512) and any other CPU: bf16 4 KiB, int8
///     6 KiB and 16 KiB far. On the Zen 4 guest 4 KiB gave bf16 and int8
///     7-12% more decode speed at batch 1-2, int8 at 6 KiB another ~10%, the
///     far one ~5% outside slow minutes.
///   Zen 5 (AMD family 0x1A): bf16 none, int8 6 KiB, no far one. There the
///     bf16 L2 prefetch cost 4-7% of the weight stream and the far int8 one
///     4-10%, while the int8 L2 one at 4-6 KiB gave +15-30% (68-77% of the
///     read pass without it, 85-100% with it).
///   Intel: bf16 4 KiB, int8 6 KiB, no far one. On a Xeon with AMX (family
///     6 model 167) an int8 step took 104.3 ms (median of 30) with the far
///     one, 101.1 without; bf16 ran 2-10% slower at 0, 2 or 8 KiB than at 4,
///     int8 28% slower without its L2 prefetch.
/// A build may fix any of them with -DGRIFFIN_GEMV_L2_PREFETCH_BF16=<bytes>,
/// GRIFFIN_GEMV_L2_PREFETCH_INT8, GRIFFIN_GEMV_L2_PREFETCH (both) or
/// GRIFFIN_GEMV_FAR_PREFETCH_INT8; a program with set_gemv_prefetch.
struct gemv_prefetch_distances {
  std::size_t l2_bf16 = 4096, l2_int8 = 6144, far_int8 = 16384;
  friend bool operator==(const gemv_prefetch_distances&, const gemv_prefetch_distances&) = default;
};

namespace detail {

// The CPU's vendor (CPUID leaf 0: "AuthenticAMD", "GenuineIntel", ...), or
// "" without CPUID.
inline std::string_view cpu_vendor() noexcept {
  static const std::array<char, 13> id = [] {
    std::array<char, 13> v{};
#if defined(__x86_64__) || defined(__i386__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid(0, &a, &b, &c, &d)) {
      std::memcpy(v.data(), &b, 4);
      std::memcpy(v.data() + 4, &d, 4);
      std::memcpy(v.data() + 8, &c, 4);
    }
#endif
    return v;
  }();
  return id.data();
}

// AMD's CPU family (base + extended, as CPUID leaf 1 reports it), or 0 on
// another vendor or without CPUID.
inline unsigned amd_cpu_family() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (cpu_vendor() != "AuthenticAMD" || !__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const unsigned base = (a >> 8) & 0xf;
  return base == 0xf ? base + ((a >> 20) & 0xff) : base;
#else
  return 0;
#endif
}

inline gemv_prefetch_distances cpu_gemv_prefetch() noexcept {
  gemv_prefetch_distances d;
  if (amd_cpu_family() >= 0x1a) d = {0, 6144, 0};
  else if (cpu_vendor() == "GenuineIntel") d.far_int8 = 0;
#ifdef GRIFFIN_GEMV_L2_PREFETCH
  d.l2_bf16 = d.l2_int8 = GRIFFIN_GEMV_L2_PREFETCH;
#endif
#ifdef GRIFFIN_GEMV_L2_PREFETCH_BF16
  d.l2_bf16 = GRIFFIN_GEMV_L2_PREFETCH_BF16;
#endif
#ifdef GRIFFIN_GEMV_L2_PREFETCH_INT8
  d.l2_int8 = GRIFFIN_GEMV_L2_PREFETCH_INT8;
#endif
#ifdef GRIFFIN_GEMV_FAR_PREFETCH_INT8
  d.far_int8 = GRIFFIN_GEMV_FAR_PREFETCH_INT8;
#endif
  return d;
}

// The distances in force, read by each gemv row call (relaxed: a change
// reaches the rows of later calls).
struct gemv_prefetch_setting {
  std::atomic<std::size_t> l2_bf16, l2_int8, far_int8;
  explicit gemv_prefetch_setting(gemv_prefetch_distances d) noexcept : l2_bf16(d.l2_bf16), l2_int8(d.l2_int8), far_int8(d.far_int8) {}
};
inline gemv_prefetch_setting& gemv_prefetch_now() noexcept {
  static gemv_prefetch_setting s(cpu_gemv_prefetch());
  return s;
}

}  // namespace detail

/// The gemv prefetch distances in force (chosen for this CPU unless set).
[[nodiscard]] inline gemv_prefetch_distances gemv_prefetch() noexcept {
  auto& s = detail::gemv_prefetch_now();
  return {s.l2_bf16.load(std::memory_order_relaxed), s.l2_int8.load(std::memory_order_relaxed),
          s.far_int8.load(std::memory_order_relaxed)};
}
/// Sets them for the calls that start after it (results do not change:
/// a prefetch only moves data between caches). Returns the previous ones.
inline gemv_prefetch_distances set_gemv_prefetch(gemv_prefetch_distances d) noexcept {
  const gemv_prefetch_distances old = gemv_prefetch();
  auto& s = detail::gemv_prefetch_now();
  s.l2_bf16.store(d.l2_bf16, std::memory_order_relaxed);
  s.l2_int8.store(d.l2_int8, std::memory_order_relaxed);
  s.far_int8.store(d.far_int8, std::memory_order_relaxed);
  return old;
}

namespace detail {

#if defined(__AVX512BW__)
// The lanes of a 32 x 16-bit (or 8-bit) step below r: all 32 from r = 32 on.
inline __mmask32 mask_below(std::size_t r) noexcept {
  return r >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((std::uint64_t{1} << r) - 1);
}
#endif

#if defined(__AVX512BF16__)
// The same for bf16 weights with vdpbf16ps. xb holds the activation rows as
// bf16 [MR, ldxb]: row m's element k at xb[m * ldxb + xoff + k], zeros around.
// xoff is row 0's weight misalignment in elements (address % 64 / 2), so for
// each weight row with that misalignment (every row when a row is a whole
// number of cache lines, as in every RecurrentGemma matrix) the loop runs over
// aligned 64-byte blocks from the one holding the row's first element: the
// weight stream never splits a load over two cache lines (which costs a
// quarter of the bandwidth), the first and last blocks are masked. A row with
// another misalignment is read unaligned from its first element.
template <std::size_t MR>
inline void gemv_row_dpbf16(const std::uint16_t* xb, std::size_t ldxb, std::size_t xoff, weights_view<bfloat16> w,
                            const float* bias, matrix_view<float> y, std::size_t m0, std::size_t n, bool accumulate) {
  constexpr std::size_t U = 4;
  __m512 acc[MR][U];
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
    GRIFFIN_UNROLL for (std::size_t u = 0; u < U; ++u) acc[i][u] = _mm512_setzero_ps();
  const auto* wr = reinterpret_cast<const std::uint16_t*>(w.data + n * w.stride);
  const std::size_t lead = reinterpret_cast<std::uintptr_t>(wr) % 64 / 2 == xoff ? xoff : 0;
  const std::uint16_t* wb = wr - lead;        // weights of block position j: wb[j]
  const std::uint16_t* xbase = xb + xoff - lead;  // activations of block position j: xbase[m * ldxb + j]
  const std::size_t len = lead + w.in;
  const std::size_t l2 = gemv_prefetch_now().l2_bf16.load(std::memory_order_relaxed);
  const auto step = [&](std::size_t j, std::size_t u, __mmask32 mask) {
    const __m512i wv = _mm512_maskz_loadu_epi16(mask, wb + j);
    GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
      acc[i][u] = _mm512_dpbf16_ps(acc[i][u], (__m512bh)_mm512_maskz_loadu_epi16(mask, xbase + (m0 + i) * ldxb + j), (__m512bh)wv);
  };
  std::size_t j = 0;
  if (lead) {
    step(0, 0, mask_below(len) & ~mask_below(lead));
    j = 32;
  }
  for (; j + 32 * U <= len; j += 32 * U)
    GRIFFIN_UNROLL for (std::size_t u = 0; u < U; ++u) {
      if constexpr (gemv_prefetch_bytes > 0) _mm_prefetch(reinterpret_cast<const char*>(wb + j + 32 * u) + gemv_prefetch_bytes, _MM_HINT_T0);
      if (l2 > 0 && u % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(wb + j + 32 * u) + l2, _MM_HINT_T1);
      const __m512i wv = _mm512_loadu_si512(wb + j + 32 * u);
      GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
        acc[i][u] = _mm512_dpbf16_ps(acc[i][u], (__m512bh)_mm512_loadu_si512(xbase + (m0 + i) * ldxb + j + 32 * u), (__m512bh)wv);
    }
  for (; j < len; j += 32) step(j, 1, mask_below(len - j));
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) {
    const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]), _mm512_add_ps(acc[i][2], acc[i][3]));
    store_output(_mm512_reduce_add_ps(sum), nullptr, bias, n, y.row(m0 + i)[n], accumulate);
  }
}

// Batched decode (gemm_min_rows > M > gemv_row_max_rows): an MR x NR tile of
// y, MR activation rows against NR weight rows side by side, one 32-element
// block of K a step, each product summed into its own accumulator. A weight
// block loaded once serves MR rows and an activation block NR: with MR = 1
// (gemv_row_dpbf16) a batch of 8-15 rows re-read every activation row from L2
// for every weight row and ran at a third of the speed of 4 rows. The NR rows
// share the aligned block walk when they share row 0's misalignment (a row
// stride of whole cache lines); otherwise all are read unaligned.
template <std::size_t MR, std::size_t NR>
inline void gemv_tile_dpbf16(const std::uint16_t* xb, std::size_t ldxb, std::size_t xoff, weights_view<bfloat16> w,
                             const float* bias, matrix_view<float> y, std::size_t m0, std::size_t n0, bool accumulate) {
  __m512 acc[MR][NR];
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
    GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
  const auto* w0 = reinterpret_cast<const std::uint16_t*>(w.data + n0 * w.stride);
  const bool shared = reinterpret_cast<std::uintptr_t>(w0) % 64 / 2 == xoff && (NR == 1 || w.stride % 32 == 0);
  const std::size_t lead = shared ? xoff : 0;
  const std::uint16_t* wb[NR];  // weights of row n0 + r at block position j: wb[r][j]
  GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r) wb[r] = w0 + r * w.stride - lead;
  const std::uint16_t* xbase = xb + m0 * ldxb + xoff - lead;  // row m0 + i at block position j: xbase[i * ldxb + j]
  const std::size_t len = lead + w.in;
  const auto step = [&](std::size_t j, __mmask32 mask) {
    __m512i wv[NR];
    GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r) wv[r] = _mm512_maskz_loadu_epi16(mask, wb[r] + j);
    GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) {
      const __m512i xv = _mm512_maskz_loadu_epi16(mask, xbase + i * ldxb + j);
      GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r) acc[i][r] = _mm512_dpbf16_ps(acc[i][r], (__m512bh)xv, (__m512bh)wv[r]);
    }
  };
  std::size_t j = 0;
  if (lead) {
    step(0, mask_below(len) & ~mask_below(lead));
    j = 32;
  }
  for (; j + 32 <= len; j += 32) step(j, ~__mmask32{0});
  if (j < len) step(j, mask_below(len - j));
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
    GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r)
      store_output(_mm512_reduce_add_ps(acc[i][r]), nullptr, bias, n0 + r, y.row(m0 + i)[n0 + r], accumulate);
}
#endif

// One MR x NR tile of y: MR activation rows against NR weight rows read side
// by side (NR streams from memory), the reduction over K vectorised.
template <class Arch, std::size_t MR, std::size_t NR, class T>
inline void gemv_tile(matrix_view<const float> x, weights_view<T> w, const float* bias, matrix_view<float> y,
                      std::size_t m0, std::size_t n0, bool accumulate) {
  using B = batch<Arch>;
  constexpr std::size_t L = B::size;
  const std::size_t K = x.cols;
  const std::size_t kv = K - K % L;
  B acc[MR * NR];
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR * NR; ++i) acc[i] = B(0.0f);
  const T* wr[NR];
  GRIFFIN_UNROLL for (std::size_t j = 0; j < NR; ++j) wr[j] = w.data + (n0 + j) * w.stride;
  for (std::size_t k = 0; k < kv; k += L) {
    B wv[NR];
    GRIFFIN_UNROLL for (std::size_t j = 0; j < NR; ++j) wv[j] = load_batch<Arch>(wr[j] + k);
    GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) {
      const B xv = B::load_unaligned(x.row(m0 + i) + k);
      GRIFFIN_UNROLL for (std::size_t j = 0; j < NR; ++j) acc[i * NR + j] = xsimd::fma(xv, wv[j], acc[i * NR + j]);
    }
  }
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
    GRIFFIN_UNROLL for (std::size_t j = 0; j < NR; ++j) {
      float sum = xsimd::hadd(acc[i * NR + j]);
      for (std::size_t k = kv; k < K; ++k) sum += x.row(m0 + i)[k] * load_scalar(wr[j], k);
      store_output(sum, w.scale, bias, n0 + j, y.row(m0 + i)[n0 + j], accumulate);
    }
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// The same for int8 weights with vpdpwssd: xq holds the activation rows on
// their 16-bit grids [MR, ldxq] (zero-padded to a multiple of 32), xs their
// grid scales. Integer sums are moved to float every 256 steps, before any
// could overflow (2 * 256 * 127 * 32767 < 2^31). From 3 rows on, each step
// also prefetches the row gemv_tile_group rows on at the same k (a 64-byte
// line per two steps), as the batched tile does: with three or four rows of
// work per weight the stream falls behind without it (2B int8 decode,
// alternating in one process: batch 3 +10%, batch 4 +16-27%; batch 1-2 lose
// 3-8%, so they do not).
template <std::size_t MR>
inline void gemv_row_vnni(const std::int16_t* xq, std::size_t ldxq, const float* xs, weights_view<std::int8_t> w,
                          const float* bias, matrix_view<float> y, std::size_t m0, std::size_t n, bool accumulate) {
  constexpr std::size_t U = 4, chunk = 256 * 32;
  const std::size_t K = w.in;
  __m512 total[MR];
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) total[i] = _mm512_setzero_ps();
  const std::int8_t* wr = w.data + n * w.stride;
  const bool ahead = MR >= 3 && n + gemv_tile_group < w.out;
  const gemv_prefetch_setting& pf = gemv_prefetch_now();
  const std::size_t l2 = pf.l2_int8.load(std::memory_order_relaxed), far = pf.far_int8.load(std::memory_order_relaxed);
  for (std::size_t c0 = 0; c0 < K; c0 += chunk) {
    const std::size_t c1 = std::min(K, c0 + chunk);
    __v16si acc[MR][U];  // not __m512i: see gemm_micro
    GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
      GRIFFIN_UNROLL for (std::size_t u = 0; u < U; ++u) acc[i][u] = (__v16si)_mm512_setzero_si512();
    std::size_t k = c0;
    for (; k + 32 * U <= c1; k += 32 * U)
      GRIFFIN_UNROLL for (std::size_t u = 0; u < U; ++u) {
        if constexpr (gemv_prefetch_bytes > 0) {
          if (u % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(wr + k + 32 * u) + gemv_prefetch_bytes, _MM_HINT_T0);
        }
        if (ahead && u % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(wr + gemv_tile_group * w.stride + k + 32 * u), _MM_HINT_T0);
        if (l2 > 0 && u % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(wr + k + 32 * u) + l2, _MM_HINT_T1);
        if (far > 0 && u % 2 == 1) _mm_prefetch(reinterpret_cast<const char*>(wr + k + 32 * u) + far, _MM_HINT_T2);
        const __m512i wv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + k + 32 * u)));
        GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
          acc[i][u] = (__v16si)_mm512_dpwssd_epi32((__m512i)acc[i][u], _mm512_load_si512(xq + (m0 + i) * ldxq + k + 32 * u), wv);
      }
    for (; k < c1; k += 32) {
      const __mmask32 mask = mask_below(c1 - k);
      const __m512i wv = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, wr + k));
      GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
        acc[i][0] = (__v16si)_mm512_dpwssd_epi32((__m512i)acc[i][0], _mm512_load_si512(xq + (m0 + i) * ldxq + k), wv);
    }
    GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
      GRIFFIN_UNROLL for (std::size_t u = 0; u < U; ++u) total[i] = _mm512_add_ps(total[i], _mm512_cvtepi32_ps((__m512i)acc[i][u]));
  }
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
    store_output(_mm512_reduce_add_ps(total[i]) * xs[m0 + i], w.scale, bias, n, y.row(m0 + i)[n], accumulate);
}

// The MR x NR tile of gemv_tile_dpbf16 for int8 weights: each weight block
// widened to 16 bits once for MR rows. One accumulator takes 256 steps
// (512 products of at most 128 * 32767 each: below 2^31) before it is moved
// to float. With `ahead` (the first block of activation rows against a
// group, see for_gemv_tiles) each step also prefetches the rows one group on
// at the same k, a 64-byte line per two steps: that group then comes from
// cache while this one is still being multiplied.
template <std::size_t MR, std::size_t NR>
inline void gemv_tile_vnni(const std::int16_t* xq, std::size_t ldxq, const float* xs, weights_view<std::int8_t> w,
                           const float* bias, matrix_view<float> y, std::size_t m0, std::size_t n0, bool accumulate,
                           bool ahead) {
  constexpr std::size_t chunk = 256 * 32;
  const std::size_t K = w.in;
  __m512 total[MR][NR];
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
    GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r) total[i][r] = _mm512_setzero_ps();
  const std::int8_t* wr[NR];
  GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r) wr[r] = w.data + (n0 + r) * w.stride;
  const std::int16_t* xr = xq + m0 * ldxq;  // row m0 + i: xr[i * ldxq + k]
  for (std::size_t c0 = 0; c0 < K; c0 += chunk) {
    const std::size_t c1 = std::min(K, c0 + chunk);
    __v16si acc[MR][NR];  // not __m512i: see gemm_micro
    GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
      GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r) acc[i][r] = (__v16si)_mm512_setzero_si512();
    const auto step = [&](std::size_t k, __mmask32 mask) {
      if (ahead && k % 64 == 0)
        GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r)
          _mm_prefetch(reinterpret_cast<const char*>(wr[r] + gemv_tile_group * w.stride + k), _MM_HINT_T0);
      __m512i wv[NR];
      GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r) wv[r] = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, wr[r] + k));
      GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) {
        const __m512i xv = _mm512_load_si512(xr + i * ldxq + k);
        GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r) acc[i][r] = (__v16si)_mm512_dpwssd_epi32((__m512i)acc[i][r], xv, wv[r]);
      }
    };
    std::size_t k = c0;
    for (; k + 32 <= c1; k += 32) step(k, ~__mmask32{0});
    if (k < c1) step(k, mask_below(c1 - k));
    GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
      GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r) total[i][r] = _mm512_add_ps(total[i][r], _mm512_cvtepi32_ps((__m512i)acc[i][r]));
  }
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
    GRIFFIN_UNROLL for (std::size_t r = 0; r < NR; ++r)
      store_output(_mm512_reduce_add_ps(total[i][r]) * xs[m0 + i], w.scale, bias, n0 + r, y.row(m0 + i)[n0 + r], accumulate);
}
#endif

#if defined(__AVX2__)
// int8 weights on AVX2 (no VNNI): the same exact integer sums as
// gemv_row_vnni, from vpmaddwd (two int16 products summed into an int32
// lane) and vpaddd, 16 weights a step widened with vpmovsxbw; xq, ldxq and
// xs as there (rows 64-byte aligned, zeros past K). Each of the U
// accumulators takes at most 128 steps of two products of at most
// 128 * 32767 before its sums move to float: below 2^31. It replaces the
// float path (widen to int32, convert, FMA: 12 operations per 32 weights
// against 6): 65536 x 2560 on an AVX2 Zen 3, 2 threads, builds alternating:
// batch 1 16-21 -> 19-24 GB/s, batch 2 13-17 -> 20-22, batch 4 6-10 -> 13-16
// (docs/09-performance.md). Unlike the AVX-512 rows it prefetches the weights
// gemv_madd_prefetch_bytes ahead (one line per 64 weights; past the row's
// end that is the next row, and a prefetch never faults): there one core's
// row stream ran at ~12 GB/s of the 21 it reads, and the 2B int8 decode
// went from 7.55 / 8.43 to 9.74 / 9.27 tokens/s (2 threads, alternating).
inline constexpr std::size_t gemv_madd_prefetch_bytes = 2048;

template <std::size_t MR>
inline void gemv_row_madd(const std::int16_t* xq, std::size_t ldxq, const float* xs, weights_view<std::int8_t> w,
                          const float* bias, matrix_view<float> y, std::size_t m0, std::size_t n, bool accumulate) {
  constexpr std::size_t U = 2, chunk = 128 * 16 * U;
  const std::size_t K = w.in;
  __m256 total[MR];
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) total[i] = _mm256_setzero_ps();
  const std::int8_t* wr = w.data + n * w.stride;
  for (std::size_t c0 = 0; c0 < K; c0 += chunk) {
    const std::size_t c1 = std::min(K, c0 + chunk);
    __m256i acc[MR][U];
    GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
      GRIFFIN_UNROLL for (std::size_t u = 0; u < U; ++u) acc[i][u] = _mm256_setzero_si256();
    std::size_t k = c0;
    for (; k + 16 * U <= c1; k += 16 * U)
      GRIFFIN_UNROLL for (std::size_t u = 0; u < U; ++u) {
        if (u == 0 && k % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(wr + k) + gemv_madd_prefetch_bytes, _MM_HINT_T0);
        const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + k + 16 * u)));
        GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
          acc[i][u] = _mm256_add_epi32(acc[i][u], _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(xq + (m0 + i) * ldxq + k + 16 * u)), wv));
      }
    for (; k < c1; k += 16) {  // the last 1-31 weights: not read past the row
      alignas(16) std::int8_t last[16] = {};
      std::memcpy(last, wr + k, std::min<std::size_t>(16, c1 - k));
      const __m256i wv = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(last)));
      GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(xq + (m0 + i) * ldxq + k)), wv));
    }
    GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
      GRIFFIN_UNROLL for (std::size_t u = 0; u < U; ++u) total[i] = _mm256_add_ps(total[i], _mm256_cvtepi32_ps(acc[i][u]));
  }
  GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(total[i]), _mm256_extractf128_ps(total[i], 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    const float sum = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
    store_output(sum * xs[m0 + i], w.scale, bias, n, y.row(m0 + i)[n], accumulate);
  }
}
#endif

// f(integral_constant<MR>, i) for whole blocks of MR from `first`, then once
// with the remainder (1 .. MR-1) as its compile-time size.
template <std::size_t MR, class F>
inline void for_blocks(std::size_t first, std::size_t last, F&& f) {
  std::size_t i = first;
  for (; i + MR <= last; i += MR) f(std::integral_constant<std::size_t, MR>{}, i);
  [&]<std::size_t... R>(std::index_sequence<R...>) {
    ((last - i == R + 1 ? f(std::integral_constant<std::size_t, R + 1>{}, i) : void()), ...);
  }(std::make_index_sequence<MR - 1>{});
}

// The batched gemv's walk over output channels [n0, n1) of a matrix of `out`
// rows and `rows` activation rows: groups of gemv_tile_group weight rows,
// each run against every block of MR activation rows (so the group is read
// from memory once and from L2 after), tile(mr, nr, m, n, ahead) with
// mr <= MR, nr <= NR as integral constants. `ahead` is true for the first
// block of activation rows when the matrix has the tile's rows one group on
// (past n1 too: a thread's next piece of its share follows its last), for a
// tile that prefetches them.
template <std::size_t MR = 4, std::size_t NR = 4, class Tile>
inline void for_gemv_tiles(std::size_t rows, std::size_t n0, std::size_t n1, std::size_t out, Tile&& tile) {
  for (std::size_t g0 = n0; g0 < n1; g0 += gemv_tile_group) {
    const std::size_t g1 = std::min(n1, g0 + gemv_tile_group);
    for_blocks<MR>(0, rows, [&](auto mr, std::size_t m) {
      for_blocks<NR>(g0, g1, [&](auto nr, std::size_t n) { tile(mr, nr, m, n, m == 0 && n + nr + gemv_tile_group <= out); });
    });
  }
}

// True where the batched gemv of float and 2-byte weights runs gemv_tile in
// groups (for_gemv_tiles) of 3 activation rows x 4 weight rows: AVX2's 16
// registers hold its 12 sums and 4 weight vectors, where the 4 x 4 tile the
// float gemv used (16 sums) spilled, and the 2-byte rows re-read each weight
// row's 5 KiB from L1 for every 4 activation rows, 4 x 4 sums in flight.
// 7680 x 2560 from memory (a ring of copies), 2 threads, an AVX2 Zen 3,
// alternating in one process (GFLOP/s, before -> 3 x 4 tiles): f32 batch
// 2-4 level, 6 34 -> 42, 8 38 -> 47, 12 42 -> 65, 15 44 -> 69; bf16 batch 5
// 48 -> 51, 8 66 -> 78, 12 69 -> 94, 15 69 -> 95 (docs/09-performance.md).
// Per output the float sums are the same chain as before (one accumulator,
// k in order), so f32 results do not change. AVX-512 keeps its paths (32
// registers; not measured here).
template <class T, class Arch>
inline constexpr bool gemv_tiles_3x4 = std::is_base_of_v<xsimd::avx2, Arch> && !std::is_base_of_v<xsimd::avx512f, Arch> &&
                                       (std::is_same_v<T, float> || std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>);

// Output channels [n0, n1) of an out x in gemv, each weight row read once
// against all activation rows: float rows four side by side (measured
// fastest for 4-byte weights), narrower types one after another, so the
// matrix streams from memory in order.
template <class Arch, class T>
inline void gemv_out_in(matrix_view<const float> x, [[maybe_unused]] const void* xb, [[maybe_unused]] std::size_t ldxb,
                        [[maybe_unused]] std::size_t xoff, [[maybe_unused]] const float* xs, weights_view<T> w, const float* bias, matrix_view<float> y,
                        std::size_t n0, std::size_t n1, bool accumulate) {
  if constexpr (gemv_tiles_3x4<T, Arch>) {
    if (x.rows > (std::is_same_v<T, float> ? 1 : gemv_row_max_rows)) {
      for_gemv_tiles<3, 4>(x.rows, n0, n1, w.out, [&](auto mr, auto nr, std::size_t m, std::size_t n, bool) {
        gemv_tile<Arch, decltype(mr)::value, decltype(nr)::value>(x, w, bias, y, m, n, accumulate);
      });
      return;
    }
  }
  if constexpr (std::is_same_v<T, float>) {
    for_blocks<4>(n0, n1, [&](auto nr, std::size_t n) {
      for_blocks<4>(0, x.rows, [&](auto mr, std::size_t m) {
        gemv_tile<Arch, decltype(mr)::value, decltype(nr)::value>(x, w, bias, y, m, n, accumulate);
      });
    });
    return;
  }
#if defined(__AVX512BF16__)
  if constexpr (std::is_same_v<T, bfloat16> && std::is_base_of_v<xsimd::avx512bw, Arch>) {
    if (x.rows > gemv_row_max_rows) {
      // (the bf16 tile does not prefetch the next group: measured no faster)
      for_gemv_tiles(x.rows, n0, n1, w.out, [&](auto mr, auto nr, std::size_t m, std::size_t n, bool) {
        gemv_tile_dpbf16<decltype(mr)::value, decltype(nr)::value>(static_cast<const std::uint16_t*>(xb), ldxb, xoff, w, bias, y, m, n, accumulate);
      });
      return;
    }
  }
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  if constexpr (std::is_same_v<T, std::int8_t> && std::is_base_of_v<xsimd::avx512bw, Arch>) {
    if (x.rows > gemv_row_max_rows) {
      for_gemv_tiles(x.rows, n0, n1, w.out, [&](auto mr, auto nr, std::size_t m, std::size_t n, bool ahead) {
        gemv_tile_vnni<decltype(mr)::value, decltype(nr)::value>(static_cast<const std::int16_t*>(xb), ldxb, xs, w, bias, y, m, n, accumulate, ahead);
      });
      return;
    }
  }
#endif
  for (std::size_t n = n0; n < n1; ++n)
    for_blocks<4>(0, x.rows, [&](auto mr, std::size_t m) {
#if defined(__AVX512BF16__)
      if constexpr (std::is_same_v<T, bfloat16> && std::is_base_of_v<xsimd::avx512bw, Arch>) {
        gemv_row_dpbf16<decltype(mr)::value>(static_cast<const std::uint16_t*>(xb), ldxb, xoff, w, bias, y, m, n, accumulate);
        return;
      }
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
      if constexpr (std::is_same_v<T, std::int8_t> && std::is_base_of_v<xsimd::avx512bw, Arch>) {
        gemv_row_vnni<decltype(mr)::value>(static_cast<const std::int16_t*>(xb), ldxb, xs, w, bias, y, m, n, accumulate);
        return;
      }
#endif
#if defined(__AVX2__)
      if constexpr (int16_pairs<T, Arch> && std::is_base_of_v<xsimd::avx2, Arch>) {
        gemv_row_madd<decltype(mr)::value>(static_cast<const std::int16_t*>(xb), ldxb, xs, w, bias, y, m, n, accumulate);
        return;
      }
#endif
      gemv_row<Arch, decltype(mr)::value>(x, w, bias, y, m, n, accumulate);
    });
}

// Output channels [n0, n1) of an in x out gemv, y[m, n] = sum_k x[m, k] w[k, n]:
// one fma chain over k for each output, as matmul_scalar sums. Columns go in
// chunks of gemv_in_out_floats / MR whose sums for the MR activation rows
// stay in L1 (acc [MR][chunk]); KB weight rows at a time are read along the
// chunk, each sum loaded and stored once per KB rows. (A register tile of 32
// columns that read 64 B of each weight row in turn, N elements apart,
// decoded a 61440 x 2560 bf16 matrix at a quarter of the out x in speed; one
// row at a time along the chunk was no better: two sum moves per weight.)
inline constexpr std::size_t gemv_in_out_floats = 4096;

// Vectors of sums gemv_in_out_narrow holds in registers: half the register
// file (AVX-512: 16 of 32, 256 floats; AVX2 and SSE: 8 of 16).
template <class Arch>
inline constexpr std::size_t gemv_in_out_narrow_vectors = std::is_base_of_v<xsimd::avx512f, Arch> ? 16 : 8;

// One activation row x against an in x out matrix whose columns [n0, n1)
// fit in gemv_in_out_narrow_vectors vectors (and fewer than L more): the RG-LRU
// gates' diagonal blocks (reference: layers.BlockDiagonalLinear, y_h = x_h W_h,
// W_h [256 in, 256 out]) at decode. The sums stay in registers while the
// weight rows pass in address order, [n0, n1) of each read whole: a dense
// block streams from memory as one sequence. gemv_in_out's chunks read KB
// rows side by side, 1 KiB of each, too short for the prefetchers to follow:
// 256 x 256 f32 blocks decoded at 8-10 GB/s a core on the Zen 4 guest
// (docs/09-performance.md). Each output is the same fma chain over k in
// order as there, so results are unchanged.
template <class Arch, class T>
inline void gemv_in_out_narrow(const float* x, weights_view<T> w, const float* bias, float* y, std::size_t n0,
                               std::size_t n1, bool accumulate) {
  using B = batch<Arch>;
  constexpr std::size_t L = B::size, NV = gemv_in_out_narrow_vectors<Arch>;
  const std::size_t K = w.in, nv = (n1 - n0) / L, cv = n0 + nv * L;  // whole batches: [n0, cv)
  assert(nv <= NV);
  B acc[NV];
  GRIFFIN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[v] = B(0.0f);
  for (std::size_t k = 0; k < K; ++k) {
    const B xk(x[k]);
    const T* wk = w.data + k * w.stride + n0;
    GRIFFIN_UNROLL for (std::size_t v = 0; v < NV; ++v)
      if (v < nv) acc[v] = xsimd::fma(xk, load_batch<Arch>(wk + v * L), acc[v]);
  }
  alignas(64) float sums[NV * L];
  GRIFFIN_UNROLL for (std::size_t v = 0; v < NV; ++v)
    if (v < nv) acc[v].store_aligned(sums + v * L);
  for (std::size_t n = n0; n < cv; ++n) store_output(sums[n - n0], w.scale, bias, n, y[n], accumulate);
  for (std::size_t n = cv; n < n1; ++n) {  // the last 1 .. L-1 columns
    float sum = 0.0f;
    for (std::size_t k = 0; k < K; ++k) sum += x[k] * load_scalar(w.data + k * w.stride, n);
    store_output(sum, w.scale, bias, n, y[n], accumulate);
  }
}

template <class Arch, class T>
inline void gemv_in_out(matrix_view<const float> x, weights_view<T> w, const float* bias, matrix_view<float> y,
                        std::size_t n0, std::size_t n1, bool accumulate) {
  using B = batch<Arch>;
  constexpr std::size_t L = B::size;
  if (x.rows == 1 && (n1 - n0) / L <= gemv_in_out_narrow_vectors<Arch>)
    return gemv_in_out_narrow<Arch>(x.row(0), w, bias, y.row(0), n0, n1, accumulate);
  struct acc_tag;
  float* acc = thread_buffer<acc_tag, float>(gemv_in_out_floats);
  const std::size_t K = x.cols;
  for_blocks<4>(0, x.rows, [&](auto mr, std::size_t m) {
    constexpr std::size_t MR = decltype(mr)::value, C = gemv_in_out_floats / MR / L * L;
    // KB weight rows x MR activations broadcast: at most 16 registers.
    constexpr std::size_t KB = MR <= 2 ? 8 : 4;
    for (std::size_t c0 = n0; c0 < n1; c0 += C) {
      const std::size_t c1 = std::min(n1, c0 + C), cv = c0 + (c1 - c0) / L * L;  // whole batches: [c0, cv)
      std::fill(acc, acc + MR * C, 0.0f);
      const auto rows = [&](auto kb, std::size_t k) {  // weight rows k .. k + kb into the sums
        constexpr std::size_t R = decltype(kb)::value;
        const T* wk[R];
        float xs[MR][R];
        B xv[MR][R];
        GRIFFIN_UNROLL for (std::size_t r = 0; r < R; ++r) wk[r] = w.data + (k + r) * w.stride;
        GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
          GRIFFIN_UNROLL for (std::size_t r = 0; r < R; ++r) xv[i][r] = B(xs[i][r] = x.row(m + i)[k + r]);
        std::size_t n = c0;
        for (; n < cv; n += L) {
          B wv[R];
          GRIFFIN_UNROLL for (std::size_t r = 0; r < R; ++r) wv[r] = load_batch<Arch>(wk[r] + n);
          GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i) {
            float* a = acc + i * C + (n - c0);
            B v = B::load_aligned(a);
            GRIFFIN_UNROLL for (std::size_t r = 0; r < R; ++r) v = xsimd::fma(xv[i][r], wv[r], v);
            v.store_aligned(a);
          }
        }
        for (; n < c1; ++n)
          GRIFFIN_UNROLL for (std::size_t i = 0; i < MR; ++i)
            GRIFFIN_UNROLL for (std::size_t r = 0; r < R; ++r) acc[i * C + (n - c0)] += xs[i][r] * load_scalar(wk[r], n);
      };
      std::size_t k = 0;
      for (; k + KB <= K; k += KB) rows(std::integral_constant<std::size_t, KB>{}, k);
      for (; k < K; ++k) rows(std::integral_constant<std::size_t, 1>{}, k);
      for (std::size_t i = 0; i < MR; ++i)
        for (std::size_t n = c0; n < c1; ++n) store_output(acc[i * C + (n - c0)], w.scale, bias, n, y.row(m + i)[n], accumulate);
    }
  });
}

// ---- gemm: packed activations, weights broadcast from their rows -------------

// Cache blocking (elements of K, tokens, weight rows) and the register tile.
// K block: even, so bf16 pairs never straddle blocks. bf16 rows in pairs
// (bf16_pairs) are broadcast in place from the weights, so a longer block
// reads each weight row in longer runs (1024: 2 KiB) and streams better from
// memory; at 16 to 64 tokens, where the weight stream limits, that is
// 1.3-1.5x against 256 (measured on Zen 5, docs/09-performance.md). Converted
// panels (int8, float16, f32 rows, bf16 without AVX512-BF16) keep 256, where
// their panel stays in L1. int8 on integers (int16_pairs): 512, so that no
// int32 sum of one block (256 pairs) can overflow (see gemm_micro).
template <class T, class Arch = default_arch>
inline constexpr std::size_t gemm_kc = bf16_pairs<T, Arch> ? 1024 : int16_pairs<T, Arch> ? 512 : 256;
inline constexpr std::size_t gemm_mc = 384;
inline constexpr std::size_t gemm_nc = 256;
inline constexpr std::size_t gemm_nr = 8;  // weight rows per register tile
inline constexpr std::size_t gemm_mv = 3;  // token batches per register tile
// Words of K per pass of AVX2's float tile over each half of its rows (see
// gemm_micro_float): 64 x 24 tokens is 6 KiB of activations.
inline constexpr std::size_t gemm_micro_chunk = 64;
static_assert(gemm_mc % (gemm_mv * 16) == 0);

// Software prefetch for bf16 rows broadcast in place to at most
// gemm_prefetch_max_tokens tokens: with so few tokens per weight the 8 x 16
// or 8 x 32 tile waits on its 8 rows' streams from memory, which the hardware
// prefetchers follow too late; each row's line 256 B ahead is prefetched once
// per 64 B consumed. On Zen 5 (65536 x 2048, 2 threads) 16 tokens went from
// 330-370 to 390-420 GFLOP/s and 32 from 500-560 to 530-660; neutral at 64,
// 2-6% slower at 512, so larger batches issue none.
inline constexpr std::size_t gemm_prefetch_bytes = 256;
inline constexpr std::size_t gemm_prefetch_max_tokens = 32;

// What the packed kernel multiplies: floats, or pairs of bf16 (vdpbf16ps) or
// of int16 (int8 weights: vpdpwssd, vpmaddwd) in 32-bit words, the even k in
// the low half.
template <class T, class Arch = default_arch>
using packed_element = std::conditional_t<bf16_pairs<T, Arch> || int16_pairs<T, Arch>, std::uint32_t, float>;

// k steps per packed element.
template <class T, class Arch = default_arch>
inline constexpr std::size_t k_per_element = bf16_pairs<T, Arch> || int16_pairs<T, Arch> ? 2 : 1;

// Tokens per packed block of activations: one register tile's worth, so
// that the tile reads its block front to back in whole cache lines (a
// 48-token block read 24 tokens at a time by AVX2's tile used half of every
// line it touched, and its L2 stream ran the f32 gemm 5-10% slower).
template <class Arch>
inline constexpr std::size_t gemm_block_tokens = gemm_mv * lanes<Arch>;

#if defined(__AVX512F__)
// r[i] lane j <- r[j] lane i, for 16 rows of 16 words.
inline void transpose_16x16_epi32(__m512i* r) noexcept {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // then the 128-bit lanes: 4 x 4 blocks of 4 x 4 words moved to their places
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_i32x4(r[i], r[4 + i], 0xdd);
    t[8 + i] = _mm512_shuffle_i32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_i32x4(r[8 + i], r[12 + i], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0xdd);
    r[4 + i] = _mm512_shuffle_i32x4(t[4 + i], t[12 + i], 0x88);
    r[12 + i] = _mm512_shuffle_i32x4(t[4 + i], t[12 + i], 0xdd);
  }
}

// 64-byte lines as 16 x 16 32-bit words, transposed: line i of src (src +
// i * lds bytes; its bytes from `bytes` on read as zero, and not read;
// zeros for i >= rows) gives word i of dst rows j < count (dst + j * ldd),
// its j-th word.
inline void transpose_lines_16x16(const char* src, std::size_t lds, std::size_t rows, std::uint32_t* dst, std::size_t ldd,
                                  std::size_t count, std::size_t bytes = 64) noexcept {
  __m512i v[16];
  if (bytes >= 64) {
    for (std::size_t i = 0; i < 16; ++i) v[i] = i < rows ? _mm512_loadu_si512(src + i * lds) : _mm512_setzero_si512();
  } else {
    const __mmask64 mask = (__mmask64{1} << bytes) - 1;
    for (std::size_t i = 0; i < 16; ++i) v[i] = i < rows ? _mm512_maskz_loadu_epi8(mask, src + i * lds) : _mm512_setzero_si512();
  }
  transpose_16x16_epi32(v);
  for (std::size_t j = 0; j < count; ++j) _mm512_storeu_si512(dst + j * ldd, v[j]);
}

// Pairs of 16-bit values as 32-bit words, transposed 16 x 16: row i of src
// (src + i * lds, 32 values; zeros for i >= rows) gives word i of dst rows
// j < count (dst + j * ldd), its j-th pair. The packing of bf16 and int16
// activation pairs (gemm) goes through it.
inline void transpose_pairs_16x16(const std::uint16_t* src, std::size_t lds, std::size_t rows, std::uint32_t* dst,
                                  std::size_t ldd, std::size_t count) noexcept {
  transpose_lines_16x16(reinterpret_cast<const char*>(src), 2 * lds, rows, dst, ldd, count);
}
#endif

// Packs x [M, K] in blocks of gemm_block_tokens tokens, each block
// [Kp][gemm_block_tokens] (k' = k / k_per_element, Kp of them), zero past M
// and past K: the register tile reads a block front to back. With one k per
// element, x is already as the weights multiply it (activations_for).
template <class T, class Arch>
inline void pack_activations(matrix_view<const float> x, packed_element<T, Arch>* a, std::size_t Mpad, std::size_t Kp,
                             std::size_t kp0, std::size_t kp1) {
  constexpr std::size_t P = k_per_element<T, Arch>, MB = gemm_block_tokens<Arch>;
  const std::size_t K = x.cols;
#if defined(__AVX512BF16__)
  if constexpr (P == 2 && std::is_base_of_v<xsimd::avx512bw, Arch>) {
    // bf16 pairs 16 tokens at a time: 16 rows rounded to bf16 (to_bf16, as
    // below) over S pairs, then 16 x 16 words transposed in registers and
    // stored one 64-byte line per pair. (Word by word, strided, it took ~3%
    // of a 512-token bf16 prefill.) Mpad and MB are multiples of 16, so a
    // group of 16 tokens never straddles a block.
    static_assert(MB % 16 == 0);
    constexpr std::size_t S = 256;
    struct rows16_tag;
    std::uint16_t* rows = thread_buffer<rows16_tag, std::uint16_t>(16 * 2 * S);
    for (std::size_t m0 = 0; m0 < Mpad; m0 += 16) {
      packed_element<T, Arch>* out = a + (m0 / MB) * Kp * MB + m0 % MB;
      for (std::size_t s0 = kp0; s0 < kp1; s0 += S) {
        const std::size_t n = std::min(kp1, s0 + S) - s0, n16 = (n + 15) / 16 * 16;
        for (std::size_t i = 0; i < 16; ++i) {
          std::uint16_t* r = rows + i * 2 * S;
          std::size_t filled = 0;
          if (m0 + i < x.rows && 2 * s0 < K) {
            filled = std::min(2 * (s0 + n), K) - 2 * s0;
            to_bf16(x.row(m0 + i) + 2 * s0, r, filled);
          }
          std::fill(r + filled, r + 2 * n16, std::uint16_t{0});
        }
        for (std::size_t j = 0; j < n; j += 16)
          transpose_pairs_16x16(rows + 2 * j, 2 * S, 16, out + (s0 + j) * MB, MB, std::min<std::size_t>(16, n - j));
      }
    }
    return;
  }
#endif
  struct row_tag;
  std::uint16_t* row = P == 2 ? thread_buffer<row_tag, std::uint16_t>(2 * (kp1 - kp0)) : nullptr;
  for (std::size_t m = 0; m < Mpad; ++m) {
    packed_element<T, Arch>* out = a + (m / MB) * Kp * MB + m % MB;
    if (m >= x.rows) {
      for (std::size_t kp = kp0; kp < kp1; ++kp) out[kp * MB] = 0;
    } else if constexpr (P == 2) {  // the row's pairs as bf16, then one word per pair
      const std::size_t k0 = 2 * kp0, k1 = std::min(2 * kp1, K);
      to_bf16(x.row(m) + k0, row, k1 - k0);
      if (k1 - k0 < 2 * (kp1 - kp0)) row[k1 - k0] = 0;  // K odd: the last pair's second half
      for (std::size_t kp = kp0; kp < kp1; ++kp) out[kp * MB] = load_u32(row + 2 * (kp - kp0));
    } else {
      for (std::size_t kp = kp0; kp < kp1; ++kp) out[kp * MB] = x.row(m)[kp];
    }
  }
}

// The same for activations already on their int16 grids, xq [M, ldxq] with
// ldxq even and zeros past K: one word per pair.
template <class Arch>
inline void pack_int16_pairs(const std::int16_t* xq, std::size_t ldxq, std::size_t M, std::uint32_t* a, std::size_t Mpad,
                             std::size_t Kp, std::size_t kp0, std::size_t kp1) {
  constexpr std::size_t MB = gemm_block_tokens<Arch>;
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    // 16 tokens x 16 pairs at a time, transposed in registers (as
    // pack_activations does bf16 pairs). kp0 is a multiple of 16 and ldxq of
    // 32, so each 64-byte load stays inside its row.
    static_assert(MB % 16 == 0);
    assert((kp0 % 16 == 0 || kp0 == kp1) && ldxq % 32 == 0);
    for (std::size_t m0 = 0; m0 < Mpad; m0 += 16) {
      std::uint32_t* out = a + (m0 / MB) * Kp * MB + m0 % MB;
      const auto* rows = reinterpret_cast<const std::uint16_t*>(xq + m0 * ldxq);
      const std::size_t valid = M > m0 ? std::min<std::size_t>(16, M - m0) : 0;
      for (std::size_t j = kp0; j < kp1; j += 16)
        transpose_pairs_16x16(rows + 2 * j, ldxq, valid, out + j * MB, MB, std::min<std::size_t>(16, kp1 - j));
    }
    return;
  }
#endif
  for (std::size_t m = 0; m < Mpad; ++m) {
    std::uint32_t* out = a + (m / MB) * Kp * MB + m % MB;
    for (std::size_t kp = kp0; kp < kp1; ++kp) out[kp * MB] = m < M ? load_u32(xq + m * ldxq + 2 * kp) : 0;
  }
}

// True when bf16 weight rows already hold the packed gemm's words: [out, in]
// rows with K and the row stride even, so every pair (k even, k + 1) of every
// row lies in one aligned 32-bit word. The gemm then broadcasts full panels in
// place and copies partial ones row by row.
template <class T>
[[nodiscard]] constexpr bool bf16_pairs_in_place(weights_view<T> w) noexcept {
  return std::is_same_v<T, bfloat16> && w.layout == weight_layout::out_in && w.in % 2 == 0 && w.stride % 2 == 0;
}

// out[k] = src[k] for k < n, int8 widened to int16: 32 at a time (masked)
// on AVX-512, 16 at a time and the rest one by one on AVX2.
template <class Arch>
inline void widen_to_int16(const std::int8_t* src, std::int16_t* out, std::size_t n) noexcept {
  std::size_t k = 0;
#if defined(__AVX512BW__)
  if constexpr (std::is_base_of_v<xsimd::avx512bw, Arch>) {
    for (; k < n; k += 32) {
      const __mmask32 mask = mask_below(n - k);
      _mm512_mask_storeu_epi16(out + k, mask, _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, src + k)));
    }
    return;
  }
#endif
#if defined(__AVX2__)
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>)
    for (; k + 16 <= n; k += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + k), _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k))));
#endif
  for (; k < n; ++k) out[k] = src[k];
}

// Weight rows [n0, n0 + rows) x k in [k0, k0 + kc) as a panel of
// gemm_nr rows of packed elements (zero past the matrix).
template <class Arch, class T>
inline void convert_panel(weights_view<T> w, std::size_t n0, std::size_t rows, std::size_t k0, std::size_t kc,
                          packed_element<T, Arch>* panel, std::size_t ldp) {
  constexpr std::size_t P = k_per_element<T, Arch>;
  const std::size_t K = w.in;
  if constexpr (int16_pairs<T, Arch>) {
    if (w.layout == weight_layout::out_in) {  // each row widened to int16: the words are its pairs
      for (std::size_t i = 0; i < gemm_nr; ++i) {
        auto* out = reinterpret_cast<std::int16_t*>(panel + i * ldp);
        if (i >= rows) {
          std::fill(out, out + 2 * ldp, std::int16_t{0});
          continue;
        }
        widen_to_int16<Arch>(w.data + (n0 + i) * w.stride + k0, out, kc);
        std::fill(out + kc, out + 2 * ldp, std::int16_t{0});
      }
      return;
    }
  }
  if constexpr (std::is_same_v<T, bfloat16> && P == 2) {
    if (bf16_pairs_in_place(w)) {  // rows already in pairs: copied
      for (std::size_t i = 0; i < gemm_nr; ++i) {
        auto* out = reinterpret_cast<bfloat16*>(panel + i * ldp);
        if (i < rows) std::memcpy(out, w.data + (n0 + i) * w.stride + k0, kc * sizeof(bfloat16));
        std::fill(out + (i < rows ? kc : 0), out + 2 * ldp, bfloat16{});
      }
      return;
    }
  }
  if constexpr (P == 1) {
    if (w.layout == weight_layout::out_in) {  // the common case (int8, float16 rows): converted a batch at a time
      for (std::size_t i = 0; i < gemm_nr; ++i) {
        float* out = panel + i * ldp;
        if (i >= rows) {
          std::fill(out, out + ldp, 0.0f);
          continue;
        }
        const T* src = w.data + (n0 + i) * w.stride + k0;
        simd_for<Arch>(
            kc, [&](std::size_t k) { load_batch<Arch>(src + k).store_unaligned(out + k); },
            [&](std::size_t k) { out[k] = load_scalar(src, k); });
        std::fill(out + kc, out + ldp, 0.0f);
      }
      return;
    }
  }
  std::size_t kp_done = 0;  // panel columns [0, kp_done) written below
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>) {
    static_assert(gemm_nr == 8);
    if (w.layout == weight_layout::in_out && rows == gemm_nr) {
      // [in, out] rows: the panel's 8 elements (or bf16 pairs) of k' side by
      // side in one 256-bit word vector, 8 of them transposed in registers
      // into 8 k' of each panel row.
      for (; kp_done + 8 <= kc / P; kp_done += 8) {
        __m256i v[8];
        for (std::size_t j = 0; j < 8; ++j) {
          const std::size_t k = k0 + (kp_done + j) * P;
          if constexpr (std::is_same_v<T, float>) {
            v[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.data + k * w.stride + n0));
          } else if constexpr (P == 1) {  // bf16 as floats: the bits moved to the high half
            v[j] = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.data + k * w.stride + n0))), 16);
          } else {  // the pair (w[k][n], w[k + 1][n]) as one word, k in the low half
            const __m128i even = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.data + k * w.stride + n0));
            const __m128i odd = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.data + (k + 1) * w.stride + n0));
            v[j] = _mm256_set_m128i(_mm_unpackhi_epi16(even, odd), _mm_unpacklo_epi16(even, odd));
          }
        }
        __m256i t[8], u[8];
        for (std::size_t j = 0; j < 8; j += 2) {
          t[j] = _mm256_unpacklo_epi32(v[j], v[j + 1]);
          t[j + 1] = _mm256_unpackhi_epi32(v[j], v[j + 1]);
        }
        for (std::size_t j = 0; j < 8; j += 4) {
          u[j] = _mm256_unpacklo_epi64(t[j], t[j + 2]);
          u[j + 1] = _mm256_unpackhi_epi64(t[j], t[j + 2]);
          u[j + 2] = _mm256_unpacklo_epi64(t[j + 1], t[j + 3]);
          u[j + 3] = _mm256_unpackhi_epi64(t[j + 1], t[j + 3]);
        }
        for (std::size_t i = 0; i < 4; ++i) {  // u[i] lanes: rows i (low half) and i + 4 (high) of k' 0-3, u[i + 4] of k' 4-7
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel + i * ldp + kp_done), _mm256_permute2x128_si256(u[i], u[i + 4], 0x20));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel + (i + 4) * ldp + kp_done), _mm256_permute2x128_si256(u[i], u[i + 4], 0x31));
        }
      }
    }
  }
#endif
  for (std::size_t i = 0; i < gemm_nr; ++i)
    for (std::size_t kp = kp_done; kp < ldp; ++kp) {
      const std::size_t k = k0 + kp * P;
      auto value = [&](std::size_t kk) { return i < rows && kk < k0 + kc && kk < K ? w.at(n0 + i, kk) : 0.0f; };
      if constexpr (int16_pairs<T, Arch>)
        panel[i * ldp + kp] = static_cast<std::uint16_t>(static_cast<std::int16_t>(value(k))) |
                              static_cast<std::uint32_t>(static_cast<std::uint16_t>(static_cast<std::int16_t>(value(k + 1)))) << 16;
      else if constexpr (P == 2)
        panel[i * ldp + kp] = bf16_pair(value(k), value(k + 1));
      else
        panel[i * ldp + kp] = value(k);
    }
}

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
// bf16 [in, out] weights as 4 panels of gemm_nr rows at once: outputs
// [n0, n0 + 32) over k in [k0, k0 + kc), kc a multiple of 32 within K,
// panel p at panels + p * gemm_nr * ldp. Each k row's 32 outputs are one
// 64-byte line, read whole: a panel converted alone (convert_panel) reads a
// quarter of each of its kc lines and leaves the rest to the next three
// panels, by then back in L2 or further (the in_out bf16 gemm ran at
// ~80% of the out_in one's speed, 512 x 7680 x 2560, 2 threads, Zen 5).
// Words (w[k][n], w[k + 1][n]) of 16 pairs x 16 outputs are transposed in
// registers into 16 panel rows.
inline void convert_panels_in_out_bf16(weights_view<bfloat16> w, std::size_t n0, std::size_t k0, std::size_t kc,
                                       std::uint32_t* panels, std::size_t ldp) {
  static_assert(gemm_nr == 8);
  assert(kc % 32 == 0 && k0 + kc <= w.in && n0 + 32 <= w.out && w.layout == weight_layout::in_out);
  const std::size_t stride = w.stride;
  for (std::size_t kp = 0; kp < kc / 2; kp += 16)
    for (std::size_t h = 0; h < 32; h += 16) {
      // One pointer stepped a row at a time (GCC otherwise keeps one per
      // load, 32, on the stack; the conversion then cost ~13%).
      const auto* row = reinterpret_cast<const std::uint16_t*>(w.data) + (k0 + 2 * kp) * stride + n0 + h;
      __m512i v[16];
      for (std::size_t j = 0; j < 16; ++j) {
        const __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row)));
        row += stride;
        const __m512i hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row)));
        row += stride;
        asm("" : "+r"(row));  // keeps GCC from turning the steps back into 32 pointers
        v[j] = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));  // lane i: output n0 + h + i at pair kp + j
      }
      transpose_16x16_epi32(v);  // v[i] lane j: output n0 + h + i at pair kp + j
      for (std::size_t i = 0; i < 16; ++i) {
        const std::size_t r = h + i;
        _mm512_storeu_si512(panels + (r / gemm_nr) * gemm_nr * ldp + (r % gemm_nr) * ldp + kp, v[i]);
      }
    }
}
#endif

// The register tile for floats: c[gemm_nr][MV * L] (+)= panel[gemm_nr, kpn] *
// a[kpn][MV * L], one FMA chain per output in k order.
template <class Arch, std::size_t MV>
inline void gemm_micro_float(const float* panel, std::size_t ldp, const float* a, std::size_t lda, std::size_t kpn, float* c,
                             bool load_c) {
  constexpr std::size_t NR = gemm_nr;
#if defined(__AVX2__) && defined(__FMA__)
  if constexpr (std::is_base_of_v<xsimd::fma3<xsimd::avx2>, Arch>) {
    // 16 registers: the 8 rows go 4 at a time (12 accumulators, 3
    // activation vectors, a broadcast), over chunks of gemm_micro_chunk
    // words so that the chunk of activations the first 4 rows read is still
    // in L1 for the other 4 (the sums go through c between chunks). Each
    // activation vector is pinned in a register (the empty asm): left to
    // itself GCC folded the loads into the FMAs, 16 loads per 12 FMAs, and
    // the tile ran at 60-65% of the FMA peak from L1 against ~90% pinned.
    constexpr std::size_t NG = NR / 2, L = 8;
    for (std::size_t k0 = 0; k0 < kpn; k0 += gemm_micro_chunk) {
      const std::size_t k1 = std::min(kpn, k0 + gemm_micro_chunk);
      const bool load = load_c || k0 > 0;
      GRIFFIN_UNROLL for (std::size_t g = 0; g < NR; g += NG) {
        __m256 acc[NG][MV];
        GRIFFIN_UNROLL for (std::size_t i = 0; i < NG; ++i)
          GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j] = load ? _mm256_load_ps(c + ((g + i) * MV + j) * L) : _mm256_setzero_ps();
        const float* pg = panel + g * ldp;
        const float* ak = a + k0 * lda;
        for (std::size_t kp = k0; kp < k1; ++kp, ak += lda) {
          __m256 av[MV];
          GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) {
            __m256 v = _mm256_load_ps(ak + j * L);
            asm("" : "+x"(v));
            av[j] = v;
          }
          GRIFFIN_UNROLL for (std::size_t i = 0; i < NG; ++i) {
            const __m256 wb = _mm256_broadcast_ss(pg + i * ldp + kp);
            GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j] = _mm256_fmadd_ps(wb, av[j], acc[i][j]);
          }
        }
        GRIFFIN_UNROLL for (std::size_t i = 0; i < NG; ++i)
          GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) _mm256_store_ps(c + ((g + i) * MV + j) * L, acc[i][j]);
      }
    }
    return;
  }
#endif
  using B = batch<Arch>;
  constexpr std::size_t L = B::size;
  B acc[NR][MV];
  GRIFFIN_UNROLL for (std::size_t i = 0; i < NR; ++i)
    GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j] = load_c ? B::load_aligned(c + (i * MV + j) * L) : B(0.0f);
  for (std::size_t kp = 0; kp < kpn; ++kp) {
    B av[MV];
    GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) av[j] = B::load_aligned(a + kp * lda + j * L);
    GRIFFIN_UNROLL for (std::size_t i = 0; i < NR; ++i) {
      const B wb(panel[i * ldp + kp]);
      GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j] = xsimd::fma(wb, av[j], acc[i][j]);
    }
  }
  GRIFFIN_UNROLL for (std::size_t i = 0; i < NR; ++i)
    GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j].store_aligned(c + (i * MV + j) * L);
}

// The register tile: c[NR][MV * L] (+)= panel[NR, kpn] * a[kpn][MV * L].
// int16 pairs sum in int32, exact: kpn <= 256 words of at most two products
// of 128 * 32767 each stay below 2^31; the block's sum is then added to c.
// prefetch: the panel rows stream from memory (weights broadcast in place to
// few tokens); each row's line gemm_prefetch_bytes ahead is then prefetched
// once per 16 words (see gemm_prefetch_max_tokens).
template <class Arch, class T, std::size_t MV, class E>
inline void gemm_micro(const E* panel, std::size_t ldp, const E* a, std::size_t lda, std::size_t kpn, float* c,
                       bool load_c, [[maybe_unused]] bool prefetch) {
  [[maybe_unused]] constexpr std::size_t NR = gemm_nr;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  if constexpr (int16_pairs<T, Arch> && std::is_base_of_v<xsimd::avx512bw, Arch>) {
    assert(kpn <= 256);
    // __v16si, the type the instruction's builtin takes: with __m512i
    // accumulators GCC 12 kept them on the stack (a third of the speed).
    __v16si acc[NR][MV];
    GRIFFIN_UNROLL for (std::size_t i = 0; i < NR; ++i)
      GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j] = (__v16si)_mm512_setzero_si512();
    for (std::size_t kp = 0; kp < kpn; ++kp) {
      __m512i av[MV];
      GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) av[j] = _mm512_load_si512(a + kp * lda + j * 16);
      GRIFFIN_UNROLL for (std::size_t i = 0; i < NR; ++i) {
        const __m512i wb = _mm512_set1_epi32(static_cast<int>(load_u32(panel + i * ldp + kp)));
        GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j] = (__v16si)_mm512_dpwssd_epi32((__m512i)acc[i][j], av[j], wb);
      }
    }
    GRIFFIN_UNROLL for (std::size_t i = 0; i < NR; ++i)
      GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) {
        const __m512 sum = _mm512_cvtepi32_ps((__m512i)acc[i][j]);
        _mm512_store_ps(c + (i * MV + j) * 16, load_c ? _mm512_add_ps(_mm512_load_ps(c + (i * MV + j) * 16), sum) : sum);
      }
    return;
  }
#endif
#if defined(__AVX2__)
  if constexpr (int16_pairs<T, Arch> && std::is_base_of_v<xsimd::avx2, Arch>) {
    assert(kpn <= 256);
    // vpmaddwd + vpaddd: the same exact sums with 8 lanes. The tile's rows
    // go 4 at a time: 12 accumulators of AVX2's 16 registers (all 8 rows,
    // 24 accumulators, would spill). __v8si, as for vpdpwssd above: with
    // __m256i accumulators GCC 12 kept them on the stack, and the 512 x 7680
    // x 2560 product ran at 116-119 GFLOP/s on 2 threads against 186-214.
    constexpr std::size_t NG = NR / 2, L = 8;
    GRIFFIN_UNROLL for (std::size_t g = 0; g < NR; g += NG) {
      __v8si acc[NG][MV];
      GRIFFIN_UNROLL for (std::size_t i = 0; i < NG; ++i)
        GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j] = (__v8si)_mm256_setzero_si256();
      const E* pg = panel + g * ldp;
      for (std::size_t kp = 0; kp < kpn; ++kp) {
        __m256i av[MV];
        GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) av[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(a + kp * lda + j * L));
        GRIFFIN_UNROLL for (std::size_t i = 0; i < NG; ++i) {
          const __m256i wb = _mm256_set1_epi32(static_cast<int>(load_u32(pg + i * ldp + kp)));
          GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j] = (__v8si)_mm256_add_epi32((__m256i)acc[i][j], _mm256_madd_epi16(av[j], wb));
        }
      }
      GRIFFIN_UNROLL for (std::size_t i = 0; i < NG; ++i)
        GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) {
          float* out = c + ((g + i) * MV + j) * L;
          const __m256 sum = _mm256_cvtepi32_ps((__m256i)acc[i][j]);
          _mm256_store_ps(out, load_c ? _mm256_add_ps(_mm256_load_ps(out), sum) : sum);
        }
    }
    return;
  }
#endif
#if defined(__AVX512BF16__)
  if constexpr (bf16_pairs<T, Arch>) {
    __m512 acc[NR][MV];
    GRIFFIN_UNROLL for (std::size_t i = 0; i < NR; ++i)
      GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j] = load_c ? _mm512_load_ps(c + (i * MV + j) * 16) : _mm512_setzero_ps();
    for (std::size_t kp = 0; kp < kpn; ++kp) {
      if (prefetch && kp % 16 == 0)  // written here: from a lambda GCC 12 emitted no prefetch at all
        GRIFFIN_UNROLL for (std::size_t i = 0; i < NR; ++i)
          _mm_prefetch(reinterpret_cast<const char*>(panel + i * ldp + kp) + gemm_prefetch_bytes, _MM_HINT_T0);
      __m512i av[MV];
      GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) av[j] = _mm512_load_si512(a + kp * lda + j * 16);
      GRIFFIN_UNROLL for (std::size_t i = 0; i < NR; ++i) {
        const __m512i wb = _mm512_set1_epi32(static_cast<int>(load_u32(panel + i * ldp + kp)));
        GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)av[j], (__m512bh)wb);
      }
    }
    GRIFFIN_UNROLL for (std::size_t i = 0; i < NR; ++i)
      GRIFFIN_UNROLL for (std::size_t j = 0; j < MV; ++j) _mm512_store_ps(c + (i * MV + j) * 16, acc[i][j]);
    return;
  }
#endif
  if constexpr (std::is_same_v<E, float>) gemm_micro_float<Arch, MV>(panel, ldp, a, lda, kpn, c, load_c);
}

#if defined(__AVX512F__)
// A finished register tile, tile [8][ld] (weight row i's sums for the tokens
// side by side), written to y rows m0 .. m0 + tokens, columns n .. n + 8: each
// block of 16 tokens transposed in registers (unpack, shuffle, permutex2var)
// so a token's 8 outputs go out in one 256-bit store (one store_output call
// per output cost ~5% of a 512-token GEMM). Every output takes store_output's
// operations in its order: times the token's grid step rs (int16 pairs),
// times the channel's scale, plus bias, added to the old output.
static_assert(gemm_nr == 8);
inline void store_tile_8x16(const float* tile, std::size_t ld, std::size_t tokens, const float* rs, const float* scale,
                            const float* bias, matrix_view<float> y, std::size_t m0, std::size_t n, bool accumulate) {
  const __m512i low = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i high = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  for (std::size_t j = 0; j < tokens; j += 16) {
    const std::size_t count = std::min<std::size_t>(16, tokens - j);
    __m512 r[8];
    for (std::size_t i = 0; i < 8; ++i) {
      r[i] = _mm512_load_ps(tile + i * ld + j);
      if (rs) r[i] = _mm512_mul_ps(r[i], _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1), rs + j));
      if (scale) r[i] = _mm512_mul_ps(r[i], _mm512_set1_ps(scale[i]));
      if (bias) r[i] = _mm512_add_ps(r[i], _mm512_set1_ps(bias[i]));
    }
    // u[k] lane l: rows 0-3 of token 4l + k; u[4 + k]: rows 4-7.
    __m512 u[8];
    for (std::size_t h = 0; h < 2; ++h) {
      const __m512 t0 = _mm512_unpacklo_ps(r[4 * h], r[4 * h + 1]), t1 = _mm512_unpackhi_ps(r[4 * h], r[4 * h + 1]);
      const __m512 t2 = _mm512_unpacklo_ps(r[4 * h + 2], r[4 * h + 3]), t3 = _mm512_unpackhi_ps(r[4 * h + 2], r[4 * h + 3]);
      u[4 * h] = _mm512_shuffle_ps(t0, t2, 0x44);
      u[4 * h + 1] = _mm512_shuffle_ps(t0, t2, 0xee);
      u[4 * h + 2] = _mm512_shuffle_ps(t1, t3, 0x44);
      u[4 * h + 3] = _mm512_shuffle_ps(t1, t3, 0xee);
    }
    const auto put = [&](std::size_t t, __m256 v) {
      if (t >= count) return;
      float* out = y.row(m0 + j + t) + n;
      _mm256_storeu_ps(out, accumulate ? _mm256_add_ps(_mm256_loadu_ps(out), v) : v);
    };
    const auto upper = [](__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); };
    for (std::size_t k = 0; k < 4; ++k) {
      const __m512 a = _mm512_permutex2var_ps(u[k], low, u[4 + k]), b = _mm512_permutex2var_ps(u[k], high, u[4 + k]);
      put(k, _mm512_castps512_ps256(a));
      put(4 + k, upper(a));
      put(8 + k, _mm512_castps512_ps256(b));
      put(12 + k, upper(b));
    }
  }
}
#endif

// Output channels [n0, n1) of the packed gemm, a[k'][Mpad] packed activations.
// row_scale [M]: each token's activation grid step (int16 pairs), else null.
template <class Arch, class T>
inline void gemm_channels(const packed_element<T, Arch>* a, const float* row_scale, std::size_t M, std::size_t Mpad, std::size_t Kp,
                          weights_view<T> w, const float* bias, matrix_view<float> y, std::size_t n0, std::size_t n1,
                          bool accumulate) {
  using E = packed_element<T, Arch>;
  constexpr std::size_t L = lanes<Arch>, NR = gemm_nr, P = k_per_element<T, Arch>;
  const std::size_t K = w.in;
  // Weight rows are broadcast in place when they already hold packed elements.
  const bool in_place = (std::is_same_v<T, E> && w.layout == weight_layout::out_in) || (bf16_pairs<T, Arch> && bf16_pairs_in_place(w));

  struct panel_tag;
  struct c_tag;
  constexpr std::size_t KC = gemm_kc<T, Arch>, ldp_max = KC / P;
  // bf16 [in, out] weights are converted 4 panels at a time (convert_panels_in_out_bf16).
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
  constexpr bool group_in_out = bf16_pairs<T, Arch>;
#else
  constexpr bool group_in_out = false;
#endif
  constexpr std::size_t G = group_in_out ? 4 : 1;
  E* panel_buffer = thread_buffer<panel_tag, E>(G * NR * ldp_max);
  float* cbuf = thread_buffer<c_tag, float>(gemm_nc * std::min(gemm_mc, Mpad));
  alignas(64) float tile[NR * gemm_mv * 16];
  // The next group of [in, out] panels to convert (rows n.., k block k0,
  // kc): each micro call prefetches its share of the group's kc lines into
  // L2. Those lines are a row stride apart, each in a page of its own,
  // which the hardware prefetchers do not follow: unprefetched, converting
  // took ~20% of a 512 x 7680 x 2560 product.
  struct group_block {
    std::size_t n = 0, k0 = 0, kc = 0;
  } next;

  for (std::size_t mc0 = 0; mc0 < Mpad; mc0 += gemm_mc) {
    const std::size_t mc = std::min(gemm_mc, Mpad - mc0);
    for (std::size_t nc0 = n0; nc0 < n1; nc0 += gemm_nc) {
      const std::size_t nc = std::min(gemm_nc, n1 - nc0);
      for (std::size_t k0 = 0; k0 < K; k0 += KC) {
        const std::size_t kc = std::min(KC, K - k0);
        const std::size_t kpn = (kc + P - 1) / P;
        const bool first = k0 == 0, last = k0 + kc == K;
        for (std::size_t nb = 0; nb < nc; nb += NR) {
          const std::size_t n = nc0 + nb, rows = std::min(NR, nc - nb);
          const E* panel;
          std::size_t ldp;
          bool prefetch = false;
          [[maybe_unused]] bool grouped = false;  // the panel is one of a group of G (AVX512-BF16 only)
          const std::size_t gb = nb - nb % (G * NR);  // the first row of nb's group of G panels
          if (in_place && rows == NR) {
            panel = reinterpret_cast<const E*>(w.data + n * w.stride + k0);
            ldp = w.stride / P;
            prefetch = std::is_same_v<T, bfloat16> && Mpad <= gemm_prefetch_max_tokens;
          } else if (group_in_out && w.layout == weight_layout::in_out && kc % 32 == 0 && nc - gb >= G * NR) {
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
            if constexpr (group_in_out) {
              if (nb == gb) {
                convert_panels_in_out_bf16(w, nc0 + gb, k0, kc, panel_buffer, kpn);
                // The group converted next: the next 32 rows here, else the
                // next k block's first, else the next row block's.
                if (gb + 2 * G * NR <= nc) next = {nc0 + gb + G * NR, k0, kc};
                else if (k0 + KC < K) next = {nc0, k0 + KC, std::min(KC, K - k0 - KC)};
                else if (nc0 + gemm_nc + G * NR <= n1) next = {nc0 + gemm_nc, 0, std::min(KC, K)};
                else next = {};
              }
              grouped = true;
            }
#endif
            panel = panel_buffer + (nb - gb) * kpn;
            ldp = kpn;
          } else {
            convert_panel<Arch>(w, n, rows, k0, kc, panel_buffer, kpn);
            panel = panel_buffer;
            ldp = kpn;
          }
          for (std::size_t mb = 0; mb < mc; mb += gemm_mv * L) {
            const std::size_t mv = std::min(gemm_mv, (mc - mb) / L);
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
            if (grouped && next.kc > 0) {
              const std::size_t tiles = (mc + gemm_mv * L - 1) / (gemm_mv * L), calls = G * tiles;
              const std::size_t call = (nb - gb) / NR * tiles + mb / (gemm_mv * L);
              const char* base = reinterpret_cast<const char*>(w.data + next.k0 * w.stride + next.n);
              for (std::size_t k = call * next.kc / calls; k < (call + 1) * next.kc / calls; ++k) {
                const char* line = base + k * w.stride * sizeof(T);
                _mm_prefetch(line, _MM_HINT_T1);
                _mm_prefetch(line + G * NR * sizeof(T) - 1, _MM_HINT_T1);
              }
            }
#endif
            // Sums of earlier k blocks wait in cbuf and finish there; a
            // single block's go to the stack tile (copying cbuf to the tile
            // for the last block took ~2% of a 512-token bf16 prefill).
            float* c = first && last ? tile : cbuf + nb * mc + mb * NR;
            constexpr std::size_t MB = gemm_block_tokens<Arch>;
            const std::size_t m_first = mc0 + mb;
            const E* at = a + (m_first / MB) * Kp * MB + (k0 / P) * MB + m_first % MB;
            switch (mv) {
              case 3: gemm_micro<Arch, T, 3>(panel, ldp, at, MB, kpn, c, !first, prefetch); break;
              case 2: gemm_micro<Arch, T, 2>(panel, ldp, at, MB, kpn, c, !first, prefetch); break;
              default: gemm_micro<Arch, T, 1>(panel, ldp, at, MB, kpn, c, !first, prefetch); break;
            }
            if (last) {
              const std::size_t tokens = std::min(mv * L, M > m_first ? M - m_first : 0);
#if defined(__AVX512F__)
              if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
                if (rows == NR) {
                  store_tile_8x16(c, mv * L, tokens, row_scale ? row_scale + m_first : nullptr, w.scale ? w.scale + n : nullptr,
                                  bias ? bias + n : nullptr, y, m_first, n, accumulate);
                  continue;
                }
              }
#endif
              for (std::size_t t = 0; t < tokens; ++t) {
                float* out = y.row(m_first + t) + n;
                const float rs = row_scale ? row_scale[m_first + t] : 1.0f;  // x 1 is exact
                for (std::size_t i = 0; i < rows; ++i) store_output(c[i * mv * L + t] * rs, w.scale, bias, n + i, out[i], accumulate);
              }
            }
          }
        }
      }
    }
  }
}

#if GRIFFIN_AMX_GEMM
// The AMX bf16 gemm (amx.hpp), y [M, N] (+)= x [M, K] W^T + bias.
//
// The activations are the A tiles and the weights the B tiles, in either
// layout, so that a tile of sums is [16 tokens][16 outputs] and goes to y a
// full row of 16 outputs at a time. The activations are rounded to bf16
// once per product, tile-major: token tile t (16 tokens), k step s (32 k)
// is 16 rows of 32 bf16, one 1 KiB tile, at tiles + (t * steps + s) * 512;
// its loads are contiguous. A panel of 32 outputs is packed per k block as
// two B tiles a step, [steps][16 pairs][16 outputs] words (k, k + 1 of one
// output in a word): from [out, in] rows by a 16 x 16 word transpose, from
// [in, out] rows by interleaving two rows. Zeros past M, N and K.
//
// int8 weights (the int8 rule, exact; amx.hpp's tiles_int8): each row on its
// 16-bit grid (to_int16_grid), each value split into its signed high
// byte and unsigned low byte; token tile t, k step s (64 k) is then the
// high bytes' 16 rows of 64 and the low bytes' after them, 2 KiB at tiles +
// (t * steps + s) * 2048. A panel's B tiles are [steps][16 quads][16
// outputs] dwords (k .. k + 3 of one output in a dword), from [out, in]
// rows by a 16 x 16 dword transpose. Sums stay int32 in the tiles over the
// whole of K (at most 65536: 128 x 255 x 65536 < 2^31), and the store makes
// 256 hi + lo in double (exact) and rounds it to float once: the exact
// integer sum that the vpdpwssd gemm rounds once per 512 k.
struct amx_activations {
  const char* tiles = nullptr;
  std::size_t steps = 0;                // bf16: K32 / 32; int8: K64 / 64
  std::size_t step_bytes = 1024;        // bytes of a token tile's k step: 1024 (bf16), 2048 (int8)
  const float* row_scale = nullptr;     // int8: each row's grid step (to_int16_grid), else null
};

// k per tile step and the largest K, for weights of type T.
template <class T>
inline constexpr std::size_t amx_k_step = std::is_same_v<T, std::int8_t> ? 64 : 32;
inline constexpr std::size_t amx_int8_max_k = 65536;

inline amx_activations amx_pack(matrix_view<const float> x, thread_pool* pool) {
  struct tiles_tag;
  const std::size_t M = x.rows, K = x.cols, S = (K + 31) / 32, T = (M + 15) / 16;
  std::uint16_t* a = thread_buffer<tiles_tag, std::uint16_t>(T * S * 512);
  const std::size_t tasks = std::min<std::size_t>(pool ? pool->size() : 1, T);
  // Each row's 32 k of a step as one 64-byte line, rounded as to_bf16 does
  // (vcvtne2ps2bf16: nearest even); masked at the K edge, zero past M.
  parallel_run(pool, tasks, [&](std::size_t task) {
    for (std::size_t t = T * task / tasks; t < T * (task + 1) / tasks; ++t)
      for (std::size_t s = 0; s < S; ++s)
        for (std::size_t i = 0; i < 16; ++i) {  // the tile's lines in order
          const std::size_t m = 16 * t + i;
          const float* xr = m < M ? x.row(m) : nullptr;
          __m512i v = _mm512_setzero_si512();
          if (xr) {
            const std::size_t kn = std::min<std::size_t>(32, K - 32 * s);
            const __mmask16 lo = static_cast<__mmask16>(kn >= 16 ? 0xffffu : (1u << kn) - 1);
            const __mmask16 hi = static_cast<__mmask16>(kn >= 32 ? 0xffffu : kn > 16 ? (1u << (kn - 16)) - 1 : 0u);
            v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, xr + 32 * s + 16), _mm512_maskz_loadu_ps(lo, xr + 32 * s));
          }
          _mm512_store_si512(a + (t * S + s) * 512 + i * 32, v);
        }
  });
  return {reinterpret_cast<const char*>(a), S, 1024, nullptr};
}

inline amx_activations amx_pack_int8(matrix_view<const float> x, thread_pool* pool) {
  struct tiles_tag;
  struct xs_tag;
  struct row_tag;
  const std::size_t M = x.rows, K = x.cols, S = (K + 63) / 64, T = (M + 15) / 16;
  assert(K <= amx_int8_max_k);  // the int32 tile sums' limit
  std::int8_t* a = thread_buffer<tiles_tag, std::int8_t>(T * S * 2048);
  float* xs = thread_buffer<xs_tag, float>(M);
  const std::size_t tasks = std::min<std::size_t>(pool ? pool->size() : 1, T);
  // Each row on its grid into a row buffer of the task's thread (in L1 or
  // L2), then split into its 64-value lines: high bytes at tile line i, low
  // bytes at line 16 + i of each k step's 2 KiB.
  parallel_run(pool, tasks, [&](std::size_t task) {
    std::int16_t* row = thread_buffer<row_tag, std::int16_t>(64 * S);
    for (std::size_t t = T * task / tasks; t < T * (task + 1) / tasks; ++t)
      for (std::size_t i = 0; i < 16; ++i) {
        const std::size_t m = 16 * t + i;
        if (m < M) xs[m] = to_int16_grid(x.row(m), row, K, 64 * S);  // zeros past K
        for (std::size_t s = 0; s < S; ++s) {
          std::int8_t* hi = a + (t * S + s) * 2048 + i * 64;
          for (std::size_t h = 0; h < 2; ++h) {
            const __m512i v = m < M ? _mm512_load_si512(row + 64 * s + 32 * h) : _mm512_setzero_si512();
            _mm256_store_si256(reinterpret_cast<__m256i*>(hi + 32 * h), _mm512_cvtepi16_epi8(_mm512_srai_epi16(v, 8)));
            _mm256_store_si256(reinterpret_cast<__m256i*>(hi + 1024 + 32 * h), _mm512_cvtepi16_epi8(v));
          }
        }
      }
  });
  return {reinterpret_cast<const char*>(a), S, 2048, xs};
}

// The activations as the tiles take them for weights of type T.
template <class T>
inline amx_activations amx_pack_for(matrix_view<const float> x, thread_pool* pool) {
  if constexpr (std::is_same_v<T, std::int8_t>) return amx_pack_int8(x, pool);
  else return amx_pack(x, pool);
}

// An [out, in] panel's packing reads its rows a line at a time, 16 or 32
// rows side by side; the hardware prefetchers lose them, and the loads
// waited on memory for 83% of an int8 product of 8 rows. Each load
// therefore prefetches its row amx_pack_prefetch_bytes ahead (within the
// row: `left` bytes from `at`). [out, in] 65536 x 2560 from memory, 2
// threads, GFLOP/s without and with (Xeon with AMX, 2026-12-07): int8 16
// rows 381 / 513, 32 669 / 823, 128 1451 / 1701; bf16 16 rows 284 / 320, 128
// 1327 / 1406; 128 to 384 bytes within a few percent of each other.
inline constexpr std::size_t amx_pack_prefetch_bytes = 256;
inline void amx_prefetch_row(const void* at, std::size_t left) noexcept {
  if (left > amx_pack_prefetch_bytes) _mm_prefetch(static_cast<const char*>(at) + amx_pack_prefetch_bytes, _MM_HINT_T0);
}

// A panel's B tiles for one k block (the layout above): `outputs` (1 to 32)
// outputs from np, tile j (outputs np + 16 j on) at out + j * steps * 256
// words, step s at + s * 256; a second tile only where outputs > 16. From
// [out, in] rows (bf16 or int8): output n + i's k step, one 64-byte line of
// its row (32 bf16 or 64 int8, zero past K), becomes word i of the step's
// 16 rows.
template <class T>
inline void amx_pack_panel_out_in(weights_view<T> w, std::size_t np, std::size_t outputs, std::size_t k0, std::size_t steps,
                                  std::uint32_t* out) noexcept {
  assert(w.layout == weight_layout::out_in);
  constexpr std::size_t ks = amx_k_step<T>, bytes = sizeof(T);
  const std::size_t K = w.in;
  const auto* wd = reinterpret_cast<const char*>(w.data);
  for (std::size_t j = 0; 16 * j < outputs; ++j) {
    const std::size_t n = np + 16 * j, valid = std::min<std::size_t>(16, outputs - 16 * j);
    for (std::size_t s = 0; s < steps; ++s) {
      const std::size_t k = k0 + ks * s, kn = k < K ? std::min(ks, K - k) : 0;
      const char* src = kn ? wd + bytes * (n * w.stride + k) : wd;  // nothing read past K
      if (kn)
        for (std::size_t i = 0; i < valid; ++i) amx_prefetch_row(src + i * bytes * w.stride, bytes * (K - k));
      transpose_lines_16x16(src, bytes * w.stride, kn ? valid : 0, out + (j * steps + s) * 256, 16, 16, bytes * kn);
    }
  }
}

inline void amx_pack_panel(weights_view<bfloat16> w, std::size_t np, std::size_t outputs, std::size_t k0, std::size_t steps,
                           std::uint32_t* out) noexcept {
  if (w.layout == weight_layout::out_in) return amx_pack_panel_out_in(w, np, outputs, k0, steps, out);
  const std::size_t K = w.in;
  const auto* wd = reinterpret_cast<const std::uint16_t*>(w.data);
  // Rows k and k + 1, one 64-byte load each, interleaved by word: word
  // (pair q, output o) = W[k0 + 2q][n + o] | W[k0 + 2q + 1][n + o] << 16.
  alignas(64) static constexpr std::int16_t lo_words[32] = {0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
                                                            8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  alignas(64) static constexpr std::int16_t hi_words[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
                                                            24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  const __m512i lo_idx = _mm512_load_si512(lo_words), hi_idx = _mm512_load_si512(hi_words);
  const __mmask32 mask = static_cast<__mmask32>((std::uint64_t{1} << outputs) - 1);
  std::uint32_t* out1 = out + steps * 256;
  for (std::size_t q = 0; q < steps * 16; ++q) {
    const std::size_t k = k0 + 2 * q;
    const __m512i r0 = k < K ? _mm512_maskz_loadu_epi16(mask, wd + k * w.stride + np) : _mm512_setzero_si512();
    const __m512i r1 = k + 1 < K ? _mm512_maskz_loadu_epi16(mask, wd + (k + 1) * w.stride + np) : _mm512_setzero_si512();
    _mm512_store_si512(out + q * 16, _mm512_permutex2var_epi16(r0, lo_idx, r1));
    if (outputs > 16) _mm512_store_si512(out1 + q * 16, _mm512_permutex2var_epi16(r0, hi_idx, r1));
  }
}

// int8 weights: [out, in] only (amx_serves).
inline void amx_pack_panel(weights_view<std::int8_t> w, std::size_t np, std::size_t outputs, std::size_t k0, std::size_t steps,
                           std::uint32_t* out) noexcept {
  amx_pack_panel_out_in(w, np, outputs, k0, steps, out);
}

// The weights the panel after (np, k step s0) reads, for amx_prefetch: the
// next 32 outputs of [n0, n1) in this k block, else the first of the next k
// block, else those of the first k block (the next token block's).
template <class T>
inline amx_prefetch amx_next_panel(weights_view<T> w, std::size_t n0, std::size_t n1, std::size_t np, std::size_t s0,
                                   std::size_t kc_steps, std::size_t S) noexcept {
  constexpr std::size_t ks = amx_k_step<T>, bytes = sizeof(T);
  std::size_t n = np + 32, s = s0;
  if (n >= n1) {
    n = n0;
    s = s0 + kc_steps < S ? s0 + kc_steps : 0;
  }
  const std::size_t k = ks * s, kn = std::min(ks * kc_steps, w.in - std::min(w.in, k)), outputs = std::min<std::size_t>(32, n1 - n);
  amx_prefetch p;
  p.stride = bytes * w.stride;
  if (w.layout == weight_layout::out_in) {  // rows: outputs, k block along each
    p.row = reinterpret_cast<const char*>(w.data + n * w.stride + k);
    p.per_row = (bytes * kn + 63) / 64;
    p.left = outputs * p.per_row;
  } else {  // rows: the k block, outputs along each
    p.row = reinterpret_cast<const char*>(w.data + k * w.stride + n);
    p.per_row = (bytes * outputs + 63) / 64;
    p.left = kn * p.per_row;
  }
  return p;
}

// Activation rows from which bf16 products run on AMX tiles where the CPU
// has them, below the gemv's and gemm's gemm_min_rows (16): a tile of 16
// token rows costs the same with 3 of them, and streams the weights faster
// than this CPU's vdpbf16ps rows. Xeon with AMX, 2 threads, GFLOP/s, gemv
// against tiles: [out, in] 65536 x 2560 from memory, 2 rows 43 / 44, 3 rows
// 59 / 68, 4 70 / 91, 8 109 / 178, 12 128 / 262; [in, out] 7680 x 2560 (the
// tiles pack a line of each of K rows per panel), 4 rows 65 / 34, 8 70 /
// 66, 12 84 / 100.
inline constexpr std::size_t amx_min_rows(weight_layout layout) noexcept { return layout == weight_layout::out_in ? 3 : 12; }
// int8 ([out, in] only) from 10 rows: its vpdpwssd gemv tiles are faster
// on this CPU than on bf16's, and the tiles take two products per product.
// Same matrix, gemv against tiles: 6 rows 233 / 213, 8 278 / 279, 12 325 /
// 391, 16 347 / 513, 64 455 / 1300 (the gemv's tiles run to 96 rows).
#ifndef GRIFFIN_AMX_MIN_ROWS_INT8
#define GRIFFIN_AMX_MIN_ROWS_INT8 10
#endif
inline constexpr std::size_t amx_min_rows_int8 = GRIFFIN_AMX_MIN_ROWS_INT8;

// The MLP's second product when the AMX gemm runs its gated form
// (amx_matmul_gated): the up half, whose sums meet the gate's in the store.
template <class T>
struct amx_up_half {
  weights_view<T> w;
  const float* bias = nullptr;
};

// A 2 x rb block of int8 tiles' sums (tiles_int8: per token tile ti, hi j
// at c + (2 ti rb + j) 256, lo j at + rb 256) as float sums [ti rb + j][16][16]:
// 256 hi + lo, exact in double, rounded to float once.
inline void amx_int8_sums(const std::int32_t* c, std::size_t ra, std::size_t rb, float* tile) noexcept {
  for (std::size_t ti = 0; ti < ra; ++ti)
    for (std::size_t j = 0; j < rb; ++j) {
      const std::int32_t* hi = c + (2 * ti * rb + j) * 256;
      const std::int32_t* lo = hi + rb * 256;
      float* out = tile + (ti * rb + j) * 256;
      for (std::size_t e = 0; e < 256; e += 8) {
        const __m512d h = _mm512_cvtepi32_pd(_mm256_load_si256(reinterpret_cast<const __m256i*>(hi + e)));
        const __m512d l = _mm512_cvtepi32_pd(_mm256_load_si256(reinterpret_cast<const __m256i*>(lo + e)));
        _mm256_store_ps(out + e, _mm512_cvtpd_ps(_mm512_fmadd_pd(h, _mm512_set1_pd(256.0), l)));
      }
    }
}

// Output channels [n0, n1) of the AMX gemm, n0 a multiple of 32 and n1 - n0
// at most amx_nc (amx_channels cuts a thread's share into such pieces):
// cache blocks of amx_mc tokens x amx_kc / 32 k steps (the whole of K for
// up to amx_whole_k_rows tokens, or where the packed activations take at
// most amx_whole_k_bytes); in each, a panel of 32 outputs is packed
// once and passed by every pair of token tiles. Sums of all but the last k
// block wait in cbuf. With `up`, each pair of token tiles also passes the up
// half's panel of the same outputs, and the store writes
// Gelu(gate sums + bias) x (up sums + up bias), Gelu = gelu_tanh_fn on
// batches of Arch (16 lanes). T: bfloat16 (tiles) or int8 (tiles_int8, one
// call a token tile; the sums x the row's grid step x the channel's scale).
template <class Tiles, class Arch = default_arch, class T>
inline void amx_piece(const amx_activations& act, std::size_t M, weights_view<T> w, const float* bias, matrix_view<float> y,
                      std::size_t n0, std::size_t n1, bool accumulate, const amx_up_half<T>* up = nullptr) {
  struct c_tag;
  struct panel_tag;
  constexpr bool int8 = std::is_same_v<T, std::int8_t>;
  using sum_t = std::conditional_t<int8, std::int32_t, float>;
  constexpr std::size_t pair_sums = int8 ? 2048 : 1024;  // a pair of token tiles' sums for 32 outputs
  const std::size_t S = act.steps, M16 = (M + 15) / 16 * 16, halves = up ? 2 : 1;
  const std::size_t pairs_max = (std::min(amx_mc, M16) + 31) / 32;  // token tile pairs a block
  const bool whole_k = M16 <= amx_whole_k_rows || (M16 <= amx_mc && M16 * S * (act.step_bytes / 16) <= amx_whole_k_bytes);
  const std::size_t kc_steps = whole_k ? S : amx_kc / 32;
  const std::size_t c_size = amx_nc / 32 * pairs_max * pair_sums, panel_size = 2 * kc_steps * 256;
  sum_t* cbuf = thread_buffer<c_tag, sum_t>(halves * c_size);
  std::uint32_t* panel = thread_buffer<panel_tag, std::uint32_t>(halves * panel_size);
  alignas(64) float tile[2][4 * 256];
  alignas(64) sum_t last_sums[2][int8 ? pair_sums : 1];  // int8: the last k block's sums
  const weights_view<T> ws[2] = {w, up ? up->w : w};
  for (std::size_t mc0 = 0; mc0 < M16; mc0 += amx_mc) {
    const std::size_t mc = std::min(amx_mc, M16 - mc0), pairs = (mc + 31) / 32;
    for (std::size_t s0 = 0; s0 < S; s0 += kc_steps) {
      const std::size_t steps = std::min(kc_steps, S - s0);
      const bool first = s0 == 0, last = s0 + steps == S;
      for (std::size_t np = n0; np < n1; np += 32) {
        const std::size_t rb = std::min<std::size_t>(32, n1 - np) > 16 ? 2 : 1;  // output tiles
        const char* b[2][2];
        amx_prefetch next[2];
        for (std::size_t h = 0; h < halves; ++h) {
          std::uint32_t* p = panel + h * panel_size;
          amx_pack_panel(ws[h], np, std::min<std::size_t>(32, n1 - np), amx_k_step<T> * s0, steps, p);
          b[h][0] = reinterpret_cast<const char*>(p);
          b[h][1] = reinterpret_cast<const char*>(p + (rb - 1) * steps * 256);
          // Whole rows of k are sequential reads the hardware prefetchers
          // follow; the prefetch is for k blocks (see amx_prefetch).
          if (kc_steps < S) next[h] = amx_next_panel(ws[h], n0, n1, np, s0, kc_steps, S);
          // Spread over the panel's tile steps: a call per pair of token
          // tiles (bf16), per token tile (int8).
          const std::size_t tile_steps = steps * (int8 ? mc / 16 : pairs);
          next[h].per_step = (next[h].left + tile_steps - 1) / tile_steps;
        }
        for (std::size_t mt = mc0; mt < mc0 + mc; mt += 32) {
          const std::size_t ra = std::min<std::size_t>(2, (mc0 + mc - mt) / 16);  // token tiles
          const char* a0 = act.tiles + ((mt / 16) * S + s0) * act.step_bytes;
          const char* a[2] = {a0, a0 + (ra - 1) * S * act.step_bytes};
          for (std::size_t h = 0; h < halves; ++h) {
            sum_t* c = cbuf + h * c_size + ((np - n0) / 32 * pairs_max + (mt - mc0) / 32) * pair_sums;
            if constexpr (int8) {
              std::int32_t* c_out = last ? last_sums[h] : c;
              for (std::size_t ti = 0; ti < ra; ++ti)
                amx_dispatch(1, rb, [&](auto, auto rb_c) {
                  const std::size_t at = 2 * ti * rb_c * 256;
                  Tiles::template tiles_int8<rb_c>(a[ti], steps, b[h], first ? nullptr : c + at, c_out + at, next[h]);
                });
              if (last) amx_int8_sums(c_out, ra, rb, tile[h]);
            } else {
              amx_dispatch(ra, rb, [&](auto ra_c, auto rb_c) {
                Tiles::template tiles<ra_c, rb_c>(a, 64, 1024, b[h], steps, first ? nullptr : c, last ? tile[h] : c, next[h]);
              });
            }
          }
          if (!last) continue;
          // Tile (ti, wj): [16 tokens][16 outputs] at tile + (ti * rb + wj) * 256.
          for (std::size_t ti = 0; ti < ra; ++ti) {
            const std::size_t m = mt + 16 * ti;
            if (m >= M) break;
            const std::size_t tokens = std::min<std::size_t>(16, M - m);
            for (std::size_t wj = 0; wj < rb; ++wj) {
              const std::size_t n = np + 16 * wj, valid = std::min<std::size_t>(16, n1 - n);
              const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
              // Token tk's sums of half h as the product's outputs before
              // the bias: int8's x the row's grid step x the channel's scale.
              const auto sums = [&](std::size_t h, std::size_t tk) {
                __m512 v = _mm512_load_ps(tile[h] + (ti * rb + wj) * 256 + tk * 16);
                if constexpr (int8) {
                  v = _mm512_mul_ps(v, _mm512_set1_ps(act.row_scale[m + tk]));
                  if (ws[h].scale) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mask, ws[h].scale + n));
                  asm("" : "+v"(v));  // rounded here: no compiler may fuse it with the bias's add (-ffp-contract)
                }
                return v;
              };
              const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + n) : _mm512_setzero_ps();
              if (up) {
                static_assert(lanes<Arch> == 16, "the gated store takes 16-lane batches");
                const __m512 buv = up->bias ? _mm512_maskz_loadu_ps(mask, up->bias + n) : _mm512_setzero_ps();
                for (std::size_t tk = 0; tk < tokens; ++tk) {
                  __m512 g = sums(0, tk), u = sums(1, tk);
                  if (bias) g = _mm512_add_ps(g, bv);
                  if (up->bias) u = _mm512_add_ps(u, buv);
                  const batch<Arch> v = gelu_tanh_fn{}(batch<Arch>(g)) * batch<Arch>(u);
                  _mm512_mask_storeu_ps(y.row(m + tk) + n, mask, v);
                }
                continue;
              }
              for (std::size_t tk = 0; tk < tokens; ++tk) {
                float* o = y.row(m + tk) + n;
                __m512 v = sums(0, tk);
                if (bias) v = _mm512_add_ps(v, bv);
                if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, o), v);
                _mm512_mask_storeu_ps(o, mask, v);
              }
            }
          }
        }
      }
    }
  }
}

template <class Tiles, class Arch = default_arch, class T>
inline void amx_channels(const amx_activations& act, std::size_t M, weights_view<T> w, const float* bias, matrix_view<float> y,
                         std::size_t n0, std::size_t n1, bool accumulate, const amx_up_half<T>* up = nullptr) {
  Tiles::configure();
  for (std::size_t p = n0; p < n1; p += amx_nc) amx_piece<Tiles, Arch>(act, M, w, bias, y, p, std::min(n1, p + amx_nc), accumulate, up);
  Tiles::release();
}

/// y [M, N] (+)= x [M, K] W^T + bias on the tiles of `Tiles`
/// (amx_hardware_tiles: what matmul runs where amx_enabled();
/// amx_emulated_tiles: the same blocking on the scalar model, for tests),
/// split over `pool` in work-stealing shares of 32 channels (or on the
/// calling thread when null). T: bfloat16 (either layout), or int8 [out,
/// in] with K at most amx_int8_max_k.
template <class Tiles, class T>
inline void amx_matmul(matrix_view<const float> x, weights_view<T> w, const float* bias, matrix_view<float> y, bool accumulate,
                       thread_pool* pool) {
  const amx_activations act = amx_pack_for<T>(x, pool);
  const auto channels = [&](std::size_t n0, std::size_t n1) { amx_channels<Tiles>(act, x.rows, w, bias, y, n0, n1, accumulate); };
  if (pool && pool->size() > 1) pool->run_shares(w.out, 32, amx_nc / 32, channels);
  else channels(0, w.out);
}

/// y [M, N] = Gelu(x Wg^T + bg) x (x Wu^T + bu) in one pass on the tiles of
/// `Tiles`: the activations packed once, each output's two sums as
/// amx_matmul computes them, Gelu = gelu_tanh_fn on batches of Arch.
template <class Tiles, class Arch = default_arch, class T>
inline void amx_matmul_gated(matrix_view<const float> x, weights_view<T> wg, const float* bg, weights_view<T> wu, const float* bu,
                             matrix_view<float> y, thread_pool* pool) {
  const amx_activations act = amx_pack_for<T>(x, pool);
  const amx_up_half<T> up{wu, bu};
  const auto channels = [&](std::size_t n0, std::size_t n1) {
    amx_channels<Tiles, Arch>(act, x.rows, wg, bg, y, n0, n1, false, &up);
  };
  if (pool && pool->size() > 1) pool->run_shares(wg.out, 32, amx_nc / 32, channels);
  else channels(0, wg.out);
}

// The weight types the CPU's tiles serve in this build.
template <class T>
inline constexpr bool amx_type = std::is_same_v<T, bfloat16> || (GRIFFIN_AMX_INT8 && std::is_same_v<T, std::int8_t>);

// Whether matmul runs weights w with M activation rows on the CPU's tiles:
// bf16 from amx_min_rows, int8 ([out, in], K <= amx_int8_max_k) from
// amx_min_rows_int8, where the build has them and they are enabled.
template <class T>
inline bool amx_serves(weights_view<T> w, std::size_t M) noexcept {
  if constexpr (!amx_type<T>)
    return false;
  else if constexpr (std::is_same_v<T, bfloat16>)
    return M >= amx_min_rows(w.layout) && amx_enabled();
  else
    return w.layout == weight_layout::out_in && w.in <= amx_int8_max_k && M >= amx_min_rows_int8 &&
           amx_enabled();
}
#endif

}  // namespace detail

/// Activation rows from which matmul packs them for the compute-bound path
/// (below it, the gemv). Where the two meet on Zen 5 with the weights coming
/// from memory, as a model's do (65536 x 2560, 2 threads): bf16 at 16; int8
/// on VNNI at 96, its packed gemm converting weight panels to int16 that the
/// gemv tile widens in registers (at 32-64 tokens the tile is 15-35% faster,
/// equal at 96-128; a 7680 x 2560 matrix that stays in cache put it at 32).
/// int8 on AVX2 (vpmaddwd rows against the vpmaddwd gemm, AVX2 Zen 3, 2
/// threads): level at 16 tokens, the gemm ahead from 24 (162 against 154
/// GFLOP/s) to 64 (198 against 128), so 24 there.
template <class T, class Arch = default_arch>
inline constexpr std::size_t gemm_min_rows = !detail::int16_pairs<T, Arch>                 ? 16
                                             : std::is_base_of_v<xsimd::avx2, Arch> ? 24
                                                                                    : 96;

/// SIMD kernel with the contract of `matmul_scalar`, its output channels
/// split over `pool` (or run on the calling thread when null). Rows of x and
/// y may have any stride and alignment; y must not overlap x or w.
template <class Arch = default_arch, WeightElement T>
inline void matmul(matrix_view<const float> x, weights_view<T> w, const float* bias, matrix_view<float> y,
                   bool accumulate = false, thread_pool* pool = nullptr) {
  assert(x.cols == w.in && y.rows == x.rows && y.cols == w.out);
  const std::size_t M = x.rows, N = w.out, K = w.in;
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: y = bias
    for (std::size_t m = 0; m < M; ++m)
      for (std::size_t n = 0; n < N; ++n) detail::store_output(0.0f, nullptr, bias, n, y.row(m)[n], accumulate);
    return;
  }
  constexpr std::size_t L = lanes<Arch>;
  // Threads only for work worth waking them for; channel chunks keep tiles whole.
  const std::size_t threads = pool && M * N * K >= (std::size_t{1} << 18) ? pool->size() : 1;
  auto split = [&](std::size_t grain, auto&& body) {
    const std::size_t chunk = (N + threads * grain - 1) / (threads * grain) * grain;
    const std::size_t tasks = (N + chunk - 1) / chunk;
    parallel_run(threads > 1 ? pool : nullptr, tasks, [&](std::size_t t) { body(t * chunk, std::min(N, (t + 1) * chunk)); });
  };
  // The memory-bound gemv: output channels in shares that threads finish
  // for each other (thread_pool::run_shares), claimed gemv_piece_bytes of
  // weights at a time.
  // Shares are whole groups of tile rows for a batch, of 4 rows otherwise.
  auto share_out = [&](auto&& body) {
    if (threads <= 1) return body(std::size_t{0}, N);
    const std::size_t grain = M > detail::gemv_row_max_rows ? detail::gemv_tile_group : 4;
    pool->run_shares(N, grain, std::max<std::size_t>(1, detail::gemv_piece_bytes / (K * sizeof(T) * grain)), body);
  };

#if GRIFFIN_AMX
  if constexpr (detail::amx_type<T> && std::is_base_of_v<xsimd::avx512bw, Arch>) {
    if (detail::amx_serves(w, M)) return detail::amx_matmul<detail::amx_hardware_tiles>(x, w, bias, y, accumulate, threads > 1 ? pool : nullptr);
  }
#endif
  if (M >= gemm_min_rows<T, Arch>) {
    using E = detail::packed_element<T, Arch>;
    constexpr std::size_t P = detail::k_per_element<T, Arch>;
    struct a_tag;
    constexpr std::size_t MB = detail::gemm_block_tokens<Arch>;
    const std::size_t Mpad = (M + L - 1) / L * L, Kp = (K + P - 1) / P;
    E* a = detail::thread_buffer<a_tag, E>((Mpad + MB - 1) / MB * MB * Kp);
    const std::size_t pack_tasks = std::min<std::size_t>(threads, (Kp + 15) / 16);
    const std::size_t pack_chunk = (Kp + pack_tasks * 16 - 1) / (pack_tasks * 16) * 16;
    float* row_scale = nullptr;
    if constexpr (detail::int16_pairs<T, Arch>) {
      // Rows on their 16-bit grids (as the gemv takes them), then packed.
      const std::size_t ldxq = detail::int16_grid_stride(K);
      const detail::int16_grid_rows grid = detail::to_int16_grid_rows(x, ldxq, threads > 1 ? pool : nullptr);
      row_scale = grid.xs;
      parallel_run(threads > 1 ? pool : nullptr, pack_tasks, [&](std::size_t t) {
        detail::pack_int16_pairs<Arch>(grid.xq, ldxq, M, a, Mpad, Kp, std::min(Kp, t * pack_chunk), std::min(Kp, (t + 1) * pack_chunk));
      });
    } else {
      const matrix_view<const float> xg = P == 1 ? detail::activations_for<T>(x) : x;  // (pairs round as they pack)
      parallel_run(threads > 1 ? pool : nullptr, pack_tasks, [&](std::size_t t) {
        detail::pack_activations<T, Arch>(xg, a, Mpad, Kp, std::min(Kp, t * pack_chunk), std::min(Kp, (t + 1) * pack_chunk));
      });
    }
    const auto channels = [&](std::size_t n0, std::size_t n1) {
      detail::gemm_channels<Arch, T>(a, row_scale, M, Mpad, Kp, w, bias, y, n0, n1, accumulate);
    };
    // Shares of whole cache blocks of weight rows that threads finish for
    // each other (thread_pool::run_shares): 2-3% more prefill tokens/s than
    // fixed halves on the shared 2-core machine.
    if (threads > 1) pool->run_shares(N, detail::gemm_nr, detail::gemm_nc / detail::gemm_nr, channels);
    else channels(0, N);
    return;
  }

  if (w.layout == weight_layout::in_out) {
    const matrix_view<const float> xr = detail::activations_for<T>(x);
    split(2 * L, [&](std::size_t n0, std::size_t n1) { detail::gemv_in_out<Arch>(xr, w, bias, y, n0, n1, accumulate); });
    return;
  }
#if defined(__AVX512BF16__)
  if constexpr (std::is_same_v<T, bfloat16> && std::is_base_of_v<xsimd::avx512bw, Arch>) {
    // Activations as bf16 rows [M, ldxb], placed at the weights' misalignment
    // (see gemv_row_dpbf16), zero-padded to whole 32-element blocks.
    struct xb_tag;
    const std::size_t xoff = reinterpret_cast<std::uintptr_t>(w.data) % 64 / 2;
    const std::size_t ldxb = (xoff + K + 31) / 32 * 32;
    std::uint16_t* xb = detail::thread_buffer<xb_tag, std::uint16_t>(M * ldxb);
    for (std::size_t m = 0; m < M; ++m) {
      std::uint16_t* row = xb + m * ldxb;
      std::fill(row, row + xoff, std::uint16_t{0});
      detail::to_bf16(x.row(m), row + xoff, K);
      std::fill(row + xoff + K, row + ldxb, std::uint16_t{0});
    }
    share_out([&](std::size_t n0, std::size_t n1) {
      detail::gemv_out_in<Arch>(x, xb, ldxb, xoff, nullptr, w, bias, y, n0, n1, accumulate);
    });
    return;
  }
#endif
  if constexpr (detail::int16_pairs<T, Arch>) {
    // Activations on their rows' 16-bit grids [M, ldxq], zero-padded to whole 32-element steps.
    const std::size_t ldxq = detail::int16_grid_stride(K);
    const detail::int16_grid_rows grid = detail::to_int16_grid_rows(x, ldxq, nullptr);
    share_out([&](std::size_t n0, std::size_t n1) {
      detail::gemv_out_in<Arch>(x, grid.xq, ldxq, 0, grid.xs, w, bias, y, n0, n1, accumulate);
    });
    return;
  }
  const matrix_view<const float> xr = detail::activations_for<T>(x);
  share_out([&](std::size_t n0, std::size_t n1) {
    detail::gemv_out_in<Arch>(xr, nullptr, 0, 0, nullptr, w, bias, y, n0, n1, accumulate);
  });
}

/// The MLP's gated product, y [M, N] = Gelu(x Wg^T + bg) x (x Wu^T + bu)
/// (Gelu = gelu_tanh_fn), in one pass where a kernel serves it: today bf16
/// weights with at least amx_min_rows rows on AMX tiles, which then pack
/// the activations once and never write the two products out (on a Xeon
/// with AMX the separate GELU x up pass read and wrote 47 MB a 2B block,
/// 6% of a prefill). Each product's sums are matmul's, and the store is
/// what transform(gelu x up) makes of them, bit for bit wherever that
/// transform takes its vector path (all but the last M N % lanes elements).
/// Returns false, doing nothing, where no kernel serves it: the caller runs
/// the two matmuls and the transform.
template <class Arch = default_arch, WeightElement T>
[[nodiscard]] inline bool matmul_gated([[maybe_unused]] matrix_view<const float> x, [[maybe_unused]] weights_view<T> wg,
                                       [[maybe_unused]] const float* bg, [[maybe_unused]] weights_view<T> wu,
                                       [[maybe_unused]] const float* bu, [[maybe_unused]] matrix_view<float> y,
                                       [[maybe_unused]] thread_pool* pool = nullptr) {
#if GRIFFIN_AMX
  if constexpr (detail::amx_type<T> && std::is_base_of_v<xsimd::avx512bw, Arch> && lanes<Arch> == 16) {
    const std::size_t M = x.rows, N = wg.out, K = wg.in;
    assert(wu.out == N && wu.in == K && x.cols == K && y.rows == M && y.cols == N);
    if (detail::amx_serves(wg, M) && detail::amx_serves(wu, M) && N > 0 && K > 0) {
      const bool threaded = pool && pool->size() > 1 && M * N * K >= (std::size_t{1} << 18);
      detail::amx_matmul_gated<detail::amx_hardware_tiles, Arch>(x, wg, bg, wu, bu, y, threaded ? pool : nullptr);
      return true;
    }
  }
#endif
  return false;
}

/// sum_i a[i] b[i], in order (attention_scalar's scores).
inline float dot_scalar(const float* a, const float* b, std::size_t n) {
  float acc = 0.0f;
  for (std::size_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

/// y[i] += alpha * x[i] (attention_scalar's value sums).
inline void axpy_scalar(float alpha, const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace kernels
}  // namespace griffin
