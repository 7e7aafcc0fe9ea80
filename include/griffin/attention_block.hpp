// griffin/attention_block.hpp: multi-query attention, matching recurrentgemma
// torch/modules.py LocalAttentionBlock.forward:
//
//   q = rope(proj_q(x)) [B, T, H, hd];  k = rope(proj_k(x)), v = proj_v(x) [B, T, 1, hd]
//   logits = (q . k) * hd^-0.5, masked; probs = softmax(logits) in float32
//   out = proj_final(probs @ v)
//
// RoPE (reference: _apply_rope) rotates the first half of each head's
// dimensions at the token's segment position; that half is split into two
// quarters that rotate against each other, frequencies 10000^(-2i / (hd/2)).
//
// Two temporal mixers share this code and differ in what a query may see and
// keep:
// - local_attention_block (A): itself and the W tokens before it in its
//   document (W + 1 keys); decode keeps a ring buffer of the last W keys and
//   values, so its memory is constant however long the sequence.
// - global_attention_block (G): every earlier token of its document; the
//   cache grows with the sequence. Bound to a config block of kind
//   "attention", its context is limited to the config's window (it computes
//   what the reference computes only while the window does not slide): the
//   model refuses a longer document before any work is done.
#pragma once

#include <algorithm>
#include <cmath>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "griffin/block_io.hpp"
#include "griffin/config.hpp"
#include "griffin/kernels/matmul.hpp"
#include "griffin/kernels/simd.hpp"
#include "griffin/linear.hpp"
#include "griffin/session.hpp"
#include "griffin/weights.hpp"

namespace griffin {
namespace kernels {

/// RoPE on one head vector v [hd] at position `pos` (reference: _apply_rope),
/// with `inv_frequencies` [hd / 4] = 1 / 10000^(2i / (hd / 2)).
inline void apply_rope(float* v, std::size_t head_dim, const float* inv_frequencies, std::int32_t pos) {
  const std::size_t quarter = head_dim / 4;
  for (std::size_t i = 0; i < quarter; ++i) {
    const float angle = static_cast<float>(pos) * inv_frequencies[i];
    const float sin = std::sin(angle), cos = std::cos(angle);
    const float first = v[i], second = v[quarter + i];
    v[i] = first * cos - second * sin;
    v[quarter + i] = second * cos + first * sin;
  }
}

/// The keys and values a chunk can look back on, oldest first: a ring buffer
/// of `capacity` rows [hd] whose oldest row is at slot `start`. A growing
/// (global) cache is the case start = 0, capacity = count.
struct kv_history {
  const float* keys = nullptr;    // [capacity, hd]
  const float* values = nullptr;  // [capacity, hd]
  std::size_t count = 0;
  std::size_t start = 0;
  std::size_t capacity = 0;
  std::size_t head_dim = 0;

