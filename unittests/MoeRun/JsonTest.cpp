//===- JsonTest.cpp - moe-run's JSON parser -------------------------------===//

#include "Json.h"

#include "gtest/gtest.h"

#include <cmath>
#include <string>

using namespace moerun;

namespace {

JsonValue parseOk(const std::string &text) {
  JsonValue v;
  std::string error;
  EXPECT_TRUE(parseJson(text, v, error)) << text << ": " << error;
  return v;
}

std::string parseError(const std::string &text) {
  JsonValue v;
  std::string error;
  EXPECT_FALSE(parseJson(text, v, error)) << text;
  return error;
}

TEST(JsonTest, ParsesEveryKind) {
  JsonValue v = parseOk(R"( {"a": [1, -2.5, 3e2, true, false, null],
                             "b": {"c": "d"}, "e": []} )");
  ASSERT_TRUE(v.isObject());
  ASSERT_EQ(v.object.size(), 3u);
  const JsonValue *a = v.get("a");
  ASSERT_TRUE(a && a->isArray());
  ASSERT_EQ(a->array.size(), 6u);
  EXPECT_TRUE(a->array[0].isInteger);
  EXPECT_EQ(a->array[0].integer, 1);
  EXPECT_FALSE(a->array[1].isInteger);
  EXPECT_EQ(a->array[1].number, -2.5);
  EXPECT_FALSE(a->array[2].isInteger); // an exponent makes it a real number
  EXPECT_EQ(a->array[2].number, 300);
  EXPECT_TRUE(a->array[3].isBool() && a->array[3].boolean);
  EXPECT_TRUE(a->array[4].isBool() && !a->array[4].boolean);
  EXPECT_TRUE(a->array[5].isNull());
  EXPECT_EQ(v.get("b")->get("c")->string, "d");
  EXPECT_TRUE(v.get("e")->isArray());
  EXPECT_EQ(v.get("missing"), nullptr);
  EXPECT_EQ(a->get("x"), nullptr); // not an object
}

TEST(JsonTest, IntegersAreExact) {
  JsonValue v = parseOk("[9223372036854775807, -9223372036854775808, "
                        "9223372036854775808, -0, 123456789012345678]");
  EXPECT_TRUE(v.array[0].isInteger);
  EXPECT_EQ(v.array[0].integer, INT64_MAX);
  EXPECT_TRUE(v.array[1].isInteger);
  EXPECT_EQ(v.array[1].integer, INT64_MIN);
  EXPECT_FALSE(v.array[2].isInteger); // does not fit: a double
  EXPECT_EQ(v.array[2].number, 9223372036854775808.0);
  EXPECT_TRUE(v.array[3].isInteger);
  EXPECT_EQ(v.array[3].integer, 0);
  EXPECT_EQ(v.array[4].integer, 123456789012345678); // beyond 2^53
}

TEST(JsonTest, StringEscapes) {
  JsonValue v =
      parseOk(R"(["a\"b\\c\/d\b\f\n\r\t", "\u00e9\u20ac", "\ud83d\ude00"])");
  EXPECT_EQ(v.array[0].string, "a\"b\\c/d\b\f\n\r\t");
  EXPECT_EQ(v.array[1].string, "\xc3\xa9\xe2\x82\xac");
  EXPECT_EQ(v.array[2].string, "\xf0\x9f\x98\x80");
}

TEST(JsonTest, MalformedInputIsAClearError) {
  EXPECT_EQ(parseError(""), "line 1, column 1: unexpected end of input "
                            "(expected a value)");
  EXPECT_EQ(parseError("[1, 2,]"), "line 1, column 7: trailing comma in an "
                                   "array");
  EXPECT_EQ(parseError("{\"a\": 1,\n \"a\": 2}"),
            "line 2, column 2: duplicate key \"a\"");
  EXPECT_EQ(parseError("{\"a\" 1}"),
            "line 1, column 6: expected ':' after a key, got '1'");
  EXPECT_EQ(parseError("[01]"), "line 1, column 2: invalid number (leading "
                                "zero)");
  EXPECT_EQ(parseError("\"abc"), "line 1, column 1: unterminated string");
  EXPECT_EQ(parseError("[1] x"), "line 1, column 5: unexpected content after "
                                 "the JSON value");
  EXPECT_EQ(parseError("tru"), "line 1, column 1: invalid literal (expected "
                               "'true')");
  EXPECT_EQ(parseError("\"a\nb\""),
            "line 1, column 3: control character byte 0x0a in a string "
            "(escape it)");
  EXPECT_EQ(parseError("\"\\x\""), "line 1, column 2: invalid escape '\\x'");
  EXPECT_EQ(parseError("\"\\ud800\""),
            "line 1, column 2: unpaired high surrogate in a \\u escape");
  EXPECT_EQ(parseError("1e999"), "line 1, column 1: number 1e999 is out of "
                                 "range");
  EXPECT_EQ(parseError("{\"a\": [1, 2}"),
            "line 1, column 12: expected ',' or ']' in an array, got '}'");
  EXPECT_EQ(parseError("{1: 2}"),
            "line 1, column 2: expected a string key, got '1'");
  EXPECT_EQ(parseError("// comment\n1"),
            "line 1, column 1: unexpected '/' (expected a value)");
  EXPECT_NE(parseError(std::string(1000, '[')).find("nesting deeper than"),
            std::string::npos);
  std::string nested(kMaxJsonDepth, '[');
  nested += std::string(kMaxJsonDepth, ']');
  parseOk(nested);
}

TEST(JsonTest, Writers) {
  EXPECT_EQ(jsonQuote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(jsonNumber(0.1), "0.1");
  EXPECT_EQ(jsonNumber(2.5), "2.5");
  EXPECT_EQ(jsonNumber(1e-300), "1e-300");
  EXPECT_EQ(jsonNumber(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(jsonNumber(std::nan("")), "null");
  JsonValue v = parseOk(jsonQuote("x\ty\""));
  EXPECT_EQ(v.string, "x\ty\"");
}

} // namespace
