// griffin/weights.hpp: where a model's parameters come from.
//
// Blocks ask for parameters by their official recurrentgemma PyTorch names
// ("blocks.3.recurrent_block.rg_lru.a_param", ...) and shapes. A
// checkpoint_naming says where a checkpoint keeps each one (the official
// naming, or the transformers naming of Hugging Face checkpoints, with its
// transposes and splits); a weight_source holds the stored tensors (one
// safetensors file, the shards of an index, or memory); a weight_reader puts
// them together: it checks every shape, hands large matrices out in place
// (no copy when the stored type is one griffin computes with), converts small
// tensors to float, and finally refuses tensors nobody asked for.
#pragma once

#include <algorithm>
#include <cstring>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "griffin/dtype.hpp"
#include "griffin/safetensors.hpp"
#include "griffin/tensor.hpp"
#include "griffin/weight_matrix.hpp"

namespace griffin {

/// A missing tensor, a tensor of the wrong shape or type, or a tensor the
/// schedule has no place for. The message names the tensor and its source.
class weight_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---- sources ------------------------------------------------------------------

/// A set of stored tensors, by their stored names.
class weight_source {
 public:
  virtual ~weight_source() = default;
  /// The tensor called `name`, or null.
  [[nodiscard]] virtual const tensor_view* find(std::string_view name) const = 0;
  /// Every tensor name in the source.
  [[nodiscard]] virtual std::vector<std::string> names() const = 0;
  /// Where the tensors come from, for messages (a path, "random weights", ...).
  [[nodiscard]] virtual std::string origin() const = 0;
};

/// The tensors of one safetensors file (memory-mapped).
class safetensors_source final : public weight_source {
 public:
  explicit safetensors_source(const std::filesystem::path& path) : file_(path) {}
  explicit safetensors_source(safetensors_file file) : file_(std::move(file)) {}

  [[nodiscard]] const tensor_view* find(std::string_view name) const override { return file_.find(name); }
  [[nodiscard]] std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& t : file_.tensors()) out.push_back(t.name);
    return out;
  }
  [[nodiscard]] std::string origin() const override { return file_.origin(); }

 private:
  safetensors_file file_;
};

/// The shards listed by a model.safetensors.index.json ({"weight_map": {tensor: file}}).
/// Refuses an index that is malformed, names a missing file or a tensor its
/// file lacks, and a tensor stored in two shards or in none of the index's entries.
class sharded_source final : public weight_source {
 public:
  explicit sharded_source(const std::filesystem::path& index_path) : origin_(index_path.string()) {
    std::ifstream in(index_path);
    if (!in) throw weight_error(origin_ + ": cannot open");
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw weight_error(origin_ + ": malformed JSON: " + e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      throw weight_error(origin_ + ": no \"weight_map\" object");
    std::map<std::string, std::size_t> file_index;
    for (auto& [tensor, file] : index["weight_map"].items()) {
      if (!file.is_string()) throw weight_error(origin_ + ": weight_map entry '" + tensor + "' is not a file name");
      const std::string name = file.get<std::string>();
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        throw weight_error(origin_ + ": weight_map entry '" + tensor + "' names '" + name + "', not a file beside the index");
      auto [it, added] = file_index.emplace(name, files_.size());
      if (added) files_.emplace_back(index_path.parent_path() / name);
      map_.emplace(tensor, it->second);
    }
    for (const auto& [tensor, f] : map_)
      if (!files_[f].find(tensor))
        throw weight_error(origin_ + ": tensor '" + tensor + "' is listed in " + files_[f].origin() + ", which lacks it");
    std::map<std::string, std::string> seen;
    for (const auto& file : files_)
      for (const auto& t : file.tensors()) {
        auto [it, added] = seen.emplace(t.name, file.origin());
        if (!added)
          throw weight_error(origin_ + ": tensor '" + t.name + "' is stored twice, in " + it->second + " and " + file.origin());
        if (!map_.contains(t.name))
          throw weight_error(origin_ + ": tensor '" + t.name + "' of " + file.origin() + " is not in the index");
      }
  }

  [[nodiscard]] const tensor_view* find(std::string_view name) const override {
    auto it = map_.find(std::string(name));
    return it == map_.end() ? nullptr : files_[it->second].find(name);
  }
  [[nodiscard]] std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& [name, f] : map_) out.push_back(name);
    return out;
  }
  [[nodiscard]] std::string origin() const override { return origin_; }

 private:
  std::string origin_;
  std::vector<safetensors_file> files_;
  std::map<std::string, std::size_t> map_;
};

