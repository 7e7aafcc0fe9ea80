// griffin/sampling.hpp: choosing the next token from logits -- greedy,
// temperature, top-k, top-p -- seeded and reproducible.
//
//   griffin::sampler s({.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 7}, /*rows=*/B);
//   std::int32_t next = s.sample(logits_of_row_b, b);
//
// Each batch row draws from its own random stream (seed and row), so a row's
// tokens do not depend on the other rows or on the batch size; the generator
// is griffin's own (splitmix64 seeding xoshiro256**), so the same seed gives
// the same tokens with every compiler and standard library.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "griffin/random_init.hpp"  // detail::splitmix64

namespace griffin {

/// How to choose a token. temperature 0 is greedy (the first largest logit);
/// otherwise softmax(logits / temperature) restricted to the top_k most
/// likely tokens (0: all), then to the smallest most-likely set whose
/// probability reaches top_p (1: all), renormalised.
struct sampling {
  float temperature = 0.0f;
  std::size_t top_k = 0;
  float top_p = 1.0f;
  std::uint64_t seed = 0;
};

namespace detail {

/// xoshiro256** (Blackman and Vigna): a small, fast, well-tested generator.
class xoshiro256 {
 public:
  explicit xoshiro256(std::uint64_t seed) {
    for (auto& w : s_) w = splitmix64(seed);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace detail

/// Draws tokens from logits as `sampling` says, one random stream per batch row.
class sampler {
 public:
  explicit sampler(sampling s = {}, std::size_t rows = 1) : s_(s) {
    if (!(s.temperature >= 0.0f) || !std::isfinite(s.temperature))
      throw std::invalid_argument("sampling: temperature must be finite and >= 0, not " + std::to_string(s.temperature));
    if (!(s.top_p > 0.0f && s.top_p <= 1.0f))
      throw std::invalid_argument("sampling: top_p must be in (0, 1], not " + std::to_string(s.top_p));
    if (rows == 0) throw std::invalid_argument("sampler: rows must be positive");
    for (std::size_t r = 0; r < rows; ++r) rngs_.emplace_back(s.seed ^ (0xa0761d6478bd642fULL * (r + 1)));
  }

  [[nodiscard]] const sampling& settings() const noexcept { return s_; }
  [[nodiscard]] std::size_t rows() const noexcept { return rngs_.size(); }

  /// The next token of batch row `row` from its logits [V].
  std::int32_t sample(std::span<const float> logits, std::size_t row = 0) {
    if (row >= rngs_.size())
      throw std::out_of_range("sampler: row " + std::to_string(row) + " of " + std::to_string(rngs_.size()));
    if (logits.empty()) throw std::invalid_argument("sampler: no logits");
    for (std::size_t i = 0; i < logits.size(); ++i)
      if (std::isnan(logits[i])) throw std::invalid_argument("sampler: logit " + std::to_string(i) + " is NaN");
    const float largest = *std::max_element(logits.begin(), logits.end());
    if (largest == -INFINITY) throw std::invalid_argument("sampler: every logit is -inf");
    if (s_.temperature == 0.0f || s_.top_k == 1 || largest == INFINITY) return greedy(logits);

    const std::size_t V = logits.size();
    const bool restricted = (s_.top_k > 0 && s_.top_k < V) || s_.top_p < 1.0f;
    auto& rng = rngs_[row];
    if (!restricted) {  // the whole distribution: no sort needed
      double total = 0.0;
      for (float l : logits) total += weight(l, largest);
      double u = rng.uniform() * total;
      for (std::size_t i = 0; i < V; ++i)
        if ((u -= weight(logits[i], largest)) < 0.0) return static_cast<std::int32_t>(i);
      return greedy(logits);  // rounding left u at the end
    }
    // The candidates, most likely first (ties by index, for reproducibility):
    // the top_k, or for top-p alone a sorted prefix grown (64, 256, ...)
    // until it holds the nucleus, so a 256k vocabulary is not sorted whole.
    const auto more_likely = [&](std::uint32_t a, std::uint32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    };
    order_.resize(V);
    std::iota(order_.begin(), order_.end(), 0u);
    const auto sort_prefix = [&](std::size_t n) {
      std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(n), order_.end(), more_likely);
    };
    std::size_t k = 0;     // sorted candidates
    double mass = 0.0;     // of every candidate (top_k's, or the whole vocabulary)
    if (s_.top_k > 0 && s_.top_k < V) {
      k = s_.top_k;
      sort_prefix(k);
      for (std::size_t i = 0; i < k; ++i) mass += weight(logits[order_[i]], largest);
    } else {
      for (float l : logits) mass += weight(l, largest);
      for (k = std::min<std::size_t>(64, V);; k = std::min(4 * k, V)) {
        sort_prefix(k);
        double prefix = 0.0;
        for (std::size_t i = 0; i < k; ++i) prefix += weight(logits[order_[i]], largest);
        if (k == V || prefix >= static_cast<double>(s_.top_p) * mass) break;
      }
    }
    probs_.resize(k);
    for (std::size_t i = 0; i < k; ++i) probs_[i] = weight(logits[order_[i]], largest);
    std::size_t keep = k;
    double total = std::accumulate(probs_.begin(), probs_.end(), 0.0);
    if (s_.top_p < 1.0f) {
      double cumulative = 0.0;
      for (std::size_t i = 0; i < k; ++i) {
        cumulative += probs_[i];
        if (cumulative >= static_cast<double>(s_.top_p) * mass) {
          keep = i + 1;
          break;
        }
      }
      total = std::accumulate(probs_.begin(), probs_.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
    }
    double u = rng.uniform() * total;
    for (std::size_t i = 0; i < keep; ++i)
      if ((u -= probs_[i]) < 0.0) return static_cast<std::int32_t>(order_[i]);
    return static_cast<std::int32_t>(order_[keep - 1]);
  }

 private:
  static std::int32_t greedy(std::span<const float> logits) {
    return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  double weight(float logit, float top) const {
    return std::exp(static_cast<double>(logit - top) / static_cast<double>(s_.temperature));
  }

  sampling s_;
  std::vector<detail::xoshiro256> rngs_;
  std::vector<std::uint32_t> order_;
  std::vector<double> probs_;
};

}  // namespace griffin
