// griffin/recurrentgemma.hpp: the released RecurrentGemma checkpoints on
// their compiled schedules.
//
//   auto m = griffin::load_preset<griffin::recurrentgemma_2b>("recurrentgemma-2b");
//   auto any = griffin::load_recurrentgemma(dir);  // 2B or 9B, whichever the directory holds
//   std::visit([](auto& m) { ... m.decode(...) ... }, any);
#pragma once

#include <filesystem>
#include <sstream>
#include <string>
#include <variant>

#include "griffin/checkpoint.hpp"
#include "griffin/model.hpp"
#include "griffin/presets.hpp"

namespace griffin {

/// The first field in which `found` differs from `expected`, as "width 2048
/// (the preset has 2560)", or empty when they agree.
inline std::string first_difference(const dimensions& found, const dimensions& expected) {
  std::ostringstream os;
  auto check = [&](const char* name, auto f, auto e) {
    if (os.tellp() == 0 && f != e) os << name << " " << f << " (the preset has " << e << ")";
  };
  check("vocab_size", found.vocab_size, expected.vocab_size);
  check("width", found.width, expected.width);
  check("mlp_expanded_width", found.mlp_expanded_width, expected.mlp_expanded_width);
  check("num_heads", found.num_heads, expected.num_heads);
  check("lru_width", found.lru_width, expected.lru_width);
  check("attention_window_size", found.attention_window_size, expected.attention_window_size);
  check("logits_soft_cap", found.logits_soft_cap, expected.logits_soft_cap);
  check("embeddings_scale_by_sqrt_dim", found.embeddings_scale_by_sqrt_dim, expected.embeddings_scale_by_sqrt_dim);
  check("conv1d_temporal_width", found.conv1d_temporal_width, expected.conv1d_temporal_width);
  return os.str();
}

/// Loads a model directory (either layout) as preset P: its config must have
/// P's dimensions and P's blocks; otherwise config_error names the first
/// difference (a field, or a block index with the kinds).
template <class P>
model<typename P::schedule_type> load_preset(const std::filesystem::path& dir) {
  const checkpoint ck = open_checkpoint(dir);
  if (const std::string diff = first_difference(ck.cfg, P::dims); !diff.empty())
    throw config_error(dir.string() + ": the checkpoint does not have the preset's dimensions: " + diff);
  return model<typename P::schedule_type>(ck.cfg, *ck.weights, ck.naming());
}

/// RecurrentGemma-2B or -9B, on its compiled schedule.
using recurrentgemma_model =
    std::variant<model<recurrentgemma_2b::schedule_type>, model<recurrentgemma_9b::schedule_type>>;

/// Loads google/recurrentgemma-2b, -2b-it, -9b or -9b-it (either layout),
/// choosing the preset by the number of blocks; refuses any other model.
inline recurrentgemma_model load_recurrentgemma(const std::filesystem::path& dir) {
  const checkpoint ck = open_checkpoint(dir);
  const std::size_t blocks = ck.cfg.block_types.size();
  auto as = [&]<class P>(std::type_identity<P>) -> recurrentgemma_model {
    if (const std::string diff = first_difference(ck.cfg, P::dims); !diff.empty())
      throw config_error(dir.string() + ": " + std::to_string(blocks) + " blocks like RecurrentGemma-" +
                         (blocks == 26 ? "2B" : "9B") + ", but " + diff);
    return model<typename P::schedule_type>(ck.cfg, *ck.weights, ck.naming());
  };
  if (blocks == recurrentgemma_2b::schedule_type::size) return as(std::type_identity<recurrentgemma_2b>{});
  if (blocks == recurrentgemma_9b::schedule_type::size) return as(std::type_identity<recurrentgemma_9b>{});
  throw config_error(dir.string() + ": " + std::to_string(blocks) +
                     " blocks: not RecurrentGemma-2B (26 blocks) or -9B (38 blocks)");
}

}  // namespace griffin
