// The golden vectors of the official reference implementation, reproduced to
// 1e-4 absolute: through the dynamic schedule read from config.json and
// through the compiled schedule of each architecture.
#include "test_util.hpp"

using namespace ::griffin;

namespace {

template <Schedule S>
void check_case(const std::string& name, std::size_t expected_tensors) {
  const auto dir = griffin_test::golden_dir(name);
  const auto m = model<S>::load(dir);
  const conformance_report report = check_conformance(m, dir);
  REQUIRE(report.entries.size() == expected_tensors);
  for (const auto& e : report.entries) {
    CAPTURE(e.name);
    CHECK(e.max_abs_error <= 1e-4f);
    CHECK(e.passed);
  }
  CHECK(report.passed());
}

}  // namespace

TEST_CASE("golden griffin_tiny (R R A R R A, window 8 < sequence, reset in row 1)") {
  // logits, 6 block outputs, decode reference, 2 prefill lengths
  SUBCASE("dynamic schedule") { check_case<dynamic_schedule>("griffin_tiny", 10); }
  SUBCASE("griffin<6>") { check_case<::griffin::griffin<6>>("griffin_tiny", 10); }
  SUBCASE("pattern<\"R R A R R A\">") { check_case<pattern<"R R A R R A">>("griffin_tiny", 10); }
}

TEST_CASE("golden hawk_tiny (R R R R, lru_width != width, no cap, no embedding scale)") {
  SUBCASE("dynamic schedule") { check_case<dynamic_schedule>("hawk_tiny", 7); }
  SUBCASE("hawk<4>") { check_case<hawk<4>>("hawk_tiny", 7); }
}

TEST_CASE("golden mqa_tiny (A A A A, window 64 >= sequence: the MQA Transformer)") {
  SUBCASE("dynamic schedule (local attention)") { check_case<dynamic_schedule>("mqa_tiny", 7); }
  SUBCASE("mqa_transformer<4> (global attention)") { check_case<mqa_transformer<4>>("mqa_tiny", 7); }
}

TEST_CASE("a conformance check fails when the model is wrong") {
  // The same case with one weight perturbed must not pass: the check can fail.
  const auto dir = griffin_test::golden_dir("hawk_tiny");
  const safetensors_source file(dir / "weights.safetensors");
  memory_source changed("perturbed");
  for (const auto& name : file.names()) {
    auto values = to_float_tensor(*file.find(name));
    if (name == "blocks.2.recurrent_block.linear_out.bias") values.data()[0] += 0.05f;
    changed.add(name, {values.shape().begin(), values.shape().end()}, values.values());
  }
  const model<> m(load_config(dir / "config.json"), changed);
  const auto report = check_conformance(m, dir);
  CHECK_FALSE(report.passed());
  CHECK(report.entries.front().max_abs_error > 1e-4f);  // logits
  CHECK(report.entries[1].passed);                       // block_out.0 is upstream of the change
}

TEST_CASE("bfloat16 weights load as the exact rounded values and compute with bf16 activations") {
  const auto dir = griffin_test::golden_dir("griffin_tiny");
  const safetensors_source f32(dir / "weights.safetensors");
  memory_source in_memory("bf16 in memory"), rounded("rounded to bf16, stored as f32");
  std::vector<tensor_record> bf16;
  for (const auto& name : f32.names()) {
    auto values = to_float_tensor(*f32.find(name));
    std::vector<std::size_t> shape(values.shape().begin(), values.shape().end());
    bf16.push_back(tensor_record::bf16(name, shape, values.values()));
    in_memory.add(bf16.back());
    for (float& v : values.values()) v = round_to_bf16(v);
    rounded.add(name, shape, values.values());
  }
  griffin_test::temp_dir tmp("bf16");
  write_safetensors(tmp.path() / "weights.safetensors", bf16);
  const config cfg = load_config(dir / "config.json");
  const model<> from_file(cfg, safetensors_source(tmp.path() / "weights.safetensors"));
  const model<> from_memory(cfg, in_memory), as_f32(cfg, rounded);
  griffin_test::rng r(11);
  const auto tokens = griffin_test::random_tokens(r, 2, 9, cfg.vocab_size);
  CHECK(from_file.forward(tokens).values().size() == 2 * 9 * cfg.vocab_size);
  const auto a = from_file.forward(tokens), b = from_memory.forward(tokens), c = as_f32.forward(tokens);
  CHECK(griffin_test::max_abs_diff(a.values(), b.values()) == 0.0f);
  // The same weights computed with f32 activations differ by the rounding of
  // the activations to bf16 (relative 2^-9) and no more.
  const float d = griffin_test::max_abs_diff(a.values(), c.values());
  CHECK(d > 0.0f);
  CHECK(d < 0.05f);
}
