//===- LinearSize.h - Byte counts linear in the token count -----*- C++ -*-===//
//
// Buffer and workspace sizes of a MoE layer are linear in the token count T,
// which is often only known at run time (`memref<?x7168xbf16>`). A LinearSize
// is `perToken * T + constant` bytes; sums stay exact, and comparisons are
// made at a stated token count (see compareAt) rather than by pretending that
// an unknown size is zero.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_SUPPORT_LINEARSIZE_H
#define MOE_SUPPORT_LINEARSIZE_H

#include "llvm/Support/raw_ostream.h"
#include <cstdint>
#include <climits>
#include <string>

namespace mlir {
namespace moe {

struct LinearSize {
  int64_t perToken = 0;
  int64_t constant = 0;

  constexpr LinearSize() = default;
  constexpr LinearSize(int64_t perToken, int64_t constant)
      : perToken(perToken), constant(constant) {}
  static constexpr LinearSize bytes(int64_t n) { return LinearSize(0, n); }

  bool isConstant() const { return perToken == 0; }
  /// Byte counts saturate instead of overflowing: absurd shapes (say, a
  /// static dimension of 2^62) stay ordered and never wrap around.
  static int64_t saturatingAdd(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
      return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
  }
  static int64_t saturatingMul(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
      return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
    return r;
  }

  int64_t evaluate(int64_t tokens) const {
    return saturatingAdd(saturatingMul(perToken, tokens), constant);
  }

  LinearSize &operator+=(const LinearSize &o) {
    perToken = saturatingAdd(perToken, o.perToken);
    constant = saturatingAdd(constant, o.constant);
    return *this;
  }
  LinearSize &operator-=(const LinearSize &o) {
    perToken = saturatingAdd(perToken, o.perToken == INT64_MIN ? INT64_MAX : -o.perToken);
    constant = saturatingAdd(constant, o.constant == INT64_MIN ? INT64_MAX : -o.constant);
    return *this;
  }
  friend LinearSize operator+(LinearSize a, const LinearSize &b) { return a += b; }
  friend LinearSize operator-(LinearSize a, const LinearSize &b) { return a -= b; }
  friend bool operator==(const LinearSize &a, const LinearSize &b) {
    return a.perToken == b.perToken && a.constant == b.constant;
  }
  friend bool operator!=(const LinearSize &a, const LinearSize &b) { return !(a == b); }

  /// Orders by the value at `tokens`, then by the slope, so that two sizes
  /// that agree at the hint are told apart by which grows faster.
  static int compareAt(const LinearSize &a, const LinearSize &b, int64_t tokens) {
    int64_t va = a.evaluate(tokens), vb = b.evaluate(tokens);
    if (va != vb)
      return va < vb ? -1 : 1;
    if (a.perToken != b.perToken)
      return a.perToken < b.perToken ? -1 : 1;
    return 0;
  }

  /// "1024*T + 256", "4096" or "2*T".
  std::string str() const {
    std::string s;
    llvm::raw_string_ostream os(s);
    print(os);
    return s;
  }
  void print(llvm::raw_ostream &os) const {
    if (perToken == 0) {
      os << constant;
      return;
    }
    os << perToken << "*T";
    if (constant > 0)
      os << " + " << constant;
    else if (constant < 0)
      os << " - " << (constant == INT64_MIN ? INT64_MAX : -constant);
  }
};

inline llvm::raw_ostream &operator<<(llvm::raw_ostream &os, const LinearSize &s) {
  s.print(os);
  return os;
}

} // namespace moe
} // namespace mlir

#endif // MOE_SUPPORT_LINEARSIZE_H