/// Tensors held in memory: random weights, or weights a program builds itself.
class memory_source final : public weight_source {
 public:
  explicit memory_source(std::string origin = "in-memory weights") : origin_(std::move(origin)) {}

  /// Adds (or replaces) a tensor.
  void add(tensor_record record) {
    auto& slot = records_[record.name];
    slot = std::move(record);
    views_[slot.name] = tensor_view{slot.name, slot.type, slot.shape, slot.bytes, nullptr};
  }
  /// Adds an F32 tensor.
  void add(std::string name, std::vector<std::size_t> shape, std::span<const float> values) {
    add(tensor_record::f32(std::move(name), std::move(shape), values));
  }

  /// The tensors as records, in name order, e.g. for write_safetensors.
  [[nodiscard]] std::vector<tensor_record> records() const {
    std::vector<tensor_record> out;
    for (const auto& [name, r] : records_) out.push_back(r);
    return out;
  }

  [[nodiscard]] const tensor_view* find(std::string_view name) const override {
    auto it = views_.find(std::string(name));
    return it == views_.end() ? nullptr : &it->second;
  }
  [[nodiscard]] std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& [name, r] : records_) out.push_back(name);
    return out;
  }
  [[nodiscard]] std::string origin() const override { return origin_; }

 private:
  std::string origin_;
  std::map<std::string, tensor_record> records_;
  std::map<std::string, tensor_view> views_;
};

// ---- namings ---------------------------------------------------------------------

/// Where a checkpoint stores a parameter that blocks ask for by official name.
struct stored_param {
  std::string name;                  ///< stored tensor name
  std::vector<std::size_t> shape;    ///< its stored shape
  std::optional<std::size_t> index;  ///< the requested part is this slice along dimension 0
  bool transposed = false;           ///< stored as the transpose of the requested 2-D matrix
};

/// How a checkpoint names and lays out parameters.
class checkpoint_naming {
 public:
  virtual ~checkpoint_naming() = default;
  /// "official" or "transformers".
  [[nodiscard]] virtual std::string_view name() const = 0;
  /// Where the official parameter `official` (shape `shape`; slice `index` of
  /// dimension 0 when given) is stored.
  [[nodiscard]] virtual stored_param locate(const std::string& official, const std::vector<std::size_t>& shape,
                                            std::optional<std::size_t> index) const = 0;
  /// Whether a stored tensor no block loads may be ignored (e.g. a tied lm_head).
  [[nodiscard]] virtual bool ignorable(std::string_view /*stored*/) const { return false; }
};

/// The official recurrentgemma PyTorch names and layouts (the golden cases).
class official_naming final : public checkpoint_naming {
 public:
  [[nodiscard]] std::string_view name() const override { return "official"; }
  [[nodiscard]] stored_param locate(const std::string& official, const std::vector<std::size_t>& shape,
                                    std::optional<std::size_t> index) const override {
    return {official, shape, index, false};
  }
};

/// The Hugging Face transformers names (model type "recurrent_gemma"): see
/// tests/golden/HF_NAMES.md. ffw_up is stored as gate_proj / up_proj, each
/// [F, D] (transposed); conv_1d.w [4, E] as conv_1d.weight [E, 1, 4].
class transformers_naming final : public checkpoint_naming {
 public:
  [[nodiscard]] std::string_view name() const override { return "transformers"; }

