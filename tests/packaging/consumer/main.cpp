// Builds a small Griffin with random weights and decodes one token: proves a
// consumer can compile and link against griffin::griffin without any of
// griffin's own flags (no -march=native: the default SIMD architecture).
#include <cstdio>
#include <griffin/griffin.hpp>

int main() {
  griffin::config c;
  c.vocab_size = 16;
  c.width = 16;
  c.mlp_expanded_width = 32;
  c.num_heads = 2;
  c.lru_width = 16;
  c.attention_window_size = 4;
  c.block_types = griffin::block_kinds<griffin::griffin<3>>();
  const auto m = griffin::model<griffin::griffin<3>>::random(c, 1);
  auto state = m.make_state(1);
  const auto logits = m.decode(state, std::vector<std::int32_t>{3});
  std::printf("%s: %zu logits\n", m.pattern().c_str(), logits.size());
  return logits.size() == 16 ? 0 : 1;
}
