// griffin-generate: text from a RecurrentGemma (or any griffin) model
// directory with its tokenizer.model, streamed as it is generated.
//
//   griffin-generate --model DIR --prompt TEXT [options]   one completion of TEXT
//   griffin-generate --model DIR --chat [options]          Gemma turns, one user line at a time from stdin
//
// options: --temperature T (0: greedy, the default)  --top-k K  --top-p P  --seed S
//          --max-tokens N (256)  --threads N (all cores)  --weights-type bf16|int8|f32 (as stored)
//          --quiet (no load or speed report)
//
// Load progress and, at the end, prefill and decode tokens/s go to stderr;
// the text to stdout. Exit status: 0 done, 1 failed (the reason on stderr),
// 2 bad usage.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <griffin/griffin.hpp>
#include <griffin/tokenizer.hpp>

namespace {

namespace g = griffin;

struct options {
  std::filesystem::path model;
  std::optional<std::string> prompt;
  bool chat = false;
  bool quiet = false;
  g::generation_options gen;
  std::size_t threads = 0;
  std::optional<g::dtype> weights;
};

class usage_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

constexpr const char* usage_text =
    "usage: griffin-generate --model DIR (--prompt TEXT | --chat) [--temperature T] [--top-k K] [--top-p P]\n"
    "                        [--seed S] [--max-tokens N] [--threads N] [--weights-type bf16|int8|f32] [--quiet]\n";

options parse(int argc, char** argv) {
  options o;
  o.gen.max_new_tokens = 256;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw usage_error(flag + " needs a value");
      return argv[++i];
    };
    auto number = [&]() -> unsigned long long {
      const std::string v = value();
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end || v[0] == '-') throw usage_error(flag + ": '" + v + "' is not a whole number");
      return n;
    };
    auto real = [&]() -> float {
      const std::string v = value();
      char* end = nullptr;
      const float f = std::strtof(v.c_str(), &end);
      if (v.empty() || *end) throw usage_error(flag + ": '" + v + "' is not a number");
      return f;
    };
    if (flag == "--model") o.model = value();
    else if (flag == "--prompt") o.prompt = value();
    else if (flag == "--chat") o.chat = true;
    else if (flag == "--quiet") o.quiet = true;
    else if (flag == "--temperature") o.gen.sample.temperature = real();
    else if (flag == "--top-k") o.gen.sample.top_k = number();
    else if (flag == "--top-p") o.gen.sample.top_p = real();
    else if (flag == "--seed") o.gen.sample.seed = number();
    else if (flag == "--max-tokens") o.gen.max_new_tokens = number();
    else if (flag == "--threads") o.threads = number();
    else if (flag == "--weights-type") {
      const std::string v = value();
      if (v == "bf16") o.weights = g::dtype::bf16;
      else if (v == "int8") o.weights = g::dtype::i8;
      else if (v == "f32") o.weights = g::dtype::f32;
      else throw usage_error("--weights-type: '" + v + "' is not bf16, int8 or f32");
    } else if (flag == "--help" || flag == "-h") {
      std::fputs(usage_text, stdout);
      std::exit(0);
    } else throw usage_error("unknown flag " + flag);
  }
  if (o.model.empty()) throw usage_error("--model DIR is required");
  if (o.prompt.has_value() == o.chat) throw usage_error("give one of --prompt TEXT and --chat");
  if (o.prompt && o.prompt->empty()) throw usage_error("--prompt is empty");
  if (o.gen.max_new_tokens == 0) throw usage_error("--max-tokens must be positive");
  (void)g::sampler(o.gen.sample);  // checks temperature and top-p, with its own message
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct totals {
  std::size_t prompt_tokens = 0, generated = 0, steps = 0;
  double prefill_s = 0, decode_s = 0;
  void add(const g::generation_result& r) {
    prompt_tokens += r.prompt_tokens;
    generated += r.generated_tokens;
    steps += r.decode_steps;
    prefill_s += r.prefill_seconds;
    decode_s += r.decode_seconds;
  }
};

}  // namespace

int main(int argc, char** argv) try {
  options opt;
  try {
    opt = parse(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "griffin-generate: %s\n%s", e.what(), usage_text);
    return 2;
  }
  if (!std::filesystem::is_directory(opt.model)) {
    std::fprintf(stderr, "griffin-generate: no model directory %s\n", opt.model.c_str());
    return 1;
  }
  const auto tok = g::tokenizer::from_model_dir(opt.model);
  const auto t0 = std::chrono::steady_clock::now();
  if (!opt.quiet) std::fprintf(stderr, "loading %s ...\n", opt.model.c_str());
  auto m = g::model<>::load(opt.model);
  if (opt.weights) m.convert_weights(*opt.weights);
  m.set_threads(opt.threads);
  if (!opt.quiet)
    std::fprintf(stderr, "loaded %s: %zu blocks (%s), %.0f MiB of weights (%.0f MiB mapped in place) in %.2f s; %zu threads\n",
                 opt.model.filename().c_str(), m.cfg().block_types.size(), m.pattern().substr(0, 17).c_str(),
                 static_cast<double>(m.weight_bytes()) / 1048576.0, static_cast<double>(m.mapped_weight_bytes()) / 1048576.0,
                 seconds_since(t0), m.threads());
  if (tok.vocab_size() > m.cfg().vocab_size)
    throw std::runtime_error("the tokenizer's " + std::to_string(tok.vocab_size()) + " pieces exceed the model's vocabulary of " +
                             std::to_string(m.cfg().vocab_size));
  opt.gen.vocab_limit = tok.vocab_size();
  if (tok.eos_id() >= 0) opt.gen.stop_tokens.push_back(tok.eos_id());

  auto st = m.make_state(1);
  totals sum;
  g::text_stream stream(tok);
  const auto print = [&](std::size_t, std::int32_t token) {
    std::fputs(stream.push(token).c_str(), stdout);
    std::fflush(stdout);
    return true;
  };

  if (opt.prompt) {
    std::vector<std::int32_t> ids;
    if (tok.bos_id() >= 0) ids.push_back(tok.bos_id());
    const auto text = tok.encode(*opt.prompt);
    ids.insert(ids.end(), text.begin(), text.end());
    sum.add(g::generate(m, st, {ids}, opt.gen, print));
    std::fputs((stream.finish() + "\n").c_str(), stdout);
  } else {
    for (const auto id : g::gemma_chat::stop_tokens(tok)) opt.gen.stop_tokens.push_back(id);
    bool first = true;
    std::string line;
    while (true) {
      if (!opt.quiet) std::fputs("> ", stderr);
      if (!std::getline(std::cin, line)) break;
      if (line.empty()) continue;
      stream.reset();
      sum.add(g::generate(m, st, {g::gemma_chat::user_turn(tok, line, first)}, opt.gen, print));
      first = false;
      std::fputs((stream.finish() + "\n").c_str(), stdout);
      std::fflush(stdout);
    }
  }
  if (!opt.quiet) {
    std::fprintf(stderr, "prefill: %zu tokens in %.2f s (%.1f tokens/s); decode: %zu tokens in %.2f s (%.2f tokens/s)\n",
                 sum.prompt_tokens, sum.prefill_s, sum.prefill_s > 0 ? static_cast<double>(sum.prompt_tokens) / sum.prefill_s : 0.0,
                 sum.generated, sum.decode_s, sum.decode_s > 0 ? static_cast<double>(sum.steps) / sum.decode_s : 0.0);
    std::fprintf(stderr, "session state: %.2f MiB\n", static_cast<double>(st.bytes()) / 1048576.0);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "griffin-generate: %s\n", e.what());
  return 1;
}
