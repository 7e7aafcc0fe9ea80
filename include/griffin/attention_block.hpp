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
#include <cstring>
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

/// The n keys and values one query sees, oldest first, as at most three
/// contiguous runs of rows [count, hd]: the ring buffer's part up to its end,
/// its part from slot 0, and the chunk's own rows.
struct visible_rows {
  struct run {
    const float* keys = nullptr;
    const float* values = nullptr;
    std::size_t count = 0;
  };
  std::array<run, 3> runs{};
  std::size_t n = 0;
  std::size_t head_dim = 0;

  /// Key j (0 = oldest); a lookup over the runs, for tiles of a few keys.
  [[nodiscard]] const float* key(std::size_t j) const noexcept {
    for (const run& r : runs) {
      if (j < r.count) return r.keys + j * head_dim;
      j -= r.count;
    }
    return nullptr;
  }
  /// Calls f(j, key, value) for rows j in [j0, j1) in order, walking pointers.
  template <class F>
  void for_each(F&& f, std::size_t j0 = 0, std::size_t j1 = SIZE_MAX) const {
    std::size_t first = 0;  // index of the run's first row
    for (const run& r : runs) {
      const std::size_t lo = std::max(j0, first), hi = std::min(j1, first + r.count);
      for (std::size_t j = lo; j < hi; ++j) f(j, r.keys + (j - first) * head_dim, r.values + (j - first) * head_dim);
      first += r.count;
    }
  }
};

/// The keys query t sees: past rows [past_lo, past_count) of the ring
/// buffer (none when its document starts in the chunk) and chunk rows
/// [chunk_lo, t], at most `window` before it.
inline visible_rows rows_visible_to(const attention_args& a, std::size_t t) noexcept {
  std::ptrdiff_t s = static_cast<std::ptrdiff_t>(t);
  while (s >= 0 && a.segment_pos[s] != 0) --s;  // the query's document start in the chunk, or -1
  std::size_t chunk_lo = s < 0 ? 0 : static_cast<std::size_t>(s);
  if (a.window < t) chunk_lo = std::max(chunk_lo, t - a.window);
  const std::size_t past_count = s < 0 ? a.past.count : 0, reach = a.past.count + t;  // reach: to the oldest past row
  const std::size_t past_lo = a.window < reach ? std::min(past_count, reach - a.window) : 0;
  const std::size_t hd = a.head_dim, n_past = past_count - past_lo;
  visible_rows rows;
  rows.head_dim = hd;
  if (n_past > 0) {
    const std::size_t first = a.past.slot(past_lo), to_end = std::min(n_past, a.past.capacity - first);
    rows.runs[0] = {a.past.keys + first * hd, a.past.values + first * hd, to_end};
    rows.runs[1] = {a.past.keys, a.past.values, n_past - to_end};
  }
  rows.runs[2] = {a.k + chunk_lo * hd, a.v + chunk_lo * hd, t + 1 - chunk_lo};
  rows.n = n_past + rows.runs[2].count;
  return rows;
}

/// A part of one row's attention: queries [t0, t1) and heads [h0, h1). Parts
/// are independent (each writes only its own outputs and scores rows), and a
/// query's arithmetic is the same whichever part computes it.
struct attention_part {
  std::size_t t0 = 0, t1 = SIZE_MAX, h0 = 0, h1 = SIZE_MAX;
};

