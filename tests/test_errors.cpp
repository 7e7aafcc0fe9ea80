// Bad input gets a clear exception naming what and where: configs, schedule
// mismatches, checkpoints, tokens, positions, batch sizes, context lengths.
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

#include "test_util.hpp"

using namespace ::griffin;
using griffin_test::contains;
using griffin_test::message_of;
using griffin_test::small_config;

namespace {

using griffin_test::r_, griffin_test::a_, griffin_test::g_;


std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

// A safetensors file with the given header text and `data_bytes` bytes of data.
std::vector<std::byte> with_header(const std::string& header, std::size_t data_bytes) {
  std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte{0});
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

std::string parse_error(const std::vector<std::byte>& file) {
  return message_of<safetensors_error>([&] { safetensors_file f(file, "test.safetensors"); });
}

}  // namespace

TEST_CASE("configs that cannot run are refused, naming the field") {
  auto c = small_config({r_, a_});
  c.width = 30;  // 30 / 4 heads
  CHECK(contains(message_of<config_error>([&] { validate(c); }), "width must be divisible by num_heads"));
  c = small_config({r_});
  c.lru_width = 30;
  CHECK(contains(message_of<config_error>([&] { validate(c); }), "lru_width must be divisible by num_heads"));
  c = small_config({});
  CHECK(contains(message_of<config_error>([&] { validate(c); }), "block_types is empty"));
  c = small_config({a_}, 0);
  CHECK(contains(message_of<config_error>([&] { validate(c); }), "attention_window_size must be positive"));
  c = small_config({r_});
  c.conv1d_temporal_width = 17;
  CHECK(contains(message_of<config_error>([&] { validate(c); }), "conv1d_temporal_width"));
  c = small_config({r_});
  c.logits_soft_cap = -1.0f;
  CHECK(contains(message_of<config_error>([&] { validate(c); }), "logits_soft_cap"));
}

TEST_CASE("config.json: missing fields, wrong types and unknown block types name the field") {
  auto j = config_to_json(small_config({r_, a_}));
  CHECK(config_from_json(j, "ok.json").block_types == std::vector<block_kind>{r_, a_});
  auto missing = j;
  missing.erase("width");
  CHECK(contains(message_of<config_error>([&] { (void)config_from_json(missing, "c.json"); }), "c.json: missing field 'width'"));
  auto negative = j;
  negative["num_heads"] = -4;
  CHECK(contains(message_of<config_error>([&] { (void)config_from_json(negative, "c.json"); }), "'num_heads' must be a non-negative integer"));
  auto unknown = j;
  unknown["block_types"][1] = "mamba";
  CHECK(contains(message_of<config_error>([&] { (void)config_from_json(unknown, "c.json"); }),
                 "block_types[1]: unknown block type 'mamba'"));
  auto null_lru = j;
  null_lru["lru_width"] = nullptr;
  CHECK(config_from_json(null_lru, "c.json").lru_width == 32);  // null means width
  griffin_test::temp_dir tmp("cfg");
  std::ofstream(tmp.path() / "bad.json") << "{ not json";
  CHECK(contains(message_of<config_error>([&] { (void)load_config(tmp.path() / "bad.json"); }), "malformed JSON"));
  CHECK(contains(message_of<config_error>([&] { (void)load_config(tmp.path() / "absent.json"); }), "cannot open"));
}

TEST_CASE("a config that does not match the compiled schedule is refused, naming the first mismatch") {
  const auto cfg = small_config({r_, r_, a_});
  const auto weights = random_weights(cfg, 1);
  const auto wrong_kind = message_of<config_error>([&] { model<hawk<3>> m(cfg, weights); });
  CHECK(contains(wrong_kind, "at block 2"));
  CHECK(contains(wrong_kind, "the config has 'attention', the schedule has R (recurrent)"));
  CHECK(contains(wrong_kind, "'R R A'"));
  CHECK(contains(wrong_kind, "'R R R'"));
  const auto wrong_depth = message_of<config_error>([&] { model<::griffin::griffin<6>> m(cfg, weights); });
  CHECK(contains(wrong_depth, "the config has 3 blocks, the schedule 6"));
  // a local block cannot run a global one
  auto global_cfg = small_config({r_, r_, g_});
  CHECK(contains(message_of<config_error>([&] { model<::griffin::griffin<3>> m(global_cfg, random_weights(global_cfg, 1)); }),
                 "'global_attention', the schedule has A"));
  CHECK_NOTHROW(model<::griffin::griffin<3>>(cfg, weights));
}

