//===- moe-run.cpp - Run a compiled MoE layer: latency, memory, checks ----===//
//
// moe-run MODULE.so loads a shared library produced by moe-compile, makes
// seeded arguments on a runtime context (CPU or CUDA), runs the layer, and
// reports latency, the allocator's measured peak next to the compiler's
// plan, a checksum, and optionally the error against an independent
// reference (--check). docs/moe-run.md is the manual.
//
// No MLIR dependency: this links libmoe_runtime, the C++ standard library
// and libdl only.
//
//===----------------------------------------------------------------------===//

#include "Arguments.h"
#include "Data.h"
#include "Description.h"
#include "Json.h"
#include "Module.h"
#include "OpCheck.h"
#include "Options.h"
#include "Ranks.h"
#include "Reference.h"
#include "Run.h"

#include "moe-runtime/moe_runtime.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <link.h>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace moerun;

namespace {


//===----------------------------------------------------------------------===//
// Arguments
//===----------------------------------------------------------------------===//

/// "layers.0.rest" for a name "layers.N.rest", N > 0; empty otherwise.
std::string layerZeroName(const std::string &name) {
  const std::string prefix = "layers.";
  if (name.compare(0, prefix.size(), prefix) != 0)
    return "";
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size())
    return "";
  std::string layer = name.substr(prefix.size(), dot - prefix.size());
  if (layer.find_first_not_of("0123456789") != std::string::npos ||
      layer == "0")
    return "";
  return prefix + "0" + name.substr(dot);
}

