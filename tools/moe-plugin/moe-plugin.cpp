//===- moe-plugin.cpp - The moe dialect and passes as mlir-opt plugins ----===//
//
// Load into the stock driver with
//   mlir-opt --load-dialect-plugin=lib/libMoEMLIRPlugin.so \
//            --load-pass-plugin=lib/libMoEMLIRPlugin.so
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/InitMoE.h"

#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"

using namespace mlir;

extern "C" LLVM_ATTRIBUTE_WEAK DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "MoEMLIR", LLVM_VERSION_STRING,
          [](DialectRegistry *registry) { moe::registerAllDialects(*registry); }};
}

extern "C" LLVM_ATTRIBUTE_WEAK PassPluginLibraryInfo mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "MoEMLIR", LLVM_VERSION_STRING,
          []() { moe::registerAllPasses(); }};
}