TEST_CASE("weights: missing, misshapen, mistyped and unexpected tensors are named") {
  const auto cfg = small_config({r_, a_});
  const auto good = random_weights(cfg, 2);
  auto drop = [&](const std::string& name) {
    memory_source s("edited");
    for (auto r : good.records())
      if (r.name != name) s.add(std::move(r));
    return s;
  };
  CHECK(contains(message_of<weight_error>([&] { model<> m(cfg, drop("blocks.1.attention_block.proj_k.weight")); }),
                 "layer 1 (A, attention_block): tensor 'blocks.1.attention_block.proj_k.weight' is missing; expected shape [8, 32]"));
  memory_source reshaped = drop("final_norm.scale");
  reshaped.add("final_norm.scale", {31}, std::vector<float>(31));
  CHECK(contains(message_of<weight_error>([&] { model<> m(cfg, reshaped); }),
                 "tensor 'final_norm.scale' has shape [31], expected [32]"));
  memory_source extra = drop("");
  extra.add("blocks.2.temporal_pre_norm.scale", {32}, std::vector<float>(32));
  CHECK(contains(message_of<weight_error>([&] { model<> m(cfg, extra); }),
                 "unexpected tensor 'blocks.2.temporal_pre_norm.scale'"));
  memory_source ints = drop("final_norm.scale");
  ints.add(tensor_record{"final_norm.scale", dtype::i32, {32}, std::vector<std::byte>(128)});
  CHECK(contains(message_of<weight_error>([&] { model<> m(cfg, ints); }), "dtype I32"));
}

TEST_CASE("safetensors: every malformed file is refused with what is wrong") {
  CHECK(contains(parse_error(bytes_of("abc")), "truncated"));
  auto long_header = with_header("{}", 0);
  long_header[0] = std::byte{100};  // claims 100 header bytes, has 2
  CHECK(contains(parse_error(long_header), "header length 100 runs past the end"));
  CHECK(contains(parse_error(with_header("{\"a\": ", 0)), "malformed JSON"));
  CHECK(contains(parse_error(with_header("[1, 2]", 0)), "not an object"));
  CHECK(contains(parse_error(with_header(R"({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}})", 4)),
                 "unknown dtype 'F33'"));
  CHECK(contains(parse_error(with_header(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4)),
                 "negative dimension"));
  CHECK(contains(parse_error(with_header(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4)),
                 "beyond the 4 data bytes"));
  CHECK(contains(parse_error(with_header(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8)),
                 "reversed"));
  CHECK(contains(parse_error(with_header(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8)),
                 "8 bytes do not hold F32 [3]"));
  CHECK(contains(parse_error(with_header(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12)),
                 "overlap"));
  CHECK(contains(parse_error(with_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                             "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8)),
                 "duplicated tensor 'a'"));
  CHECK(contains(parse_error(with_header(R"({"a": {"dtype": "F32", "shape": [1]}})", 4)), "data_offsets"));
  CHECK(contains(parse_error(with_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}})", 4)),
                 "unknown field 'x'"));
  CHECK(contains(parse_error(with_header(R"({"a": {"dtype": "F32", "shape": [4611686018427387904, 8], "data_offsets": [0, 4]}})", 4)),
                 "overflow"));
  CHECK(contains(message_of<safetensors_error>([] { safetensors_file f("/nonexistent/x.safetensors"); }), "cannot open"));

  // and a valid file round-trips, metadata included
  const std::vector<float> values{1, 2, 3, 4, 5, 6};
  const std::vector<tensor_record> records{tensor_record::f32("w", {2, 3}, values), tensor_record::bf16("v", {2}, std::vector<float>{1.5f, -2})};
  const auto bytes = serialize_safetensors(records, {{"format", "pt"}});
  const safetensors_file f(bytes, "roundtrip");
  CHECK(f.metadata().at("format") == "pt");
  CHECK(to_float_tensor(f.at("w")).values()[4] == 5.0f);
  CHECK(to_float_tensor(f.at("v")).values()[1] == -2.0f);
  CHECK(f.find("nope") == nullptr);
  CHECK(contains(message_of<safetensors_error>([&] { (void)f.at("nope"); }), "roundtrip: no tensor named 'nope'"));
}

