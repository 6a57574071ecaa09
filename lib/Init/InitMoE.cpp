//===- InitMoE.cpp - Register everything MoE-MLIR provides ----------------===//
#include "moe/InitMoE.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Conversion/Passes.h"
#include "moe/Pipelines/Pipelines.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

void mlir::moe::registerAllDialects(DialectRegistry &registry) {
  registry.insert<moe::MoEDialect, func::FuncDialect, arith::ArithDialect,
                  memref::MemRefDialect, LLVM::LLVMDialect>();
}

void mlir::moe::registerAllPasses() {
  registerMoEPasses();
  registerMoEConversionPasses();
  registerLowerToLLVMPipeline();
}
