//===- Json.h - A small strict JSON parser and writer helpers ---*- C++ -*-===//
//
// moe-run reads the module description (a JSON document compiled into every
// module) with this parser instead of a library, so the tool depends on
// nothing but the C++ standard library. It is strict RFC 8259: no comments,
// no trailing commas, no duplicate object keys, no control characters in
// strings, one value per document; \u escapes (with surrogate pairs) become
// UTF-8. Nesting is limited (kMaxDepth) so hostile input cannot overflow the
// stack. Errors name the line and column.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TOOLS_MOE_RUN_JSON_H
#define MOE_TOOLS_MOE_RUN_JSON_H

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moerun {

class JsonValue {
public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  /// For numbers written without fraction or exponent that fit in int64_t:
  /// the exact value (`number` may have rounded it).
  bool isInteger = false;
  int64_t integer = 0;
  std::string string;
  std::vector<JsonValue> array;
  /// In document order; keys are unique.
  std::vector<std::pair<std::string, JsonValue>> object;

  bool isNull() const { return kind == Kind::Null; }
  bool isBool() const { return kind == Kind::Bool; }
  bool isNumber() const { return kind == Kind::Number; }
  bool isString() const { return kind == Kind::String; }
  bool isArray() const { return kind == Kind::Array; }
  bool isObject() const { return kind == Kind::Object; }

  /// The member `key` of an object, or null when absent (or not an object).
  const JsonValue *get(std::string_view key) const;
};

/// "null", "a boolean", "a number", ... for messages.
const char *jsonKindName(JsonValue::Kind kind);

constexpr int kMaxJsonDepth = 256;

/// Parses one JSON document. On failure returns false and sets `error` to
/// "line L, column C: what".
bool parseJson(std::string_view text, JsonValue &out, std::string &error);

/// `s` as a JSON string literal (quotes included; control characters, '"'
/// and '\\' escaped; other bytes copied).
std::string jsonQuote(std::string_view s);

/// A finite double as a JSON number (shortest round-trip form); non-finite
/// values as null (JSON has no NaN/Inf).
std::string jsonNumber(double value);

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_JSON_H
