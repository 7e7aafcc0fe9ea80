// Sampling (greedy, temperature, top-k, top-p; seeded, per-row streams) and
// generate (batched prompts of different lengths, stop tokens, length limit,
// streaming callback, the state it leaves).
#include <cmath>
#include <map>
#include <numeric>
#include <vector>

#include "test_util.hpp"

using namespace ::griffin;
using griffin_test::contains;
using griffin_test::max_abs_diff;
using griffin_test::message_of;
using griffin_test::rng;
using griffin_test::small_config;

namespace {

using griffin_test::r_, griffin_test::a_;

std::vector<float> log_probs(std::vector<double> p) {
  std::vector<float> out;
  for (double v : p) out.push_back(static_cast<float>(std::log(v)));
  return out;
}

std::map<std::int32_t, double> frequencies(sampler& s, const std::vector<float>& logits, int draws) {
  std::map<std::int32_t, double> f;
  for (int i = 0; i < draws; ++i) f[s.sample(logits)] += 1.0 / draws;
  return f;
}

std::int32_t argmax(std::span<const float> v) {
  return static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

TEST_CASE("greedy takes the first largest logit") {
  sampler s;
  CHECK(s.sample(std::vector<float>{0.5f, 2.0f, -1.0f, 2.0f}) == 1);
  sampler k1({.temperature = 1.0f, .top_k = 1});
  CHECK(k1.sample(std::vector<float>{0.5f, 2.0f, 3.0f}) == 2);
}

TEST_CASE("temperature sampling follows softmax(logits / T)") {
  const auto logits = log_probs({0.1, 0.2, 0.3, 0.4});
  sampler s({.temperature = 1.0f, .seed = 3});
  auto f = frequencies(s, logits, 40000);
  for (int i = 0; i < 4; ++i) CHECK(std::abs(f[i] - 0.1 * (i + 1)) < 0.015);
  // T = 0.5 squares the probabilities (renormalised): 1, 4, 9, 16 over 30.
  sampler cold({.temperature = 0.5f, .seed = 4});
  f = frequencies(cold, logits, 40000);
  for (int i = 0; i < 4; ++i) CHECK(std::abs(f[i] - (i + 1) * (i + 1) / 30.0) < 0.015);
}

TEST_CASE("top-k and top-p keep the most likely tokens, renormalised") {
  const auto logits = log_probs({0.1, 0.3, 0.2, 0.4});
  sampler k2({.temperature = 1.0f, .top_k = 2, .seed = 5});
  auto f = frequencies(k2, logits, 40000);
  CHECK(f.size() == 2);
  CHECK(std::abs(f[3] - 4.0 / 7.0) < 0.015);
  CHECK(std::abs(f[1] - 3.0 / 7.0) < 0.015);
  // top_p 0.5: 0.4 alone is short of it, 0.4 + 0.3 reaches it.
  sampler p5({.temperature = 1.0f, .top_p = 0.5f, .seed = 6});
  f = frequencies(p5, logits, 40000);
  CHECK(f.size() == 2);
  CHECK(std::abs(f[3] - 4.0 / 7.0) < 0.015);
  // top_p 0.35: the most likely token alone.
  sampler p35({.temperature = 1.0f, .top_p = 0.35f, .seed = 7});
  f = frequencies(p35, logits, 1000);
  CHECK(f.size() == 1);
  CHECK(f.count(3) == 1);
  // Both: top_k first, then top_p within it.
  sampler both({.temperature = 1.0f, .top_k = 3, .top_p = 0.6f, .seed = 8});
  f = frequencies(both, logits, 20000);
  CHECK(f.size() == 2);
}

TEST_CASE("top-p over a large vocabulary draws exactly from the nucleus") {
  rng r(43);
  for (float p : {0.05f, 0.5f, 0.97f}) {
    CAPTURE(p);
    const auto logits = r.floats(3000, 2.0f);
    // The nucleus by brute force: sort everything, accumulate softmax mass.
    std::vector<std::size_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0u);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return logits[a] > logits[b]; });
    const float top = logits[order[0]];
    double mass = 0.0;
    for (float l : logits) mass += std::exp(static_cast<double>(l - top));
    std::vector<bool> in_nucleus(logits.size(), false);
    double cumulative = 0.0;
    std::size_t size = 0;
    for (std::size_t i : order) {
      in_nucleus[i] = true;
      ++size;
      if ((cumulative += std::exp(static_cast<double>(logits[i] - top))) >= p * mass) break;
    }
    sampler s({.temperature = 1.0f, .top_p = p, .seed = 13});
    std::map<std::int32_t, int> seen;
    for (int i = 0; i < 4000; ++i) {
      const auto t = s.sample(logits);
      REQUIRE(in_nucleus[static_cast<std::size_t>(t)]);
      ++seen[t];
    }
    CHECK(seen.size() >= std::min<std::size_t>(size, 4000) / 2);  // spread over it, not stuck on a few
  }
}

