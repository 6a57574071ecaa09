//===- PeakMemoryScheduler.cpp - Orders of least peak memory --------------===//
//
// The block is first cut into segments at forced cut points: positions of the
// input order where every node before must precede every node after in all
// legal orders (the nodes before have a single maximal node m, and every
// source of the rest depends on m). A chain of MoE layers cuts after each
// layer's combine. Segments are independent: the buffers live across a cut do
// not depend on the order inside either segment, so the block's least peak is
// the largest of the segments' least peaks, and each segment is searched on
// its own (exactly when its state count allows, heuristically otherwise).
//
//===----------------------------------------------------------------------===//
#include "moe/Analysis/PeakMemoryScheduler.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/Hashing.h"
#include "llvm/Support/Debug.h"

#include <deque>
#include <queue>
#include <unordered_map>

#define DEBUG_TYPE "moe-schedule-peak-memory"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// A cost that may be "more than the bound" (infinite).
struct Cost {
  bool infinite = true;
  LinearSize value;
  static Cost of(LinearSize v) { return Cost{false, v}; }
};

struct BitsHash {
  size_t operator()(const std::vector<uint64_t> &bits) const {
    return llvm::hash_combine_range(bits.begin(), bits.end());
  }
};

/// Mutable execution state of the whole block: which buffers have started,
/// how many users each still has, and the live bytes. Applying a node and
/// undoing it are exact inverses, so searches can walk orders without copies.
class ExecutionState {
public:
  explicit ExecutionState(const BlockMemoryModel &model) : model(model) {
    for (const BlockMemoryModel::Buffer &b : model.getBuffers())
      remaining.push_back(b.users.size());
    started.assign(model.getBuffers().size(), false);
  }

  /// Transient bytes while `node` runs from the current state.
  LinearSize during(unsigned node) const {
    const BlockMemoryModel::Node &n = model.getNodes()[node];
    LinearSize bytes = live + n.workspace;
    for (unsigned b : n.buffers)
      if (!started[b])
        bytes += model.getBuffers()[b].size;
    return bytes;
  }

  /// Bytes that stay allocated after `node` minus those before it.
  LinearSize growth(unsigned node) const {
    LinearSize delta;
    for (unsigned b : model.getNodes()[node].buffers) {
      const BlockMemoryModel::Buffer &buffer = model.getBuffers()[b];
      bool allocates = !started[b];
      bool frees = remaining[b] == 1 && buffer.dealloc;
      if (allocates && !frees)
        delta += buffer.size;
      else if (!allocates && frees)
        delta -= buffer.size;
    }
    return delta;
  }

  void apply(unsigned node) {
    startedMarks.push_back(startedLog.size());
    for (unsigned b : model.getNodes()[node].buffers) {
      const BlockMemoryModel::Buffer &buffer = model.getBuffers()[b];
      if (!started[b]) {
        started[b] = true;
        live += buffer.size;
        startedLog.push_back(b);
      }
      if (--remaining[b] == 0 && buffer.dealloc)
        live -= buffer.size;
    }
  }

  void undo(unsigned node) {
    for (unsigned b : model.getNodes()[node].buffers) {
      const BlockMemoryModel::Buffer &buffer = model.getBuffers()[b];
      if (remaining[b]++ == 0 && buffer.dealloc)
        live += buffer.size;
    }
    size_t mark = startedMarks.pop_back_val();
    while (startedLog.size() > mark) {
      unsigned b = startedLog.pop_back_val();
      started[b] = false;
      live -= model.getBuffers()[b].size;
    }
  }

  /// Peak of running `order` from the current state (the state is unchanged
  /// afterwards).
  LinearSize peakOf(ArrayRef<unsigned> order) {
    LinearSize peak;
    bool first = true;
    for (unsigned node : order) {
      LinearSize d = during(node);
      if (first || model.less(peak, d))
        peak = d;
      first = false;
      apply(node);
    }
    for (unsigned node : llvm::reverse(order))
      undo(node);
    return peak;
  }

