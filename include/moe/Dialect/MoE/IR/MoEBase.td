//===- MoEBase.td - The moe dialect and its attributes -----*- tablegen -*-===//
#ifndef MOE_DIALECT_MOE_IR_MOEBASE_TD
#define MOE_DIALECT_MOE_IR_MOEBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/EnumAttr.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-experts layers on buffers or tensors, with exact memory effects";
  let description = [{
    The `moe` dialect expresses the ops of a mixture-of-experts layer (router
    gate, top-k routing, routed experts, shared experts, combine) on memrefs,
    or on tensors in destination-passing style for pipelines that bufferize
    late. On memrefs every op declares which operands it reads and which it
    writes, and reports the transient workspace it needs while it runs, so
    that scheduling and memory planning can reason about buffer lifetimes
    exactly; on tensors one-shot bufferization turns it into that form.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let extraClassDeclaration = [{
    /// String attribute on a function argument: "input", "weight" or "output".
    /// Runners use it to know which buffers to fill and which to read back.
    static constexpr ::llvm::StringLiteral getRoleAttrName() {
      return ::llvm::StringLiteral("moe.role");
    }
    /// String attribute on a function argument: the tensor's name (for
    /// example "layers.0.mlp.experts.w13").
    static constexpr ::llvm::StringLiteral getNameAttrName() {
      return ::llvm::StringLiteral("moe.name");
    }
    /// Unit attribute on a function: the shared experts are fused into the
    /// single-batch-overlap path, so they must not be moved.
    static constexpr ::llvm::StringLiteral getFuseSharedExpertsInsideSboAttrName() {
      return ::llvm::StringLiteral("moe.fuse_shared_experts_inside_sbo");
    }
  }];
}

def MoE_ScoringFunc : I32EnumAttr<"ScoringFunc",
    "how router logits become expert scores", [
      I32EnumAttrCase<"softmax", 0>,
      I32EnumAttrCase<"sigmoid", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
}

include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "moe/Dialect/MoE/IR/MoEInterfaces.td"

// Every moe op's verifier, memory effects and workspace come from the op
// contract (include/moe-runtime/OpContract.h, lib/Dialect/MoE/IR/
// MoEContract.cpp): the op's operand groups, in order, are the contract's
// operands. The contract's outputs are the op's trailing operands: its
// destination operands (DestinationStyleOpInterface), which on tensors give
// the op its results.
class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, !listconcat(traits, [
        DeclareOpInterfaceMethods<MemoryEffectsOpInterface>,
        DeclareOpInterfaceMethods<MoE_WorkspaceOpInterface>,
        DestinationStyleOpInterface])> {
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return ::mlir::moe::getContractOutputsMutable(getOperation());
    }
  }];
  let extraClassDefinition = [{
    ::llvm::LogicalResult $cppClass::verify() {
      return ::mlir::moe::verifyContract(getOperation());
    }
    void $cppClass::getEffects(
        ::llvm::SmallVectorImpl<::mlir::SideEffects::EffectInstance<
            ::mlir::MemoryEffects::Effect>> &effects) {
      ::mlir::moe::getContractEffects(getOperation(), effects);
    }
    ::mlir::moe::LinearSize $cppClass::getWorkspaceSize() {
      return ::mlir::moe::getContractWorkspace(getOperation());
    }
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEBASE_TD
