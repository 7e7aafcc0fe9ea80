// griffin-figures: the paper's inference figures (De et al. 2024, Figures 4
// and 5), measured on this CPU for ~1B-parameter MQA Transformer, Hawk and
// Griffin models with random weights.
//
//   griffin-figures [--out DIR] [--weights bf16] [--threads 2] [--layers 18]
//                   [--lengths 512,1024,2048,4096] [--decode 16]
//                   [--context 2048] [--batches 1,2,4,...,128] [--budget-gib 4]
//                   [--models mqa,hawk,griffin]
//
// Figure 4: latency per generated token (batch 1) after prefills of each
// length: every model is built and its prompt prefilled in 512-token chunks,
// the state saved (a session) at each length; then, in 4 rounds that visit
// every model and every length in turn, a session is loaded and decoded; the
// point is the median of its --decode timed steps. Figure 5: decode tokens/s
// by batch size with every row at --context tokens of context (one row
// prefilled, its session restored into every row), for the batches whose
// weights plus decode state fit in --budget-gib, again in 4 rounds over the
// models and batches (median step); the largest is the model's maximum
// throughput in that budget. Rounds keep a shared machine's minute-to-minute
// drift from bending one curve or lifting one model. The three models are
// held at once (~2 GB each in bf16).
// Writes DIR/figure4.svg, DIR/figure5.svg and DIR/figures.md (tables).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <griffin/griffin.hpp>

#include "bench_util.hpp"

namespace {

using griffin_bench::clock_type;
using griffin_bench::seconds_since;

struct options {
  std::string out = ".";
  std::string weights = "bf16";
  std::size_t threads = 2;
  std::size_t layers = 18;
  std::vector<std::size_t> lengths{512, 1024, 2048, 4096};
  std::size_t decode = 16;
  std::size_t context = 2048;
  std::vector<std::size_t> batches{1, 2, 4, 8, 16, 32, 64, 128};
  double budget_gib = 4.0;
  std::vector<std::string> models{"mqa", "hawk", "griffin"};
};

std::size_t to_number(const std::string& flag, const std::string& v) {
  std::size_t used = 0;
  unsigned long n = 0;
  try {
    n = std::stoul(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty()) throw std::invalid_argument(flag + ": '" + v + "' is not a number");
  return static_cast<std::size_t>(n);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&] { return griffin_bench::flag_value(argc, argv, i); };
    auto numbers = [&] {
      std::vector<std::size_t> out;
      for (const auto& s : griffin_bench::split_list(value())) out.push_back(to_number(flag, s));
      if (out.empty() || !std::is_sorted(out.begin(), out.end()) || out.front() == 0)
        throw std::invalid_argument(flag + ": a rising list of positive numbers");
      return out;
    };
    if (flag == "--out") o.out = value();
    else if (flag == "--weights") o.weights = value();
    else if (flag == "--threads") o.threads = to_number(flag, value());
    else if (flag == "--layers") o.layers = to_number(flag, value());
    else if (flag == "--lengths") o.lengths = numbers();
    else if (flag == "--decode") o.decode = to_number(flag, value());
    else if (flag == "--context") o.context = to_number(flag, value());
    else if (flag == "--batches") o.batches = numbers();
    else if (flag == "--budget-gib") o.budget_gib = std::stod(value());
    else if (flag == "--models") {
      o.models = griffin_bench::split_list(value());
      for (const auto& name : o.models)
        if (name != "mqa" && name != "hawk" && name != "griffin")
          throw std::invalid_argument("--models: '" + name + "' is not mqa, hawk or griffin");
      if (o.models.empty()) throw std::invalid_argument("--models: name at least one of mqa, hawk, griffin");
    }
    else if (flag == "--help" || flag == "-h") {
      std::puts(
          "griffin-figures [--out DIR] [--weights f32|bf16|int8] [--threads N] [--layers N] [--lengths 512,1024,...]\n"
          "                [--decode N] [--context N] [--batches 1,2,4,...] [--budget-gib G] [--models mqa,hawk,griffin]");
      std::exit(0);
    } else throw std::invalid_argument("unknown flag " + flag + " (try --help)");
  }
  if (o.weights != "f32" && o.weights != "bf16" && o.weights != "int8")
    throw std::invalid_argument("--weights: '" + o.weights + "' is not f32, bf16 or int8");
  if (o.layers == 0 || o.decode == 0 || o.context == 0) throw std::invalid_argument("--layers, --decode, --context must be positive");
  return o;
}

