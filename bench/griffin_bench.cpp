// griffin-bench: end-to-end speed of a RecurrentGemma-shaped model with random
// weights, against this machine's own limits measured in the same run.
//
//   griffin-bench [--preset 2b|9b] [--weights f32,bf16,int8] [--threads 1,2]
//                 [--prompt 512] [--decode 64] [--layers N]
//                 [--gemv-prefetch BF16_L2,INT8_L2,INT8_FAR]
//
// For each weight type and thread count it prints prefill tokens/s (a
// prompt of --prompt tokens, median of three) and decode tokens/s (batch 1, --decode steps
// after that prompt), and compares them with
//   decode:  the memory-bandwidth roofline, bandwidth / bytes read per token
//            (every weight once, plus the KV cache entries attended to);
//   prefill: the peak of the arithmetic the weights compute with (AMX bf16
//            tiles for bf16 weights where matmul uses them, else bf16 dot
//            products on AVX512-BF16; for int8 weights AMX int8 tiles at
//            two byte products per 16-bit x 8-bit product where matmul uses
//            them, else int16 dot products (vpdpwssd on AVX512-VNNI,
//            vpmaddwd on AVX2); f32 FMA otherwise).
// Bandwidth and peaks are measured here, with the same thread count: the
// bandwidth between decode steps, the peaks up front and after each prefill.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <immintrin.h>

#include <griffin/griffin.hpp>

#include "bench_util.hpp"

