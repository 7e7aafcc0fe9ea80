// griffin/checkpoint.hpp: model directories on disk, in either of the two
// layouts RecurrentGemma checkpoints come in, and a writer for the second.
//
//   official      config.json with GriffinConfig fields (width, block_types, ...),
//                 weights.safetensors (or model.safetensors) with the official
//                 recurrentgemma PyTorch names -- the golden cases.
//   transformers  what `huggingface-cli download google/recurrentgemma-2b` gives:
//                 config.json with model_type "recurrent_gemma", model.safetensors
//                 or shards listed in model.safetensors.index.json, transformers names.
//
// open_checkpoint detects which, reads the config, opens the weights (memory
// mapped) and pairs them with the naming that finds each parameter.
#pragma once

#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <numeric>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/safetensors.hpp"
#include "griffin/weights.hpp"

namespace griffin {

/// The two layouts of a model directory.
enum class checkpoint_format { official, transformers };

constexpr std::string_view checkpoint_format_name(checkpoint_format f) noexcept {
  return f == checkpoint_format::official ? "official" : "transformers";
}

/// An opened model directory: its config, its weights and how they are named.
struct checkpoint {
  std::filesystem::path dir;
  checkpoint_format format = checkpoint_format::official;
  config cfg;
  std::unique_ptr<weight_source> weights;

  /// The naming of this checkpoint's parameters.
  [[nodiscard]] const checkpoint_naming& naming() const {
    static const official_naming official;
    static const transformers_naming transformers;
    if (format == checkpoint_format::official) return official;
    return transformers;
  }
};

namespace detail {

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw config_error(path.string() + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw config_error(path.string() + ": malformed JSON: " + e.what());
  }
}

// The weights of a directory: an index of shards, else the first file of `names` that exists.
inline std::unique_ptr<weight_source> open_weights(const std::filesystem::path& dir,
                                                   std::initializer_list<const char*> names) {
  if (std::filesystem::exists(dir / "model.safetensors.index.json"))
    return std::make_unique<sharded_source>(dir / "model.safetensors.index.json");
  for (const char* name : names)
    if (std::filesystem::exists(dir / name)) return std::make_unique<safetensors_source>(dir / name);
  std::string list;
  for (const char* name : names) list += std::string(list.empty() ? "" : ", ") + name;
  throw weight_error(dir.string() + ": no weights: none of " + list + ", model.safetensors.index.json");
}

}  // namespace detail

