// griffin/kernels/amx.hpp: the bf16 and int8 gemm on Intel AMX tiles
// (Sapphire Rapids and later): TDPBF16PS multiplies a 16 x 32 bf16 tile by a
// 32 x 16 one into 16 x 16 float sums, 16384 FLOPs an instruction, several
// times what vdpbf16ps does a core (docs/09-performance.md, "On an Intel
// guest with AMX"); TDPBSSD / TDPBUSD do 16 x 64 by 64 x 16 bytes into int32
// sums in the same time.
//
// Compute rules: the ones for bf16 and int8 weights (matmul.hpp). bf16:
// activations rounded to bf16, exact products summed in float, each output
// one chain over k in order, then + bias, then + y when accumulating; the
// tiles flush denormals as vdpbf16ps does. int8: activations on their rows'
// 16-bit grids, each split into a signed high byte and an unsigned low byte
// that two int8 tile products take, so the integer sums are exact.
//
// Compiled where the compiler targets AMX-TILE, AMX-BF16 and AVX512-BF16
// (-march=native on such a CPU) on Linux; used where the kernel grants the
// process tile data (arch_prctl ARCH_REQ_XCOMP_PERM, once) and not switched
// off (set_amx_enabled(false), or GRIFFIN_AMX=0 in the environment). The
// gemm's blocking takes its tile work from a policy: the CPU's tiles, or a
// scalar model of them (amx_emulated_tiles) on which the tests run it on
// any AVX512-BF16 CPU.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include "griffin/dtype.hpp"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__linux__)
#define GRIFFIN_AMX 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define GRIFFIN_AMX 0
#endif
// int8 weights on the tiles too (TDPBSSD, TDPBUSD) where the compiler
// targets AMX-INT8 (every AMX CPU so far has it).
#if GRIFFIN_AMX && defined(__AMX_INT8__)
#define GRIFFIN_AMX_INT8 1
#else
#define GRIFFIN_AMX_INT8 0
#endif
// The AMX gemm's blocking (matmul.hpp) needs AVX512-BF16 and AVX512BW: it
// runs on the CPU's tiles where GRIFFIN_AMX, and on emulated tiles in tests.
#if (defined(__x86_64__) || defined(__i386__)) && defined(__AVX512BF16__) && defined(__AVX512BW__)
#define GRIFFIN_AMX_GEMM 1
#include <immintrin.h>
#else
#define GRIFFIN_AMX_GEMM 0
#endif

