// Properties that tie the three ways of running a model together, on random
// weights and several schedules: a full pass, a prefill, chunked prefills and
// decode steps agree; a document start is a fresh state; rows are
// independent; Hawk and Griffin states do not grow.
#include <fstream>
#include <vector>

#include "test_util.hpp"

using namespace ::griffin;
using griffin_test::max_abs_diff;
using griffin_test::random_tokens;
using griffin_test::rng;
using griffin_test::small_config;

namespace {

using griffin_test::r_, griffin_test::a_, griffin_test::g_;

const std::vector<std::vector<block_kind>> patterns = {
    {r_, r_, r_},          // Hawk
    {r_, r_, a_, r_},      // Griffin
    {g_, g_},              // MQA Transformer
    {a_, r_, r_, r_},      // a custom hybrid
    {r_, g_, a_},          // everything at once
};

// Logits [B, T, V] of row b, position t.
std::span<const float> at(const tensor<float>& logits, std::size_t b, std::size_t t) {
  const std::size_t T = logits.extent(1), V = logits.extent(2);
  return logits.values().subspan((b * T + t) * V, V);
}

tensor<std::int32_t> slice(const tensor<std::int32_t>& x, std::size_t from, std::size_t to) {
  const std::size_t B = x.extent(0), T = x.extent(1);
  tensor<std::int32_t> out({B, to - from});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = from; t < to; ++t) out(b, t - from) = x.data()[b * T + t];
  return out;
}

// Positions 0 .. T-1 in every row.
tensor<std::int32_t> positions(std::size_t B, std::size_t T) {
  tensor<std::int32_t> p({B, T});
  for (std::size_t i = 0; i < B * T; ++i) p.data()[i] = static_cast<std::int32_t>(i % T);
  return p;
}

}  // namespace

TEST_CASE("prefill then decode equals the full pass, for every prefill length") {
  rng r(21);
  for (const auto& blocks : patterns) {
    const auto cfg = small_config(blocks, /*window=*/5);
    CAPTURE(cfg.pattern());
    const auto m = model<>::random(cfg, 1234);
    const std::size_t B = 3, T = 13;
    const auto tokens = random_tokens(r, B, T, cfg.vocab_size);
    const auto full = m.forward(tokens);
    for (std::size_t P : {1u, 4u, 6u, 12u}) {
      CAPTURE(P);
      const auto got = detail::prefill_then_decode(m, tokens, positions(B, T), P);
      CHECK(max_abs_diff(got.values(), full.values()) <= 1e-4f);
    }
  }
}

TEST_CASE("prefill in chunks equals one prefill, and positions continue") {
  rng r(22);
  for (const auto& blocks : patterns) {
    const auto cfg = small_config(blocks, 4);
    CAPTURE(cfg.pattern());
    const auto m = model<>::random(cfg, 99);
    const std::size_t B = 2, T = 15;
    const auto tokens = random_tokens(r, B, T, cfg.vocab_size);
    const auto full = m.forward(tokens);
    for (std::size_t chunk : {1u, 3u, 7u}) {
      CAPTURE(chunk);
      auto st = m.make_state(B);
      for (std::size_t from = 0; from < T; from += chunk) {
        const std::size_t to = std::min(T, from + chunk);
        const auto logits = m.prefill(st, slice(tokens, from, to), logits_for::all_positions);
        for (std::size_t b = 0; b < B; ++b)
          for (std::size_t t = from; t < to; ++t)
            CHECK(max_abs_diff(at(logits, b, t - from), at(full, b, t)) <= 1e-4f);
      }
      CHECK(st.positions()[0] == static_cast<std::int32_t>(T));
    }
  }
}

