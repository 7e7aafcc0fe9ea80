// griffin/config.hpp: the model's hyper-parameters, named as the reference's
// GriffinConfig names them, and the checks that make a config runnable.
//
// `dimensions` holds the sizes; it is a literal type, so a preset can check
// its sizes at compile time. `config` adds `block_types`, the temporal mixer
// of each residual block in order, read at run time from config.json.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace griffin {

/// A config that cannot be run, or does not match a compiled schedule. The
/// message names the field (or block index) and what was found.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The temporal mixer of a residual block.
enum class block_kind : std::uint8_t {
  recurrent,         ///< recurrent_block (RG-LRU), "recurrent" in config.json, R in schedules
  attention,         ///< local_attention_block (sliding window), "attention", A
  global_attention,  ///< global_attention_block (full causal), "global_attention" (griffin's own), G
};

/// The config.json spelling of a block kind.
constexpr std::string_view block_kind_name(block_kind k) noexcept {
  switch (k) {
    case block_kind::recurrent: return "recurrent";
    case block_kind::attention: return "attention";
    case block_kind::global_attention: return "global_attention";
  }
  return "?";
}

/// The one-letter schedule notation: R, A or G.
constexpr char block_kind_symbol(block_kind k) noexcept {
  switch (k) {
    case block_kind::recurrent: return 'R';
    case block_kind::attention: return 'A';
    case block_kind::global_attention: return 'G';
  }
  return '?';
}

/// The widest causal convolution griffin runs (the reference uses 4).
inline constexpr std::size_t max_conv1d_temporal_width = 16;

/// The sizes of a model (the reference's GriffinConfig fields but block_types).
struct dimensions {
  std::size_t vocab_size = 0;
  std::size_t width = 0;               ///< D, the residual stream
  std::size_t mlp_expanded_width = 0;  ///< F, the MLP's hidden width
  std::size_t num_heads = 0;           ///< query heads; also the RG-LRU gates' diagonal blocks
  std::size_t lru_width = 0;           ///< E, the recurrent block's width
  std::size_t attention_window_size = 0;  ///< W: a local-attention query sees itself and W earlier tokens
  float logits_soft_cap = 0.0f;           ///< c: logits become tanh(logits / c) * c; 0 disables
  bool embeddings_scale_by_sqrt_dim = false;  ///< scale embeddings by bf16(sqrt(width))
  std::size_t conv1d_temporal_width = 4;      ///< the recurrent block's causal conv width

  /// Dimension of each attention head (and of the single key/value head).
  [[nodiscard]] constexpr std::size_t head_dim() const noexcept { return num_heads ? width / num_heads : 0; }
  /// Width of each of the RG-LRU gates' diagonal blocks.
  [[nodiscard]] constexpr std::size_t lru_block_width() const noexcept { return num_heads ? lru_width / num_heads : 0; }

  friend constexpr bool operator==(const dimensions&, const dimensions&) = default;
};

/// What can be wrong with a set of dimensions (the first problem found).
enum class dimensions_problem : std::uint8_t {
  none,
  zero_vocab_size,
  zero_width,
  zero_mlp_expanded_width,
  zero_num_heads,
  bad_conv1d_temporal_width,
  bad_logits_soft_cap,
  width_not_divisible_by_num_heads,
  head_dim_not_divisible_by_4,
  zero_attention_window_size,
  zero_lru_width,
  lru_width_not_divisible_by_num_heads,
};