namespace griffin::kernels {

namespace detail {

// Whether this build has the AMX path and the OS lets the process use it.
inline bool amx_granted() noexcept {
#if GRIFFIN_AMX
  static const bool granted = [] {
    constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
    if (syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) != 0) return false;
    const unsigned long long xcr0 = _xgetbv(0);
    return (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG and XTILEDATA enabled
  }();
  return granted;
#else
  return false;
#endif
}

inline std::atomic<bool>& amx_switch() noexcept {
  static std::atomic<bool> on{[] {
    const char* env = std::getenv("GRIFFIN_AMX");
    return !(env && std::strcmp(env, "0") == 0);
  }()};
  return on;
}

}  // namespace detail

/// True where bf16 products with at least amx_min_rows activation rows (and,
/// where the build has AMX-INT8, int8 [out, in] ones with at least
/// amx_min_rows_int8) run on AMX tiles: compiled in, granted by the OS, and
/// switched on (the default unless GRIFFIN_AMX=0 is in the environment).
[[nodiscard]] inline bool amx_enabled() noexcept { return detail::amx_switch().load(std::memory_order_relaxed) && detail::amx_granted(); }

/// Switches the AMX path on or off for the whole process (for comparisons);
/// returns whether it is now in use (false where the CPU or OS lacks it).
inline bool set_amx_enabled(bool on) noexcept {
  detail::amx_switch().store(on, std::memory_order_relaxed);
  return amx_enabled();
}

#if GRIFFIN_AMX_GEMM
namespace detail {

// Cache blocks of the AMX gemm: tokens (a multiple of 32), k (a multiple of
// 32) and outputs a thread claims at a time (a multiple of 32). A token
// block's activations for one k block (512 x 256 bf16, 256 KiB) stay in L2
// across the piece's panels, and the weights are read from memory once for
// up to 512 tokens; each panel's packed block (32 outputs x 256 k, 16 KiB)
// stays in L1 while the token tiles stream past it. The piece's partial
// sums (256 outputs x 512 tokens, 512 KiB) wait in L2 between k blocks.
// Measured on a Xeon with AMX (2026-12-07, 512 x 7680 x 2560, 2 threads):
// k blocks of 256 ran 15-25% faster than 512 (the token tiles no longer
// evict the panel from the 48 KiB L1), 512-token blocks 5-10% faster than
// 256; pieces of 128 to 512 outputs within noise, 64 slower.
#ifndef GRIFFIN_AMX_MC
#define GRIFFIN_AMX_MC 512
#endif
#ifndef GRIFFIN_AMX_KC
#define GRIFFIN_AMX_KC 256
#endif
#ifndef GRIFFIN_AMX_NC
#define GRIFFIN_AMX_NC 256
#endif
// Up to amx_whole_k_rows tokens (a short prompt, a batch of decode rows) a
// panel spans the whole of K: each weight row is then one sequential read
// the hardware prefetchers follow, and the sums stay in the tiles. With the
// weights from memory (7680 x 2560, 2 threads) that ran 16 tokens at
// 330-360 GFLOP/s against 250-300 in k blocks with the software prefetch,
// 128 at ~1500 against ~1250; the earlier in-place gemm (weights as A tiles
// at their row stride, no packing) ran 16 tokens at ~430 and 32 at 620-740.
#ifndef GRIFFIN_AMX_WHOLE_K_ROWS
#define GRIFFIN_AMX_WHOLE_K_ROWS 128
#endif
inline constexpr std::size_t amx_whole_k_rows = GRIFFIN_AMX_WHOLE_K_ROWS;
// So do more tokens, up to one token block, where their packed activations
// (2 bytes a token and k) take at most amx_whole_k_bytes: they then stay in
// the 2 MiB L2 while the panels pass. 30720 x 2560 bf16 from memory, 2
// threads, GFLOP/s in k blocks against the whole of K (Xeon with AMX,
// 2026-12-07): 160 tokens 1178 / 1464, 192 1238 / 1459, 224 1329 / 1503,
// 256 1282 / 1438; int8 160-256 tokens level to 6% better; K = 7680 from
// 128 tokens (1.9 MiB and more) level or slower.
#ifndef GRIFFIN_AMX_WHOLE_K_BYTES
#define GRIFFIN_AMX_WHOLE_K_BYTES (3u << 19)
#endif
inline constexpr std::size_t amx_whole_k_bytes = GRIFFIN_AMX_WHOLE_K_BYTES;
inline constexpr std::size_t amx_mc = GRIFFIN_AMX_MC;
inline constexpr std::size_t amx_kc = GRIFFIN_AMX_KC;
inline constexpr std::size_t amx_nc = GRIFFIN_AMX_NC;
static_assert(amx_mc % 32 == 0 && amx_kc % 32 == 0 && amx_nc % 32 == 0);

// The gemm's tile work comes from a policy (`Tiles`), so that its blocking
// (packing, panels, edges, the stores to y; matmul.hpp) is one code over two
// sets of tiles: the CPU's (amx_hardware_tiles) and a scalar model of them
// (amx_emulated_tiles) that the tests run on any AVX512-BF16 CPU, under the
// sanitizers too. A policy has configure() and release() around a thread's
// work and
//
//   tiles<RA, RB>(a, lda, a_step, b, steps, c_in, c_out, prefetch)
//
// c_out = c_in + sum over `steps` k steps of A_i B_j, RA x RB 16 x 16 float
// tiles (1 KiB each, tile (i, j) at c + (i * RB + j) * 256): A_i 16 rows of
// 32 bf16 at a[i] (lda bytes apart, advancing a_step bytes a step), B_j 16
// rows of 16 bf16 pairs at b[j] (64 bytes apart, advancing 1 KiB a step).
// The sums start at zero where c_in is null; c_in may be c_out. Each k step
// also calls prefetch.step(). And for int8 weights
//
//   tiles_int8<RB>(a, steps, b, c_in, c_out, prefetch)
//
// c_out = c_in + sum over `steps` k steps of A_hi B_j and A_lo B_j, 2 x RB
// 16 x 16 int32 tiles (hi j at c + j * 256, lo j at c + (RB + j) * 256),
// wrapping as the instructions do: A_hi 16 rows of 64 signed bytes at a
// (contiguous, advancing 2 KiB a step), A_lo 16 rows of 64 unsigned bytes
// 1 KiB after it, B_j 16 rows of 16 outputs x 4 k of signed bytes at b[j]
// (advancing 1 KiB a step). A 16-bit activation x = 256 hi + lo (hi its
// signed high byte, lo its unsigned low one), so 256 hi-sum + lo-sum is the
// exact integer sum the int8 rule asks for.

// Lines of weights to bring into L2 while tiles run, a few at each k step:
// `left` lines of rows `stride` bytes apart, `per_row` 64-byte lines a row,
// from `row`, line `col`. The gemm points it at the next panel's weights:
// their first reads (the panel's packing) otherwise wait on memory, which
// on a Xeon with AMX took a third of a product's time. In one burst before
// each call the prefetches stalled on the fill buffers instead.
struct amx_prefetch {
  const char* row = nullptr;
  std::size_t stride = 0, per_row = 0, col = 0, left = 0, per_step = 0;

