//===- Ops.cpp - The C entry points of the moe ops ------------------------===//
//
// Each moert_<op> function gathers its arguments into a Call and validates it
// against the op contract (moe-runtime/OpContract.h): sizes, element types,
// attributes and the op's rules, then every buffer (non-null unless empty,
// aligned to its elements, its size within int64), the aliasing the contract
// allows between outputs and inputs, and the workspace. Only then does the
// backend run. Messages start with the function's name.
//
//===----------------------------------------------------------------------===//
#include "Internal.h"

#include "moe-runtime/OpContract.h"

#include <cstring>
#include <string_view>

using namespace moert;
namespace contract = moert::contract;

namespace {

/// One call of an op's runtime function, by the contract's operand order.
struct Call {
  explicit Call(const char *opName)
      : op(*contract::findOp(opName)), pointers(op.operands.size(), nullptr),
        dtypeCodes(op.operands.size(), -1), present(op.operands.size(), true),
        attrs(op.attrs.size()) {}

  const contract::OpSpec &op;
  std::vector<const void *> pointers;
  std::vector<int32_t> dtypeCodes;
  std::vector<bool> present;
  contract::Sizes sizes = contract::unknownSizes();
  std::vector<contract::AttrValue> attrs;
  void *workspace = nullptr;
  /// Filled by validate: bytes of each operand and of the workspace.
  std::vector<int64_t> bytes;
  int64_t workspaceBytes = 0;

