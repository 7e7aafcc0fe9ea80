// Threads and weight types: the thread pool itself, results that do not
// depend on the thread count, and weights converted to bf16 / int8 staying
// within their documented distance of the golden (f32) vectors.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace ::griffin;
using griffin_test::max_abs_diff;

TEST_CASE("thread_pool runs every task once, rethrows, and runs nested or concurrent jobs inline") {
  thread_pool pool(3);
  CHECK(pool.size() == 3);
  for (std::size_t tasks : {0u, 1u, 2u, 3u, 7u, 100u}) {
    std::vector<std::atomic<int>> hits(tasks);
    pool.run(tasks, [&](std::size_t t) { hits[t].fetch_add(1); });
    for (auto& h : hits) CHECK(h.load() == 1);
  }
  CHECK_THROWS_WITH_AS(pool.run(5, [](std::size_t t) { if (t == 3) throw std::runtime_error("task 3"); }), "task 3",
                       std::runtime_error);
  // A task that calls run again gets its sub-tasks inline; nothing deadlocks.
  std::atomic<int> inner{0};
  pool.run(4, [&](std::size_t) { pool.run(3, [&](std::size_t) { inner.fetch_add(1); }); });
  CHECK(inner.load() == 12);
  // Two application threads sharing the pool.
  std::atomic<int> total{0};
  auto work = [&] {
    for (int i = 0; i < 200; ++i) pool.run(4, [&](std::size_t) { total.fetch_add(1); });
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  CHECK(total.load() == 2 * 200 * 4);
}

// Jobs back to back with changing task counts: a worker leaving the last
// job's take_tasks must not claim against the next job's count. Before the
// fix a pool of 2 ran a task twice, then waited forever, within ~10^5 such
// jobs (every run of a 3 x 10^6 loop hung); a hang ends the test binary here
// after a minute instead of at CI's timeout.
TEST_CASE("thread_pool runs jobs back to back with changing task counts, each task once") {
  thread_pool pool(2);
  constexpr long jobs = 600'000;
  std::atomic<long> wrong{0}, finished{-1};
  std::thread run_all([&] {
    for (long j = 0; j < jobs; ++j) {
      const std::size_t tasks = 2 + static_cast<std::size_t>(j % 3) * 3;  // 2, 5, 8
      std::array<std::atomic<int>, 8> hits{};
      pool.run(tasks, [&](std::size_t t) { hits[t].fetch_add(1, std::memory_order_relaxed); });
      for (std::size_t t = 0; t < hits.size(); ++t) wrong += hits[t].load() != (t < tasks ? 1 : 0);
    }
    finished = jobs;
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (finished.load() < 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (finished.load() < 0) {
    std::fprintf(stderr, "thread_pool: back-to-back jobs did not finish within a minute (a lost task count); exiting\n");
    std::_Exit(1);
  }
  run_all.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("thread_pool::run_shares covers a range once in whole grains, and a fast thread takes over a slow one's share") {
  for (std::size_t threads : {2u, 3u}) {
    thread_pool pool(threads);
    for (auto [n, grain, piece] : {std::array<std::size_t, 3>{1, 4, 1}, {10, 4, 1}, {1000, 4, 3}, {1001, 32, 2}, {5000, 1, 64}}) {
      CAPTURE(threads);
      CAPTURE(n);
      std::vector<std::atomic<int>> hits(n);
      std::atomic<bool> ok{true};
      pool.run_shares(n, grain, piece, [&](std::size_t b, std::size_t e) {
        if (b >= e || e > n || b % grain != 0 || (e != n && e % grain != 0) || e - b > piece * grain) ok = false;
        for (std::size_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      CHECK(ok.load());
      for (auto& h : hits) CHECK(h.load() == 1);
    }
  }
  thread_pool pool(2);
  // The worker thread sleeps in every piece: the calling thread finishes its
  // own share and then most of the worker's.
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<std::size_t> by_caller{0};
  std::vector<std::atomic<int>> hits(400);
  pool.run_shares(400, 1, 1, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) hits[i].fetch_add(1);
    if (std::this_thread::get_id() == caller) by_caller += e - b;
    else std::this_thread::sleep_for(std::chrono::milliseconds(2));
  });
  CHECK(by_caller.load() > 300);
  for (auto& h : hits) CHECK(h.load() == 1);
  // Inside a job (and so from a second application thread while one runs),
  // the whole range is one inline call.
  std::atomic<int> calls{0};
  pool.run(2, [&](std::size_t) { pool.run_shares(100, 1, 1, [&](std::size_t b, std::size_t e) { calls += b == 0 && e == 100; }); });
  CHECK(calls.load() == 2);
  CHECK_THROWS_WITH_AS(pool.run_shares(100, 1, 1, [](std::size_t b, std::size_t) { if (b == 70) throw std::runtime_error("piece 70"); }),
                       "piece 70", std::runtime_error);
}

TEST_CASE("parallel_pieces covers rows once in grain-aligned pieces; threaded transform, sliced RG-LRU and conv1d give one call's bits") {
  thread_pool pool(3);
  for (auto [rows, width, grain, min_piece] :
       {std::array<std::size_t, 4>{1, 1, 16, 1}, {1, 1000, 16, 16}, {3, 1003, 16, 64}, {7, 40, 8, 1}, {2, 5000, 1, 100000}}) {
    CAPTURE(rows);
    CAPTURE(width);
    std::vector<std::atomic<int>> hits(rows * width);
    std::atomic<bool> ok{true};
    std::atomic<std::size_t> calls{0};
    parallel_pieces(&pool, rows, width, grain, min_piece, [&](std::size_t r, std::size_t b, std::size_t e) {
      if (r >= rows || b >= e || e > width || b % grain != 0 || (e != width && e - b < min_piece)) ok = false;
      for (std::size_t i = b; i < e; ++i) hits[r * width + i].fetch_add(1);
      ++calls;
    });
    CHECK(ok.load());
    for (auto& h : hits) CHECK(h.load() == 1);
    CHECK(calls.load() >= rows);
    if (min_piece >= width) CHECK(calls.load() == rows);  // rows whole
  }
  // No pool: each row whole, inline.
  std::size_t calls = 0;
  parallel_pieces(nullptr, 4, 100, 16, 1, [&](std::size_t, std::size_t b, std::size_t e) { calls += b == 0 && e == 100; });
  CHECK(calls == 4);

  // A transform and an RG-LRU scan shared out over the pool (widths not a
  // multiple of the SIMD width, so there are scalar tails) against one call.
  using A = default_arch;
  griffin_test::rng r(3);
  const std::size_t n = 100003;
  const std::vector<float> x = r.floats(n, 4.0f), y = r.floats(n, 4.0f);
  std::vector<float> one(n), many(n);
  kernels::transform<A>(x.data(), one.data(), n, kernels::gelu_tanh_fn{});
  kernels::transform<A>(&pool, x.data(), many.data(), n, kernels::gelu_tanh_fn{});
  CHECK(max_abs_diff(one, many) == 0.0f);
  kernels::transform<A>(x.data(), y.data(), one.data(), n, kernels::multiplies_fn{});
  kernels::transform<A>(&pool, x.data(), y.data(), many.data(), n, kernels::multiplies_fn{});
  CHECK(max_abs_diff(one, many) == 0.0f);

  const std::size_t T = 33, E = 1003;
  const std::vector<float> xs = r.floats(T * E), gx = r.floats(T * E, 3.0f), ga = r.floats(T * E, 3.0f), h0 = r.floats(E);
  std::vector<float> scale(E), h_one, h_many, y_one(T * E), y_many(T * E);
  for (float& s : scale) s = -8.0f * std::log1p(std::exp(r.uniform()));
  std::vector<std::int32_t> pos(T);
  for (std::size_t t = 0; t < T; ++t) pos[t] = static_cast<std::int32_t>(t < 20 ? t + 5 : t - 20);  // a reset at t = 20
  h_one = h0;
  h_many = h0;
  kernels::rg_lru<A>({xs.data(), gx.data(), ga.data(), scale.data(), pos.data(), h_one.data(), y_one.data(), E, T, E});
  const kernels::rg_lru_args whole{xs.data(), gx.data(), ga.data(), scale.data(), pos.data(), h_many.data(), y_many.data(), E, T, E};
  std::atomic<std::size_t> slices{0};
  parallel_pieces(&pool, 1, E, kernels::lanes<A>, 1, [&](std::size_t, std::size_t c0, std::size_t c1) {
    kernels::rg_lru<A>(kernels::rg_lru_channels(whole, c0, c1));
    ++slices;
  });
  CHECK(slices.load() > 1);
  CHECK(max_abs_diff(y_one, y_many) == 0.0f);
  CHECK(max_abs_diff(h_one, h_many) == 0.0f);

  // conv1d by slices of channels: the same, with a history and a document
  // start (pos[20] = 0) inside the chunk; the scalar reference sliced too.
  const std::size_t tw = 4;
  const std::vector<float> hist = r.floats((tw - 1) * E), cw = r.floats(tw * E), cb = r.floats(E);
  std::vector<float> c_one(T * E), c_many(T * E), s_one(T * E), s_many(T * E);
  const kernels::conv1d_args conv{xs.data(), E, hist.data(), pos.data(), cw.data(), cb.data(), c_one.data(), E, T, E, tw};
  kernels::conv1d<A>(conv);
  kernels::conv1d_args sliced = conv;
  sliced.out = c_many.data();
  parallel_pieces(&pool, 1, E, kernels::lanes<A>, 1, [&](std::size_t, std::size_t c0, std::size_t c1) {
    kernels::conv1d<A>(kernels::conv1d_channels(sliced, c0, c1));
  });
  CHECK(max_abs_diff(c_one, c_many) == 0.0f);
  kernels::conv1d_args scalar = conv;
  scalar.out = s_one.data();
  kernels::conv1d_scalar(scalar);
  scalar.out = s_many.data();
  for (std::size_t c0 = 0; c0 < E; c0 += 100) kernels::conv1d_scalar(kernels::conv1d_channels(scalar, c0, std::min(E, c0 + 100)));
  CHECK(max_abs_diff(s_one, s_many) == 0.0f);
  CHECK(max_abs_diff(s_one, c_one) < 1e-5f);
}

TEST_CASE("logits do not depend on the thread count, in decode and in a prefill long enough for the packed GEMM") {
  const auto dir = griffin_test::golden_dir("griffin_tiny");
  auto m = model<>::load(dir);
  for (dtype type : {dtype::f32, dtype::bf16, dtype::i8}) {
    CAPTURE(dtype_name(type));
    m.convert_weights(type);
    griffin_test::rng r(5);
    const auto tokens = griffin_test::random_tokens(r, 2, 40, m.cfg().vocab_size);
    m.set_threads(1);
    CHECK(m.threads() == 1);
    const auto one = m.forward(tokens);
    auto st1 = m.make_state(2);
    const auto d1 = m.decode(st1, std::vector<std::int32_t>{3, 4});
    m.set_threads(2);
    CHECK(m.threads() == 2);
    const auto two = m.forward(tokens);
    auto st2 = m.make_state(2);
    const auto d2 = m.decode(st2, std::vector<std::int32_t>{3, 4});
    CHECK(max_abs_diff(one.values(), two.values()) == 0.0f);
    CHECK(max_abs_diff(d1.values(), d2.values()) == 0.0f);
  }
}

TEST_CASE("attention split over threads by rows, query chunks and head groups gives the one-thread logits") {
  // Big enough for the attention block to use the pool: 4 heads of 64,
  // 70-token prompts (5 query chunks) in 3 rows, one with a document start
  // inside; then batched decode steps (head groups) over local and global
  // attention, with a window the prompts overrun.
  for (const std::string pattern : {"RRA", "G"}) {
    CAPTURE(pattern);
    config c;
    c.vocab_size = 64;
    c.width = 256;
    c.mlp_expanded_width = 512;
    c.num_heads = 4;
    c.lru_width = 256;
    c.attention_window_size = 48;
    for (char ch : pattern)
      c.block_types.push_back(ch == 'R' ? block_kind::recurrent : ch == 'A' ? block_kind::attention : block_kind::global_attention);
    auto m = model<>::random(c, 11);
    griffin_test::rng r(8);
    auto tokens = griffin_test::random_tokens(r, 3, 70, c.vocab_size);
    std::vector<tensor<float>> runs;
    for (std::size_t threads : {1u, 2u, 3u}) {
      m.set_threads(threads);
      auto st = m.make_state(3);
      tensor<std::int32_t> positions({3, 70});
      for (std::size_t b = 0; b < 3; ++b)
        for (std::size_t t = 0; t < 70; ++t) positions.values()[b * 70 + t] = static_cast<std::int32_t>(b == 1 && t >= 30 ? t - 30 : t);
      tensor<float> all = m.prefill(st, tokens, positions, logits_for::all_positions);
      std::vector<float> values(all.values().begin(), all.values().end());
      const tensor<float> stateless = m.forward(tokens);  // the scan from zero states, without a state
      values.insert(values.end(), stateless.values().begin(), stateless.values().end());
      for (int step = 0; step < 3; ++step) {
        const auto d = m.decode(st, std::vector<std::int32_t>{1, 2, static_cast<std::int32_t>(step)});
        values.insert(values.end(), d.values().begin(), d.values().end());
      }
      runs.emplace_back(std::vector<std::size_t>{values.size()}, values);
    }
    CHECK(max_abs_diff(runs[0].values(), runs[1].values()) == 0.0f);
    CHECK(max_abs_diff(runs[0].values(), runs[2].values()) == 0.0f);
  }
}

TEST_CASE("a matrix converted in x out keeps its map: bf16 and f16 elements rounded in place of the floats") {
  // 3 in x 5 out, stored in x out like the RG-LRU's gates.
  aligned_vector<float> values(15);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.1f * static_cast<float>(i) - 0.7f + 1e-3f;
  const auto f32 = weight_matrix::from_floats(values, 5, 3, weight_layout::in_out);
  for (dtype to : {dtype::bf16, dtype::f16, dtype::f32}) {
    CAPTURE(dtype_name(to));
    const auto m = f32.converted(to, weight_layout::in_out);
    CHECK(m.type() == to);
    CHECK(m.layout() == weight_layout::in_out);
    CHECK(m.out() == 5);
    CHECK(m.in() == 3);
    CHECK(m.bytes() == 15 * dtype_size(to));
    const auto out_in = f32.converted(to);  // the same elements stored the other way round
    for (std::size_t n = 0; n < 5; ++n)
      for (std::size_t k = 0; k < 3; ++k) {
        const float v = values[k * 5 + n];
        CHECK(m.element(n, k) == (to == dtype::bf16 ? round_to_bf16(v) : to == dtype::f16 ? f16_to_float(float_to_f16(v)) : v));
        CHECK(m.element(n, k) == out_in.element(n, k));
      }
    // Rows of the in x out storage are inputs: a block of them maps those inputs to every output.
    const auto block = m.rows(1, 2);
    CHECK(block.in() == 2);
    CHECK(block.element(4, 0) == m.element(4, 1));
  }
  CHECK_THROWS_AS((void)f32.converted(dtype::i8, weight_layout::in_out), std::invalid_argument);
}

TEST_CASE("convert_weights stores the RG-LRU gates as bf16 under bf16 and int8, and as f32 again under f32") {
  const auto dir = griffin_test::golden_dir("hawk_tiny");
  auto m = model<>::load(dir);
  const config& c = m.cfg();
  // Elements (and int8 output channels) of the linear layers and the
  // embedding, and elements of the gates, from the parameter list (biases,
  // ffw_up.b [2, F] among them, and the conv1d taps keep f32).
  std::size_t linear_elements = 0, linear_outputs = 0, gate_elements = 0;
  for (const auto& p : parameters(c)) {
    const std::size_t n = element_count(p.shape);
    if (p.name.find("gate.w") != std::string::npos && p.name.find("rg_lru") != std::string::npos) {
      gate_elements += n;
    } else if (p.shape.size() >= 2 && p.name.find("conv_1d") == std::string::npos && !p.name.ends_with(".b")) {
      linear_elements += n;
      linear_outputs += p.shape.size() == 3 ? p.shape[0] * p.shape[2] : p.shape[0];  // ffw_up.w [2, D, F]: in x out
    }
  }
  REQUIRE(gate_elements == 2 * c.lru_width * (c.lru_width / c.num_heads) * c.block_types.size());
  const std::size_t f32_bytes = m.weight_bytes();
  m.convert_weights(dtype::bf16);
  CHECK(f32_bytes - m.weight_bytes() == 2 * (linear_elements + gate_elements));
  const std::size_t bf16_bytes = m.weight_bytes();
  m.convert_weights(dtype::i8);  // the gates stay bf16
  CHECK(bf16_bytes - m.weight_bytes() == linear_elements - 4 * linear_outputs);
  m.convert_weights(dtype::f32);
  CHECK(m.weight_bytes() == f32_bytes);
}

TEST_CASE("weights converted to bf16 and int8 stay within their documented distance of the golden vectors") {
  for (const std::string name : {"griffin_tiny", "hawk_tiny", "mqa_tiny"}) {
    CAPTURE(name);
    const auto dir = griffin_test::golden_dir(name);
    auto m = model<>::load(dir);
    const std::size_t f32_bytes = m.weight_bytes();
    m.convert_weights(dtype::bf16);
    float bf16_worst = 0.0f;
    for (const auto& e : check_conformance(m, dir).entries) bf16_worst = std::max(bf16_worst, e.max_abs_error);
    const std::size_t bf16_bytes = m.weight_bytes();
    m.convert_weights(dtype::i8);
    float int8_worst = 0.0f;
    for (const auto& e : check_conformance(m, dir).entries) int8_worst = std::max(int8_worst, e.max_abs_error);
    const std::string summary = std::string(name) + ": worst error bf16 " + std::to_string(bf16_worst) + ", int8 " + std::to_string(int8_worst);
    MESSAGE(summary);
    CHECK(bf16_worst > 1e-4f);  // not f32 any more: the check could fail
    // The bounds docs/09-performance.md states (measured: bf16 0.029 / 0.046 /
    // 0.037, int8 0.084 / 0.18 / 0.095 for griffin / hawk / mqa tiny).
    CHECK(bf16_worst <= 0.06f);
    CHECK(int8_worst <= 0.25f);
    CHECK(bf16_bytes < f32_bytes);
    CHECK(m.weight_bytes() < bf16_bytes);
  }
}

TEST_CASE("int8 matmul propagates a non-finite activation instead of a silently wrong number") {
  const std::vector<std::int8_t> w{1, 2, 3, 4, 5, 6};
  const float scale[2] = {0.5f, 0.25f};
  for (std::size_t M : {1u, 20u}) {  // gemv and gemm paths
    std::vector<float> x(M * 3, 1.0f), y(M * 2, 0.0f);
    x[1] = std::numeric_limits<float>::infinity();
    kernels::matmul(kernels::dense<const float>(x.data(), M, 3), kernels::out_in(w.data(), 2, 3, scale), nullptr,
                    kernels::dense(y.data(), M, 2));
    CHECK(std::isnan(y[0]));
    CHECK(std::isnan(y[1]));
    if (M > 1) CHECK(y[2] == doctest::Approx(0.5f * 6.0f));  // the other rows are fine
  }
}