  [[nodiscard]] std::size_t slot(std::size_t j) const noexcept { return (start + j) % capacity; }
  [[nodiscard]] const float* key(std::size_t j) const noexcept { return keys + slot(j) * head_dim; }
  [[nodiscard]] const float* value(std::size_t j) const noexcept { return values + slot(j) * head_dim; }
};

/// Arguments of multi-query attention over one batch row's chunk.
struct attention_args {
  const float* q = nullptr;  // [T, H, hd] after RoPE
  const float* k = nullptr;  // [T, hd] after RoPE
  const float* v = nullptr;  // [T, hd]
  const std::int32_t* segment_pos = nullptr;  // [T]
  kv_history past;           // before the chunk, all in the current document
  float* out = nullptr;      // [T, H, hd]
  float* scores = nullptr;   // [H, past.count + T] scratch
  std::size_t length = 0;    // T
  std::size_t num_heads = 0; // H
  std::size_t head_dim = 0;  // hd
  std::size_t window = 0;    // earlier tokens a query may see; SIZE_MAX for global
};

/// For each query t, the keys it sees: past rows [past_lo, past.count) and
/// chunk rows [chunk_lo, t].
struct visible_keys {
  std::size_t past_lo, past_count, chunk_lo;
};

inline visible_keys keys_visible_to(const attention_args& a, std::size_t t) noexcept {
  std::ptrdiff_t s = static_cast<std::ptrdiff_t>(t);
  while (s >= 0 && a.segment_pos[s] != 0) --s;  // the query's document start in the chunk, or -1
  std::size_t chunk_lo = s < 0 ? 0 : static_cast<std::size_t>(s);
  if (a.window < t) chunk_lo = std::max(chunk_lo, t - a.window);
  std::size_t past_count = s < 0 ? a.past.count : 0, past_lo = 0;
  const std::size_t reach = a.past.count + t;  // distance to the oldest past row
  if (a.window < reach) past_lo = std::min(past_count, reach - a.window);
  return {past_lo, past_count, chunk_lo};
}

/// A part of one row's attention: queries [t0, t1) and heads [h0, h1). Parts
/// are independent (each writes only its own outputs and scores rows), and a
/// query's arithmetic is the same whichever part computes it.
struct attention_part {
  std::size_t t0 = 0, t1 = SIZE_MAX, h0 = 0, h1 = SIZE_MAX;
};

namespace detail {
// The shared body; Dot and Axpy are the SIMD or scalar kernels.
template <class Dot, class Axpy>
inline void attention_impl(const attention_args& a, Dot dot, Axpy axpy, attention_part part = {}) {
  const std::size_t hd = a.head_dim, H = a.num_heads;
  const std::size_t h0 = std::min(part.h0, H), h1 = std::min(part.h1, H);
  // hd^-0.5 as the reference applies it: a Python double cast to float32.
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  for (std::size_t t = part.t0; t < std::min(part.t1, a.length); ++t) {
    const visible_keys vis = keys_visible_to(a, t);
    const std::size_t n_past = vis.past_count - vis.past_lo, n = n_past + (t + 1 - vis.chunk_lo);
    // Keys, then values, are read once for all H heads (multi-query: they
    // are shared), each head's arithmetic in the same order as one head alone.
    float* scores = a.scores;  // [H, n]
    for (std::size_t j = 0; j < n; ++j) {
      const float* key = j < n_past ? a.past.key(vis.past_lo + j) : a.k + (vis.chunk_lo + j - n_past) * hd;
      for (std::size_t h = h0; h < h1; ++h) scores[h * n + j] = dot(a.q + (t * H + h) * hd, key, hd) * scale;
    }
    for (std::size_t h = h0; h < h1; ++h) {
      float* sh = scores + h * n;
      float max = -std::numeric_limits<float>::infinity();
      for (std::size_t j = 0; j < n; ++j) max = std::max(max, sh[j]);
      float sum = 0.0f;
      for (std::size_t j = 0; j < n; ++j) sum += (sh[j] = std::exp(sh[j] - max));
      for (std::size_t j = 0; j < n; ++j) sh[j] /= sum;
    }
    std::fill(a.out + (t * H + h0) * hd, a.out + (t * H + h1) * hd, 0.0f);
    for (std::size_t j = 0; j < n; ++j) {
      const float* value = j < n_past ? a.past.value(vis.past_lo + j) : a.v + (vis.chunk_lo + j - n_past) * hd;
      for (std::size_t h = h0; h < h1; ++h) axpy(scores[h * n + j], value, a.out + (t * H + h) * hd, hd);
    }
  }
}
}  // namespace detail

/// Scalar reference.
inline void attention_scalar(const attention_args& a) { detail::attention_impl(a, dot_scalar, axpy_scalar); }

/// SIMD kernel with the contract of `attention_scalar` (dot products and
/// value sums vectorised over hd), for all of a row or one part of it
/// (a.scores then only needs rows [part.h0, part.h1) of its [H, n]).
template <class Arch = default_arch>
inline void attention(const attention_args& a, attention_part part = {}) {
  detail::attention_impl(a, dot<Arch>, axpy<Arch>, part);
}

}  // namespace kernels

namespace detail {

/// Weights and the forward pass common to local and global attention.
struct attention_common {
  static constexpr const char* reference_name = "attention_block";

  struct weights {
    linear proj_q;      // [D, D]
    linear proj_k;      // [hd, D]
    linear proj_v;      // [hd, D]
    linear proj_final;  // [D, D] + [D]
    std::size_t num_heads = 0;
    std::size_t head_dim = 0;
    std::size_t window = 0;       // earlier tokens a query sees: W for local, SIZE_MAX for global
    std::size_t max_context = 0;  // earlier tokens a query may have: SIZE_MAX, or a global block's bound
    aligned_vector<float> inv_frequencies;  // [hd / 4]

