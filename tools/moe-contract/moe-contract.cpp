//===- moe-contract.cpp - The op contract for tools in other languages ----===//
//
//   moe-contract            the op contract as JSON (ops, operands, shapes,
//                           attributes, aliasing, runtime entry points)
//   moe-contract --query    reads one JSON request per line on stdin and
//                           answers each on stdout, with the contract's own
//                           checks and workspace formulas:
//     {"op": "moe.topk", "sizes": {"T": 4, "E": 8, "K": 2},
//      "dtype": "bf16", "attrs": {"scoring": "sigmoid", "k": 2},
//      "absent": ["bias"]}
//     -> {"ok": true, "workspace": [per_token, constant]}
//     or {"ok": false, "error": "k = 9 exceeds the number of experts (8)"}
//
// No MLIR: the differential tester (scripts/difftest.py) asks it which
// programs are legal and how large each op's workspace is, so that it
// derives both from the contract instead of restating them.
//
//===----------------------------------------------------------------------===//
#include "Json.h"

#include "moe-runtime/OpContract.h"

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

using namespace moerun;
namespace contract = moert::contract;

namespace {

std::string answer(const std::string &line) {
  JsonValue request;
  std::string error;
  if (!parseJson(line, request, error) || !request.isObject())
    return "{\"ok\": false, \"error\": " +
           jsonQuote("not a JSON object: " + error) + "}";
  auto fail = [](const std::string &message) {
    return "{\"ok\": false, \"error\": " + jsonQuote(message) + "}";
  };
  const JsonValue *name = request.get("op");
  const contract::OpSpec *op =
      name && name->isString() ? contract::findOp(name->string) : nullptr;
  if (!op)
    return fail("unknown op");
  contract::Sizes sizes = contract::unknownSizes();
  if (const JsonValue *given = request.get("sizes"))
    for (int s = 0; s < contract::kNumSyms; ++s)
      if (const JsonValue *v = given->get(contract::symName(contract::Sym(s))))
        if (v->isNumber() && v->isInteger)
          sizes[size_t(s)] = v->integer;
  // Symbols the op does not take stay 0 for the checks.
  std::vector<bool> used(contract::kNumSyms, false);
  for (const contract::AbiArg &arg : op->abi)
    if (arg.kind == contract::AbiArg::Size)
      used[size_t(arg.sym)] = true;
  for (int s = 0; s < contract::kNumSyms; ++s)
    if (!used[size_t(s)] && sizes[size_t(s)] < 0)
      sizes[size_t(s)] = 0;
  std::optional<contract::DType> dtype = contract::DType::F32;
  if (const JsonValue *d = request.get("dtype"))
    dtype = d->isString() ? contract::parseDType(d->string) : std::nullopt;
  if (!dtype)
    return fail("unknown dtype");
  // Expert weights: "weight_dtype" (default: "dtype"); their block scales
  // are present exactly for f8e4m3 unless "absent" says otherwise.
  std::optional<contract::DType> weightDtype = dtype;
  if (const JsonValue *d = request.get("weight_dtype"))
    weightDtype = d->isString() ? contract::parseDType(d->string) : std::nullopt;
  if (!weightDtype)
    return fail("unknown weight_dtype");
  std::vector<int32_t> codes(op->operands.size(), int32_t(*dtype));
  std::vector<bool> present(op->operands.size(), true);
  for (size_t i = 0; i < op->operands.size(); ++i) {
    const contract::OperandSpec &o = op->operands[i];
    if (o.element != contract::Element::Weight)
      continue;
    codes[i] = int32_t(*weightDtype);
    if (o.scales >= 0)
      present[size_t(o.scales)] = *weightDtype == contract::DType::F8E4M3;
  }
  if (const JsonValue *absent = request.get("absent"))
    for (const JsonValue &a : absent->array)
      if (int i = op->operandIndex(a.string); i >= 0)
        present[size_t(i)] = false;
  std::vector<contract::AttrValue> attrs(op->attrs.size());
  const JsonValue *given = request.get("attrs");
  for (size_t a = 0; given && a < op->attrs.size(); ++a) {
    const contract::AttrSpec &spec = op->attrs[a];
    const JsonValue *v = given->get(spec.name);
    if (!v || v->isNull())
      continue;
    contract::AttrValue &value = attrs[a];
    value.present = true;
    if (spec.kind == contract::AttrKind::Unit) {
      value.present = v->isBool() && v->boolean;
    } else if (spec.kind == contract::AttrKind::Enum) {
      value.i = -1;
      for (int c = 0; c < spec.numCases; ++c)
        if (v->isString() && v->string == spec.cases[c])
          value.i = c;
    } else if (v->isNumber()) {
      value.i = v->integer;
      value.f = v->number;
    }
  }
  std::string rule = contract::checkCall(*op, sizes, codes, present, attrs);
  if (!rule.empty())
    return fail(rule);
  std::string out = "{\"ok\": true";
  if (op->workspace) {
    contract::Linear w =
        op->workspace(sizes, contract::callTypes(*op, codes, present));
    out += ", \"workspace\": [" + std::to_string(w.perToken) + ", " +
           std::to_string(w.constant) + "]";
  }
  return out + "}";
}

} // namespace

int main(int argc, char **argv) {
  if (argc == 1 || (argc == 2 && std::strcmp(argv[1], "--json") == 0)) {
    std::fputs(contract::toJson().c_str(), stdout);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "--query") == 0) {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty())
        continue;
      std::cout << answer(line) << std::endl;
    }
    return 0;
  }
  std::fprintf(stderr, "usage: moe-contract [--json | --query]\n"
                       "  --json   print the op contract as JSON (default)\n"
                       "  --query  answer one JSON request per stdin line "
                       "(docs/adding-an-op.md)\n");
  return argc == 2 && (std::strcmp(argv[1], "--help") == 0 ||
                       std::strcmp(argv[1], "-h") == 0)
             ? 0
             : 2;
}
