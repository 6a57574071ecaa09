//===- MemoryReport.h - JSON and SVG memory reports of the passes -*- C++ -*-===//
#ifndef MOE_LIB_DIALECT_MOE_TRANSFORMS_MEMORYREPORT_H
#define MOE_LIB_DIALECT_MOE_TRANSFORMS_MEMORYREPORT_H

#include "moe/Analysis/BlockMemoryModel.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

#include <optional>
#include <vector>

namespace mlir {
namespace moe {

/// The memory of one function at one point of a pass, kept as plain data so
/// that it survives the rewriting of the IR.
struct MemorySnapshot {
  struct StepRecord {
    std::string op, loc;
    LinearSize live, workspace, total;
    SmallVector<std::string, 8> buffers;
  };
  std::string error; // non-empty: the function could not be modelled
  std::vector<StepRecord> steps;
  LinearSize peak, largestLiveSet, argumentBytes;
  unsigned peakStep = 0;
  struct BufferRecord {
    std::string name;
    LinearSize size;
    int firstStep = -1, lastStep = -1;
    std::string firstUser; // the op that first uses it
  };
  std::vector<BufferRecord> buffers;
};

/// Records snapshots of every function before and after a pass and writes
/// the report files (the pass's options, else --moe-memory-report and
/// --moe-memory-timeline).
class MemoryReporter {
public:
  MemoryReporter(ModuleOp module, int64_t tokenHint, StringRef reportFile,
                 StringRef timelineFile, StringRef passName);

  /// True when a report or a timeline was asked for. Snapshots are only
  /// taken then: modelling a large block costs as much as scheduling it.
  bool enabled() const { return !reportFile.empty() || !timelineFile.empty(); }

  void before(FunctionOpInterface func);
  void after(FunctionOpInterface func, const MemoryPlan *plan = nullptr);
  /// Adds a plan to the last function's entry (its snapshots unchanged).
  void attachPlan(FunctionOpInterface func, const MemoryPlan &plan);

  /// Writes the requested files; emits an error on the module on failure.
  LogicalResult write();

private:
  MemorySnapshot snapshot(FunctionOpInterface func);

  struct FunctionEntry {
    std::string name;
    MemorySnapshot before, after;
    std::optional<MemoryPlan> plan;
  };
  ModuleOp module;
  int64_t tokenHint;
  std::string reportFile, timelineFile, passName;
  std::vector<FunctionEntry> functions;
  DenseMap<Operation *, std::string> bufferNames;
};

} // namespace moe
} // namespace mlir

#endif // MOE_LIB_DIALECT_MOE_TRANSFORMS_MEMORYREPORT_H