// ~1B parameters each, as the paper's smallest inference comparison: width
// 2048, MLP 3x, 16 heads of 128 (one shared key/value head), RG-LRU width
// 2048, Griffin's local window 1024, RecurrentGemma's vocabulary.
griffin::config config_for(const std::string& name, std::size_t layers) {
  griffin::config c;
  c.vocab_size = 256000;
  c.width = 2048;
  c.mlp_expanded_width = 3 * 2048;
  c.num_heads = 16;
  c.lru_width = 2048;
  c.attention_window_size = 1024;
  c.logits_soft_cap = 30.0f;
  c.embeddings_scale_by_sqrt_dim = true;
  const auto kind = [&](std::size_t i) {
    using griffin::block_kind;
    if (name == "MQA Transformer") return block_kind::global_attention;
    if (name == "Hawk") return block_kind::recurrent;
    return i % 3 == 2 ? block_kind::attention : block_kind::recurrent;  // Griffin: R R A
  };
  for (std::size_t i = 0; i < layers; ++i) c.block_types.push_back(kind(i));
  return c;
}

griffin::tensor<std::int32_t> tokens_for(std::size_t first, std::size_t count, std::size_t vocab) {
  griffin::tensor<std::int32_t> t({1, count});
  for (std::size_t i = 0; i < count; ++i) t.data()[i] = static_cast<std::int32_t>(((first + i) * 7919 + 13) % vocab);
  return t;
}

