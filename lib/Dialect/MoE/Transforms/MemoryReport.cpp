//===- MemoryReport.cpp - JSON and SVG memory reports of the passes -------===//
#include "MemoryReport.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/ManagedStatic.h"
#include "llvm/Support/ToolOutputFile.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
using namespace mlir::moe;

namespace {
/// --moe-memory-report and --moe-memory-timeline: the report files of every
/// moe pass that has none of its own. Created only when a tool registers
/// them (registerMemoryReportCLOptions), not when the library loads.
struct MemoryReportCLOptions {
  llvm::cl::opt<std::string> report{
      "moe-memory-report",
      llvm::cl::desc("Write the moe passes' memory report (JSON: per op live "
                     "bytes, workspace, peak and live buffers, before and "
                     "after) to this file"),
      llvm::cl::value_desc("file.json"), llvm::cl::init("")};
  llvm::cl::opt<std::string> timeline{
      "moe-memory-timeline",
      llvm::cl::desc("Write the moe passes' buffer-lifetime timeline (SVG, "
                     "peak marked, before and after) to this file"),
      llvm::cl::value_desc("file.svg"), llvm::cl::init("")};
};
llvm::ManagedStatic<MemoryReportCLOptions> clOptions;
} // namespace

void mlir::moe::registerMemoryReportCLOptions() { (void)*clOptions; }

static std::string defaultFile(bool report) {
  if (!clOptions.isConstructed())
    return "";
  return report ? clOptions->report.getValue() : clOptions->timeline.getValue();
}

MemoryReporter::MemoryReporter(ModuleOp module, int64_t tokenHint,
                               StringRef reportFile, StringRef timelineFile,
                               StringRef passName)
    : module(module), tokenHint(tokenHint),
      reportFile(reportFile.empty() ? defaultFile(true) : reportFile.str()),
      timelineFile(timelineFile.empty() ? defaultFile(false)
                                        : timelineFile.str()),
      passName(passName.str()) {}

static std::string locationString(Location loc) {
  if (auto file = dyn_cast<FileLineColLoc>(loc))
    return (file.getFilename().getValue() + ":" + Twine(file.getLine()) + ":" +
            Twine(file.getColumn()))
        .str();
  if (auto named = dyn_cast<NameLoc>(loc))
    return locationString(named.getChildLoc());
  if (auto fused = dyn_cast<FusedLoc>(loc))
    for (Location inner : fused.getLocations())
      if (std::string s = locationString(inner); !s.empty())
        return s;
  if (auto callsite = dyn_cast<CallSiteLoc>(loc))
    return locationString(callsite.getCallee());
  return "";
}

MemorySnapshot MemoryReporter::snapshot(FunctionOpInterface func) {
  MemorySnapshot snap;
  if (func.isExternal()) {
    snap.error = "external function";
    return snap;
  }
  Block &block = func.getFunctionBody().front();
  BlockMemoryModel model(block, tokenHint);
  if (!model.isValid()) {
    snap.error = model.getError();
    return snap;
  }
  // Names of buffers: stable across the pass, since ops keep their identity.
  {
    bool missing = false;
    for (const BlockMemoryModel::Buffer &b : model.getBuffers())
      missing |= !bufferNames.count(b.alloc);
    if (missing) {
      AsmState state(func);
      for (const BlockMemoryModel::Buffer &b : model.getBuffers()) {
        if (bufferNames.count(b.alloc))
          continue;
        std::string name;
        llvm::raw_string_ostream os(name);
        if (b.alloc->hasAttr(kArenaAttrName))
          os << "arena";
        else
          b.alloc->getResult(0).printAsOperand(os, state);
        bufferNames[b.alloc] = name;
      }
    }
  }
  BlockMemoryModel::Simulation sim =
      model.simulate(model.getInputOrder(), /*recordBuffers=*/true);
  snap.peak = sim.peak;
  snap.peakStep = sim.peakStep;
  snap.largestLiveSet = sim.largestLiveSet;
  snap.argumentBytes = model.getArgumentBytes();
  for (const BlockMemoryModel::Buffer &b : model.getBuffers())
    snap.buffers.push_back({bufferNames[b.alloc], b.size, -1, -1,
                            b.users.empty() ? std::string()
                                            : model.getNodes()[b.users.front()]
                                                  .op->getName()
                                                  .getStringRef()
                                                  .str()});
  for (auto [pos, step] : llvm::enumerate(sim.steps)) {
    const BlockMemoryModel::Node &node = model.getNodes()[step.node];
    MemorySnapshot::StepRecord record;
    record.op = node.op->getName().getStringRef().str();
    record.loc = locationString(node.op->getLoc());
    record.workspace = node.workspace;
    record.total = step.during;
    record.live = step.during - node.workspace;
    for (unsigned b : step.liveBuffers) {
      record.buffers.push_back(snap.buffers[b].name);
      if (snap.buffers[b].firstStep < 0)
        snap.buffers[b].firstStep = pos;
      snap.buffers[b].lastStep = pos;
    }
    snap.steps.push_back(std::move(record));
  }
  return snap;
}