  bool isStarted(unsigned b) const { return started[b]; }
  unsigned remainingUsers(unsigned b) const { return remaining[b]; }

private:
  const BlockMemoryModel &model;
  SmallVector<unsigned> remaining;
  std::vector<bool> started;
  LinearSize live;
  SmallVector<unsigned> startedLog;
  SmallVector<size_t> startedMarks;
};

/// Splits [0, n) into segments at forced cut points of the input order.
SmallVector<std::pair<unsigned, unsigned>>
findSegments(const BlockMemoryModel &model) {
  unsigned n = model.getNumNodes();
  SmallVector<std::pair<unsigned, unsigned>> segments;
  if (n == 0)
    return segments;
  ArrayRef<BlockMemoryModel::Node> nodes = model.getNodes();
  // blocked[p]: how many nodes at index >= p have no predecessor at p-1 or
  // later, i.e. would not depend on node p-1 directly (difference array over
  // p in [maxPred+2, w]).
  SmallVector<int> blocked(n + 2, 0);
  for (const BlockMemoryModel::Node &node : nodes) {
    int maxPred = node.preds.empty() ? -1 : (int)node.preds.back();
    int from = maxPred + 2, to = node.index;
    if (from <= to) {
      blocked[from] += 1;
      blocked[to + 1] -= 1;
    }
  }
  // maximal[p]: number of nodes in [0, p) without a successor in [0, p).
  unsigned maximal = 0;
  SmallVector<bool> hasSuccInPrefix(n, false);
  int running = 0;
  unsigned begin = 0;
  for (unsigned p = 1; p <= n; ++p) {
    const BlockMemoryModel::Node &added = nodes[p - 1];
    ++maximal;
    for (unsigned pred : added.preds)
      if (!hasSuccInPrefix[pred]) {
        hasSuccInPrefix[pred] = true;
        --maximal;
      }
    running += blocked[p];
    if (p < n && maximal == 1 && running == 0) {
      segments.emplace_back(begin, p);
      begin = p;
    }
  }
  segments.emplace_back(begin, n);
  return segments;
}

class SegmentScheduler {
public:
  SegmentScheduler(const BlockMemoryModel &model, ExecutionState &state,
                   unsigned begin, unsigned end,
                   const PeakMemorySchedulerOptions &options,
                   int64_t &statesLeft)
      : model(model), state(state), begin(begin), end(end), options(options),
        statesLeft(statesLeft) {}

  /// The input order of the segment.
  SmallVector<unsigned> inputOrder() const {
    return llvm::to_vector(llvm::seq<unsigned>(begin, end));
  }

  /// The whole portfolio runs on segments of at most this many nodes.
  static constexpr unsigned kPortfolioNodes = 4096;

  /// Heuristic orders; returns the best (ties: the earliest tried). Without
  /// `portfolio`, the linear heuristics and the improvement of the best (the
  /// bound of the exact search); with it, all of them, each improved.
  std::pair<SmallVector<unsigned>, std::string>
  bestHeuristic(LinearSize &peak, bool portfolio) {
    SmallVector<unsigned> best = inputOrder();
    std::string method = "input";
    peak = state.peakOf(best);
    auto consider = [&](SmallVector<unsigned> order, StringRef name) {
      LinearSize p = state.peakOf(order);
      if (model.less(p, peak)) {
        peak = p;
        best = std::move(order);
        method = name.str();
      }
    };
    // The standard heuristics (PyTorch Inductor's memory-aware reordering
    // has the last three of the full portfolio), each then improved
    // locally; the best wins. Least peak memory first scans the ready nodes
    // at every step, quadratic on wide segments, and improving every start
    // divides the budget: segments beyond kPortfolioNodes keep the linear
    // heuristics and improve the best of them only.
    bool full = portfolio && end - begin <= kPortfolioNodes;
    SmallVector<std::pair<SmallVector<unsigned>, StringRef>> starts;
    starts.push_back({greedyOrder(), "greedy"});
    if (full)
      starts.push_back({leastPeakFirstOrder(), "lpmf"});
    starts.push_back({depthFirstOrder(), "dfs"});
    if (full)
      starts.push_back({depthFirstBySizeOrder(), "dfs-size"});
    starts.push_back({breadthFirstOrder(), "bfs"});
    for (auto &[order, name] : starts)
      consider(order, name);
    if (!full) {
      if (improve(best, peak, options.improvementBudget))
        method = "improved";
      return {best, method};
    }
    // Local improvement from the input and from every start, the budget
    // shared among them.
    starts.insert(starts.begin(), {inputOrder(), "input"});
    int64_t each = options.improvementBudget / int64_t(starts.size());
    for (auto &[order, name] : starts) {
      LinearSize p = state.peakOf(order);
      if (improve(order, p, each) && model.less(p, peak)) {
        peak = p;
        best = order;
        method = "improved";
      }
    }
    return {best, method};
  }

