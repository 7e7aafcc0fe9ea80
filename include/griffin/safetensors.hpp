// griffin/safetensors.hpp: a validating reader (memory-mapped) and a writer
// for the safetensors format.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {"k": "v"}}, then the data; offsets are relative to the
// first byte after the header. The reader refuses, with a safetensors_error
// naming the file and the tensor, anything that would make a read go wrong:
// a truncated file, a header length beyond the file, malformed JSON, an
// unknown dtype, a bad shape, offsets out of range, reversed or overlapping,
// a byte count that does not match dtype x shape, a duplicated name.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "griffin/dtype.hpp"
#include "griffin/tensor.hpp"

namespace griffin {

/// A malformed or unreadable safetensors file; the message names the file and what is wrong.
class safetensors_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One tensor inside a safetensors file: its bytes are a view into the file's mapping.
struct tensor_view {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::size_t> shape;
  std::span<const std::byte> bytes;
  /// Keeps `bytes` alive (the file mapping); null when they live only as long as their source.
  std::shared_ptr<const void> owner;

  [[nodiscard]] std::size_t element_count() const noexcept { return ::griffin::element_count(shape); }
};

namespace detail {

/// A read-only memory mapping of a whole file (RAII).
class mapped_file {
 public:
  explicit mapped_file(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw safetensors_error(path.string() + ": cannot open: " + std::strerror(errno));
    struct ::stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw safetensors_error(path.string() + ": cannot stat: " + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw safetensors_error(path.string() + ": not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        throw safetensors_error(path.string() + ": cannot map: " + std::strerror(err));
      }
      data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file() {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }

 private:
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

inline std::uint64_t read_le_u64(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

}  // namespace detail

/// A parsed, validated safetensors file. Tensors are views into the file's
/// bytes (memory-mapped when opened from a path), valid while this object lives.
class safetensors_file {
 public:
  /// Largest header griffin accepts (the format's own limit is 100 MB).
  static constexpr std::uint64_t max_header_bytes = 100'000'000;

  /// Maps `path` and validates its header; throws safetensors_error.
  explicit safetensors_file(const std::filesystem::path& path)
      : origin_(path.string()), mapping_(std::make_shared<detail::mapped_file>(path)) {
    parse(mapping_->bytes());
  }

  /// Validates a file already in memory; `origin` names it in error messages. Copies the bytes.
  safetensors_file(std::span<const std::byte> bytes, std::string origin)
      : origin_(std::move(origin)), owned_(std::make_shared<std::vector<std::byte>>(bytes.begin(), bytes.end())) {
    parse(*owned_);
  }

  /// Where the tensors came from (the path), for messages.
  [[nodiscard]] const std::string& origin() const noexcept { return origin_; }
  [[nodiscard]] std::span<const tensor_view> tensors() const noexcept { return tensors_; }
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  /// The tensor called `name`, or null.
  [[nodiscard]] const tensor_view* find(std::string_view name) const noexcept {
    auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                               [](const tensor_view& t, std::string_view n) { return t.name < n; });
    return it != tensors_.end() && it->name == name ? &*it : nullptr;
  }

  /// The tensor called `name`; throws safetensors_error naming the file if absent.
  [[nodiscard]] const tensor_view& at(std::string_view name) const {
    if (const tensor_view* t = find(name)) return *t;
    throw safetensors_error(origin_ + ": no tensor named '" + std::string(name) + "'");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw safetensors_error(origin_ + ": " + what); }

  static std::string json_name(const std::string& key) { return "tensor '" + key + "'"; }

  void parse(std::span<const std::byte> file) {
    if (file.size() < 8)
      fail("truncated: " + std::to_string(file.size()) + " bytes, fewer than the 8-byte header length");
    const std::uint64_t header_len = detail::read_le_u64(file.data());
    if (header_len > file.size() - 8)
      fail("header length " + std::to_string(header_len) + " runs past the end of the file (" +
           std::to_string(file.size()) + " bytes)");
    if (header_len > max_header_bytes) fail("header length " + std::to_string(header_len) + " exceeds 100 MB");
    const auto* header_begin = reinterpret_cast<const char*>(file.data() + 8);
    const std::span<const std::byte> data = file.subspan(8 + header_len);

    // nlohmann keeps the last of duplicated keys silently; catch them while parsing.
    std::set<std::string> seen_keys;
    std::optional<std::string> duplicate;
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(
          header_begin, header_begin + header_len,
          [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
            if (depth == 1 && event == nlohmann::json::parse_event_t::key && !duplicate) {
              std::string key = parsed.get<std::string>();
              if (!seen_keys.insert(key).second) duplicate = std::move(key);
            }
            return true;
          });
    } catch (const nlohmann::json::exception& e) {
      fail(std::string("malformed JSON header: ") + e.what());
    }
    if (duplicate) fail("duplicated " + json_name(*duplicate) + " in the header");
    if (!header.is_object()) fail("the JSON header is not an object");

    for (auto& [key, entry] : header.items()) {
      if (key == "__metadata__") {
        if (!entry.is_object()) fail("__metadata__ is not an object");
        for (auto& [mk, mv] : entry.items()) {
          if (!mv.is_string()) fail("__metadata__ value '" + mk + "' is not a string");
          metadata_[mk] = mv.get<std::string>();
        }
        continue;
      }
      tensors_.push_back(parse_entry(key, entry, data));
    }
    std::sort(tensors_.begin(), tensors_.end(), [](auto& a, auto& b) { return a.name < b.name; });

    // No two tensors may share bytes.
    std::vector<const tensor_view*> by_offset;
    for (auto& t : tensors_)
      if (!t.bytes.empty()) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->bytes.data() < b->bytes.data(); });
    for (std::size_t i = 1; i < by_offset.size(); ++i)
      if (by_offset[i - 1]->bytes.data() + by_offset[i - 1]->bytes.size() > by_offset[i]->bytes.data())
        fail("data of " + json_name(by_offset[i - 1]->name) + " and " + json_name(by_offset[i]->name) + " overlap");
  }