TEST_CASE("a document start equals a fresh state: in a full pass, a prefill and a decode") {
  rng r(23);
  for (const auto& blocks : patterns) {
    const auto cfg = small_config(blocks, 4);
    CAPTURE(cfg.pattern());
    const auto m = model<>::random(cfg, 7);
    const std::size_t first = 6, second = 8, T = first + second;
    const auto tokens = random_tokens(r, 1, T, cfg.vocab_size);
    tensor<std::int32_t> pos({1, T});
    for (std::size_t t = 0; t < T; ++t) pos(0, t) = static_cast<std::int32_t>(t < first ? t + 3 : t - first);
    const auto doc2 = slice(tokens, first, T);
    const auto alone = m.forward(doc2);

    // full pass over both documents
    const auto both = m.forward(tokens, pos);
    for (std::size_t t = 0; t < second; ++t) CHECK(max_abs_diff(at(both, 0, first + t), at(alone, 0, t)) <= 1e-5f);

    // one prefill over both documents, then decode: the state holds only the second
    {
      auto st = m.make_state(1);
      const auto pre = m.prefill(st, slice(tokens, 0, T - 2), slice(pos, 0, T - 2), logits_for::all_positions);
      for (std::size_t t = first; t < T - 2; ++t)
        CHECK(max_abs_diff(pre.values().subspan(t * cfg.vocab_size, cfg.vocab_size), at(alone, 0, t - first)) <= 1e-4f);
      for (std::size_t t = T - 2; t < T; ++t) {
        const auto step = m.decode(st, std::vector<std::int32_t>{tokens(0, t)});
        CHECK(max_abs_diff(step.values(), at(alone, 0, t - first)) <= 1e-4f);
      }
    }

    // decode the first document, reset the row, decode the second
    {
      auto st = m.make_state(1);
      for (std::size_t t = 0; t < first; ++t) (void)m.decode(st, std::vector<std::int32_t>{tokens(0, t)});
      st.reset(0);
      CHECK(st.positions()[0] == 0);
      for (std::size_t t = 0; t < second; ++t) {
        const auto step = m.decode(st, std::vector<std::int32_t>{doc2(0, t)});
        CHECK(max_abs_diff(step.values(), at(alone, 0, t)) <= 1e-4f);
      }
    }
  }
}

TEST_CASE("batch rows are independent") {
  rng r(24);
  const auto cfg = small_config({r_, a_, g_}, 3);
  const auto m = model<>::random(cfg, 5);
  const auto tokens = random_tokens(r, 3, 9, cfg.vocab_size);
  const auto batched = m.forward(tokens);
  for (std::size_t b = 0; b < 3; ++b) {
    const auto row = m.forward(tensor<std::int32_t>({1, 9}, tokens.values().subspan(b * 9, 9)));
    CHECK(max_abs_diff(row.values(), batched.values().subspan(b * 9 * cfg.vocab_size, 9 * cfg.vocab_size)) <= 1e-5f);
  }
}

TEST_CASE("Hawk and Griffin decode states keep their size; a global cache grows") {
  rng r(25);
  for (const auto& [blocks, constant] : std::vector<std::pair<std::vector<block_kind>, bool>>{
           {{r_, r_}, true}, {{r_, r_, a_}, true}, {{g_, g_}, false}}) {
    auto cfg = small_config(blocks, 4);
    const auto m = model<>::random(cfg, 3);
    auto st = m.make_state(2);
    std::vector<std::size_t> sizes;
    for (int step = 0; step < 40; ++step) {
      (void)m.decode(st, std::vector<std::int32_t>{static_cast<std::int32_t>(r.below(cfg.vocab_size)), 3});
      sizes.push_back(st.bytes());
    }
    CAPTURE(cfg.pattern());
    if (constant) {
      CHECK(sizes.front() == sizes.back());
      CHECK(sizes.front() > 0);
    } else {
      CHECK(sizes.back() > sizes.front());
      // 2 rows x 2 layers x (key + value) x head_dim floats per step
      CHECK(sizes[39] - sizes[38] == 2 * 2 * 2 * cfg.head_dim() * sizeof(float));
    }
  }
}

