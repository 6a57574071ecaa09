//===- moe-opt-fuzzer.cpp - libFuzzer target for the moe compiler ---------===//
//
// Reads its input as MLIR and runs what moe-opt and moe-compile run on user IR:
//
//  1. parse and verify (the moe dialect's parsers, printers and verifiers);
//  2. print and parse again: the printed form of a valid module must parse,
//     and print the same;
//  3. moe-optimize (defer, schedule, plan) with the default options;
//  4. on a copy: moe-schedule-peak-memory with a tiny exact-search budget (the
//     heuristic path) and moe-plan-memory at a token hint of 0, 1, 7, 16384
//     or 2^40 (by the input's hash), with their JSON reports and SVG
//     timeline (written to stdout, i.e. /dev/null);
//  5. on a copy of the optimized module: what moe-compile does before LLVM
//     (describe the entry function, convert-moe-to-runtime, add the entry
//     point).
//
// Diagnostics are expected (most inputs are invalid) and swallowed. A crash,
// a sanitizer report, a leak, a hang, a pass that reports success but
// leaves IR that does not verify, or a module whose printed form does not
// parse back is a bug: the last two abort with a message on stderr.
//
// Every input gets a fresh MLIRContext, so a crash reproduces from its input
// alone:  moe-opt-fuzzer crash-<sha1>   (see docs/fuzzing.md).
//
// The dialects are those the moe passes deal with (moe, func, arith, memref,
// linalg, scf, cf, llvm, bufferization), not every upstream dialect: the target is our
// code, not upstream parsers.
//
// Structure-aware mode: with MOE_FUZZ_STRUCTURED=1 in the environment
// (scripts/fuzz.sh --structured) a custom mutator also parses the
// input and mutates it as IR (swap operands of the same type, move an op,
// clone or erase an op, toggle unit attributes, change integer attributes,
// make a static dimension dynamic; route a buffer through a region result,
// a loop's iteration argument or a cast; hand a buffer to a dealloc through a
// cast, a realloc or a bufferization.dealloc; move an allocation into another
// memory space), then prints it: most mutants stay well-formed programs, so
// the passes see far more of them.
//
// After moe-optimize and after the planner, every arena is checked as
// moe-test-check-arena does: planned memory that is returned, leaves its
// block, outlives the arena or is freed by another op is a bug.
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/InitMoE.h"
#include "moe/Target/EntryPoint.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/raw_ostream.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

using namespace mlir;

extern "C" size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t maxSize);

namespace mlir::moe::test {
/// test/lib/TestCheckArena.cpp: moe-test-check-arena's check.
LogicalResult checkPlannedMemory(Operation *root);
} // namespace mlir::moe::test

namespace {

/// Inputs larger than this are skipped: the passes are meant for MoE layers,
/// not for megabytes of IR, and libFuzzer's -max_len is the real bound.
constexpr size_t kMaxInputBytes = 64 * 1024;

DialectRegistry *registry;
bool structured = false;

[[noreturn]] void bug(const char *what, ModuleOp module) {
  std::fprintf(stderr, "moe-opt-fuzzer: BUG: %s\n", what);
  if (module) {
    std::string text;
    llvm::raw_string_ostream os(text);
    module->print(os, OpPrintingFlags().printGenericOpForm());
    std::fprintf(stderr, "--- module (generic form) ---\n%s\n", text.c_str());
  }
  std::abort();
}

std::string print(ModuleOp module) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os);
  return text;
}

std::unique_ptr<MLIRContext> makeContext() {
  auto context =
      std::make_unique<MLIRContext>(*registry, MLIRContext::Threading::DISABLED);
  // Dialects load on demand as the parser meets them.
  return context;
}

/// Runs `pm` on `module`. A pass may fail (with a diagnostic): that is a
/// user error. A pass that succeeds must leave IR that verifies.
bool runAndCheck(PassManager &pm, ModuleOp module, const char *what) {
  pm.enableVerifier(false);
  if (failed(pm.run(module)))
    return false;
  if (failed(verify(module)))
    bug(what, module);
  return true;
}

/// True if some op of `module` carries `moe.arena` (the input may: it is
/// then the input's arena, not ours, and may be anything).
bool hasArena(ModuleOp module) {
  return module
      .walk([](Operation *op) {
        return op->hasAttr("moe.arena") ? WalkResult::interrupt()
                                        : WalkResult::advance();
      })
      .wasInterrupted();
}