/// --compare: `module` (A) and `other` (B) alternately on the same
/// arguments, opt.rounds rounds; one report for both.
int compareModules(const Options &opt, const Module &module,
                   const ModuleDescription &desc, const Module &other,
                   const ModuleDescription &otherDesc, moert_context *ctx,
                   std::vector<Argument> &args,
                   std::vector<void *> &argPointers, int64_t T,
                   int64_t argumentBytes,
                   std::vector<std::vector<unsigned char>> &outputs) {
  bool dirty = false;
  struct Side {
    const Module *module;
    const ModuleDescription *desc;
    const std::string *path;
    Iterations iterations;
    std::vector<double> roundMedians;
  } sides[2] = {{&module, &desc, &opt.module, {}, {}},
                {&other, &otherDesc, &opt.compare, {}, {}}};
  for (int64_t round = 0; round < opt.rounds; ++round)
    for (Side &side : sides) {
      Iterations once;
      iterate(*side.module, ctx, args, argPointers, T, opt.warmup, opt.repeat,
              /*quiet=*/true, once, outputs, dirty);
      side.roundMedians.push_back(median(once.latencies));
      Iterations &all = side.iterations;
      if (!all.checksums.empty() && once.checksums[0] != all.checksums[0])
        fatal("'%s' is not deterministic: round %" PRId64
              " gave output checksum %s, round 1 gave %s",
              side.path->c_str(), round + 1, hex64(once.checksums[0]).c_str(),
              hex64(all.checksums[0]).c_str());
      all.checksums.push_back(once.checksums[0]);
      all.peakBytes = std::max(all.peakBytes, once.peakBytes);
      all.leakedBytes = std::max(all.leakedBytes, once.leakedBytes);
      if (!opt.quiet)
        std::fprintf(stderr, "moe-run: round %" PRId64 "/%" PRId64
                     " %s: %.3f ms\n", round + 1, opt.rounds,
                     side.path->c_str(), side.roundMedians.back());
    }
  bool equal = sides[0].iterations.checksums[0] ==
               sides[1].iterations.checksums[0];
  double ratio = median(sides[1].roundMedians) / median(sides[0].roundMedians);
  auto sideJson = [&](const Side &side) {
    std::string j = "{\"module\": " + jsonQuote(*side.path);
    j += ", \"optimized\": ";
    j += !side.desc->optimized ? "null" : *side.desc->optimized ? "true" : "false";
    j += ", \"round_medians_ms\": [";
    for (size_t i = 0; i < side.roundMedians.size(); ++i)
      j += (i ? ", " : "") + jsonNumber(side.roundMedians[i]);
    j += "], \"median_ms\": " + jsonNumber(median(side.roundMedians));
    j += ", \"peak_bytes\": " + std::to_string(side.iterations.peakBytes);
    j += ", \"planned_peak_bytes\": " +
         (side.desc->plannedPeak ? std::to_string(side.desc->plannedPeak->at(T))
                                 : std::string("null"));
    j += ", \"checksum\": " + jsonQuote(hex64(side.iterations.checksums[0]));
    return j + "}";
  };
  if (opt.json) {
    std::printf("{\"compare\": true, \"backend\": %s, \"tokens\": %" PRId64
                ", \"seed\": %" PRIu64 ", \"rounds\": %" PRId64
                ", \"warmup\": %" PRId64 ", \"repeat\": %" PRId64
                ", \"argument_bytes\": %" PRId64 ", \"a\": %s, \"b\": %s, "
                "\"b_over_a\": %s, \"outputs_equal\": %s}\n",
                jsonQuote(opt.backend == MOERT_BACKEND_CUDA ? "cuda" : "cpu")
                    .c_str(),
                T, opt.seed, opt.rounds, opt.warmup, opt.repeat, argumentBytes,
                sideJson(sides[0]).c_str(), sideJson(sides[1]).c_str(),
                jsonNumber(ratio).c_str(), equal ? "true" : "false");
  } else if (!opt.quiet) {
    for (const Side &side : sides)
      std::printf("moe-run: %s: median of %" PRId64 " rounds %.3f ms, peak "
                  "%s, checksum %s\n",
                  side.path->c_str(), opt.rounds, median(side.roundMedians),
                  formatBytes(side.iterations.peakBytes).c_str(),
                  hex64(side.iterations.checksums[0]).c_str());
    std::printf("  B / A        %.4f\n  outputs      %s\n", ratio,
                equal ? "bitwise equal" : "DIFFERENT");
  }
  std::fflush(stdout);
  moert_set_current_context(nullptr);
  moert_context_destroy(ctx);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  Options opt = parseOptions(argc, argv);

  // The module and its description.
  Module module = loadModule(opt.module);
  ModuleDescription desc;
  std::string error;
  if (!parseDescription(module.descriptionText, desc, error))
    fatal("'%s': invalid module description: %s", opt.module.c_str(),
          error.c_str());

  int64_t T;
  if (desc.tokenCount) {
    if (opt.tokens >= 0 && opt.tokens != *desc.tokenCount)
      fatal("--tokens %" PRId64 " does not match the module's static token "
            "count %" PRId64 " (omit --tokens or recompile with a dynamic "
            "token count)",
            opt.tokens, *desc.tokenCount);
    T = *desc.tokenCount;
  } else {
    if (opt.tokens < 0)
      fatal("the module has a dynamic token count: give --tokens N");
    T = opt.tokens;
  }

  // Ops: required to be understood for --check; otherwise only used to
  // pick data for routing tables passed as arguments.
  std::vector<TypedOp> typedOps;
  bool opsKnown = analyzeOps(desc, T, typedOps, error);
  if (opt.check && !opsKnown)
    fatal("--check: %s", error.c_str());
  if (opt.check && !desc.checkable)
    fatal("--check: the module has ops its description does not list "
          "(\"checkable\": false), so the reference cannot model it");
  if (opt.check && desc.ops.empty())
    fatal("--check: the module description lists no ops");
  // Only moe ops and memref.copy run on the device; other ops (linalg, ...)
  // are compiled to host code, which cannot touch device memory.
  if (opt.backend == MOERT_BACKEND_CUDA && !desc.checkable)
    fatal("the module has ops other than moe ops and memref.copy (\"checkable\": "
          "false), which run on the host and cannot use device memory: run it "
          "with --backend cpu");

  // Collectives: a program compiled for a group runs with --ranks.
  if (opsKnown) {
    int64_t group = groupSizeOf(typedOps, error);
    if (group < 0)
      fatal("%s", error.c_str());
    if (opt.ranks == 0 && group > 1)
      fatal("the module sums over %" PRId64 " ranks (moe.all_reduce, "
            "group_size = %" PRId64 "): run it with --ranks %" PRId64
            " (or generate one rank's shard alone: moe-gen --shard-only)",
            group, group, group);
  }
  if (opt.ranks > 0) {
    if (!opsKnown)
      fatal("--ranks: %s", error.c_str());
    installCrashHandlers();
    return runRanks(opt, module, desc, typedOps, T);
  }

  // Which arguments the module writes (in place): they are reset before
  // every iteration.
  std::vector<bool> writtenArg = writtenArguments(desc);

  // --compare: the other module, on the same arguments.
  std::unique_ptr<Module> other;
  ModuleDescription otherDesc;
  if (!opt.compare.empty()) {
    other = std::make_unique<Module>(loadModule(opt.compare));
    if (!parseDescription(other->descriptionText, otherDesc, error))
      fatal("'%s': invalid module description: %s", opt.compare.c_str(),
            error.c_str());
    bool same = otherDesc.args.size() == desc.args.size() &&
                otherDesc.tokenCount == desc.tokenCount;
    for (size_t i = 0; same && i < desc.args.size(); ++i)
      same = otherDesc.args[i].name == desc.args[i].name &&
             otherDesc.args[i].role == desc.args[i].role &&
             typeString(otherDesc.args[i]) == typeString(desc.args[i]);
    if (!same)
      fatal("--compare: '%s' and '%s' do not take the same arguments",
            opt.module.c_str(), opt.compare.c_str());
    if (opt.backend == MOERT_BACKEND_CUDA && !otherDesc.checkable)
      fatal("--compare: '%s' has ops that run on the host (\"checkable\": "
            "false): run it with --backend cpu",
            opt.compare.c_str());
    std::vector<bool> otherWritten = writtenArguments(otherDesc);
    for (size_t i = 0; i < writtenArg.size(); ++i)
      writtenArg[i] = writtenArg[i] || otherWritten[i];
  }

  // The context.
  moert_context *ctx = nullptr;
  if (moert_context_create(opt.backend, opt.device, &ctx) != MOERT_SUCCESS)
    fatal("%s", moert_last_error());
  if (!opt.tuningFile.empty()) {
    // Defined by a runtime built with the CUDA backend only, hence looked up.
    using LoadFn = moert_status (*)(const char *, char *, size_t);
    auto load = reinterpret_cast<LoadFn>(
        dlsym(RTLD_DEFAULT, "moert_cuda_load_tuning_file"));
    if (!load)
      fatal("--tuning-file: this libmoe_runtime has no CUDA kernels");
    char error[512] = "";
    if (load(opt.tuningFile.c_str(), error, sizeof error) != MOERT_SUCCESS)
      fatal("--tuning-file: %s", error);
  }
  if (opt.memoryLimit > 0 &&
      moert_set_memory_limit(ctx, opt.memoryLimit) != MOERT_SUCCESS)
    fatal("%s", moert_context_error(ctx));
  const char *backendName = opt.backend == MOERT_BACKEND_CUDA ? "cuda" : "cpu";

  // Arguments: allocate on the context (counted), fill from the seed,
  // upload. Host copies are kept for --check and for in-place arguments.
  std::vector<Argument> args(desc.args.size());
  std::vector<void *> argPointers(desc.args.size(), nullptr);
  std::vector<ArgumentData> data =
      argumentData(desc, opsKnown ? &typedOps : nullptr);
  int64_t argumentBytes = 0;
  for (size_t i = 0; i < desc.args.size(); ++i) {
    Argument &a = args[i];
    a.desc = &desc.args[i];
    if (!elementCount(a.desc->shape, T, a.elements) ||
        !byteSize(*a.desc, T, a.bytes))
      fatal("argument %zu '%s' (%s) is too large at %" PRId64 " tokens", i,
            a.desc->name.c_str(), typeString(*a.desc).c_str(), T);
    // --share-weights: layer 0's buffer, when it has the same type.
    if (opt.shareWeights && a.desc->role == Role::Weight && !writtenArg[i]) {
      std::string zero = layerZeroName(a.desc->name);
      auto found = std::find_if(args.begin(), args.begin() + i,
                                [&](const Argument &b) {
                                  return b.desc->name == zero &&
                                         typeString(*b.desc) ==
                                             typeString(*a.desc);
                                });
      if (found != args.begin() + i) {
        a.device = found->device;
        argPointers[i] = a.device;
        continue;
      }
    }
    if (moert_alloc_ctx(ctx, a.bytes, &a.device) != MOERT_SUCCESS)
      fatal("cannot allocate argument %zu '%s' (%s, %" PRId64 " bytes): %s", i,
            a.desc->name.c_str(), typeString(*a.desc).c_str(), a.bytes,
            moert_context_error(ctx));
    argumentBytes += a.bytes;
    a.restore = writtenArg[i] && a.desc->role != Role::Output;
    a.dist = data[i].dist;
    a.key = streamKey(opt.seed, data[i].stream);
    a.host.resize(static_cast<size_t>(a.bytes));
    fill(a.host.data(), a.desc->dtype, a.elements, a.dist, a.key);
    if (moert_copy_to_device(ctx, a.device, a.host.data(), a.bytes) !=
        MOERT_SUCCESS)
      fatal("cannot copy argument %zu '%s' to the %s backend: %s", i,
            a.desc->name.c_str(), backendName, moert_context_error(ctx));
    bool keep = a.restore || (opt.check && a.desc->role != Role::Output);
    if (!keep)
      std::vector<unsigned char>().swap(a.host);
    argPointers[i] = a.device;
  }

  // Iterations.
  moert_set_current_context(ctx);
  installCrashHandlers();
  std::vector<std::vector<unsigned char>> outputs(desc.args.size());
  if (other)
    return compareModules(opt, module, desc, *other, otherDesc, ctx, args,
                          argPointers, T, argumentBytes, outputs);
  Iterations iterations;
  bool dirty = false;
  iterate(module, ctx, args, argPointers, T, opt.warmup, opt.repeat,
          opt.quiet, iterations, outputs, dirty);
  // --check: one more run, every op recorded, each op checked on what it
  // read (OpCheck.h).
  OpCheckResult opCheck;
  if (opt.check) {
    Iterations checked;
    OpRecorder recorder(ctx);
    iterate(module, ctx, args, argPointers, T, 0, 1, /*quiet=*/true, checked,
            outputs, dirty);
    if (!recorder.error.empty())
      fatal("--check: cannot read an op's operands: %s",
            recorder.error.c_str());
    std::vector<const void *> argBytes(args.size());
    for (size_t i = 0; i < args.size(); ++i)
      argBytes[i] = args[i].desc->role == Role::Output ? outputs[i].data()
                                                        : args[i].host.data();
    CheckOptions checkOptions;
    if (!checkOps(desc, T, recorder.ops, argBytes, opt.tolerance, checkOptions,
                  opCheck, error))
      fatal("--check: %s", error.c_str());
    // A failed op explains a changed output better than the checksum does.
    if (opCheck.failedOp < 0 &&
        checked.checksums.front() != iterations.checksums.front())
      fatal("the module is not deterministic: the checked run gave output "
            "checksum %s, the first %s",
            hex64(checked.checksums.front()).c_str(),
            hex64(iterations.checksums.front()).c_str());
  }
  const std::vector<double> &latencies = iterations.latencies;
  const std::vector<uint64_t> &checksums = iterations.checksums;
  int64_t peakBytes = iterations.peakBytes;
  int64_t totalPeakBytes = iterations.totalPeakBytes;
  int64_t leakedBytes = iterations.leakedBytes;

  // Finite check.
  int64_t nonfinite = -1;
  std::string firstNonfinite;
  if (opt.checkFinite) {
    nonfinite = 0;
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i].desc->role != Role::Output || !isFloat(args[i].desc->dtype))
        continue;
      for (int64_t e = 0; e < args[i].elements; ++e) {
        double v = loadElement(outputs[i].data(), args[i].desc->dtype, e);
        if (std::isfinite(v))
          continue;
        if (nonfinite++ == 0)
          firstNonfinite =
              "'" + args[i].desc->name + "'" +
              joinCoords(coordsOf(resolveShape(args[i].desc->shape, T), e)) +
              " = " +
              (std::isnan(v) ? "nan"
               : v > 0       ? "inf"
                             : "-inf");
      }
    }
  }

  // Reference check.
  CheckResult check;
  double tolerance = 0;
  bool checkPassed = true;
  if (opt.check) {
    std::vector<const void *> initial(args.size(), nullptr),
        results(args.size(), nullptr);
    DType outType = DType::F32;
    bool anyOutput = false;
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i].desc->role == Role::Output) {
        results[i] = outputs[i].data();
        // The loosest output dtype sets the default tolerance.
        if (!anyOutput ||
            defaultTolerance(args[i].desc->dtype) > defaultTolerance(outType))
          outType = args[i].desc->dtype;
        anyOutput = true;
      } else {
        initial[i] = args[i].host.data();
      }
    }
    // The chain's error against its default: information only.
    tolerance = defaultTolerance(outType, countLayers(typedOps),
                                 hasFp8Experts(typedOps));
    // Information only: fewer admissible routings per token keep deep
    // chains with many near-ties fast (each one copies the token's state).
    CheckOptions checkOptions;
    checkOptions.maxRoutingsPerToken = 8;
    if (!runReference(desc, typedOps, T, initial, results, checkOptions, check,
                      error))
      fatal("--check: the reference failed: %s", error.c_str());
    checkPassed = opCheck.failedOp < 0;
  }

  if (!opt.saveOutput.empty()) {
    FILE *f = std::fopen(opt.saveOutput.c_str(), "wb");
    bool ok = f != nullptr;
    for (size_t i = 0; ok && i < args.size(); ++i)
      if (args[i].desc->role == Role::Output && !outputs[i].empty())
        ok = std::fwrite(outputs[i].data(), 1, outputs[i].size(), f) ==
             outputs[i].size();
    if (!f || std::fclose(f) != 0 || !ok)
      fatal("--save-output: cannot write '%s'", opt.saveOutput.c_str());
  }

  // Report.
  double latency = median(latencies);
  std::string checksum =
      hex64(checksums.empty() ? kFnvOffset : checksums.back());
  int64_t planned = -1;
  if (desc.plannedPeak)
    planned = desc.plannedPeak->at(T);
  if (opt.json) {
    std::string j = "{";
    auto field = [&](const char *key, const std::string &value) {
      if (j.size() > 1)
        j += ", ";
      j += jsonQuote(key) + ": " + value;
    };
    field("function", jsonQuote(desc.function));
    field("module", jsonQuote(opt.module));
    field("backend", jsonQuote(backendName));
    field("device", std::to_string(opt.device));
    field("tokens", std::to_string(T));
    field("dynamic", desc.tokenCount ? "false" : "true");
    field("optimized", !desc.optimized   ? "null"
                       : *desc.optimized ? "true"
                                         : "false");
    field("seed", std::to_string(opt.seed));
    field("warmup", std::to_string(opt.warmup));
    field("repeat", std::to_string(opt.repeat));
    field("latency_ms", jsonNumber(latency));
    std::string all = "[";
    for (size_t i = 0; i < latencies.size(); ++i)
      all += (i ? ", " : "") + jsonNumber(latencies[i]);
    field("latencies_ms", all + "]");
    field("peak_bytes", std::to_string(peakBytes));
    field("total_peak_bytes", std::to_string(totalPeakBytes));
    field("planned_peak_bytes",
          planned >= 0 ? std::to_string(planned) : "null");
    field("argument_bytes", std::to_string(argumentBytes));
    field("leaked_bytes", std::to_string(leakedBytes));
    field("checksum", jsonQuote(checksum));
    field("max_rel_err", opt.check ? jsonNumber(check.maxRelErr) : "null");
    field("end_to_end_tolerance", opt.check ? jsonNumber(tolerance) : "null");
    field("op_checks", opt.check ? std::to_string(opCheck.checked) : "null");
    field("op_max_err_over_tolerance",
          opt.check ? jsonNumber(opCheck.worstRatio) : "null");
    std::string failed = "null";
    if (opt.check && opCheck.failedOp >= 0) {
      bool atOp = size_t(opCheck.failedOp) < desc.ops.size();
      const OpDesc *op = atOp ? &desc.ops[size_t(opCheck.failedOp)] : nullptr;
      failed = "{\"index\": " + std::to_string(opCheck.failedOp) +
               ", \"op\": " + (op ? jsonQuote(op->name) : "null") +
               ", \"loc\": " + (op ? jsonQuote(op->loc) : "null") +
               ", \"kind\": " + jsonQuote(opCheck.kind) +
               ", \"operand\": " + jsonQuote(opCheck.failedOperand) +
               ", \"message\": " + jsonQuote(opCheck.message);
      if (opCheck.kind == "numerics")
        failed += ", \"max_rel_err\": " +
                  jsonNumber(opCheck.failure.maxRelErr) +
                  ", \"tolerance\": " + jsonNumber(opCheck.tolerance) +
                  ", \"at\": " +
                  jsonQuote(joinCoords(opCheck.failure.worstCoords));
      failed += "}";
    }
    field("failed_op", failed);
    field("routing_near_ties",
          opt.check ? std::to_string(check.nearTieTokens) : "null");
    field("routing_alternatives",
          opt.check ? std::to_string(check.alternativeTokens) : "null");
    field("nonfinite", nonfinite >= 0 ? std::to_string(nonfinite) : "null");
    field("check", !opt.check    ? "null"
                   : checkPassed ? "\"passed\""
                                 : "\"failed\"");
    std::printf("%s}\n", j.c_str());
  } else if (!opt.quiet) {
    std::printf(
        "moe-run: %s%s on %s, %" PRId64 " tokens (%s), seed %" PRIu64 "\n",
        desc.function.c_str(),
        !desc.optimized   ? ""
        : *desc.optimized ? " (optimized)"
                          : " (not optimized)",
        backendName, T, desc.tokenCount ? "static" : "dynamic", opt.seed);
    if (latencies.size() > 1)
      std::printf("  latency      %.3f ms (median of %zu; min %.3f, max "
                  "%.3f)\n",
                  latency, latencies.size(),
                  *std::min_element(latencies.begin(), latencies.end()),
                  *std::max_element(latencies.begin(), latencies.end()));
    else
      std::printf("  latency      %.3f ms\n", latency);
    std::printf("  peak memory  %s transient", formatBytes(peakBytes).c_str());
    if (planned >= 0)
      std::printf(" (planned %s)", formatBytes(planned).c_str());
    std::printf("\n  arguments    %s\n", formatBytes(argumentBytes).c_str());
    std::printf("  checksum     %s\n", checksum.c_str());
    if (nonfinite >= 0)
      std::printf("  finite       %s\n",
                  nonfinite
                      ? (std::to_string(nonfinite) + " non-finite").c_str()
                      : "yes");
    if (opt.check) {
      std::printf("  check        %" PRId64 " ops each against the reference "
                  "on its own inputs: %s (worst %.2f of its tolerance)\n",
                  opCheck.checked, checkPassed ? "passed" : "FAILED",
                  opCheck.worstRatio);
      std::printf("  end to end   max_rel_err %.3g (information; %.3g is the "
                  "usual bound for this chain)",
                  check.maxRelErr, tolerance);
      if (check.nearTieTokens)
        std::printf(" (%" PRId64 " tokens with routing near-ties, %" PRId64
                    " matched an alternative routing)",
                    check.nearTieTokens, check.alternativeTokens);
      std::printf("\n");
    }
  }
  std::fflush(stdout);

  int rc = 0;
  if (nonfinite > 0) {
    std::fprintf(stderr,
                 "moe-run: error: the output has %" PRId64
                 " non-finite element%s (NaN or Inf); the first is %s\n",
                 nonfinite, nonfinite == 1 ? "" : "s", firstNonfinite.c_str());
    rc = 1;
  }
  if (opt.check && !checkPassed) {
    if (size_t(opCheck.failedOp) < desc.ops.size()) {
      const OpDesc &op = desc.ops[size_t(opCheck.failedOp)];
      std::fprintf(stderr,
                   "moe-run: error: --check failed at op #%" PRId64 " %s%s%s%s: "
                   "%s\n",
                   opCheck.failedOp, op.name.c_str(),
                   op.loc.empty() ? "" : " (", op.loc.c_str(),
                   op.loc.empty() ? "" : ")", opCheck.message.c_str());
    } else {
      std::fprintf(stderr, "moe-run: error: --check failed after the last op: %s\n",
                   opCheck.message.c_str());
    }
    rc = 1;
  }
  if (check.truncatedTokens)
    warning("the end-to-end error (information) is an upper bound: %" PRId64
            " tokens had more routing near-ties than it explores",
            check.truncatedTokens);
  moert_set_current_context(nullptr);
  moert_context_destroy(ctx);
  return rc;
}