/// Reads a transformers RecurrentGemma config.json (model_type "recurrent_gemma").
/// `weights` settles what the file states loosely: the MLP's expanded width is
/// taken from model.layers.0.mlp_block.gate_proj.weight and checked against
/// `intermediate_size`, which the hub's configs state as twice that width.
/// Settings griffin does not compute (a key/value head count other than 1,
/// another activation, RMSNorm eps, rotary fraction or base, attention
/// biases) are refused by name. Throws config_error.
inline config config_from_transformers_json(const nlohmann::json& j, const std::string& origin,
                                            const weight_source& weights) {
  if (!j.is_object()) throw config_error(origin + ": not a JSON object");
  auto require = [&](const char* name) -> const nlohmann::json& {
    if (!j.contains(name)) throw config_error(origin + ": missing field '" + name + "'");
    return j.at(name);
  };
  auto size_of = [&](const char* name, const nlohmann::json& v) -> std::size_t {
    const auto n = detail::json_size(v);
    if (!n) throw config_error(origin + ": field '" + name + "' must be a non-negative integer, found " + v.dump());
    return *n;
  };
  auto size_field = [&](const char* name) { return size_of(name, require(name)); };
  auto refuse_unless = [&](const char* name, auto expected, const char* why) {
    if (!j.contains(name) || j.at(name).is_null()) return;
    if (j.at(name) != nlohmann::json(expected))
      throw config_error(origin + ": " + name + " is " + j.at(name).dump() + "; griffin computes " + why + " (" +
                         nlohmann::json(expected).dump() + ")");
  };
  if (j.contains("model_type") && j["model_type"] != "recurrent_gemma")
    throw config_error(origin + ": model_type is " + j["model_type"].dump() + ", not \"recurrent_gemma\"");
  refuse_unless("num_key_value_heads", 1, "multi-query attention: one key/value head");
  refuse_unless("hidden_activation", "gelu_pytorch_tanh", "the tanh approximation of GELU");
  refuse_unless("partial_rotary_factor", 0.5, "RoPE on half of each head");
  refuse_unless("rope_theta", 10000.0, "RoPE with base 10000");
  refuse_unless("attention_bias", false, "attention projections without biases");
  if (j.contains("rms_norm_eps") && !j["rms_norm_eps"].is_null() &&
      (!j["rms_norm_eps"].is_number() || std::fabs(j["rms_norm_eps"].get<double>() - 1e-6) > 1e-12))
    throw config_error(origin + ": rms_norm_eps is " + j["rms_norm_eps"].dump() + "; griffin computes RMSNorm with eps 1e-6");

  config c;
  c.vocab_size = size_field("vocab_size");
  c.width = size_field("hidden_size");
  c.num_heads = size_field("num_attention_heads");
  c.lru_width = j.contains("lru_width") && !j["lru_width"].is_null() ? size_field("lru_width") : c.width;
  c.attention_window_size = size_field("attention_window_size");
  c.conv1d_temporal_width = j.contains("conv1d_width") ? size_field("conv1d_width") : 4;
  c.embeddings_scale_by_sqrt_dim = true;  // transformers always scales
  if (j.contains("logits_soft_cap") && !j["logits_soft_cap"].is_null()) {
    if (!j["logits_soft_cap"].is_number())
      throw config_error(origin + ": field 'logits_soft_cap' must be a number or null, found " + j["logits_soft_cap"].dump());
    c.logits_soft_cap = j["logits_soft_cap"].get<float>();
  }
  if (j.contains("head_dim") && !j["head_dim"].is_null() &&
      (!detail::json_size(j["head_dim"]) || c.num_heads == 0 || *detail::json_size(j["head_dim"]) * c.num_heads != c.width))
    throw config_error(origin + ": head_dim is " + j["head_dim"].dump() + "; griffin computes hidden_size / num_attention_heads (" +
                       std::to_string(c.num_heads ? c.width / c.num_heads : 0) + ")");
  const std::size_t layers = size_field("num_hidden_layers");
  const auto& types = require("block_types");
  if (!types.is_array() || types.empty()) throw config_error(origin + ": field 'block_types' must be a non-empty array");
  std::vector<block_kind> pattern;
  for (std::size_t i = 0; i < types.size(); ++i) {
    const std::string where = origin + ": block_types[" + std::to_string(i) + "]";
    if (!types[i].is_string()) throw config_error(where + " must be a string");
    const block_kind k = parse_block_kind(types[i].get<std::string>(), where);
    if (k == block_kind::global_attention) throw config_error(where + ": transformers has no global attention blocks");
    pattern.push_back(k);
  }
  for (std::size_t i = 0; i < layers; ++i) c.block_types.push_back(pattern[i % pattern.size()]);

  // The MLP width, from the tensors.
  const std::string gate = "model.layers.0.mlp_block.gate_proj.weight";
  const tensor_view* t = layers ? weights.find(gate) : nullptr;
  if (!t || t->shape.size() != 2)
    throw config_error(origin + ": cannot read the MLP width: " + weights.origin() + " has no 2-D tensor '" + gate + "'");
  c.mlp_expanded_width = t->shape[0];
  const std::size_t stated = size_field("intermediate_size");
  if (stated != 2 * c.mlp_expanded_width)
    throw config_error(origin + ": intermediate_size " + std::to_string(stated) + " does not match the MLP weights: '" +
                       gate + "' has " + std::to_string(c.mlp_expanded_width) +
                       " rows, and transformers' configs state intermediate_size as twice that");
  try {
    validate(c);
  } catch (const config_error& e) {
    throw config_error(origin + ": " + e.what());
  }
  return c;
}