  void size(contract::Sym sym, int64_t value) { sizes[size_t(sym)] = value; }
  void attr(const char *name, int64_t i, double f = 0) {
    contract::AttrValue &value = attrs[size_t(op.attrIndex(name))];
    value.present = true;
    value.i = i;
    value.f = f;
  }
  template <typename Enum> void dtype(int operand, const Enum &code) {
    dtypeCodes[size_t(operand)] = rawValue(code);
  }
  bool hasWorkspace() const {
    for (const contract::AbiArg &arg : op.abi)
      if (arg.kind == contract::AbiArg::Workspace)
        return true;
    return false;
  }
};

/// Validates `call` (ArgChecker keeps the first violation).
void validate(Call &call, ArgChecker &check) {
  const contract::OpSpec &op = call.op;
  std::string rule =
      contract::checkCall(op, call.sizes, call.dtypeCodes, call.present,
                          call.attrs);
  check.require(rule.empty(), rule);
  if (!check.ok())
    return;
  call.bytes.assign(op.operands.size(), 0);
  for (size_t i = 0; i < op.operands.size(); ++i) {
    const contract::OperandSpec &spec = op.operands[i];
    int64_t elementBytes = contract::dtypeBytes(
        *contract::operandDType(op, int(i), call.dtypeCodes));
    int64_t elements = 0;
    if (!spec.optional || call.present[i]) {
      check.require(contract::elementCount(spec, call.sizes, elements),
                    "the size of ", spec.name, " overflows int64");
      if (!check.ok())
        return;
    }
    // An absent optional operand is NULL: only its alignment matters.
    check.buffer(spec.name, call.pointers[i], elements, elementBytes);
    call.bytes[i] = elements * elementBytes;
  }
  if (call.hasWorkspace())
    check.workspace(call.workspace);
  if (!check.ok())
    return;
  for (const contract::AliasRule &rule : op.aliases) {
    const char *out = op.operands[size_t(rule.output)].name;
    const char *in = op.operands[size_t(rule.input)].name;
    const void *o = call.pointers[size_t(rule.output)];
    const void *i = call.pointers[size_t(rule.input)];
    int64_t bytes = call.bytes[size_t(rule.output)];
    // Every kind allows the same buffer at run time (Alias::Distinct is a
    // rule of the IR), none a partial overlap.
    check.noPartialOverlap(out, o, in, i, bytes);
  }
  if (!check.ok() || !op.workspace)
    return;
  call.workspaceBytes = contract::workspaceBytes(
      op, call.sizes,
      contract::callTypes(op, call.dtypeCodes, call.present));
  check.require(call.workspaceBytes >= 0,
                "the size of the workspace overflows int64");
}

/// MOERT_TEST_FAULT (moe_runtime.h), CPU backend (host pointers): what a
/// miscompile or a broken kernel would do to `call`. `phase` 0 is before the
/// op (its inputs as it will read them), 1 after it (its outputs).
bool skipsLaunch(const moert_context &ctx, const Call &call) {
  return ctx.testFault == "skip-shared" &&
         std::string_view(call.op.name) == "moe.shared_experts";
}

/// Scales (by 1.25) or overwrites (with 12288 in bf16 / 12345 in f32) rows
/// [first, T) of a token-major [T, H] operand.
void corruptRows(const Call &call, size_t operand, int64_t first,
                 bool overwrite) {
  contract::DType dtype =
      *contract::operandDType(call.op, int(operand), call.dtypeCodes);
  int64_t T = call.sizes[size_t(contract::Sym::T)];
  int64_t H = call.sizes[size_t(contract::Sym::H)];
  void *p = const_cast<void *>(call.pointers[operand]);
  for (int64_t e = first * H; e < T * H; ++e) {
    if (dtype == contract::DType::F32) {
      float &v = static_cast<float *>(p)[e];
      v = overwrite ? 12345.0f : v * 1.25f;
    } else if (overwrite) {
      static_cast<uint16_t *>(p)[e] = 0x4640; // 12288 in bf16, 6.25 in f16
    } else if (dtype == contract::DType::BF16) {
      uint16_t &bits = static_cast<uint16_t *>(p)[e];
      uint32_t f = uint32_t(bits) << 16;
      float v;
      std::memcpy(&v, &f, 4);
      v *= 1.25f;
      std::memcpy(&f, &v, 4);
      bits = uint16_t(f >> 16);
    }
  }
}

void injectFault(const moert_context &ctx, const Call &call, int phase) {
  std::string_view op = call.op.name;
  const std::string &fault = ctx.testFault;
  int64_t T = call.sizes[size_t(contract::Sym::T)];
  if (fault.empty() || T <= 0)
    return;
  if (phase == 1 && fault == "swap-expert" && op == "moe.topk") {
    // The first token's first expert id is the next expert's.
    auto *ids = static_cast<int32_t *>(const_cast<void *>(call.pointers[2]));
    ids[0] = int32_t((ids[0] + 1) % call.sizes[size_t(contract::Sym::E)]);
  } else if (phase == 1 && fault == "routed-scale" &&
             op == "moe.routed_experts") {
    // Every routed output 1.25x: a wrong routed scaling factor.
    corruptRows(call, call.pointers.size() - 1, 0, /*overwrite=*/false);
  } else if (phase == 0 && fault == "stale-buffer" && op == "moe.add") {
    // The last token's row of the add's first input holds other bytes than
    // its writer left: the buffer was reused while still live.
    corruptRows(call, 0, T - 1, /*overwrite=*/true);
  }
}

/// The frame of an op: `fill` gathers the call's arguments, then
/// validation, the workspace, and `launch(ctx, call, workspace, error)`,
/// between the observer's two calls.
template <typename Fill, typename Launch>
moert_status runContractOp(const char *fn, const char *opName, Fill fill,
                           Launch launch) {
  return runOp(fn, [&](moert_context &ctx) -> moert_status {
    Call call(opName);
    fill(call);
    ArgChecker check(fn);
    validate(call, check);
    if (!check.ok())
      return invalid(ctx, check);
    auto observe = [&](int32_t phase) {
      if (ctx.observer)
        ctx.observer(ctx.observerUser, opName, phase, call.pointers.data(),
                     call.bytes.data(), int32_t(call.pointers.size()));
    };
    injectFault(ctx, call, 0);
    observe(0);
    moert_status status = MOERT_SUCCESS;
    if (ctx.comm && call.op.name == std::string_view("moe.routed_experts") &&
        failOnRank(ctx.testFault) == ctx.comm->impl->rank()) {
      // MOERT_TEST_FAULT fail-on-rank:R: this rank fails (and so its group).
      return fail(&ctx, MOERT_ERROR_INTERNAL,
                  cat(fn, ": injected failure on rank ",
                      ctx.comm->impl->rank(), " (MOERT_TEST_FAULT)"));
    } else if (skipsLaunch(ctx, call)) {
      // MOERT_TEST_FAULT: the op does not run.
    } else if (!call.op.workspace) {
      std::string error;
      status = launch(ctx, call, nullptr, error);
      if (status != MOERT_SUCCESS)
        return fail(&ctx, status, error);
    } else {
      status = withWorkspace(ctx, fn, call.workspace, call.workspaceBytes,
                             [&](void *ws, std::string &error) {
                               return launch(ctx, call, ws, error);
                             });
      if (status != MOERT_SUCCESS)
        return status;
    }
    injectFault(ctx, call, 1);
    observe(1);
    return status;
  });
}

/// The workspace-size functions: the contract's checks on the sizes and the
/// element type, then its formula.
template <typename Fill>
int64_t workspaceQuery(const char *fn, const char *opName, Fill fill) {
  return guarded<int64_t>(nullptr, fn, -1, [&]() -> int64_t {
    Call call(opName);
    fill(call);
    ArgChecker check(fn);
    // The sizes the op's entry point takes; the others are unused (0).
    std::vector<bool> taken(contract::kNumSyms, false);
    for (const contract::AbiArg &arg : call.op.abi)
      if (arg.kind == contract::AbiArg::Size)
        taken[size_t(arg.sym)] = true;
    for (int s = 0; s < contract::kNumSyms; ++s) {
      if (taken[size_t(s)])
        check.nonNegative(contract::symName(contract::Sym(s)),
                          call.sizes[size_t(s)]);
      else
        call.sizes[size_t(s)] = 0;
    }
    // The dtypes the function takes, as an op call would check them.
    for (const contract::AbiArg &arg : call.op.abi) {
      if (arg.kind != contract::AbiArg::DTypeOf || !check.ok())
        continue;
      int32_t code = call.dtypeCodes[size_t(arg.index)];
      check.require(contract::isDType(code) &&
                        contract::accepts(call.op.operands[size_t(arg.index)].element,
                                          contract::DType(code)),
                    arg.name, " must be a dtype ",
                    call.op.operands[size_t(arg.index)].name,
                    " takes, got ", code);
    }
    int64_t bytes = -1;
    if (check.ok()) {
      bytes = contract::workspaceBytes(
          call.op, call.sizes,
          contract::callTypes(call.op, call.dtypeCodes, call.present));
      check.require(bytes >= 0, "the size of the workspace overflows int64");
    }
    if (!check.ok()) {
      fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT, check.error());
      return -1;
    }
    return bytes;
  });
}

} // namespace

