// griffin/weight_matrix.hpp: a weight matrix as the checkpoint stores it --
// float, bfloat16 or float16, out x in or in x out -- viewed in place (in the
// file's memory map) or owned, and multiplied without conversion or transpose.
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <span>
#include <string>
#include <vector>

#include "griffin/dtype.hpp"
#include "griffin/kernels/convert.hpp"
#include "griffin/kernels/matmul.hpp"
#include "griffin/tensor.hpp"

namespace griffin {

/// A matrix of weights that maps `in` features to `out` features.
class weight_matrix {
 public:
  weight_matrix() = default;

  /// A view of `data` (kept alive by `owner`), or owned storage when `owner`
  /// owns `data`; `in_place` says the former (a checkpoint's memory map).
  weight_matrix(dtype type, weight_layout layout, const std::byte* data, std::size_t out, std::size_t in,
                std::shared_ptr<const void> owner, bool in_place = false)
      : type_(type), layout_(layout), data_(data), out_(out), in_(in), owner_(std::move(owner)), in_place_(in_place) {
    if (type != dtype::f32 && type != dtype::bf16 && type != dtype::f16)
      throw std::invalid_argument("weight_matrix: dtype " + std::string(dtype_name(type)) + " is not F32, BF16 or F16" +
                                  (type == dtype::i8 ? " (int8 weights come from weight_matrix::converted)" : ""));
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

  /// The same map stored as `to` in `layout`: F32, BF16, F16, or I8 (one
  /// scale per output channel, the absolute maximum of its weights / 127,
  /// rounded to nearest; out x in only), always owned. Converting to the
  /// stored type and layout returns *this (still in place).
  [[nodiscard]] weight_matrix converted(dtype to, weight_layout layout = weight_layout::out_in) const {
    if (to == type_ && layout == layout_) return *this;
    if (to != dtype::f32 && to != dtype::bf16 && to != dtype::f16 && to != dtype::i8)
      throw std::invalid_argument("weight_matrix: cannot convert to " + std::string(dtype_name(to)));
    if (to == dtype::i8 && layout != weight_layout::out_in)
      throw std::invalid_argument("weight_matrix: int8 weights are stored out x in only");
    std::vector<float> row(in_);
    // The elements, then (int8) the scales at the next 64-byte boundary.
    const std::size_t scale_offset = (out_ * in_ * dtype_size(to) + 63) / 64 * 64;
    auto owned = std::make_shared<aligned_vector<std::byte>>(scale_offset + (to == dtype::i8 ? out_ * 4 : 0));
    weight_matrix m;
    float* scales = to == dtype::i8 ? reinterpret_cast<float*>(owned->data() + scale_offset) : nullptr;
    std::byte* dst = owned->data();
    // Element (n, k) goes to index n * in + k (out x in) or n + k * out (in x out).
    const std::size_t step = layout == weight_layout::out_in ? 1 : out_;
    for (std::size_t n = 0; n < out_; ++n) {
      if (layout_ == weight_layout::out_in)
        row_to_float(n, row.data());
      else
        for (std::size_t k = 0; k < in_; ++k) row[k] = element(n, k);
      const std::size_t first = layout == weight_layout::out_in ? n * in_ : n;
      if (to == dtype::i8) {
        float amax = 0.0f;
        for (float v : row) amax = std::max(amax, std::abs(v));
        const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
        scales[n] = scale;
        for (std::size_t k = 0; k < in_; ++k) {
          const auto q = static_cast<std::int8_t>(std::clamp(std::nearbyint(row[k] / scale), -127.0f, 127.0f));
          std::memcpy(dst + first + k * step, &q, 1);
        }
      } else {
        for (std::size_t k = 0; k < in_; ++k) {
          const std::size_t i = first + k * step;
          if (to == dtype::f32) {
            std::memcpy(dst + 4 * i, &row[k], 4);
          } else {
            const std::uint16_t bits = to == dtype::bf16 ? float_to_bf16(row[k]) : float_to_f16(row[k]);
            std::memcpy(dst + 2 * i, &bits, 2);
          }
        }
      }
    }
    m.scale_ = scales;
    m.type_ = to;
    m.layout_ = layout;
    m.data_ = owned->data();
    m.out_ = out_;
    m.in_ = in_;
    m.owner_ = std::move(owned);
    return m;
  }

  [[nodiscard]] dtype type() const noexcept { return type_; }
  /// int8 only: the scale of each output channel [out]; empty otherwise.
  [[nodiscard]] std::span<const float> scales() const noexcept {
    return scale_ ? std::span<const float>(scale_, out_) : std::span<const float>();
  }
  /// Weight (n, k) from input k to output n, as a float (scaled for int8).
  [[nodiscard]] float element(std::size_t n, std::size_t k) const {
    assert(n < out_ && k < in_);
    const std::size_t i = layout_ == weight_layout::out_in ? n * in_ + k : k * out_ + n;
    switch (type_) {
      case dtype::i8: {
        std::int8_t q;
        std::memcpy(&q, data_ + i, 1);
        return static_cast<float>(q) * scale_[n];
      }
      case dtype::bf16: return kernels::load_scalar(reinterpret_cast<const bfloat16*>(data_), i);
      case dtype::f16: return kernels::load_scalar(reinterpret_cast<const float16*>(data_), i);
      default: return kernels::load_scalar(reinterpret_cast<const float*>(data_), i);
    }
  }
  [[nodiscard]] weight_layout layout() const noexcept { return layout_; }
  [[nodiscard]] std::size_t out() const noexcept { return out_; }
  [[nodiscard]] std::size_t in() const noexcept { return in_; }
  [[nodiscard]] std::size_t bytes() const noexcept {
    return out_ * in_ * dtype_size(type_) + (scale_ ? out_ * sizeof(float) : 0);
  }
  /// The stored elements.
  [[nodiscard]] const std::byte* data() const noexcept { return data_; }
  /// True when the elements are a checkpoint's bytes, used where the file is mapped.
  [[nodiscard]] bool in_place() const noexcept { return in_place_; }
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
    if (scale_ && layout_ == weight_layout::out_in) m.scale_ = scale_ + first;
    return m;
  }

