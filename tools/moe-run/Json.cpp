//===- Json.cpp - A small strict JSON parser and writer helpers -----------===//

#include "Json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

using namespace moerun;

const JsonValue *JsonValue::get(std::string_view key) const {
  if (kind != Kind::Object)
    return nullptr;
  for (const auto &member : object)
    if (member.first == key)
      return &member.second;
  return nullptr;
}

const char *moerun::jsonKindName(JsonValue::Kind kind) {
  switch (kind) {
  case JsonValue::Kind::Null:
    return "null";
  case JsonValue::Kind::Bool:
    return "a boolean";
  case JsonValue::Kind::Number:
    return "a number";
  case JsonValue::Kind::String:
    return "a string";
  case JsonValue::Kind::Array:
    return "an array";
  case JsonValue::Kind::Object:
    return "an object";
  }
  return "?";
}

namespace {

class Parser {
public:
  explicit Parser(std::string_view text) : text(text) {}

  bool parseDocument(JsonValue &out, std::string &error) {
    skipSpace();
    if (!parseValue(out, 0))
      return report(error);
    skipSpace();
    if (pos != text.size()) {
      fail("unexpected content after the JSON value");
      return report(error);
    }
    return true;
  }

private:
  std::string_view text;
  size_t pos = 0;
  std::string message;
  size_t errorPos = 0;

  bool report(std::string &error) {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < errorPos && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    error = "line " + std::to_string(line) + ", column " +
            std::to_string(column) + ": " + message;
    return false;
  }

  bool fail(const std::string &what) { return failAt(pos, what); }
  bool failAt(size_t at, const std::string &what) {
    if (message.empty()) {
      message = what;
      errorPos = at;
    }
    return false;
  }

  bool atEnd() const { return pos >= text.size(); }
  char peek() const { return atEnd() ? '\0' : text[pos]; }

  void skipSpace() {
    while (!atEnd() && (text[pos] == ' ' || text[pos] == '\t' ||
                        text[pos] == '\n' || text[pos] == '\r'))
      ++pos;
  }