  /// Exact least peak; fails (returns false) when the state budget runs out.
  /// `bound` prunes: states whose every continuation exceeds it are infinite.
  bool solveExact(LinearSize bound, LinearSize &optimum) {
    unsigned len = end - begin;
    words = (len + 63) / 64;
    done.assign(words, 0);
    indegree.assign(len, 0);
    for (unsigned i = begin; i < end; ++i)
      for (unsigned pred : model.getNodes()[i].preds)
        if (pred >= begin)
          ++indegree[i - begin];
    for (unsigned i = 0; i < len; ++i)
      if (indegree[i] == 0)
        ready.push_back(i);
    this->bound = bound;
    Cost c = solve();
    if (aborted)
      return false;
    if (c.infinite)
      return false; // Cannot happen: the bound is an achievable peak.
    optimum = c.value;
    return true;
  }

  /// After solveExact: the legal order of peak <= threshold that follows the
  /// input order as far as possible (lexicographically least by input index).
  bool reconstruct(LinearSize threshold, SmallVector<unsigned> &order) {
    unsigned len = end - begin;
    SmallVector<unsigned> applied;
    for (unsigned step = 0; step < len; ++step) {
      SmallVector<unsigned> candidates(ready.begin(), ready.end());
      llvm::sort(candidates);
      bool found = false;
      for (unsigned local : candidates) {
        LinearSize d = state.during(begin + local);
        if (model.less(threshold, d))
          continue;
        applyLocal(local);
        Cost rest = solve();
        if (aborted)
          return false;
        if (!rest.infinite && !model.less(threshold, rest.value)) {
          applied.push_back(local);
          order.push_back(begin + local);
          found = true;
          break;
        }
        undoLocal(local);
      }
      if (!found)
        return false; // Cannot happen when threshold >= the optimum.
    }
    for (unsigned local : llvm::reverse(applied))
      undoLocal(local);
    return true;
  }

  int64_t explored() const { return memo.size(); }

private:
  void applyLocal(unsigned local) {
    done[local / 64] |= uint64_t(1) << (local % 64);
    llvm::erase(ready, local);
    for (unsigned succ : model.getNodes()[begin + local].succs) {
      if (succ >= end)
        continue;
      if (--indegree[succ - begin] == 0)
        ready.push_back(succ - begin);
    }
    state.apply(begin + local);
  }
  void undoLocal(unsigned local) {
    state.undo(begin + local);
    for (unsigned succ : model.getNodes()[begin + local].succs) {
      if (succ >= end)
        continue;
      if (indegree[succ - begin]++ == 0)
        llvm::erase(ready, succ - begin);
    }
    ready.push_back(local);
    done[local / 64] &= ~(uint64_t(1) << (local % 64));
  }