/// The config as a transformers RecurrentGemma config.json; `block_types` is
/// written as its shortest repeating pattern. Refuses (config_error) what
/// transformers cannot express: global attention blocks, unscaled embeddings, no soft cap.
inline nlohmann::json config_to_transformers_json(const config& c) {
  std::size_t period = 1;
  while (period < c.block_types.size()) {
    bool repeats = true;
    for (std::size_t i = period; i < c.block_types.size() && repeats; ++i)
      repeats = c.block_types[i] == c.block_types[i % period];
    if (repeats) break;
    ++period;
  }
  if (!c.embeddings_scale_by_sqrt_dim)
    throw config_error("config_to_transformers_json: transformers always scales embeddings by sqrt(hidden_size); "
                       "this config does not");
  if (c.logits_soft_cap <= 0.0f)
    throw config_error("config_to_transformers_json: transformers always soft-caps the logits; this config has no cap");
  nlohmann::json types = nlohmann::json::array();
  for (std::size_t i = 0; i < period; ++i) {
    if (c.block_types[i] == block_kind::global_attention)
      throw config_error("config_to_transformers_json: transformers has no global attention blocks");
    types.push_back(block_kind_name(c.block_types[i]));
  }
  return {{"architectures", {"RecurrentGemmaForCausalLM"}},
          {"model_type", "recurrent_gemma"},
          {"vocab_size", c.vocab_size},
          {"hidden_size", c.width},
          {"intermediate_size", 2 * c.mlp_expanded_width},
          {"num_hidden_layers", c.block_types.size()},
          {"num_attention_heads", c.num_heads},
          {"num_key_value_heads", 1},
          {"head_dim", c.head_dim()},
          {"lru_width", c.lru_width},
          {"attention_window_size", c.attention_window_size},
          {"conv1d_width", c.conv1d_temporal_width},
          {"logits_soft_cap", c.logits_soft_cap},
          {"rms_norm_eps", 1e-6},
          {"block_types", types},
          {"hidden_activation", "gelu_pytorch_tanh"},
          {"partial_rotary_factor", 0.5},
          {"rope_theta", 10000.0},
          {"pad_token_id", 0},
          {"eos_token_id", 1},
          {"bos_token_id", 2}};
}

/// Opens a model directory of either layout; throws config_error (no or bad
/// config), weight_error / safetensors_error (no or bad weights).
inline checkpoint open_checkpoint(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) throw config_error(dir.string() + ": not a directory");
  const auto config_path = dir / "config.json";
  if (!std::filesystem::exists(config_path)) throw config_error(dir.string() + ": no config.json");
  const nlohmann::json j = detail::read_json(config_path);
  checkpoint ck;
  ck.dir = dir;
  if (j.is_object() && (j.contains("model_type") || j.contains("hidden_size"))) {
    ck.format = checkpoint_format::transformers;
    ck.weights = detail::open_weights(dir, {"model.safetensors"});
    ck.cfg = config_from_transformers_json(j, config_path.string(), *ck.weights);
  } else if (j.is_object() && j.contains("width")) {
    ck.format = checkpoint_format::official;
    ck.cfg = config_from_json(j, config_path.string());
    ck.weights = detail::open_weights(dir, {"weights.safetensors", "model.safetensors"});
  } else {
    throw config_error(config_path.string() +
                       ": neither a transformers RecurrentGemma config (hidden_size, model_type) nor a GriffinConfig (width)");
  }
  return ck;
}

/// An official parameter's name and whole shape (see parameters(config) in model.hpp).
using parameter_spec = weight_reader::parameter;

