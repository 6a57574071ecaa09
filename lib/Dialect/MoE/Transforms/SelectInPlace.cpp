//===- SelectInPlace.cpp - The seed's decision on tensors -----------------===//
//
// moe-select-inplace: per tensor-form routed op, in place or out of place,
// chosen by the optimized peak of each candidate (see Passes.td).
//
//===----------------------------------------------------------------------===//
#include "moe/Analysis/BlockMemoryModel.h"
#include "moe/Dialect/MoE/IR/MoEContract.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"

#include "llvm/ADT/SetVector.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/ToolOutputFile.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOESELECTINPLACE
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

/// The tensor-form routed ops of `func`'s entry block, in order.
static SmallVector<RoutedExpertsOp> getRoutedOps(func::FuncOp func) {
  SmallVector<RoutedExpertsOp> ops;
  for (Operation &op : func.getBody().front())
    if (auto routed = dyn_cast<RoutedExpertsOp>(op); routed && isTensorForm(routed))
      ops.push_back(routed);
  return ops;
}

/// Makes `routed` write in place: moves every later use of its hidden
/// tensor, with the ops it depends on after `routed`, before it, then makes
/// the hidden tensor its init. Fails (changing nothing) when a later use
/// depends on `routed` or is the block's terminator.
static LogicalResult makeInPlace(RoutedExpertsOp routed) {
  Value hidden = routed.getHidden();
  Block *block = routed->getBlock();
  llvm::SetVector<Operation *> toMove;
  for (Operation *op = routed->getNextNode(); op; op = op->getNextNode()) {
    bool usesHidden = false;
    op->walk([&](Operation *nested) {
      usesHidden |= llvm::is_contained(nested->getOperands(), hidden);
    });
    if (!usesHidden)
      continue;
    if (op->hasTrait<OpTrait::IsTerminator>())
      return failure();
    // The op and what it needs from after `routed`, producers first.
    SmallVector<Operation *> worklist = {op};
    llvm::SetVector<Operation *> slice;
    bool needsRouted = false;
    while (!worklist.empty() && !needsRouted) {
      Operation *next = worklist.pop_back_val();
      if (!slice.insert(next))
        continue;
      next->walk([&](Operation *nested) {
        for (Value operand : nested->getOperands()) {
          Operation *def = operand.getDefiningOp();
          if (!def)
            continue;
          // The ancestor of the defining op in `block`, if it is there.
          Operation *inBlock = block->findAncestorOpInBlock(*def);
          needsRouted |= inBlock == routed.getOperation();
          if (inBlock && routed->isBeforeInBlock(inBlock))
            worklist.push_back(inBlock);
        }
      });
    }
    if (needsRouted)
      return failure();
    toMove.insert(slice.begin(), slice.end());
  }
  SmallVector<Operation *> ordered = toMove.takeVector();
  llvm::sort(ordered, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  for (Operation *op : ordered)
    op->moveBefore(routed);
  routed.getOutputMutable().assign(hidden);
  return success();
}

/// Makes `routed` write into a fresh tensor (a `tensor.empty` right before
/// it) when its init is its hidden tensor.
static void makeOutOfPlace(RoutedExpertsOp routed) {
  if (routed.getOutput() != routed.getHidden())
    return;
  OpBuilder builder(routed);
  Location loc = routed.getLoc();
  Value hidden = routed.getHidden();
  auto type = cast<RankedTensorType>(hidden.getType());
  Value init = tensor::EmptyOp::create(
      builder, loc, tensor::getMixedSizes(builder, loc, hidden),
      type.getElementType());
  routed.getOutputMutable().assign(init);
}

/// Applies `inPlace` (one choice per routed op) to `func`.
static LogicalResult applyChoices(func::FuncOp func, ArrayRef<bool> inPlace) {
  SmallVector<RoutedExpertsOp> routed = getRoutedOps(func);
  assert(routed.size() == inPlace.size());
  for (auto [op, choice] : llvm::zip(routed, inPlace)) {
    if (!choice)
      makeOutOfPlace(op);
    else if (failed(makeInPlace(op)))
      return failure();
  }
  return success();
}

static int64_t countCopies(func::FuncOp func) {
  int64_t copies = 0;
  func->walk([&](Operation *op) {
    copies += isa<memref::CopyOp, bufferization::MaterializeInDestinationOp>(op);
  });
  return copies;
}

namespace {
struct SelectInPlacePass
    : public moe::impl::MoESelectInPlaceBase<SelectInPlacePass> {
  using MoESelectInPlaceBase::MoESelectInPlaceBase;

  /// The optimized peak of `func` (by name) with `inPlace` applied, on a
  /// copy of the module: bufferized, optimized, modelled at the token hint.
  /// Fails where the candidate cannot be built or bufferized.
  FailureOr<int64_t> evaluate(StringRef funcName, ArrayRef<bool> inPlace) {
    std::string key = funcName.str() + ":";
    for (bool choice : inPlace)
      key += choice ? '1' : '0';
    if (auto it = cache.find(key); it != cache.end())
      return it->second;
    FailureOr<int64_t> peak = evaluateUncached(funcName, inPlace);
    cache.emplace(key, peak);
    return peak;
  }

  FailureOr<int64_t> evaluateUncached(StringRef funcName, ArrayRef<bool> inPlace) {
    OwningOpRef<ModuleOp> copy = getOperation().clone();
    auto func = copy->lookupSymbol<func::FuncOp>(funcName);
    if (failed(applyChoices(func, inPlace)))
      return failure();
    // A candidate that fails reports why; that is an answer, not an error.
    ScopedDiagnosticHandler silence(&getContext(),
                                    [](Diagnostic &) { return success(); });
    PassManager bufferize(&getContext());
    bufferize.addPass(createMoEBufferize());
    if (failed(bufferize.run(*copy)))
      return failure();
    func = copy->lookupSymbol<func::FuncOp>(funcName);
    if (!func || func.isExternal())
      return failure();
    // A variant that bufferizes into copies (an in-place result that is the
    // function's own input, returned) is one that needs a copy.
    if (countCopies(func) > countCopies(getOperation().lookupSymbol<func::FuncOp>(funcName)))
      return failure();
    PassManager pm(&getContext());
    MoEOptimizeOptions optimize;
    optimize.tokenHint = tokenHint;
    pm.addPass(createMoEOptimize(optimize));
    if (failed(pm.run(*copy)))
      return failure();
    BlockMemoryModel model(func.getBody().front(), tokenHint);
    if (!model.isValid())
      return failure();
    return model.peakOf(model.getInputOrder()).evaluate(tokenHint);
  }

  void runOnOperation() override {
    llvm::json::Array functions;
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      SmallVector<RoutedExpertsOp> routed = getRoutedOps(func);
      if (routed.empty())
        continue;
      FailureOr<llvm::json::Object> decision = decide(func, routed);
      if (failed(decision))
        return signalPassFailure();
      functions.push_back(std::move(*decision));
    }
    if (!reportFile.empty() && failed(writeReport(std::move(functions))))
      return signalPassFailure();
  }

  FailureOr<llvm::json::Object> decide(func::FuncOp func,
                                       SmallVector<RoutedExpertsOp> routed) {
    StringRef name = func.getName();
    size_t n = routed.size();
    SmallVector<bool> allOut(n, false), allIn(n, true);
    FailureOr<int64_t> outPeak = evaluate(name, allOut);
    if (failed(outPeak))
      return func.emitError()
             << "moe-select-inplace: the function does not bufferize and "
                "optimize with every routed op out of place (run "
                "moe-bufferize on it to see why)";
    FailureOr<int64_t> inPeak = evaluate(name, allIn);
    // The better uniform choice first (in place on a tie: it frees a hidden
    // buffer early wherever it is legal), then one layer at a time: a flip is
    // taken when it lowers the peak, or keeps it and makes one more layer in
    // place (a plateau move: in place elsewhere may lower it later). Every
    // move lowers the peak or adds an in-place layer, so this ends.
    SmallVector<bool> best = allOut;
    int64_t bestPeak = *outPeak;
    if (succeeded(inPeak) && *inPeak <= bestPeak) {
      best = allIn;
      bestPeak = *inPeak;
    }
    for (bool moved = true; moved;) {
      moved = false;
      for (size_t i = 0; i < n; ++i) {
        SmallVector<bool> flipped = best;
        flipped[i] = !flipped[i];
        FailureOr<int64_t> peak = evaluate(name, flipped);
        if (failed(peak) ||
            !(*peak < bestPeak || (*peak == bestPeak && flipped[i])))
          continue;
        best = flipped;
        bestPeak = *peak;
        moved = true;
      }
    }

    llvm::json::Array layers;
    for (size_t i = 0; i < n; ++i) {
      SmallVector<bool> flipped = best;
      flipped[i] = !flipped[i];
      FailureOr<int64_t> other = evaluate(name, flipped);
      std::optional<int64_t> inPlacePeak = best[i] ? bestPeak : other.value_or(-1),
                             outPeakHere = best[i] ? other.value_or(-1) : bestPeak;
      auto describe = [&](std::optional<int64_t> bytes) -> std::string {
        if (*bytes < 0)
          return "does not bufferize without a copy";
        return llvm::formatv("{0:F2} MiB", double(*bytes) / (1 << 20)).str();
      };
      routed[i]->emitRemark()
          << "routed experts " << (best[i] ? "in place" : "out of place")
          << ": optimized peak in place " << describe(inPlacePeak)
          << ", out of place " << describe(outPeakHere) << " (at "
          << int64_t(tokenHint)
          << " tokens)";
      std::string loc;
      llvm::raw_string_ostream(loc) << routed[i]->getLoc();
      auto bytesJson = [](std::optional<int64_t> bytes) -> llvm::json::Value {
        if (*bytes < 0)
          return nullptr;
        return *bytes;
      };
      layers.push_back(llvm::json::Object{
          {"op", int64_t(i)},
          {"loc", loc},
          {"choice", best[i] ? "in_place" : "out_of_place"},
          {"peak_bytes_in_place", bytesJson(inPlacePeak)},
          {"peak_bytes_out_of_place", bytesJson(outPeakHere)}});
      (best[i] ? numInPlace : numOutOfPlace)++;
    }
    if (failed(applyChoices(func, best)))
      return func.emitError() << "moe-select-inplace: the chosen variant "
                                 "cannot be applied";
    return llvm::json::Object{
        {"function", name.str()},
        {"token_hint", int64_t(tokenHint)},
        {"routed_ops", std::move(layers)},
        {"peak_bytes", bestPeak},
        {"peak_bytes_all_out_of_place", *outPeak},
        {"peak_bytes_all_in_place",
         succeeded(inPeak) ? llvm::json::Value(*inPeak)
                           : llvm::json::Value(nullptr)}};
  }

  LogicalResult writeReport(llvm::json::Array functions) {
    std::string error;
    std::unique_ptr<llvm::ToolOutputFile> file =
        openOutputFile(reportFile, &error);
    if (!file)
      return getOperation().emitError()
             << "moe-select-inplace: cannot write '" << reportFile
             << "': " << error;
    file->os() << llvm::formatv(
        "{0:2}\n", llvm::json::Value(llvm::json::Object{
                       {"pass", "moe-select-inplace"},
                       {"functions", std::move(functions)}}));
    file->keep();
    return success();
  }

  /// Peaks by function and choices ("name:0110").
  std::map<std::string, FailureOr<int64_t>> cache;
};
} // namespace
