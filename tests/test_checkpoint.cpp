// Checkpoints on disk: the official and the Hugging Face transformers
// layouts, f32 / bf16 / f16, one file or shards, all written here by the tests
// themselves (nothing can be downloaded); the same weights give the same
// logits whichever way they are stored; large matrices are used in place.
#include <fstream>
#include <set>
#include <string>

#include "test_util.hpp"

using namespace ::griffin;
using griffin_test::contains;
using griffin_test::message_of;
using griffin_test::max_abs_diff;
using griffin_test::rng;
using griffin_test::small_config;
using griffin_test::temp_dir;

namespace {

using griffin_test::r_, griffin_test::a_;


// The official weights stored as bf16, or (f16) rounded to f16 values and
// stored as f32, which f16 weights compute like.
memory_source rounded(const memory_source& source, dtype type) {
  memory_source out("rounded");
  for (auto r : source.records()) {
    auto values = to_float_tensor(*source.find(r.name));
    if (type == dtype::bf16) {
      out.add(tensor_record::bf16(r.name, r.shape, values.values()));
      continue;
    }
    for (float& v : values.values()) v = f16_to_float(float_to_f16(v));
    out.add(r.name, r.shape, values.values());
  }
  return out;
}

std::size_t rss_anon_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    std::size_t kb = 0;
    if (key == "RssAnon:" && status >> kb) return kb * 1024;
    status.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

TEST_CASE("the same weights give the same logits in either naming, any dtype, one file or shards") {
  const auto cfg = small_config({r_, r_, a_, r_}, 4);  // lru_width 48 != width 32
  const auto weights = random_weights(cfg, 31);
  temp_dir tmp("equivalence");
  write_official_checkpoint(tmp.path() / "official_f32", cfg, weights, dtype::f32);
  write_official_checkpoint(tmp.path() / "official_bf16", cfg, weights, dtype::bf16);
  write_transformers_checkpoint(tmp.path() / "hf_f32", cfg, weights, {dtype::f32, 0, false});
  write_transformers_checkpoint(tmp.path() / "hf_bf16_shards", cfg, weights, {dtype::bf16, 40'000, true});
  write_transformers_checkpoint(tmp.path() / "hf_f16", cfg, weights, {dtype::f16, 0, false});

  const auto index = detail::read_json(tmp.path() / "hf_bf16_shards" / "model.safetensors.index.json");
  std::set<std::string> shard_files;
  for (auto& [tensor, file] : index["weight_map"].items()) shard_files.insert(file.get<std::string>());
  CHECK(shard_files.size() > 2);
  for (const auto& f : shard_files) CHECK(std::filesystem::file_size(tmp.path() / "hf_bf16_shards" / f) <= 40'000 + 4096);
  CHECK(open_checkpoint(tmp.path() / "hf_f32").format == checkpoint_format::transformers);
  CHECK(open_checkpoint(tmp.path() / "official_f32").format == checkpoint_format::official);
  CHECK(open_checkpoint(tmp.path() / "hf_f32").cfg.block_types == cfg.block_types);

  rng r(32);
  const auto tokens = griffin_test::random_tokens(r, 2, 10, cfg.vocab_size);
  const auto reference = model<>(cfg, weights).forward(tokens);
  const auto bf16_reference = model<>(cfg, rounded(weights, dtype::bf16)).forward(tokens);
  const auto f16_reference = model<>(cfg, rounded(weights, dtype::f16)).forward(tokens);

  // f32 in both namings: the same function (only the order of sums differs).
  CHECK(max_abs_diff(model<>::load(tmp.path() / "official_f32").forward(tokens).values(), reference.values()) == 0.0f);
  CHECK(max_abs_diff(model<>::load(tmp.path() / "hf_f32").forward(tokens).values(), reference.values()) <= 1e-5f);
  // bf16 and f16: the same as f32 weights rounded to that type.
  CHECK(max_abs_diff(model<>::load(tmp.path() / "official_bf16").forward(tokens).values(), bf16_reference.values()) <= 1e-5f);
  CHECK(max_abs_diff(model<>::load(tmp.path() / "hf_bf16_shards").forward(tokens).values(), bf16_reference.values()) <= 1e-5f);
  CHECK(max_abs_diff(model<>::load(tmp.path() / "hf_f16").forward(tokens).values(), f16_reference.values()) <= 1e-5f);
  // and rounding matters: the check could fail
  CHECK(max_abs_diff(bf16_reference.values(), reference.values()) > 1e-4f);

  // compiled schedules load transformers directories too
  const model<pattern<"R R A R">> compiled = model<pattern<"R R A R">>::load(tmp.path() / "hf_bf16_shards");
  CHECK(max_abs_diff(compiled.forward(tokens).values(), bf16_reference.values()) <= 1e-5f);
}

TEST_CASE("a golden case converted to the transformers layout still matches the reference") {
  const auto golden = griffin_test::golden_dir("griffin_tiny");
  const checkpoint ck = open_checkpoint(golden);
  temp_dir tmp("golden_hf");
  const auto params = source_parameters(*ck.weights);
  write_transformers_checkpoint(tmp.path(), ck.cfg, params, source_values(*ck.weights), {dtype::f32, 300'000, false});
  std::filesystem::copy(golden / "expected.safetensors", tmp.path() / "expected.safetensors");
  const auto m = model<::griffin::griffin<6>>::load(tmp.path());
  const auto report = check_conformance(m, tmp.path());
  CHECK(report.passed());
  for (const auto& e : report.entries) CHECK(e.max_abs_error <= 1e-4f);
}

TEST_CASE("parameters(config) lists what the blocks load, in the official naming") {
  const auto cfg = small_config({r_, a_});
  const auto params = parameters(cfg);
  const auto weights = random_weights(cfg, 1);
  CHECK(params.size() == weights.names().size());
  for (const auto& p : params) {
    const tensor_view* t = weights.find(p.name);
    REQUIRE(t);
    CHECK(t->shape == p.shape);
  }
  CHECK(params.front().name == "embedder.input_embedding");
  CHECK(params.back().name == "final_norm.scale");
}

TEST_CASE("matrices are used in place from the memory map; only small tensors are copied") {
  auto cfg = small_config({r_, r_, a_});
  cfg.width = 256;
  cfg.lru_width = 256;
  cfg.mlp_expanded_width = 768;
  cfg.num_heads = 4;
  cfg.vocab_size = 4096;
  temp_dir tmp("inplace");
  const auto params = parameters(cfg);
  write_transformers_checkpoint(tmp.path(), cfg, params, random_weight_generator(5), {dtype::bf16, 0, false});
  const auto file_bytes = std::filesystem::file_size(tmp.path() / "model.safetensors");

  const std::size_t before = rss_anon_bytes();
  const auto m = model<>::load(tmp.path());
  const std::size_t after = rss_anon_bytes();
  CAPTURE(file_bytes);
  CAPTURE(m.copied_weight_bytes());
  // bf16 is computed with: every matrix stays in the file's pages ...
  CHECK(m.mapped_weight_bytes() > file_bytes * 95 / 100);
  CHECK(m.copied_weight_bytes() < file_bytes / 20);  // norms, biases, conv1d and a_param, converted to f32
  // ... so loading adds little anonymous memory of the process's own.
  CHECK(after - std::min(after, before) < file_bytes / 5);

  // f32 copies instead when the source's bytes do not outlive it
  const auto in_memory = model<>(cfg, random_weights(cfg, 5));
  CHECK(in_memory.mapped_weight_bytes() == 0);
  CHECK(in_memory.copied_weight_bytes() == in_memory.weight_bytes());
}

TEST_CASE("model directories: what is missing or of neither layout is named") {
  temp_dir tmp("dirs");
  CHECK(contains(message_of<config_error>([&] { (void)open_checkpoint(tmp.path() / "absent"); }), "not a directory"));
  CHECK(contains(message_of<config_error>([&] { (void)open_checkpoint(tmp.path()); }), "no config.json"));
  std::ofstream(tmp.path() / "config.json") << R"({"foo": 1})";
  CHECK(contains(message_of<config_error>([&] { (void)open_checkpoint(tmp.path()); }), "neither a transformers"));
  const auto cfg = small_config({r_});
  std::ofstream(tmp.path() / "config.json") << config_to_transformers_json(cfg).dump();
  CHECK(contains(message_of<weight_error>([&] { (void)open_checkpoint(tmp.path()); }), "no weights: none of model.safetensors"));
}

TEST_CASE("what the transformers layout cannot express is refused when writing it") {
  auto unscaled = small_config({r_});
  unscaled.embeddings_scale_by_sqrt_dim = false;
  CHECK(contains(message_of<config_error>([&] { (void)config_to_transformers_json(unscaled); }),
                 "transformers always scales embeddings"));
  auto uncapped = small_config({r_});
  uncapped.logits_soft_cap = 0.0f;
  CHECK(contains(message_of<config_error>([&] { (void)config_to_transformers_json(uncapped); }),
                 "transformers always soft-caps"));
  const auto global = small_config({r_, block_kind::global_attention});
  CHECK(contains(message_of<config_error>([&] { (void)config_to_transformers_json(global); }), "no global attention"));
  CHECK(config_to_transformers_json(small_config({r_, r_, a_, r_, r_, a_, r_}))["block_types"] ==
        nlohmann::json{"recurrent", "recurrent", "attention"});
}

TEST_CASE("transformers configs: settings griffin does not compute are refused by name") {
  const auto cfg = small_config({r_, r_, a_});
  const auto weights = random_weights(cfg, 2);
  temp_dir tmp("hfcfg");
  write_transformers_checkpoint(tmp.path(), cfg, weights, {dtype::f32, 0, false});
  const auto good = detail::read_json(tmp.path() / "config.json");
  const safetensors_source file(tmp.path() / "model.safetensors");
  auto refused = [&](const char* field, nlohmann::json value) {
    auto j = good;
    j[field] = value;
    return message_of<config_error>([&] { (void)config_from_transformers_json(j, "config.json", file); });
  };
  CHECK(config_from_transformers_json(good, "config.json", file).block_types == cfg.block_types);
  CHECK(contains(refused("num_key_value_heads", 2), "num_key_value_heads is 2; griffin computes multi-query attention"));
  CHECK(contains(refused("hidden_activation", "gelu"), "hidden_activation is \"gelu\""));
  CHECK(contains(refused("rms_norm_eps", 1e-5), "rms_norm_eps is 1e-05"));
  CHECK(contains(refused("partial_rotary_factor", 1.0), "partial_rotary_factor"));
  CHECK(contains(refused("attention_bias", true), "attention_bias is true"));
  CHECK(contains(refused("head_dim", 16), "head_dim is 16; griffin computes hidden_size / num_attention_heads (8)"));
  CHECK(contains(refused("model_type", "gemma"), "model_type is \"gemma\""));
  CHECK(contains(refused("intermediate_size", 64), "intermediate_size 64 does not match the MLP weights"));
  CHECK(contains(refused("block_types", {"recurrent", "mamba"}), "block_types[1]: unknown block type 'mamba'"));
  auto missing = good;
  missing.erase("hidden_size");
  CHECK(contains(message_of<config_error>([&] { (void)config_from_transformers_json(missing, "c.json", file); }),
                 "missing field 'hidden_size'"));
  // block_types cycles up to num_hidden_layers
  auto cycled = good;
  cycled["block_types"] = {"recurrent", "recurrent", "attention"};
  cycled["num_hidden_layers"] = 5;
  const auto c5 = config_from_transformers_json(cycled, "c.json", file);
  CHECK(c5.pattern() == "R R A R R");
}

TEST_CASE("a transformers checkpoint that does not match its config names the layer and tensor") {
  const auto cfg = small_config({r_, r_, a_});
  temp_dir tmp("mismatch");
  write_transformers_checkpoint(tmp.path(), cfg, random_weights(cfg, 3), {dtype::bf16, 0, false});
  // the config now claims an attention block where the weights hold a recurrent one
  auto j = detail::read_json(tmp.path() / "config.json");
  j["block_types"] = {"recurrent", "attention", "attention"};
  std::ofstream(tmp.path() / "config.json") << j.dump();
  const auto msg = message_of<weight_error>([&] { (void)model<>::load(tmp.path()); });
  CHECK(contains(msg, "layer 1 (A, attention_block): tensor 'model.layers.1.temporal_block.q_proj.weight' is missing"));
  // and a compiled schedule refuses the config first, naming the block
  const auto wrong = message_of<config_error>([&] { (void)model<::griffin::griffin<3>>::load(tmp.path()); });
  CHECK(contains(wrong, "at block 1: the config has 'attention', the schedule has R"));
}

TEST_CASE("a transformers tensor of the wrong shape is named with its official alias") {
  const auto cfg = small_config({r_});
  auto weights = random_weights(cfg, 4);
  temp_dir tmp("shape");
  auto j = config_to_transformers_json(cfg);
  write_transformers_checkpoint(tmp.path(), cfg, weights, {dtype::f32, 0, false});
  // rewrite the file with up_proj transposed the wrong way
  const safetensors_source file(tmp.path() / "model.safetensors");
  std::vector<tensor_record> records;
  for (const auto& name : file.names()) {
    const tensor_view& t = *file.find(name);
    tensor_record r{name, t.type, t.shape, {t.bytes.begin(), t.bytes.end()}};
    if (name == "model.layers.0.mlp_block.up_proj.weight") std::swap(r.shape[0], r.shape[1]);
    records.push_back(std::move(r));
  }
  write_safetensors(tmp.path() / "model.safetensors", records);
  const auto msg = message_of<weight_error>([&] { (void)model<>::load(tmp.path()); });
  CHECK(contains(msg, "tensor 'model.layers.0.mlp_block.up_proj.weight' has shape [32, 64], expected [64, 32] "
                      "(blocks.0.mlp_block.ffw_up.w[1])"));
}

TEST_CASE("sharded checkpoints: a broken index or shard set is refused") {
  const auto cfg = small_config({r_, a_});
  const auto weights = random_weights(cfg, 6);
  temp_dir tmp("shards");
  write_transformers_checkpoint(tmp.path(), cfg, weights, {dtype::bf16, 30'000, false});
  const auto index_path = tmp.path() / "model.safetensors.index.json";
  const auto index = detail::read_json(index_path);
  auto with_index = [&](const nlohmann::json& j) {
    std::ofstream(index_path) << j.dump();
    return message_of<std::runtime_error>([&] { sharded_source s(index_path); });  // weight_ or safetensors_error
  };
  CHECK_NOTHROW(sharded_source{index_path});

  auto missing_file = index;
  missing_file["weight_map"]["model.final_norm.weight"] = "model-99999-of-99999.safetensors";  // a file that is not there
  CHECK(contains(with_index(missing_file), "cannot open"));

  // two tensors in different shards
  std::string a, b;
  for (auto& [tensor, file] : index["weight_map"].items()) {
    if (a.empty()) a = tensor;
    else if (file != index["weight_map"][a]) b = tensor;
  }
  REQUIRE(!b.empty());
  auto wrong_file = index;
  wrong_file["weight_map"][b] = index["weight_map"][a];
  CHECK(contains(with_index(wrong_file), "tensor '" + b + "' is listed in"));

  auto unlisted = index;
  unlisted["weight_map"].erase("model.final_norm.weight");
  CHECK(contains(with_index(unlisted), "tensor 'model.final_norm.weight' of"));
  CHECK(contains(with_index(unlisted), "is not in the index"));

  auto escape = index;
  escape["weight_map"]["model.final_norm.weight"] = "../elsewhere.safetensors";
  CHECK(contains(with_index(escape), "not a file beside the index"));

  CHECK(contains(with_index(nlohmann::json{{"metadata", {}}}), "no \"weight_map\" object"));
  std::ofstream(index_path) << "{ broken";
  CHECK(contains(message_of<weight_error>([&] { sharded_source s(index_path); }), "malformed JSON"));

  // the same tensor in two shards
  std::ofstream(index_path) << index.dump();
  const auto shard_path = tmp.path() / index["weight_map"][a].get<std::string>();
  std::vector<tensor_record> records;
  {
    const safetensors_source shard(shard_path);
    for (const auto& name : shard.names()) {
      const tensor_view& t = *shard.find(name);
      records.push_back({name, t.type, t.shape, {t.bytes.begin(), t.bytes.end()}});
    }
    const safetensors_source other(tmp.path() / index["weight_map"][b].get<std::string>());
    const tensor_view& dup = *other.find(b);
    records.push_back({dup.name, dup.type, dup.shape, {dup.bytes.begin(), dup.bytes.end()}});
  }
  write_safetensors(shard_path, records);
  CHECK(contains(message_of<weight_error>([&] { sharded_source s(index_path); }), "is stored twice"));
}

TEST_CASE("presets: a checkpoint is loaded on its compiled schedule or refused naming the difference") {
  using tiny = preset<::griffin::griffin<3>, dimensions{.vocab_size = 50,
                                                       .width = 32,
                                                       .mlp_expanded_width = 64,
                                                       .num_heads = 4,
                                                       .lru_width = 48,
                                                       .attention_window_size = 5,
                                                       .logits_soft_cap = 20.0f,
                                                       .embeddings_scale_by_sqrt_dim = true}>;
  const auto cfg = small_config({r_, r_, a_});
  temp_dir tmp("preset");
  write_transformers_checkpoint(tmp.path(), cfg, random_weights(cfg, 7), {dtype::bf16, 0, false});
  const auto m = load_preset<tiny>(tmp.path());
  CHECK(m.pattern() == "R R A");
  const auto msg = message_of<config_error>([&] { (void)load_preset<recurrentgemma_2b>(tmp.path()); });
  CHECK(contains(msg, "vocab_size 50 (the preset has 256000)"));
  CHECK(contains(message_of<config_error>([&] { (void)load_recurrentgemma(tmp.path()); }),
                 "3 blocks: not RecurrentGemma-2B (26 blocks) or -9B (38 blocks)"));

  // 26 blocks but small: named as almost-2B, with the first difference
  auto deep = small_config({});
  deep.block_types = block_kinds<::griffin::griffin<26>>();
  temp_dir tmp26("preset26");
  write_transformers_checkpoint(tmp26.path(), deep, parameters(deep), random_weight_generator(1), {dtype::bf16, 0, false});
  CHECK(contains(message_of<config_error>([&] { (void)load_recurrentgemma(tmp26.path()); }),
                 "26 blocks like RecurrentGemma-2B, but vocab_size 50"));
}

TEST_CASE("the streaming safetensors writer checks what it is given") {
  temp_dir tmp("writer");
  safetensors_writer w(tmp.path() / "x.safetensors", {{"a", dtype::f32, {2}}, {"b", dtype::bf16, {3}}});
  CHECK_THROWS_AS(w.write(std::vector<std::byte>(4)), safetensors_error);  // 'a' needs 8 bytes
  w.write(std::vector<std::byte>(8));
  CHECK_THROWS_AS(w.finish(), safetensors_error);  // 'b' is missing
  w.write(std::vector<std::byte>(6));
  w.finish();
  const safetensors_file f(tmp.path() / "x.safetensors");
  CHECK(f.at("b").shape == std::vector<std::size_t>{3});
}
