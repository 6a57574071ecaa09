//===- TestContractDefaults.cpp - ODS defaults equal the contract's -------===//
//
// `moe-test-check-contract-defaults` sets, on every moe op, each attribute
// that has a default in the op contract to that default, and prints the op:
// the printer elides an attribute equal to its MoEOps.td default, so an
// attribute still printed has a different default there than in the
// contract (an error, at the op). test/Dialect/MoE/IR/contract.mlir runs it on
// one op of each kind.
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/IR/MoEContract.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/Pass/Pass.h"

using namespace mlir;

namespace {
struct TestContractDefaultsPass
    : PassWrapper<TestContractDefaultsPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(TestContractDefaultsPass)
  StringRef getArgument() const final {
    return "moe-test-check-contract-defaults";
  }
  StringRef getDescription() const final {
    return "Check that MoEOps.td's attribute defaults are the op contract's "
           "(test only)";
  }

  void runOnOperation() override {
    bool ok = true;
    getOperation()->walk([&](Operation *op) {
      const moe::contract::OpSpec *spec = moe::getContract(op);
      if (!spec)
        return;
      Builder b(op->getContext());
      SmallVector<const moe::contract::AttrSpec *> defaulted;
      for (const moe::contract::AttrSpec &attr : spec->attrs) {
        if (!attr.hasDefault || attr.kind == moe::contract::AttrKind::Unit)
          continue;
        Attribute value =
            attr.kind == moe::contract::AttrKind::Float
                ? Attribute(b.getF32FloatAttr(float(attr.defaultValue)))
                : Attribute(b.getI64IntegerAttr(int64_t(attr.defaultValue)));
        op->setAttr(attr.name, value);
        defaulted.push_back(&attr);
      }
      std::string text;
      llvm::raw_string_ostream os(text);
      op->print(os, OpPrintingFlags().assumeVerified());
      for (const moe::contract::AttrSpec *attr : defaulted)
        if (StringRef(text).contains((Twine(" ") + attr->name + " =").str()) ||
            StringRef(text).contains((Twine("{") + attr->name + " =").str())) {
          op->emitError() << "the default of '" << attr->name
                          << "' in MoEOps.td differs from the op contract's ("
                          << attr->defaultValue << ")";
          ok = false;
        }
    });
    if (!ok)
      signalPassFailure();
  }
};
} // namespace

namespace mlir::moe::test {
void registerTestContractDefaultsPass() {
  PassRegistration<TestContractDefaultsPass>();
}
} // namespace mlir::moe::test