/// Planned memory (the views of a `moe.arena` the passes made) must stay in
/// its block and lifetime and be freed only with the arena
/// (moe-test-check-arena).
void checkArenas(ModuleOp module) {
  if (failed(moe::test::checkPlannedMemory(module)))
    bug("planned memory escapes its arena or is freed by another op", module);
}

void exerciseCompile(MLIRContext &context, ModuleOp module) {
  // moe-compile: the single public function with a body is the entry.
  func::FuncOp entry;
  unsigned candidates = 0;
  for (auto func : module.getOps<func::FuncOp>())
    if (!func.isExternal() && func.isPublic()) {
      entry = func;
      ++candidates;
    }
  FailureOr<std::string> description = failure();
  if (candidates == 1)
    description = moe::describeEntryFunction(entry, /*optimized=*/true);
  PassManager pm(&context);
  pm.addPass(moe::createConvertMoEToRuntime());
  if (!runAndCheck(pm, module,
                   "convert-moe-to-runtime succeeded but the IR does not verify"))
    return;
  if (succeeded(description)) {
    if (succeeded(moe::addEntryPoint(module, entry, *description)) &&
        failed(verify(module)))
      bug("addEntryPoint succeeded but the IR does not verify", module);
  }
}

void runOne(StringRef input) {
  std::unique_ptr<MLIRContext> context = makeContext();
  // A diagnostic is not a crash: swallow them all.
  ScopedDiagnosticHandler swallow(context.get(),
                                  [](Diagnostic &) { return success(); });

  ParserConfig config(context.get(), /*verifyAfterParse=*/true);
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(input, config);
  if (!module)
    return;
  if (failed(verify(*module)))
    return;

  // The printed form of a valid module parses back to the same text.
  std::string printed = print(*module);
  {
    OwningOpRef<ModuleOp> again = parseSourceString<ModuleOp>(printed, config);
    if (!again)
      bug("a verified module does not parse back from its printed form",
          *module);
    if (print(*again) != printed)
      bug("printing a parsed module's printed form changes it", *again);
  }

  OwningOpRef<ModuleOp> heuristic = module->clone();
  const bool inputHasArena = hasArena(*module);

  // moe-opt --moe-optimize.
  PassManager optimize(context.get());
  optimize.addPass(moe::createMoEOptimize());
  bool optimized = runAndCheck(
      optimize, *module, "moe-optimize succeeded but the IR does not verify");
  if (optimized && !inputHasArena)
    checkArenas(*module);

  // The heuristic scheduler and the planner at another token hint (chosen by
  // the input's hash, so that a crash reproduces), with
  // reports. They go to stdout ("-"), which LLVMFuzzerInitialize points at
  // /dev/null: no file I/O, and nothing registered for removal on a signal
  // (llvm::ToolOutputFile keeps a node per named file for good).
  {
    PassManager pm(context.get());
    moe::MoESchedulePeakMemoryOptions schedule;
    static const int64_t hints[] = {0, 1, 7, 16384, int64_t(1) << 40};
    uint64_t hash = 0xcbf29ce484222325ull; // FNV-1a: the same in every run
    for (char c : input)
      hash = (hash ^ uint8_t(c)) * 0x100000001b3ull;
    int64_t hint = hints[hash % std::size(hints)];
    schedule.tokenHint = hint;
    schedule.stateBudget = 8;
    schedule.maxExactNodes = 3;
    schedule.reportFile = "-";
    schedule.timelineFile = "-";
    pm.addPass(moe::createMoESchedulePeakMemory(schedule));
    moe::MoEPlanMemoryOptions plan;
    plan.tokenHint = hint;
    plan.reportFile = "-";
    pm.addPass(moe::createMoEPlanMemory(plan));
    if (runAndCheck(pm, *heuristic,
                    "the scheduler (heuristic) or the planner succeeded but "
                    "the IR does not verify") &&
        !inputHasArena)
      checkArenas(*heuristic);
  }

  if (optimized) {
    OwningOpRef<ModuleOp> compiled = module->clone();
    exerciseCompile(*context, *compiled);
  }
}

//===----------------------------------------------------------------------===//
// Structure-aware mutation
//===----------------------------------------------------------------------===//

/// A memref value of `op` (a result, else an operand) and its uses after
/// `op` in the same block.
static Value pickMemRef(Operation *op, std::mt19937 &rng) {
  SmallVector<Value> values;
  for (Value v : op->getResults())
    if (isa<MemRefType>(v.getType()))
      values.push_back(v);
  if (values.empty())
    for (Value v : op->getOperands())
      if (isa<MemRefType>(v.getType()))
        values.push_back(v);
  if (values.empty())
    return nullptr;
  return values[rng() % values.size()];
}