void MemoryReporter::before(FunctionOpInterface func) {
  if (!enabled())
    return;
  FunctionEntry entry;
  entry.name = func.getName().str();
  entry.before = snapshot(func);
  functions.push_back(std::move(entry));
}

void MemoryReporter::attachPlan(FunctionOpInterface func, const MemoryPlan &plan) {
  if (!enabled())
    return;
  assert(!functions.empty() && functions.back().name == func.getName());
  functions.back().plan = plan;
}

void MemoryReporter::after(FunctionOpInterface func, const MemoryPlan *plan) {
  if (!enabled())
    return;
  assert(!functions.empty() && functions.back().name == func.getName());
  FunctionEntry &entry = functions.back();
  entry.after = snapshot(func);
  if (plan)
    entry.plan = *plan;
}


//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

static llvm::json::Object sizeJson(const LinearSize &size, int64_t tokenHint) {
  return llvm::json::Object{{"expr", size.str()},
                            {"per_token", size.perToken},
                            {"constant", size.constant},
                            {"bytes_at_hint", size.evaluate(tokenHint)}};
}

/// The token counts for which the peak step's line stays the largest: the
/// exact symbolic peak, `peak(T) = a*T + b`, holds on that range.
static std::pair<int64_t, std::optional<int64_t>>
peakValidity(const MemorySnapshot &snap) {
  const LinearSize &p = snap.steps[snap.peakStep].total;
  double lo = 0, hi = INFINITY;
  for (const MemorySnapshot::StepRecord &step : snap.steps) {
    // In double: the differences of saturated sizes overflow int64_t.
    double da = double(p.perToken) - double(step.total.perToken);
    double db = double(step.total.constant) - double(p.constant);
    if (da > 0)
      lo = std::max(lo, std::ceil(db / da));
    else if (da < 0)
      hi = std::min(hi, std::floor(db / da));
  }
  // Casts only from within int64_t's range (beyond it they are undefined).
  constexpr double kLimit = 9.0e18;
  std::optional<int64_t> upper;
  if (!std::isinf(hi))
    upper = static_cast<int64_t>(std::clamp(hi, -kLimit, kLimit));
  return {static_cast<int64_t>(std::min(lo, kLimit)), upper};
}

static llvm::json::Value snapshotJson(const MemorySnapshot &snap,
                                      int64_t tokenHint) {
  if (!snap.error.empty())
    return llvm::json::Object{{"error", snap.error}};
  llvm::json::Array steps;
  for (auto [i, step] : llvm::enumerate(snap.steps)) {
    llvm::json::Array buffers;
    for (const std::string &b : step.buffers)
      buffers.push_back(b);
    steps.push_back(llvm::json::Object{
        {"step", static_cast<int64_t>(i)},
        {"op", step.op},
        {"loc", step.loc},
        {"live", sizeJson(step.live, tokenHint)},
        {"workspace", sizeJson(step.workspace, tokenHint)},
        {"total", sizeJson(step.total, tokenHint)},
        {"buffers", std::move(buffers)}});
  }
  llvm::json::Object out{
      {"peak", sizeJson(snap.peak, tokenHint)},
      {"largest_live_set", sizeJson(snap.largestLiveSet, tokenHint)},
      {"argument_bytes", sizeJson(snap.argumentBytes, tokenHint)},
      {"steps", std::move(steps)}};
  if (!snap.steps.empty()) {
    auto [lo, hi] = peakValidity(snap);
    out["peak_step"] = static_cast<int64_t>(snap.peakStep);
    out["peak_op"] = snap.steps[snap.peakStep].op;
    out["peak_loc"] = snap.steps[snap.peakStep].loc;
    llvm::json::Object range{{"min_tokens", lo}};
    range["max_tokens"] = hi ? llvm::json::Value(*hi) : llvm::json::Value(nullptr);
    out["peak_formula_holds_for"] = std::move(range);
  }
  return out;
}

