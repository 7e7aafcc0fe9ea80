// griffin/weight_matrix.hpp: a weight matrix as the checkpoint stores it --
// float, bfloat16 or float16, out x in or in x out -- viewed in place (in the
// file's memory map) or owned, and multiplied without conversion or transpose.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "griffin/dtype.hpp"
#include "griffin/kernels/convert.hpp"
#include "griffin/kernels/matmul.hpp"
#include "griffin/tensor.hpp"

namespace griffin {

/// How a matrix mapping `in` features to `out` features is stored.
enum class weight_layout : std::uint8_t {
  out_in,  ///< [out, in]: torch nn.Linear, embeddings
  in_out,  ///< [in, out]: einsum weights (the reference's ffw_up.w, the RG-LRU gates)
};

/// A matrix of weights that maps `in` features to `out` features.
class weight_matrix {
 public:
  weight_matrix() = default;

  /// A view of `data` (kept alive by `owner`), or owned storage when `owner` owns `data`.
  weight_matrix(dtype type, weight_layout layout, const std::byte* data, std::size_t out, std::size_t in,
                std::shared_ptr<const void> owner)
      : type_(type), layout_(layout), data_(data), out_(out), in_(in), owner_(std::move(owner)) {
    if (type != dtype::f32 && type != dtype::bf16 && type != dtype::f16)
      throw std::invalid_argument("weight_matrix: dtype " + std::string(dtype_name(type)) + " is not F32, BF16 or F16");
    if (reinterpret_cast<std::uintptr_t>(data) % dtype_size(type) != 0)
      throw std::invalid_argument("weight_matrix: data not aligned to its element size");
  }

  /// Owned float weights.
  static weight_matrix from_floats(aligned_vector<float> values, std::size_t out, std::size_t in, weight_layout layout) {
    assert(values.size() == out * in);
    auto owned = std::make_shared<aligned_vector<float>>(std::move(values));
    const auto* data = reinterpret_cast<const std::byte*>(owned->data());
    return {dtype::f32, layout, data, out, in, std::move(owned)};
  }

  [[nodiscard]] dtype type() const noexcept { return type_; }
  [[nodiscard]] weight_layout layout() const noexcept { return layout_; }
  [[nodiscard]] std::size_t out() const noexcept { return out_; }
  [[nodiscard]] std::size_t in() const noexcept { return in_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return out_ * in_ * dtype_size(type_); }
  /// The stored elements.
  [[nodiscard]] const std::byte* data() const noexcept { return data_; }
  /// What keeps the elements alive: a file's memory mapping, or an owned buffer.
  [[nodiscard]] const std::shared_ptr<const void>& owner() const noexcept { return owner_; }

  /// Stored rows [first, first + count) as a matrix of the same layout: for
  /// in_out storage, the map from those `count` inputs to all outputs (one
  /// diagonal block of a block-diagonal map when out == count).
  [[nodiscard]] weight_matrix rows(std::size_t first, std::size_t count) const {
    const std::size_t cols = layout_ == weight_layout::out_in ? in_ : out_;
    weight_matrix m = *this;
    m.data_ = data_ + first * cols * dtype_size(type_);
    (layout_ == weight_layout::out_in ? m.out_ : m.in_) = count;
    return m;
  }

  /// y [M, out] (row stride ldy) = x [M, in] (row stride ldx) W + bias [out]
  /// (bias may be null); added to y when `accumulate`.
  template <class Arch = default_arch>
  void apply(const float* x, std::size_t ldx, const float* bias, float* y, std::size_t ldy, std::size_t M,
             bool accumulate = false) const {
    switch (type_) {
      case dtype::bf16: return apply_as<Arch, bfloat16>(x, ldx, bias, y, ldy, M, accumulate);
      case dtype::f16: return apply_as<Arch, float16>(x, ldx, bias, y, ldy, M, accumulate);
      default: return apply_as<Arch, float>(x, ldx, bias, y, ldy, M, accumulate);
    }
  }

  /// Stored row r of an out_in matrix (e.g. one token's embedding) as floats.
  void row_to_float(std::size_t r, float* out) const {
    assert(layout_ == weight_layout::out_in && r < out_);
    const std::byte* row = data_ + r * in_ * dtype_size(type_);
    convert_to_float(type_, row, in_, out);
  }

 private:
  template <class Arch, class T>
  void apply_as(const float* x, std::size_t ldx, const float* bias, float* y, std::size_t ldy, std::size_t M,
                bool accumulate) const {
    const auto* w = reinterpret_cast<const T*>(data_);
    const kernels::matrix_view<const float> xv{x, M, in_, ldx};
    const kernels::matrix_view<float> yv{y, M, out_, ldy};
    if (layout_ == weight_layout::out_in)
      kernels::matmul<Arch>(xv, kernels::matrix_view<const T>{w, out_, in_, in_}, bias, yv, accumulate);
    else
      kernels::matmul_in_out<Arch>(xv, kernels::matrix_view<const T>{w, in_, out_, out_}, bias, yv, accumulate);
  }

  dtype type_ = dtype::f32;
  weight_layout layout_ = weight_layout::out_in;
  const std::byte* data_ = nullptr;
  std::size_t out_ = 0;
  std::size_t in_ = 0;
  std::shared_ptr<const void> owner_;
};

}  // namespace griffin