  Cost solve() {
    if (ready.empty())
      return Cost::of(LinearSize());
    auto it = memo.find(done);
    if (it != memo.end())
      return it->second;
    if (aborted || --statesLeft < 0) {
      aborted = true;
      return Cost();
    }
    SmallVector<std::pair<LinearSize, unsigned>, 8> candidates;
    for (unsigned local : ready)
      candidates.emplace_back(state.during(begin + local), local);
    llvm::sort(candidates, [&](const auto &a, const auto &b) {
      int c = model.compare(a.first, b.first);
      return c != 0 ? c < 0 : a.second < b.second;
    });
    Cost best;
    for (auto [d, local] : candidates) {
      if (model.less(bound, d))
        break; // This and every later candidate exceed the bound.
      if (!best.infinite && !model.less(d, best.value))
        break; // Cannot beat the best continuation found.
      applyLocal(local);
      Cost rest = solve();
      undoLocal(local);
      if (aborted)
        return Cost();
      if (rest.infinite)
        continue;
      LinearSize c = model.max(d, rest.value);
      if (best.infinite || model.less(c, best.value))
        best = Cost::of(c);
    }
    memo.emplace(done, best);
    return best;
  }

  SmallVector<unsigned> greedyOrder() {
    // Least growth first (bytes that stay allocated), then least transient
    // bytes while running, then input order. Keys only improve as other
    // nodes run, so a node is re-queued whenever one of its buffers starts or
    // gets down to its last user.
    unsigned len = end - begin;
    SmallVector<unsigned> indeg(len, 0), version(len, 0);
    for (unsigned i = begin; i < end; ++i)
      for (unsigned pred : model.getNodes()[i].preds)
        if (pred >= begin)
          ++indeg[i - begin];
    struct Entry {
      int64_t growth, growthSlope, during, duringSlope;
      unsigned local, version;
      bool operator>(const Entry &o) const {
        return std::tie(growth, growthSlope, during, duringSlope, local) >
               std::tie(o.growth, o.growthSlope, o.during, o.duringSlope, o.local);
      }
    };
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
    int64_t hint = model.getTokenHint();
    auto push = [&](unsigned local) {
      LinearSize g = state.growth(begin + local);
      LinearSize d = state.during(begin + local);
      queue.push(Entry{g.evaluate(hint), g.perToken, d.evaluate(hint),
                       d.perToken, local, ++version[local]});
    };
    SmallVector<bool> isReady(len, false), isDone(len, false);
    for (unsigned i = 0; i < len; ++i)
      if (indeg[i] == 0) {
        isReady[i] = true;
        push(i);
      }
    SmallVector<unsigned> order;
    while (!queue.empty()) {
      Entry top = queue.top();
      queue.pop();
      if (isDone[top.local] || top.version != version[top.local])
        continue;
      unsigned node = begin + top.local;
      isDone[top.local] = true;
      order.push_back(node);
      SmallVector<unsigned, 8> changed;
      for (unsigned b : model.getNodes()[node].buffers) {
        bool wasStarted = state.isStarted(b);
        unsigned before = state.remainingUsers(b);
        (void)before;
        if (!wasStarted || before == 2)
          changed.push_back(b);
      }
      state.apply(node);
      for (unsigned b : changed)
        for (unsigned user : model.getBuffers()[b].users)
          if (user >= begin && user < end && isReady[user - begin] &&
              !isDone[user - begin])
            push(user - begin);
      for (unsigned succ : model.getNodes()[node].succs)
        if (succ < end && --indeg[succ - begin] == 0) {
          isReady[succ - begin] = true;
          push(succ - begin);
        }
    }
    for (unsigned node : llvm::reverse(order))
      state.undo(node);
    return order;
  }