static llvm::json::Value planJson(const MemoryPlan &plan, int64_t tokenHint) {
  llvm::json::Array leftOut;
  for (const MemoryPlan::LeftOut &left : plan.leftOut)
    leftOut.push_back(
        llvm::json::Object{{"name", left.name}, {"reason", left.reason}});
  if (!plan.applied)
    return llvm::json::Object{{"applied", false},
                              {"reason", plan.reason},
                              {"unplanned", std::move(leftOut)}};
  llvm::json::Array items;
  for (const PlannedItem &item : plan.items)
    items.push_back(llvm::json::Object{
        {"name", item.name},
        {"workspace", item.isWorkspace},
        {"offset", sizeJson(item.offset, tokenHint)},
        {"size", sizeJson(item.size, tokenHint)},
        {"first_step", static_cast<int64_t>(item.firstStep)},
        {"last_step", static_cast<int64_t>(item.lastStep)}});
  return llvm::json::Object{{"applied", true},
                            {"arena", sizeJson(plan.arenaSize, tokenHint)},
                            {"lower_bound", sizeJson(plan.lowerBound, tokenHint)},
                            {"items", std::move(items)},
                            {"unplanned", std::move(leftOut)}};
}

//===----------------------------------------------------------------------===//
// SVG
//===----------------------------------------------------------------------===//

