// griffin/generate.hpp: generating tokens for a batch of prompts of
// different lengths, with a sampler, stop tokens, a length limit and a
// per-token streaming callback.
//
//   griffin::generation_options opt{.max_new_tokens = 128, .stop_tokens = {1, 107},
//                                   .sample = {.temperature = 0.7f, .top_p = 0.9f, .seed = 1}};
//   auto st = m.make_state(prompts.size());
//   auto out = griffin::generate(m, st, prompts, opt, [](std::size_t row, std::int32_t token) {
//     std::printf("row %zu: %d\n", row, token);
//     return true;                       // false stops this row
//   });
//
// Prompts continue each row's state (a fresh state starts documents; a chat
// passes the same state turn after turn). When generate returns, each row's
// state holds its prompt and every token it generated, except a stop token
// that ended it -- so the next call continues the conversation -- however
// long the other rows ran on.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "griffin/model.hpp"
#include "griffin/sampling.hpp"

namespace griffin {

struct generation_options {
  std::size_t max_new_tokens = 256;       ///< per row
  std::vector<std::int32_t> stop_tokens;  ///< end a row, not reported nor kept
  sampling sample;                        ///< greedy by default
  std::size_t vocab_limit = 0;            ///< sample ids below this only (a tokenizer smaller than the model's vocabulary); 0: all
};

/// Why a row stopped.
enum class finish_reason { stop_token, max_new_tokens, callback };

struct generation_result {
  std::vector<std::vector<std::int32_t>> tokens;  ///< [B][generated], stop tokens excluded
  std::vector<finish_reason> finish;              ///< [B]
  std::size_t prompt_tokens = 0;                  ///< prefilled, all rows
  std::size_t generated_tokens = 0;               ///< all rows
  double prefill_seconds = 0.0;                   ///< the prompts, up to the first logits
  double decode_seconds = 0.0;                    ///< every decode step after that
  std::size_t decode_steps = 0;
};

/// Called with each generated token as it is chosen; false ends that row.
using token_callback = std::function<bool(std::size_t row, std::int32_t token)>;

/// Generates for prompts[b] in row b of `st` (st.batch() == prompts.size()).
/// Prompts of different lengths are prefilled one row at a time and their
/// sessions placed in the batch; equal ones together.
template <class M>
generation_result generate(const M& m, typename M::state& st, const std::vector<std::vector<std::int32_t>>& prompts,
                           const generation_options& opt, const token_callback& on_token = {}) {
  using clock = std::chrono::steady_clock;
  const std::size_t B = st.batch();
  if (prompts.size() != B)
    throw input_error("generate: " + std::to_string(prompts.size()) + " prompts for a state of " + std::to_string(B) + " rows");
  for (std::size_t b = 0; b < B; ++b)
    if (prompts[b].empty()) throw input_error("generate: the prompt of row " + std::to_string(b) + " is empty");
  if (opt.max_new_tokens == 0) throw input_error("generate: max_new_tokens must be positive");
  sampler choose(opt.sample, B);
  const std::size_t V = m.cfg().vocab_size;
  if (opt.vocab_limit > V)
    throw input_error("generate: vocab_limit " + std::to_string(opt.vocab_limit) + " exceeds the model's vocabulary of " +
                      std::to_string(V));
  const std::size_t sampled = opt.vocab_limit ? opt.vocab_limit : V;

  generation_result out;
  out.tokens.resize(B);
  out.finish.resize(B, finish_reason::max_new_tokens);
  const auto t0 = clock::now();

  // Prefill: logits [B, V] of each row's last prompt token (the decode steps
  // then write theirs into the same tensor).
  tensor<float> logits({B, V});
  bool same_length = true;
  for (const auto& p : prompts) {
    same_length = same_length && p.size() == prompts[0].size();
    out.prompt_tokens += p.size();
  }
  if (same_length) {
    tensor<std::int32_t> tokens({B, prompts[0].size()});
    for (std::size_t b = 0; b < B; ++b) std::copy(prompts[b].begin(), prompts[b].end(), tokens.data() + b * prompts[0].size());
    logits = m.prefill(st, tokens);
  } else {
    // Each row alone: a one-row state resumes the row's session, takes its
    // prompt, and goes back. Checked first so that a bad token changes nothing.
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t t = 0; t < prompts[b].size(); ++t)
        if (prompts[b][t] < 0 || static_cast<std::size_t>(prompts[b][t]) >= V)
          throw input_error("generate: token " + std::to_string(prompts[b][t]) + " at row " + std::to_string(b) +
                            ", position " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(V));
    auto one = m.make_state(1);
    for (std::size_t b = 0; b < B; ++b) {
      one.restore(0, st.save(b));
      const auto l = m.prefill(one, tensor<std::int32_t>({1, prompts[b].size()}, prompts[b]));
      std::copy(l.values().begin(), l.values().end(), logits.data() + b * V);
      st.restore(b, one.save(0));
    }
  }
  const auto t1 = clock::now();
  out.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  // Decode. A finished row's session is saved when it finishes and put back
  // at the end, undoing the steps it was carried through.
  std::vector<bool> active(B, true), finished_after_feed(B, false);
  std::vector<std::vector<std::byte>> saved(B);
  std::vector<std::int32_t> feed(B, 0);
  std::size_t running = B;
  while (running > 0) {
    bool any_feed = false;
    for (std::size_t b = 0; b < B; ++b) {
      if (!active[b]) continue;
      const std::int32_t token = choose.sample(logits.values().subspan(b * V, sampled), b);
      if (std::find(opt.stop_tokens.begin(), opt.stop_tokens.end(), token) != opt.stop_tokens.end()) {
        out.finish[b] = finish_reason::stop_token;
        active[b] = false;
        --running;
        saved[b] = st.save(b);
        continue;
      }
      out.tokens[b].push_back(token);
      ++out.generated_tokens;
      feed[b] = token;
      any_feed = true;
      const bool go_on = !on_token || on_token(b, token);
      if (!go_on || out.tokens[b].size() >= opt.max_new_tokens) {
        out.finish[b] = go_on ? finish_reason::max_new_tokens : finish_reason::callback;
        finished_after_feed[b] = true;  // its last token still goes into the state
      }
    }
    if (!any_feed) break;
    m.decode(st, feed, logits);
    ++out.decode_steps;
    for (std::size_t b = 0; b < B; ++b)
      if (finished_after_feed[b]) {
        finished_after_feed[b] = false;
        active[b] = false;
        --running;
        saved[b] = st.save(b);
      }
  }
  for (std::size_t b = 0; b < B; ++b)
    if (!saved[b].empty()) st.restore(b, saved[b]);
  out.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return out;
}

}  // namespace griffin