namespace {

using griffin_bench::clock_type;
using griffin_bench::fast_random_weights;
using griffin_bench::seconds_since;
using griffin_bench::split_list;

// ---- the machine ------------------------------------------------------------

// Read bandwidth: the pool's threads sum a 1 GiB buffer, shared out as the
// decode GEMV shares out its weights (thread_pool::run_shares: each thread
// streams its own contiguous share and the first done takes over half of
// what another has left), so the roofline and the decode steps it is
// compared with balance work between threads alike. One pass returns its
// seconds; the machine line reports the best of 5.
constexpr std::size_t bandwidth_bytes = std::size_t{1} << 30;

double read_pass(griffin::thread_pool& pool, const griffin::aligned_vector<float>& buffer) {
  using B = xsimd::batch<float>;
  constexpr std::size_t piece = griffin::kernels::detail::gemv_piece_bytes / sizeof(float);  // claimed at a time, as the GEMV's
  std::atomic<double> total{0.0};
  const auto t0 = clock_type::now();
  pool.run_shares(buffer.size(), 4 * B::size, piece / (4 * B::size), [&](std::size_t i0, std::size_t i1) {
    B a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
    const float* p = buffer.data();
    for (std::size_t i = i0; i + 4 * B::size <= i1; i += 4 * B::size) {
      a0 += B::load_aligned(p + i);
      a1 += B::load_aligned(p + i + B::size);
      a2 += B::load_aligned(p + i + 2 * B::size);
      a3 += B::load_aligned(p + i + 3 * B::size);
    }
    total.fetch_add(static_cast<double>(xsimd::hadd(a0 + a1 + a2 + a3)), std::memory_order_relaxed);
  });
  const double s = seconds_since(t0);
  if (total.load() != static_cast<double>(buffer.size())) std::puts("(bandwidth check failed)");
  return s;
}

double measure_bandwidth(griffin::thread_pool& pool, const griffin::aligned_vector<float>& buffer) {
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) best = std::max(best, static_cast<double>(bandwidth_bytes) / read_pass(pool, buffer));
  return best;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// The arithmetic a GEMM runs on: f32 FMA, bf16 dot products (AVX512-BF16)
// or int16 dot products (int8 weights: AVX512-VNNI vpdpwssd, AVX2 vpmaddwd +
// vpaddd). Where the bf16 instruction is missing, bf16 weights are
// multiplied with f32 FMA, and that is the peak they are compared with.
enum class arithmetic { f32, bf16, int16 };
#if defined(__AVX512BF16__)
inline constexpr bool has_bf16_dot = true;
#else
inline constexpr bool has_bf16_dot = false;
#endif
inline constexpr bool has_int16_dot = griffin::kernels::detail::int16_pairs<std::int8_t, griffin::default_arch>;

// Peak FLOP/s of one arithmetic: independent accumulators per thread, as
// many as the GEMM's register tile (24 of AVX-512's 32 registers; 12 of
// AVX2's 16, still three times an FMA's latency x its throughput). Each
// starts from its own value: started alike, they were merged by GCC into one
// chain where the loop ran inline (one thread), which timed a twelfth of the
// FMAs it counted (AVX2: "154 GFLOP/s" on one thread against ~98 measured
// with distinct chains, 196 on two).
#if defined(__AVX512F__)
inline constexpr std::size_t peak_accumulators = 24, peak_lanes = 16;
#else
using peak_batch = xsimd::batch<float, griffin::default_arch>;
inline constexpr std::size_t peak_accumulators = 12, peak_lanes = peak_batch::size;
#endif
template <arithmetic A>
float peak_loop(std::size_t iterations, float seed) {
#if defined(__AVX512F__)
  __m512 acc[24];
  for (std::size_t j = 0; j < 24; ++j) acc[j] = _mm512_set1_ps(seed + static_cast<float>(j));
  [[maybe_unused]] __v16si iacc[24];
  for (std::size_t j = 0; j < 24; ++j) iacc[j] = (__v16si)_mm512_set1_epi32(static_cast<int>(seed) + static_cast<int>(j));
  const __m512 x = _mm512_set1_ps(1e-8f);
  [[maybe_unused]] const __m512i xb = _mm512_set1_epi32(0x32ab32ab);
  for (std::size_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (std::size_t j = 0; j < 24; ++j) {
#if defined(__AVX512BF16__)
      if constexpr (A == arithmetic::bf16) {
        acc[j] = _mm512_dpbf16_ps(acc[j], (__m512bh)xb, (__m512bh)xb);
        continue;
      }
#endif
#if defined(__AVX512VNNI__)
      if constexpr (A == arithmetic::int16) {
        iacc[j] = (__v16si)_mm512_dpwssd_epi32((__m512i)iacc[j], xb, xb);
        continue;
      }
#endif
      acc[j] = _mm512_fmadd_ps(acc[j], x, x);
    }
  }
  __m512 s = acc[0];
  for (std::size_t i = 1; i < 24; ++i) s = _mm512_add_ps(s, _mm512_add_ps(acc[i], _mm512_cvtepi32_ps((__m512i)iacc[i])));
  return _mm512_reduce_add_ps(s);
#else
  static_assert(A != arithmetic::bf16, "bf16 dot products need AVX512-BF16");
#if defined(__AVX2__)
  if constexpr (A == arithmetic::int16) {  // vpmaddwd + vpaddd, as the AVX2 int8 GEMM runs
    // __v8si, as the GEMM's accumulators: with __m256i GCC 12 kept them on
    // the stack and this loop measured three quarters of the peak.
    __v8si acc[peak_accumulators];
    for (std::size_t j = 0; j < peak_accumulators; ++j) acc[j] = (__v8si)_mm256_set1_epi32(static_cast<int>(seed) + static_cast<int>(j));
    const __m256i xb = _mm256_set1_epi32(0x32ab32ab);
    for (std::size_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
      for (std::size_t j = 0; j < peak_accumulators; ++j)  // madd of the accumulator: madd(xb, xb) would be hoisted
        acc[j] = (__v8si)_mm256_add_epi32((__m256i)acc[j], _mm256_madd_epi16((__m256i)acc[j], xb));
    }
    __m256i s = (__m256i)acc[0];
    for (std::size_t i = 1; i < peak_accumulators; ++i) s = _mm256_add_epi32(s, (__m256i)acc[i]);
    return static_cast<float>(_mm256_extract_epi32(s, 0));
  }
#endif
  peak_batch acc[peak_accumulators];
  for (std::size_t j = 0; j < peak_accumulators; ++j) acc[j] = peak_batch(seed + static_cast<float>(j));
  const peak_batch x(1e-8f);
  for (std::size_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (std::size_t j = 0; j < peak_accumulators; ++j) acc[j] = xsimd::fma(acc[j], x, x);
  }
  peak_batch s = acc[0];
  for (std::size_t i = 1; i < peak_accumulators; ++i) s += acc[i];
  return xsimd::hadd(s);
#endif
}

template <arithmetic A>
double measure_peak(griffin::thread_pool& pool) {
  constexpr std::size_t iterations = 10'000'000;
  double best = 0.0;
  std::vector<float> sink(pool.size());
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = clock_type::now();
    pool.run(pool.size(), [&](std::size_t t) { sink[t] = peak_loop<A>(iterations, static_cast<float>(t)); });
    const double flops_per_lane_op = A == arithmetic::f32 ? 2.0 : 4.0;  // a dot-product lane does two multiply-adds
    best = std::max(best, static_cast<double>(pool.size() * iterations * peak_accumulators * peak_lanes) * flops_per_lane_op /
                              seconds_since(t0));
  }
  return best;
}