namespace detail {

// The three steps of one query's attention, heads [h0, h1):
//   scores(q [H, hd], rows, scale, s [H, n])   s[h, j] = (q[h] . key j) * scale
//   softmax(s [n])                              in place, one head's row
//   weighted_sum(s [H, n], rows, out [H, hd])  out[h] = sum_j s[h, j] value j
struct attention_ops_scalar {
  static void scores(const float* q, std::size_t h0, std::size_t h1, const visible_rows& rows, float scale, float* s) {
    const std::size_t hd = rows.head_dim, n = rows.n;
    rows.for_each([&](std::size_t j, const float* key, const float*) {
      for (std::size_t h = h0; h < h1; ++h) s[h * n + j] = dot_scalar(q + h * hd, key, hd) * scale;
    });
  }
  static void softmax(float* s, std::size_t n) {
    float max = -std::numeric_limits<float>::infinity();
    for (std::size_t j = 0; j < n; ++j) max = std::max(max, s[j]);
    float sum = 0.0f;
    for (std::size_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - max));
    for (std::size_t j = 0; j < n; ++j) s[j] /= sum;
  }
  static void weighted_sum(const float* s, std::size_t h0, std::size_t h1, const visible_rows& rows, float* out) {
    const std::size_t hd = rows.head_dim, n = rows.n;
    std::fill(out + h0 * hd, out + h1 * hd, 0.0f);
    rows.for_each([&](std::size_t j, const float*, const float* value) {
      for (std::size_t h = h0; h < h1; ++h) axpy_scalar(s[h * n + j], value, out + h * hd, hd);
    });
  }
};

// The SIMD steps. Each (head, key) score and each output element is computed
// by the same instructions wherever its head and key fall in a tile, so a
// part of the heads gives bit for bit what the whole row gives.
template <class Arch>
struct attention_ops_simd {
  using B = batch<Arch>;
  static constexpr std::size_t L = lanes<Arch>;
  static constexpr std::size_t tile_keys = L < 4 ? L : 4, tile_heads = L / tile_keys;  // tile_heads x tile_keys = L dots
  // weighted_sum's register tile: heads x vectors of columns. One head at a
  // time without FMA, so every head runs the same copy of the loop.
  static constexpr std::size_t sum_heads = has_fma<Arch> ? 4 : 1, sum_vectors = 4;

  // Tiles of tile_heads x tile_keys dot products: each accumulates its own
  // vector of products over hd, and one fold_sums folds the L vectors into the L
  // sums (the same fold for every lane). Heads and keys past the end of a
  // tile repeat the last valid one; their sums are dropped. The keys are the
  // outer loop: a tile of keys stays in L1 while every head reads it.
  static void scores(const float* q, std::size_t h0, std::size_t h1, const visible_rows& rows, float scale, float* s) {
    const std::size_t hd = rows.head_dim, n = rows.n, vector_end = hd - hd % L;
    if (h0 >= h1) return;
    for (std::size_t jb = 0; jb < n; jb += tile_keys) {
      std::array<const float*, tile_keys> key;
      GRIFFIN_UNROLL for (std::size_t c = 0; c < tile_keys; ++c) key[c] = rows.key(std::min(jb + c, n - 1));
      for (std::size_t hb = h0; hb < h1; hb += tile_heads) {
        std::array<const float*, tile_heads> qh;
        GRIFFIN_UNROLL for (std::size_t g = 0; g < tile_heads; ++g) qh[g] = q + std::min(hb + g, h1 - 1) * hd;
        std::array<B, L> acc;
        GRIFFIN_UNROLL for (std::size_t i = 0; i < L; ++i) acc[i] = B(0.0f);
        for (std::size_t d = 0; d < vector_end; d += L) {
          // The query vector pinned to a register: GCC 12 otherwise re-reads
          // it from memory in each of its 4 FMAs (measured 15% slower).
          std::array<B, tile_keys> kv;
          GRIFFIN_UNROLL for (std::size_t c = 0; c < tile_keys; ++c) kv[c] = B::load_unaligned(key[c] + d);
          GRIFFIN_UNROLL for (std::size_t g = 0; g < tile_heads; ++g) {
            B qv = B::load_unaligned(qh[g] + d);
            keep_in_register(qv);
            GRIFFIN_UNROLL for (std::size_t c = 0; c < tile_keys; ++c)
              acc[g * tile_keys + c] = xsimd::fma(qv, kv[c], acc[g * tile_keys + c]);
          }
        }
        alignas(64) std::array<float, L> sums;
        B folded = fold_sums<Arch>(acc.data());
        if (vector_end < hd) {  // (vector sum + tail sum) * scale, each
          folded.store_aligned(sums.data());
          for (std::size_t i = 0; i < L; ++i) {
            float tail = 0.0f;
            for (std::size_t d = vector_end; d < hd; ++d) tail += qh[i / tile_keys][d] * key[i % tile_keys][d];
            sums[i] = (sums[i] + tail) * scale;
          }
        } else {
          (folded * B(scale)).store_aligned(sums.data());
        }
        if (hb + tile_heads <= h1 && jb + tile_keys <= n) {
          GRIFFIN_UNROLL for (std::size_t g = 0; g < tile_heads; ++g)
            std::memcpy(s + (hb + g) * n + jb, sums.data() + g * tile_keys, tile_keys * sizeof(float));
        } else {
          for (std::size_t g = 0; g < tile_heads && hb + g < h1; ++g)
            for (std::size_t c = 0; c < tile_keys && jb + c < n; ++c) s[(hb + g) * n + jb + c] = sums[g * tile_keys + c];
        }
      }
    }
  }

