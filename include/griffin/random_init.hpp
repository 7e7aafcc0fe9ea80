// griffin/random_init.hpp: random parameters for experiments, benchmarks and
// tests. Each tensor's values depend only on the seed and the tensor's name,
// so a model built from the generator equals one loaded from the same weights
// written to a file, whatever order they are made in. The generator is
// portable (splitmix64 + Box-Muller), unlike std::normal_distribution.
//
// Scales keep activations of order one: weights ~ N(0, 1/fan_in), biases and
// norm scales ~ N(0, 0.02^2) and N(0, 0.1^2), and a_param as the reference's
// rnn_param_init draws it.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/weights.hpp"

namespace griffin {
namespace detail {

inline std::uint64_t splitmix64(std::uint64_t& s) noexcept {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// Uniform in (0, 1).
inline double uniform01(std::uint64_t& s) noexcept {
  return (static_cast<double>(splitmix64(s) >> 11) + 0.5) * 0x1.0p-53;
}

inline std::uint64_t fnv1a(std::string_view text) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

inline bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace detail

/// A weight_generator that draws every parameter from `seed` and its name.
inline weight_generator random_weight_generator(std::uint64_t seed) {
  return [seed](const std::string& name, const std::vector<std::size_t>& shape, std::span<float> out) {
    std::uint64_t state = seed ^ detail::fnv1a(name);
    auto normal = [&](double stddev) {
      const double u1 = detail::uniform01(state), u2 = detail::uniform01(state);
      return static_cast<float>(stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
    };
    if (detail::ends_with(name, "a_param")) {
      // The reference's rnn_param_init: a^2 ~ U[0.9^2, 0.999^2], stored as softplus^-1(-log(a)).
      for (float& v : out) {
        const double u = 0.81 + (0.998001 - 0.81) * detail::uniform01(state);
        v = static_cast<float>(std::log(std::expm1(-0.5 * std::log(u))));
      }
      return;
    }
    double stddev;
    if (detail::ends_with(name, ".scale")) stddev = 0.1;
    else if (detail::ends_with(name, ".bias") || detail::ends_with(name, ".b")) stddev = 0.02;
    else if (detail::ends_with(name, "conv_1d.w")) stddev = 1.0 / std::sqrt(static_cast<double>(shape.at(0)));
    else stddev = 1.0 / std::sqrt(static_cast<double>(shape.size() > 1 ? shape[1] : shape.at(0)));
    for (float& v : out) v = normal(stddev);
  };
}

}  // namespace griffin