/// The first problem of `d` for a model that has recurrent and/or attention blocks.
constexpr dimensions_problem first_problem(const dimensions& d, bool has_recurrent, bool has_attention) noexcept {
  using p = dimensions_problem;
  if (d.vocab_size == 0) return p::zero_vocab_size;
  if (d.width == 0) return p::zero_width;
  if (d.mlp_expanded_width == 0) return p::zero_mlp_expanded_width;
  if (d.num_heads == 0) return p::zero_num_heads;
  if (!(d.logits_soft_cap >= 0.0f) || d.logits_soft_cap > 3.4e38f) return p::bad_logits_soft_cap;
  if (has_attention) {
    if (d.width % d.num_heads != 0) return p::width_not_divisible_by_num_heads;
    if (d.head_dim() % 4 != 0) return p::head_dim_not_divisible_by_4;
    if (d.attention_window_size == 0) return p::zero_attention_window_size;
  }
  if (has_recurrent) {
    if (d.conv1d_temporal_width == 0 || d.conv1d_temporal_width > max_conv1d_temporal_width)
      return p::bad_conv1d_temporal_width;
    if (d.lru_width == 0) return p::zero_lru_width;
    if (d.lru_width % d.num_heads != 0) return p::lru_width_not_divisible_by_num_heads;
  }
  return p::none;
}

/// A sentence explaining a problem.
constexpr std::string_view problem_message(dimensions_problem p) noexcept {
  using q = dimensions_problem;
  switch (p) {
    case q::none: return "no problem";
    case q::zero_vocab_size: return "vocab_size must be positive";
    case q::zero_width: return "width must be positive";
    case q::zero_mlp_expanded_width: return "mlp_expanded_width must be positive";
    case q::zero_num_heads: return "num_heads must be positive";
    case q::bad_conv1d_temporal_width: return "conv1d_temporal_width must be between 1 and 16";
    case q::bad_logits_soft_cap: return "logits_soft_cap must be finite and >= 0 (0 disables the cap)";
    case q::width_not_divisible_by_num_heads: return "width must be divisible by num_heads (attention heads)";
    case q::head_dim_not_divisible_by_4:
      return "width / num_heads must be divisible by 4 (RoPE rotates half of each head in two quarters)";
    case q::zero_attention_window_size: return "attention_window_size must be positive";
    case q::zero_lru_width: return "lru_width must be positive";
    case q::lru_width_not_divisible_by_num_heads:
      return "lru_width must be divisible by num_heads (the RG-LRU gates are block-diagonal with num_heads blocks)";
  }
  return "?";
}

/// A whole model description: sizes plus the temporal mixer of each block.
struct config : dimensions {
  std::vector<block_kind> block_types;

  [[nodiscard]] bool has(block_kind k) const noexcept {
    for (block_kind b : block_types)
      if (b == k) return true;
    return false;
  }
  /// The schedule in R/A/G notation, e.g. "R R A R R A".
  [[nodiscard]] std::string pattern() const {
    std::string s;
    for (block_kind b : block_types) {
      if (!s.empty()) s += ' ';
      s += block_kind_symbol(b);
    }
    return s;
  }
};

/// Throws config_error if `c` cannot be run.
inline void validate(const config& c) {
  if (c.block_types.empty()) throw config_error("config: block_types is empty");
  const bool attention = c.has(block_kind::attention) || c.has(block_kind::global_attention);
  const auto p = first_problem(c, c.has(block_kind::recurrent), attention);
  if (p != dimensions_problem::none) {
    std::ostringstream os;
    os << "config: " << problem_message(p) << " (vocab_size " << c.vocab_size << ", width " << c.width
       << ", mlp_expanded_width " << c.mlp_expanded_width << ", num_heads " << c.num_heads << ", lru_width "
       << c.lru_width << ", attention_window_size " << c.attention_window_size << ", conv1d_temporal_width "
       << c.conv1d_temporal_width << ", logits_soft_cap " << c.logits_soft_cap << ")";
    throw config_error(os.str());
  }
}

namespace detail {
/// A JSON value as a size: a non-negative integer (parsed, or built in code as a signed int), else nullopt.
inline std::optional<std::size_t> json_size(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<std::size_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return static_cast<std::size_t>(v.get<std::int64_t>());
  return std::nullopt;
}
}  // namespace detail