  [[nodiscard]] stored_param locate(const std::string& official, const std::vector<std::size_t>& shape,
                                    std::optional<std::size_t> index) const override {
    if (official == "embedder.input_embedding") return {"model.embed_tokens.weight", shape, {}, false};
    if (official == "final_norm.scale") return {"model.final_norm.weight", shape, {}, false};
    static const std::regex block(R"(blocks\.(\d+)\.([a-z_]+)\.(.+))");
    std::smatch m;
    if (!std::regex_match(official, m, block)) return unknown(official, shape);
    const std::string layer = "model.layers." + m[1].str() + ".", module = m[2].str(), rest = m[3].str();
    if (module == "temporal_pre_norm" || module == "channel_pre_norm") return {layer + module + ".weight", shape, {}, false};
    if (module == "recurrent_block") {
      const std::string p = layer + "temporal_block.";
      if (rest == "conv_1d.w") return {p + "conv_1d.weight", {shape.at(1), 1, shape.at(0)}, {}, true};
      if (rest == "conv_1d.b") return {p + "conv_1d.bias", shape, {}, false};
      if (rest == "rg_lru.a_param") return {p + "rg_lru.recurrent_param", shape, {}, false};
      if (rest == "rg_lru.input_gate.w") return {p + "rg_lru.input_gate_weight", shape, {}, false};
      if (rest == "rg_lru.input_gate.b") return {p + "rg_lru.input_gate_bias", shape, {}, false};
      if (rest == "rg_lru.a_gate.w") return {p + "rg_lru.recurrent_gate_weight", shape, {}, false};
      if (rest == "rg_lru.a_gate.b") return {p + "rg_lru.recurrent_gate_bias", shape, {}, false};
      return {p + rest, shape, {}, false};  // linear_{x,y,out}.{weight,bias}
    }
    if (module == "attention_block") {
      static const std::map<std::string, std::string> names = {
          {"proj_q.weight", "q_proj.weight"}, {"proj_k.weight", "k_proj.weight"}, {"proj_v.weight", "v_proj.weight"},
          {"proj_final.weight", "o_proj.weight"}, {"proj_final.bias", "o_proj.bias"}};
      auto it = names.find(rest);
      if (it == names.end()) return unknown(official, shape);
      return {layer + "temporal_block." + it->second, shape, {}, false};
    }
    if (module == "mlp_block") {
      const std::string p = layer + "mlp_block.";
      const char* half = index.value_or(0) == 0 ? "gate_proj" : "up_proj";
      if (rest == "ffw_up.w") return {p + half + ".weight", {shape.at(2), shape.at(1)}, {}, true};
      if (rest == "ffw_up.b") return {p + half + ".bias", {shape.at(3)}, {}, false};
      if (rest == "ffw_down.weight") return {p + "down_proj.weight", shape, {}, false};
      if (rest == "ffw_down.bias") return {p + "down_proj.bias", shape, {}, false};
    }
    return unknown(official, shape);
  }

  [[nodiscard]] bool ignorable(std::string_view stored) const override { return stored == "lm_head.weight"; }

 private:
  static stored_param unknown(const std::string& official, const std::vector<std::size_t>& shape) {
    return {"(no transformers name for " + official + ")", shape, {}, false};
  }
};

// ---- the reader --------------------------------------------------------------------

/// Makes a parameter that no file holds: fills `out` (row-major, `shape`) for
/// the official parameter `name`. Used for random weights.
using weight_generator =
    std::function<void(const std::string& name, const std::vector<std::size_t>& shape, std::span<float> out)>;

/// Pulls parameters out of a source (or a generator) for the blocks that own them.
class weight_reader {
 public:
  /// Called with every stored tensor a block loads (its stored name and view).
  using observer = std::function<void(const stored_param& where, const tensor_view& stored)>;

  explicit weight_reader(const weight_source& source, const checkpoint_naming& naming = default_naming())
      : source_(&source), naming_(&naming) {}
  explicit weight_reader(weight_generator generator) : generator_(std::move(generator)), naming_(&default_naming()) {}

  /// A reader that loads nothing and records what the blocks ask for: small
  /// parameters come back as zeros, matrices without data. See parameters().
  [[nodiscard]] static weight_reader planner() {
    weight_reader r{weight_generator{}};
    r.planning_ = true;
    return r;
  }

  /// An official parameter the blocks asked for: its name and whole shape.
  struct parameter {
    std::string name;
    std::vector<std::size_t> shape;
    friend bool operator==(const parameter&, const parameter&) = default;
  };
  /// The parameters asked for so far, in order, each once.
  [[nodiscard]] const std::vector<parameter>& parameters() const noexcept { return planned_; }

  static const checkpoint_naming& default_naming() {
    static const official_naming naming;
    return naming;
  }

  /// Calls `f` with every stored tensor as it is loaded.
  void observe(observer f) { observer_ = std::move(f); }

