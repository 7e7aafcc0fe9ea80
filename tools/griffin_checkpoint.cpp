// griffin-checkpoint: look into, convert and make model directories.
//
//   griffin-checkpoint info DIR
//       the layout, the config, the tensors, and what loading costs: time, the
//       bytes used in place from the file's memory map and the bytes copied,
//       and the process's memory after one decode step relative to the file size
//   griffin-checkpoint convert SRC DST [--format transformers|official] [--dtype bf16|f16|f32] [--shard-mb N]
//       rewrites a model directory in the other layout or type
//   griffin-checkpoint random DST --like 2b|9b|DIR [--format ...] [--dtype ...] [--shard-mb N] [--seed S] [--vocab V]
//       writes random weights shaped like RecurrentGemma-2B / -9B (or like the
//       model in DIR), tensor by tensor, e.g. to measure without downloading
//
// Exit status: 0 done, 1 failed (the reason on stderr), 2 bad usage.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <griffin/griffin.hpp>

namespace {

namespace g = griffin;

struct memory {
  std::size_t anon = 0;     // bytes resident in anonymous memory (the process's own)
  std::size_t weights = 0;  // bytes resident in mappings of .safetensors files
};

// Reads /proc/self/smaps: anonymous memory, and the resident pages of mapped checkpoint files.
memory resident() {
  std::ifstream smaps("/proc/self/smaps");
  memory m;
  std::string line;
  bool checkpoint_mapping = false;
  while (std::getline(smaps, line)) {
    const auto colon = line.find(':');
    const bool header = colon == std::string::npos || line.find(' ') < colon;
    if (header) {
      checkpoint_mapping = line.ends_with(".safetensors");
      continue;
    }
    std::size_t kb = 0;
    if (line.starts_with("Rss:") && checkpoint_mapping && std::sscanf(line.c_str() + 4, "%zu", &kb) == 1)
      m.weights += kb * 1024;
    else if (line.starts_with("Anonymous:") && std::sscanf(line.c_str() + 10, "%zu", &kb) == 1)
      m.anon += kb * 1024;
  }
  return m;
}

double mib(std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// Bytes of weights in a model directory (expected.safetensors of a golden case excluded).
std::size_t weight_file_bytes(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" && e.path().filename() != "expected.safetensors") n += e.file_size();
  return n;
}

int usage() {
  std::fprintf(stderr,
               "usage: griffin-checkpoint info DIR\n"
               "       griffin-checkpoint convert SRC DST [--format transformers|official] [--dtype bf16|f16|f32] [--shard-mb N]\n"
               "       griffin-checkpoint random DST --like 2b|9b|DIR [--format transformers|official] [--dtype bf16|f16|f32]\n"
               "                                 [--shard-mb N] [--seed S] [--vocab V]\n");
  return 2;
}

struct options {
  std::vector<std::string> positional;
  g::checkpoint_format format = g::checkpoint_format::transformers;
  g::dtype type = g::dtype::bf16;
  std::size_t shard_mb = 0;
  std::uint64_t seed = 1;
  std::size_t vocab = 0;  // random: 0 keeps the --like model's vocabulary
  std::string like;
};

std::optional<options> parse(int argc, char** argv) {
  options o;
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::optional<std::string_view> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string_view(argv[++i]);
    };
    if (a == "--format") {
      const auto v = value();
      if (v == "transformers") o.format = g::checkpoint_format::transformers;
      else if (v == "official") o.format = g::checkpoint_format::official;
      else return std::nullopt;
    } else if (a == "--dtype") {
      const auto v = value();
      if (v == "bf16") o.type = g::dtype::bf16;
      else if (v == "f16") o.type = g::dtype::f16;
      else if (v == "f32") o.type = g::dtype::f32;
      else return std::nullopt;
    } else if (a == "--shard-mb" || a == "--seed" || a == "--vocab") {
      const auto v = value();
      if (!v) return std::nullopt;
      char* end = nullptr;
      const std::string s(*v);
      const unsigned long long n = std::strtoull(s.c_str(), &end, 10);
      if (s.empty() || *end) return std::nullopt;
      if (a == "--seed") o.seed = n;
      else (a == "--vocab" ? o.vocab : o.shard_mb) = n;
    } else if (a == "--like") {
      const auto v = value();
      if (!v) return std::nullopt;
      o.like = *v;
    } else if (!a.empty() && a[0] == '-') {
      return std::nullopt;
    } else {
      o.positional.emplace_back(a);
    }
  }
  return o;
}

void write(const std::filesystem::path& dst, const g::config& c, std::span<const g::parameter_spec> params,
           const g::weight_generator& values, const options& o) {
  if (o.format == g::checkpoint_format::official) g::write_official_checkpoint(dst, c, params, values, o.type);
  else g::write_transformers_checkpoint(dst, c, params, values, {o.type, o.shard_mb * 1024 * 1024, false});
}