/// Parses a block kind as config.json spells it; throws config_error.
inline block_kind parse_block_kind(std::string_view s, std::string_view where) {
  for (block_kind k : {block_kind::recurrent, block_kind::attention, block_kind::global_attention})
    if (block_kind_name(k) == s) return k;
  throw config_error(std::string(where) + ": unknown block type '" + std::string(s) +
                     "' (expected recurrent, attention or global_attention)");
}

/// Reads a config in the reference's GriffinConfig JSON form (the golden
/// config.json); `origin` names the file in messages. Unknown keys are
/// ignored; `lru_width` may be null (= width); `conv1d_temporal_width`
/// defaults to 4. Throws config_error.
inline config config_from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw config_error(origin + ": not a JSON object");
  auto field = [&](const char* name) -> const nlohmann::json& {
    if (!j.contains(name)) throw config_error(origin + ": missing field '" + name + "'");
    return j.at(name);
  };
  auto size_field = [&](const char* name) -> std::size_t {
    const auto& v = field(name);
    const auto n = detail::json_size(v);
    if (!n) throw config_error(origin + ": field '" + name + "' must be a non-negative integer, found " + v.dump());
    return *n;
  };
  config c;
  c.vocab_size = size_field("vocab_size");
  c.width = size_field("width");
  c.mlp_expanded_width = size_field("mlp_expanded_width");
  c.num_heads = size_field("num_heads");
  c.lru_width = j.contains("lru_width") && !j["lru_width"].is_null() ? size_field("lru_width") : c.width;
  c.attention_window_size = size_field("attention_window_size");
  c.conv1d_temporal_width = j.contains("conv1d_temporal_width") ? size_field("conv1d_temporal_width") : 4;
  const auto& cap = field("logits_soft_cap");
  if (cap.is_null()) c.logits_soft_cap = 0.0f;
  else if (cap.is_number()) c.logits_soft_cap = cap.get<float>();
  else throw config_error(origin + ": field 'logits_soft_cap' must be a number or null, found " + cap.dump());
  const auto& scale = field("embeddings_scale_by_sqrt_dim");
  if (!scale.is_boolean()) throw config_error(origin + ": field 'embeddings_scale_by_sqrt_dim' must be true or false");
  c.embeddings_scale_by_sqrt_dim = scale.get<bool>();
  const auto& types = field("block_types");
  if (!types.is_array()) throw config_error(origin + ": field 'block_types' must be an array");
  for (std::size_t i = 0; i < types.size(); ++i) {
    const std::string where = origin + ": block_types[" + std::to_string(i) + "]";
    if (!types[i].is_string()) throw config_error(where + " must be a string");
    c.block_types.push_back(parse_block_kind(types[i].get<std::string>(), where));
  }
  try {
    validate(c);
  } catch (const config_error& e) {
    throw config_error(origin + ": " + e.what());
  }
  return c;
}

/// The config as GriffinConfig JSON (the form config_from_json reads).
inline nlohmann::json config_to_json(const config& c) {
  nlohmann::json types = nlohmann::json::array();
  for (block_kind b : c.block_types) types.push_back(block_kind_name(b));
  return {{"vocab_size", c.vocab_size},
          {"width", c.width},
          {"mlp_expanded_width", c.mlp_expanded_width},
          {"num_heads", c.num_heads},
          {"lru_width", c.lru_width},
          {"block_types", types},
          {"embeddings_scale_by_sqrt_dim", c.embeddings_scale_by_sqrt_dim},
          {"attention_window_size", c.attention_window_size},
          {"logits_soft_cap", c.logits_soft_cap},
          {"conv1d_temporal_width", c.conv1d_temporal_width}};
}

/// Reads a GriffinConfig JSON file; throws config_error naming the file.
inline config load_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw config_error(path.string() + ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw config_error(path.string() + ": malformed JSON: " + e.what());
  }
  return config_from_json(j, path.string());
}

}  // namespace griffin