  /// A small parameter as floats: the official `name` of shape `shape`, or
  /// its slice `index` along dimension 0 (shape[1:]).
  [[nodiscard]] aligned_vector<float> load(const std::string& name, const std::vector<std::size_t>& shape,
                                           std::optional<std::size_t> index = {}) {
    const std::size_t count = element_count(shape, index);
    aligned_vector<float> out(count);
    if (planning_) {
      plan(name, shape);
      return out;
    }
    copied_bytes_ += count * sizeof(float);
    if (generator_) {
      generate(name, shape, index, out);
      return out;
    }
    const auto [where, t, bytes] = fetch(name, shape, index);
    if (!convert_to_float(t->type, bytes, count, out.data()))
      fail(where, "has dtype " + std::string(dtype_name(t->type)) + "; weights must be F32, BF16, F16 or F64");
    if (where.transposed) out = transpose(out, stored_rows(where, count), count / stored_rows(where, count));
    return out;
  }

  /// A matrix: the official `name` of shape `shape` (or its slice `index`),
  /// whose natural layout is `natural`: [out, in] or [in, out]. The leading
  /// dimensions of a 3-D parameter (block-diagonal gates) count as rows.
  /// Returned in place -- no copy -- when the source's bytes outlive it and are
  /// F32, BF16 or F16; otherwise copied (F64 converted to F32).
  [[nodiscard]] weight_matrix load_matrix(const std::string& name, const std::vector<std::size_t>& shape,
                                          std::optional<std::size_t> index, weight_layout natural) {
    std::vector<std::size_t> logical(shape.begin() + (index ? 1 : 0), shape.end());
    const std::size_t cols = logical.back(), rows = element_count(shape, index) / cols;
    auto sizes = [&](weight_layout layout, std::size_t r, std::size_t c) {
      return layout == weight_layout::out_in ? std::pair{r, c} : std::pair{c, r};  // {out, in}
    };
    if (planning_) {
      plan(name, shape);
      const auto [out, in] = sizes(natural, rows, cols);
      return {dtype::f32, natural, nullptr, out, in, nullptr};
    }
    if (generator_) {
      aligned_vector<float> values(rows * cols);
      generate(name, shape, index, values);
      copied_bytes_ += values.size() * sizeof(float);
      const auto [out, in] = sizes(natural, rows, cols);
      return weight_matrix::from_floats(std::move(values), out, in, natural);
    }
    const auto [where, t, bytes] = fetch(name, shape, index);
    // A transposed matrix is the same map stored the other way round.
    const weight_layout layout =
        where.transposed ? (natural == weight_layout::out_in ? weight_layout::in_out : weight_layout::out_in) : natural;
    const auto [out, in] = where.transposed ? sizes(layout, cols, rows) : sizes(layout, rows, cols);
    const bool computable = t->type == dtype::f32 || t->type == dtype::bf16 || t->type == dtype::f16;
    const std::size_t size = dtype_size(t->type);
    if (computable && t->owner && reinterpret_cast<std::uintptr_t>(bytes) % size == 0) {
      in_place_bytes_ += rows * cols * size;
      return {t->type, layout, bytes, out, in, t->owner, /*in_place=*/true};
    }
    if (computable) {  // copy, keeping the type
      auto owned = std::make_shared<aligned_vector<float>>((rows * cols * size + 3) / 4);
      if (rows * cols != 0) std::memcpy(owned->data(), bytes, rows * cols * size);
      copied_bytes_ += owned->size() * sizeof(float);
      const auto* data = reinterpret_cast<const std::byte*>(owned->data());
      return {t->type, layout, data, out, in, std::move(owned)};
    }
    copied_bytes_ += rows * cols * sizeof(float);
    aligned_vector<float> values(rows * cols);
    if (!convert_to_float(t->type, bytes, rows * cols, values.data()))
      fail(where, "has dtype " + std::string(dtype_name(t->type)) + "; weights must be F32, BF16, F16 or F64");
    return weight_matrix::from_floats(std::move(values), out, in, layout);
  }

  /// Throws weight_error naming the first stored tensor no block loaded.
  void check_all_used() const {
    if (!source_) return;
    for (const auto& name : source_->names())
      if (!used_.contains(name) && !naming_->ignorable(name))
        throw weight_error(source_->origin() + ": unexpected tensor '" + name +
                           "': the config has no parameter of that name (more blocks in the file than in the config?)");
  }

