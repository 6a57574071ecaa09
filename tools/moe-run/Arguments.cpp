//===- Arguments.cpp - What data each argument of a layer gets ------------===//
#include "Arguments.h"

#include "moe-runtime/OpContract.h"

#include <algorithm>
#include <cmath>

using namespace moerun;
namespace contract = moert::contract;

std::vector<int64_t> moerun::fp8ScalesOf(const ModuleDescription &d) {
  std::vector<int64_t> owner(d.args.size(), -1);
  for (const OpDesc &op : d.ops) {
    const contract::OpSpec *spec = contract::findOp(op.name);
    if (!spec)
      continue;
    std::vector<int> slot =
        contract::presentOperands(*spec, op.operands.size());
    for (size_t i = 0; i < slot.size(); ++i) {
      int scales = spec->operands[i].scales;
      if (scales < 0 || slot[i] < 0 || slot[size_t(scales)] < 0)
        continue;
      const Operand &weight = op.operands[size_t(slot[i])];
      const Operand &scale = op.operands[size_t(slot[size_t(scales)])];
      if (weight.isArg && scale.isArg && owner[size_t(scale.index)] < 0 &&
          scale.index != weight.index)
        owner[size_t(scale.index)] = weight.index;
    }
  }
  return owner;
}

namespace {

/// The distribution of an argument by its own role, dtype and shape.
Distribution byType(const TensorDesc &t) {
  Distribution d;
  if (t.role == Role::Output) {
    d.kind = Distribution::Kind::Poison;
    return d;
  }
  if (t.dtype == DType::I32) {
    d.kind = Distribution::Kind::Zero;
    return d;
  }
  d.kind = Distribution::Kind::Normal;
  if (t.role == Role::Input) {
    d.stddev = 1;
  } else if (t.shape.size() >= 2) {
    int64_t fanIn = std::max<int64_t>(t.shape.back(), 1);
    d.stddev = 1.0 / std::sqrt(double(fanIn));
  } else {
    d.stddev = 0.05; // the correction bias: small
  }
  // An fp8 weight matrix: block-quantized from the would-be weight.
  if (t.dtype == DType::F8E4M3 && t.shape.size() >= 2) {
    d.kind = Distribution::Kind::Fp8Weight;
    d.rows = std::max<int64_t>(t.shape[t.shape.size() - 2], 0);
    d.cols = std::max<int64_t>(t.shape.back(), 0);
    d.block = contract::kFp8Block;
  }
  return d;
}

} // namespace

int64_t moerun::groupSizeOf(const std::vector<TypedOp> &ops,
                            std::string &error) {
  int64_t size = 1;
  bool seen = false;
  for (const TypedOp &op : ops) {
    if (op.kind != OpKind::AllReduce)
      continue;
    if (seen && op.groupSize != size) {
      error = "the program's collectives have group sizes " +
              std::to_string(size) + " and " + std::to_string(op.groupSize);
      return -1;
    }
    size = op.groupSize;
    seen = true;
  }
  return size;
}

namespace {
/// The tensor-parallel split of the expert weights' arguments: the
/// dimension (of the argument's shape) and its segments, by operand.
struct Split {
  int dim = -1;
  int64_t segments = 1;
};

std::vector<Split> tensorParallelSplits(const ModuleDescription &d,
                                        const std::vector<TypedOp> &ops) {
  std::vector<Split> split(d.args.size());
  auto mark = [&](const TypedOp &op, int operand, bool rows) {
    if (operand < 0)
      return;
    const Operand &o = op.operands[size_t(operand)];
    if (!o.isArg)
      return;
    int rank = int(d.args[size_t(o.index)].shape.size());
    // w13 (and its scales): the rows, gate and up; w2: the columns.
    split[size_t(o.index)] = rows ? Split{rank - 2, 2} : Split{rank - 1, 1};
  };
  for (const TypedOp &op : ops)
    if (op.kind == OpKind::RoutedExperts || op.kind == OpKind::SharedExperts) {
      mark(op, op.w13, true);
      mark(op, op.w13Scale, true);
      mark(op, op.w2, false);
      mark(op, op.w2Scale, false);
    }
  return split;
}
} // namespace

std::vector<ArgumentData>
moerun::argumentData(const ModuleDescription &d,
                     const std::vector<TypedOp> *ops, int64_t rank,
                     int64_t tp) {
  std::vector<ArgumentData> out(d.args.size());
  std::vector<int64_t> scalesOf = fp8ScalesOf(d);
  std::vector<Split> split(d.args.size());
  if (ops && tp > 1)
    split = tensorParallelSplits(d, *ops);
  // The whole tensor of argument a, and where this rank's shard lies in it.
  auto whole = [&](size_t a) {
    TensorDesc t = d.args[a];
    if (split[a].dim >= 0 && t.shape[size_t(split[a].dim)] >= 0)
      t.shape[size_t(split[a].dim)] *= tp;
    return t;
  };
  for (size_t a = 0; a < d.args.size(); ++a) {
    if (split[a].dim >= 0) {
      ShardMap &s = out[a].shard;
      s.shape = d.args[a].shape;
      s.dim = split[a].dim;
      s.segments = split[a].segments;
      s.parts = tp;
      s.index = rank;
    }
  }
  for (size_t a = 0; a < d.args.size(); ++a) {
    const TensorDesc t = whole(a);
    ArgumentData &data = out[a];
    data.stream = t.name;
    data.dist = byType(t);
    if (t.role == Role::Output)
      continue;
    // The block scales of an fp8 weight: from the weight's would-be values,
    // on its stream.
    if (int64_t w = scalesOf[a]; w >= 0) {
      const TensorDesc weight = whole(size_t(w));
      Distribution wd = byType(weight);
      if (wd.kind == Distribution::Kind::Fp8Weight) {
        data.dist = wd;
        data.dist.kind = Distribution::Kind::Fp8Scale;
        data.stream = weight.name;
        continue;
      }
    }
    // By use: routing tables given as arguments.
    if (ops)
      for (const TypedOp &op : *ops) {
        if (op.kind != OpKind::RoutedExperts)
          continue;
        if (op.operands[1].isArg && size_t(op.operands[1].index) == a) {
          data.dist = Distribution();
          data.dist.kind = Distribution::Kind::DistinctIds;
          data.dist.rowLength = op.K;
          data.dist.idRange = op.E;
          break;
        }
        if (op.operands[2].isArg && size_t(op.operands[2].index) == a) {
          data.dist = Distribution();
          data.dist.kind = Distribution::Kind::Uniform;
          data.dist.low = 0;
          data.dist.high = 1;
          break;
        }
      }
  }
  return out;
}