// Appends to `times` the seconds of `steps` decode steps of every row of
// `st`, after one untimed step (buffers, caches).
void time_decode(const griffin::model<>& m, griffin::model<>::state& st, std::size_t steps, std::vector<double>& times) {
  std::vector<std::int32_t> tokens(st.batch(), 1);
  griffin::tensor<float> logits;
  m.decode(st, tokens, logits);
  for (std::size_t i = 0; i < steps; ++i) {
    const auto t0 = clock_type::now();
    m.decode(st, tokens, logits);
    times.push_back(seconds_since(t0));
    tokens[0] = static_cast<std::int32_t>(i % 97 + 2);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Rounds in which every point of a figure is visited once: a shared
// machine's speed drifts over minutes, and measuring the points of one curve
// in turn, not one after another, lets the drift reach them all alike.
constexpr std::size_t rounds = 4;

struct series {
  std::string name;
  std::string colour;
  std::vector<std::pair<double, double>> points;  // (x, y); y < 0: not measured
};

// A line chart: x linear or log2, y linear from 0, one polyline per series.
std::string svg_chart(const std::string& title, const std::string& x_label, const std::string& y_label, bool log_x,
                      const std::vector<series>& all) {
  const double W = 640, H = 400, left = 70, right = 170, top = 40, bottom = 55;
  double x0 = 1e300, x1 = -1e300, y1 = 0;
  for (const auto& s : all)
    for (auto [x, y] : s.points) {
      if (y < 0) continue;
      const double xv = log_x ? std::log2(x) : x;
      x0 = std::min(x0, xv);
      x1 = std::max(x1, xv);
      y1 = std::max(y1, y);
    }
  if (x1 <= x0) x1 = x0 + 1;
  // A round top for the y axis.
  const double magnitude = std::pow(10.0, std::floor(std::log10(y1 > 0 ? y1 : 1)));
  double y_top = magnitude;
  for (double f : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (f * magnitude >= y1 * 1.05) {
      y_top = f * magnitude;
      break;
    }
  const auto px = [&](double x) { return left + ((log_x ? std::log2(x) : x) - x0) / (x1 - x0) * (W - left - right); };
  const auto py = [&](double y) { return H - bottom - y / y_top * (H - top - bottom); };
  std::string svg;
  char buf[512];
  const auto add = [&](const char* fmt, auto... args) {
    std::snprintf(buf, sizeof buf, fmt, args...);
    svg += buf;
  };
  add("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
  add("<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  add("<text x=\"%.0f\" y=\"22\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", left, title.c_str());
  add("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, H - bottom, W - right, H - bottom);
  add("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, top, left, H - bottom);
  for (int i = 0; i <= 5; ++i) {
    const double y = y_top * i / 5;
    add("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, py(y), W - right, py(y));
    add("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", left - 6, py(y) + 4, y);
  }
  std::vector<double> ticks;
  for (const auto& s : all)
    for (auto [x, y] : s.points) ticks.push_back(x);
  std::sort(ticks.begin(), ticks.end());
  ticks.erase(std::unique(ticks.begin(), ticks.end()), ticks.end());
  for (double x : ticks) add("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", px(x), H - bottom + 18, x);
  add("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", (left + W - right) / 2, H - 12, x_label.c_str());
  add("<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", (top + H - bottom) / 2,
      y_label.c_str());
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto& s = all[i];
    std::string line;
    for (auto [x, y] : s.points) {
      if (y < 0) continue;
      std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(x), py(y));
      line += buf;
      add("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px(x), py(y), s.colour.c_str());
    }
    add("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n", s.colour.c_str(), line.c_str());
    const double ly = top + 10 + 20.0 * static_cast<double>(i);
    add("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n", W - right + 15, ly,
        W - right + 40, ly, s.colour.c_str());
    add("<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", W - right + 46, ly + 4, s.name.c_str());
  }
  svg += "</svg>\n";
  return svg;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write " + path);
  f << text;
  if (!f) throw std::runtime_error("error writing " + path);
}

}  // namespace

int main(int argc, char** argv) try {
  using namespace griffin;
  const options opt = parse(argc, argv);
  const dtype weight_type = opt.weights == "f32" ? dtype::f32 : opt.weights == "bf16" ? dtype::bf16 : dtype::i8;
  std::vector<std::pair<std::string, std::string>> models;
  const auto wanted = [&](const char* key) { return std::find(opt.models.begin(), opt.models.end(), key) != opt.models.end(); };
  if (wanted("mqa")) models.emplace_back("MQA Transformer", "#d62728");
  if (wanted("hawk")) models.emplace_back("Hawk", "#1f77b4");
  if (wanted("griffin")) models.emplace_back("Griffin", "#2ca02c");
  const double budget = opt.budget_gib * 1024 * 1024 * 1024;

  std::vector<series> fig4, fig5;
  std::string md4 = "| prefill length |", md5 = "| batch |";
  std::string head4 = "|---:|", head5 = "|---:|";
  std::map<std::string, std::vector<std::string>> cells4, cells5;
  std::map<std::string, std::string> summary;

  // Every model is built and prefilled first, and then each round visits
  // every model (and every length or batch of it): measured one model after
  // another, a slow minute of the shared machine fell on one model's curve
  // alone (Hawk once read 80 ms a token against Griffin's 48).
  struct subject {
    std::string name, colour;
    std::unique_ptr<model<>> m;
    std::vector<std::vector<std::byte>> sessions;  // at each of opt.lengths
    std::vector<std::byte> at_context;             // the whole state at opt.context
    std::vector<std::byte> row;                    // its row 0
    std::vector<std::vector<double>> step_s, batch_s;
  };
  std::vector<subject> subjects;
  for (const auto& [name, colour] : models) {
    subject& sub = subjects.emplace_back();
    sub.name = name;
    sub.colour = colour;
    const config cfg = config_for(name, opt.layers);
    auto t0 = clock_type::now();
    weight_reader reader(griffin_bench::fast_random_weights(7));
    sub.m = std::make_unique<model<>>(cfg, reader);
    model<>& m = *sub.m;
    m.convert_weights(weight_type);
    m.set_threads(opt.threads);
    std::printf("%s: %s, %.2f GB of %s weights (generated in %.0f s)\n", name.c_str(), cfg.pattern().substr(0, 24).c_str(),
                static_cast<double>(m.weight_bytes()) / 1e9, opt.weights.c_str(), seconds_since(t0));
    std::fflush(stdout);
    auto st = m.make_state(1);
    std::size_t position = 0;
    std::vector<std::size_t> lengths = opt.lengths;
    if (std::find(lengths.begin(), lengths.end(), opt.context) == lengths.end()) {
      lengths.push_back(opt.context);
      std::sort(lengths.begin(), lengths.end());
    }
    for (std::size_t length : lengths) {
      t0 = clock_type::now();
      for (std::size_t chunk = 512; position < length; position += std::min(chunk, length - position))
        (void)m.prefill(st, tokens_for(position, std::min(chunk, length - position), cfg.vocab_size));
      const double prefill_s = seconds_since(t0);
      auto saved = st.save();
      if (length == opt.context) sub.at_context = saved;
      if (std::find(opt.lengths.begin(), opt.lengths.end(), length) == opt.lengths.end()) continue;
      std::printf("  prefill %5zu (+%.1f s), session %.1f MiB\n", length, prefill_s, static_cast<double>(saved.size()) / 1048576.0);
      std::fflush(stdout);
      sub.sessions.push_back(std::move(saved));
    }
    sub.row = m.load_state(sub.at_context).save(0);
    sub.step_s.resize(sub.sessions.size());
    sub.batch_s.resize(opt.batches.size());
  }
  auto fits = [&](const subject& sub, std::size_t batch) {
    return static_cast<double>(sub.m->weight_bytes()) + static_cast<double>(batch) * static_cast<double>(sub.at_context.size()) <=
           budget;
  };

  // Figure 4.
  for (std::size_t r = 0; r < rounds; ++r)
    for (subject& sub : subjects)
      for (std::size_t i = 0; i < sub.sessions.size(); ++i) {
        auto at = sub.m->load_state(sub.sessions[i]);
        time_decode(*sub.m, at, (opt.decode + rounds - 1) / rounds, sub.step_s[i]);
      }
  // Figure 5.
  for (std::size_t r = 0; r < rounds; ++r)
    for (subject& sub : subjects)
      for (std::size_t i = 0; i < opt.batches.size(); ++i) {
        if (!fits(sub, opt.batches[i])) continue;
        auto many = sub.m->make_state(opt.batches[i]);
        for (std::size_t b = 0; b < opt.batches[i]; ++b) many.restore(b, sub.row);
        time_decode(*sub.m, many, opt.batches[i] >= 32 ? 1 : 2, sub.batch_s[i]);
      }

  for (const subject& sub : subjects) {
    const std::string& name = sub.name;
    std::printf("%s:\n", name.c_str());
    series s4{name, sub.colour, {}};
    for (std::size_t i = 0; i < sub.sessions.size(); ++i) {
      const double latency = median(sub.step_s[i]);
      s4.points.emplace_back(static_cast<double>(opt.lengths[i]), 1e3 * latency);
      char cell[64];
      std::snprintf(cell, sizeof cell, " %.1f |", 1e3 * latency);
      cells4[name].push_back(cell);
      std::printf("  after %5zu: %.1f ms/token (median of %zu steps in %zu rounds)\n", opt.lengths[i], 1e3 * latency,
                  sub.step_s[i].size(), rounds);
    }
    fig4.push_back(s4);

    series s5{name, sub.colour, {}};
    double best = 0;
    std::size_t best_batch = 0;
    for (std::size_t i = 0; i < opt.batches.size(); ++i) {
      const std::size_t batch = opt.batches[i];
      const double state_bytes = static_cast<double>(batch) * static_cast<double>(sub.at_context.size());
      if (!fits(sub, batch)) {
        cells5[name].push_back(" over budget |");
        s5.points.emplace_back(static_cast<double>(batch), -1.0);
        continue;
      }
      const double step = median(sub.batch_s[i]);
      const double tps = static_cast<double>(batch) / step;
      if (tps > best) {
        best = tps;
        best_batch = batch;
      }
      s5.points.emplace_back(static_cast<double>(batch), tps);
      char cell[64];
      std::snprintf(cell, sizeof cell, " %.1f |", tps);
      cells5[name].push_back(cell);
      std::printf("  batch %3zu at context %zu: %.1f tokens/s (state %.0f MiB)\n", batch, opt.context, tps,
                  state_bytes / 1048576.0);
    }
    char line[160];
    std::snprintf(line, sizeof line, "%.1f tokens/s at batch %zu (session %.2f MiB a row)", best, best_batch,
                  static_cast<double>(sub.at_context.size()) / 1048576.0);
    summary[name] = line;
    fig5.push_back(s5);
    md4 += " " + name + " ms/token |";
    md5 += " " + name + " tokens/s |";
    head4 += "---:|";
    head5 += "---:|";
  }

  std::string md = "Figure 4: latency per generated token at batch 1 after a prefill (" + opt.weights + " weights, " +
                   std::to_string(opt.threads) + " threads, " + std::to_string(opt.layers) + " blocks)\n\n" + md4 + "\n" +
                   head4 + "\n";
  for (std::size_t i = 0; i < opt.lengths.size(); ++i) {
    md += "| " + std::to_string(opt.lengths[i]) + " |";
    for (const auto& [name, colour] : models) md += cells4[name][i];
    md += "\n";
  }
  char budget_text[64];
  std::snprintf(budget_text, sizeof budget_text, "%.1f GiB", opt.budget_gib);
  md += "\nFigure 5: decode tokens/s by batch size, every row at " + std::to_string(opt.context) +
        " tokens of context, weights plus state within " + budget_text + "\n\n" + md5 + "\n" + head5 + "\n";
  for (std::size_t i = 0; i < opt.batches.size(); ++i) {
    md += "| " + std::to_string(opt.batches[i]) + " |";
    for (const auto& [name, colour] : models) md += cells5[name][i];
    md += "\n";
  }
  md += "\nMaximum throughput within the budget:\n\n";
  for (const auto& [name, colour] : models) md += "- " + name + ": " + summary[name] + "\n";

  write_file(opt.out + "/figures.md", md);
  write_file(opt.out + "/figure4.svg",
             svg_chart("Latency per token after a prefill (batch 1, " + opt.weights + ", " + std::to_string(opt.threads) + " threads)",
                       "prefill length (tokens)", "ms per generated token", false, fig4));
  write_file(opt.out + "/figure5.svg",
             svg_chart("Decode throughput within " + std::string(budget_text) + " (context " + std::to_string(opt.context) + ")",
                       "batch size", "tokens per second", true, fig5));
  std::printf("\n%s\nwrote %s/figure4.svg, figure5.svg, figures.md\n", md.c_str(), opt.out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "griffin-figures: %s\n", e.what());
  return 2;
}
