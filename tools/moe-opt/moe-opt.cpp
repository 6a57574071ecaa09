//===- moe-opt.cpp - mlir-opt with the moe dialect and passes -------------===//
//
// A drop-in mlir-opt: every upstream dialect, pass and extension, plus the moe
// dialect and its passes.
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/InitMoE.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

namespace mlir::moe::test {
void registerTestPasses();
} // namespace mlir::moe::test

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::moe::registerAllPasses();
  mlir::moe::registerMemoryReportCLOptions();
  mlir::moe::test::registerTestPasses();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::moe::registerAllDialects(registry);
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "MoE-MLIR optimizer driver\n", registry));
}
