// griffin/detail/scratch.hpp: reusable activation buffers. A forward pass
// takes buffers in a fixed order; `take` hands out slot after slot and grows
// a slot only when a call needs more than any before it, so steady-state
// decode allocates nothing. A slot never moves while in use: growing one slot
// does not touch the others.
#pragma once

#include <cstddef>
#include <vector>

#include "griffin/tensor.hpp"

namespace griffin::detail {

class scratch {
 public:
  /// A buffer of at least n floats, valid until rewound past.
  [[nodiscard]] float* take(std::size_t n) {
    if (next_ == slots_.size()) slots_.emplace_back();
    auto& slot = slots_[next_++];
    if (slot.size() < n) slot.resize(n);
    return slot.data();
  }
  /// Like take, zero-filled.
  [[nodiscard]] float* take_zeroed(std::size_t n) {
    float* p = take(n);
    std::fill(p, p + n, 0.0f);
    return p;
  }

  /// The current position; `rewind(mark())` releases everything taken since.
  [[nodiscard]] std::size_t mark() const noexcept { return next_; }
  void rewind(std::size_t m) noexcept { next_ = m; }

  /// Bytes held by all slots.
  [[nodiscard]] std::size_t bytes() const noexcept {
    std::size_t n = 0;
    for (const auto& s : slots_) n += s.capacity() * sizeof(float);
    return n;
  }

 private:
  std::vector<aligned_vector<float>> slots_;
  std::size_t next_ = 0;
};

/// Rewinds a scratch to where it was when this guard was made.
class scratch_frame {
 public:
  explicit scratch_frame(scratch& s) noexcept : s_(s), mark_(s.mark()) {}
  ~scratch_frame() { s_.rewind(mark_); }
  scratch_frame(const scratch_frame&) = delete;
  scratch_frame& operator=(const scratch_frame&) = delete;

 private:
  scratch& s_;
  std::size_t mark_;
};

}  // namespace griffin::detail
