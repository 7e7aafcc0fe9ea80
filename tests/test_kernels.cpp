// Every SIMD kernel against its scalar reference, on every architecture the
// tests are compiled for, over counts around each multiple of the lane count
// and every misalignment of the pointers; plus worked values of the math.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <utility>
#include <vector>

#include "test_util.hpp"

using namespace ::griffin;
using griffin_test::max_abs_diff;
using griffin_test::rng;

namespace {

// Counts 0 .. 3 lanes + 3: empty, shorter than a batch, exact multiples, tails.
template <class Arch>
std::vector<std::size_t> counts() {
  std::vector<std::size_t> out;
  for (std::size_t n = 0; n <= 3 * kernels::lanes<Arch> + 3; ++n) out.push_back(n);
  return out;
}

// A buffer with `offset` floats of slack in front, so data() + offset is misaligned.
struct shifted {
  std::vector<float> storage;
  std::size_t offset;
  shifted(std::vector<float> v, std::size_t off) : storage(off, 0.0f), offset(off) {
    storage.insert(storage.end(), v.begin(), v.end());
  }
  float* data() { return storage.data() + offset; }
  std::span<float> span() { return {storage.data() + offset, storage.size() - offset}; }
};

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("transform: gelu, sigmoid and binary ops match the scalar reference", Arch, transform_id) {
  griffin_test::require_runnable<Arch>();
  rng r(1);
  for (std::size_t n : counts<Arch>())
    for (std::size_t off = 0; off < kernels::lanes<Arch>; ++off) {
      CAPTURE(n);
      CAPTURE(off);
      shifted x(r.floats(n, 6.0f), off), y(std::vector<float>(n), off), ref(std::vector<float>(n), 0);
      kernels::transform<Arch>(x.data(), y.data(), n, kernels::gelu_tanh_fn{});
      kernels::transform_scalar(x.data(), ref.data(), n, kernels::gelu_tanh_fn{});
      CHECK(max_abs_diff(y.span(), ref.span()) <= 1e-6f);
      kernels::transform<Arch>(x.data(), y.data(), n, kernels::sigmoid_fn{});
      kernels::transform_scalar(x.data(), ref.data(), n, kernels::sigmoid_fn{});
      CHECK(max_abs_diff(y.span(), ref.span()) <= 1e-6f);
      shifted z(r.floats(n), off);
      kernels::transform<Arch>(x.data(), z.data(), y.data(), n, kernels::multiplies_fn{});
      kernels::transform_scalar(x.data(), z.data(), ref.data(), n, kernels::multiplies_fn{});
      CHECK(max_abs_diff(y.span(), ref.span()) == 0.0f);
    }
}
TEST_CASE_TEMPLATE_APPLY(transform_id, griffin_test::test_archs);

namespace {

// Weights stored as T (float, bfloat16, float16, or int8 from values in [-127, 127]), from floats.
template <class T>
std::vector<T> stored_as(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if constexpr (std::is_same_v<T, float>) out[i] = v[i];
    else if constexpr (std::is_same_v<T, bfloat16>) out[i] = {float_to_bf16(v[i])};
    else if constexpr (std::is_same_v<T, std::int8_t>) out[i] = static_cast<std::int8_t>(std::lround(v[i] * 127.0f));
    else out[i] = {float_to_f16(v[i])};
  }
  return out;
}

// How far a matmul of K-long sums may differ from matmul_scalar (the int8
// integer grid's steps are up to 127 times coarser).
template <class T>
float matmul_tolerance(std::size_t K) {
  return (std::is_same_v<T, std::int8_t> ? 1e-6f * 127 : 1e-6f) * static_cast<float>(K + 8);
}

// Per-channel scales 0.01, 0.02, ... for N output channels of int8 weights.
std::vector<float> channel_scales(std::size_t N) {
  std::vector<float> scale;
  for (std::size_t n = 0; n < N; ++n) scale.push_back(0.01f * static_cast<float>(n + 1));
  return scale;
}

// Every path of matmul (gemv rows up to gemv_row_max_rows, the batched gemv
// tile below gemm_min_rows with whole 4 x 4 tiles, remainders and N past a
// tile group, the packed gemm from it, in x out, one thread and two) against
// matmul_scalar: counts around the lane count and the register tile (8
// channels x 3 batches of tokens), K past one cache block, strided rows,
// misaligned weights.
template <class Arch, class T>
void check_matmul_for(thread_pool* pool) {
  constexpr std::size_t L = kernels::lanes<Arch>;
  rng r(2);
  std::vector<std::size_t> Ks = counts<Arch>();
  Ks.push_back(kernels::detail::gemm_micro_chunk + 5);  // a K block of AVX2's float tile past one chunk
  Ks.push_back(kernels::detail::gemm_kc<T> + 1);
  Ks.push_back(2 * kernels::detail::gemm_kc<T> + 6);
  for (std::size_t K : Ks)
    for (std::size_t M : {1u, 2u, 3u, 4u, 5u, 9u, 15u, 16u, 17u, 3u * 16u + 1u, 100u})
      for (std::size_t N : {std::size_t{1}, std::size_t{3}, std::size_t{8}, std::size_t{9}, 2 * L + 3, std::size_t{67}}) {
        if (M * N * K > 400'000 && K != Ks.back()) continue;  // keep the big ones few:
        if (K == Ks.back() && M != 1 && M != 17 && M != 100) continue;  // gemv, one gemm tile, several
        const std::size_t off = (K + M + N) % L;
        const std::size_t ldx = K + 3, ldy = N + 2;  // strided rows
        CAPTURE(K);
        CAPTURE(M);
        CAPTURE(N);
        shifted x(r.floats(M * ldx), off), bias(r.floats(N), off);
        // w with one element of slack in front, so every misalignment of T is met
        const auto w_storage = stored_as<T>(r.floats(N * K + 1));
        const T* w = w_storage.data() + off % 2;
        const std::vector<float> scale = channel_scales(N);
        const float* s = std::is_same_v<T, std::int8_t> ? scale.data() : nullptr;
        for (bool accumulate : {false, true})
          for (bool with_bias : {false, true})
            for (bool in_out : {false, true}) {
              const auto init = r.floats(M * ldy);
              shifted y(init, off), ref(init, 0);
              const float* b = with_bias ? bias.data() : nullptr;
              const kernels::matrix_view<const float> xv{x.data(), M, K, ldx};
              const auto wv = in_out ? kernels::in_out(w, N, K, s) : kernels::out_in(w, N, K, s);
              kernels::matmul<Arch>(xv, wv, b, {y.data(), M, N, ldy}, accumulate, pool);
              kernels::matmul_scalar(xv, wv, b, {ref.data(), M, N, ldy}, accumulate);
              CHECK(max_abs_diff(y.span(), ref.span()) <= matmul_tolerance<T>(K));
            }
      }
}

// Weight rows at every misalignment within a cache line (in elements), K
// such that a row is a whole number of cache lines (all rows misaligned
// alike: the aligned-block gemv path) or not (rows misaligned differently),
// including rows shorter than one block.
template <class Arch, class T>
void check_matmul_misaligned(thread_pool* pool) {
  rng r(5);
  constexpr std::size_t per_line = 64 / sizeof(T);
  for (std::size_t K : {std::size_t{1}, std::size_t{7}, per_line, 2 * per_line, 2 * per_line + 9, 5 * per_line})
    for (std::size_t M : {1u, 3u, 6u})  // gemv rows, and the batched tile
      for (std::size_t off = 0; off < per_line; off += (off < 3 ? 1 : 5)) {
        const std::size_t N = 5;
        CAPTURE(K);
        CAPTURE(M);
        CAPTURE(off);
        const auto values = stored_as<T>(r.floats(N * K + per_line));
        aligned_vector<T> storage(values.begin(), values.end());
        const T* w = storage.data() + off;
        std::vector<float> scale(N, 0.02f);
        const float* s = std::is_same_v<T, std::int8_t> ? scale.data() : nullptr;
        const auto x = r.floats(M * K), bias = r.floats(N);
        std::vector<float> y(M * N), ref(M * N);
        const kernels::matrix_view<const float> xv{x.data(), M, K, K};
        kernels::matmul<Arch>(xv, kernels::out_in(w, N, K, s), bias.data(), {y.data(), M, N, N}, false, pool);
        kernels::matmul_scalar(xv, kernels::out_in(w, N, K, s), bias.data(), {ref.data(), M, N, N}, false);
        CHECK(max_abs_diff(std::span<const float>(y), std::span<const float>(ref)) <= matmul_tolerance<T>(K));
      }
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("load_batch converts bf16 and f16 weights exactly at every alignment", Arch, load_id) {
  griffin_test::require_runnable<Arch>();
  rng r(12);
  const auto values = r.floats(3 * kernels::lanes<Arch>, 100.0f);
  const auto b16 = stored_as<bfloat16>(values);
  const auto h16 = stored_as<float16>(values);
  for (std::size_t off = 0; off < kernels::lanes<Arch>; ++off) {
    alignas(64) float got[kernels::lanes<Arch>];
    kernels::load_batch<Arch>(b16.data() + off).store_aligned(got);
    for (std::size_t i = 0; i < kernels::lanes<Arch>; ++i) CHECK(got[i] == kernels::load_scalar(b16.data() + off, i));
    kernels::load_batch<Arch>(h16.data() + off).store_aligned(got);
    for (std::size_t i = 0; i < kernels::lanes<Arch>; ++i) CHECK(got[i] == kernels::load_scalar(h16.data() + off, i));
  }
  CHECK(kernels::load_scalar(b16.data()) == round_to_bf16(values[0]));
}
TEST_CASE_TEMPLATE_APPLY(load_id, griffin_test::test_archs);

// The in x out gemv's column chunks (their sums held in a buffer while
// weight rows pass KB at a time): N past one chunk for every block of
// activation rows, with a partial batch at the end; K with and without a
// remainder of rows; strided weight rows (stride > N).
template <class Arch, class T>
void check_gemv_in_out_chunks(thread_pool* pool) {
  rng r(12);
  constexpr std::size_t L = kernels::lanes<Arch>;
  for (std::size_t M : {1u, 2u, 3u, 4u, 5u})
    for (std::size_t K : {1u, 8u, 11u}) {
      const std::size_t N = kernels::detail::gemv_in_out_floats / std::min<std::size_t>(M, 4) + 2 * L + 3, stride = N + 5;
      CAPTURE(M);
      CAPTURE(K);
      const auto x = r.floats(M * K), bias = r.floats(N), init = r.floats(M * N);
      const auto w = stored_as<T>(r.floats(K * stride));
      const kernels::weights_view<T> wv{w.data(), N, K, stride, weight_layout::in_out, nullptr};
      std::vector<float> y = init, ref = init;
      kernels::matmul<Arch>({x.data(), M, K, K}, wv, bias.data(), {y.data(), M, N, N}, true, pool);
      kernels::matmul_scalar({x.data(), M, K, K}, wv, bias.data(), {ref.data(), M, N, N}, true);
      CHECK(max_abs_diff(y, ref) <= 1e-6f * static_cast<float>(K + 8));
    }
}

// The in x out gemv of one activation row over columns that fit its register
// tile (gemv_in_out_narrow, the RG-LRU gates at decode): every count of whole
// vectors up to the tile, with and without 1 .. L-1 columns past them, the
// first width past the tile (the chunked path), K with and without a
// multiple of the lanes, strided weight rows, a column range starting inside
// the matrix (a thread's share).
template <class Arch, class T>
void check_gemv_in_out_narrow(thread_pool* pool) {
  rng r(21);
  constexpr std::size_t L = kernels::lanes<Arch>, NV = kernels::detail::gemv_in_out_narrow_vectors<Arch>;
  for (std::size_t N : {L, 3 * L + 1, NV * L - 1, NV * L, NV * L + L - 1, (NV + 1) * L, 2 * NV * L + 5})
    for (std::size_t K : {1u, 7u, 64u, 259u}) {
      const std::size_t stride = N + 3;
      CAPTURE(N);
      CAPTURE(K);
      const auto x = r.floats(K), bias = r.floats(N), init = r.floats(N);
      const auto w = stored_as<T>(r.floats(K * stride));
      const std::vector<float> scale = channel_scales(N);
      const kernels::weights_view<T> wv{w.data(), N, K, stride, weight_layout::in_out,
                                        std::is_same_v<T, std::int8_t> ? scale.data() : nullptr};
      for (bool accumulate : {false, true}) {
        std::vector<float> y = init, ref = init;
        kernels::matmul<Arch>({x.data(), 1, K, K}, wv, bias.data(), {y.data(), 1, N, N}, accumulate, pool);
        kernels::matmul_scalar({x.data(), 1, K, K}, wv, bias.data(), {ref.data(), 1, N, N}, accumulate);
        CHECK(max_abs_diff(y, ref) <= matmul_tolerance<T>(K));
      }
      // Columns [n0, n1) alone, as a thread's share or a diagonal block is run.
      const std::size_t n0 = std::min<std::size_t>(N - 1, L + 1), n1 = N;
      std::vector<float> y = init, ref = init;
      const kernels::matrix_view<const float> xr = kernels::detail::activations_for<T>({x.data(), 1, K, K});  // as matmul passes them
      kernels::detail::gemv_in_out<Arch>(xr, wv, bias.data(), {y.data(), 1, N, N}, n0, n1, false);
      kernels::matmul_scalar({x.data(), 1, K, K}, wv, bias.data(), {ref.data(), 1, N, N}, false);
      for (std::size_t n = 0; n < N; ++n) {
        CAPTURE(n);
        if (n < n0) CHECK(y[n] == init[n]);  // outside the range: untouched
        else CHECK(std::abs(y[n] - ref[n]) <= matmul_tolerance<T>(K));
      }
    }
}

TEST_CASE_TEMPLATE_DEFINE("matmul matches the scalar reference for every tile edge, stride, offset, type, layout and path",
                          Arch, matmul_id) {
  griffin_test::require_runnable<Arch>();
  thread_pool two(2);
  auto both = [&](auto check) {
    check(nullptr);
    check(&two);
  };
  SUBCASE("f32 weights") { both([](thread_pool* p) { check_matmul_for<Arch, float>(p); }); }
  SUBCASE("bf16 weights") { both([](thread_pool* p) { check_matmul_for<Arch, bfloat16>(p); }); }
  SUBCASE("f16 weights") { both([](thread_pool* p) { check_matmul_for<Arch, float16>(p); }); }
  SUBCASE("int8 weights") { both([](thread_pool* p) { check_matmul_for<Arch, std::int8_t>(p); }); }
  SUBCASE("in x out weights of one row within a register tile") {
    both([](thread_pool* p) {
      check_gemv_in_out_narrow<Arch, float>(p);
      check_gemv_in_out_narrow<Arch, bfloat16>(p);
      check_gemv_in_out_narrow<Arch, std::int8_t>(p);
    });
  }
  SUBCASE("in x out weights past one column chunk") {
    both([](thread_pool* p) {
      check_gemv_in_out_chunks<Arch, float>(p);
      check_gemv_in_out_chunks<Arch, bfloat16>(p);
    });
  }
  SUBCASE("weights at every misalignment") {
    both([](thread_pool* p) {
      check_matmul_misaligned<Arch, float>(p);
      check_matmul_misaligned<Arch, bfloat16>(p);
      check_matmul_misaligned<Arch, std::int8_t>(p);
    });
  }
}
TEST_CASE_TEMPLATE_APPLY(matmul_id, griffin_test::test_archs);

// The packed gemm computes every output as one chain over K whatever register
// tile its token falls in (3, 2 or 1 batches of tokens): a run of rows gives
// bit for bit the same outputs alone as inside a larger batch, over several K
// blocks and N past whole panels. (A tile that summed K in two chains to
// hide the FMA latency would break this; this test says so.)
template <class Arch, class T>
void check_gemm_rows_independent(thread_pool* pool) {
  constexpr std::size_t G = kernels::gemm_min_rows<T, Arch>;
  const std::size_t M = 2 * G + 68, K = 2 * kernels::detail::gemm_kc<T, Arch> + 6, N = 35;
  rng r(9);
  const auto x = r.floats(M * K);
  const auto w = stored_as<T>(r.floats(N * K));
  std::vector<float> scale(N, 0.02f);
  const float* s = std::is_same_v<T, std::int8_t> ? scale.data() : nullptr;
  std::vector<float> all(M * N);
  kernels::matmul<Arch>({x.data(), M, K, K}, kernels::out_in(w.data(), N, K, s), nullptr, {all.data(), M, N, N}, false, pool);
  for (auto [first, count] : {std::pair{std::size_t{0}, G}, std::pair{M - G, G}, std::pair{std::size_t{52}, std::max(G, std::size_t{48})}}) {
    CAPTURE(first);
    CAPTURE(count);
    std::vector<float> part(count * N);
    kernels::matmul<Arch>({x.data() + first * K, count, K, K}, kernels::out_in(w.data(), N, K, s), nullptr,
                          {part.data(), count, N, N}, false, pool);
    CHECK(std::memcmp(part.data(), all.data() + first * N, part.size() * sizeof(float)) == 0);
  }
}

TEST_CASE_TEMPLATE_DEFINE("the packed gemm gives a token's outputs bit for bit wherever it falls in the batch", Arch, gemm_rows_id) {
  griffin_test::require_runnable<Arch>();
  thread_pool two(2);
  for (thread_pool* p : {static_cast<thread_pool*>(nullptr), &two}) {
    check_gemm_rows_independent<Arch, float>(p);
    check_gemm_rows_independent<Arch, bfloat16>(p);
    check_gemm_rows_independent<Arch, std::int8_t>(p);
  }
}
TEST_CASE_TEMPLATE_APPLY(gemm_rows_id, griffin_test::test_archs);

#if GRIFFIN_AMX_GEMM
// Calls body(K, M, N, r, pool) for each product shape of Ks x Ms x Ns with
// at most 8 x 10^6 multiply-adds (on one thread where K is odd, else on two),
// the shape captured for a failure's report; returns how many ran.
template <class Body>
std::size_t for_each_amx_shape(std::initializer_list<std::size_t> Ks, std::initializer_list<std::size_t> Ms,
                               std::initializer_list<std::size_t> Ns, std::uint64_t seed, Body&& body) {
  rng r(seed);
  thread_pool two(2);
  std::size_t runs = 0;
  for (std::size_t K : Ks)
    for (std::size_t M : Ms)
      for (std::size_t N : Ns) {
        if (M * N * K > 8'000'000) continue;
        CAPTURE(K);
        CAPTURE(M);
        CAPTURE(N);
        body(K, M, N, r, K % 2 ? nullptr : &two);
        ++runs;
      }
  return runs;
}

// The AMX bf16 gemm (amx.hpp) through `run` (x, w, bias, y, accumulate,
// pool) against matmul_scalar and against the vdpbf16ps gemm it replaces
// (the same products; each output one chain over k either way), over its
// edges: K past and short of a 32-wide step and of the k block, tokens short
// of a 16-token tile (from amx_min_rows), past one, past amx_whole_k_rows
// (200: the whole of K by amx_whole_k_bytes) and past a token block,
// channels past a tile, a panel and a piece; both layouts (weights at an odd
// element offset, and rows padded past their length in some cases: the
// packing reads them at their stride), one thread and two.
template <class Run>
void check_amx_gemm(Run&& run) {
  using kernels::detail::amx_kc;
  using kernels::detail::amx_mc;
  using kernels::detail::amx_nc;
  const std::size_t runs = for_each_amx_shape(
      {1, 31, 64, 97, amx_kc, amx_kc + 33, 2 * amx_kc + 64}, {3, 5, 16, 17, 48, 200, amx_mc + 19}, {1, 16, 17, 40, amx_nc + 48}, 12,
      [&](std::size_t K, std::size_t M, std::size_t N, rng& r, thread_pool* pool) {
        const bool out_in = (K + M + N) % 2 == 0, accumulate = (M + N) % 3 == 0;
        CAPTURE(out_in);
        const std::size_t ldx = K + 1, ldy = N + 3;
        const auto x = r.floats(M * ldx), bias = r.floats(N), init = r.floats(M * ldy);
        const std::size_t pad = (M + K) % 3 == 1 ? 5 : 0, ldw = (out_in ? K : N) + pad;
        const auto w = stored_as<bfloat16>(r.floats((out_in ? N : K) * ldw + 1));
        const kernels::weights_view<bfloat16> wv{w.data() + 1, N, K, ldw, out_in ? weight_layout::out_in : weight_layout::in_out};
        const kernels::matrix_view<const float> xv{x.data(), M, K, ldx};
        std::vector<float> amx = init, dp = init, ref = init;
        run(xv, wv, bias.data(), kernels::matrix_view<float>{amx.data(), M, N, ldy}, accumulate, pool);
        const bool was = kernels::amx_enabled();
        kernels::set_amx_enabled(false);
        kernels::matmul(xv, wv, bias.data(), {dp.data(), M, N, ldy}, accumulate, nullptr);
        kernels::set_amx_enabled(was);
        kernels::matmul_scalar(xv, wv, bias.data(), {ref.data(), M, N, ldy}, accumulate);
        CHECK(max_abs_diff(std::span<const float>(amx), std::span<const float>(ref)) <= matmul_tolerance<bfloat16>(K));
        CHECK(max_abs_diff(std::span<const float>(amx), std::span<const float>(dp)) <= 1e-5f * static_cast<float>(K + 1));
      });
  CHECK(runs > 100);
}

// The int8 rule made exactly: y[m, n] = float(sum_k grid(x[m, k]) w[n, k])
// x the row's grid step x scale[n] + bias[n] (+ y), the integer sum in 64
// bits and rounded once: what the AMX int8 gemm computes, bit for bit.
void matmul_int8_exact(kernels::matrix_view<const float> x, kernels::weights_view<std::int8_t> w, const float* bias,
                       kernels::matrix_view<float> y, bool accumulate) {
  for (std::size_t m = 0; m < x.rows; ++m) {
    const float step = kernels::int16_grid_scale(x.row(m), x.cols);
    for (std::size_t n = 0; n < w.out; ++n) {
      std::int64_t sum = 0;
      for (std::size_t k = 0; k < x.cols; ++k) sum += std::int64_t{kernels::int16_grid(x.row(m)[k], step)} * w.data[n * w.stride + k];
      float v = static_cast<float>(sum) * step;
      if (w.scale) v *= w.scale[n];
      asm("" : "+x"(v));  // rounded before the bias is added, as the kernel does (no fused multiply-add)
      if (bias) v += bias[n];
      y.row(m)[n] = accumulate ? y.row(m)[n] + v : v;
    }
  }
}

// The AMX int8 gemm (TDPBSSD / TDPBUSD on each activation's high and low
// bytes) through `run`, against matmul_int8_exact bit for bit and
// matmul_scalar within the int8 tolerance, over the edges of its 64-k steps,
// k blocks (8 steps), token tiles and blocks, output tiles, panels and
// pieces: [out, in] rows at an odd offset (some padded past K), weights
// of -128 and activations at the ends of their grids among them.
template <class Run>
void check_amx_int8_gemm(std::initializer_list<std::size_t> Ms, Run&& run) {
  using kernels::detail::amx_mc;
  using kernels::detail::amx_nc;
  const std::size_t runs = for_each_amx_shape(
      {1, 63, 64, 97, 512, 600, 1100}, Ms, {1, 16, 17, 40, amx_nc + 48}, 13,
      [&](std::size_t K, std::size_t M, std::size_t N, rng& r, thread_pool* pool) {
        const bool accumulate = (M + N) % 3 == 0;
        const std::size_t ldx = K + 1, ldy = N + 3, ldw = K + ((M + K) % 3 == 1 ? 5 : 0);
        auto x = r.floats(M * ldx);
        x[(M - 1) * ldx] = -8.0f;  // the last row's grid: -32767 at k = 0, the low byte 1 under a high byte -128
        const auto bias = r.floats(N), init = r.floats(M * ldy), scale = channel_scales(N);
        auto w = stored_as<std::int8_t>(r.floats(N * ldw + 1));
        for (std::size_t i = 1; i < w.size(); i += 37) w[i] = -128;
        const kernels::weights_view<std::int8_t> wv{w.data() + 1, N, K, ldw, weight_layout::out_in, scale.data()};
        const kernels::matrix_view<const float> xv{x.data(), M, K, ldx};
        std::vector<float> amx = init, exact = init, ref = init;
        run(xv, wv, bias.data(), kernels::matrix_view<float>{amx.data(), M, N, ldy}, accumulate, pool);
        matmul_int8_exact(xv, wv, bias.data(), {exact.data(), M, N, ldy}, accumulate);
        kernels::matmul_scalar(xv, wv, bias.data(), {ref.data(), M, N, ldy}, accumulate);
        CHECK(std::memcmp(amx.data(), exact.data(), amx.size() * sizeof(float)) == 0);
        CHECK(max_abs_diff(std::span<const float>(amx), std::span<const float>(ref)) <= matmul_tolerance<std::int8_t>(K));
      });
  CHECK(runs > 60);
}
#endif

// The AMX gemm on the CPU's tiles, through matmul. Where the build or the OS
// has no AMX, set_amx_enabled(true) must say so.
TEST_CASE("bf16 products on AMX tiles match the scalar reference and the vdpbf16ps gemm") {
  const bool was = kernels::amx_enabled();
  if (!kernels::set_amx_enabled(true)) {
    CHECK(!kernels::amx_enabled());
    MESSAGE("no AMX in this build or from this OS: the AMX gemm is not run here");
    return;
  }
#if GRIFFIN_AMX
  check_amx_gemm([](auto x, auto w, const float* bias, auto y, bool accumulate, thread_pool* pool) {
    kernels::matmul(x, w, bias, y, accumulate, pool);
  });
  // The scalar model against the tiles: 2 x 2 tiles over 5 steps from
  // loaded sums, A rows at a stride of 96 bytes. The model follows the
  // SDM's order of rounding; whether the CPU matches it bit for bit is
  // reported, and it must at least agree to float rounding.
  rng r(7);
  constexpr std::size_t steps = 5, lda = 96;
  const auto a = stored_as<bfloat16>(r.floats(2 * 16 * lda / 2 + steps * 32)), b = stored_as<bfloat16>(r.floats(2 * steps * 512));
  const auto cv = r.floats(4 * 256);
  const char* ap[2] = {reinterpret_cast<const char*>(a.data()), reinterpret_cast<const char*>(a.data() + 16 * lda / 2)};
  const char* bp[2] = {reinterpret_cast<const char*>(b.data()), reinterpret_cast<const char*>(b.data() + steps * 512)};
  alignas(64) float hw[4 * 256], model[4 * 256];
  std::copy(cv.begin(), cv.end(), hw);
  std::copy(cv.begin(), cv.end(), model);
  kernels::detail::amx_hardware_tiles::configure();
  kernels::detail::amx_prefetch none;
  kernels::detail::amx_hardware_tiles::tiles<2, 2>(ap, lda, 64, bp, steps, hw, hw, none);
  kernels::detail::amx_hardware_tiles::release();
  kernels::detail::amx_emulated_tiles::tiles<2, 2>(ap, lda, 64, bp, steps, model, model, none);
  CHECK(max_abs_diff(std::span<const float>(hw), std::span<const float>(model)) <= 2e-4f);
  MESSAGE("AMX tiles and their scalar model: " << std::string(std::memcmp(hw, model, sizeof hw) == 0 ? "bit for bit" : "differ in rounding"));
#endif
  kernels::set_amx_enabled(was);
}

// int8 weights on the CPU's tiles (AMX-INT8): the gemm exact, through
// matmul from amx_min_rows_int8 rows; the tiles bit for bit their model.
TEST_CASE("int8 products on AMX tiles give the exact integer sums, rounded once") {
  const bool was = kernels::amx_enabled();
  if (!kernels::set_amx_enabled(true) || !GRIFFIN_AMX_INT8) {
    MESSAGE("no AMX-INT8 in this build or from this OS: the int8 AMX gemm is not run here");
    kernels::set_amx_enabled(was);
    return;
  }
#if GRIFFIN_AMX_INT8
  using kernels::detail::amx_mc;
  const std::size_t min_rows = kernels::detail::amx_min_rows_int8;
  check_amx_int8_gemm({min_rows, min_rows + 1, 48, 200, amx_mc + 19}, [](auto x, auto w, const float* bias, auto y, bool accumulate, thread_pool* pool) {
    kernels::matmul(x, w, bias, y, accumulate, pool);
  });
  check_amx_int8_gemm({3, 5}, [](auto x, auto w, const float* bias, auto y, bool accumulate, thread_pool* pool) {
    kernels::detail::amx_matmul<kernels::detail::amx_hardware_tiles>(x, w, bias, y, accumulate, pool);
  });
  // One call of 1 x 2 tiles over 3 steps from loaded sums.
  rng r(9);
  constexpr std::size_t steps = 3;
  std::vector<std::int8_t> a(steps * 2048), b(2 * steps * 1024);
  for (auto& v : a) v = static_cast<std::int8_t>(static_cast<int>(r.below(256)) - 128);
  for (auto& v : b) v = static_cast<std::int8_t>(static_cast<int>(r.below(256)) - 128);
  alignas(64) std::int32_t hw[4 * 256], model[4 * 256];
  for (std::size_t i = 0; i < 4 * 256; ++i) hw[i] = model[i] = static_cast<std::int32_t>(r.below(1u << 20)) - (1 << 19);
  const char* bp[2] = {reinterpret_cast<const char*>(b.data()), reinterpret_cast<const char*>(b.data() + steps * 1024)};
  kernels::detail::amx_prefetch none;
  kernels::detail::amx_hardware_tiles::configure();
  kernels::detail::amx_hardware_tiles::tiles_int8<2>(reinterpret_cast<const char*>(a.data()), steps, bp, hw, hw, none);
  kernels::detail::amx_hardware_tiles::release();
  kernels::detail::amx_emulated_tiles::tiles_int8<2>(reinterpret_cast<const char*>(a.data()), steps, bp, model, model, none);
  CHECK(std::memcmp(hw, model, sizeof hw) == 0);
#endif
  kernels::set_amx_enabled(was);
}

// The same blocking (packing, in-place and copied panels, partial sums over
// k blocks, the transposed stores) on the scalar model of the tiles, so that
// it runs, sanitizers included, on CPUs without AMX; and the model itself
// against a plain product of two tiles with a denormal input and sum.
TEST_CASE("the AMX gemm's blocking on emulated tiles matches the scalar reference and the vdpbf16ps gemm") {
#if GRIFFIN_AMX_GEMM
  using tiles = kernels::detail::amx_emulated_tiles;
  check_amx_gemm([](auto x, auto w, const float* bias, auto y, bool accumulate, thread_pool* pool) {
    kernels::detail::amx_matmul<tiles>(x, w, bias, y, accumulate, pool);
  });
  // One step of 2 x 1 tiles: A_i [16][32] bf16 (rows 80 bytes apart), B [16 pairs][16].
  rng r(5);
  auto a = stored_as<bfloat16>(r.floats(2 * 16 * 40));
  const auto b = stored_as<bfloat16>(r.floats(16 * 32));
  a[0] = std::uint16_t{0x0001};  // a denormal A element reads as zero
  std::vector<float> c(2 * 256);
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = 0.25f * static_cast<float>(i % 7);
  const char* ap[2] = {reinterpret_cast<const char*>(a.data()), reinterpret_cast<const char*>(a.data() + 16 * 40)};
  const char* bp[1] = {reinterpret_cast<const char*>(b.data())};
  std::vector<float> expect(c);
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t m = 0; m < 16; ++m)
      for (std::size_t n = 0; n < 16; ++n) {
        float& sum = expect[i * 256 + m * 16 + n];
        for (std::size_t k = 0; k < 32; ++k) {
          const std::uint16_t ak = a[i * 16 * 40 + m * 40 + k].bits;
          sum += ((ak & 0x7f80u) == 0 ? 0.0f : bf16_to_float(ak)) * bf16_to_float(b[k / 2 * 32 + 2 * n + k % 2].bits);
        }
      }
  kernels::detail::amx_prefetch none;
  tiles::tiles<2, 1>(ap, 80, 64, bp, 1, c.data(), c.data(), none);
  CHECK(c == expect);
  // A sum below the smallest normal float flushes to zero, keeping its sign
  // (here the last product of row 0, column 0: A element 31 times pair 15's
  // high half).
  std::vector<bfloat16> tiny_a(16 * 32, std::uint16_t{0}), tiny_b(16 * 32, std::uint16_t{0});
  tiny_a[31] = float_to_bf16(-0x1p-100f);
  tiny_b[15 * 32 + 1] = float_to_bf16(0x1p-30f);
  const char* ta[1] = {reinterpret_cast<const char*>(tiny_a.data())};
  const char* tb[1] = {reinterpret_cast<const char*>(tiny_b.data())};
  std::vector<float> tc(256, 1.0f);
  tiles::tiles<1, 1>(ta, 64, 64, tb, 1, nullptr, tc.data(), none);
  CHECK(tc[0] == 0.0f);
  CHECK(std::signbit(tc[0]));
  CHECK(std::all_of(tc.begin() + 1, tc.end(), [](float v) { return v == 0.0f && !std::signbit(v); }));

  // int8 weights on the same blocking, and the int8 model against sums
  // written out: hi from signed bytes, lo from unsigned, B's dword layout.
  check_amx_int8_gemm({3, 16, 17, 48, kernels::detail::amx_mc + 19},
                      [](auto x, auto w, const float* bias, auto y, bool accumulate, thread_pool* pool) {
                        kernels::detail::amx_matmul<tiles>(x, w, bias, y, accumulate, pool);
                      });
  std::vector<std::int8_t> ia(2048), ib(1024);
  for (std::size_t i = 0; i < ia.size(); ++i) ia[i] = static_cast<std::int8_t>(static_cast<int>(i * 131 % 256) - 128);
  for (std::size_t i = 0; i < ib.size(); ++i) ib[i] = static_cast<std::int8_t>(static_cast<int>(i * 89 % 256) - 128);
  const char* ibp[1] = {reinterpret_cast<const char*>(ib.data())};
  std::vector<std::int32_t> isums(2 * 256);
  tiles::tiles_int8<1>(reinterpret_cast<const char*>(ia.data()), 1, ibp, nullptr, isums.data(), none);
  for (std::size_t m = 0; m < 16; ++m)
    for (std::size_t n = 0; n < 16; ++n) {
      std::int32_t hi = 0, lo = 0;
      for (std::size_t k = 0; k < 64; ++k) {
        const int wk = ib[k / 4 * 64 + 4 * n + k % 4];
        hi += ia[m * 64 + k] * wk;
        lo += static_cast<int>(static_cast<std::uint8_t>(ia[1024 + m * 64 + k])) * wk;
      }
      CHECK(isums[m * 16 + n] == hi);
      CHECK(isums[256 + m * 16 + n] == lo);
    }
#else
  MESSAGE("the AMX gemm needs AVX512-BF16 and AVX512BW in the build: not compiled here");
#endif
}

#if GRIFFIN_AMX_GEMM
// The MLP's gated product in one AMX pass (`run`: x, gate, gate bias, up, up
// bias, y, pool) against the two products and the GELU x up transform done
// apart (`apart`: x, w, bias, y, pool for each product): the same sums, so
// the same bits wherever the transform takes its vector path (every element
// but the last M N % 16), and the scalar functor's rounding on those. Edges
// as check_amx_gemm: K short of a step and past a k block, tokens past a
// tile, the whole-K limit and a token block, outputs past a tile, a panel and
// a piece; both layouts (bf16; int8 is [out, in] only, with channel
// scales); with and without biases; one thread and two.
template <class T, class Run, class Apart>
void check_amx_gated(Run&& run, Apart&& apart) {
  using kernels::detail::amx_kc;
  using kernels::detail::amx_mc;
  using kernels::detail::amx_nc;
  const std::size_t runs = for_each_amx_shape(
      {31, 64, amx_kc + 33}, {13, 16, 17, 150, amx_mc + 19}, {16, 17, 40, amx_nc + 48}, 17,
      [&](std::size_t K, std::size_t M, std::size_t N, rng& r, thread_pool* pool) {
        const bool out_in = std::is_same_v<T, std::int8_t> || (K + M + N) % 2 == 0, biased = (M + N) % 3 != 0;
        CAPTURE(out_in);
        const auto x = r.floats(M * K), bg = r.floats(N), bu = r.floats(N), scale = channel_scales(N);
        const auto wg = stored_as<T>(r.floats(N * K)), wu = stored_as<T>(r.floats(N * K));
        const float* s = std::is_same_v<T, std::int8_t> ? scale.data() : nullptr;
        const auto view = [&](const std::vector<T>& w) {
          return out_in ? kernels::out_in(w.data(), N, K, s) : kernels::in_out(w.data(), N, K, s);
        };
        const kernels::matrix_view<const float> xv{x.data(), M, K, K};
        std::vector<float> fused(M * N, -1.0f), gate(M * N), up(M * N);
        run(xv, view(wg), biased ? bg.data() : nullptr, view(wu), biased ? bu.data() : nullptr, kernels::dense(fused.data(), M, N), pool);
        apart(xv, view(wg), biased ? bg.data() : nullptr, kernels::dense(gate.data(), M, N), pool);
        apart(xv, view(wu), biased ? bu.data() : nullptr, kernels::dense(up.data(), M, N), pool);
        kernels::transform<default_arch>(pool, gate.data(), up.data(), gate.data(), M * N,
                                         [](auto g, auto u) { return kernels::gelu_tanh_fn{}(g) * u; });
        const std::size_t vector_end = M * N - M * N % kernels::lanes<default_arch>;
        CHECK(std::memcmp(fused.data(), gate.data(), vector_end * sizeof(float)) == 0);
        CHECK(max_abs_diff(std::span<const float>(fused).subspan(vector_end), std::span<const float>(gate).subspan(vector_end)) <= 1e-5f);
      });
  CHECK(runs > 30);
}

TEST_CASE_TEMPLATE("the MLP's gated product in one AMX pass gives the two products' GELU x up", T, bfloat16, std::int8_t) {
  using tiles = kernels::detail::amx_emulated_tiles;
  check_amx_gated<T>(
      [](auto x, auto wg, const float* bg, auto wu, const float* bu, auto y, thread_pool* pool) {
        kernels::detail::amx_matmul_gated<tiles>(x, wg, bg, wu, bu, y, pool);
      },
      [](auto x, auto w, const float* b, auto y, thread_pool* pool) { kernels::detail::amx_matmul<tiles>(x, w, b, y, false, pool); });
  // On the CPU's tiles, through the public entry point, where it serves
  // (int8 from amx_min_rows_int8 rows: the gated check's first shape runs 13).
  const bool was = kernels::amx_enabled();
#if GRIFFIN_AMX
  if constexpr (kernels::detail::amx_type<T>) {
    if (kernels::set_amx_enabled(true)) {
      check_amx_gated<T>(
          [](auto x, auto wg, const float* bg, auto wu, const float* bu, auto y, thread_pool* pool) {
            const bool served = kernels::matmul_gated(x, wg, bg, wu, bu, y, pool);
            CHECK(served == (x.rows >= kernels::detail::amx_min_rows_int8 || std::is_same_v<T, bfloat16>));
            if (!served) kernels::detail::amx_matmul_gated<kernels::detail::amx_hardware_tiles>(x, wg, bg, wu, bu, y, pool);
          },
          [](auto x, auto w, const float* b, auto y, thread_pool* pool) {
            kernels::detail::amx_matmul<kernels::detail::amx_hardware_tiles>(x, w, b, y, false, pool);
          });
    }
  }
#endif
  // Where no kernel serves it, it says so and writes nothing.
  kernels::set_amx_enabled(false);
  const std::vector<float> x(32 * 8, 1.0f), w(8 * 8, 1.0f);
  const auto wb = stored_as<bfloat16>(w);
  std::vector<float> y(32 * 8, 7.0f);
  CHECK_FALSE(kernels::matmul_gated({x.data(), 32, 8, 8}, kernels::out_in(wb.data(), 8, 8), nullptr, kernels::out_in(wb.data(), 8, 8),
                                    nullptr, kernels::dense(y.data(), 32, 8)));
  CHECK_FALSE(kernels::matmul_gated({x.data(), 32, 8, 8}, kernels::out_in(w.data(), 8, 8), nullptr, kernels::out_in(w.data(), 8, 8),
                                    nullptr, kernels::dense(y.data(), 32, 8)));
  CHECK(std::all_of(y.begin(), y.end(), [](float v) { return v == 7.0f; }));
  kernels::set_amx_enabled(was);
}
#endif

// The gemv rows' prefetch distances are a per-CPU setting a program may
// change: set_gemv_prefetch returns the previous ones and takes effect on the
// next call, and no setting changes a result (bf16 and int8 rows at batch
// 1-4, rows long enough to run the prefetching loop, distances from none to
// past the end of the matrix).
TEST_CASE("gemv prefetch distances change no result and can be set and restored") {
  const kernels::gemv_prefetch_distances was = kernels::gemv_prefetch();
  rng r(31);
  thread_pool two(2);
  const std::size_t N = 37, K = 2 * 8192 + 96;
  const auto wb = stored_as<bfloat16>(r.floats(N * K));
  std::vector<std::int8_t> wi(N * K);
  for (std::size_t i = 0; i < wi.size(); ++i) wi[i] = static_cast<std::int8_t>(static_cast<int>(i * 7919 % 255) - 127);
  const auto scale = r.floats(N);
  for (std::size_t M = 1; M <= kernels::detail::gemv_row_max_rows; ++M) {
    CAPTURE(M);
    const auto x = r.floats(M * K);
    const kernels::matrix_view<const float> xv{x.data(), M, K, K};
    std::vector<float> first_b, first_i;
    for (const kernels::gemv_prefetch_distances d :
         {kernels::gemv_prefetch_distances{0, 0, 0}, kernels::gemv_prefetch_distances{64, 64, 64},
          kernels::gemv_prefetch_distances{4096, 6144, 16384}, kernels::gemv_prefetch_distances{N * K, N * K, 2 * N * K}}) {
      const auto before = kernels::gemv_prefetch();
      CHECK(kernels::set_gemv_prefetch(d) == before);
      CHECK(kernels::gemv_prefetch() == d);
      std::vector<float> yb(M * N), yi(M * N);
      kernels::matmul(xv, kernels::out_in(wb.data(), N, K), nullptr, {yb.data(), M, N, N}, false, M % 2 ? &two : nullptr);
      kernels::matmul(xv, kernels::out_in(wi.data(), N, K, scale.data()), nullptr, {yi.data(), M, N, N}, false, &two);
      if (first_b.empty()) {
        first_b = yb;
        first_i = yi;
        std::vector<float> ref(M * N);
        kernels::matmul_scalar(xv, kernels::out_in(wi.data(), N, K, scale.data()), nullptr, {ref.data(), M, N, N}, false);
        float largest = 0.0f;  // the scalar rule sums in float: cancellation over K, so relative to the largest output
        for (const float v : ref) largest = std::max(largest, std::abs(v));
        CHECK(max_abs_diff(std::span<const float>(yi), std::span<const float>(ref)) <= 1e-4f * largest);
      } else {
        CHECK(yb == first_b);
        CHECK(yi == first_i);
      }
    }
  }
  kernels::set_gemv_prefetch(was);
  CHECK(kernels::gemv_prefetch() == was);
}

// The distances each CPU starts with, as gemv_prefetch_distances documents
// them (this build sets no GRIFFIN_GEMV_*PREFETCH* override).
TEST_CASE("gemv prefetch distances start at the documented choice for the CPU's vendor and family") {
  const std::string_view vendor = kernels::detail::cpu_vendor();
  CHECK((vendor.empty() || vendor.size() == 12));
  kernels::gemv_prefetch_distances expected;
  if (vendor == "AuthenticAMD" && kernels::detail::amd_cpu_family() >= 0x1a) expected = {0, 6144, 0};
  else if (vendor == "GenuineIntel") expected = {4096, 6144, 0};
  else expected = {4096, 6144, 16384};
  CHECK(kernels::detail::cpu_gemv_prefetch() == expected);
  if (vendor != "AuthenticAMD") CHECK(kernels::detail::amd_cpu_family() == 0);
}

// Integer sums at their largest: weights -128 and activations on the ends
// of their grids (+-32767) over K past the gemv's 8192-element and the
// gemm's 512-element integer blocks, on the gemv rows, the batched tile and
// the packed gemm; and at 16 rows over K = 65536, the longest the AMX int8
// tiles sum in int32 (the low bytes' sum of row 0 is then 255 x -128 x
// 65536, 2^31 - 8388608), and over 65856, where that sum would wrap and
// matmul must leave the tiles (with the limit raised to 70000 this test
// failed). A wrapped int32 sum would flip a sign or lose 2^32.
TEST_CASE_TEMPLATE_DEFINE("int8 matmul sums the largest products over long rows without overflow", Arch, int8_extreme_id) {
  griffin_test::require_runnable<Arch>();
  const std::size_t N = 5, M_max = kernels::gemm_min_rows<std::int8_t, Arch> + 4;
#if GRIFFIN_AMX_GEMM
  static_assert(kernels::detail::amx_int8_max_k == 65536, "the long rows below sit at the AMX int8 limit");
#endif
  thread_pool two(2);
  for (std::size_t K : {std::size_t{2 * 8192 + 37}, std::size_t{65536}, std::size_t{65536 + 320}}) {
    CAPTURE(K);
    std::vector<std::int8_t> w(N * K, std::int8_t{-128});
    for (std::size_t k = 0; k < K; k += 3) w[2 * K + k] = 127;  // one row of mixed signs
    const std::vector<float> scale(N, 1e-3f);
    for (std::size_t M : {std::size_t{1}, std::size_t{6}, std::size_t{16}, std::size_t{40}, M_max}) {
      if (K > 20000 && M != 16) continue;
      CAPTURE(M);
      std::vector<float> x(M * K);
      for (std::size_t m = 0; m < M; ++m)
        for (std::size_t k = 0; k < K; ++k) x[m * K + k] = (m % 2 ? -1.0f : 1.0f) * (k % 5 == 4 && m % 3 == 2 ? -1.0f : 1.0f);
      std::vector<float> y(M * N), ref(M * N);
      const kernels::matrix_view<const float> xv{x.data(), M, K, K};
      kernels::matmul<Arch>(xv, kernels::out_in(w.data(), N, K, scale.data()), nullptr, {y.data(), M, N, N}, false, &two);
      kernels::matmul_scalar(xv, kernels::out_in(w.data(), N, K, scale.data()), nullptr, {ref.data(), M, N, N}, false);
      for (std::size_t i = 0; i < M * N; ++i) CHECK(y[i] == doctest::Approx(ref[i]).epsilon(1e-5));
      CHECK(y[0] == doctest::Approx(-0.128 * static_cast<double>(K)).epsilon(1e-5));
    }
  }
}
TEST_CASE_TEMPLATE_APPLY(int8_extreme_id, griffin_test::test_archs);

TEST_CASE("to_int16_grid (the int8 GEMV's activation rows) equals the scalar grid rule bit for bit") {
  rng r(21);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float tiny = std::numeric_limits<float>::denorm_min();
  std::vector<std::vector<float>> rows;
  for (std::size_t K : {0u, 1u, 5u, 15u, 16u, 17u, 31u, 32u, 33u, 100u, 2560u}) rows.push_back(r.floats(K, 3.0f));
  std::vector<float> ties(40);  // x / scale at exact halves: round to even
  for (std::size_t k = 0; k < ties.size(); ++k) ties[k] = (static_cast<float>(k) - 20.5f) / 32767.0f * 2.0f;
  ties.push_back(2.0f);  // amax 2: scale 2/32767
  rows.push_back(ties);
  rows.push_back(std::vector<float>(37, 0.0f));                 // zero row: scale 1
  rows.push_back({1.0f, -0.0f, tiny, 3 * tiny, -5 * tiny});      // subnormals beside a normal
  rows.push_back({tiny, -2 * tiny, 0.0f, 7 * tiny});             // subnormals only: the step is clamped
  for (float bad : {nan, inf, -inf})
    for (std::size_t at : {0u, 9u, 16u, 20u}) {
      auto v = r.floats(21);
      v[at] = bad;
      rows.push_back(v);
    }
  for (const auto& x : rows) {
    CAPTURE(x.size());
    const std::size_t padded = (x.size() + 31) / 32 * 32 + 32;
    std::vector<std::int16_t> out(padded, std::int16_t{0x5a5a});
    const float scale = kernels::to_int16_grid(x.data(), out.data(), x.size(), padded);
    const float ref_scale = kernels::int16_grid_scale(x.data(), x.size());
    CHECK((std::isnan(ref_scale) ? std::isnan(scale) : scale == ref_scale));
    CHECK(ref_scale != 0.0f);
    for (std::size_t k = 0; k < padded; ++k) {
      CAPTURE(k);
      CHECK(out[k] == (k < x.size() ? kernels::int16_grid(x[k], ref_scale) : std::int16_t{0}));
    }
  }
}

TEST_CASE_TEMPLATE_DEFINE("rms_norm matches the scalar reference, with static and dynamic widths", Arch, rms_id) {
  griffin_test::require_runnable<Arch>();
  rng r(4);
  for (std::size_t n : counts<Arch>()) {
    if (n == 0) continue;
    for (std::size_t off = 0; off < kernels::lanes<Arch>; ++off) {
      CAPTURE(n);
      CAPTURE(off);
      shifted x(r.floats(n, 3.0f), off), scale(r.floats(n, 0.5f), off), y(std::vector<float>(n), off);
      std::vector<float> ref(n);
      kernels::rms_norm<Arch>(x.data(), scale.data(), y.data(), n);
      kernels::rms_norm_scalar(x.data(), scale.data(), ref.data(), n);
      CHECK(max_abs_diff(y.span(), ref) <= 2e-6f);
    }
  }
  // fixed<N> and a runtime N take the same code path and give the same bits.
  const auto x = r.floats(37), scale = r.floats(37);
  std::vector<float> a(37), b(37);
  kernels::rms_norm<Arch>(x.data(), scale.data(), a.data(), fixed<37>{});
  kernels::rms_norm<Arch>(x.data(), scale.data(), b.data(), std::size_t{37});
  CHECK(a == b);
}
TEST_CASE_TEMPLATE_APPLY(rms_id, griffin_test::test_archs);

namespace {
// Segment positions with document starts at the given indices.
std::vector<std::int32_t> positions_with_starts(std::size_t T, std::initializer_list<std::size_t> starts,
                                                std::int32_t first = 7) {
  std::vector<std::int32_t> pos(T);
  std::int32_t p = first;
  for (std::size_t t = 0; t < T; ++t) {
    for (std::size_t s : starts)
      if (s == t) p = 0;
    pos[t] = p++;
  }
  return pos;
}
}  // namespace

TEST_CASE_TEMPLATE_DEFINE("conv1d matches the scalar reference with history, resets and any width", Arch, conv_id) {
  griffin_test::require_runnable<Arch>();
  rng r(5);
  for (std::size_t E : counts<Arch>())
    for (std::size_t tw : {1u, 2u, 4u, 5u})
      for (std::size_t T : {1u, 3u, 9u})
        for (bool with_history : {false, true}) {
          CAPTURE(E);
          CAPTURE(tw);
          CAPTURE(T);
          const auto pos = positions_with_starts(T, {2, 7});
          const std::size_t off = E % kernels::lanes<Arch>;
          shifted x(r.floats(T * (E + 1)), off), w(r.floats(tw * E), off), b(r.floats(E), off);
          auto hist = r.floats((tw - 1) * E);
          shifted out(std::vector<float>(T * E), off);
          std::vector<float> ref(T * E);
          kernels::conv1d_args a{x.data(), E + 1, with_history ? hist.data() : nullptr, pos.data(), w.data(), b.data(),
                                 out.data(), E, T, E, tw};
          kernels::conv1d<Arch>(a);
          a.out = ref.data();
          kernels::conv1d_scalar(a);
          CHECK(max_abs_diff(out.span(), ref) <= 1e-6f);
        }
}
TEST_CASE_TEMPLATE_APPLY(conv_id, griffin_test::test_archs);

TEST_CASE_TEMPLATE_DEFINE("rg_lru matches the scalar reference through resets", Arch, lru_id) {
  griffin_test::require_runnable<Arch>();
  rng r(6);
  for (std::size_t E : counts<Arch>())
    for (std::size_t T : {1u, 2u, 8u}) {
      CAPTURE(E);
      CAPTURE(T);
      const auto pos = positions_with_starts(T, {1, 5});
      const std::size_t stride = E + 2, off = (E + T) % kernels::lanes<Arch>;
      shifted x(r.floats(T * stride, 2.0f), off), gx(r.floats(T * stride, 3.0f), off), ga(r.floats(T * stride, 3.0f), off);
      std::vector<float> scale(E);
      for (float& s : scale) s = -8.0f * rg_lru::softplus(r.uniform() * 4.0f);
      const auto h0 = r.floats(E);
      shifted h(h0, off), y(std::vector<float>(T * stride), off);
      std::vector<float> href = h0, yref(T * stride);
      kernels::rg_lru_args a{x.data(), gx.data(), ga.data(), scale.data(), pos.data(), h.data(), y.data(), stride, T, E};
      kernels::rg_lru<Arch>(a);
      a.h = href.data();
      a.y = yref.data();
      kernels::rg_lru_scalar(a);
      CHECK(max_abs_diff(y.span(), yref) <= 1e-5f);
      CHECK(max_abs_diff(h.span().first(E), href) <= 1e-5f);
    }
}
TEST_CASE_TEMPLATE_APPLY(lru_id, griffin_test::test_archs);

TEST_CASE_TEMPLATE_DEFINE("fold_sums puts the sum of row i in lane i, folded alike in every lane", Arch, fold_id) {
  griffin_test::require_runnable<Arch>();
  using B = kernels::batch<Arch>;
  constexpr std::size_t L = kernels::lanes<Arch>;
  rng r(11);
  const auto values = r.floats(L * L);
  std::array<B, L> rows, rotated;
  for (std::size_t i = 0; i < L; ++i) rows[i] = B::load_unaligned(values.data() + i * L);
  for (std::size_t i = 0; i < L; ++i) rotated[i] = rows[(i + 1) % L];
  alignas(64) std::array<float, L> sums, rotated_sums;
  kernels::fold_sums<Arch>(rows.data()).store_aligned(sums.data());
  kernels::fold_sums<Arch>(rotated.data()).store_aligned(rotated_sums.data());
  for (std::size_t i = 0; i < L; ++i) {
    CAPTURE(i);
    double sum = 0;
    for (std::size_t j = 0; j < L; ++j) sum += values[i * L + j];
    CHECK(sums[i] == doctest::Approx(sum).epsilon(1e-5));
    CHECK(rotated_sums[i] == sums[(i + 1) % L]);  // the same fold wherever the row sits
  }
}
TEST_CASE_TEMPLATE_APPLY(fold_id, griffin_test::test_archs);

TEST_CASE_TEMPLATE_DEFINE("attention matches the scalar reference over ring buffers, windows and resets", Arch, attn_id) {
  griffin_test::require_runnable<Arch>();
  rng r(7);
  // Head dims with and without a SIMD tail and past the 4-vector value tile
  // (72); 5 heads for a full and a partial tile of heads; a history of 300
  // crosses the value sums' key blocks (8192 / hd keys).
  struct shape {
    std::size_t hd, H, capacity;
  };
  for (shape sh : {shape{4, 3, 5}, shape{8, 3, 5}, shape{20, 3, 5}, shape{36, 3, 5}, shape{72, 5, 5}, shape{72, 5, 300}})
    for (std::size_t window : {std::size_t{1}, std::size_t{3}, std::size_t{64}, sh.capacity + 8})
      for (std::size_t past_count : {std::size_t{0}, std::size_t{2}, sh.capacity}) {
        const std::size_t hd = sh.hd, H = sh.H, capacity = sh.capacity, T = 6;
        CAPTURE(hd);
        CAPTURE(H);
        CAPTURE(capacity);
        CAPTURE(window);
        CAPTURE(past_count);
        const auto pos = positions_with_starts(T, {4});
        const auto q = r.floats(T * H * hd), k = r.floats(T * hd), v = r.floats(T * hd);
        const auto pk = r.floats(capacity * hd), pv = r.floats(capacity * hd);
        kernels::kv_history past{pk.data(), pv.data(), past_count, 3, capacity, hd};
        std::vector<float> out(T * H * hd), ref(T * H * hd), scores(H * (capacity + T));
        kernels::attention_args a{q.data(), k.data(), v.data(), pos.data(), past, out.data(), scores.data(), T, H, hd, window};
        kernels::attention<Arch>(a);
        a.out = ref.data();
        kernels::attention_scalar(a);
        CHECK(max_abs_diff(out, ref) <= 1e-6f);
        // In parts of queries x heads (as the block splits it over threads),
        // each with its own scores buffer: bit for bit the whole.
        for (std::size_t tq : {1u, 4u})
          for (std::size_t hg : {1u, 2u}) {
            std::vector<float> parts(T * H * hd, -1.0f);
            a.out = parts.data();
            for (std::size_t t0 = 0; t0 < T; t0 += tq)
              for (std::size_t h0 = 0; h0 < H; h0 += hg) {
                std::vector<float> own(H * (capacity + T), 7.0f);
                a.scores = own.data();
                kernels::attention<Arch>(a, {t0, t0 + tq, h0, h0 + hg});
              }
            CHECK(max_abs_diff(parts, out) == 0.0f);
          }
      }
}
TEST_CASE_TEMPLATE_APPLY(attn_id, griffin_test::test_archs);

// ---- worked values -------------------------------------------------------

TEST_CASE("math functors give the reference's values") {
  const kernels::gelu_tanh_fn gelu;
  CHECK(gelu(0.0f) == 0.0f);
  CHECK(gelu(1.0f) == doctest::Approx(0.8411920).epsilon(1e-6));  // torch gelu(1., approximate="tanh")
  CHECK(gelu(-3.0f) == doctest::Approx(-0.0036374).epsilon(1e-4));
  CHECK(kernels::sigmoid_fn{}(0.0f) == 0.5f);
  CHECK(rg_lru::softplus(0.0f) == doctest::Approx(std::log(2.0f)));
  CHECK(rg_lru::softplus(30.0f) == 30.0f);  // torch's threshold: identity above 20
}

TEST_CASE("rms_norm scales by (1 + scale) with eps 1e-6") {
  const std::array<float, 4> x{1, 2, 3, 4}, scale{0, 1, -1, 0.5f};
  std::array<float, 4> y{};
  kernels::rms_norm_scalar(x.data(), scale.data(), y.data(), 4);
  const float inv = 1.0f / std::sqrt(7.5f + 1e-6f);  // mean(x^2) = 30 / 4
  CHECK(y[0] == doctest::Approx(1 * inv));
  CHECK(y[1] == doctest::Approx(2 * inv * 2));
  CHECK(y[2] == 0.0f);
  CHECK(y[3] == doctest::Approx(4 * inv * 1.5));
}

TEST_CASE("conv1d never looks across a document start (the header's worked example)") {
  // tw = 4, one channel, w = [w0, w1, w2, w3]: out[t] = b + w3 x[t] + w2 x[t-1] + w1 x[t-2] + w0 x[t-3].
  const std::array<float, 4> w{1000, 100, 10, 1}, x{1, 2, 3, 4}, hist{5, 6, 7};
  const float b = 0.5f;
  const std::array<std::int32_t, 4> pos{5, 6, 0, 1};
  std::array<float, 4> out{};
  kernels::conv1d_scalar({x.data(), 1, hist.data(), pos.data(), w.data(), &b, out.data(), 1, 4, 1, 4});
  CHECK(out[0] == 0.5f + 1 + 10 * 7 + 100 * 6 + 1000 * 5);
  CHECK(out[1] == 0.5f + 2 + 10 * 1 + 100 * 7 + 1000 * 6);
  CHECK(out[2] == 0.5f + 3);           // a document starts here
  CHECK(out[3] == 0.5f + 4 + 10 * 3);  // x[1], x[0] are in the previous document
  std::array<float, 3> next{};
  kernels::conv1d_next_history({x.data(), 1, hist.data(), pos.data(), w.data(), &b, out.data(), 1, 4, 1, 4}, next.data());
  CHECK(next == std::array<float, 3>{0, 3, 4});  // x[1] precedes the last document start
}

TEST_CASE("rg_lru: a document start drops the state and skips the normalisation") {
  const float x = 0.7f, gx = 0.3f, ga = -0.2f, scale = -8.0f * rg_lru::softplus(0.5f);
  const float gate_x = 1 / (1 + std::exp(-gx));
  CHECK(kernels::rg_lru_step_scalar(x, gx, ga, scale, true, 123.0f) == doctest::Approx(x * gate_x));
  const float log_a = scale / (1 + std::exp(-ga));
  const float expected = std::exp(log_a) * 2.0f + x * gate_x * std::sqrt(1 - std::exp(2 * log_a));
  CHECK(kernels::rg_lru_step_scalar(x, gx, ga, scale, false, 2.0f) == doctest::Approx(expected));
}

TEST_CASE("RoPE is the identity at position 0, rotates the first half only, and keeps norms") {
  const std::size_t hd = 8;
  std::vector<float> inv{1.0f, 0.01f};  // hd / 4 frequencies
  std::vector<float> v{1, 2, 3, 4, 5, 6, 7, 8};
  auto u = v;
  kernels::apply_rope(u.data(), hd, inv.data(), 0);
  CHECK(u == v);
  kernels::apply_rope(u.data(), hd, inv.data(), 3);
  CHECK(u[4] == 5);  // the second half is left alone
  CHECK(u[7] == 8);
  // quarters (v0, v2) and (v1, v3) rotate as 2-D pairs: norms kept
  CHECK(u[0] * u[0] + u[2] * u[2] == doctest::Approx(1 + 9));
  CHECK(u[0] == doctest::Approx(std::cos(3.0f) - 3 * std::sin(3.0f)));
}

TEST_CASE("float16 and bfloat16 conversions round to nearest even") {
  CHECK(float_to_f16(1.0f) == 0x3c00);
  CHECK(float_to_f16(65504.0f) == 0x7bff);       // the largest half
  CHECK(float_to_f16(65520.0f) == 0x7c00);       // rounds up to infinity
  CHECK(float_to_f16(5.9604645e-8f) == 0x0001);  // the smallest subnormal
  CHECK(f16_to_float(0x0001) == 5.9604645e-8f);
  CHECK(float_to_f16(1.0f + 0x1p-11f) == 0x3c00);  // a tie rounds to even
  CHECK(float_to_bf16(1.0f + 0x1p-8f) == 0x3f80);
  CHECK(float_to_bf16(1.0f + 0x1p-8f + 0x1p-12f) == 0x3f81);
}

TEST_CASE("the embedding scale is sqrt(width) rounded to bfloat16") {
  CHECK(embedder::sqrt_width_scale(2560) == 50.5f);
  CHECK(embedder::sqrt_width_scale(64) == 8.0f);
  CHECK(embedder::sqrt_width_scale(4096) == 64.0f);
}
