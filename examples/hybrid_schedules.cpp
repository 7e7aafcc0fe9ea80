// The first example to run: compose layer schedules as types, build Hawk,
// Griffin, the MQA Transformer and a hybrid of your own with the same sizes
// and random weights, then decode and watch the latency per token as the
// context grows -- the paper's Figure 4 in miniature. Hawk and Griffin keep a
// state of fixed size, so their latency stays flat; the MQA Transformer's KV
// cache grows with the context, and so does its latency.
//
//   hybrid_schedules [MAX_CONTEXT]   (default 2048; about 15 s)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <griffin/griffin.hpp>

namespace g = griffin;

// ---- 1. Schedules are types ------------------------------------------------
// The paper's three architectures, eight residual blocks each ...
using hawk8 = g::hawk<8>;                       // R R R R R R R R
using griffin8 = g::griffin<8>;                 // R R A R R A R R
using mqa8 = g::mqa_transformer<8>;             // G G G G G G G G
// ... and a hybrid of our own, in one line: attention first, then three recurrent blocks, twice.
using my_hybrid = g::repeat_c<2, g::pattern<"A R R R">>;  // A R R R A R R R

// ---- 2. One size for all of them ----------------------------------------------
template <class Schedule>
g::config make_config() {
  g::config c;
  c.vocab_size = 2048;
  c.width = 256;
  c.mlp_expanded_width = 3 * 256;
  c.num_heads = 2;  // head_dim 128, one shared key/value head (multi-query)
  c.lru_width = 256;
  c.attention_window_size = 512;  // local attention: 512 earlier tokens
  c.logits_soft_cap = 30.0f;
  c.embeddings_scale_by_sqrt_dim = true;
  c.block_types = g::block_kinds<Schedule>();
  // The MQA Transformer's config asks for global attention: no window.
  return c;
}

struct measurement {
  std::vector<double> ms_per_token;  // at each checkpoint
  std::vector<std::size_t> state_bytes;
};

// ---- 3. Decode and time it ------------------------------------------------------
// Decodes one token at a time up to the largest checkpoint; at each checkpoint
// reports the mean latency of the `window` steps before it.
template <class Schedule>
measurement run(const std::vector<std::size_t>& checkpoints, std::size_t window) {
  const auto m = g::model<Schedule>::random(make_config<Schedule>(), /*seed=*/2024);
  auto state = m.make_state(/*batch=*/1);
  measurement out;
  std::vector<std::int32_t> token{1};
  std::size_t next = 0;
  double window_seconds = 0.0;
  for (std::size_t step = 1; step <= checkpoints.back(); ++step) {
    const auto start = std::chrono::steady_clock::now();
    const auto logits = m.decode(state, token);
    const auto stop = std::chrono::steady_clock::now();
    token[0] = static_cast<std::int32_t>(std::max_element(logits.values().begin(), logits.values().end()) -
                                         logits.values().begin());  // greedy
    if (step + window > checkpoints[next]) window_seconds += std::chrono::duration<double>(stop - start).count();
    if (step == checkpoints[next]) {
      out.ms_per_token.push_back(1e3 * window_seconds / static_cast<double>(window));
      out.state_bytes.push_back(state.bytes());
      window_seconds = 0.0;
      ++next;
    }
  }
  return out;
}

int main(int argc, char** argv) {
  const std::size_t max_context = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 2048;
  if (max_context < 64) {
    std::fprintf(stderr, "usage: %s [MAX_CONTEXT >= 64]\n", argv[0]);
    return 2;
  }
  std::vector<std::size_t> checkpoints;
  for (std::size_t n = 64; n <= max_context; n *= 2) checkpoints.push_back(n);
  const std::size_t window = 32;

  std::printf("Decode latency per token as the context grows (batch 1, f32 weights, 1 thread)\n");
  std::printf("width 256, 8 blocks, 2 heads, local window 512, vocab 2048; mean of the %zu steps before each point\n\n", window);
  std::printf("  %-16s %s\n", "hawk<8>", g::pattern_string<hawk8>().c_str());
  std::printf("  %-16s %s\n", "griffin<8>", g::pattern_string<griffin8>().c_str());
  std::printf("  %-16s %s\n", "mqa_transformer", g::pattern_string<mqa8>().c_str());
  std::printf("  %-16s %s\n\n", "my_hybrid", g::pattern_string<my_hybrid>().c_str());

  const measurement results[] = {run<hawk8>(checkpoints, window), run<griffin8>(checkpoints, window),
                                 run<mqa8>(checkpoints, window), run<my_hybrid>(checkpoints, window)};
  std::printf("%8s | %-22s | %-22s | %-22s | %-22s\n", "context", "hawk  ms/tok   state", "griffin ms/tok  state",
              "mqa   ms/tok   state", "A R R R ms/tok state");
  for (std::size_t i = 0; i < checkpoints.size(); ++i) {
    std::printf("%8zu", checkpoints[i]);
    for (const auto& r : results)
      std::printf(" | %8.3f %10.1f KiB", r.ms_per_token[i], static_cast<double>(r.state_bytes[i]) / 1024.0);
    std::printf("\n");
  }
  std::printf("\nHawk's and Griffin's states have a fixed size (Griffin's ring buffers hold the 512-token\n"
              "window), so their latency stays flat; the MQA Transformer's KV cache, and its latency,\n"
              "grow with the context.\n");
  return 0;
}
