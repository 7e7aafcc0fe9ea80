// griffin/session.hpp: the byte format of a saved decode state (a session)
// and the error a bad one raises.
//
// model::state::save() writes every row, save(row) one row; restore() and
// model::load_state() read them back. The bytes are
//
//   "GRFNSES1"  u32 version  u32 layers  u64 rows
//   per row:    i32 next position  u64 tokens of the current document
//               per layer: u8 symbol ('R', 'A', 'G') and that block's row:
//                 R: u64 E, u64 tw-1, f32 conv1d history [tw-1, E], f32 RG-LRU h [E]
//                 A: u64 W, u64 hd, u64 n <= W, f32 keys [n, hd], f32 values [n, hd] (oldest first)
//                 G: u64 hd, u64 n, f32 keys [n, hd], f32 values [n, hd]
//
// in the host's byte order (little-endian on every machine griffin targets).
// Restoring checks every count against the receiving state, so bytes from
// another model, a truncated file or a corrupted one raise session_error
// naming the field and byte offset, and leave the state untouched.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace griffin {

/// Saved-session bytes that do not fit the state they are restored into.
class session_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

inline constexpr char session_magic[8] = {'G', 'R', 'F', 'N', 'S', 'E', 'S', '1'};
inline constexpr std::uint32_t session_version = 1;

/// Appends plain values and float arrays to a byte vector.
class byte_writer {
 public:
  explicit byte_writer(std::vector<std::byte>& out) : out_(out) {}
  template <class T>
    requires std::is_trivially_copyable_v<T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  void put_floats(const float* p, std::size_t n) {
    if (n == 0) return;  // p may be null (an empty cache)
    const auto* b = reinterpret_cast<const std::byte*>(p);
    out_.insert(out_.end(), b, b + n * sizeof(float));
  }

 private:
  std::vector<std::byte>& out_;
};

/// Reads them back with bounds checks; `apply` false only checks (the first
/// of restore's two passes), true also writes.
class byte_reader {
 public:
  byte_reader(std::span<const std::byte> in, bool apply) : in_(in), apply_(apply) {}
  [[nodiscard]] bool apply() const noexcept { return apply_; }
  [[nodiscard]] std::size_t offset() const noexcept { return pos_; }
  [[nodiscard]] bool at_end() const noexcept { return pos_ == in_.size(); }

  template <class T>
    requires std::is_trivially_copyable_v<T>
  T get(const char* field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  /// A u64 count that must equal `expected` (a size of the receiving state).
  void expect(std::uint64_t expected, const char* field) {
    const std::size_t at = pos_;
    const auto v = get<std::uint64_t>(field);
    if (v != expected)
      fail(std::string(field) + " is " + std::to_string(v) + ", the receiving state has " + std::to_string(expected), at);
  }
  /// n floats into dst (when applying).
  void get_floats(float* dst, std::size_t n, const char* field) {
    if (n > (in_.size() - pos_) / sizeof(float)) need(n * sizeof(float), field);
    if (apply_ && n > 0) std::memcpy(dst, in_.data() + pos_, n * sizeof(float));  // dst may be null when n is 0
    pos_ += n * sizeof(float);
  }
  [[noreturn]] void fail(const std::string& what, std::size_t at) const {
    throw session_error("session: " + what + " (byte " + std::to_string(at) + " of " + std::to_string(in_.size()) + ")");
  }

 private:
  void need(std::size_t n, const char* field) const {
    if (in_.size() - pos_ < n) fail(std::string("truncated reading ") + field, pos_);
  }
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  bool apply_;
};

}  // namespace detail
}  // namespace griffin
