// What the L7 matcher compiles for each policy value: the Hyperscan expression and flags per L7 condition.
// The policy loader checks regexes with this same translation, so that a policy that validates compiles.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vgate::dataplane {

// The L7 conditions of a rule; l7ConditionName gives the policy model's name ("tls.sniRegex").
enum class L7Condition : uint8_t {
  kSni,
  kSniRegex,
  kAlpn,
  kCertSubject,
  kCertIssuer,
  kSan,
  kHttpHost,
  kHttpPath,
  kHttpMethod,
  kPayloadRegex,
};
const char* l7ConditionName(L7Condition condition);

// One Hyperscan pattern, as the matcher compiles it.
struct L7Expression {
  std::string expression;
  // Without HS_FLAG_ALLOWEMPTY: compile adds it where the expression can match the empty string.
  unsigned int flags = 0;
  uint32_t maxOffset = 0;  // 0: none
};

// What `value`, a value of `condition`, compiles to; `window` (payload.regex only) becomes its max_offset.
L7Expression l7Expression(L7Condition condition, std::string_view value, uint32_t window = 0);

// Why `value` cannot be translated faithfully (what Hyperscan cannot see once it is a C string and
// wrapped), or nullptr.
const char* l7ValueProblem(L7Condition condition, std::string_view value);

// Hyperscan's parse and analysis of the expression, HS_FLAG_ALLOWEMPTY added as compile would, without
// building a database: why Hyperscan refuses it, or nullopt. Thread-safe.
std::optional<std::string> l7ExpressionError(const L7Expression& expression);
// Whether the expression can match the empty string; one Hyperscan refuses counts as one that can, so that
// compiling it reports the real error.
bool l7CanMatchEmpty(const L7Expression& expression);

// The translations of the host-like, path, DN and exact conditions, for tests and messages.
std::string l7HostPattern(std::string_view pattern);
std::string l7PathPattern(std::string_view glob);
std::string l7DnPattern(std::string_view glob);
std::string l7ExactPattern(std::string_view text);

}  // namespace vgate::dataplane