/// The uses of `value` by ops after `after` in its block (or nested in them).
static SmallVector<OpOperand *> usesAfter(Value value, Operation *after) {
  SmallVector<OpOperand *> uses;
  for (OpOperand &use : value.getUses()) {
    Operation *user = after->getBlock()->findAncestorOpInBlock(*use.getOwner());
    if (user && after->isBeforeInBlock(user))
      uses.push_back(&use);
  }
  return uses;
}

/// Routes a memref through an alias the planner must follow: the result of
/// an scf.execute_region or of a one-trip scf.for that yields it, or a
/// memref.cast; the later uses in the block take the alias.
static bool mutateAlias(Operation *op, std::mt19937 &rng) {
  Value value = pickMemRef(op, rng);
  if (!value || op->hasTrait<OpTrait::IsTerminator>())
    return false;
  Operation *at = op;
  SmallVector<OpOperand *> uses = usesAfter(value, at);
  OpBuilder b(op->getContext());
  b.setInsertionPointAfter(at);
  Location loc = op->getLoc();
  Value alias;
  switch (rng() % 3) {
  case 0: {
    auto region = scf::ExecuteRegionOp::create(b, loc, value.getType());
    Block *body = b.createBlock(&region.getRegion());
    b.setInsertionPointToStart(body);
    scf::YieldOp::create(b, loc, value);
    alias = region.getResult(0);
    break;
  }
  case 1: {
    Value lb = arith::ConstantIndexOp::create(b, loc, 0);
    Value ub = arith::ConstantIndexOp::create(b, loc, 1);
    auto loop = scf::ForOp::create(b, loc, lb, ub, ub, ValueRange{value});
    b.setInsertionPointToStart(loop.getBody());
    scf::YieldOp::create(b, loc, loop.getRegionIterArgs()[0]);
    alias = loop.getResult(0);
    break;
  }
  default:
    alias = memref::CastOp::create(b, loc, value.getType(), value);
    break;
  }
  for (OpOperand *use : uses)
    use->set(alias);
  return true;
}

/// Adds an op that takes ownership of a memref after `op`: a dealloc through
/// a cast, a realloc (1-D), or a bufferization.dealloc.
static bool mutateOwnership(Operation *op, std::mt19937 &rng) {
  Value value = pickMemRef(op, rng);
  if (!value || op->hasTrait<OpTrait::IsTerminator>())
    return false;
  auto type = cast<MemRefType>(value.getType());
  OpBuilder b(op->getContext());
  b.setInsertionPointAfter(op);
  Location loc = op->getLoc();
  switch (rng() % 3) {
  case 0: {
    Value cast = memref::CastOp::create(b, loc, type, value);
    memref::DeallocOp::create(b, loc, cast);
    return true;
  }
  case 1: {
    if (type.getRank() != 1 || !type.getLayout().isIdentity())
      return false;
    auto grown = MemRefType::get({ShapedType::kDynamic}, type.getElementType(),
                                 MemRefLayoutAttrInterface(),
                                 type.getMemorySpace());
    Value size = arith::ConstantIndexOp::create(b, loc, 64);
    memref::ReallocOp::create(b, loc, grown, value, size, IntegerAttr());
    return true;
  }
  default: {
    if (!type.getLayout().isIdentity())
      return false;
    auto base = memref::ExtractStridedMetadataOp::create(b, loc, value);
    Value cond = arith::ConstantIntOp::create(b, loc, 1, 1);
    bufferization::DeallocOp::create(b, loc, ValueRange{base.getBaseBuffer()},
                                     ValueRange{cond}, ValueRange{});
    return true;
  }
  }
}