TEST_CASE("token ids, segment positions, shapes and batch sizes are checked before any work") {
  const auto cfg = small_config({r_, a_});
  const auto m = model<>::random(cfg, 3);
  tensor<std::int32_t> tokens({2, 3}, 1);
  tokens(1, 2) = 50;  // vocab_size is 50
  CHECK(contains(message_of<input_error>([&] { (void)m.forward(tokens); }),
                 "token id 50 at batch row 1, position 2 is out of range for vocab_size 50"));
  tokens(1, 2) = -1;
  CHECK(contains(message_of<input_error>([&] { (void)m.forward(tokens); }), "token id -1"));
  tokens(1, 2) = 3;
  tensor<std::int32_t> pos({2, 3}, 0);
  pos(0, 1) = -5;
  CHECK(contains(message_of<input_error>([&] { (void)m.forward(tokens, pos); }), "segment_pos -5 at batch row 0, position 1"));
  pos(0, 1) = std::numeric_limits<std::int32_t>::max();  // the next position would overflow
  CHECK(contains(message_of<input_error>([&] { (void)m.forward(tokens, pos); }), "segment_pos 2147483647"));
  CHECK(contains(message_of<input_error>([&] { (void)m.forward(tokens, tensor<std::int32_t>({2, 4})); }),
                 "segment_pos has shape [2, 4], tokens [2, 3]"));
  CHECK(contains(message_of<input_error>([&] { (void)m.forward(tensor<std::int32_t>({3})); }), "[batch, length]"));

  auto st = m.make_state(2);
  CHECK(contains(message_of<input_error>([&] { (void)m.decode(st, std::vector<std::int32_t>{1, 2, 3}); }),
                 "3 rows of tokens for a state of batch 2"));
  // a refused step leaves the state untouched
  (void)m.decode(st, std::vector<std::int32_t>{1, 2});
  const auto before = st.positions()[0];
  CHECK_THROWS_AS((void)m.decode(st, std::vector<std::int32_t>{1, 99}), input_error);
  CHECK(st.positions()[0] == before);
  CHECK_THROWS_AS(st.reset(2), input_error);
  CHECK_THROWS_AS((void)m.make_state(0), input_error);
}

TEST_CASE("a global block bound to a windowed config refuses documents longer than the window") {
  auto cfg = small_config({a_, a_}, 6);
  const auto weights = random_weights(cfg, 5);
  const model<mqa_transformer<2>> m(cfg, weights);
  CHECK_NOTHROW((void)m.forward(tensor<std::int32_t>({1, 7}, 1)));  // 6 earlier tokens: the window holds them
  const auto msg = message_of<context_length_error>([&] { (void)m.forward(tensor<std::int32_t>({1, 8}, 1)); });
  CHECK(contains(msg, "batch row 0, position 7"));
  CHECK(contains(msg, "attention_window_size 6"));
  auto st = m.make_state(1);
  (void)m.prefill(st, tensor<std::int32_t>({1, 7}, 1));
  CHECK_THROWS_AS((void)m.decode(st, std::vector<std::int32_t>{1}), context_length_error);
  st.reset(0);  // a new document fits again
  CHECK_NOTHROW((void)m.decode(st, std::vector<std::int32_t>{1}));
  // unbounded when the config asks for global attention
  cfg.block_types = {g_, g_};
  const model<mqa_transformer<2>> unbounded(cfg, weights);
  CHECK_NOTHROW((void)unbounded.forward(tensor<std::int32_t>({1, 30}, 1)));
}
