// griffin/bind.hpp: the one bridge from a runtime config (config.json) to a
// compiled schedule. It accepts a config only when its blocks are, one for
// one, the blocks the schedule was compiled with, and otherwise names the
// first mismatch.
#pragma once

#include <string>

#include "griffin/concepts.hpp"
#include "griffin/config.hpp"
#include "griffin/schedule.hpp"

namespace griffin {

/// Whether a compiled block of kind `compiled` can run a config block of kind
/// `configured`. A global attention block also runs an "attention" block: it
/// is the same computation while a document fits in the window (the golden
/// mqa_tiny case), and the model refuses longer documents.
constexpr bool runs_as(block_kind compiled, block_kind configured) noexcept {
  return compiled == configured || (compiled == block_kind::global_attention && configured == block_kind::attention);
}

/// Throws config_error unless `c` is valid and matches schedule S block for block.
template <Schedule S>
void check_config(const config& c) {
  validate(c);
  if constexpr (StaticSchedule<S>) {
    const auto compiled = block_kinds<S>();
    const std::string schedules =
        " (config: '" + c.pattern() + "'; compiled schedule: '" + pattern_string<S>() + "')";
    if (c.block_types.size() != compiled.size())
      throw config_error("config does not match the compiled schedule: the config has " +
                         std::to_string(c.block_types.size()) + " blocks, the schedule " +
                         std::to_string(compiled.size()) + schedules);
    for (std::size_t i = 0; i < compiled.size(); ++i)
      if (!runs_as(compiled[i], c.block_types[i]))
        throw config_error("config does not match the compiled schedule at block " + std::to_string(i) +
                           ": the config has '" + std::string(block_kind_name(c.block_types[i])) +
                           "', the schedule has " + block_kind_symbol(compiled[i]) + " (" +
                           std::string(block_kind_name(compiled[i])) + ")" + schedules);
  }
}

}  // namespace griffin