/// Mutates `module` in place at the IR level; returns false when nothing
/// applied. The result need not verify (the fuzzer checks that), but it
/// prints and parses: only operands, positions and attributes change.
bool mutateIR(ModuleOp module, std::mt19937 &rng) {
  // Dialects load as the parser meets them: the ones whose ops the mutations
  // create must be loaded (an op of an unloaded dialect is unregistered).
  module.getContext()
      ->loadDialect<arith::ArithDialect, bufferization::BufferizationDialect,
                    memref::MemRefDialect, scf::SCFDialect>();
  SmallVector<Operation *> ops;
  module.walk([&](Operation *op) {
    if (op != module.getOperation())
      ops.push_back(op);
  });
  if (ops.empty())
    return false;
  auto pick = [&](size_t n) {
    return std::uniform_int_distribution<size_t>(0, n - 1)(rng);
  };
  Operation *op = ops[pick(ops.size())];
  unsigned kind = pick(11);
  if (std::getenv("MOE_FUZZ_TRACE"))
    std::fprintf(stderr, "mutation %u on %s\n", kind,
                 op->getName().getStringRef().str().c_str());
  switch (kind) {
  case 0: { // Replace an operand by another value of the same type in scope.
    if (op->getNumOperands() == 0)
      return false;
    unsigned idx = pick(op->getNumOperands());
    Type type = op->getOperand(idx).getType();
    SmallVector<Value> candidates;
    Block *block = op->getBlock();
    for (BlockArgument arg : block->getArguments())
      if (arg.getType() == type)
        candidates.push_back(arg);
    for (Operation &prev : *block) {
      if (&prev == op)
        break;
      for (Value result : prev.getResults())
        if (result.getType() == type)
          candidates.push_back(result);
    }
    if (candidates.empty())
      return false;
    op->setOperand(idx, candidates[pick(candidates.size())]);
    return true;
  }
  case 1: { // Move an op before another op of its block.
    Block *block = op->getBlock();
    if (op->hasTrait<OpTrait::IsTerminator>() || block->getOperations().size() < 2)
      return false;
    SmallVector<Operation *> others;
    for (Operation &other : *block)
      if (&other != op)
        others.push_back(&other);
    op->moveBefore(others[pick(others.size())]);
    return true;
  }
  case 2: { // Clone an op right after itself.
    if (op->hasTrait<OpTrait::IsTerminator>() || isa<func::FuncOp>(op))
      return false;
    OpBuilder builder(op->getContext());
    builder.setInsertionPointAfter(op);
    builder.clone(*op);
    return true;
  }
  case 3: { // Erase an op without uses.
    if (!op->use_empty() || op->hasTrait<OpTrait::IsTerminator>())
      return false;
    op->erase();
    return true;
  }
  case 4: { // Toggle a unit attribute the moe ops know.
    static const char *names[] = {"inplace", "renormalize",
                                  "moe.fuse_shared_experts_inside_sbo",
                                  "moe.arena"};
    StringRef name = names[pick(4)];
    if (op->hasAttr(name))
      op->removeAttr(name);
    else
      op->setAttr(name, UnitAttr::get(op->getContext()));
    return true;
  }
  case 5: { // Change an integer or float attribute.
    SmallVector<NamedAttribute> attrs(op->getAttrs());
    if (attrs.empty())
      return false;
    NamedAttribute attr = attrs[pick(attrs.size())];
    static const int64_t values[] = {0, 1, 2, 3, 4, 7, 8, -1, 1 << 20,
                                     INT64_MAX, INT64_MIN};
    int64_t value = values[pick(std::size(values))];
    if (auto integer = dyn_cast<IntegerAttr>(attr.getValue())) {
      if (!integer.getType().isIntOrIndex())
        return false;
      unsigned width = integer.getType().isIndex()
                           ? 64
                           : integer.getType().getIntOrFloatBitWidth();
      op->setAttr(attr.getName(),
                  IntegerAttr::get(integer.getType(),
                                   APInt(width, value, /*isSigned=*/true,
                                         /*implicitTrunc=*/true)));
      return true;
    }
    if (auto fp = dyn_cast<FloatAttr>(attr.getValue())) {
      static const double fvalues[] = {0.0, -1.0, 1e30, -0.0, 2.5};
      op->setAttr(attr.getName(),
                  FloatAttr::get(fp.getType(), fvalues[pick(std::size(fvalues))]));
      return true;
    }
    if (auto array = dyn_cast<DenseI64ArrayAttr>(attr.getValue())) {
      SmallVector<int64_t> elems(array.asArrayRef());
      if (elems.empty())
        return false;
      elems[pick(elems.size())] = value;
      op->setAttr(attr.getName(), DenseI64ArrayAttr::get(op->getContext(), elems));
      return true;
    }
    return false;
  }
  case 7: // Route a buffer through a region result or a cast.
    return mutateAlias(op, rng);
  case 8: // Hand a buffer to an op that frees or reallocates it.
    return mutateOwnership(op, rng);
  case 9: { // Move an allocation into another memory space.
    auto alloc = dyn_cast<memref::AllocOp>(op);
    if (!alloc)
      return false;
    MemRefType type = alloc.getType();
    Attribute space;
    if (!type.getMemorySpace())
      space = IntegerAttr::get(IntegerType::get(op->getContext(), 64),
                               1 + int64_t(pick(3)));
    alloc.getResult().setType(MemRefType::get(
        type.getShape(), type.getElementType(), type.getLayout(), space));
    return true;
  }
  default: { // Make a static dimension of a memref result dynamic, or back.
    for (OpResult result : op->getResults()) {
      auto type = dyn_cast<MemRefType>(result.getType());
      if (!type || !type.hasRank() || type.getRank() == 0)
        continue;
      SmallVector<int64_t> shape(type.getShape());
      unsigned d = pick(shape.size());
      shape[d] = ShapedType::isDynamic(shape[d]) ? 1 + int64_t(pick(16))
                                                 : ShapedType::kDynamic;
      result.setType(MemRefType::get(shape, type.getElementType(),
                                     type.getLayout(), type.getMemorySpace()));
      return true;
    }
    return false;
  }
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv) {
  registry = new DialectRegistry();
  moe::registerAllDialects(*registry);
  registry->insert<linalg::LinalgDialect, scf::SCFDialect,
                   cf::ControlFlowDialect, bufferization::BufferizationDialect>();

  // The reports go to stdout; libFuzzer writes to stderr. MOE_FUZZ_STDOUT=1
  // keeps stdout (to see the reports of one input).
  const char *keep = std::getenv("MOE_FUZZ_STDOUT");
  if (!keep || std::strcmp(keep, "1") != 0) {
    int devNull = ::open("/dev/null", O_WRONLY);
    if (devNull >= 0) {
      std::fflush(stdout);
      ::dup2(devNull, STDOUT_FILENO);
      ::close(devNull);
    }
  }

  const char *env = std::getenv("MOE_FUZZ_STRUCTURED");
  structured = env && std::strcmp(env, "0") != 0 && *env;
  return 0;
}

/// True for text that MLIR 22's own parser crashes on: a dense array of
/// `index` elements (`array<index>`: the parser asks an index type for its
/// bit width). An upstream bug, not ours; such inputs are skipped.
bool hitsUpstreamParserBug(StringRef input) {
  for (size_t at = input.find("array<"); at != StringRef::npos;
       at = input.find("array<", at + 1))
    if (input.drop_front(at + 6).ltrim().starts_with("index"))
      return true;
  return false;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > kMaxInputBytes)
    return -1; // Not added to the corpus.
  if (hitsUpstreamParserBug(StringRef(reinterpret_cast<const char *>(data), size)))
    return -1;
  // A NUL-terminated copy, as the tools read files (llvm::MemoryBuffer): the
  // lexer looks one character past the end of its buffer.
  std::string input(reinterpret_cast<const char *>(data), size);
  runOne(input);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size,
                                          size_t maxSize, unsigned int seed) {
  std::mt19937 rng(seed);
  // Half of the mutations stay byte-level (libFuzzer's own, with the
  // dictionary): they find the parser's and verifier's corners.
  if (!structured || size == 0 || rng() % 2 == 0)
    return LLVMFuzzerMutate(data, size, maxSize);

  std::unique_ptr<MLIRContext> context = makeContext();
  ScopedDiagnosticHandler swallow(context.get(),
                                  [](Diagnostic &) { return success(); });
  ParserConfig config(context.get(), /*verifyAfterParse=*/false);
  std::string input(reinterpret_cast<const char *>(data), size);
  if (hitsUpstreamParserBug(input))
    return LLVMFuzzerMutate(data, size, maxSize);
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(input, config);
  // IR-level mutations start from IR that verifies: an input that parses but
  // does not verify can break what the IR's own code assumes (a byte-level
  // mutation of `operandSegmentSizes`, then cloning the op, crashed in
  // Operation::create). Such inputs get byte-level mutations only.
  if (!module || failed(verify(*module)))
    return LLVMFuzzerMutate(data, size, maxSize);
  unsigned rounds = 1 + rng() % 3;
  bool changed = false;
  for (unsigned i = 0; i < rounds; ++i) {
    changed |= mutateIR(*module, rng);
    if (i + 1 < rounds && failed(verify(*module)))
      break; // later rounds, too, start from IR that verifies
  }
  if (!changed)
    return LLVMFuzzerMutate(data, size, maxSize);
  // The generic form prints even IR that no longer verifies.
  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os, OpPrintingFlags().printGenericOpForm().assumeVerified());
  if (text.size() > maxSize)
    return LLVMFuzzerMutate(data, size, maxSize);
  std::memcpy(data, text.data(), text.size());
  return text.size();
}
