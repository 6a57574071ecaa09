//===- moe-compile.cpp - moe IR to a loadable module ----------------------===//
//
//   moe-compile IN.mlir -o OUT.so [--emit=so|obj|llvm|mlir] [--no-optimize]
//
// Runs moe-optimize (defer shared experts, schedule, plan), lowers the moe ops
// to runtime calls and everything to LLVM, and emits a shared library, an
// object file, LLVM IR or the lowered MLIR. The module exports
// `void moe_entry(void **args, int64_t tokens)` and the JSON
// `moe_module_description`, which moe-run reads.
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/InitMoE.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Target/EntryPoint.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

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
    "no-optimize", cl::desc("Skip moe-optimize (keep the input's order and "
                            "allocations)"),
    cl::init(false), cl::cat(category));
static cl::opt<int64_t> tokenHint(
    "token-hint", cl::desc("Token count at which moe-optimize compares sizes "
                           "linear in a dynamic token count"),
    cl::init(16384), cl::cat(category));
static cl::opt<std::string> entryName(
    "entry", cl::desc("The function to export (default: the only function "
                      "with a body)"),
    cl::init(""), cl::cat(category));
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

static FailureOr<func::FuncOp> findEntry(ModuleOp module) {
  SmallVector<func::FuncOp> candidates;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    if (!entryName.empty() ? func.getName() == entryName : func.isPublic())
      candidates.push_back(func);
  }
  if (candidates.size() == 1)
    return candidates.front();
  if (!entryName.empty())
    return module.emitError() << "no function named '" << entryName << "'",
           failure();
  return module.emitError()
             << (candidates.empty() ? "no public function with a body to export"
                                    : "several public functions: choose one "
                                      "with --entry=NAME"),
         failure();
}

/// Optimizes the LLVM module at O2 for the host.
static void optimizeLLVM(llvm::Module &module, llvm::TargetMachine *machine) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder builder(machine);
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm =
      builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O2);
  mpm.run(module, mam);
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "moe-compile: compile moe IR into a module that moe-run executes\n\n"
      "  moe-compile layer.mlir -o layer.so\n\n"
      "Runs moe-optimize (unless --no-optimize), lowers moe ops to calls into\n"
      "the moert runtime and everything else to LLVM, and writes a shared\n"
      "library (or --emit=obj|llvm|mlir). The module exports\n"
      "  void moe_entry(void **args, int64_t tokens)\n"
      "  const char moe_module_description[]   (JSON: arguments, ops, plan)\n");
  if (outputFile.empty())
    return fail("no output file: give one with -o");

  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  moe::registerAllDialects(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  std::string errorMessage;
  auto input = openInputFile(inputFile, &errorMessage);
  if (!input)
    return fail("cannot read '" + inputFile + "': " + errorMessage);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1; // The parser reported where.

  if (!noOptimize) {
    PassManager pm(&context);
    moe::MoEOptimizeOptions options;
    options.tokenHint = tokenHint;
    pm.addPass(moe::createMoEOptimize(options));
    if (failed(pm.run(*module)))
      return 1;
  }
  FailureOr<func::FuncOp> entry = findEntry(*module);
  if (failed(entry))
    return 1;
  FailureOr<std::string> description =
      moe::describeEntryFunction(*entry, !noOptimize, tokenHint);
  if (failed(description))
    return 1;
  {
    PassManager pm(&context);
    pm.addPass(moe::createConvertMoEToRuntime());
    if (failed(pm.run(*module)))
      return 1;
    if (failed(moe::addEntryPoint(*module, *entry, *description)))
      return 1;
    PassManager lower(&context);
    moe::buildLowerToLLVMPipeline(lower);
    if (failed(lower.run(*module)))
      return 1;
  }

  Emit kind = chooseEmit();
  std::error_code ec;
  if (kind == Emit::MLIR) {
    llvm::ToolOutputFile out(outputFile, ec, llvm::sys::fs::OF_Text);
    if (ec)
      return fail("cannot write '" + outputFile + "': " + ec.message());
    module->print(out.os());
    out.keep();
    return 0;
  }

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext, "moe");
  if (!llvmModule)
    return fail("cannot translate the lowered module to LLVM IR");
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  std::string targetError;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, targetError);
  if (!target)
    return fail("no target for " + triple.str() + ": " + targetError);
  // A generic CPU: the module runs on any machine of this architecture.
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, "generic", "", llvm::TargetOptions(), llvm::Reloc::PIC_));
  llvmModule->setTargetTriple(triple);
  llvmModule->setDataLayout(machine->createDataLayout());
  optimizeLLVM(*llvmModule, machine.get());

  if (kind == Emit::LLVMIR) {
    llvm::ToolOutputFile out(outputFile, ec, llvm::sys::fs::OF_Text);
    if (ec)
      return fail("cannot write '" + outputFile + "': " + ec.message());
    llvmModule->print(out.os(), nullptr);
    out.keep();
    return 0;
  }

  // The object file: the output itself, or a temporary to link.
  SmallString<128> objectPath(outputFile);
  if (kind == Emit::SharedLibrary) {
    if (auto err = llvm::sys::fs::createTemporaryFile("moe-compile", "o",
                                                      objectPath))
      return fail("cannot create a temporary file: " + err.message());
  }
  {
    llvm::ToolOutputFile out(objectPath, ec, llvm::sys::fs::OF_None);
    if (ec)
      return fail("cannot write '" + objectPath + "': " + ec.message());
    llvm::legacy::PassManager codegen;
    if (machine->addPassesToEmitFile(codegen, out.os(), nullptr,
                                     llvm::CodeGenFileType::ObjectFile))
      return fail("the target cannot emit object files");
    codegen.run(*llvmModule);
    out.keep();
  }
  if (kind == Emit::Object)
    return 0;

  llvm::ErrorOr<std::string> driver = llvm::sys::findProgramByName(linker);
  if (!driver) {
    llvm::sys::fs::remove(objectPath);
    return fail("cannot find the linker driver '" + linker +
                "' (install build-essential, or pass --linker=PATH, or emit "
                "an object with --emit=obj)");
  }
  std::string outputArg = outputFile;
  SmallVector<StringRef> args = {*driver, "-shared", "-o", outputArg,
                                 objectPath};
  std::string linkError;
  int status = llvm::sys::ExecuteAndWait(*driver, args, std::nullopt, {}, 0, 0,
                                         &linkError);
  llvm::sys::fs::remove(objectPath);
  if (status != 0)
    return fail("linking '" + outputFile + "' failed" +
                (linkError.empty() ? "" : ": " + linkError));
  return 0;
}