static std::string humanBytes(double bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (std::fabs(bytes) >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::format(unit == 0 ? "%.0f %s" : "%.2f %s", bytes, units[unit]);
  return s;
}

static std::string xmlEscape(StringRef text) {
  std::string out;
  for (char c : text) {
    switch (c) {
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '&': out += "&amp;"; break;
    case '"': out += "&quot;"; break;
    default: out += c;
    }
  }
  return out;
}

/// One panel: total memory per step (area), buffer lifetimes (bars), peak.
static void writePanel(llvm::raw_ostream &os, const MemorySnapshot &snap,
                       StringRef title, double x0, double y0, double width,
                       double maxBytes, int64_t tokenHint) {
  constexpr double kChartHeight = 160, kRow = 14, kLabel = 240;
  os << "<text x='" << x0 << "' y='" << y0 + 14
     << "' class='title'>" << xmlEscape(title) << "</text>\n";
  if (!snap.error.empty() || snap.steps.empty()) {
    os << "<text x='" << x0 << "' y='" << y0 + 34 << "'>"
       << xmlEscape(snap.error.empty() ? "no ops" : snap.error) << "</text>\n";
    return;
  }
  double plotX = x0 + kLabel, plotW = width - kLabel;
  unsigned n = snap.steps.size();
  double stepW = plotW / n;
  double chartTop = y0 + 24;
  // Total transient bytes per step.
  for (unsigned i = 0; i < n; ++i) {
    double total = snap.steps[i].total.evaluate(tokenHint);
    double live = snap.steps[i].live.evaluate(tokenHint);
    double h = maxBytes > 0 ? total / maxBytes * kChartHeight : 0;
    double hl = maxBytes > 0 ? live / maxBytes * kChartHeight : 0;
    double x = plotX + i * stepW;
    os << "<rect x='" << x << "' y='" << chartTop + kChartHeight - h
       << "' width='" << std::max(stepW - 1, 0.5) << "' height='" << h - hl
       << "' class='ws'><title>" << xmlEscape(snap.steps[i].op)
       << " workspace " << humanBytes(total - live) << "</title></rect>\n";
    os << "<rect x='" << x << "' y='" << chartTop + kChartHeight - hl
       << "' width='" << std::max(stepW - 1, 0.5) << "' height='" << hl
       << "' class='" << (i == snap.peakStep ? "peak" : "live") << "'><title>"
       << "step " << i << ": " << xmlEscape(snap.steps[i].op) << " "
       << xmlEscape(snap.steps[i].loc) << " total " << humanBytes(total)
       << "</title></rect>\n";
  }
  if (n <= 48)
    for (unsigned i = 0; i < n; ++i) {
      StringRef op = snap.steps[i].op;
      op.consume_front("moe.");
      os << "<text x='" << plotX + (i + 0.5) * stepW << "' y='"
         << chartTop + kChartHeight + 9 << "' class='small' "
         << "text-anchor='middle'>" << xmlEscape(op) << "</text>\n";
    }
  double peakX = plotX + (snap.peakStep + 0.5) * stepW;
  os << "<line x1='" << peakX << "' x2='" << peakX << "' y1='" << chartTop
     << "' y2='" << chartTop + kChartHeight << "' class='peakline'/>\n";
  os << "<text x='" << x0 << "' y='" << chartTop + 14 << "'>peak "
     << xmlEscape(humanBytes(snap.peak.evaluate(tokenHint))) << "</text>\n";
  os << "<text x='" << x0 << "' y='" << chartTop + 30 << "' class='small'>= "
     << xmlEscape(snap.peak.str()) << " B</text>\n";
  os << "<text x='" << x0 << "' y='" << chartTop + 46 << "' class='small'>at step "
     << snap.peakStep << ": " << xmlEscape(snap.steps[snap.peakStep].op)
     << "</text>\n";
  // Buffer lifetimes.
  double rowsTop = chartTop + kChartHeight + 14;
  for (auto [row, b] : llvm::enumerate(snap.buffers)) {
    double y = rowsTop + row * kRow;
    os << "<text x='" << x0 << "' y='" << y + 10 << "' class='small'>"
       << xmlEscape(b.name) << " " << xmlEscape(humanBytes(b.size.evaluate(tokenHint)))
       << (b.firstUser.empty() ? "" : " (" + xmlEscape(b.firstUser) + ")")
       << "</text>\n";
    if (b.firstStep < 0)
      continue;
    bool atPeak = b.firstStep <= (int)snap.peakStep && b.lastStep >= (int)snap.peakStep;
    os << "<rect x='" << plotX + b.firstStep * stepW << "' y='" << y + 2
       << "' width='" << (b.lastStep - b.firstStep + 1) * stepW - 1
       << "' height='" << kRow - 4 << "' class='"
       << (atPeak ? "bufpeak" : "buf") << "'><title>" << xmlEscape(b.name)
       << " " << xmlEscape(b.size.str()) << " B, steps " << b.firstStep << "-"
       << b.lastStep << "</title></rect>\n";
  }
}

static double panelHeight(const MemorySnapshot &snap) {
  return 24 + 160 + 14 + 14 * snap.buffers.size() + 20;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

LogicalResult MemoryReporter::write() {
  auto open = [&](StringRef path) -> std::unique_ptr<llvm::ToolOutputFile> {
    std::error_code ec;
    auto file = std::make_unique<llvm::ToolOutputFile>(path, ec,
                                                       llvm::sys::fs::OF_Text);
    if (ec) {
      module.emitError() << "cannot write the memory report '" << path
                         << "': " << ec.message();
      return nullptr;
    }
    return file;
  };
  if (!reportFile.empty()) {
    auto file = open(reportFile);
    if (!file)
      return failure();
    llvm::json::Array funcs;
    for (const FunctionEntry &f : functions) {
      llvm::json::Object entry{
          {"name", f.name},
          {"before", snapshotJson(f.before, tokenHint)},
          {"after", snapshotJson(f.after, tokenHint)}};
      if (f.before.error.empty() && f.after.error.empty())
        entry["saving"] = sizeJson(f.before.peak - f.after.peak, tokenHint);
      if (f.plan)
        entry["plan"] = planJson(*f.plan, tokenHint);
      funcs.push_back(std::move(entry));
    }
    llvm::json::Object root{{"pass", passName},
                            {"token_hint", tokenHint},
                            {"units", "bytes"},
                            {"functions", std::move(funcs)}};
    file->os() << llvm::formatv("{0:2}", llvm::json::Value(std::move(root)))
               << "\n";
    file->keep();
  }
  if (!timelineFile.empty()) {
    auto file = open(timelineFile);
    if (!file)
      return failure();
    constexpr double kWidth = 1100, kGap = 30;
    double height = 40;
    for (const FunctionEntry &f : functions)
      height += panelHeight(f.before) + panelHeight(f.after) + 2 * kGap;
    llvm::raw_ostream &os = file->os();
    os << "<svg xmlns='http://www.w3.org/2000/svg' width='" << kWidth + 40
       << "' height='" << height << "' font-family='sans-serif' font-size='12'>\n"
       << "<style>.title{font-weight:bold;font-size:14px}.small{font-size:10px}"
          ".live{fill:#4e79a7}.ws{fill:#f28e2b}.peak{fill:#e15759}"
          ".peakline{stroke:#e15759;stroke-dasharray:4 2}.buf{fill:#a0cbe8}"
          ".bufpeak{fill:#e15759;opacity:0.8}</style>\n"
       << "<text x='20' y='24' class='title'>" << xmlEscape(passName)
       << ": transient memory per op at T = " << tokenHint
       << " (blue: buffers, orange: workspace, red: the peak)</text>\n";
    double y = 40;
    for (const FunctionEntry &f : functions) {
      double maxBytes = 0;
      for (const MemorySnapshot *s : {&f.before, &f.after})
        if (s->error.empty())
          maxBytes = std::max<double>(maxBytes, s->peak.evaluate(tokenHint));
      writePanel(os, f.before, "@" + f.name + " before", 20, y, kWidth, maxBytes,
                 tokenHint);
      y += panelHeight(f.before) + kGap;
      std::string afterTitle = "@" + f.name + " after";
      if (f.before.error.empty() && f.after.error.empty())
        afterTitle += " (saves " +
                      humanBytes((f.before.peak - f.after.peak).evaluate(tokenHint)) +
                      ")";
      writePanel(os, f.after, afterTitle, 20, y, kWidth, maxBytes, tokenHint);
      y += panelHeight(f.after) + kGap;
    }
    os << "</svg>\n";
    file->keep();
  }
  return success();
}
