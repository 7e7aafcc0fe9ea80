// griffin/tensor.hpp: the owning dense tensor that crosses the public API
// (tokens [B, T], segment positions [B, T], logits [B, T, V]) and the
// 64-byte aligned vector every weight and activation buffer lives in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <numeric>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <xsimd/xsimd.hpp>

namespace griffin {

/// A std::vector whose storage is aligned for the widest SIMD load (64 bytes).
template <class T>
using aligned_vector = std::vector<T, xsimd::aligned_allocator<T, 64>>;

/// Formats a shape as `[2, 24, 256]`, the way error messages print shapes.
inline std::string shape_string(std::span<const std::size_t> shape) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

/// The number of elements of a tensor of `shape` (1 for rank 0): the
/// product of its extents. Shapes read from a file are checked for overflow
/// where they are parsed (safetensors.hpp), before they reach this.
[[nodiscard]] inline std::size_t element_count(std::span<const std::size_t> shape) noexcept {
  return std::accumulate(shape.begin(), shape.end(), std::size_t{1}, std::multiplies<>{});
}

/// A dense, row-major tensor that owns its elements.
///
/// Example: logits of a forward pass are a `tensor<float>` of shape
/// [B, T, V]; element (b, t, v) is `logits.data()[(b * T + t) * V + v]`,
/// or `logits(b, t, v)`.
template <class T>
class tensor {
 public:
  tensor() = default;

  /// A tensor of the given shape with every element set to `fill`.
  explicit tensor(std::vector<std::size_t> shape, T fill = T{})
      : shape_(std::move(shape)), data_(element_count(shape_), fill) {}

  /// A tensor of the given shape holding `values` (row-major); their count must match.
  tensor(std::vector<std::size_t> shape, std::span<const T> values)
      : shape_(std::move(shape)), data_(values.begin(), values.end()) {
    if (data_.size() != element_count(shape_))
      throw std::invalid_argument("griffin::tensor: " + std::to_string(values.size()) +
                                  " values do not fill shape " + shape_string(shape_));
  }

  /// Gives the tensor `shape`, keeping its storage when that is large enough
  /// (a buffer reused across calls allocates only when it must grow).
  /// Element values after a reshape are unspecified until written.
  void reshape(std::vector<std::size_t> shape) {
    const std::size_t n = element_count(shape);
    if (n > data_.capacity()) {
      data_ = aligned_vector<T>();  // no copy of the old elements into the new block
      data_.reserve(n);
    }
    data_.resize(n);
    shape_ = std::move(shape);
  }

  [[nodiscard]] std::span<const std::size_t> shape() const noexcept { return shape_; }
  [[nodiscard]] std::size_t rank() const noexcept { return shape_.size(); }
  [[nodiscard]] std::size_t extent(std::size_t dim) const { return shape_.at(dim); }
  [[nodiscard]] std::size_t size() const noexcept { return data_.size(); }
  [[nodiscard]] T* data() noexcept { return data_.data(); }
  [[nodiscard]] const T* data() const noexcept { return data_.data(); }
  [[nodiscard]] std::span<T> values() noexcept { return data_; }
  [[nodiscard]] std::span<const T> values() const noexcept { return data_; }

  /// Element access by one index per dimension, bounds-checked.
  template <class... I>
  [[nodiscard]] T& operator()(I... index) {
    return data_[offset({static_cast<std::size_t>(index)...})];
  }
  template <class... I>
  [[nodiscard]] const T& operator()(I... index) const {
    return data_[offset({static_cast<std::size_t>(index)...})];
  }

 private:
  std::size_t offset(std::initializer_list<std::size_t> index) const {
    if (index.size() != shape_.size())
      throw std::out_of_range("griffin::tensor: " + std::to_string(index.size()) +
                              " indices for a tensor of rank " + std::to_string(shape_.size()));
    std::size_t flat = 0, dim = 0;
    for (std::size_t i : index) {
      if (i >= shape_[dim])
        throw std::out_of_range("griffin::tensor: index " + std::to_string(i) + " out of range in dimension " +
                                std::to_string(dim) + " of shape " + shape_string(shape_));
      flat = flat * shape_[dim++] + i;
    }
    return flat;
  }

  std::vector<std::size_t> shape_;
  aligned_vector<T> data_;
};

}  // namespace griffin