  /// Least peak memory first: the ready node whose run gives the least
  /// running peak, then the least growth, then the input order.
  SmallVector<unsigned> leastPeakFirstOrder() {
    unsigned len = end - begin;
    SmallVector<unsigned> indeg(len, 0), ready, order;
    for (unsigned i = begin; i < end; ++i)
      for (unsigned pred : model.getNodes()[i].preds)
        if (pred >= begin)
          ++indeg[i - begin];
    for (unsigned i = 0; i < len; ++i)
      if (indeg[i] == 0)
        ready.push_back(i);
    LinearSize peak;
    bool first = true;
    while (!ready.empty()) {
      size_t pick = 0;
      LinearSize pickPeak, pickGrowth;
      for (size_t r = 0; r < ready.size(); ++r) {
        unsigned node = begin + ready[r];
        LinearSize d = state.during(node);
        LinearSize runPeak = first ? d : model.max(peak, d);
        LinearSize g = state.growth(node);
        int byPeak = r ? model.compare(runPeak, pickPeak) : -1;
        if (byPeak < 0 || (byPeak == 0 && (model.less(g, pickGrowth) ||
                                           (!model.less(pickGrowth, g) &&
                                            ready[r] < ready[pick])))) {
          pick = r;
          pickPeak = runPeak;
          pickGrowth = g;
        }
      }
      unsigned local = ready[pick];
      ready.erase(ready.begin() + pick);
      unsigned node = begin + local;
      peak = pickPeak;
      first = false;
      order.push_back(node);
      state.apply(node);
      for (unsigned succ : model.getNodes()[node].succs)
        if (succ < end && --indeg[succ - begin] == 0)
          ready.push_back(succ - begin);
    }
    for (unsigned node : llvm::reverse(order))
      state.undo(node);
    return order;
  }

  /// Depth first in post-order from the nodes of the smallest footprint,
  /// predecessors smallest first.
  SmallVector<unsigned> depthFirstBySizeOrder() {
    unsigned len = end - begin;
    SmallVector<int64_t> footprint(len, 0);
    int64_t hint = model.getTokenHint();
    for (unsigned i = 0; i < len; ++i) {
      const BlockMemoryModel::Node &n = model.getNodes()[begin + i];
      LinearSize bytes = n.workspace;
      for (unsigned b : n.buffers)
        bytes += model.getBuffers()[b].size;
      footprint[i] = bytes.evaluate(hint);
    }
    auto bySize = [&](SmallVector<unsigned> locals) {
      llvm::stable_sort(locals, [&](unsigned a, unsigned b) {
        return footprint[a] < footprint[b];
      });
      return locals;
    };
    SmallVector<bool> visited(len, false);
    SmallVector<unsigned> order;
    // Iterative post-order: (node, next predecessor to visit).
    SmallVector<std::pair<unsigned, SmallVector<unsigned>>> stack;
    auto push = [&](unsigned local) {
      visited[local] = true;
      SmallVector<unsigned> preds;
      for (unsigned pred : model.getNodes()[begin + local].preds)
        if (pred >= begin && !visited[pred - begin])
          preds.push_back(pred - begin);
      SmallVector<unsigned> sorted = bySize(preds);
      std::reverse(sorted.begin(), sorted.end());
      stack.push_back({local, sorted});
    };
    for (unsigned root : bySize(llvm::to_vector(llvm::seq<unsigned>(0, len)))) {
      if (visited[root])
        continue;
      push(root);
      while (!stack.empty()) {
        auto &[local, pending] = stack.back();
        while (!pending.empty() && visited[pending.back()])
          pending.pop_back();
        if (pending.empty()) {
          order.push_back(begin + local);
          stack.pop_back();
          continue;
        }
        unsigned next = pending.pop_back_val();
        push(next);
      }
    }
    return order;
  }

  SmallVector<unsigned> depthFirstOrder() {
    unsigned len = end - begin;
    SmallVector<unsigned> indeg(len, 0), stack, order;
    for (unsigned i = begin; i < end; ++i)
      for (unsigned pred : model.getNodes()[i].preds)
        if (pred >= begin)
          ++indeg[i - begin];
    for (unsigned i = len; i-- > 0;)
      if (indeg[i] == 0)
        stack.push_back(i);
    while (!stack.empty()) {
      unsigned local = stack.pop_back_val();
      order.push_back(begin + local);
      ArrayRef<unsigned> succs = model.getNodes()[begin + local].succs;
      for (unsigned succ : llvm::reverse(succs))
        if (succ < end && --indeg[succ - begin] == 0)
          stack.push_back(succ - begin);
    }
    return order;
  }