TEST_CASE("seeded: the same seed gives the same tokens, rows have their own streams") {
  rng r(41);
  const auto logits = r.floats(1000, 3.0f);
  const sampling cfg{.temperature = 0.9f, .top_k = 50, .top_p = 0.95f, .seed = 11};
  sampler a(cfg, 3), b(cfg, 3), c({.temperature = 0.9f, .top_k = 50, .top_p = 0.95f, .seed = 12}, 3), one(cfg, 2);
  std::vector<std::int32_t> ta, tb, tc, t_one;
  for (int i = 0; i < 200; ++i) {
    ta.push_back(a.sample(logits, 1));
    tb.push_back(b.sample(logits, 1));
    tc.push_back(c.sample(logits, 1));
    t_one.push_back(one.sample(logits, 1));
    (void)a.sample(logits, 0);  // other rows' draws do not move row 1's stream
  }
  CHECK(ta == tb);
  CHECK(ta == t_one);
  CHECK(ta != tc);
}

TEST_CASE("sampling settings and logits that make no sense are refused") {
  CHECK(contains(message_of<std::invalid_argument>([] { sampler({.temperature = -1.0f}); }), "temperature"));
  CHECK(contains(message_of<std::invalid_argument>([] { sampler({.temperature = NAN}); }), "temperature"));
  CHECK(contains(message_of<std::invalid_argument>([] { sampler({.top_p = 0.0f}); }), "top_p"));
  CHECK(contains(message_of<std::invalid_argument>([] { sampler({.top_p = 1.5f}); }), "top_p"));
  sampler s({.temperature = 1.0f});
  CHECK(contains(message_of<std::invalid_argument>([&] { s.sample(std::vector<float>{1.0f, NAN}); }), "logit 1 is NaN"));
  CHECK(contains(message_of<std::invalid_argument>([&] { s.sample(std::vector<float>{-INFINITY, -INFINITY}); }), "-inf"));
  CHECK(contains(message_of<std::invalid_argument>([&] { s.sample(std::vector<float>{}); }), "no logits"));
  CHECK(contains(message_of<std::out_of_range>([&] { s.sample(std::vector<float>{1.0f}, 1); }), "row 1 of 1"));
  CHECK(s.sample(std::vector<float>{-INFINITY, 0.0f, -INFINITY}) == 1);
}

TEST_CASE("generate: greedy equals a hand-written decode loop, rows of different lengths alike") {
  const auto cfg = small_config({r_, r_, a_}, 4);
  const auto m = model<>::random(cfg, 90);
  const std::vector<std::vector<std::int32_t>> prompts{{3, 14, 15, 9, 2, 6}, {5}, {35, 8, 9}};
  const generation_options opt{.max_new_tokens = 7};

  auto st = m.make_state(3);
  std::vector<std::pair<std::size_t, std::int32_t>> streamed;
  const auto out = generate(m, st, prompts, opt, [&](std::size_t row, std::int32_t t) {
    streamed.emplace_back(row, t);
    return true;
  });
  CHECK(out.prompt_tokens == 10);
  CHECK(out.generated_tokens == 21);
  for (std::size_t b = 0; b < 3; ++b) {
    CAPTURE(b);
    // The same row alone, by hand.
    auto one = m.make_state(1);
    auto logits = m.prefill(one, tensor<std::int32_t>({1, prompts[b].size()}, prompts[b]));
    std::vector<std::int32_t> expected;
    for (int i = 0; i < 7; ++i) {
      expected.push_back(argmax(logits.values()));
      logits = m.decode(one, std::vector<std::int32_t>{expected.back()});
    }
    CHECK(out.tokens[b] == expected);
    CHECK(out.finish[b] == finish_reason::max_new_tokens);
    // The state holds prompt + every generated token.
    CHECK(st.positions()[b] == static_cast<std::int32_t>(prompts[b].size() + 7));
    std::vector<std::int32_t> in_order;
    for (auto [row, t] : streamed)
      if (row == b) in_order.push_back(t);
    CHECK(in_order == expected);
  }
}

