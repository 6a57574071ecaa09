//===- moe-compile.cpp - moe IR to a loadable module ----------------------===//
//
//   moe-compile IN.mlir -o OUT.so [--emit=so|obj|llvm|mlir] [--no-optimize]
//
// Runs the moe-lower-to-runtime pipeline (docs/pipelines.md: on tensor input,
// moe-select-inplace and moe-bufferize; moe-optimize; moe-export-entry; the
// lowering to runtime calls and LLVM) and emits a shared library, an object
// file, LLVM IR or the lowered MLIR. The module exports
// `void moe_entry(void **args, int64_t tokens)` and the JSON
// `moe_module_description`, which moe-run reads.
//
//===----------------------------------------------------------------------===//
#include "moe/InitMoE.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Target/Export.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory category("moe-compile options");

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<input.mlir>"),
                                      cl::init("-"), cl::cat(category));
static cl::opt<std::string> outputFile("o", cl::desc("Output file"),
                                       cl::value_desc("file"), cl::init(""),
                                       cl::cat(category));
enum class Emit { SharedLibrary, Object, LLVMIR, MLIR };
static cl::opt<Emit> emit(
    "emit", cl::desc("What to write (default: from the output's extension, "
                     "else a shared library)"),
    cl::values(clEnumValN(Emit::SharedLibrary, "so", "a shared library (.so)"),
               clEnumValN(Emit::Object, "obj", "an object file (.o)"),
               clEnumValN(Emit::LLVMIR, "llvm", "LLVM IR (.ll)"),
               clEnumValN(Emit::MLIR, "mlir", "the lowered MLIR (LLVM dialect)")),
    cl::cat(category));
static cl::opt<bool> noOptimize(
    "no-optimize", cl::desc("Skip moe-select-inplace and moe-optimize (keep "
                            "the input's order and allocations)"),
    cl::init(false), cl::cat(category));
static cl::opt<int64_t> tokenHint(
    "token-hint", cl::desc("Token count at which moe-optimize compares sizes "
                           "linear in a dynamic token count"),
    cl::init(16384), cl::cat(category));
static cl::opt<std::string> entryName(
    "entry", cl::desc("The function to export (default: the only function "
                      "with a body)"),
    cl::init(""), cl::cat(category));
static cl::opt<bool> showRemarks(
    "remarks", cl::desc("Print the passes' remarks (for example why "
                        "moe-select-inplace chose each variant)"),
    cl::init(false), cl::cat(category));
static cl::opt<std::string> linker(
    "linker", cl::desc("The compiler driver that links the shared library"),
    cl::init("cc"), cl::cat(category));

static int fail(const Twine &message) {
  llvm::errs() << "moe-compile: error: " << message << "\n";
  return 1;
}

static Emit chooseEmit() {
  if (emit.getNumOccurrences())
    return emit;
  StringRef ext = llvm::sys::path::extension(outputFile);
  if (ext == ".o")
    return Emit::Object;
  if (ext == ".ll")
    return Emit::LLVMIR;
  if (ext == ".mlir")
    return Emit::MLIR;
  return Emit::SharedLibrary;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "moe-compile: compile moe IR into a module that moe-run executes\n\n"
      "  moe-compile layer.mlir -o layer.so\n\n"
      "The input is moe IR in buffer form (moe-gen) or tensor form (moe-gen\n"
      "--form tensor; bufferized first). Runs moe-optimize (unless\n"
      "--no-optimize), lowers moe ops to calls into the moert runtime and\n"
      "everything else to LLVM (the moe-lower-to-runtime pipeline), and\n"
      "writes a shared library (or --emit=obj|llvm|mlir). The module exports\n"
      "  void moe_entry(void **args, int64_t tokens)\n"
      "  const char moe_module_description[]   (JSON: arguments, ops, plan)\n");
  if (outputFile.empty())
    return fail("no output file: give one with -o");

  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  moe::registerAllDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  std::string errorMessage;
  auto input = openInputFile(inputFile, &errorMessage);
  if (!input)
    return fail("cannot read '" + inputFile + "': " + errorMessage);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  // Handlers run latest first: this one drops remarks unless asked for.
  ScopedDiagnosticHandler remarks(&context, [](Diagnostic &diag) {
    return success(!showRemarks && diag.getSeverity() == DiagnosticSeverity::Remark);
  });
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1; // The parser reported where.

  // The whole way down is one pipeline (docs/pipelines.md); the input may be
  // in tensor or buffer form.
  PassManager pm(&context);
  moe::LowerToRuntimeOptions options;
  options.optimize = !noOptimize;
  options.tokenHint = tokenHint;
  options.entry = entryName;
  moe::buildLowerToRuntimePipeline(pm, options);
  if (failed(pm.run(*module)))
    return 1;

  Emit kind = chooseEmit();
  if (kind == Emit::MLIR) {
    std::error_code ec;
    llvm::ToolOutputFile out(outputFile, ec, llvm::sys::fs::OF_Text);
    if (ec)
      return fail("cannot write '" + outputFile + "': " + ec.message());
    module->print(out.os());
    out.keep();
    return 0;
  }
  moe::EmitKind emitKind = kind == Emit::Object   ? moe::EmitKind::Object
                           : kind == Emit::LLVMIR ? moe::EmitKind::LLVMIR
                                                  : moe::EmitKind::SharedLibrary;
  std::string error;
  if (failed(moe::emitModule(*module, outputFile, emitKind, linker, error)))
    return fail(error);
  return 0;
}