  void step() noexcept {
    for (std::size_t n = per_step; n > 0 && left > 0; --n, --left) {
      _mm_prefetch(row + 64 * col, _MM_HINT_T1);
      if (++col == per_row) {
        col = 0;
        row += stride;
      }
    }
  }
};

// TDPBF16PS in scalar code, over the memory the tile loads would read:
// C[m][n] += A[m][2p] B[p][2n], then += A[m][2p + 1] B[p][2n + 1], for p =
// 0 .. 15 in order, each sum rounded to float (to nearest even); denormal
// inputs read as zero and denormal sums flush to zero, as the SDM's
// pseudocode for TDPBF16PS has it. The reference the tile policy is held
// to, within float rounding: a Xeon's tiles keep wider sums (of 256 sums
// from loaded C, 161-165 matched this order bit for bit, 236 "the 32 exact
// products summed, then added to C"; docs/09-performance.md).
struct amx_emulated_tiles {
  static void configure() noexcept {}
  static void release() noexcept {}

  template <std::size_t RA, std::size_t RB>
  static void tiles(const char* const* a, std::size_t lda, std::size_t a_step, const char* const* b, std::size_t steps,
                    const float* c_in, float* c_out, amx_prefetch& prefetch) noexcept {
    static_assert(RA >= 1 && RA <= 2 && RB >= 1 && RB <= 2);
    float sums[RA * RB][16][16];  // tile t's [16][16] at c + t * 256
    if (c_in) std::memcpy(sums, c_in, sizeof sums);
    else std::fill(&sums[0][0][0], &sums[0][0][0] + RA * RB * 256, 0.0f);
    for (std::size_t s = 0; s < steps; ++s, prefetch.step())
      for (std::size_t i = 0; i < RA; ++i)
        for (std::size_t j = 0; j < RB; ++j) {
          const char* at = a[i] + s * a_step;  // row m: at + m * lda, 32 bf16
          const char* bt = b[j] + s * 1024;    // row p: bt + p * 64, 16 pairs
          for (std::size_t m = 0; m < 16; ++m)
            for (std::size_t n = 0; n < 16; ++n) {
              float& sum = sums[i * RB + j][m][n];
              for (std::size_t p = 0; p < 16; ++p)
                for (std::size_t h = 0; h < 2; ++h)
                  sum = flush(sum + bf16_at(at + m * lda, 2 * p + h) * bf16_at(bt + p * 64, 2 * n + h));
            }
        }
    std::memcpy(c_out, sums, sizeof sums);
  }