  static std::string describeChar(char c) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f)
      return std::string("'") + c + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", u);
    return buf;
  }

  bool expectLiteral(const char *literal) {
    size_t start = pos;
    for (const char *p = literal; *p; ++p, ++pos)
      if (atEnd() || text[pos] != *p)
        return failAt(start, std::string("invalid literal (expected '") +
                                 literal + "')");
    return true;
  }

  bool parseValue(JsonValue &out, int depth) {
    if (depth > kMaxJsonDepth)
      return fail("nesting deeper than " + std::to_string(kMaxJsonDepth) +
                  " levels");
    if (atEnd())
      return fail("unexpected end of input (expected a value)");
    char c = peek();
    switch (c) {
    case '{':
      return parseObject(out, depth);
    case '[':
      return parseArray(out, depth);
    case '"':
      out.kind = JsonValue::Kind::String;
      return parseString(out.string);
    case 't':
      out.kind = JsonValue::Kind::Bool;
      out.boolean = true;
      return expectLiteral("true");
    case 'f':
      out.kind = JsonValue::Kind::Bool;
      out.boolean = false;
      return expectLiteral("false");
    case 'n':
      out.kind = JsonValue::Kind::Null;
      return expectLiteral("null");
    default:
      if (c == '-' || (c >= '0' && c <= '9'))
        return parseNumber(out);
      return fail("unexpected " + describeChar(c) + " (expected a value)");
    }
  }

  bool parseObject(JsonValue &out, int depth) {
    out.kind = JsonValue::Kind::Object;
    ++pos; // '{'
    skipSpace();
    if (peek() == '}') {
      ++pos;
      return true;
    }
    while (true) {
      skipSpace();
      if (peek() != '"')
        return atEnd()
                   ? fail("unexpected end of input in an object")
                   : fail("expected a string key, got " + describeChar(peek()));
      size_t keyPos = pos;
      std::string key;
      if (!parseString(key))
        return false;
      for (const auto &member : out.object)
        if (member.first == key)
          return failAt(keyPos, "duplicate key " + jsonQuote(key));
      skipSpace();
      if (peek() != ':')
        return atEnd() ? fail("unexpected end of input in an object")
                       : fail("expected ':' after a key, got " +
                              describeChar(peek()));
      ++pos;
      skipSpace();
      out.object.emplace_back(std::move(key), JsonValue());
      if (!parseValue(out.object.back().second, depth + 1))
        return false;
      skipSpace();
      if (peek() == ',') {
        ++pos;
        skipSpace();
        if (peek() == '}')
          return fail("trailing comma in an object");
        continue;
      }
      if (peek() == '}') {
        ++pos;
        return true;
      }
      return atEnd() ? fail("unexpected end of input in an object")
                     : fail("expected ',' or '}' in an object, got " +
                            describeChar(peek()));
    }
  }

  bool parseArray(JsonValue &out, int depth) {
    out.kind = JsonValue::Kind::Array;
    ++pos; // '['
    skipSpace();
    if (peek() == ']') {
      ++pos;
      return true;
    }
    while (true) {
      skipSpace();
      out.array.emplace_back();
      if (!parseValue(out.array.back(), depth + 1))
        return false;
      skipSpace();
      if (peek() == ',') {
        ++pos;
        skipSpace();
        if (peek() == ']')
          return fail("trailing comma in an array");
        continue;
      }
      if (peek() == ']') {
        ++pos;
        return true;
      }
      return atEnd() ? fail("unexpected end of input in an array")
                     : fail("expected ',' or ']' in an array, got " +
                            describeChar(peek()));
    }
  }

  static void appendUtf8(std::string &s, uint32_t cp) {
    if (cp < 0x80) {
      s += char(cp);
    } else if (cp < 0x800) {
      s += char(0xc0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      s += char(0xe0 | (cp >> 12));
      s += char(0x80 | ((cp >> 6) & 0x3f));
      s += char(0x80 | (cp & 0x3f));
    } else {
      s += char(0xf0 | (cp >> 18));
      s += char(0x80 | ((cp >> 12) & 0x3f));
      s += char(0x80 | ((cp >> 6) & 0x3f));
      s += char(0x80 | (cp & 0x3f));
    }
  }

  bool parseHex4(uint32_t &value) {
    value = 0;
    for (int i = 0; i < 4; ++i, ++pos) {
      if (atEnd())
        return fail("unexpected end of input in a \\u escape");
      char c = text[pos];
      value <<= 4;
      if (c >= '0' && c <= '9')
        value |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f')
        value |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        value |= uint32_t(c - 'A' + 10);
      else
        return fail("invalid hex digit " + describeChar(c) +
                    " in a \\u escape");
    }
    return true;
  }

  bool parseString(std::string &out) {
    size_t start = pos;
    ++pos; // '"'
    while (true) {
      if (atEnd())
        return failAt(start, "unterminated string");
      char c = text[pos];
      if (c == '"') {
        ++pos;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20)
        return fail("control character " + describeChar(c) +
                    " in a string (escape it)");
      if (c != '\\') {
        out += c;
        ++pos;
        continue;
      }
      ++pos;
      if (atEnd())
        return failAt(start, "unterminated string");
      char e = text[pos++];
      switch (e) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        size_t escapePos = pos - 2;
        uint32_t cp;
        if (!parseHex4(cp))
          return false;
        if (cp >= 0xdc00 && cp <= 0xdfff)
          return failAt(escapePos, "unpaired low surrogate in a \\u escape");
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (pos + 1 >= text.size() || text[pos] != '\\' ||
              text[pos + 1] != 'u')
            return failAt(escapePos, "unpaired high surrogate in a \\u escape");
          pos += 2;
          uint32_t low;
          if (!parseHex4(low))
            return false;
          if (low < 0xdc00 || low > 0xdfff)
            return failAt(escapePos, "unpaired high surrogate in a \\u escape");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        return failAt(pos - 2, "invalid escape '\\" + std::string(1, e) + "'");
      }
    }
  }

  bool parseNumber(JsonValue &out) {
    size_t start = pos;
    bool integral = true;
    if (peek() == '-')
      ++pos;
    if (peek() == '0') {
      ++pos;
      if (peek() >= '0' && peek() <= '9')
        return failAt(start, "invalid number (leading zero)");
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9')
        ++pos;
    } else {
      return failAt(start, "invalid number");
    }
    if (peek() == '.') {
      integral = false;
      ++pos;
      if (!(peek() >= '0' && peek() <= '9'))
        return failAt(start, "invalid number (no digit after '.')");
      while (peek() >= '0' && peek() <= '9')
        ++pos;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++pos;
      if (peek() == '+' || peek() == '-')
        ++pos;
      if (!(peek() >= '0' && peek() <= '9'))
        return failAt(start, "invalid number (no digit in the exponent)");
      while (peek() >= '0' && peek() <= '9')
        ++pos;
    }
    std::string literal(text.substr(start, pos - start));
    out.kind = JsonValue::Kind::Number;
    out.number = std::strtod(literal.c_str(), nullptr);
    if (!std::isfinite(out.number))
      return failAt(start, "number " + literal + " is out of range");
    if (integral) {
      // Exact int64 when it fits.
      bool negative = literal[0] == '-';
      uint64_t magnitude = 0;
      bool fits = true;
      for (size_t i = negative ? 1 : 0; i < literal.size(); ++i) {
        uint64_t digit = uint64_t(literal[i] - '0');
        if (magnitude > (UINT64_MAX - digit) / 10) {
          fits = false;
          break;
        }
        magnitude = magnitude * 10 + digit;
      }
      uint64_t limit = negative ? uint64_t(INT64_MAX) + 1 : uint64_t(INT64_MAX);
      if (fits && magnitude <= limit) {
        out.isInteger = true;
        out.integer = negative ? int64_t(0 - magnitude) : int64_t(magnitude);
      }
    }
    return true;
  }
};

} // namespace

bool moerun::parseJson(std::string_view text, JsonValue &out,
                       std::string &error) {
  out = JsonValue();
  Parser parser(text);
  return parser.parseDocument(out, error);
}

std::string moerun::jsonQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
        out += buf;
      } else {
        out += c;
      }
    }
  }
  return out + "\"";
}

std::string moerun::jsonNumber(double value) {
  if (!std::isfinite(value))
    return "null";
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value)
      break;
  }
  return buf;
}