    /// The block's linear layers.
    auto linears() noexcept { return std::array{&proj_q, &proj_k, &proj_v, &proj_final}; }
  };

  static weights load(weight_reader& r, const std::string& prefix, const config& c, std::size_t window,
                      std::size_t max_context) {
    const std::size_t D = c.width, hd = c.head_dim();
    weights w;
    w.proj_q = linear::load(r, prefix + ".proj_q", D, D, false);
    w.proj_k = linear::load(r, prefix + ".proj_k", hd, D, false);
    w.proj_v = linear::load(r, prefix + ".proj_v", hd, D, false);
    w.proj_final = linear::load(r, prefix + ".proj_final", D, D, true);
    w.num_heads = c.num_heads;
    w.head_dim = hd;
    w.window = window;
    w.max_context = max_context;
    // As torch computes them in float32: exponent 2i / (hd/2), timescale 10000^exponent.
    const std::size_t rope_dim = hd / 2;
    for (std::size_t i = 0; i < hd / 4; ++i) {
      const float exponent = static_cast<float>(2 * i) / static_cast<float>(rope_dim);
      w.inv_frequencies.push_back(1.0f / std::pow(10000.0f, exponent));
    }
    return w;
  }

  /// Projects and rotates q, k, v for the chunk, then runs attention row by
  /// row; `history(b)` gives row b's kv_history and `append(b, k, v, from)`
  /// stores the chunk's keys and values from chunk index `from` on.
  template <class History, class Append>
  static void forward(const weights& w, const float* normed, const block_io& io, History history, Append append) {
    detail::scratch& s = *io.scratch;
    detail::scratch_frame frame(s);
    const std::size_t rows = io.rows(), T = io.length, D = w.proj_q.out(), H = w.num_heads, hd = w.head_dim;
    float* q = s.take(rows * D);   // [B, T, H, hd]
    float* k = s.take(rows * hd);  // [B, T, hd]
    float* v = s.take(rows * hd);  // [B, T, hd]
    w.proj_q.forward(normed, q, rows, io.pool);
    w.proj_k.forward(normed, k, rows, io.pool);
    w.proj_v.forward(normed, v, rows, io.pool);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::int32_t pos = io.segment_pos[r];
      for (std::size_t h = 0; h < H; ++h) kernels::apply_rope(q + (r * H + h) * hd, hd, w.inv_frequencies.data(), pos);
      kernels::apply_rope(k + r * hd, hd, w.inv_frequencies.data(), pos);
    }

    float* encoded = s.take(rows * D);  // [B, T, H * hd]
    // Parts of (row, queries, heads) over the pool: rows and chunks of 16
    // queries, and for short chunks (decode) groups of heads as well, so a
    // single row's decode still uses every thread. Each part is computed
    // as the whole row would compute it: results do not depend on threads.
    const std::size_t threads = io.pool ? io.pool->size() : 1, query_chunk = 16;
    const std::size_t chunks = (T + query_chunk - 1) / query_chunk;
    const std::size_t head_groups = io.batch * chunks >= 2 * threads ? 1 : std::min(H, 2 * threads);
    const std::size_t heads_per = (H + head_groups - 1) / head_groups;
    // history(b) is a view, read-only until the appends below.
    std::size_t most_keys = 0;
    for (std::size_t b = 0; b < io.batch; ++b) most_keys = std::max(most_keys, history(b).count + T);
    parallel_run(threads > 1 && most_keys * T * H * hd >= (std::size_t{1} << 13) ? io.pool : nullptr,
                 io.batch * chunks * head_groups, [&](std::size_t task) {
      const std::size_t b = task / (chunks * head_groups), c = task / head_groups % chunks, g = task % head_groups;
      const kernels::kv_history past = history(b);
      struct scores_tag;
      float* scores = kernels::detail::thread_buffer<scores_tag, float>(H * (past.count + T));  // [H, n]
      kernels::attention<default_arch>({q + b * T * D, k + b * T * hd, v + b * T * hd, io.positions(b), past,
                                        encoded + b * T * D, scores, T, H, hd, w.window},
                                       {c * query_chunk, (c + 1) * query_chunk, g * heads_per, (g + 1) * heads_per});
    });
    for (std::size_t b = 0; b < io.batch; ++b) {
      const std::ptrdiff_t start = last_document_start(io.positions(b), static_cast<std::ptrdiff_t>(T) - 1);
      append(b, k + b * T * hd, v + b * T * hd, start);
    }
    w.proj_final.forward(encoded, io.x, rows, io.pool, /*accumulate=*/true);
  }
};

}  // namespace detail

