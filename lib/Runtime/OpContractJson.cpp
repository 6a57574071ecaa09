//===- OpContractJson.cpp - The op contract as JSON -----------------------===//
//
// toJson (OpContract.h): the table for tools in other languages (the
// differential tester reads it from `moe-contract`).
//
//===----------------------------------------------------------------------===//
#include "moe-runtime/OpContract.h"

#include <sstream>

using namespace moert::contract;

namespace {
/// Formats a float attribute as the IR prints small values (-1, 2.5, inf).
std::string number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
} // namespace


std::string moert::contract::toJson() {
  std::ostringstream os;
  auto str = [&](const char *s) { os << '"' << s << '"'; };
  os << "{\"dtypes\": [";
  for (int i = 0; i < kNumDTypes; ++i)
    os << (i ? ", " : "") << "{\"name\": \"" << dtypeName(DType(i))
       << "\", \"code\": " << i << ", \"bytes\": " << dtypeBytes(DType(i))
       << "}";
  os << "],\n \"symbols\": [";
  for (int i = 0; i < kNumSyms; ++i)
    os << (i ? ", " : "") << "{\"name\": \"" << symName(Sym(i))
       << "\", \"meaning\": \"" << symMeaning(Sym(i)) << "\"}";
  os << "],\n \"ops\": [";
  bool firstOp = true;
  for (const OpSpec &op : allOps()) {
    os << (firstOp ? "" : ",") << "\n  {\"name\": ";
    firstOp = false;
    str(op.name);
    os << ", \"function\": ";
    str(op.function);
    os << ",\n   \"operands\": [";
    for (size_t i = 0; i < op.operands.size(); ++i) {
      const OperandSpec &o = op.operands[i];
      os << (i ? ", " : "") << "{\"name\": \"" << o.name
         << "\", \"summary\": \"" << o.summary << "\", \"role\": \""
         << (o.role == Role::Input ? "input" : "output")
         << "\", \"element\": \""
         << (o.element == Element::Float    ? "float"
             : o.element == Element::F32    ? "f32"
             : o.element == Element::Weight ? "weight"
                                            : "i32")
         << "\", \"same_dtype_as\": " << o.sameDTypeAs
         << ", \"scales\": " << o.scales
         << ", \"optional\": " << (o.optional ? "true" : "false")
         << ", \"shape\": [";
      for (int d = 0; d < o.rank; ++d) {
        const Dim &dim = o.dims[size_t(d)];
        os << (d ? ", " : "") << "[\"" << symName(dim.sym) << "\", "
           << dim.factor;
        if (dim.block != 1)
          os << ", " << dim.block;
        os << "]";
      }
      os << "]}";
    }
    os << "],\n   \"attributes\": [";
    for (size_t i = 0; i < op.attrs.size(); ++i) {
      const AttrSpec &a = op.attrs[i];
      static const char *const kinds[] = {"int", "float", "unit", "enum"};
      os << (i ? ", " : "") << "{\"name\": \"" << a.name << "\", \"kind\": \""
         << kinds[size_t(a.kind)] << "\", \"min\": " << a.min
         << ", \"positive\": " << (a.positive ? "true" : "false");
      if (a.hasDefault && a.kind != AttrKind::Unit)
        os << ", \"default\": " << number(a.defaultValue);
      if (a.kind == AttrKind::Enum) {
        os << ", \"cases\": [";
        for (int c = 0; c < a.numCases; ++c)
          os << (c ? ", " : "") << '"' << a.cases[c] << '"';
        os << "]";
      }
      if (a.sizeOf)
        os << ", \"size_of\": \"" << symName(*a.sizeOf) << "\"";
      os << "}";
    }
    os << "],\n   \"aliases\": [";
    for (size_t i = 0; i < op.aliases.size(); ++i) {
      const AliasRule &r = op.aliases[i];
      static const char *const kinds[] = {"may_equal", "in_place_iff",
                                          "distinct"};
      os << (i ? ", " : "") << "{\"output\": " << r.output
         << ", \"input\": " << r.input << ", \"kind\": \""
         << kinds[size_t(r.kind)] << "\"";
      if (r.attr >= 0)
        os << ", \"attribute\": \"" << op.attrs[size_t(r.attr)].name << "\"";
      os << "}";
    }
    os << "],\n   \"workspace\": " << (op.workspace ? "true" : "false")
       << ", \"collective\": " << (op.collective ? "true" : "false") << "}";
  }
  os << "\n ]\n}\n";
  return os.str();
}