namespace detail {

// `values` as `type` bytes (F32, BF16 or F16).
inline std::vector<std::byte> encode(std::span<const float> values, dtype type) {
  std::vector<std::byte> out(values.size() * dtype_size(type));
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (type == dtype::f32) {
      std::memcpy(out.data() + 4 * i, &values[i], 4);
    } else {
      const std::uint16_t bits = type == dtype::bf16 ? float_to_bf16(values[i]) : float_to_f16(values[i]);
      std::memcpy(out.data() + 2 * i, &bits, 2);
    }
  }
  return out;
}

inline void check_write_type(dtype type, const char* what) {
  if (type != dtype::f32 && type != dtype::bf16 && type != dtype::f16)
    throw weight_error(std::string(what) + ": type must be F32, BF16 or F16");
}

// Produces official parameters one at a time, keeping the last (ffw_up is read twice, once per half).
class parameter_cache {
 public:
  explicit parameter_cache(const weight_generator& values) : values_(values) {}
  const aligned_vector<float>& get(const parameter_spec& p) {
    if (name_ != p.name) {
      name_ = p.name;
      data_.assign(element_count(p.shape), 0.0f);
      values_(p.name, p.shape, data_);
    }
    return data_;
  }

 private:
  const weight_generator& values_;
  std::string name_;
  aligned_vector<float> data_;
};

}  // namespace detail

/// The parameters of a source (its names and shapes) and a generator reading
/// their values, for the writers below.
inline std::vector<parameter_spec> source_parameters(const weight_source& source) {
  std::vector<parameter_spec> out;
  for (const auto& name : source.names()) out.push_back({name, source.find(name)->shape});
  return out;
}
inline weight_generator source_values(const weight_source& source) {
  return [&source](const std::string& name, const std::vector<std::size_t>&, std::span<float> out) {
    const tensor_view* t = source.find(name);
    if (!t || t->element_count() != out.size() || !convert_to_float(t->type, t->bytes.data(), out.size(), out.data()))
      throw weight_error(source.origin() + ": cannot read tensor '" + name + "' as floats");
  };
}

/// Writes an official-layout model directory: config.json (GriffinConfig
/// fields) and weights.safetensors with `params` in `type`, each produced by
/// `values` when it is written (so the checkpoint may exceed memory).
inline void write_official_checkpoint(const std::filesystem::path& dir, const config& c,
                                      std::span<const parameter_spec> params, const weight_generator& values,
                                      dtype type = dtype::f32) {
  detail::check_write_type(type, "write_official_checkpoint");
  std::filesystem::create_directories(dir);
  std::vector<tensor_spec> specs;
  for (const auto& p : params) specs.push_back({p.name, type, p.shape});
  safetensors_writer out(dir / "weights.safetensors", specs, {{"format", "pt"}});
  detail::parameter_cache cache(values);
  for (const auto& p : params) out.write(detail::encode(cache.get(p), type));
  out.finish();
  std::ofstream(dir / "config.json") << config_to_json(c).dump(2);
}

/// Options of write_transformers_checkpoint.
struct transformers_write_options {
  dtype type = dtype::bf16;         ///< F32, BF16 or F16
  std::size_t max_shard_bytes = 0;  ///< split into shards of at most this size; 0 = one model.safetensors
  bool write_lm_head = false;       ///< also store the tied lm_head.weight, as some exports do
};

