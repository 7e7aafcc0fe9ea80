// Google Benchmark of griffin's kernels at RecurrentGemma-2B sizes
// (width 2560, heads 10), reporting bytes/s of weights streamed (GEMV is
// memory-bound) and FLOP/s.
//
//   griffin_bench_kernels --benchmark_filter=matmul
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <benchmark/benchmark.h>
#include <griffin/griffin.hpp>

namespace {

// Buffers are 64-byte aligned as the model's own are (a misaligned weight
// stream splits every load over two cache lines).
griffin::aligned_vector<float> filled(std::size_t n, float v = 0.01f) { return griffin::aligned_vector<float>(n, v); }

// Weights of type T for an N x K matrix (small random values; int8 with scales).
template <class T>
griffin::aligned_vector<T> weights_of(std::size_t n) {
  griffin::aligned_vector<T> w(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float v = 0.01f * static_cast<float>(static_cast<int>(i % 201) - 100) / 100.0f;
    if constexpr (std::is_same_v<T, float>) w[i] = v;
    else if constexpr (std::is_same_v<T, griffin::bfloat16>) w[i] = {griffin::float_to_bf16(v)};
    else w[i] = static_cast<std::int8_t>(i % 255) ;
  }
  return w;
}

// y [M, N] = x [M, K] w^T with w out x in, stored as T, on `threads` threads:
// M = 1 is a decode step's GEMV, 512 a prefill chunk. Counters: weight bytes
// streamed per second (the decode roofline's measure) and FLOP/s.
// misalign: the weights start that many bytes past a cache line, as a tensor
// memory-mapped from a safetensors file usually does.
// in_out: the weights stored [in, out] (K x N), as the checkpoints store the
// MLP's ffw_up (gate and up), used in place.
template <class T, std::size_t misalign = 0, bool in_out = false>
void bm_matmul(benchmark::State& state) {
  const auto M = static_cast<std::size_t>(state.range(0)), N = static_cast<std::size_t>(state.range(1)),
             K = static_cast<std::size_t>(state.range(2)), threads = static_cast<std::size_t>(state.range(3));
  const auto x = filled(M * K), b = filled(N), scale = filled(N, 0.001f);
  const auto w = weights_of<T>(N * K + misalign);
  griffin::aligned_vector<float> y(M * N);
  griffin::thread_pool pool(threads);
  const float* sv = std::is_same_v<T, std::int8_t> ? scale.data() : nullptr;
  const auto wv = in_out ? griffin::kernels::in_out(w.data() + misalign / sizeof(T), N, K, sv)
                         : griffin::kernels::out_in(w.data() + misalign / sizeof(T), N, K, sv);
  for (auto _ : state) {
    griffin::kernels::matmul({x.data(), M, K, K}, wv, b.data(), griffin::kernels::dense(y.data(), M, N), false, &pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["weight_bytes/s"] =
      benchmark::Counter(static_cast<double>(N * K * sizeof(T)), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(M * N * K), benchmark::Counter::kIsIterationInvariantRate);
}
void matmul_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  for (long threads : {1, 2})
    for (auto [M, N, K] : {std::array<long, 3>{1, 2560, 2560}, {1, 65536, 2560}, {1, 7680, 2560}, {1, 2560, 7680}, {8, 7680, 2560},
                           {64, 7680, 2560}, {512, 2560, 2560}, {512, 7680, 2560}})
      b->Args({M, N, K, threads});
  b->UseRealTime();
}
BENCHMARK(bm_matmul<float>)->Apply(matmul_args);
BENCHMARK(bm_matmul<griffin::bfloat16>)->Apply(matmul_args);
BENCHMARK(bm_matmul<std::int8_t>)->Apply(matmul_args);
void decode_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  for (long threads : {1, 2}) b->Args({1, 65536, 2560, threads});
  b->UseRealTime();
}
BENCHMARK(bm_matmul<griffin::bfloat16, 16>)->Apply(decode_args);
// Batched decode: one step of M sequences through the MLP's widest matrix,
// from the memory-bound GEMV (M = 1) to where the packed GEMM takes over.
void batch_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  for (long M : {1, 2, 4, 8, 12, 16, 24, 32, 64, 128}) b->Args({M, 7680, 2560, 2});
  b->UseRealTime();
}
BENCHMARK(bm_matmul<griffin::bfloat16>)->Name("bm_matmul_batch<bfloat16>")->Apply(batch_args);
BENCHMARK(bm_matmul<std::int8_t>)->Name("bm_matmul_batch<int8_t>")->Apply(batch_args);
BENCHMARK(bm_matmul<float>)->Name("bm_matmul_batch<float>")->Apply(batch_args);
// [in, out] weights (the MLP's gate and up): a decode step and a 512-token prefill chunk.
void in_out_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  for (long threads : {1, 2})
    for (long M : {1, 512}) b->Args({M, 7680, 2560, threads});
  b->UseRealTime();
}
BENCHMARK(bm_matmul<float, 0, true>)->Name("bm_matmul_in_out<float>")->Apply(in_out_args);
BENCHMARK(bm_matmul<griffin::bfloat16, 0, true>)->Name("bm_matmul_in_out<bfloat16>")->Apply(in_out_args);
BENCHMARK(bm_matmul<std::int8_t, 0, true>)->Name("bm_matmul_in_out<int8_t>")->Apply(in_out_args);
// The same from memory: a matrix far larger than the last-level cache (the
// 7680 x 2560 one may stay there between iterations), as a model's weights
// are each step; few tokens per weight make the stream, not FLOPs, the limit.
void stream_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  for (long M : {1, 4, 8, 16, 32, 64}) b->Args({M, 65536, 2560, 2});
  b->UseRealTime();
}
BENCHMARK(bm_matmul<griffin::bfloat16>)->Name("bm_matmul_stream<bfloat16>")->Apply(stream_args);
BENCHMARK(bm_matmul<std::int8_t>)->Name("bm_matmul_stream<int8_t>")->Apply(stream_args);

