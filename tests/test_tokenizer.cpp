// The SentencePiece tokenizer, streaming text and the Gemma chat format, on
// a tiny model the build trains with spm_train (tests/CMakeLists.txt), and a
// two-turn chat through generate on a random model of that vocabulary.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <griffin/tokenizer.hpp>

#include "test_util.hpp"

using namespace ::griffin;
using griffin_test::contains;
using griffin_test::message_of;
using griffin_test::small_config;

namespace {

const std::filesystem::path spm_dir = GRIFFIN_TEST_SPM_DIR;

const tokenizer& tok() {
  static const tokenizer t = tokenizer::from_model_dir(spm_dir);
  return t;
}

}  // namespace

TEST_CASE("tokenizer: text round-trips, special ids are Gemma's") {
  const auto& t = tok();
  CHECK(t.vocab_size() >= 300);
  CHECK(t.bos_id() == 2);
  CHECK(t.eos_id() == 1);
  for (const std::string text : {"The model reads the next token quickly.", "Héllo wörld, ça va? ✓ 日本",
                                 "two  spaces and\nnew lines", ""}) {
    CAPTURE(text);
    const auto ids = t.encode(text);
    CHECK(t.decode(ids) == text);
    for (auto id : ids) CHECK((id >= 0 && static_cast<std::size_t>(id) < t.vocab_size()));
  }
  CHECK(t.encode("the model").size() < std::string("the model").size());  // it learnt pieces
  CHECK(t.has_piece("<end_of_turn>"));
  CHECK_FALSE(t.has_piece("<no such piece>"));
  CHECK(t.encode("<start_of_turn>") == std::vector<std::int32_t>{t.piece_id("<start_of_turn>")});
}

TEST_CASE("tokenizer: text_stream gives the decoded text piece by piece, whole characters only") {
  const auto& t = tok();
  const std::string text = "Grüße aus Zürich: the state keeps ✓ its hidden state.";
  const auto ids = t.encode(text);
  text_stream stream(t);
  std::string joined;
  for (auto id : ids) {
    const std::string part = stream.push(id);
    // Never a partial UTF-8 character: each part is valid on its own.
    for (std::size_t i = 0; i < part.size();) {
      const auto c = static_cast<unsigned char>(part[i]);
      const std::size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
      REQUIRE(i + n <= part.size());
      i += n;
    }
    joined += part;
  }
  joined += stream.finish();
  CHECK(joined == text);
  CHECK(stream.finish().empty());
}

TEST_CASE("tokenizer: a missing directory, file or piece, a bad file, a bad id") {
  CHECK(contains(message_of<tokenizer_error>([] { (void)tokenizer::from_model_dir("/no/such/dir"); }), "no directory /no/such/dir"));
  const auto empty = std::filesystem::temp_directory_path() / "griffin_test_no_tokenizer";
  std::filesystem::create_directories(empty);
  CHECK(contains(message_of<tokenizer_error>([&] { (void)tokenizer::from_model_dir(empty); }), "has no tokenizer.model"));
  std::ofstream(empty / "tokenizer.model") << "not a sentencepiece model";
  CHECK(contains(message_of<tokenizer_error>([&] { (void)tokenizer::from_model_dir(empty); }), "cannot load"));
  std::filesystem::remove_all(empty);
  CHECK(contains(message_of<tokenizer_error>([] { (void)tok().piece_id("<no such piece>"); }), "no piece <no such piece>"));
  CHECK(contains(message_of<tokenizer_error>([] { (void)tok().decode(std::vector<std::int32_t>{5, 100000}); }),
                 "id 100000 at 1 is outside the vocabulary"));
}

TEST_CASE("gemma_chat: turns in Gemma's format; a two-turn chat continues its state") {
  const auto& t = tok();
  const auto first = gemma_chat::user_turn(t, "Hi there", true);
  CHECK(first.front() == t.bos_id());
  CHECK(first[1] == t.piece_id("<start_of_turn>"));
  CHECK(t.decode(first) == "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n");
  const auto second = gemma_chat::user_turn(t, "And now?", false);
  CHECK(second.front() == t.piece_id("<end_of_turn>"));
  CHECK(t.decode(second) == "<end_of_turn>\n<start_of_turn>user\nAnd now?<end_of_turn>\n<start_of_turn>model\n");
  CHECK(gemma_chat::stop_tokens(t) == std::vector<std::int32_t>{t.piece_id("<end_of_turn>"), 1});

  // A random model of this vocabulary: two turns through generate, the state carried.
  auto cfg = small_config({block_kind::recurrent, block_kind::attention}, 64);
  cfg.vocab_size = t.vocab_size();
  const auto m = model<>::random(cfg, 5);
  auto st = m.make_state(1);
  const generation_options opt{.max_new_tokens = 5, .stop_tokens = gemma_chat::stop_tokens(t),
                               .sample = {.temperature = 1.0f, .seed = 2}};
  const auto a = generate(m, st, {first}, opt);
  const auto after_first = static_cast<std::size_t>(st.positions()[0]);
  CHECK(after_first == first.size() + a.tokens[0].size());
  const auto b = generate(m, st, {second}, opt);
  CHECK(static_cast<std::size_t>(st.positions()[0]) == after_first + second.size() + b.tokens[0].size());
  CHECK_NOTHROW((void)t.decode(b.tokens[0]));
}
