// griffin/kernels/amx.hpp: the bf16 gemm on Intel AMX tiles (Sapphire Rapids
// and later): TDPBF16PS multiplies a 16 x 32 bf16 tile by a 32 x 16 one into
// 16 x 16 float sums, 16384 FLOPs an instruction, several times what
// vdpbf16ps does a core (docs/09-performance.md, "On an Intel guest with
// AMX").
//
// Compute rule: the one for bf16 weights (matmul.hpp): activations rounded
// to bf16, exact products summed in float, each output one chain over k in
// order, then + bias, then + y when accumulating; the tiles flush
// denormals as vdpbf16ps does.
//
// Compiled where the compiler targets AMX-TILE, AMX-BF16 and AVX512-BF16
// (-march=native on such a CPU) on Linux; used where the kernel grants the
// process tile data (arch_prctl ARCH_REQ_XCOMP_PERM, once) and not switched
// off (set_amx_enabled(false), or GRIFFIN_AMX=0 in the environment).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__linux__)
#define GRIFFIN_AMX 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define GRIFFIN_AMX 0
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

/// True where bf16 products with at least gemm_min_rows activation rows run
/// on AMX tiles: compiled in, granted by the OS, and switched on (the
/// default unless GRIFFIN_AMX=0 is in the environment).
[[nodiscard]] inline bool amx_enabled() noexcept { return detail::amx_switch().load(std::memory_order_relaxed) && detail::amx_granted(); }

/// Switches the AMX path on or off for the whole process (for comparisons);
/// returns whether it is now in use (false where the CPU or OS lacks it).
inline bool set_amx_enabled(bool on) noexcept {
  detail::amx_switch().store(on, std::memory_order_relaxed);
  return amx_enabled();
}

#if GRIFFIN_AMX
namespace detail {

// Cache blocks of the AMX gemm: tokens (a multiple of 32), k (a multiple of
// 32) and weight rows a thread claims at a time (a multiple of 32). A token
// block's activations for one k block (256 x 512 bf16, 256 KiB) stay in L2
// across the piece's weight panels; each panel's block (32 rows x 512 k,
// 32 KiB) is read from memory once per token block and stays in L1 while
// the token tiles pass it.
#ifndef GRIFFIN_AMX_MC
#define GRIFFIN_AMX_MC 256
#endif
#ifndef GRIFFIN_AMX_KC
#define GRIFFIN_AMX_KC 512
#endif
#ifndef GRIFFIN_AMX_NC
#define GRIFFIN_AMX_NC 256
#endif
inline constexpr std::size_t amx_mc = GRIFFIN_AMX_MC;
inline constexpr std::size_t amx_kc = GRIFFIN_AMX_KC;
inline constexpr std::size_t amx_nc = GRIFFIN_AMX_NC;
static_assert(amx_mc % 32 == 0 && amx_kc % 32 == 0 && amx_nc % 32 == 0);

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

// c (RA x RB 16 x 16 float tiles, 1 KiB each, tile (i, j) at c + (i * RB +
// j) * 256) (+)= sum over `steps` k steps of A_i B_j: A_i 16 rows of 32 bf16
// at a[i] (lda bytes apart, advancing a_step bytes a step), B_j 16 rows of
// 16 bf16 pairs at b[j] (64 bytes apart, advancing 1 KiB a step). The sums
// start at zero, or from c when load_c.
template <std::size_t RA, std::size_t RB>
inline void amx_tiles(const char* const* a, std::size_t lda, std::size_t a_step, const char* const* b, std::size_t steps, float* c,
                      bool load_c) noexcept {
  static_assert(RA >= 1 && RA <= 2 && RB >= 1 && RB <= 2);
  if (load_c) {
    _tile_loadd(0, c, 64);
    if constexpr (RB == 2) _tile_loadd(1, c + 256, 64);
    if constexpr (RA == 2) _tile_loadd(2, c + RB * 256, 64);
    if constexpr (RA == 2 && RB == 2) _tile_loadd(3, c + 3 * 256, 64);
  } else {
    _tile_zero(0);
    if constexpr (RB == 2) _tile_zero(1);
    if constexpr (RA == 2) _tile_zero(2);
    if constexpr (RA == 2 && RB == 2) _tile_zero(3);
  }
  const char *a0 = a[0], *a1 = a[RA - 1], *b0 = b[0], *b1 = b[RB - 1];
  for (std::size_t s = 0; s < steps; ++s) {
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
  _tile_stored(0, c, 64);
  if constexpr (RB == 2) _tile_stored(1, c + 256, 64);
  if constexpr (RA == 2) _tile_stored(2, c + RB * 256, 64);
  if constexpr (RA == 2 && RB == 2) _tile_stored(3, c + 3 * 256, 64);
}

template <class F>
inline void amx_dispatch(std::size_t ra, std::size_t rb, F&& f) {
  if (ra == 2 && rb == 2) f(std::integral_constant<std::size_t, 2>{}, std::integral_constant<std::size_t, 2>{});
  else if (ra == 2) f(std::integral_constant<std::size_t, 2>{}, std::integral_constant<std::size_t, 1>{});
  else if (rb == 2) f(std::integral_constant<std::size_t, 1>{}, std::integral_constant<std::size_t, 2>{});
  else f(std::integral_constant<std::size_t, 1>{}, std::integral_constant<std::size_t, 1>{});
}

}  // namespace detail
#endif

}  // namespace griffin::kernels