// Peak FLOP/s of AMX tiles (where matmul uses them: amx_enabled()): four
// independent 16 x 16 sums, as the gemm's tiles run. bf16: each TDPBF16PS
// 16 x 16 x 32 products (16384 FLOPs). int8: TDPBSSD, 16 x 16 x 64 byte
// products, counted as the int8 rule's 16-bit x 8-bit products, of which
// each takes two (its activation's high and low byte): 16384 FLOPs too. 0
// where AMX (AMX-INT8 for int8) is not in use.
template <bool Int8 = false>
double measure_amx_peak([[maybe_unused]] griffin::thread_pool& pool) {
#if GRIFFIN_AMX
  if (!griffin::kernels::amx_enabled() || (Int8 && !GRIFFIN_AMX_INT8)) return 0.0;
  constexpr std::size_t iterations = 2'000'000;
  double best = 0.0;
  std::vector<float> sink(pool.size());
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = clock_type::now();
    pool.run(pool.size(), [&](std::size_t t) {
      alignas(64) std::uint16_t a[16 * 32];
      alignas(64) float c[256];
      for (std::size_t i = 0; i < 16 * 32; ++i) a[i] = static_cast<std::uint16_t>(0x3c00 + (i + t) % 7);
      griffin::kernels::detail::amx_configure();
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      _tile_loadd(4, a, 64);
      _tile_loadd(5, a, 64);
      _tile_loadd(6, a, 64);
      _tile_loadd(7, a, 64);
      for (std::size_t i = 0; i < iterations; ++i) {
#if GRIFFIN_AMX_INT8
        if constexpr (Int8) {
          _tile_dpbssd(0, 4, 6);
          _tile_dpbssd(1, 4, 7);
          _tile_dpbssd(2, 5, 6);
          _tile_dpbssd(3, 5, 7);
          continue;
        }
#endif
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_stored(0, c, 64);
      _tile_release();
      sink[t] = c[0];
    });
    best = std::max(best, static_cast<double>(pool.size() * iterations) * 4.0 * 16384.0 / seconds_since(t0));
  }
  return best;
#else
  return 0.0;
#endif
}

// ---- the model ----------------------------------------------------------------

