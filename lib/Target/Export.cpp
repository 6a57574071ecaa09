//===- Export.cpp - A compiled module from moe IR -------------------------===//
#include "moe/Target/Export.h"
#include "moe/Target/EntryPoint.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

using namespace mlir;
using namespace mlir::moe;

FailureOr<func::FuncOp> mlir::moe::findEntryFunction(ModuleOp module,
                                                     StringRef name) {
  SmallVector<func::FuncOp> candidates;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    if (!name.empty() ? func.getName() == name : func.isPublic())
      candidates.push_back(func);
  }
  if (candidates.size() == 1)
    return candidates.front();
  if (!name.empty())
    return module.emitError() << "no function named '" << name << "'",
           failure();
  return module.emitError()
             << (candidates.empty() ? "no public function with a body to export"
                                    : "several public functions: choose one "
                                      "with --entry=NAME"),
         failure();
}

namespace {
struct ExportEntryPass
    : public PassWrapper<ExportEntryPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ExportEntryPass)

  ExportEntryPass() = default;
  ExportEntryPass(const ExportEntryPass &other) : PassWrapper(other) {}
  explicit ExportEntryPass(const ExportEntryOptions &options) {
    entry = options.entry;
    optimized = options.optimized;
    tokenHint = options.tokenHint;
  }

  StringRef getArgument() const override { return "moe-export-entry"; }
  StringRef getDescription() const override {
    return "Export a function to runners: its JSON description "
           "(moe_module_description) and moe_entry(void **args, int64_t "
           "tokens); before convert-moe-to-runtime";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<LLVM::LLVMDialect>();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<func::FuncOp> func = findEntryFunction(module, entry);
    if (failed(func))
      return signalPassFailure();
    FailureOr<std::string> description =
        describeEntryFunction(*func, optimized, tokenHint);
    if (failed(description) ||
        failed(addEntryPoint(module, *func, *description)))
      return signalPassFailure();
  }

  Option<std::string> entry{
      *this, "entry",
      llvm::cl::desc("The function to export (default: the only public "
                     "function with a body)")};
  Option<bool> optimized{*this, "optimized",
                         llvm::cl::desc("Say in the description that "
                                        "moe-optimize ran"),
                         llvm::cl::init(true)};
  Option<int64_t> tokenHint{
      *this, "token-hint",
      llvm::cl::desc("Token count at which the description compares sizes"),
      llvm::cl::init(16384)};
};
} // namespace

std::unique_ptr<Pass>
mlir::moe::createExportEntryPass(ExportEntryOptions options) {
  return std::make_unique<ExportEntryPass>(options);
}

void mlir::moe::registerExportEntryPass() {
  PassRegistration<ExportEntryPass>();
}

/// Optimizes the LLVM module at O2 for the target machine.
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

LogicalResult mlir::moe::emitModule(ModuleOp module, StringRef path,
                                    EmitKind kind, StringRef linker,
                                    std::string &error) {
  auto fail = [&](const Twine &message) {
    error = message.str();
    return failure();
  };
  MLIRContext *context = module.getContext();
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  context->appendDialectRegistry(registry);

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext, "moe");
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

  std::error_code ec;
  if (kind == EmitKind::LLVMIR) {
    llvm::ToolOutputFile out(path, ec, llvm::sys::fs::OF_Text);
    if (ec)
      return fail("cannot write '" + path + "': " + ec.message());
    llvmModule->print(out.os(), nullptr);
    out.keep();
    return success();
  }

  // The object file: the output itself, or a temporary to link.
  SmallString<128> objectPath(path);
  if (kind == EmitKind::SharedLibrary) {
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
  if (kind == EmitKind::Object)
    return success();

  llvm::ErrorOr<std::string> driver = llvm::sys::findProgramByName(linker);
  if (!driver) {
    llvm::sys::fs::remove(objectPath);
    return fail("cannot find the linker driver '" + linker +
                "' (install build-essential, or pass --linker=PATH, or emit "
                "an object with --emit=obj)");
  }
  std::string outputArg = path.str();
  SmallVector<StringRef> args = {*driver, "-shared", "-o", outputArg,
                                 objectPath};
  std::string linkError;
  int status = llvm::sys::ExecuteAndWait(*driver, args, std::nullopt, {}, 0, 0,
                                         &linkError);
  llvm::sys::fs::remove(objectPath);
  if (status != 0)
    return fail("linking '" + path + "' failed" +
                (linkError.empty() ? "" : ": " + linkError));
  return success();
}
