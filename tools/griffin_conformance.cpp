// griffin-conformance CASE_DIR [--tolerance T]
//
// Replays a golden case of the official reference implementation (a directory
// with config.json, weights.safetensors and expected.safetensors; weights in
// f32 or bf16) and prints the worst absolute error of every tensor. Exits 0
// when all are within the tolerance (1e-4 by default), 1 when any is not, 2
// on bad usage or an unreadable case.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>

#include <griffin/griffin.hpp>

namespace {

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s CASE_DIR [--tolerance T]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path dir;
  float tolerance = 1e-4f;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--tolerance" && i + 1 < argc) {
      char* end = nullptr;
      tolerance = std::strtof(argv[++i], &end);
      if (*end != '\0' || !(tolerance >= 0.0f)) {
        std::fprintf(stderr, "griffin-conformance: --tolerance needs a non-negative number, got '%s'\n", argv[i]);
        return 2;
      }
    } else if (arg == "-h" || arg == "--help") {
      usage(argv[0]);
      return 0;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "griffin-conformance: unknown option '%s'\n", argv[i]);
      return usage(argv[0]);
    } else if (dir.empty()) {
      dir = arg;
    } else {
      return usage(argv[0]);
    }
  }
  if (dir.empty()) return usage(argv[0]);

  try {
    if (!std::filesystem::is_directory(dir)) {
      std::fprintf(stderr, "griffin-conformance: '%s' is not a directory\n", dir.c_str());
      return 2;
    }
    const auto m = griffin::model<>::load(dir);
    std::printf("case %s: %s, width %zu, vocab %zu\n", dir.c_str(), m.pattern().c_str(), m.cfg().width,
                m.cfg().vocab_size);
    const auto report = griffin::check_conformance(m, dir, tolerance);
    for (const auto& e : report.entries)
      std::printf("  %-28s %-16s max |err| %.3e  %s\n", e.name.c_str(), griffin::shape_string(e.shape).c_str(),
                  static_cast<double>(e.max_abs_error), e.passed ? "ok" : "FAIL");
    std::printf("%s: %zu tensors, tolerance %.1e\n", report.passed() ? "PASS" : "FAIL", report.entries.size(),
                static_cast<double>(tolerance));
    return report.passed() ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "griffin-conformance: %s\n", e.what());
    return 2;
  }
}
