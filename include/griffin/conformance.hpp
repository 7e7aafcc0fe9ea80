// griffin/conformance.hpp: replays a golden case of the official reference
// implementation and measures the worst absolute error of every tensor.
//
// A case directory holds config.json, weights.safetensors and
// expected.safetensors with: tokens, segment_pos [B, T]; logits [B, T, V]
// and block_out.N [B, T, D] of one full pass; decode_segment_pos and
// decode_reference_logits (a full pass without document resets); and
// decode_logits.prefill_P: prefill P tokens, then decode the rest one by one.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "griffin/concepts.hpp"
#include "griffin/model.hpp"
#include "griffin/safetensors.hpp"
#include "griffin/tensor.hpp"

namespace griffin {

/// The result for one expected tensor.
struct conformance_entry {
  std::string name;
  std::vector<std::size_t> shape;
  float max_abs_error = 0.0f;
  bool passed = false;
};

struct conformance_report {
  std::vector<conformance_entry> entries;
  float tolerance = 0.0f;

  [[nodiscard]] bool passed() const noexcept {
    return !entries.empty() && std::all_of(entries.begin(), entries.end(), [](const auto& e) { return e.passed; });
  }
};

namespace detail {

inline conformance_entry compare(const std::string& name, const tensor<float>& expected, std::span<const float> actual,
                                 float tolerance) {
  conformance_entry e{name, {expected.shape().begin(), expected.shape().end()}, 0.0f, false};
  if (actual.size() != expected.size()) {
    e.max_abs_error = std::numeric_limits<float>::infinity();
    return e;
  }
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const float d = std::fabs(actual[i] - expected.data()[i]);
    e.max_abs_error = std::isnan(d) ? std::numeric_limits<float>::infinity() : std::max(e.max_abs_error, d);
  }
  e.passed = e.max_abs_error <= tolerance;
  return e;
}

/// Prefill the first P tokens of every row in one call, then decode the rest one at a time; logits [B, T, V].
template <Schedule S>
tensor<float> prefill_then_decode(const model<S>& m, const tensor<std::int32_t>& tokens,
                                  const tensor<std::int32_t>& segment_pos, std::size_t P) {
  const std::size_t B = tokens.extent(0), T = tokens.extent(1), V = m.cfg().vocab_size;
  if (P == 0 || P > T) throw input_error("prefill length " + std::to_string(P) + " outside 1.." + std::to_string(T));
  tensor<std::int32_t> prompt({B, P}), prompt_pos({B, P});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < P; ++t) {
      prompt(b, t) = tokens(b, t);
      prompt_pos(b, t) = segment_pos(b, t);
    }
  auto st = m.make_state(B);
  const tensor<float> first = m.prefill(st, prompt, prompt_pos, logits_for::all_positions);
  tensor<float> out({B, T, V});
  for (std::size_t b = 0; b < B; ++b)
    std::copy_n(first.data() + b * P * V, P * V, out.data() + b * T * V);
  std::vector<std::int32_t> step(B);
  for (std::size_t t = P; t < T; ++t) {
    for (std::size_t b = 0; b < B; ++b) step[b] = tokens(b, t);
    const tensor<float> logits = m.decode(st, step);
    for (std::size_t b = 0; b < B; ++b) std::copy_n(logits.data() + b * V, V, out.data() + (b * T + t) * V);
  }
  return out;
}

}  // namespace detail

/// Runs model `m` on the golden case in `dir` (expected.safetensors) and
/// reports the worst error of every tensor it reproduces.
template <Schedule S>
conformance_report check_conformance(const model<S>& m, const std::filesystem::path& dir, float tolerance = 1e-4f) {
  const safetensors_file expected(dir / "expected.safetensors");
  conformance_report report;
  report.tolerance = tolerance;
  const auto tokens = to_int32_tensor(expected.at("tokens"));
  const auto segment_pos = to_int32_tensor(expected.at("segment_pos"));

  std::map<std::size_t, std::vector<float>> block_out;
  const tensor<float> logits = m.forward(tokens, segment_pos, [&](std::size_t layer, std::span<const float> x) {
    block_out[layer].assign(x.begin(), x.end());
  });
  report.entries.push_back(detail::compare("logits", to_float_tensor(expected.at("logits")), logits.values(), tolerance));
  for (std::size_t i = 0;; ++i) {
    const tensor_view* t = expected.find("block_out." + std::to_string(i));
    if (!t) break;
    report.entries.push_back(detail::compare(t->name, to_float_tensor(*t), block_out[i], tolerance));
  }

  if (const tensor_view* dpos = expected.find("decode_segment_pos")) {
    const auto decode_pos = to_int32_tensor(*dpos);
    if (const tensor_view* ref = expected.find("decode_reference_logits"))
      report.entries.push_back(
          detail::compare(ref->name, to_float_tensor(*ref), m.forward(tokens, decode_pos).values(), tolerance));
    const std::string prefix = "decode_logits.prefill_";
    for (const tensor_view& t : expected.tensors()) {
      if (t.name.rfind(prefix, 0) != 0) continue;
      const std::size_t P = std::stoul(t.name.substr(prefix.size()));
      const tensor<float> got = detail::prefill_then_decode(m, tokens, decode_pos, P);
      report.entries.push_back(detail::compare(t.name, to_float_tensor(t), got.values(), tolerance));
    }
  }
  return report;
}

}  // namespace griffin
