//===- InitMoE.h - Register everything MoE-MLIR provides --------*- C++ -*-===//
#ifndef MOE_INITMOE_H
#define MOE_INITMOE_H

#include "mlir/IR/DialectRegistry.h"

namespace mlir {
namespace moe {

/// Registers the moe dialect (and the dialects its passes create).
void registerAllDialects(DialectRegistry &registry);

/// Registers the moe passes and pipelines with the global pass registry.
void registerAllPasses();

} // namespace moe
} // namespace mlir

#endif // MOE_INITMOE_H