int info(const std::filesystem::path& dir) {
  const memory before = resident();
  const auto start = std::chrono::steady_clock::now();
  const g::model<> m = g::model<>::load(dir);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const memory loaded = resident();
  const g::checkpoint ck = g::open_checkpoint(dir);
  const std::size_t file_bytes = weight_file_bytes(dir);
  const auto& c = m.cfg();
  std::printf("%s: %s layout, %zu tensors, %.1f MiB of safetensors\n", dir.c_str(),
              std::string(g::checkpoint_format_name(ck.format)).c_str(), ck.weights->names().size(), mib(file_bytes));
  std::printf("  blocks   %zu: %s\n", c.block_types.size(), c.pattern().c_str());
  std::printf("  sizes    vocab %zu, width %zu, mlp %zu, heads %zu, lru %zu, window %zu, soft cap %g\n", c.vocab_size,
              c.width, c.mlp_expanded_width, c.num_heads, c.lru_width, c.attention_window_size,
              static_cast<double>(c.logits_soft_cap));
  const bool is_2b = c.block_types == g::recurrentgemma_2b::make_config().block_types &&
                     g::first_difference(c, g::recurrentgemma_2b::dims).empty();
  const bool is_9b = c.block_types == g::recurrentgemma_9b::make_config().block_types &&
                     g::first_difference(c, g::recurrentgemma_9b::dims).empty();
  if (is_2b || is_9b)
    std::printf("  preset   %s: load_recurrentgemma() runs it on its compiled schedule\n",
                is_2b ? "recurrentgemma_2b" : "recurrentgemma_9b");
  std::printf("  loaded   in %.2f s: %.1f MiB used in place from the memory map, %.1f MiB copied\n", seconds,
              mib(m.mapped_weight_bytes()), mib(m.copied_weight_bytes()));

  auto st = m.make_state(1);
  (void)m.decode(st, std::vector<std::int32_t>{1});  // touches every weight once
  const memory used = resident();
  const std::size_t anon = used.anon - std::min(used.anon, before.anon);
  std::printf("  memory   after one decode step: %.1f MiB anonymous + %.1f MiB of checkpoint pages = %.2fx the file size\n",
              mib(anon), mib(used.weights),
              file_bytes ? static_cast<double>(anon + used.weights) / static_cast<double>(file_bytes) : 0.0);
  std::printf("           (after loading only: %.1f MiB anonymous)\n", mib(loaded.anon - std::min(loaded.anon, before.anon)));
  return 0;
}

int convert(const std::filesystem::path& src, const std::filesystem::path& dst, const options& o) {
  const g::checkpoint ck = g::open_checkpoint(src);
  g::weight_reader reader(*ck.weights, ck.naming());
  const auto params = g::parameters(ck.cfg);
  const g::weight_generator values = [&](const std::string& name, const std::vector<std::size_t>& shape, std::span<float> out) {
    if (name.ends_with(".mlp_block.ffw_up.w") || name.ends_with(".mlp_block.ffw_up.b")) {
      const std::size_t half = out.size() / 2;
      for (std::size_t i = 0; i < 2; ++i) {
        const auto part = reader.load(name, shape, i);
        std::copy(part.begin(), part.end(), out.begin() + static_cast<std::ptrdiff_t>(i * half));
      }
    } else {
      const auto all = reader.load(name, shape);
      std::copy(all.begin(), all.end(), out.begin());
    }
  };
  write(dst, ck.cfg, params, values, o);
  std::printf("wrote %s (%s layout, %s)\n", dst.c_str(), std::string(g::checkpoint_format_name(o.format)).c_str(),
              std::string(g::dtype_name(o.type)).c_str());
  return 0;
}

int random(const std::filesystem::path& dst, const options& o) {
  g::config c;
  if (o.like == "2b") c = g::recurrentgemma_2b::make_config();
  else if (o.like == "9b") c = g::recurrentgemma_9b::make_config();
  else if (!o.like.empty()) c = g::open_checkpoint(o.like).cfg;
  else return usage();
  if (o.vocab) c.vocab_size = o.vocab;
  const auto params = g::parameters(c);
  write(dst, c, params, g::random_weight_generator(o.seed), o);
  std::printf("wrote %s: random weights (seed %llu) shaped like %s, %s layout, %s\n", dst.c_str(),
              static_cast<unsigned long long>(o.seed), o.like.c_str(),
              std::string(g::checkpoint_format_name(o.format)).c_str(), std::string(g::dtype_name(o.type)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string_view command = argv[1];
  const auto o = parse(argc, argv);
  if (!o) return usage();
  try {
    if (command == "info" && o->positional.size() == 1) return info(o->positional[0]);
    if (command == "convert" && o->positional.size() == 2) return convert(o->positional[0], o->positional[1], *o);
    if (command == "random" && o->positional.size() == 1) return random(o->positional[0], *o);
    return usage();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "griffin-checkpoint: %s\n", e.what());
    return 1;
  }
}
