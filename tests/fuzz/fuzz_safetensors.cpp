// libFuzzer target: griffin's safetensors parser on arbitrary bytes. Every
// input must either parse into tensors whose views lie inside the input, or
// be refused with safetensors_error -- never crash, hang or read out of
// bounds (built with ASan + UBSan).
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I include ... fuzz_safetensors.cpp
//   fuzz_safetensors -max_total_time=60 corpus/
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include <griffin/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const griffin::safetensors_file file(bytes, "fuzz input");
    for (const auto& t : file.tensors()) {
      // a view must lie in the file and hold exactly dtype x shape
      if (t.bytes.size() != t.element_count() * griffin::dtype_size(t.type)) std::abort();
      if (t.element_count() <= 4096) {
        std::vector<float> out(t.element_count());
        (void)griffin::convert_to_float(t.type, t.bytes.data(), out.size(), out.data());
      }
      if (file.find(t.name) != &t) std::abort();
    }
  } catch (const griffin::safetensors_error&) {
  }
  return 0;
}
