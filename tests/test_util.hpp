// Helpers shared by griffin's tests.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <unistd.h>

#include <doctest/doctest.h>
#include <griffin/griffin.hpp>

namespace griffin_test {

/// The vendored golden cases (copied from ../shared/golden).
inline std::filesystem::path golden_dir(const std::string& name) {
  return std::filesystem::path(GRIFFIN_TEST_DATA_DIR) / name;
}

/// A fresh temporary directory, removed when the object dies.
class temp_dir {
 public:
  explicit temp_dir(const std::string& tag) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("griffin_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() { std::filesystem::remove_all(path_); }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// Deterministic pseudo-random floats in [-1, 1).
class rng {
 public:
  explicit rng(std::uint64_t seed) : state_(seed) {}
  float uniform() { return static_cast<float>(griffin::detail::uniform01(state_) * 2.0 - 1.0); }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(griffin::detail::splitmix64(state_) % n); }
  std::vector<float> floats(std::size_t n, float scale = 1.0f) {
    std::vector<float> v(n);
    for (float& x : v) x = scale * uniform();
    return v;
  }

 private:
  std::uint64_t state_;
};

/// Largest |a[i] - b[i]|.
inline float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  float m = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// The SIMD architectures the kernels are tested on: SSE2, AVX2+FMA and
// AVX-512 where the compiler targets them, plus the default.
template <class... A>
using keep_supported = decltype(std::tuple_cat(std::conditional_t<A::supported(), std::tuple<A>, std::tuple<>>{}...));
using test_archs = keep_supported<xsimd::sse2, xsimd::fma3<xsimd::avx2>, xsimd::avx512bw>;

template <class Arch>
inline void require_runnable() {
  REQUIRE_MESSAGE(xsimd::available_architectures().best >= Arch::version(), "the CPU lacks ", Arch::name(),
                  " although the tests were compiled for it");
}

/// A simple config for tests: width 32, 4 heads (head_dim 8), lru_width 48.
/// Block kinds, short, for writing schedules and configs in tests.
inline constexpr griffin::block_kind r_ = griffin::block_kind::recurrent, a_ = griffin::block_kind::attention,
                                     g_ = griffin::block_kind::global_attention;

inline griffin::config small_config(std::vector<griffin::block_kind> blocks, std::size_t window = 5) {
  griffin::config c;
  c.vocab_size = 50;
  c.width = 32;
  c.mlp_expanded_width = 64;
  c.num_heads = 4;
  c.lru_width = 48;
  c.attention_window_size = window;
  c.logits_soft_cap = 20.0f;
  c.embeddings_scale_by_sqrt_dim = true;
  c.block_types = std::move(blocks);
  return c;
}

inline griffin::tensor<std::int32_t> random_tokens(rng& r, std::size_t B, std::size_t T, std::size_t vocab) {
  griffin::tensor<std::int32_t> t({B, T});
  for (auto& v : t.values()) v = static_cast<std::int32_t>(r.below(vocab));
  return t;
}

// The message of the exception `f` throws as E; fails the test if it throws nothing or something else.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("wrong exception type: ", e.what());
    return {};
  }
  FAIL("no exception");
  return {};
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace griffin_test
