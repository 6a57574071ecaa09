//===- MoEInterfaces.td - Interfaces of the moe dialect ----*- tablegen -*-===//
#ifndef MOE_DIALECT_MOE_IR_MOEINTERFACES_TD
#define MOE_DIALECT_MOE_IR_MOEINTERFACES_TD

include "mlir/IR/OpBase.td"

def MoE_WorkspaceOpInterface : OpInterface<"WorkspaceOpInterface"> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    An op that needs transient memory while it runs reports how much, as a
    function of its operand shapes. The size is linear in the token count
    (the leading, possibly dynamic, dimension of the activations), so the
    scheduler and the memory planner can count it exactly even when the token
    count is only known at run time. The formulas live in
    `moe-runtime/Workspace.h`, shared with the runtime backends.
  }];
  let methods = [
    InterfaceMethod<[{
        Returns the workspace in bytes as `perToken * T + constant`.
      }],
      "::mlir::moe::LinearSize", "getWorkspaceSize", (ins)>,
  ];
}

#endif // MOE_DIALECT_MOE_IR_MOEINTERFACES_TD
