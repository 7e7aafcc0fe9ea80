// Google Benchmark of griffin's kernels at RecurrentGemma-2B sizes
// (width 2560, heads 10), reporting bytes/s of weights streamed (GEMV is
// memory-bound) and FLOP/s.
//
//   griffin_bench_kernels --benchmark_filter=matmul
#include <vector>

#include <benchmark/benchmark.h>
#include <griffin/griffin.hpp>

namespace {

std::vector<float> filled(std::size_t n, float v = 0.01f) { return std::vector<float>(n, v); }

// y [M, N] = x [M, K] w^T: M = 1 is a decode step's GEMV, larger M a batch or a prefill chunk.
void bm_matmul(benchmark::State& state) {
  const auto M = static_cast<std::size_t>(state.range(0)), N = static_cast<std::size_t>(state.range(1)),
             K = static_cast<std::size_t>(state.range(2));
  const auto x = filled(M * K), w = filled(N * K), b = filled(N);
  std::vector<float> y(M * N);
  for (auto _ : state) {
    griffin::kernels::matmul({x.data(), M, K, K}, griffin::kernels::dense(w.data(), N, K), b.data(),
                             griffin::kernels::dense(y.data(), M, N));
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["weight_bytes/s"] =
      benchmark::Counter(static_cast<double>(N * K * sizeof(float)), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(M * N * K), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(bm_matmul)->Args({1, 2560, 2560})->Args({1, 7680, 2560})->Args({8, 2560, 2560})->Args({64, 2560, 2560});

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
