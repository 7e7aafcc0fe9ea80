// Helpers shared by griffin-bench and griffin-figures: timing, list flags,
// and random weights generated fast enough for billion-parameter models.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <sstream>
#include <string>
#include <vector>

#include <griffin/griffin.hpp>

namespace griffin_bench {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Random weights, fast: uniform with the reference initialiser's variance for
// big matrices, the library's own generator for everything else.
inline griffin::weight_generator fast_random_weights(std::uint64_t seed) {
  return [slow = griffin::random_weight_generator(seed), seed](const std::string& name,
                                                               const std::vector<std::size_t>& shape,
                                                               std::span<float> out) {
    if (out.size() < (std::size_t{1} << 20)) return slow(name, shape, out);
    const double fan_in = static_cast<double>(shape.size() > 1 ? shape[1] : shape.at(0));
    const float a = static_cast<float>(std::sqrt(3.0 / fan_in));
    std::uint64_t s = seed ^ griffin::detail::fnv1a(name);
    for (float& v : out) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      v = a * (static_cast<float>(s >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
  };
}

inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// The value after flag argv[i], moving i past it.
inline std::string flag_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) throw std::invalid_argument(std::string(argv[i]) + " needs a value");
  return argv[++i];
}

}  // namespace griffin_bench