  tensor_view parse_entry(const std::string& key, const nlohmann::json& entry, std::span<const std::byte> data) const {
    const std::string what = json_name(key);
    if (!entry.is_object()) fail(what + ": entry is not an object");
    for (auto& [field, value] : entry.items())
      if (field != "dtype" && field != "shape" && field != "data_offsets")
        fail(what + ": unknown field '" + field + "'");
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) fail(what + ": missing or non-string dtype");
    if (!entry.contains("shape") || !entry["shape"].is_array()) fail(what + ": missing or non-array shape");
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
      fail(what + ": data_offsets must be an array of two integers");

    tensor_view t;
    t.name = key;
    const std::string type_name = entry["dtype"].get<std::string>();
    const auto type = parse_dtype(type_name);
    if (!type) fail(what + ": unknown dtype '" + type_name + "'");
    t.type = *type;

    std::size_t count = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) fail(what + ": shape " + entry["shape"].dump() + " has a non-integer or negative dimension");
      const std::uint64_t n = d.get<std::uint64_t>();
      if (n != 0 && count > std::numeric_limits<std::size_t>::max() / n) fail(what + ": shape overflows");
      count *= static_cast<std::size_t>(n);
      t.shape.push_back(static_cast<std::size_t>(n));
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      fail(what + ": data_offsets must be non-negative integers");
    const std::uint64_t begin = offsets[0].get<std::uint64_t>(), end = offsets[1].get<std::uint64_t>();
    if (begin > end) fail(what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are reversed");
    if (end > data.size())
      fail(what + ": data_offsets end " + std::to_string(end) + " is beyond the " + std::to_string(data.size()) +
           " data bytes (file truncated?)");
    if (count > std::numeric_limits<std::size_t>::max() / dtype_size(t.type) || end - begin != count * dtype_size(t.type))
      fail(what + ": " + std::to_string(end - begin) + " bytes do not hold " + std::string(dtype_name(t.type)) + " " +
           shape_string(t.shape));
    t.bytes = data.subspan(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin));
    if (mapping_) t.owner = mapping_;
    else t.owner = owned_;
    return t;
  }

  std::string origin_;
  std::shared_ptr<detail::mapped_file> mapping_;
  std::shared_ptr<std::vector<std::byte>> owned_;
  std::vector<tensor_view> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// A tensor to be written: name, type, shape and its little-endian bytes.
struct tensor_record {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::size_t> shape;
  std::vector<std::byte> bytes;

  /// An F32 record holding `values`.
  static tensor_record f32(std::string name, std::vector<std::size_t> shape, std::span<const float> values) {
    tensor_record r{std::move(name), dtype::f32, std::move(shape), std::vector<std::byte>(values.size_bytes())};
    if (!values.empty()) std::memcpy(r.bytes.data(), values.data(), values.size_bytes());
    return r;
  }
  /// A BF16 record holding `values` rounded to bfloat16.
  static tensor_record bf16(std::string name, std::vector<std::size_t> shape, std::span<const float> values) {
    tensor_record r{std::move(name), dtype::bf16, std::move(shape), std::vector<std::byte>(values.size() * 2)};
    for (std::size_t i = 0; i < values.size(); ++i) {
      const std::uint16_t b = float_to_bf16(values[i]);
      std::memcpy(r.bytes.data() + 2 * i, &b, 2);
    }
    return r;
  }
};