/// Writes a Hugging Face transformers model directory from official
/// parameters: config.json (model_type "recurrent_gemma") and the weights
/// renamed, ffw_up split into gate_proj / up_proj and transposed, conv_1d.w
/// transposed, in one model.safetensors or in shards listed by
/// model.safetensors.index.json. Each parameter is produced by `values` when
/// it is written.
inline void write_transformers_checkpoint(const std::filesystem::path& dir, const config& c,
                                          std::span<const parameter_spec> params, const weight_generator& values,
                                          const transformers_write_options& options = {}) {
  detail::check_write_type(options.type, "write_transformers_checkpoint");
  const nlohmann::json config_json = config_to_transformers_json(c);  // refuses what transformers cannot express
  std::filesystem::create_directories(dir);

  // Where each stored tensor comes from.
  struct stored {
    stored_param where;
    std::size_t param;  // index into params
  };
  const transformers_naming naming;
  std::vector<stored> tensors;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    const bool split = p.name.ends_with(".mlp_block.ffw_up.w") || p.name.ends_with(".mlp_block.ffw_up.b");
    for (std::size_t half = 0; half < (split ? 2u : 1u); ++half) {
      stored_param where = naming.locate(p.name, p.shape, split ? std::optional<std::size_t>(half) : std::nullopt);
      where.index = split ? std::optional<std::size_t>(half) : std::nullopt;  // the slice of the official tensor
      tensors.push_back({std::move(where), i});
      if (options.write_lm_head && p.name == "embedder.input_embedding")
        tensors.push_back({{"lm_head.weight", p.shape, {}, false}, i});
    }
  }

  // Shards of at most max_shard_bytes, in order.
  std::vector<std::vector<const stored*>> shards(1);
  std::size_t shard_bytes = 0;
  for (const auto& t : tensors) {
    const std::size_t bytes = tensor_spec{t.where.name, options.type, t.where.shape}.bytes();
    if (options.max_shard_bytes && shard_bytes > 0 && shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shard_bytes += bytes;
    shards.back().push_back(&t);
  }

  detail::parameter_cache cache(values);
  nlohmann::json weight_map = nlohmann::json::object();
  std::size_t total = 0;
  const bool single = shards.size() == 1 && !options.max_shard_bytes;
  for (std::size_t s = 0; s < shards.size(); ++s) {
    std::ostringstream file;
    if (single) file << "model.safetensors";
    else file << "model-" << std::setw(5) << std::setfill('0') << s + 1 << "-of-" << std::setw(5) << shards.size() << ".safetensors";
    std::vector<tensor_spec> specs;
    for (const stored* t : shards[s]) specs.push_back({t->where.name, options.type, t->where.shape});
    safetensors_writer out(dir / file.str(), specs, {{"format", "pt"}});
    for (const stored* t : shards[s]) {
      const aligned_vector<float>& all = cache.get(params[t->param]);
      const std::size_t count = t->where.index ? all.size() / 2 : all.size();
      std::vector<float> part(all.begin() + static_cast<std::ptrdiff_t>(t->where.index.value_or(0) * count),
                              all.begin() + static_cast<std::ptrdiff_t>((t->where.index.value_or(0) + 1) * count));
      if (t->where.transposed) {  // the requested [rows, cols] is stored as [cols, rows]
        const std::size_t cols = t->where.shape.front(), rows = count / cols;
        std::vector<float> transposed(count);
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t col = 0; col < cols; ++col) transposed[col * rows + r] = part[r * cols + col];
        part = std::move(transposed);
      }
      out.write(detail::encode(part, options.type));
      weight_map[t->where.name] = file.str();
      total += tensor_spec{t->where.name, options.type, t->where.shape}.bytes();
    }
    out.finish();
  }
  if (!single)
    std::ofstream(dir / "model.safetensors.index.json")
        << nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2);
  std::ofstream(dir / "config.json") << config_json.dump(2);
}

/// The same from a weight_source holding official names (e.g. random_weights).
inline void write_transformers_checkpoint(const std::filesystem::path& dir, const config& c, const weight_source& official,
                                          const transformers_write_options& options = {}) {
  const auto params = source_parameters(official);
  write_transformers_checkpoint(dir, c, params, source_values(official), options);
}

/// The same, official layout.
inline void write_official_checkpoint(const std::filesystem::path& dir, const config& c, const weight_source& official,
                                      dtype type = dtype::f32) {
  const auto params = source_parameters(official);
  write_official_checkpoint(dir, c, params, source_values(official), type);
}

}  // namespace griffin
