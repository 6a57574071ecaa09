//===- Options.cpp - moe-run's command line -------------------------------===//
#include "Options.h"

#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace moerun {
const char *const kUsage = R"(usage: moe-run MODULE.so [options]

Runs a MoE layer compiled by moe-compile: seeded arguments, timed
iterations, measured peak memory, checksum, optional reference check.

options:
  --backend cpu|cuda      runtime backend (default cpu)
  --device N              device ordinal (default 0; the CPU has only 0)
  --tokens N              token count; required for a dynamic module, must
                          equal a static module's count
  --seed S                data seed (default 0; decimal or 0x hex)
  --repeat N              measured iterations, N >= 1 (default 1)
  --warmup N              unmeasured iterations first (default 1 on cuda,
                          0 on cpu)
  --check                 compare every op with moe-run's reference on the
                          op's own inputs, and the data flow between ops
  --tolerance X           max_rel_err allowed of any op by --check (default
                          by its output dtype: bf16 5e-2, f16 6e-3, f32 1e-4;
                          expert ops with fp8 weights 0.2)
  --check-finite          fail if the output has NaN or Inf
  --memory-limit BYTES    runtime memory limit over arguments and
                          intermediates (suffixes K M G T, Ki Mi Gi Ti;
                          0 = none)
  --tuning-file PATH      kernel launch configs over the defaults (cuda
                          only; format in docs/kernels.md)
  --json                  one JSON object on stdout
  --quiet                 no summary and no progress lines
  --compare B.so          interleaved A/B: run MODULE and B alternately on the
                          same arguments (same argument list required),
                          --rounds times each (warmup + repeat iterations per
                          round); reports each one's per-round medians, peak
                          and checksum, and whether the outputs are equal
  --rounds N              rounds of --compare (default 5)
  --ranks N               run N ranks of the program in this process, one
                          thread and context each (cpu: a shared-memory
                          group; cuda: devices --device .. --device+N-1,
                          NCCL); a tensor-parallel module (moe-gen --tp N)
                          needs N ranks, each with its shard of the whole
                          layer's weights; reports each rank's latency and
                          peak (docs/multi-gpu.md)
  --collective-timeout MS how long a collective waits on the host for the
                          other ranks to arrive before every rank fails
                          (default 60000; 0 = no limit)
  --save-output PATH      write the output arguments' bytes (rank 0's), in
                          argument order, to PATH
  --share-weights         weights of layer l > 0 ("layers.l.*") use layer 0's
                          buffers (same values in every layer): deep layer
                          stacks fit and fill fast; the transient memory and
                          the work are those of distinct weights
  -h, --help              this text
)";

thread_local bool fatalThrows = false;

[[noreturn]] void fatal(const char *format, ...) {
  va_list args;
  va_start(args, format);
  char text[2048];
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  if (fatalThrows)
    throw FatalError(text);
  std::fflush(stdout);
  std::fprintf(stderr, "moe-run: error: %s\n", text);
  std::exit(1);
}

void warning(const char *format, ...) {
  std::fputs("moe-run: warning: ", stderr);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
}

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//


