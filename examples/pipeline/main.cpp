//===- main.cpp - A C++ pipeline on an installed MoE-MLIR -----------------===//
//
//   moe-pipeline-example OUTDIR [TOKENS]
//
// What a compiler pipeline does with MoE-MLIR, from C++ only:
//  1. builds two MoE layers of a small DeepSeek-style model with the builder
//     library, in tensor form (as a tensor-level frontend would hand them
//     over) and, for reference, in buffer form;
//  2. runs the moe-lower-to-runtime pipeline through a PassManager: the
//     tensor form is bufferized and optimized (moe-select-inplace,
//     moe-bufferize, moe-optimize), the buffer form only lowered;
//  3. emits each as a shared library (moe::emitModule);
//  4. loads both, runs them on the same inputs through the runtime's C API
//     (CPU backend), and compares the outputs bit for bit.
//
//===----------------------------------------------------------------------===//
#include "moe-runtime/moe_runtime.h"
#include "moe/Builder/MoELayerBuilder.h"
#include "moe/Builder/ModelConfig.h"
#include "moe/InitMoE.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Target/Export.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <vector>

using namespace mlir;

static const char *kConfig = R"json({
  "model_type": "deepseek_v3", "hidden_size": 128, "moe_intermediate_size": 64,
  "n_routed_experts": 16, "num_experts_per_tok": 4, "n_group": 4,
  "topk_group": 2, "n_shared_experts": 1, "routed_scaling_factor": 2.5})json";

static int fail(const std::string &message) {
  llvm::errs() << "moe-pipeline-example: error: " << message << "\n";
  return 1;
}

/// Builds the layers in `form`, lowers them with the moe-lower-to-runtime
/// pipeline (optimizing the tensor form) and writes a shared library.
static LogicalResult compile(MLIRContext &context,
                             const moe::ModelConfig &model, moe::Form form,
                             const std::string &path) {
  OpBuilder builder(&context);
  Location loc = builder.getUnknownLoc();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  builder.setInsertionPointToEnd(module->getBody());
  moe::LayerOptions options;
  options.layers = 2;
  options.form = form;
  if (failed(moe::buildMoELayer(builder, loc, model, options)))
    return failure();

  PassManager pm(&context);
  moe::LowerToRuntimeOptions pipeline;
  pipeline.optimize = form == moe::Form::Tensor;
  moe::buildLowerToRuntimePipeline(pm, pipeline);
  if (failed(pm.run(*module)))
    return failure();
  std::string error;
  if (failed(moe::emitModule(*module, path, moe::EmitKind::SharedLibrary, "cc",
                             error)))
    return emitError(loc) << error, failure();
  return success();
}

/// A loaded module run on the CPU backend.
struct Run {
  std::vector<unsigned char> output;
  int64_t peakBytes = 0;
};