/// Sliding-window multi-query attention (reference: LocalAttentionBlock).
struct local_attention_block {
  static constexpr block_kind kind = block_kind::attention;
  static constexpr char symbol = 'A';
  static constexpr const char* reference_name = detail::attention_common::reference_name;
  using weights = detail::attention_common::weights;

  /// Ring buffers of the last W keys and values of each row's current document.
  struct state {
    aligned_vector<float> keys;    // [B, W, hd]
    aligned_vector<float> values;  // [B, W, hd]
    std::vector<std::size_t> count;  // [B] rows held (<= W)
    std::vector<std::size_t> start;  // [B] slot of the oldest row
    std::size_t window = 0;

    [[nodiscard]] std::size_t bytes() const noexcept {
      return (keys.size() + values.size()) * sizeof(float) + (count.size() + start.size()) * sizeof(std::size_t);
    }
    void reset_row(std::size_t b, std::size_t /*batch*/) { count[b] = start[b] = 0; }

    /// Row b in the session format (session.hpp): W, hd, n, then the n
    /// cached keys and values oldest first (restored unrotated).
    static constexpr char symbol = 'A';
    void save_row(std::size_t b, std::size_t batch, detail::byte_writer& out) const {
      const std::size_t hd = keys.size() / batch / window;
      out.put(std::uint64_t{window});
      out.put(std::uint64_t{hd});
      out.put(std::uint64_t{count[b]});
      for (const auto* cache : {&keys, &values})
        for (std::size_t i = 0; i < count[b]; ++i) out.put_floats(cache->data() + (b * window + (start[b] + i) % window) * hd, hd);
    }
    void load_row(std::size_t b, std::size_t batch, detail::byte_reader& in) {
      const std::size_t hd = keys.size() / batch / window;
      in.expect(window, "attention window");
      in.expect(hd, "attention head dim");
      const std::size_t at = in.offset();
      const auto n = in.get<std::uint64_t>("cached tokens");
      if (n > window) in.fail("cached tokens " + std::to_string(n) + " exceed the window " + std::to_string(window), at);
      in.get_floats(keys.data() + b * window * hd, n * hd, "cached keys");
      in.get_floats(values.data() + b * window * hd, n * hd, "cached values");
      if (in.apply()) {
        count[b] = n;
        start[b] = 0;
      }
    }
  };

  static weights load(weight_reader& r, const std::string& prefix, const config& c, std::size_t /*layer*/) {
    return detail::attention_common::load(r, prefix, c, c.attention_window_size, std::numeric_limits<std::size_t>::max());
  }

  static state make_state(const config& c, std::size_t /*layer*/, std::size_t batch) {
    const std::size_t W = c.attention_window_size, hd = c.head_dim();
    return {aligned_vector<float>(batch * W * hd, 0.0f), aligned_vector<float>(batch * W * hd, 0.0f),
            std::vector<std::size_t>(batch, 0), std::vector<std::size_t>(batch, 0), W};
  }

  static void forward(const weights& w, state* st, const float* normed, const block_io& io) {
    const std::size_t hd = w.head_dim, T = io.length;
    auto history = [&](std::size_t b) -> kernels::kv_history {
      if (!st) return {nullptr, nullptr, 0, 0, 1, hd};
      const std::size_t W = st->window;
      return {st->keys.data() + b * W * hd, st->values.data() + b * W * hd, st->count[b], st->start[b], W, hd};
    };
    auto append = [&](std::size_t b, const float* k, const float* v, std::ptrdiff_t doc_start) {
      if (!st) return;
      const std::size_t W = st->window;
      if (doc_start >= 0) st->count[b] = st->start[b] = 0;
      std::size_t from = doc_start < 0 ? 0 : static_cast<std::size_t>(doc_start);
      if (T - from > W) from = T - W;  // only the last W can ever be seen again
      for (std::size_t t = from; t < T; ++t) {
        std::size_t slot;
        if (st->count[b] < W) {
          slot = (st->start[b] + st->count[b]++) % W;
        } else {
          slot = st->start[b];
          st->start[b] = (st->start[b] + 1) % W;
        }
        std::copy(k + t * hd, k + (t + 1) * hd, st->keys.data() + (b * W + slot) * hd);
        std::copy(v + t * hd, v + (t + 1) * hd, st->values.data() + (b * W + slot) * hd);
      }
    };
    detail::attention_common::forward(w, normed, io, history, append);
  }
};