TEST_CASE("local attention with a window covering the sequence is global attention") {
  rng r(26);
  const auto local_cfg = small_config({a_, r_, a_}, 64);
  auto global_cfg = local_cfg;
  global_cfg.block_types = {g_, r_, g_};
  const auto weights = random_weights(local_cfg, 8);
  const model<> local(local_cfg, weights), global(global_cfg, weights);
  const model<pattern<"G R G">> compiled(local_cfg, weights);  // G runs a config "attention" block
  const auto tokens = random_tokens(r, 2, 20, local_cfg.vocab_size);
  const auto a = local.forward(tokens), b = global.forward(tokens), c = compiled.forward(tokens);
  CHECK(max_abs_diff(a.values(), b.values()) == 0.0f);
  CHECK(max_abs_diff(a.values(), c.values()) == 0.0f);
}

TEST_CASE("random weights: the generator and a written checkpoint give the same model") {
  const auto cfg = small_config({r_, a_}, 4);
  const auto source = random_weights(cfg, 77);
  griffin_test::temp_dir tmp("random");
  write_safetensors(tmp.path() / "weights.safetensors", source.records());
  std::ofstream(tmp.path() / "config.json") << config_to_json(cfg).dump(2);
  const auto loaded = model<>::load(tmp.path());
  const auto generated = model<>::random(cfg, 77);
  const auto other_seed = model<>::random(cfg, 78);
  rng r(27);
  const auto tokens = random_tokens(r, 1, 7, cfg.vocab_size);
  CHECK(max_abs_diff(loaded.forward(tokens).values(), generated.forward(tokens).values()) == 0.0f);
  CHECK(max_abs_diff(loaded.forward(tokens).values(), other_seed.forward(tokens).values()) > 1e-3f);
  CHECK(loaded.weight_bytes() == generated.weight_bytes());
}

TEST_CASE("static and dynamic schedules compute the same function") {
  const auto cfg = small_config({a_, r_, r_, r_}, 3);
  const auto weights = random_weights(cfg, 4);
  const model<> dynamic(cfg, weights);
  const model<pattern<"A R R R">> compiled(cfg, weights);
  rng r(28);
  const auto tokens = random_tokens(r, 2, 11, cfg.vocab_size);
  CHECK(max_abs_diff(dynamic.forward(tokens).values(), compiled.forward(tokens).values()) == 0.0f);
  auto s1 = dynamic.make_state(2);
  auto s2 = compiled.make_state(2);
  (void)dynamic.prefill(s1, tokens);
  (void)compiled.prefill(s2, tokens);
  CHECK(s1.bytes() == s2.bytes());
  const std::vector<std::int32_t> next{1, 2};
  CHECK(max_abs_diff(dynamic.decode(s1, next).values(), compiled.decode(s2, next).values()) == 0.0f);
}

TEST_CASE("decode into a reused logits tensor equals decode returning one, whatever the tensor held") {
  const auto cfg = small_config({r_, r_, a_}, 4);
  const auto m = model<>::random(cfg, 5);
  rng r(31);
  tensor<float> reused({7, 3}, 123.0f);  // another shape, stale values
  for (const std::size_t B : {std::size_t{2}, std::size_t{1}, std::size_t{3}}) {
    auto s1 = m.make_state(B), s2 = m.make_state(B);
    for (int step = 0; step < 3; ++step) {
      std::vector<std::int32_t> tokens(B);
      for (auto& t : tokens) t = static_cast<std::int32_t>(r.below(cfg.vocab_size));
      const auto fresh = m.decode(s1, tokens);
      const float* before = reused.data();
      m.decode(s2, tokens, reused);
      CAPTURE(B);
      REQUIRE(reused.rank() == 2);
      CHECK(reused.extent(0) == B);
      CHECK(reused.extent(1) == cfg.vocab_size);
      CHECK(max_abs_diff(reused.values(), fresh.values()) == 0.0f);
      if (step > 0) CHECK(reused.data() == before);  // same shape: the storage is kept
    }
  }
  // A bad token is refused before the tensor or the state change.
  auto st = m.make_state(1);
  const std::vector<float> kept(reused.values().begin(), reused.values().end());
  CHECK_THROWS_AS(m.decode(st, std::vector<std::int32_t>{-1}, reused), input_error);
  CHECK(reused.extent(0) == 3);
  CHECK(std::equal(kept.begin(), kept.end(), reused.data()));
}