  SmallVector<unsigned> breadthFirstOrder() {
    unsigned len = end - begin;
    SmallVector<unsigned> indeg(len, 0), order;
    std::deque<unsigned> queue;
    for (unsigned i = begin; i < end; ++i)
      for (unsigned pred : model.getNodes()[i].preds)
        if (pred >= begin)
          ++indeg[i - begin];
    for (unsigned i = 0; i < len; ++i)
      if (indeg[i] == 0)
        queue.push_back(i);
    while (!queue.empty()) {
      unsigned local = queue.front();
      queue.pop_front();
      order.push_back(begin + local);
      for (unsigned succ : model.getNodes()[begin + local].succs)
        if (succ < end && --indeg[succ - begin] == 0)
          queue.push_back(succ - begin);
    }
    return order;
  }

  /// Local improvement: move single nodes near the peak step to other legal
  /// positions while that lowers the peak, within the budget of simulated
  /// steps. Returns true if the order changed.
  bool improve(SmallVector<unsigned> &order, LinearSize &peak,
               int64_t budget) {
    unsigned len = order.size();
    if (len < 2 || budget <= 0)
      return false;
    bool changed = false;
    constexpr unsigned kWindow = 32;
    while (budget > 0) {
      // Locate the peak step.
      unsigned peakPos = 0;
      {
        LinearSize best;
        bool first = true;
        for (unsigned pos = 0; pos < len; ++pos) {
          LinearSize d = state.during(order[pos]);
          if (first || model.less(best, d)) {
            best = d;
            peakPos = pos;
          }
          first = false;
          state.apply(order[pos]);
        }
        for (unsigned node : llvm::reverse(order))
          state.undo(node);
        budget -= len;
      }
      SmallVector<unsigned> position(len);
      for (unsigned pos = 0; pos < len; ++pos)
        position[order[pos] - begin] = pos;
      bool improved = false;
      unsigned lo = peakPos > kWindow ? peakPos - kWindow : 0;
      unsigned hi = std::min(len - 1, peakPos + kWindow);
      for (unsigned from = lo; from <= hi && !improved && budget > 0; ++from) {
        unsigned node = order[from];
        // Legal window of the node.
        unsigned minPos = 0, maxPos = len - 1;
        for (unsigned pred : model.getNodes()[node].preds)
          if (pred >= begin)
            minPos = std::max(minPos, position[pred - begin] + 1);
        for (unsigned succ : model.getNodes()[node].succs)
          if (succ < end)
            maxPos = std::min(maxPos, position[succ - begin] - 1);
        // Moves across the peak step only.
        // Legal targets: [from, maxPos] later, [minPos, from] earlier (in
        // the order without the node). Try next to the peak and the ends.
        for (unsigned to : {peakPos, minPos, maxPos}) {
          to = std::clamp(to, minPos, maxPos);
          if (to == from)
            continue;
          SmallVector<unsigned> candidate(order);
          candidate.erase(candidate.begin() + from);
          candidate.insert(candidate.begin() + to, node);
          LinearSize p = state.peakOf(candidate);
          budget -= len;
          if (model.less(p, peak)) {
            order = std::move(candidate);
            peak = p;
            improved = changed = true;
            break;
          }
        }
      }
      if (!improved)
        break;
    }
    return changed;
  }

  const BlockMemoryModel &model;
  ExecutionState &state;
  unsigned begin, end;
  const PeakMemorySchedulerOptions &options;
  int64_t &statesLeft;

  // Exact search.
  unsigned words = 0;
  std::vector<uint64_t> done;
  SmallVector<unsigned> indegree;
  SmallVector<unsigned> ready;
  std::unordered_map<std::vector<uint64_t>, Cost, BitsHash> memo;
  LinearSize bound;
  bool aborted = false;
};

} // namespace

