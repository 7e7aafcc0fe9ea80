// Saved sessions (state::save / restore, model::load_state): a restored
// state continues bit for bit where the saved one would have, for every
// block kind, whole or one row at a time, across static and dynamic
// schedules; its size is reported and constant for Hawk and Griffin; bytes
// that do not fit raise session_error and leave the state untouched.
#include <vector>

#include "test_util.hpp"

using namespace ::griffin;
namespace g = ::griffin;
#include <cstring>
using griffin_test::contains;
using griffin_test::message_of;
using griffin_test::random_tokens;
using griffin_test::rng;
using griffin_test::small_config;

namespace {

using griffin_test::r_, griffin_test::a_, griffin_test::g_;

// Logits of `steps` decode steps of tokens drawn from `seed`, concatenated.
template <class M>
std::vector<float> continue_decoding(const M& m, typename M::state& st, std::uint64_t seed, std::size_t steps) {
  rng r(seed);
  std::vector<float> out;
  for (std::size_t i = 0; i < steps; ++i) {
    std::vector<std::int32_t> tokens(st.batch());
    for (auto& t : tokens) t = static_cast<std::int32_t>(r.below(m.cfg().vocab_size));
    const auto logits = m.decode(st, tokens);
    out.insert(out.end(), logits.values().begin(), logits.values().end());
  }
  return out;
}

}  // namespace

TEST_CASE("a restored state continues exactly as the saved one") {
  rng r(31);
  for (const auto& blocks : std::vector<std::vector<block_kind>>{{r_, r_, r_}, {r_, r_, a_, r_}, {g_, g_}, {r_, g_, a_}}) {
    const auto cfg = small_config(blocks, /*window=*/5);
    CAPTURE(cfg.pattern());
    const auto m = model<>::random(cfg, 77);
    auto st = m.make_state(3);
    (void)m.prefill(st, random_tokens(r, 3, 9, cfg.vocab_size));  // 9 > window: the ring buffers have wrapped
    st.reset(2);                                                     // one row at a document start
    const auto bytes = st.save();

    auto expected_state = m.make_state(3);
    expected_state.restore(bytes);
    const auto expected = continue_decoding(m, st, 5, 7);

    SUBCASE("into a new state") {
      auto loaded = m.load_state(bytes);
      CHECK(loaded.batch() == 3);
      CHECK(std::vector<std::int32_t>(loaded.positions().begin(), loaded.positions().end()) ==
            std::vector<std::int32_t>{9, 9, 0});
      CHECK(continue_decoding(m, loaded, 5, 7) == expected);
    }
    SUBCASE("over a state that has moved on") {
      CHECK(continue_decoding(m, expected_state, 5, 7) == expected);
      expected_state.restore(bytes);
      CHECK(continue_decoding(m, expected_state, 5, 7) == expected);
    }
    SUBCASE("a saved state saves the same bytes") { CHECK(m.load_state(bytes).save() == bytes); }
  }
}

TEST_CASE("one row moves between states and batch sizes") {
  rng r(32);
  const auto cfg = small_config({r_, a_, g_}, 4);
  const auto m = model<>::random(cfg, 78);
  auto st = m.make_state(2);
  (void)m.prefill(st, random_tokens(r, 2, 6, cfg.vocab_size));
  const auto row1 = st.save(1);

  // Row 1 decoded on its own ...
  auto single = m.make_state(1);
  single.restore(0, row1);
  CHECK(single.positions()[0] == 6);
  const auto alone = continue_decoding(m, single, 9, 5);
  // ... equals row 1 moved into row 2 of a batch of 3 whose other rows hold something else.
  auto three = m.make_state(3);
  (void)m.prefill(three, random_tokens(r, 3, 3, cfg.vocab_size));
  three.restore(2, row1);
  CHECK(std::vector<std::int32_t>(three.positions().begin(), three.positions().end()) == std::vector<std::int32_t>{3, 3, 6});
  CHECK(three.save(2) == row1);
  rng tokens(9);
  for (std::size_t i = 0; i < 5; ++i) {
    const auto t = static_cast<std::int32_t>(tokens.below(cfg.vocab_size));
    const auto logits = m.decode(three, std::vector<std::int32_t>{1, 2, t});
    const auto got = logits.values().subspan(2 * cfg.vocab_size, cfg.vocab_size);
    // Rows of a batch agree with a batch of one to rounding (batch rows are independent).
    CHECK(griffin_test::max_abs_diff(got, std::span<const float>(alone).subspan(i * cfg.vocab_size, cfg.vocab_size)) <= 1e-5f);
  }
}

TEST_CASE("sessions move between a compiled schedule and the dynamic one") {
  rng r(33);
  const auto cfg = small_config(block_kinds<g::griffin<3>>(), 4);
  const auto dynamic_model = model<>::random(cfg, 79);
  const auto compiled_model = model<g::griffin<3>>::random(cfg, 79);
  auto st = compiled_model.make_state(1);
  (void)compiled_model.prefill(st, random_tokens(r, 1, 7, cfg.vocab_size));
  auto moved = dynamic_model.load_state(st.save());
  CHECK(continue_decoding(dynamic_model, moved, 4, 4) == continue_decoding(compiled_model, st, 4, 4));
}