  /// y [M, out] (row stride ldy) = x [M, in] (row stride ldx) W + bias [out]
  /// (bias may be null); added to y when `accumulate`. Output channels are
  /// split over `pool` when given. See kernels/matmul.hpp for how each stored
  /// type computes.
  template <class Arch = default_arch>
  void apply(const float* x, std::size_t ldx, const float* bias, float* y, std::size_t ldy, std::size_t M,
             bool accumulate = false, thread_pool* pool = nullptr) const {
    const kernels::matrix_view<const float> xv{x, M, in_, ldx};
    const kernels::matrix_view<float> yv{y, M, out_, ldy};
    visit([&](auto w) { kernels::matmul<Arch>(xv, w, bias, yv, accumulate, pool); });
  }

  /// f(view<T>()) for the stored type T (F32, BF16, F16, I8): the one place
  /// a stored type becomes a kernel's element type.
  template <class F>
  decltype(auto) visit(F&& f) const {
    switch (type_) {
      case dtype::bf16: return f(view<bfloat16>());
      case dtype::f16: return f(view<float16>());
      case dtype::i8: return f(view<std::int8_t>());
      default: return f(view<float>());
    }
  }

  /// The matrix as the kernels take it, its elements read as T: T must be
  /// the stored type (bfloat16 for BF16, and so on).
  template <kernels::WeightElement T>
  [[nodiscard]] kernels::weights_view<T> view() const noexcept {
    assert(type_ == dtype_of<T>);
    const auto* w = reinterpret_cast<const T*>(data_);
    return layout_ == weight_layout::out_in ? kernels::out_in(w, out_, in_, scale_) : kernels::in_out(w, out_, in_, scale_);
  }

  /// Stored row r of an out_in matrix (e.g. one token's embedding) as floats.
  void row_to_float(std::size_t r, float* out) const {
    assert(layout_ == weight_layout::out_in && r < out_);
    if (type_ == dtype::i8) {
      for (std::size_t k = 0; k < in_; ++k) out[k] = element(r, k);
      return;
    }
    const std::byte* row = data_ + r * in_ * dtype_size(type_);
    convert_to_float(type_, row, in_, out);
  }

 private:
  dtype type_ = dtype::f32;
  weight_layout layout_ = weight_layout::out_in;
  const std::byte* data_ = nullptr;
  std::size_t out_ = 0;
  std::size_t in_ = 0;
  std::shared_ptr<const void> owner_;
  bool in_place_ = false;
  const float* scale_ = nullptr;  // int8: [out], in owner_'s buffer
};

}  // namespace griffin
