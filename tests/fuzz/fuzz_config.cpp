// libFuzzer target: config.json in both layouts (GriffinConfig and
// transformers) on arbitrary text. Every input is either a valid config or
// refused with config_error -- never a crash or another exception.
#include <cstddef>
#include <cstdint>
#include <string>

#include <griffin/checkpoint.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  try {
    const griffin::config c = griffin::config_from_json(j, "fuzz");
    griffin::validate(c);
  } catch (const griffin::config_error&) {
  }
  try {
    griffin::memory_source weights("fuzz weights");
    weights.add("model.layers.0.mlp_block.gate_proj.weight", {8, 4}, std::vector<float>(32));
    const griffin::config c = griffin::config_from_transformers_json(j, "fuzz", weights);
    griffin::validate(c);
  } catch (const griffin::config_error&) {
  }
  return 0;
}
