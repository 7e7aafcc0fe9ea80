// griffin/weights.hpp: where a model's parameters come from. A weight_source
// maps the official recurrentgemma PyTorch parameter names
// ("blocks.3.recurrent_block.rg_lru.a_param", ...) to tensors; a
// weight_reader pulls them out for the blocks, checking each shape and
// converting to float, and finally refuses tensors nobody asked for.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/dtype.hpp"
#include "griffin/safetensors.hpp"
#include "griffin/tensor.hpp"

namespace griffin {

/// A missing tensor, a tensor of the wrong shape or type, or a tensor the
/// schedule has no place for. The message names the tensor and its source.
class weight_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A set of named tensors, in the official recurrentgemma PyTorch naming.
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

/// The tensors of one safetensors file.
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

/// Tensors held in memory: random weights, or weights a program builds itself.
class memory_source final : public weight_source {
 public:
  explicit memory_source(std::string origin = "in-memory weights") : origin_(std::move(origin)) {}

  /// Adds (or replaces) a tensor.
  void add(tensor_record record) {
    auto& slot = records_[record.name];
    slot = std::move(record);
    views_[slot.name] = tensor_view{slot.name, slot.type, slot.shape, slot.bytes};
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

/// Makes a parameter that no file holds: fills `out` (row-major, `shape`) for
/// the tensor called `name`. Used for random weights.
using weight_generator =
    std::function<void(const std::string& name, const std::vector<std::size_t>& shape, std::span<float> out)>;

/// Pulls tensors out of a source (or a generator) for the blocks that own them.
class weight_reader {
 public:
  /// Called with every tensor handed out: lets a caller record them.
  using observer = std::function<void(const std::string& name, const std::vector<std::size_t>& shape,
                                      std::span<const float> values)>;

  explicit weight_reader(const weight_source& source) : source_(&source) {}
  explicit weight_reader(weight_generator generator) : generator_(std::move(generator)) {}

  /// Calls `f` with every tensor as it is loaded.
  void observe(observer f) { observer_ = std::move(f); }

  /// The tensor `name` as floats, after checking that its shape is `shape`.
  [[nodiscard]] aligned_vector<float> load(const std::string& name, const std::vector<std::size_t>& shape) {
    aligned_vector<float> out;
    if (generator_) {
      out.resize(std::accumulate(shape.begin(), shape.end(), std::size_t{1}, std::multiplies<>{}));
      generator_(name, shape, out);
    } else {
      const tensor_view* t = source_->find(name);
      if (!t)
        throw weight_error(source_->origin() + ": missing tensor '" + name + "' (expected shape " + shape_string(shape) + ")");
      if (t->shape != shape)
        throw weight_error(source_->origin() + ": tensor '" + name + "' has shape " + shape_string(t->shape) +
                           ", the config needs " + shape_string(shape));
      out.resize(t->element_count());
      if (!convert_to_float(t->type, t->bytes.data(), out.size(), out.data()))
        throw weight_error(source_->origin() + ": tensor '" + name + "' has dtype " + std::string(dtype_name(t->type)) +
                           "; weights must be F32, BF16, F16 or F64");
    }
    if (!used_.insert(name).second) throw weight_error("tensor '" + name + "' loaded twice (a bug in griffin)");
    if (observer_) observer_(name, shape, out);
    loaded_bytes_ += out.size() * sizeof(float);
    return out;
  }

  /// Bytes of float parameters handed out so far.
  [[nodiscard]] std::size_t loaded_bytes() const noexcept { return loaded_bytes_; }

  /// Throws weight_error naming the first tensor of the source that no block loaded.
  void check_all_used() const {
    if (!source_) return;
    for (const auto& name : source_->names())
      if (!used_.contains(name))
        throw weight_error(source_->origin() + ": unexpected tensor '" + name +
                           "': the config has no parameter of that name (more blocks in the file than in the config?)");
  }

 private:
  const weight_source* source_ = nullptr;
  weight_generator generator_;
  observer observer_;
  std::set<std::string, std::less<>> used_;
  std::size_t loaded_bytes_ = 0;
};

}  // namespace griffin