TEST_CASE("generate: stop tokens and the callback end a row; its state is as it ended") {
  const auto cfg = small_config({r_, a_}, 8);
  const auto m = model<>::random(cfg, 91);
  const std::vector<std::vector<std::int32_t>> prompts{{1, 2, 3}, {4, 5, 6}};
  const sampling sample{.temperature = 1.0f, .seed = 9};  // row 0 draws the same stream in both runs
  auto probe = m.make_state(2);
  const auto free_run = generate(m, probe, prompts, {.max_new_tokens = 12, .sample = sample});

  // Stop row 0 at the first token it has not produced before (index i >= 1): it reports i.
  auto st = m.make_state(2);
  const auto& run0 = free_run.tokens[0];
  std::size_t i = 1;
  while (i < run0.size() && std::find(run0.begin(), run0.begin() + static_cast<std::ptrdiff_t>(i), run0[i]) !=
                                run0.begin() + static_cast<std::ptrdiff_t>(i))
    ++i;
  REQUIRE(i < run0.size());
  const std::int32_t stop = run0[i];
  const auto out = generate(m, st, prompts, {.max_new_tokens = 12, .stop_tokens = {stop}, .sample = sample},
                            [](std::size_t row, std::int32_t) {
    return row != 1;  // row 1 stops after its first token
  });
  CHECK(out.finish[0] == finish_reason::stop_token);
  CHECK(out.tokens[0] == std::vector<std::int32_t>(run0.begin(), run0.begin() + static_cast<std::ptrdiff_t>(i)));
  CHECK(out.finish[1] == finish_reason::callback);
  CHECK(out.tokens[1].size() == 1);
  CHECK(st.positions()[0] == static_cast<std::int32_t>(3 + i));  // the stop token is not in the state
  CHECK(st.positions()[1] == 4);

  // Continuing the state equals prefilling prompt + generated tokens afresh.
  for (std::size_t b = 0; b < 2; ++b) {
    auto fresh = m.make_state(1);
    auto all = prompts[b];
    all.insert(all.end(), out.tokens[b].begin(), out.tokens[b].end());
    (void)m.prefill(fresh, tensor<std::int32_t>({1, all.size()}, all));
    auto row = m.make_state(1);
    row.restore(0, st.save(b));
    const auto expected = m.decode(fresh, std::vector<std::int32_t>{7});
    const auto got = m.decode(row, std::vector<std::int32_t>{7});
    CHECK(max_abs_diff(got.values(), expected.values()) <= 1e-4f);
  }
}

TEST_CASE("generate: seeded sampling is reproducible, and bad calls change nothing") {
  const auto cfg = small_config({r_, r_}, 4);
  const auto m = model<>::random(cfg, 92);
  const std::vector<std::vector<std::int32_t>> prompts{{1, 2}, {3, 4, 5}};
  const generation_options opt{.max_new_tokens = 10, .sample = {.temperature = 1.0f, .top_p = 0.9f, .seed = 3}};
  auto s1 = m.make_state(2), s2 = m.make_state(2);
  CHECK(generate(m, s1, prompts, opt).tokens == generate(m, s2, prompts, opt).tokens);

  auto st = m.make_state(2);
  const auto before = st.save();
  CHECK(contains(message_of<input_error>([&] { generate(m, st, {{1}}, opt); }), "1 prompts for a state of 2 rows"));
  CHECK(contains(message_of<input_error>([&] { generate(m, st, {{1}, {}}, opt); }), "prompt of row 1 is empty"));
  CHECK(contains(message_of<input_error>([&] { generate(m, st, {{1}, {2, 999}}, opt); }), "token 999 at row 1, position 1"));
  CHECK(contains(message_of<input_error>([&] { generate(m, st, {{1}, {2}}, {.max_new_tokens = 0}); }), "max_new_tokens"));
  CHECK(st.save() == before);
}