PeakMemorySchedule
mlir::moe::schedulePeakMemory(const BlockMemoryModel &model,
                              const PeakMemorySchedulerOptions &options) {
  PeakMemorySchedule result;
  SmallVector<unsigned> input = model.getInputOrder();
  result.inputPeak = model.peakOf(input);
  result.peak = result.inputPeak;
  result.order = input;
  result.method = "input";
  if (model.getNumNodes() < 2) {
    result.optimal = true;
    return result;
  }

  ExecutionState state(model);
  int64_t statesLeft = options.stateBudget;
  struct SegmentResult {
    SmallVector<unsigned> order;
    LinearSize peak;
    bool exact = false;
    std::string method;
  };
  SmallVector<std::pair<unsigned, unsigned>> segments = findSegments(model);
  SmallVector<SegmentResult> results;
  SmallVector<std::unique_ptr<SegmentScheduler>> schedulers;
  LinearSize optimum;
  bool allExact = true;
  // Pass 1: each segment's least peak (exact when possible), from the state
  // that the segments before it leave.
  for (auto [begin, end] : segments) {
    auto scheduler = std::make_unique<SegmentScheduler>(
        model, state, begin, end, options, statesLeft);
    SegmentResult seg;
    LinearSize heuristicPeak;
    auto [order, method] =
        scheduler->bestHeuristic(heuristicPeak, /*portfolio=*/false);
    seg.order = std::move(order);
    seg.peak = heuristicPeak;
    seg.method = method;
    // Exact search only pays while the state space can be small: a segment
    // of many nodes has at least as many states.
    if (statesLeft > 0 && (int64_t)(end - begin) <= options.maxExactNodes) {
      LinearSize exact;
      if (scheduler->solveExact(heuristicPeak, exact)) {
        seg.peak = exact;
        seg.exact = true;
      }
    }
    // Not solved exactly: the whole portfolio, where it applies.
    if (!seg.exact && end - begin <= SegmentScheduler::kPortfolioNodes) {
      LinearSize portfolioPeak;
      auto [better, how] =
          scheduler->bestHeuristic(portfolioPeak, /*portfolio=*/true);
      if (model.less(portfolioPeak, seg.peak)) {
        seg.order = std::move(better);
        seg.peak = heuristicPeak = portfolioPeak;
        seg.method = how;
      }
    }
    allExact &= seg.exact;
    LLVM_DEBUG(llvm::dbgs() << "segment [" << begin << ", " << end << "): "
                            << seg.method << " peak " << heuristicPeak
                            << (seg.exact ? ", exact " : ", not exact ")
                            << seg.peak << ", " << statesLeft
                            << " states left\n");
    optimum = segments.size() == 1 || results.empty()
                  ? seg.peak
                  : model.max(optimum, seg.peak);
    for (unsigned i = begin; i < end; ++i)
      state.apply(i);
    results.push_back(std::move(seg));
    schedulers.push_back(std::move(scheduler));
  }
  for (unsigned i = model.getNumNodes(); i-- > 0;)
    state.undo(i);

  // Pass 2: in each segment, the order of peak <= the block's optimum that
  // follows the input order as far as possible.
  statesLeft = options.stateBudget;
  SmallVector<unsigned> order;
  std::string method;
  for (auto [index, seg] : llvm::enumerate(results)) {
    SmallVector<unsigned> segInput = schedulers[index]->inputOrder();
    SmallVector<unsigned> segOrder;
    if (!model.less(optimum, state.peakOf(segInput)))
      segOrder = segInput;
    else if (!seg.exact || !schedulers[index]->reconstruct(optimum, segOrder))
      segOrder = seg.order;
    if (segOrder != segInput && method.empty())
      method = seg.exact ? "exact" : seg.method;
    order.append(segOrder.begin(), segOrder.end());
    for (unsigned node : segOrder)
      state.apply(node);
    result.statesExplored += schedulers[index]->explored();
  }
  for (unsigned node : llvm::reverse(order))
    state.undo(node);

  result.optimal = allExact;
  LinearSize peak = model.peakOf(order);
  LLVM_DEBUG(llvm::dbgs() << model.getNumNodes() << " nodes, "
                          << segments.size() << " segments: input peak "
                          << result.inputPeak << ", scheduled peak " << peak
                          << " (" << (method.empty() ? "input" : method)
                          << (allExact ? ", optimal" : "") << ")\n");
  // Never worse than the input; equal peaks keep the input.
  if (model.less(peak, result.inputPeak) && model.isLegalOrder(order)) {
    result.order = std::move(order);
    result.peak = peak;
    result.method = method;
  }
  return result;
}
