// griffin/conv1d.hpp: the recurrent block's causal depthwise convolution,
// matching recurrentgemma torch/layers.py Conv1D.forward.
//
//   out[t, c] = b[c] + sum_{k < tw} w[tw - 1 - k, c] * x[t - k, c]
//
// In a full pass a term is dropped when a document starts inside (t - k, t]
// (segment_pos == 0 at one of t-k+1 .. t): the convolution never looks across
// a document start. Before the chunk it reads `history`, the last tw - 1
// inputs of the stream (oldest first, zeros where none or across a document
// start), so a chunk, a single decode step and a full pass are one code path.
//
// Worked example, tw = 4, segment_pos = [5, 6, 0, 1]: out[3] sums x[3], x[2]
// and drops x[1], x[0] (the document starting at t = 2 hides them); out[1]
// sums x[1], x[0] and history[2], history[1].
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>

#include "griffin/block_io.hpp"
#include "griffin/config.hpp"
#include "griffin/kernels/simd.hpp"
#include "griffin/tensor.hpp"
#include "griffin/weights.hpp"

namespace griffin {
namespace kernels {

/// Arguments of one conv1d call over one batch row.
struct conv1d_args {
  const float* x = nullptr;               // [T, E], row stride ldx
  std::size_t ldx = 0;
  const float* history = nullptr;         // [tw - 1, E] oldest first, or null for zeros
  const std::int32_t* segment_pos = nullptr;  // [T]
  const float* w = nullptr;               // [tw, E]
  const float* b = nullptr;               // [E]
  float* out = nullptr;                   // [T, E], row stride ldo
  std::size_t ldo = 0;
  std::size_t length = 0;                 // T
  std::size_t width = 0;                  // E
  std::size_t temporal_width = 4;         // tw
  std::size_t ldw = 0;                    // row stride of w and history; 0: width
};

namespace detail {
inline std::size_t conv1d_ldw(const conv1d_args& a) noexcept { return a.ldw ? a.ldw : a.width; }
}  // namespace detail

/// Channels [c0, c1) of `a`: each channel's convolution is its own, so the
/// slices of a row may run on different threads.
inline conv1d_args conv1d_channels(const conv1d_args& a, std::size_t c0, std::size_t c1) noexcept {
  conv1d_args s = a;
  s.ldw = detail::conv1d_ldw(a);
  s.x += c0;
  if (s.history) s.history += c0;
  s.w += c0;
  s.b += c0;
  s.out += c0;
  s.width = c1 - c0;
  return s;
}

namespace detail {
// Row of the stream k steps before t (k <= t: the chunk; else history), or null if it is all zeros.
inline const float* conv1d_source(const conv1d_args& a, std::size_t t, std::size_t k) noexcept {
  if (k <= t) return a.x + (t - k) * a.ldx;
  if (!a.history) return nullptr;
  return a.history + (a.temporal_width - 1 - (k - t)) * conv1d_ldw(a);
}
// How many steps back position t may look (the document-start mask).
inline std::size_t conv1d_lookback(const conv1d_args& a, std::size_t t) noexcept {
  const std::ptrdiff_t s = last_document_start(a.segment_pos, static_cast<std::ptrdiff_t>(t));
  const std::size_t max_k = a.temporal_width - 1;
  return s < 0 ? max_k : std::min(max_k, t - static_cast<std::size_t>(s));
}
}  // namespace detail

/// Scalar reference.
inline void conv1d_scalar(const conv1d_args& a) {
  const std::size_t ldw = detail::conv1d_ldw(a);
  for (std::size_t t = 0; t < a.length; ++t) {
    const std::size_t look = detail::conv1d_lookback(a, t);
    for (std::size_t c = 0; c < a.width; ++c) {
      float acc = 0.0f;
      for (std::size_t k = 0; k <= look; ++k)
        if (const float* src = detail::conv1d_source(a, t, k)) acc += src[c] * a.w[(a.temporal_width - 1 - k) * ldw + c];
      a.out[t * a.ldo + c] = acc + a.b[c];
    }
  }
}

/// SIMD kernel with the contract of `conv1d_scalar`, vectorised over channels.
template <class Arch = default_arch>
inline void conv1d(const conv1d_args& a) {
  using B = batch<Arch>;
  const std::size_t tw = a.temporal_width, E = a.width, ldw = detail::conv1d_ldw(a);
  assert(tw >= 1 && tw <= max_conv1d_temporal_width);
  for (std::size_t t = 0; t < a.length; ++t) {
    const std::size_t look = detail::conv1d_lookback(a, t);
    const float* src[max_conv1d_temporal_width];
    const float* wk[max_conv1d_temporal_width];
    std::size_t terms = 0;
    for (std::size_t k = 0; k <= look; ++k)
      if (const float* s = detail::conv1d_source(a, t, k)) {
        src[terms] = s;
        wk[terms++] = a.w + (tw - 1 - k) * ldw;
      }
    float* out = a.out + t * a.ldo;
    simd_for<Arch>(
        E,
        [&](std::size_t c) {
          B acc(0.0f);
          for (std::size_t i = 0; i < terms; ++i) acc = acc + B::load_unaligned(src[i] + c) * B::load_unaligned(wk[i] + c);
          (acc + B::load_unaligned(a.b + c)).store_unaligned(out + c);
        },
        [&](std::size_t c) {
          float acc = 0.0f;
          for (std::size_t i = 0; i < terms; ++i) acc += src[i][c] * wk[i][c];
          out[c] = acc + a.b[c];
        });
  }
}

/// The history after a chunk: the last tw - 1 rows of (history ++ x), zeroed
/// where they precede the chunk's last document start. `next`: [tw - 1, E],
/// must not alias `a.history`. For a whole row (a.ldw 0 or width).
inline void conv1d_next_history(const conv1d_args& a, float* next) {
  assert(detail::conv1d_ldw(a) == a.width);
  const std::size_t keep = a.temporal_width - 1, E = a.width, T = a.length;
  const std::ptrdiff_t start = last_document_start(a.segment_pos, static_cast<std::ptrdiff_t>(T) - 1);
  for (std::size_t i = 0; i < keep; ++i) {
    // Stream index of row i, counted from the first history row.
    const std::size_t s = T + i;
    float* dst = next + i * E;
    const bool hidden = start >= 0 && s < keep + static_cast<std::size_t>(start);
    const float* src = s >= keep ? a.x + (s - keep) * a.ldx : (a.history ? a.history + s * E : nullptr);
    for (std::size_t c = 0; c < E; ++c) dst[c] = (hidden || !src) ? 0.0f : src[c];
  }
}

}  // namespace kernels

/// The Conv1D layer (reference: layers.Conv1D): weights `w` [tw, E], `b` [E].
struct conv1d {
  struct weights {
    aligned_vector<float> w;  // [tw, E]
    aligned_vector<float> b;  // [E]
    std::size_t temporal_width = 4;
    std::size_t width = 0;
  };

  static weights load(weight_reader& r, const std::string& prefix, std::size_t temporal_width, std::size_t width) {
    return {r.load(prefix + ".w", {temporal_width, width}), r.load(prefix + ".b", {width}), temporal_width, width};
  }
};

}  // namespace griffin