struct options {
  std::string preset = "2b";
  std::vector<std::string> weights{"f32", "bf16", "int8"};
  std::vector<std::size_t> threads{1, 2};
  std::size_t prompt = 512;
  std::size_t decode = 64;
  std::size_t layers = 0;  // 0: the preset's
  std::vector<std::size_t> gemv_prefetch;  // empty: the distances chosen for this CPU
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&] { return griffin_bench::flag_value(argc, argv, i); };
    auto number = [&]() {
      const std::string v = value();
      std::size_t used = 0;
      const unsigned long n = std::stoul(v, &used);
      if (used != v.size()) throw std::invalid_argument(flag + ": '" + v + "' is not a number");
      return static_cast<std::size_t>(n);
    };
    if (flag == "--preset") o.preset = value();
    else if (flag == "--weights") o.weights = split_list(value());
    else if (flag == "--threads") {
      o.threads.clear();
      for (const auto& t : split_list(value())) o.threads.push_back(std::stoul(t));
    } else if (flag == "--prompt") o.prompt = number();
    else if (flag == "--decode") o.decode = number();
    else if (flag == "--layers") o.layers = number();
    else if (flag == "--gemv-prefetch") {
      for (const auto& d : split_list(value())) {
        std::size_t used = 0;
        o.gemv_prefetch.push_back(std::stoul(d, &used));
        if (used != d.size()) throw std::invalid_argument("--gemv-prefetch: '" + d + "' is not a number of bytes");
      }
      if (o.gemv_prefetch.size() != 3) throw std::invalid_argument("--gemv-prefetch takes three byte counts: BF16_L2,INT8_L2,INT8_FAR");
    } else if (flag == "--help" || flag == "-h") {
      std::puts("griffin-bench [--preset 2b|9b] [--weights f32,bf16,int8] [--threads 1,2] [--prompt 512] [--decode 64] [--layers N]\n"
                "              [--gemv-prefetch BF16_L2,INT8_L2,INT8_FAR]  (bytes ahead the decode rows prefetch; 0 for none)");
      std::exit(0);
    } else throw std::invalid_argument("unknown flag " + flag + " (try --help)");
  }
  if (o.preset != "2b" && o.preset != "9b") throw std::invalid_argument("--preset must be 2b or 9b");
  for (const auto& w : o.weights)
    if (w != "f32" && w != "bf16" && w != "int8") throw std::invalid_argument("--weights: '" + w + "' is not f32, bf16 or int8");
  if (o.prompt == 0 || o.decode == 0) throw std::invalid_argument("--prompt and --decode must be positive");
  return o;
}

// The limits of one thread count, measured up front.
struct machine {
  double bandwidth, peak_f32, peak_bf16, peak_int16, peak_amx, peak_amx_int8;
};

// The peak that prefill with weights of type w is compared with (see the
// top), the one rule: AMX tiles where matmul uses them for the weight type,
// else bf16 or int16 dot products where the build has them, else f32 FMA.
enum class prefill_peak { f32, bf16_dot, int16_dot, amx, amx_int8 };
prefill_peak prefill_peak_of(const std::string& w, const machine& l) {
  if (w == "bf16" && l.peak_amx > 0) return prefill_peak::amx;
  if (w == "int8" && l.peak_amx_int8 > 0) return prefill_peak::amx_int8;
  if (w == "bf16" && has_bf16_dot) return prefill_peak::bf16_dot;
  if (w == "int8" && has_int16_dot) return prefill_peak::int16_dot;
  return prefill_peak::f32;
}

// That peak from the machine line.
double peak_for(const std::string& w, const machine& l) {
  switch (prefill_peak_of(w, l)) {
    case prefill_peak::amx: return l.peak_amx;
    case prefill_peak::amx_int8: return l.peak_amx_int8;
    case prefill_peak::bf16_dot: return l.peak_bf16;
    case prefill_peak::int16_dot: return l.peak_int16;
    case prefill_peak::f32: break;
  }
  return l.peak_f32;
}

// That peak measured again now, on `pool`.
double measure_peak_for(const std::string& w, const machine& l, griffin::thread_pool& pool) {
  switch (prefill_peak_of(w, l)) {
    case prefill_peak::amx: return measure_amx_peak(pool);
    case prefill_peak::amx_int8: return measure_amx_peak<true>(pool);
    case prefill_peak::bf16_dot:
      if constexpr (has_bf16_dot) return measure_peak<arithmetic::bf16>(pool);
      break;
    case prefill_peak::int16_dot:
      if constexpr (has_int16_dot) return measure_peak<arithmetic::int16>(pool);
      break;
    case prefill_peak::f32: break;
  }
  return measure_peak<arithmetic::f32>(pool);
}

griffin::dtype weight_type(const std::string& w) {
  return w == "f32" ? griffin::dtype::f32 : w == "bf16" ? griffin::dtype::bf16 : griffin::dtype::i8;
}

}  // namespace