  // TDPBSSD (hi) and TDPBUSD (lo) in scalar code: exact int32 products,
  // summed modulo 2^32 as the instructions do.
  template <std::size_t RB>
  static void tiles_int8(const char* a, std::size_t steps, const char* const* b, const std::int32_t* c_in, std::int32_t* c_out,
                         amx_prefetch& prefetch) noexcept {
    static_assert(RB >= 1 && RB <= 2);
    std::uint32_t sums[2 * RB][16][16];  // hi j at [j], lo j at [RB + j]
    if (c_in) std::memcpy(sums, c_in, sizeof sums);
    else std::fill(&sums[0][0][0], &sums[0][0][0] + 2 * RB * 256, 0u);
    for (std::size_t s = 0; s < steps; ++s, prefetch.step())
      for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t j = 0; j < RB; ++j) {
          const auto* at = reinterpret_cast<const unsigned char*>(a + s * 2048 + h * 1024);  // row m: at + m * 64
          const auto* bt = reinterpret_cast<const signed char*>(b[j] + s * 1024);           // row p: bt + p * 64
          for (std::size_t m = 0; m < 16; ++m)
            for (std::size_t n = 0; n < 16; ++n) {
              std::uint32_t& sum = sums[h * RB + j][m][n];
              for (std::size_t q = 0; q < 64; ++q) {
                const std::int32_t av = h == 0 ? static_cast<signed char>(at[m * 64 + q]) : at[m * 64 + q];
                sum += static_cast<std::uint32_t>(av * bt[q / 4 * 64 + 4 * n + q % 4]);
              }
            }
        }
    std::memcpy(c_out, sums, sizeof sums);
  }

 private:
  // Element e of a row of bf16 (any alignment), a denormal read as zero.
  static float bf16_at(const char* row, std::size_t e) noexcept {
    std::uint16_t bits;
    std::memcpy(&bits, row + 2 * e, 2);
    return bf16_to_float((bits & 0x7f80u) == 0 ? bits & 0x8000u : bits);
  }
  static float flush(float v) noexcept { return std::abs(v) < std::numeric_limits<float>::min() ? std::copysign(0.0f, v) : v; }
};

template <class F>
inline void amx_dispatch(std::size_t ra, std::size_t rb, F&& f) {
  if (ra == 2 && rb == 2) f(std::integral_constant<std::size_t, 2>{}, std::integral_constant<std::size_t, 2>{});
  else if (ra == 2) f(std::integral_constant<std::size_t, 2>{}, std::integral_constant<std::size_t, 1>{});
  else if (rb == 2) f(std::integral_constant<std::size_t, 1>{}, std::integral_constant<std::size_t, 2>{});
  else f(std::integral_constant<std::size_t, 1>{}, std::integral_constant<std::size_t, 1>{});
}

}  // namespace detail
#endif

#if GRIFFIN_AMX
namespace detail {

// Tile palette 1: tmm0-3 the 2 x 2 sums, tmm4-5 the A tiles, tmm6-7 the B
// tiles; each 16 rows of 64 bytes.
struct alignas(64) amx_config {
  std::uint8_t palette = 1, start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

// Loads the configuration on the calling thread. (An asm operand for the
// whole struct: with _tile_loadconfig GCC 12 dropped the stores to it.)
inline void amx_configure() noexcept {
  amx_config c;
  for (int i = 0; i < 8; ++i) {
    c.colsb[i] = 64;
    c.rows[i] = 16;
  }
  asm volatile("ldtilecfg %0" ::"m"(c));
}

// The CPU's tiles (the Tiles policy above). The tile intrinsics are asm that
// names no memory it reads, so a compiler barrier first makes the panel,
// activation and partial-sum stores before the call land before the loads.
struct amx_hardware_tiles {
  static void configure() noexcept { amx_configure(); }
  static void release() noexcept { _tile_release(); }

