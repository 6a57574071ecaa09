//===- TestDescriptions.h - Module descriptions built in tests --*- C++ -*-===//
#ifndef MOE_UNITTESTS_MOERUN_TESTDESCRIPTIONS_H
#define MOE_UNITTESTS_MOERUN_TESTDESCRIPTIONS_H

#include "Description.h"

#include <stdexcept>
#include <string>
#include <vector>

namespace moerun_test {

/// Writes a description's JSON text piece by piece.
class DescriptionBuilder {
public:
  explicit DescriptionBuilder(std::string function = "test_moe",
                              std::string tokenCount = "null")
      : function(std::move(function)), tokenCount(std::move(tokenCount)) {}

  /// Returns the operand text {"arg": N}.
  std::string arg(const std::string &name, const std::string &role,
                  const std::string &dtype, const std::string &shape) {
    args.push_back("{\"name\": \"" + name + "\", \"role\": \"" + role +
                   "\", \"dtype\": \"" + dtype + "\", \"shape\": [" + shape +
                   "]}");
    return "{\"arg\": " + std::to_string(args.size() - 1) + "}";
  }
  std::string buffer(const std::string &dtype, const std::string &shape) {
    buffers.push_back("{\"dtype\": \"" + dtype + "\", \"shape\": [" + shape +
                      "]}");
    return "{\"buffer\": " + std::to_string(buffers.size() - 1) + "}";
  }
  void op(const std::string &name, const std::vector<std::string> &operands,
          const std::string &attrs = "{}") {
    std::string o = "{\"op\": \"" + name + "\", \"operands\": [";
    for (size_t i = 0; i < operands.size(); ++i)
      o += (i ? ", " : "") + operands[i];
    ops.push_back(o + "], \"attrs\": " + attrs + "}");
  }
  std::string json() const {
    std::string s = "{\"version\": 1, \"function\": \"" + function +
                    "\", \"token_count\": " + tokenCount + ", \"args\": [";
    for (size_t i = 0; i < args.size(); ++i)
      s += (i ? ", " : "") + args[i];
    s += "], \"buffers\": [";
    for (size_t i = 0; i < buffers.size(); ++i)
      s += (i ? ", " : "") + buffers[i];
    s += "], \"ops\": [";
    for (size_t i = 0; i < ops.size(); ++i)
      s += (i ? ", " : "") + ops[i];
    return s + "]}";
  }
  moerun::ModuleDescription parse() const {
    moerun::ModuleDescription d;
    std::string error;
    if (!moerun::parseDescription(json(), d, error))
      throw std::runtime_error(error);
    return d;
  }

private:
  std::string function, tokenCount;
  std::vector<std::string> args, buffers, ops;
};

} // namespace moerun_test

#endif
