//===- BufferizableOpInterfaceImpl.h - moe ops in bufferization -*- C++ -*-===//
//
// External models of upstream's BufferizableOpInterface for every moe op, so
// that One-Shot Bufferize turns the tensor form (destination-passing style)
// into the buffer form. The models read each op through the op contract:
// inputs are read, outputs are written whole (never read), an output is the
// buffer of its result, and an output may share its input's buffer exactly
// where the contract's alias rules allow it (in place). A routed op whose init
// is its hidden tensor asks to write in place; when bufferization cannot
// grant that (the hidden tensor is used later, or is not writable), it fails
// with a located error instead of copying the hidden tensor behind the
// memory plan's back. docs/dialect.md, "Two forms".
//
//===----------------------------------------------------------------------===//
#ifndef MOE_DIALECT_MOE_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H
#define MOE_DIALECT_MOE_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H

#include "mlir/IR/DialectRegistry.h"

namespace mlir {
namespace moe {

/// Registers the models (the moe dialect promises them).
void registerBufferizableOpInterfaceExternalModels(DialectRegistry &registry);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H