/// Serialises tensors (in the given order) to safetensors bytes.
inline std::vector<std::byte> serialize_safetensors(std::span<const tensor_record> records,
                                                    const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const auto& r : records) {
    header[r.name] = {{"dtype", dtype_name(r.type)}, {"shape", r.shape}, {"data_offsets", {offset, offset + r.bytes.size()}}};
    offset += r.bytes.size();
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // keep the data 8-byte aligned
  std::vector<std::byte> out(8 + text.size() + offset);
  std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((n >> (8 * i)) & 0xffu);
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::byte* data = out.data() + 8 + text.size();
  for (const auto& r : records) {
    if (!r.bytes.empty()) std::memcpy(data, r.bytes.data(), r.bytes.size());
    data += r.bytes.size();
  }
  return out;
}

/// Writes tensors to a safetensors file; throws safetensors_error if it cannot.
inline void write_safetensors(const std::filesystem::path& path, std::span<const tensor_record> records,
                              const std::map<std::string, std::string>& metadata = {}) {
  const auto bytes = serialize_safetensors(records, metadata);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw safetensors_error(path.string() + ": cannot write");
}

/// The name, type and shape of a tensor to be written.
struct tensor_spec {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::size_t> shape;

  [[nodiscard]] std::size_t bytes() const noexcept {
    return dtype_size(type) * ::griffin::element_count(shape);
  }
};

/// Writes a safetensors file one tensor at a time, so a checkpoint larger
/// than memory can be written: the header (from the specs) first, then each
/// tensor's bytes in the specs' order.
class safetensors_writer {
 public:
  safetensors_writer(const std::filesystem::path& path, std::vector<tensor_spec> specs,
                     const std::map<std::string, std::string>& metadata = {})
      : path_(path), specs_(std::move(specs)), out_(path, std::ios::binary | std::ios::trunc) {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::size_t offset = 0;
    for (const auto& s : specs_) {
      header[s.name] = {{"dtype", dtype_name(s.type)}, {"shape", s.shape}, {"data_offsets", {offset, offset + s.bytes()}}};
      offset += s.bytes();
    }
    std::string text = header.dump();
    while ((8 + text.size()) % 8 != 0) text.push_back(' ');
    const std::uint64_t n = text.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xffu);
    out_.write(len, 8);
    out_.write(text.data(), static_cast<std::streamsize>(text.size()));
    check();
  }

  /// The bytes of the next tensor.
  void write(std::span<const std::byte> bytes) {
    if (next_ == specs_.size()) throw safetensors_error(path_.string() + ": more tensors written than declared");
    if (bytes.size() != specs_[next_].bytes())
      throw safetensors_error(path_.string() + ": tensor '" + specs_[next_].name + "' needs " +
                              std::to_string(specs_[next_].bytes()) + " bytes, got " + std::to_string(bytes.size()));
    out_.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    check();
    ++next_;
  }

  /// Checks every declared tensor was written and closes the file.
  void finish() {
    if (next_ != specs_.size())
      throw safetensors_error(path_.string() + ": only " + std::to_string(next_) + " of " + std::to_string(specs_.size()) +
                              " tensors written");
    out_.close();
    check();
  }

 private:
  void check() const {
    if (!out_) throw safetensors_error(path_.string() + ": cannot write");
  }

  std::filesystem::path path_;
  std::vector<tensor_spec> specs_;
  std::ofstream out_;
  std::size_t next_ = 0;
};

/// Copies a float tensor (F32, BF16, F16 or F64 on disk) into a griffin::tensor<float>.
inline tensor<float> to_float_tensor(const tensor_view& t) {
  tensor<float> out(t.shape);
  if (!convert_to_float(t.type, t.bytes.data(), out.size(), out.data()))
    throw safetensors_error("tensor '" + t.name + "': dtype " + std::string(dtype_name(t.type)) + " is not a float type");
  return out;
}

/// Copies an I32 or I64 tensor into a griffin::tensor<std::int32_t>, refusing values that do not fit.
inline tensor<std::int32_t> to_int32_tensor(const tensor_view& t) {
  tensor<std::int32_t> out(t.shape);
  if (t.type == dtype::i32) {
    if (!t.bytes.empty()) std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
  } else if (t.type == dtype::i64) {
    for (std::size_t i = 0; i < out.size(); ++i) {
      std::int64_t v;
      std::memcpy(&v, t.bytes.data() + 8 * i, 8);
      if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
        throw safetensors_error("tensor '" + t.name + "': value " + std::to_string(v) + " does not fit in int32");
      out.data()[i] = static_cast<std::int32_t>(v);
    }
  } else {
    throw safetensors_error("tensor '" + t.name + "': dtype " + std::string(dtype_name(t.type)) + " is not I32 or I64");
  }
  return out;
}

}  // namespace griffin