int main(int argc, char** argv) try {
  using namespace griffin;
  const options opt = parse(argc, argv);
  config cfg = opt.preset == "2b" ? recurrentgemma_2b::make_config() : recurrentgemma_9b::make_config();
  if (opt.layers) cfg.block_types.resize(opt.layers);
  const std::size_t attention_layers = static_cast<std::size_t>(
      std::count(cfg.block_types.begin(), cfg.block_types.end(), block_kind::attention));

  std::printf("griffin-bench: RecurrentGemma-%s shape (%zu blocks %s, width %zu, vocab %zu), random weights\n",
              opt.preset.c_str(), cfg.block_types.size(), cfg.pattern().substr(0, 12).c_str(), cfg.width,
              cfg.vocab_size);
  if (!opt.gemv_prefetch.empty())
    kernels::set_gemv_prefetch({opt.gemv_prefetch[0], opt.gemv_prefetch[1], opt.gemv_prefetch[2]});
  const auto pf = kernels::gemv_prefetch();
  std::printf("prompt %zu tokens, then %zu decode steps at batch 1; decode rows prefetch (bytes ahead) bf16 %zu, int8 %zu and %zu far\n\n",
              opt.prompt, opt.decode, pf.l2_bf16, pf.l2_int8, pf.far_int8);

  auto t0 = clock_type::now();
  weight_reader reader(fast_random_weights(1));
  model<> m(cfg, reader);
  std::printf("weights generated in %.1f s\n", seconds_since(t0));

  // FLOPs of one prefill: every matrix product per token (the logits for the
  // last token only) plus the attention over the keys each query sees.
  std::size_t matmul_params = 0;
  for (const auto& p : parameters(cfg))
    if (p.shape.size() >= 2 && p.name != "embedder.input_embedding" && p.name.find("rg_lru") == std::string::npos)
      matmul_params += element_count(p.shape);
  double keys_seen = 0.0;
  for (std::size_t t = 0; t < opt.prompt; ++t) keys_seen += static_cast<double>(std::min(t + 1, cfg.attention_window_size + 1));
  const double head_dim = static_cast<double>(cfg.head_dim()), heads = static_cast<double>(cfg.num_heads);
  const double rg_lru_params = 2.0 * static_cast<double>(cfg.lru_width) * static_cast<double>(cfg.lru_width / cfg.num_heads) *
                               static_cast<double>(cfg.block_types.size() - attention_layers);
  const double prefill_flops = 2.0 * (static_cast<double>(matmul_params) + rg_lru_params) * static_cast<double>(opt.prompt) +
                               2.0 * static_cast<double>(cfg.vocab_size * cfg.width) +
                               4.0 * heads * head_dim * keys_seen * static_cast<double>(attention_layers);

  const aligned_vector<float> bandwidth_buffer(bandwidth_bytes / sizeof(float), 1.0f);
  std::vector<machine> limits;
  for (std::size_t threads : opt.threads) {
    thread_pool pool(threads);
    machine l{measure_bandwidth(pool, bandwidth_buffer), measure_peak<arithmetic::f32>(pool), 0.0, 0.0, measure_amx_peak(pool),
              measure_amx_peak<true>(pool)};
    if constexpr (has_bf16_dot) l.peak_bf16 = measure_peak<arithmetic::bf16>(pool);
    if constexpr (has_int16_dot) l.peak_int16 = measure_peak<arithmetic::int16>(pool);
    limits.push_back(l);
    std::printf("machine, %zu thread%s: read bandwidth %.1f GB/s, peak GFLOP/s: f32 FMA %.0f", threads, threads == 1 ? "" : "s",
                l.bandwidth / 1e9, l.peak_f32 / 1e9);
    if (has_bf16_dot) std::printf(", bf16 dot %.0f", l.peak_bf16 / 1e9);
    if (has_int16_dot) std::printf(", int16 dot %.0f", l.peak_int16 / 1e9);
    if (l.peak_amx > 0) std::printf(", bf16 AMX %.0f (bf16 prefill runs on AMX)", l.peak_amx / 1e9);
    if (l.peak_amx_int8 > 0) std::printf(", int8 AMX %.0f (int8 prefill runs on AMX, two byte products a product)", l.peak_amx_int8 / 1e9);
    std::printf("%s\n", has_bf16_dot ? "" : has_int16_dot ? " (bf16 weights multiply with f32 FMA here)" : " (bf16 and int8 weights multiply with f32 FMA here)");
  }
  std::puts("");
  std::printf("%-6s %-7s %10s %12s %10s %12s %12s %10s %10s\n", "weights", "threads", "weight GB", "prefill t/s",
              "% peak", "decode t/s", "roofline t/s", "% roofline", "best/best");

  std::vector<std::int32_t> prompt(opt.prompt);
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<std::int32_t>((i * 7919 + 13) % cfg.vocab_size);
  const tensor<std::int32_t> prompt_tokens({1, opt.prompt}, prompt);

  for (const auto& w : opt.weights) {
    m.convert_weights(weight_type(w));
    for (std::size_t i = 0; i < opt.threads.size(); ++i) {
      m.set_threads(opt.threads[i]);
      auto st = m.make_state(1);
      (void)m.decode(st, std::vector<std::int32_t>{1});  // warm up: pages, buffers, threads
      // The prompt is prefilled three times, each from a fresh state, and
      // the median taken: one cold prefill on the shared machine moved by
      // a fifth between runs. The decode continues from the last.
      // After each run the peak it is compared with is measured again on
      // the same threads, and the highest of these and the machine line's
      // is taken: once a peak measured in a slow spell of the shared
      // machine (half its speed for a second) put a prefill at "152%".
      thread_pool one_thread(1);
      thread_pool& pass_pool = m.pool() ? *m.pool() : one_thread;
      std::vector<double> prefill_runs;
      tensor<float> logits;
      double peak = peak_for(w, limits[i]);
      for (int run = 0; run < 3; ++run) {
        st = m.make_state(1);
        t0 = clock_type::now();
        logits = m.prefill(st, prompt_tokens);
        prefill_runs.push_back(seconds_since(t0));
        peak = std::max(peak, measure_peak_for(w, limits[i], pass_pool));
      }
      const double prefill_s = median(prefill_runs);

      // Each decode step is followed by one bandwidth pass on the same
      // threads, so the roofline is measured in the same minutes as the
      // steps it is compared with (the shared machine's bandwidth drifts by a
      // quarter between runs); both sides are taken as medians.
      std::vector<double> step_s, pass_s;
      for (std::size_t step = 0; step < opt.decode; ++step) {
        const auto v = logits.values();
        const auto next = static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
        t0 = clock_type::now();
        m.decode(st, std::span<const std::int32_t>(&next, 1), logits);
        step_s.push_back(seconds_since(t0));
        pass_s.push_back(read_pass(pass_pool, bandwidth_buffer));
      }

      const double kv_bytes = static_cast<double>(attention_layers) * 2.0 * head_dim * sizeof(float) *
                              static_cast<double>(std::min(opt.prompt + opt.decode / 2, cfg.attention_window_size));
      const double bytes_per_token = static_cast<double>(m.weight_bytes()) + kv_bytes;
      const double bandwidth = static_cast<double>(bandwidth_bytes) / median(pass_s);
      const double roofline = bandwidth / bytes_per_token;
      const double decode_tps = 1.0 / median(step_s);
      const double best_ratio = (1.0 / *std::min_element(step_s.begin(), step_s.end())) /
                                (static_cast<double>(bandwidth_bytes) / *std::min_element(pass_s.begin(), pass_s.end()) /
                                 bytes_per_token);
      const double prefill_tps = static_cast<double>(opt.prompt) / prefill_s;
      std::printf("%-7s %-7zu %10.2f %12.1f %9.0f%% %12.2f %12.2f %9.0f%% %9.0f%%\n", w.c_str(), opt.threads[i],
                  static_cast<double>(m.weight_bytes()) / 1e9, prefill_tps, 100.0 * prefill_flops / prefill_s / peak,
                  decode_tps, roofline, 100.0 * decode_tps / roofline, 100.0 * best_ratio);
      std::fflush(stdout);
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "griffin-bench: %s\n", e.what());
  return 2;
}
