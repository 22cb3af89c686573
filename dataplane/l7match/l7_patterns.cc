// The translation of policy values into Hyperscan expressions and flags, one condition at a time, and
// Hyperscan's analysis of an expression without compiling it.
#include "dataplane/l7match/l7_patterns.h"

#include <hs/hs.h>

#include <cstdlib>
#include <iterator>

namespace vgate::dataplane {

namespace {

// Whole-string end: `$` would also match before a trailing newline, which would let "host\n" pass as "host".
constexpr std::string_view kEnd = "\\z";

// Every pattern reports a rule once per scan.
constexpr unsigned int kBaseFlags = HS_FLAG_SINGLEMATCH;

struct ConditionTraits {
  const char* name;
  unsigned int flags;  // beyond kBaseFlags
  std::string (*translate)(std::string_view);
};

bool isPlain(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// Everything but ASCII letters and digits goes in as \xHH: no metacharacter, NUL or UTF-8 byte can leak.
void appendEscaped(std::string& out, char c) {
  if (isPlain(c)) {
    out.push_back(c);
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  auto byte = static_cast<unsigned char>(c);
  out += "\\x";
  out.push_back(kHex[byte >> 4]);
  out.push_back(kHex[byte & 15]);
}

std::string globPattern(std::string_view glob, std::string_view star, std::string_view question) {
  std::string out = "^";
  for (char c : glob) {
    if (c == '*') {
      out += star;
    } else if (c == '?') {
      out += question;
    } else {
      appendEscaped(out, c);
    }
  }
  out += kEnd;
  return out;
}

std::string sniRegexPattern(std::string_view regex) {
  std::string out = "^(?:";
  out += regex;
  out += ")";
  out += kEnd;
  return out;
}

std::string asIs(std::string_view regex) { return std::string(regex); }

// Whether `regex` has balanced groups, so that wrapping it as ^(?:regex)\z cannot be escaped: "a)|(b" alone
// is invalid, but wrapped it would parse as an unanchored alternative. Skips escapes, \Q..\E and classes.
bool groupsBalanced(std::string_view regex) {
  int depth = 0;
  size_t i = 0;
  while (i < regex.size()) {
    char c = regex[i];
    if (c == '\\') {
      if (i + 1 < regex.size() && regex[i + 1] == 'Q') {
        size_t end = regex.find("\\E", i + 2);
        i = end == std::string_view::npos ? regex.size() : end + 2;
      } else {
        i += 2;
      }
      continue;
    }
    if (c == '[') {
      // A class: a leading ']' (after an optional '^') is literal; "[:name:]" inside is a POSIX class.
      ++i;
      if (i < regex.size() && regex[i] == '^') ++i;
      if (i < regex.size() && regex[i] == ']') ++i;
      while (i < regex.size() && regex[i] != ']') {
        if (regex[i] == '\\') {
          i += 2;
        } else if (regex[i] == '[' && i + 1 < regex.size() && regex[i + 1] == ':') {
          size_t end = regex.find(":]", i + 2);
          i = end == std::string_view::npos ? regex.size() : end + 2;
        } else {
          ++i;
        }
      }
      ++i;
      continue;
    }
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0) return false;
    ++i;
  }
  return depth == 0;
}

// Indexed by L7Condition. Host-like names and DNs compare caseless; ALPN ids, methods and paths are
// case-sensitive bytes; a payload regex may span lines.
constexpr ConditionTraits kConditions[] = {
    {"tls.sni", HS_FLAG_CASELESS, l7HostPattern},
    {"tls.sniRegex", HS_FLAG_CASELESS, sniRegexPattern},
    {"tls.alpn", 0, l7ExactPattern},
    {"tls.certificate.subject", HS_FLAG_CASELESS, l7DnPattern},
    {"tls.certificate.issuer", HS_FLAG_CASELESS, l7DnPattern},
    {"tls.certificate.san", HS_FLAG_CASELESS, l7HostPattern},
    {"http.host", HS_FLAG_CASELESS, l7HostPattern},
    {"http.path", 0, l7PathPattern},
    {"http.method", 0, l7ExactPattern},
    {"payload.regex", HS_FLAG_DOTALL, asIs},
};
static_assert(std::size(kConditions) == static_cast<size_t>(L7Condition::kPayloadRegex) + 1);

const ConditionTraits& traits(L7Condition condition) { return kConditions[static_cast<size_t>(condition)]; }

// Hyperscan's parser and analysis, without building a database; `minWidth` gets the expression's shortest
// match when it is accepted.
std::optional<std::string> analyse(const L7Expression& pattern, unsigned int* minWidth) {
  hs_expr_ext_t ext{};
  ext.flags = HS_EXT_FLAG_MAX_OFFSET;
  ext.max_offset = pattern.maxOffset;
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* error = nullptr;
  std::optional<std::string> result;
  if (hs_expression_ext_info(pattern.expression.c_str(), pattern.flags | HS_FLAG_ALLOWEMPTY,
                             pattern.maxOffset > 0 ? &ext : nullptr, &info, &error) != HS_SUCCESS) {
    result = error && error->message ? error->message : "Hyperscan rejected it";
  } else {
    *minWidth = info->min_width;
  }
  hs_free_compile_error(error);
  std::free(info);  // allocated with Hyperscan's misc allocator, malloc by default
  return result;
}

}  // namespace

const char* l7ConditionName(L7Condition condition) { return traits(condition).name; }

L7Expression l7Expression(L7Condition condition, std::string_view value, uint32_t window) {
  const ConditionTraits& t = traits(condition);
  return L7Expression{t.translate(value), kBaseFlags | t.flags,
                      condition == L7Condition::kPayloadRegex ? window : 0};
}

namespace {

constexpr bool isUnreservedByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// Request paths are matched normalized (dataplane/http/http_target.h); a path glob that normalization would
// change can never match one. Globs' '*' and '?' are left alone.
const char* pathGlobProblem(std::string_view glob) {
  if (glob.empty() || (glob.front() != '/' && glob.front() != '*')) {
    return "must start with '/' or '*': request paths are matched normalized, from their first '/'";
  }
  for (size_t i = 0; i < glob.size(); ++i) {
    const auto c = static_cast<unsigned char>(glob[i]);
    if (c < 0x20 || c == 0x7f) return "contains a control character";
    if (c >= 0x80) return "contains a raw non-ASCII byte: request paths are matched with those as %XX";
    if (c == '\\') return "contains '\\': request paths are matched with it as '/'";
    if (c == '#') return "contains '#': request paths are matched without their fragment";
    if (c == '%') {
      auto hex = [&](size_t k) {
        return k < glob.size() && ((glob[k] >= '0' && glob[k] <= '9') || (glob[k] >= 'A' && glob[k] <= 'F'));
      };
      if (!hex(i + 1) || !hex(i + 2)) return "'%' must be followed by two upper-case hex digits";
      auto value = [&](size_t k) { return glob[k] <= '9' ? glob[k] - '0' : glob[k] - 'A' + 10; };
      const auto decoded = static_cast<unsigned char>(value(i + 1) << 4 | value(i + 2));
      if (isUnreservedByte(decoded)) return "percent-encodes an unreserved character: write it as itself";
      if (decoded == '/' || decoded == '\\' || decoded == 0) {
        return "contains %2F, %5C or %00: requests with those are refused, never matched";
      }
    }
    if (c == '/' && i + 1 < glob.size() && glob[i + 1] == '/') return "contains '//': slashes are merged";
    if (c == '/') {
      const std::string_view rest = glob.substr(i + 1);
      const std::string_view segment = rest.substr(0, rest.find('/'));
      if (segment == "." || segment == "..")
        return "contains a '.' or '..' segment: dot segments are removed";
    }
  }
  return nullptr;
}

}  // namespace

const char* l7ValueProblem(L7Condition condition, std::string_view value) {
  if (value.find('\0') != std::string_view::npos) return "contains a NUL byte (write \\x00)";
  if (condition == L7Condition::kHttpPath) return pathGlobProblem(value);
  if (condition == L7Condition::kSniRegex && !groupsBalanced(value)) return "unbalanced parentheses";
  return nullptr;
}

std::optional<std::string> l7ExpressionError(const L7Expression& expression) {
  unsigned int minWidth = 0;
  return analyse(expression, &minWidth);
}

bool l7CanMatchEmpty(const L7Expression& expression) {
  unsigned int minWidth = 0;
  return analyse(expression, &minWidth) || minWidth == 0;
}

std::string l7HostPattern(std::string_view pattern) {
  // One or more whole labels: the "any name under" of "*.example.com", never the apex, never "xexample.com".
  constexpr std::string_view kLabels = "[^.]+(?:\\.[^.]+)*";
  if (pattern == "*") return "^" + std::string(kLabels) + std::string(kEnd);
  std::string prefix;
  if (pattern.starts_with("*.")) {
    prefix = std::string(kLabels) + "\\.";
    pattern.remove_prefix(2);
  }
  std::string rest = globPattern(pattern, "[^.]*", "[^.]");
  return "^" + prefix + rest.substr(1);
}

std::string l7PathPattern(std::string_view glob) { return globPattern(glob, ".*", "[^/]"); }

std::string l7DnPattern(std::string_view glob) { return globPattern(glob, ".*", "."); }

std::string l7ExactPattern(std::string_view text) {
  std::string out = "^";
  for (char c : text) appendEscaped(out, c);
  out += kEnd;
  return out;
}

}  // namespace vgate::dataplane