  template <std::size_t RA, std::size_t RB>
  static void tiles(const char* const* a, std::size_t lda, std::size_t a_step, const char* const* b, std::size_t steps,
                    const float* c_in, float* c_out, amx_prefetch& prefetch) noexcept {
    static_assert(RA >= 1 && RA <= 2 && RB >= 1 && RB <= 2);
    asm volatile("" ::: "memory");
    if (c_in) {
      _tile_loadd(0, c_in, 64);
      if constexpr (RB == 2) _tile_loadd(1, c_in + 256, 64);
      if constexpr (RA == 2) _tile_loadd(2, c_in + RB * 256, 64);
      if constexpr (RA == 2 && RB == 2) _tile_loadd(3, c_in + 3 * 256, 64);
    } else {
      _tile_zero(0);
      if constexpr (RB == 2) _tile_zero(1);
      if constexpr (RA == 2) _tile_zero(2);
      if constexpr (RA == 2 && RB == 2) _tile_zero(3);
    }
    const char *a0 = a[0], *a1 = a[RA - 1], *b0 = b[0], *b1 = b[RB - 1];
    for (std::size_t s = 0; s < steps; ++s) {
      prefetch.step();
      _tile_loadd(4, a0 + s * a_step, lda);
      _tile_loadd(6, b0 + s * 1024, 64);
      _tile_dpbf16ps(0, 4, 6);
      if constexpr (RB == 2) {
        _tile_loadd(7, b1 + s * 1024, 64);
        _tile_dpbf16ps(1, 4, 7);
      }
      if constexpr (RA == 2) {
        _tile_loadd(5, a1 + s * a_step, lda);
        _tile_dpbf16ps(2, 5, 6);
        if constexpr (RB == 2) _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, c_out, 64);
    if constexpr (RB == 2) _tile_stored(1, c_out + 256, 64);
    if constexpr (RA == 2) _tile_stored(2, c_out + RB * 256, 64);
    if constexpr (RA == 2 && RB == 2) _tile_stored(3, c_out + 3 * 256, 64);
  }

#if GRIFFIN_AMX_INT8
  // tmm0-1 the high bytes' sums, tmm2-3 the low bytes', tmm4 A_hi, tmm5
  // A_lo, tmm6-7 the B tiles: 4 loads for 4 products a step, as above.
  template <std::size_t RB>
  static void tiles_int8(const char* a, std::size_t steps, const char* const* b, const std::int32_t* c_in, std::int32_t* c_out,
                         amx_prefetch& prefetch) noexcept {
    static_assert(RB >= 1 && RB <= 2);
    asm volatile("" ::: "memory");
    if (c_in) {
      _tile_loadd(0, c_in, 64);
      _tile_loadd(2, c_in + RB * 256, 64);
      if constexpr (RB == 2) {
        _tile_loadd(1, c_in + 256, 64);
        _tile_loadd(3, c_in + 3 * 256, 64);
      }
    } else {
      _tile_zero(0);
      _tile_zero(2);
      if constexpr (RB == 2) {
        _tile_zero(1);
        _tile_zero(3);
      }
    }
    const char *b0 = b[0], *b1 = b[RB - 1];
    for (std::size_t s = 0; s < steps; ++s) {
      prefetch.step();
      _tile_loadd(4, a + s * 2048, 64);
      _tile_loadd(6, b0 + s * 1024, 64);
      _tile_dpbssd(0, 4, 6);
      if constexpr (RB == 2) {
        _tile_loadd(7, b1 + s * 1024, 64);
        _tile_dpbssd(1, 4, 7);
      }
      _tile_loadd(5, a + s * 2048 + 1024, 64);
      _tile_dpbusd(2, 5, 6);
      if constexpr (RB == 2) _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, c_out, 64);
    _tile_stored(2, c_out + RB * 256, 64);
    if constexpr (RB == 2) {
      _tile_stored(1, c_out + 256, 64);
      _tile_stored(3, c_out + 3 * 256, 64);
    }
  }
#endif
};

}  // namespace detail
#endif

}  // namespace griffin::kernels