  static void softmax(float* s, std::size_t n) {
    const std::size_t vector_end = n - n % L;
    B vmax(-std::numeric_limits<float>::infinity());
    float max = -std::numeric_limits<float>::infinity();
    for (std::size_t j = 0; j < vector_end; j += L) vmax = xsimd::max(vmax, B::load_unaligned(s + j));
    for (std::size_t j = vector_end; j < n; ++j) max = std::max(max, s[j]);
    alignas(64) std::array<float, L> lanes_max;
    vmax.store_aligned(lanes_max.data());
    for (float m : lanes_max) max = std::max(max, m);
    B vsum(0.0f);
    float sum = 0.0f;
    for (std::size_t j = 0; j < vector_end; j += L) {
      const B e = xsimd::exp(B::load_unaligned(s + j) - B(max));
      e.store_unaligned(s + j);
      vsum += e;
    }
    for (std::size_t j = vector_end; j < n; ++j) sum += (s[j] = std::exp(s[j] - max));
    sum += xsimd::hadd(vsum);
    transform<Arch>(s, s, n, [sum](const auto& x) { return x / sum; });
  }

  // out[h, cols] += sum over keys [j0, j1) of s[h, j] value j[cols], for
  // heads [hb, hb + Heads) and Vectors batches of columns from col: the sums
  // stay in registers over the block of keys.
  template <std::size_t Heads, std::size_t Vectors>
  static void weighted_tile(const float* s, std::size_t hb, std::size_t col, const visible_rows& rows, std::size_t j0,
                            std::size_t j1, float* out) {
    const std::size_t hd = rows.head_dim, n = rows.n;
    std::array<std::array<B, Vectors>, Heads> acc;
    GRIFFIN_UNROLL for (std::size_t g = 0; g < Heads; ++g)
      GRIFFIN_UNROLL for (std::size_t c = 0; c < Vectors; ++c) acc[g][c] = B::load_unaligned(out + (hb + g) * hd + col + c * L);
    rows.for_each(
        [&](std::size_t j, const float*, const float* value) {
          std::array<B, Vectors> vv;
          GRIFFIN_UNROLL for (std::size_t c = 0; c < Vectors; ++c) vv[c] = B::load_unaligned(value + col + c * L);
          GRIFFIN_UNROLL for (std::size_t g = 0; g < Heads; ++g) {
            const B p(s[(hb + g) * n + j]);
            GRIFFIN_UNROLL for (std::size_t c = 0; c < Vectors; ++c) acc[g][c] = xsimd::fma(p, vv[c], acc[g][c]);
          }
        },
        j0, j1);
    GRIFFIN_UNROLL for (std::size_t g = 0; g < Heads; ++g)
      GRIFFIN_UNROLL for (std::size_t c = 0; c < Vectors; ++c) acc[g][c].store_unaligned(out + (hb + g) * hd + col + c * L);
  }

