// Parses and verifies moe IR through an installed MoE-MLIR.
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/InitMoE.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/raw_ostream.h"

static const char *kGood = R"mlir(
func.func @f(%r: memref<?x64xbf16>, %s: memref<?x64xbf16>, %o: memref<?x64xbf16>) {
  moe.add ins(%r, %s : memref<?x64xbf16>, memref<?x64xbf16>) outs(%o : memref<?x64xbf16>)
  return
}
)mlir";

static const char *kBad = R"mlir(
func.func @g(%r: memref<?x64xbf16>, %s: memref<?x32xbf16>, %o: memref<?x64xbf16>) {
  moe.add ins(%r, %s : memref<?x64xbf16>, memref<?x32xbf16>) outs(%o : memref<?x64xbf16>)
  return
}
)mlir";

int main() {
  mlir::DialectRegistry registry;
  mlir::moe::registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  auto module = mlir::parseSourceString<mlir::ModuleOp>(kGood, &context);
  if (!module)
    return 1;
  int adds = 0;
  module->walk([&](mlir::moe::AddOp) { ++adds; });
  llvm::outs() << "parsed: " << adds << " moe.add\n";
  context.getDiagEngine().registerHandler([](mlir::Diagnostic &diag) {
    llvm::outs() << "diagnostic: " << diag.str() << "\n";
  });
  auto bad = mlir::parseSourceString<mlir::ModuleOp>(kBad, &context);
  llvm::outs() << (bad ? "bad module accepted\n" : "bad module rejected\n");
  return bad ? 1 : 0;
}