using contract::Sym;

extern "C" {

moert_status moert_gate(const void *hidden, moert_dtype hidden_dtype,
                        const void *gate_weight, moert_dtype weight_dtype,
                        float *logits, int64_t T, int64_t H, int64_t E) {
  return runContractOp(
      "moert_gate", "moe.gate",
      [&](Call &call) {
        call.pointers = {hidden, gate_weight, logits};
        call.dtype(0, hidden_dtype);
        call.dtype(1, weight_dtype);
        call.size(Sym::T, T);
        call.size(Sym::H, H);
        call.size(Sym::E, E);
      },
      [&](moert_context &ctx, Call &, void *, std::string &error) {
        GateArgs args{hidden, hidden_dtype, gate_weight, weight_dtype,
                      logits, T,            H,           E};
        return ctx.backend->gate(args, error);
      });
}

moert_status moert_topk(const float *logits, const float *bias,
                        int32_t *topk_ids, float *topk_weights, int64_t T,
                        int64_t E, int64_t K, moert_scoring scoring,
                        int64_t n_group, int64_t topk_group,
                        int32_t renormalize, float routed_scaling_factor) {
  return runContractOp(
      "moert_topk", "moe.topk",
      [&](Call &call) {
        call.pointers = {logits, bias, topk_ids, topk_weights};
        call.present[1] = bias != nullptr;
        call.size(Sym::T, T);
        call.size(Sym::E, E);
        call.size(Sym::K, K);
        call.attr("scoring", rawValue(scoring));
        call.attr("k", K);
        call.attr("n_group", n_group);
        call.attr("topk_group", topk_group);
        if (renormalize)
          call.attr("renormalize", 1);
        call.attr("routed_scaling_factor", 0, routed_scaling_factor);
      },
      [&](moert_context &ctx, Call &, void *, std::string &error) {
        TopKArgs args{logits,   bias,         topk_ids,         topk_weights,
                      T,        E,            K,                scoring,
                      n_group,  topk_group,   renormalize != 0, routed_scaling_factor};
        return ctx.backend->topk(args, error);
      });
}

moert_status moert_routed_experts(const void *hidden, const int32_t *topk_ids,
                                  const float *topk_weights, const void *w13,
                                  const void *w2, const float *w13_scale,
                                  const float *w2_scale, void *output,
                                  void *workspace, moert_dtype dtype,
                                  moert_dtype weight_dtype, int64_t T,
                                  int64_t H, int64_t E, int64_t K, int64_t I) {
  return runContractOp(
      "moert_routed_experts", "moe.routed_experts",
      [&](Call &call) {
        call.pointers = {hidden, topk_ids,  topk_weights, w13,
                         w2,     w13_scale, w2_scale,     output};
        call.present[5] = w13_scale != nullptr;
        call.present[6] = w2_scale != nullptr;
        call.workspace = workspace;
        call.dtype(0, dtype);
        call.dtype(3, weight_dtype);
        call.sizes = {T, H, E, K, I};
      },
      [&](moert_context &ctx, Call &call, void *ws, std::string &error) {
        RoutedExpertsArgs args{hidden,
                               topk_ids,
                               topk_weights,
                               {w13, w2, w13_scale, w2_scale, weight_dtype},
                               output,
                               ws,
                               call.workspaceBytes,
                               dtype,
                               T,
                               H,
                               E,
                               K,
                               I};
        return ctx.backend->routedExperts(args, error);
      });
}

moert_status moert_shared_experts(const void *hidden, const void *w13,
                                  const void *w2, const float *w13_scale,
                                  const float *w2_scale, void *output,
                                  void *workspace, moert_dtype dtype,
                                  moert_dtype weight_dtype, int64_t T,
                                  int64_t H, int64_t I) {
  return runContractOp(
      "moert_shared_experts", "moe.shared_experts",
      [&](Call &call) {
        call.pointers = {hidden, w13, w2, w13_scale, w2_scale, output};
        call.present[3] = w13_scale != nullptr;
        call.present[4] = w2_scale != nullptr;
        call.workspace = workspace;
        call.dtype(0, dtype);
        call.dtype(1, weight_dtype);
        call.size(Sym::T, T);
        call.size(Sym::H, H);
        call.size(Sym::I, I);
      },
      [&](moert_context &ctx, Call &call, void *ws, std::string &error) {
        SharedExpertsArgs args{hidden,
                               {w13, w2, w13_scale, w2_scale, weight_dtype},
                               output,
                               ws,
                               call.workspaceBytes,
                               dtype,
                               T,
                               H,
                               I};
        return ctx.backend->sharedExperts(args, error);
      });
}

moert_status moert_add(const void *lhs, const void *rhs, void *output,
                       moert_dtype dtype, int64_t T, int64_t H, float scale) {
  return runContractOp(
      "moert_add", "moe.add",
      [&](Call &call) {
        call.pointers = {lhs, rhs, output};
        call.dtype(0, dtype);
        call.size(Sym::T, T);
        call.size(Sym::H, H);
        call.attr("scale", 0, scale);
      },
      [&](moert_context &ctx, Call &, void *, std::string &error) {
        AddArgs args{lhs, rhs, output, dtype, T, H, scale};
        return ctx.backend->add(args, error);
      });
}

moert_status moert_all_reduce(const void *input, void *output,
                              moert_dtype dtype, int64_t T, int64_t H,
                              int64_t group_size) {
  return runContractOp(
      "moert_all_reduce", "moe.all_reduce",
      [&](Call &call) {
        call.pointers = {input, output};
        call.dtype(0, dtype);
        call.size(Sym::T, T);
        call.size(Sym::H, H);
        call.attr("group_size", group_size);
      },
      [&](moert_context &ctx, Call &call, void *,
          std::string &error) -> moert_status {
        int64_t ranks = ctx.comm ? ctx.comm->impl->size() : 1;
        if (group_size != ranks) {
          error = cat("moert_all_reduce: the program was compiled for a "
                      "group of ",
                      group_size, " ranks, but ",
                      ctx.comm ? cat("the context's communicator has ", ranks)
                               : std::string("the context has no "
                                             "communicator (a group of 1; "
                                             "moert_context_set_comm)"));
          return MOERT_ERROR_INVALID_ARGUMENT;
        }
        if (!ctx.comm) {
          // A group of one: the sum is the input.
          if (output == input || call.bytes[0] == 0)
            return MOERT_SUCCESS;
          return ctx.backend->copy(output, input, call.bytes[0],
                                   CopyDirection::DeviceToDevice, error);
        }
        return ctx.comm->impl->allReduce(
            *ctx.backend, CollectiveCall{"moe.all_reduce", dtype, T, H}, input,
            output, error);
      });
}

int64_t moert_routed_experts_workspace_bytes(int64_t T, int64_t H, int64_t E,
                                             int64_t K, int64_t I,
                                             moert_dtype dtype,
                                             moert_dtype weight_dtype) {
  return workspaceQuery("moert_routed_experts_workspace_bytes",
                        "moe.routed_experts", [&](Call &call) {
                          call.sizes = {T, H, E, K, I};
                          call.dtype(0, dtype);
                          call.dtype(3, weight_dtype);
                        });
}

int64_t moert_shared_experts_workspace_bytes(int64_t T, int64_t H, int64_t I,
                                             moert_dtype dtype,
                                             moert_dtype weight_dtype) {
  return workspaceQuery("moert_shared_experts_workspace_bytes",
                        "moe.shared_experts", [&](Call &call) {
                          call.sizes = {T, H, 0, 0, I};
                          call.dtype(0, dtype);
                          call.dtype(1, weight_dtype);
                        });
}

} // extern "C"