  template <std::size_t Heads>
  static void weighted_heads(const float* s, std::size_t hb, const visible_rows& rows, std::size_t j0, std::size_t j1,
                             float* out) {
    const std::size_t hd = rows.head_dim, n = rows.n, vector_end = hd - hd % L;
    std::size_t col = 0;
    for (; col + sum_vectors * L <= vector_end; col += sum_vectors * L)
      weighted_tile<Heads, sum_vectors>(s, hb, col, rows, j0, j1, out);
    for (; col < vector_end; col += L) weighted_tile<Heads, 1>(s, hb, col, rows, j0, j1, out);
    for (std::size_t g = 0; g < Heads; ++g)
      for (std::size_t d = vector_end; d < hd; ++d) {
        float sum = out[(hb + g) * hd + d];
        rows.for_each([&](std::size_t j, const float*, const float* value) { sum += s[(hb + g) * n + j] * value[d]; }, j0, j1);
        out[(hb + g) * hd + d] = sum;
      }
  }

  // Blocks of keys outermost, so a block's values stay in L1 while every
  // head and column reads them; each output element still sums over the keys
  // in order, from 0 (one chain of fma, as axpy over the keys would).
  static void weighted_sum(const float* s, std::size_t h0, std::size_t h1, const visible_rows& rows, float* out) {
    const std::size_t hd = rows.head_dim, block = std::max<std::size_t>(16, 8192 / std::max<std::size_t>(hd, 1));
    std::fill(out + h0 * hd, out + h1 * hd, 0.0f);
    for (std::size_t j0 = 0; j0 < rows.n; j0 += block) {
      const std::size_t j1 = std::min(rows.n, j0 + block);
      std::size_t hb = h0;
      for (; hb + sum_heads <= h1; hb += sum_heads) weighted_heads<sum_heads>(s, hb, rows, j0, j1, out);
      for (; hb < h1; ++hb) weighted_heads<1>(s, hb, rows, j0, j1, out);
    }
  }
};

// The shared body: for each query of the part, scores, softmax and the
// weighted sum of values over the keys it sees. Keys and values are shared by
// all H heads (multi-query), so each step reads them once for all heads.
template <class Ops>
inline void attention_impl(const attention_args& a, attention_part part) {
  const std::size_t hd = a.head_dim, H = a.num_heads;
  const std::size_t h0 = std::min(part.h0, H), h1 = std::min(part.h1, H);
  // hd^-0.5 as the reference applies it: a Python double cast to float32.
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  for (std::size_t t = part.t0; t < std::min(part.t1, a.length); ++t) {
    const visible_rows rows = rows_visible_to(a, t);
    Ops::scores(a.q + t * H * hd, h0, h1, rows, scale, a.scores);
    for (std::size_t h = h0; h < h1; ++h) Ops::softmax(a.scores + h * rows.n, rows.n);
    Ops::weighted_sum(a.scores, h0, h1, rows, a.out + t * H * hd);
  }
}
}  // namespace detail

/// Scalar reference.
inline void attention_scalar(const attention_args& a) { detail::attention_impl<detail::attention_ops_scalar>(a, {}); }

/// SIMD kernel with the contract of `attention_scalar`, for all of a row or
/// one part of it (a.scores then only needs rows [part.h0, part.h1) of its
/// [H, n]): scores in tiles of heads x keys, a vectorised softmax, and the
/// value sums in registers over tiles of heads x columns.
template <class Arch = default_arch>
inline void attention(const attention_args& a, attention_part part = {}) {
  detail::attention_impl<detail::attention_ops_simd<Arch>>(a, part);
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
    // single row's decode still uses every thread. Each part reads all the
    // keys and values its queries see, so the fewest groups that share the
    // parts out evenly (or give every thread two): one row's decode on 2
    // threads is 2 groups of 8 heads. Each part is computed as the whole row
    // would compute it: results do not depend on threads.
    const std::size_t threads = io.pool ? io.pool->size() : 1, query_chunk = 16;
    const std::size_t chunks = (T + query_chunk - 1) / query_chunk, row_parts = io.batch * chunks;
    std::size_t head_groups = 1;
    while (head_groups < H && row_parts * head_groups % threads != 0 && row_parts * head_groups < 2 * threads) ++head_groups;
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