/// Full causal multi-query attention (the MQA Transformer baseline's mixer).
struct global_attention_block {
  static constexpr block_kind kind = block_kind::global_attention;
  static constexpr char symbol = 'G';
  static constexpr const char* reference_name = detail::attention_common::reference_name;
  using weights = detail::attention_common::weights;

  /// Every key and value of each row's current document; grows with it.
  struct state {
    std::vector<aligned_vector<float>> keys;    // [B][n, hd]
    std::vector<aligned_vector<float>> values;  // [B][n, hd]

    [[nodiscard]] std::size_t bytes() const noexcept {
      std::size_t n = 0;
      for (const auto& k : keys) n += k.size() * sizeof(float);
      for (const auto& v : values) n += v.size() * sizeof(float);
      return n;
    }
    void reset_row(std::size_t b, std::size_t /*batch*/) {
      keys[b].clear();
      values[b].clear();
    }

    /// Row b in the session format (session.hpp): hd, n, the n keys and values.
    static constexpr char symbol = 'G';
    std::size_t head_dim = 0;
    void save_row(std::size_t b, std::size_t /*batch*/, detail::byte_writer& out) const {
      out.put(std::uint64_t{head_dim});
      out.put(std::uint64_t{keys[b].size() / head_dim});
      out.put_floats(keys[b].data(), keys[b].size());
      out.put_floats(values[b].data(), values[b].size());
    }
    void load_row(std::size_t b, std::size_t /*batch*/, detail::byte_reader& in) {
      in.expect(head_dim, "attention head dim");
      const std::size_t at = in.offset();
      const auto n = in.get<std::uint64_t>("cached tokens");
      if (n > std::numeric_limits<std::size_t>::max() / (2 * sizeof(float) * head_dim))
        in.fail("cached tokens " + std::to_string(n) + " cannot be held", at);
      if (in.apply()) {
        keys[b].resize(n * head_dim);
        values[b].resize(n * head_dim);
      }
      in.get_floats(keys[b].data(), n * head_dim, "cached keys");
      in.get_floats(values[b].data(), n * head_dim, "cached values");
    }
  };

  /// A config block of kind "attention" bounds the context by its window;
  /// one of kind "global_attention" leaves it unbounded.
  static weights load(weight_reader& r, const std::string& prefix, const config& c, std::size_t layer) {
    const bool bounded = c.block_types.at(layer) == block_kind::attention;
    constexpr std::size_t unbounded = std::numeric_limits<std::size_t>::max();
    return detail::attention_common::load(r, prefix, c, unbounded, bounded ? c.attention_window_size : unbounded);
  }

  static state make_state(const config& c, std::size_t /*layer*/, std::size_t batch) {
    return {std::vector<aligned_vector<float>>(batch), std::vector<aligned_vector<float>>(batch), c.head_dim()};
  }

  static void forward(const weights& w, state* st, const float* normed, const block_io& io) {
    const std::size_t hd = w.head_dim, T = io.length;
    auto history = [&](std::size_t b) -> kernels::kv_history {
      if (!st || st->keys[b].empty()) return {nullptr, nullptr, 0, 0, 1, hd};
      const std::size_t n = st->keys[b].size() / hd;
      return {st->keys[b].data(), st->values[b].data(), n, 0, n, hd};
    };
    auto append = [&](std::size_t b, const float* k, const float* v, std::ptrdiff_t doc_start) {
      if (!st) return;
      if (doc_start >= 0) st->reset_row(b, io.batch);
      const std::size_t from = doc_start < 0 ? 0 : static_cast<std::size_t>(doc_start);
      st->keys[b].insert(st->keys[b].end(), k + from * hd, k + T * hd);
      st->values[b].insert(st->values[b].end(), v + from * hd, v + T * hd);
    };
    detail::attention_common::forward(w, normed, io, history, append);
  }
};

}  // namespace griffin