TEST_CASE("saved size: constant for Hawk and Griffin, growing with a global cache") {
  rng r(34);
  for (const auto& [blocks, constant] : std::vector<std::pair<std::vector<block_kind>, bool>>{
           {{r_, r_}, true}, {{r_, r_, a_}, true}, {{g_, g_}, false}}) {
    const auto cfg = small_config(blocks, 4);
    CAPTURE(cfg.pattern());
    const auto m = model<>::random(cfg, 80);
    auto st = m.make_state(1);
    std::vector<std::size_t> sizes;
    for (int step = 0; step < 12; ++step) {
      (void)m.decode(st, std::vector<std::int32_t>{static_cast<std::int32_t>(r.below(cfg.vocab_size))});
      sizes.push_back(st.save().size());
    }
    if (constant) {
      // Hawk from the first token; Griffin once the window (4) is full.
      CHECK(sizes[4] == sizes.back());
      if (blocks.back() == r_) CHECK(sizes.front() == sizes.back());
    } else {
      // 2 layers x (key + value) x head_dim floats per token
      CHECK(sizes[11] - sizes[10] == 2 * 2 * cfg.head_dim() * sizeof(float));
    }
    // What is saved is the state: its floats and a header of tens of bytes.
    CHECK(sizes.back() >= st.bytes() - 2 * sizeof(std::size_t));
  }
}

TEST_CASE("bytes that do not fit raise session_error and leave the state as it was") {
  rng r(35);
  const auto cfg = small_config({r_, a_, g_}, 3);
  const auto m = model<>::random(cfg, 81);
  auto source = m.make_state(2);
  (void)m.prefill(source, random_tokens(r, 2, 5, cfg.vocab_size));
  const auto bytes = source.save();

  auto target = m.make_state(2);
  (void)m.prefill(target, random_tokens(r, 2, 2, cfg.vocab_size));
  const auto before = target.save();
  auto untouched = [&] { CHECK(target.save() == before); };

  SUBCASE("every truncation") {
    for (std::size_t n = 0; n < bytes.size(); n += (n < 64 ? 1 : 37)) {
      CAPTURE(n);
      const auto msg = message_of<session_error>([&] { target.restore(std::span(bytes).first(n)); });
      CHECK(contains(msg, "session: "));
      untouched();
    }
  }
  SUBCASE("trailing bytes") {
    auto longer = bytes;
    longer.push_back(std::byte{0});
    CHECK(contains(message_of<session_error>([&] { target.restore(longer); }), "trailing bytes"));
    untouched();
  }
  SUBCASE("not a session") {
    auto bad = bytes;
    bad[0] = std::byte{'X'};
    CHECK(contains(message_of<session_error>([&] { target.restore(bad); }), "magic"));
    untouched();
  }
  SUBCASE("another batch size") {
    auto three = m.make_state(3);
    CHECK(contains(message_of<session_error>([&] { three.restore(bytes); }), "row count is 2, the receiving state has 3"));
    CHECK(contains(message_of<session_error>([&] { target.restore(0, bytes); }), "row count is 2, the receiving state has 1"));
  }
  SUBCASE("another schedule") {
    const auto other = model<>::random(small_config({r_, g_, a_}, 3), 81);
    auto st = other.make_state(2);
    CHECK(contains(message_of<session_error>([&] { st.restore(bytes); }), "layer 1 is 'A', the receiving model's is 'G'"));
  }
  SUBCASE("another width or window") {
    auto wider_cfg = cfg;
    wider_cfg.lru_width = 64;
    auto wider = model<>::random(wider_cfg, 81).make_state(2);
    CHECK(contains(message_of<session_error>([&] { wider.restore(bytes); }), "recurrent block width is 48"));
    auto window_cfg = cfg;
    window_cfg.attention_window_size = 4;
    auto windowed = model<>::random(window_cfg, 81).make_state(2);
    CHECK(contains(message_of<session_error>([&] { windowed.restore(bytes); }), "attention window is 3"));
  }
  SUBCASE("a corrupted count") {
    // Row 0's local attention count sits after the header (24 bytes), the
    // row's position and token count (12), the R layer (1 + 16 + floats)
    // and the A layer's kind, window and head dim (1 + 16).
    const std::size_t E = cfg.lru_width, H = cfg.conv1d_temporal_width - 1;
    const std::size_t at = 24 + 12 + 1 + 16 + (H * E + E) * sizeof(float) + 1 + 16;
    auto bad = bytes;
    const std::uint64_t huge = 1000;
    std::memcpy(bad.data() + at, &huge, sizeof huge);
    CHECK(contains(message_of<session_error>([&] { target.restore(bad); }), "cached tokens 1000 exceed the window 3"));
    untouched();
  }
  SUBCASE("a row that does not exist") {
    CHECK(contains(message_of<input_error>([&] { (void)target.save(2); }), "row 2 of a batch of 2"));
    CHECK(contains(message_of<input_error>([&] { target.restore(5, source.save(0)); }), "row 5 of a batch of 2"));
  }
  SUBCASE("load_state of nonsense") {
    CHECK(contains(message_of<session_error>([&] { (void)m.load_state({}); }), "truncated reading magic"));
    auto zero_rows = bytes;
    std::memset(zero_rows.data() + 16, 0, 8);
    CHECK(contains(message_of<session_error>([&] { (void)m.load_state(zero_rows); }), "row count 0"));
  }
}