  /// Prefixes messages of weight errors with where the loading is (e.g. "layer 3 (R)").
  void set_context(std::string context) { context_ = std::move(context); }

  [[nodiscard]] const checkpoint_naming& naming() const noexcept { return *naming_; }

  /// Bytes of parameters handed out in place (views of the source's memory map).
  [[nodiscard]] std::size_t in_place_bytes() const noexcept { return in_place_bytes_; }
  /// Bytes of parameters copied or converted into memory of their own.
  [[nodiscard]] std::size_t copied_bytes() const noexcept { return copied_bytes_; }

 private:
  struct fetched {
    stored_param where;
    const tensor_view* tensor;
    const std::byte* bytes;  // the requested slice
  };

  static std::size_t element_count(const std::vector<std::size_t>& shape, std::optional<std::size_t> index) {
    return ::griffin::element_count(std::span(shape).subspan(index ? 1 : 0));
  }

  static std::size_t stored_rows(const stored_param& where, std::size_t count) {
    // the stored 2-D matrix of a transposed parameter: its last dimension is the requested rows
    return count / where.shape.back();
  }

  static aligned_vector<float> transpose(const aligned_vector<float>& v, std::size_t rows, std::size_t cols) {
    aligned_vector<float> t(v.size());
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < cols; ++c) t[c * rows + r] = v[r * cols + c];
    return t;
  }

  [[noreturn]] void fail(const stored_param& where, const std::string& what) const {
    throw weight_error(source_->origin() + ": " + (context_.empty() ? "" : context_ + ": ") + "tensor '" + where.name +
                       "' " + what);
  }

  void plan(const std::string& name, const std::vector<std::size_t>& shape) {
    if (used_.insert(name).second) planned_.push_back({name, shape});
  }

  // "name" or "name[i]". Appended piece by piece: on "[" + std::to_string(i)
  // GCC 12 warns -Wrestrict, a false positive (GCC bug 105329).
  static std::string indexed_name(const std::string& name, std::optional<std::size_t> index) {
    std::string s = name;
    if (index) s.append("[").append(std::to_string(*index)).append("]");
    return s;
  }

  void generate(const std::string& name, const std::vector<std::size_t>& shape, std::optional<std::size_t> index,
                std::span<float> out) {
    // The generator makes the whole official tensor; a slice is cut from it.
    const std::string key = indexed_name(name, index);
    if (!used_.insert(key).second) throw weight_error("tensor '" + key + "' loaded twice (a bug in griffin)");
    if (!index) return generator_(name, shape, out);
    aligned_vector<float> all(element_count(shape, {}));
    generator_(name, shape, all);
    std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(*index * out.size()), out.size(), out.begin());
  }

  fetched fetch(const std::string& name, const std::vector<std::size_t>& shape, std::optional<std::size_t> index) {
    const stored_param where = naming_->locate(name, shape, index);
    const tensor_view* t = source_->find(where.name);
    const std::string official = indexed_name(name, index);
    const std::string alias = where.name == name ? "" : " (" + official + ")";
    if (!t) fail(where, "is missing" + alias + "; expected shape " + shape_string(where.shape));
    if (t->shape != where.shape)
      fail(where, "has shape " + shape_string(t->shape) + ", expected " + shape_string(where.shape) + alias);
    const std::size_t slice = where.index ? *where.index : 0;
    if (where.index && slice >= where.shape.at(0)) fail(where, "has no slice " + std::to_string(slice));
    used_.insert(where.name);
    if (observer_) observer_(where, *t);
    const std::size_t per_slice = where.index ? element_count(where.shape, where.index) : 0;
    return {where, t, t->bytes.data() + slice * per_slice * dtype_size(t->type)};
  }

  const weight_source* source_ = nullptr;
  weight_generator generator_;
  const checkpoint_naming* naming_;
  observer observer_;
  std::set<std::string, std::less<>> used_;
  std::string context_;
  std::size_t in_place_bytes_ = 0;
  std::size_t copied_bytes_ = 0;
  bool planning_ = false;
  std::vector<parameter> planned_;
};

}  // namespace griffin