/// A decimal integer (optionally 0x hex when `hex`), the whole string.
bool parseUnsigned(const std::string &text, uint64_t &out, bool hex = false) {
  if (text.empty())
    return false;
  int base = 10;
  size_t start = 0;
  if (hex && text.size() > 2 && text[0] == '0' &&
      (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    start = 2;
  }
  uint64_t value = 0;
  for (size_t i = start; i < text.size(); ++i) {
    char c = text[i];
    int digit;
    if (c >= '0' && c <= '9')
      digit = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f')
      digit = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F')
      digit = c - 'A' + 10;
    else
      return false;
    if (value > (UINT64_MAX - uint64_t(digit)) / uint64_t(base))
      return false;
    value = value * uint64_t(base) + uint64_t(digit);
  }
  out = value;
  return true;
}

/// A non-negative integer for option `name`, at most `max`.
int64_t intOption(const std::string &name, const std::string &text, int64_t min,
                  int64_t max) {
  uint64_t value;
  bool negative = !text.empty() && text[0] == '-';
  if (negative || !parseUnsigned(text, value) || value > uint64_t(max) ||
      int64_t(value) < min) {
    if (negative || (parseUnsigned(text, value) && int64_t(value) < min))
      fatal("%s must be an integer >= %" PRId64 ", got '%s'", name.c_str(), min,
            text.c_str());
    if (parseUnsigned(text, value))
      fatal("%s must be at most %" PRId64 ", got '%s'", name.c_str(), max,
            text.c_str());
    fatal("%s expects an integer, got '%s'", name.c_str(), text.c_str());
  }
  return int64_t(value);
}

/// BYTES with an optional K/M/G/T (powers of 1000) or Ki/Mi/Gi/Ti (powers
/// of 1024) suffix and an optional trailing B.
bool parseBytes(std::string text, int64_t &out) {
  if (!text.empty() && (text.back() == 'B' || text.back() == 'b'))
    text.pop_back();
  uint64_t multiplier = 1;
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  std::string suffix = text.substr(digits);
  text.resize(digits);
  static const struct {
    const char *name;
    uint64_t value;
  } suffixes[] = {{"", 1},
                  {"K", 1000},
                  {"k", 1000},
                  {"M", 1000000},
                  {"G", 1000000000},
                  {"T", 1000000000000},
                  {"Ki", 1ULL << 10},
                  {"Mi", 1ULL << 20},
                  {"Gi", 1ULL << 30},
                  {"Ti", 1ULL << 40}};
  bool found = false;
  for (const auto &s : suffixes)
    if (suffix == s.name) {
      multiplier = s.value;
      found = true;
    }
  uint64_t value;
  if (!found || !parseUnsigned(text, value))
    return false;
  if (value > uint64_t(INT64_MAX) / multiplier)
    return false;
  out = int64_t(value * multiplier);
  return true;
}

Options parseOptions(int argc, char **argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg.size() < 2 || arg[0] != '-' || arg == "-") {
      positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      for (++i; i < argc; ++i)
        positional.push_back(argv[i]);
      break;
    }
    std::string name = arg, value;
    bool hasValue = false;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      hasValue = true;
    }
    auto flag = [&] {
      if (hasValue)
        fatal("%s takes no value", name.c_str());
    };
    auto needValue = [&]() -> std::string {
      if (hasValue)
        return value;
      if (i + 1 >= argc)
        fatal("%s expects a value", name.c_str());
      return argv[++i];
    };
    if (name == "--backend") {
      std::string v = needValue();
      if (v == "cpu")
        o.backend = MOERT_BACKEND_CPU;
      else if (v == "cuda")
        o.backend = MOERT_BACKEND_CUDA;
      else
        fatal("--backend must be cpu or cuda, got '%s'", v.c_str());
    } else if (name == "--device") {
      o.device = int(intOption(name, needValue(), 0, INT32_MAX));
    } else if (name == "--tokens") {
      o.tokens = intOption(name, needValue(), 0, INT32_MAX);
    } else if (name == "--seed") {
      std::string v = needValue();
      if (!parseUnsigned(v, o.seed, /*hex=*/true))
        fatal("--seed expects an unsigned 64-bit integer, got '%s'", v.c_str());
    } else if (name == "--repeat") {
      o.repeat = intOption(name, needValue(), 1, 1000000000);
    } else if (name == "--warmup") {
      o.warmup = intOption(name, needValue(), 0, 1000000000);
    } else if (name == "--check") {
      flag();
      o.check = true;
    } else if (name == "--tolerance") {
      std::string v = needValue();
      char *end = nullptr;
      double t = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(t >= 0) || !std::isfinite(t))
        fatal("--tolerance expects a non-negative number, got '%s'", v.c_str());
      o.tolerance = t;
    } else if (name == "--check-finite") {
      flag();
      o.checkFinite = true;
    } else if (name == "--memory-limit") {
      std::string v = needValue();
      if (!parseBytes(v, o.memoryLimit))
        fatal("--memory-limit expects a byte count such as 4096, 512Mi or "
              "80G, got '%s'",
              v.c_str());
    } else if (name == "--tuning-file") {
      o.tuningFile = needValue();
      if (o.tuningFile.empty())
        fatal("--tuning-file expects a path");
    } else if (name == "--compare") {
      o.compare = needValue();
      if (o.compare.empty())
        fatal("--compare expects a module path");
    } else if (name == "--rounds") {
      o.rounds = intOption(name, needValue(), 1, 1000000);
    } else if (name == "--ranks") {
      o.ranks = intOption(name, needValue(), 1, 1024);
    } else if (name == "--collective-timeout") {
      o.collectiveTimeoutMs = intOption(name, needValue(), 0, 86400000);
    } else if (name == "--save-output") {
      o.saveOutput = needValue();
      if (o.saveOutput.empty())
        fatal("--save-output expects a path");
    } else if (name == "--share-weights") {
      flag();
      o.shareWeights = true;
    } else if (name == "--json") {
      flag();
      o.json = true;
    } else if (name == "--quiet" || name == "-q") {
      flag();
      o.quiet = true;
    } else {
      fatal("unknown option '%s' (see moe-run --help)", name.c_str());
    }
  }
  if (positional.empty())
    fatal("no module given (usage: moe-run MODULE.so [options]; see "
          "--help)");
  if (positional.size() > 1)
    fatal("one module expected, got '%s' and '%s'", positional[0].c_str(),
          positional[1].c_str());
  o.module = positional[0];
  if (o.warmup < 0)
    o.warmup = o.backend == MOERT_BACKEND_CUDA ? 1 : 0;
  if (!o.compare.empty() && o.check)
    fatal("--check and --compare do not go together: check each module on "
          "its own");
  if (o.ranks > 0 && !o.compare.empty())
    fatal("--ranks and --compare do not go together");
  if (o.ranks > 0 && o.shareWeights)
    fatal("--ranks and --share-weights do not go together");
  if (!o.tuningFile.empty() && o.backend != MOERT_BACKEND_CUDA)
    fatal("--tuning-file configures the CUDA kernels (needs --backend cuda)");
  return o;
}

} // namespace moerun