// Multi-query attention of one batch row on one thread: T queries of H heads
// (head dim hd) over n cached keys and values, the ~1B MQA model's shape of
// the paper's Figure 4 (16 heads of 128). T = 1 is a decode step at context
// n, T = 16 one query chunk of a prefill. Counters: key/value bytes read per
// second and FLOP/s (q.k and p.v, 4 H hd per visible key).
void bm_attention(benchmark::State& state) {
  const auto T = static_cast<std::size_t>(state.range(0)), n = static_cast<std::size_t>(state.range(1)),
             H = static_cast<std::size_t>(state.range(2)), hd = static_cast<std::size_t>(state.range(3));
  const auto q = filled(T * H * hd), k = filled(T * hd), v = filled(T * hd), pk = filled(n * hd), pv = filled(n * hd);
  std::vector<std::int32_t> pos(T);
  for (std::size_t t = 0; t < T; ++t) pos[t] = static_cast<std::int32_t>(n + t);
  griffin::aligned_vector<float> out(T * H * hd), scores(H * (n + T));
  const griffin::kernels::kv_history past{pk.data(), pv.data(), n, 0, n, hd};
  for (auto _ : state) {
    griffin::kernels::attention({q.data(), k.data(), v.data(), pos.data(), past, out.data(), scores.data(), T, H, hd,
                                 static_cast<std::size_t>(-1)});
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["kv_bytes/s"] =
      benchmark::Counter(static_cast<double>(2 * (n + T) * hd * sizeof(float)), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * static_cast<double>(T * H * hd) * static_cast<double>(n + T),
                                                benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(bm_attention)
    ->ArgNames({"T", "n", "H", "hd"})
    ->Args({1, 512, 16, 128})
    ->Args({1, 4096, 16, 128})
    ->Args({16, 4096, 16, 128})
    ->Args({1, 2048, 10, 256});

// The RG-LRU scan over T steps of E channels.
void bm_rg_lru(benchmark::State& state) {
  const auto T = static_cast<std::size_t>(state.range(0)), E = std::size_t{2560};
  const auto x = filled(T * E), gx = filled(T * E), ga = filled(T * E), scale = filled(E, -1.0f);
  std::vector<std::int32_t> pos(T);
  for (std::size_t t = 0; t < T; ++t) pos[t] = static_cast<std::int32_t>(t + 1);
  std::vector<float> h(E), y(T * E);
  for (auto _ : state) {
    griffin::kernels::rg_lru({x.data(), gx.data(), ga.data(), scale.data(), pos.data(), h.data(), y.data(), E, T, E});
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["steps/s"] = benchmark::Counter(static_cast<double>(T * E), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(bm_rg_lru)->Arg(1)->Arg(512);

void bm_conv1d(benchmark::State& state) {
  const auto T = static_cast<std::size_t>(state.range(0)), E = std::size_t{2560}, tw = std::size_t{4};
  const auto x = filled(T * E), w = filled(tw * E), b = filled(E), hist = filled((tw - 1) * E);
  std::vector<std::int32_t> pos(T);
  for (std::size_t t = 0; t < T; ++t) pos[t] = static_cast<std::int32_t>(t + 1);
  std::vector<float> out(T * E);
  for (auto _ : state) {
    griffin::kernels::conv1d({x.data(), E, hist.data(), pos.data(), w.data(), b.data(), out.data(), E, T, E, tw});
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes/s"] = benchmark::Counter(static_cast<double>(2 * T * E * sizeof(float)), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(bm_conv1d)->Arg(1)->Arg(512);

void bm_rms_norm(benchmark::State& state) {
  const std::size_t D = 2560;
  const auto x = filled(D), scale = filled(D);
  std::vector<float> y(D);
  for (auto _ : state) {
    griffin::kernels::rms_norm(x.data(), scale.data(), y.data(), D);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["bytes/s"] = benchmark::Counter(static_cast<double>(3 * D * sizeof(float)), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(bm_rms_norm);

}  // namespace