/// Loads `path`, allocates its arguments as its description says (the
/// dynamic dimension is `tokens`), fills inputs and weights with the same
/// pseudo-random values whatever the module, runs it and reads the output.
static bool run(const std::string &path, int64_t tokens, Run &result,
                std::string &error) {
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle)
    return error = dlerror(), false;
  using Entry = void (*)(void **, int64_t);
  auto entry = reinterpret_cast<Entry>(dlsym(handle, "moe_entry"));
  auto text = static_cast<const char *>(dlsym(handle, "moe_module_description"));
  if (!entry || !text)
    return error = "not a compiled MoE-MLIR module", false;
  llvm::Expected<llvm::json::Value> description = llvm::json::parse(text);
  if (!description)
    return error = llvm::toString(description.takeError()), false;

  moert_context *ctx = nullptr;
  if (moert_context_create(MOERT_BACKEND_CPU, 0, &ctx) != MOERT_SUCCESS)
    return error = moert_last_error(), false;
  moert_set_current_context(ctx);
  std::vector<void *> args;
  void *output = nullptr;
  int64_t outputBytes = 0;
  for (const llvm::json::Value &arg :
       *description->getAsObject()->getArray("args")) {
    const llvm::json::Object &a = *arg.getAsObject();
    llvm::StringRef dtype = *a.getString("dtype"), role = *a.getString("role");
    int64_t elementBytes = dtype == "bf16" || dtype == "f16" ? 2 : 4;
    int64_t elements = 1;
    for (const llvm::json::Value &d : *a.getArray("shape"))
      elements *= *d.getAsInteger() < 0 ? tokens : *d.getAsInteger();
    int64_t bytes = elements * elementBytes;
    void *data = nullptr;
    if (moert_alloc_ctx(ctx, bytes, &data) != MOERT_SUCCESS)
      return error = moert_last_error(), false;
    // Values in [-1, 1) from the argument's name, so both modules see the
    // same data: bf16 by truncation, f32 as is.
    std::vector<unsigned char> host(bytes);
    uint64_t state = std::hash<std::string>()(a.getString("name")->str());
    for (int64_t i = 0; i < elements; ++i) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      float value = float(int32_t(state >> 40) - (1 << 23)) / float(1 << 23);
      uint32_t bits;
      std::memcpy(&bits, &value, 4);
      if (elementBytes == 2) {
        uint16_t half = uint16_t(bits >> 16);
        std::memcpy(&host[i * 2], &half, 2);
      } else {
        std::memcpy(&host[i * 4], &bits, 4);
      }
    }
    moert_copy_to_device(ctx, data, host.data(), bytes);
    if (role == "output") {
      output = data;
      outputBytes = bytes;
    }
    args.push_back(data);
  }
  moert_reset_peak(ctx);
  entry(args.data(), tokens);
  if (moert_context_synchronize(ctx) != MOERT_SUCCESS)
    return error = moert_context_error(ctx), false;
  // The peak above the arguments: what the module allocated while it ran.
  result.peakBytes = moert_peak_bytes(ctx) - moert_current_bytes(ctx);
  result.output.resize(outputBytes);
  moert_copy_to_host(ctx, result.output.data(), output, outputBytes);
  moert_context_destroy(ctx);
  dlclose(handle);
  return true;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3)
    return fail("usage: moe-pipeline-example OUTDIR [TOKENS]");
  std::string outDir = argv[1];
  int64_t tokens = argc == 3 ? std::atoll(argv[2]) : 37;
  if (tokens <= 0)
    return fail("TOKENS must be a positive integer");

  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  moe::registerAllDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  llvm::Expected<moe::ModelConfig> model = moe::parseModelConfig(kConfig);
  if (!model)
    return fail(llvm::toString(model.takeError()));
  std::string tensorLib = outDir + "/layers-tensor.so";
  std::string bufferLib = outDir + "/layers-buffer.so";
  if (failed(compile(context, *model, moe::Form::Tensor, tensorLib)) ||
      failed(compile(context, *model, moe::Form::Buffer, bufferLib)))
    return 1;
  llvm::outs() << "compiled: " << tensorLib << " (tensor form, optimized), "
               << bufferLib << " (buffer form)\n";

  Run tensorRun, bufferRun;
  std::string error;
  if (!run(tensorLib, tokens, tensorRun, error) ||
      !run(bufferLib, tokens, bufferRun, error))
    return fail(error);
  bool equal = tensorRun.output == bufferRun.output;
  int64_t nonzero = 0;
  for (size_t i = 0; i + 1 < tensorRun.output.size(); i += 2)
    nonzero += tensorRun.output[i] != 0 || tensorRun.output[i + 1] != 0;
  llvm::outs() << "ran " << tokens << " tokens: outputs "
               << (equal ? "bitwise equal" : "DIFFER") << " (" << nonzero
               << " of " << tensorRun.output.size() / 2
               << " values nonzero); peak "
               << tensorRun.peakBytes << " bytes (tensor pipeline) vs "
               << bufferRun.peakBytes << " bytes (buffer form)\n";
  return equal ? 0 : 1;
}
