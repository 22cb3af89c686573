// The syntax of policy values and the hints that go with their errors: numbers, CIDRs, port ranges, host
// patterns, HTTP tokens, ICMP type names and "did you mean" suggestions.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "vgate/policy.h"

namespace vgate::control {

std::string lower(std::string_view text);

// Levenshtein distance, case-insensitive; at least 1000 when either side is longer than 64.
int editDistance(std::string_view a, std::string_view b);

// The candidate closest to word within edit distance 2, or "" (nameOf(candidate) gives its text).
template <typename Candidates, typename NameOf>
std::string suggestBy(std::string_view word, const Candidates& candidates, NameOf nameOf) {
  std::string best;
  int bestDistance = 3;
  for (const auto& candidate : candidates) {
    int distance = editDistance(word, nameOf(candidate));
    if (distance < bestDistance) {
      bestDistance = distance;
      best = nameOf(candidate);
    }
  }
  return best;
}

std::string suggest(std::string_view word, std::initializer_list<const char*> candidates);
// "a, b, c".
std::string joinChoices(std::initializer_list<const char*> choices);

// Parses a decimal number of at most `maxDigits` digits; nullopt when not all digits.
std::optional<uint64_t> parseNumber(std::string_view text, size_t maxDigits = 10);
// A payload window, 1..65536 bytes; nullopt for anything else.
std::optional<uint32_t> parsePayloadWindow(std::string_view text);
// "N" or "N-M" within 0..max, or the message: "invalid <what> '...': <expected>", "...: <bounds>", or
// "invalid <what> range '...': N is above M".
std::variant<policy::PortRange, std::string> parseRange(const std::string& text, const char* what,
                                                        uint64_t max, const std::string& expected,
                                                        const char* bounds);
// A letter, then letters, digits, '-', '_' or '.': never read as a number.
bool isPortGroupName(const std::string& name);

std::string formatCidr(const policy::Cidr& cidr);
// Parses "addr" or "addr/len" (IPv4 or IPv6); on failure returns the reason.
std::variant<policy::Cidr, std::string> parseCidr(const std::string& text);
// Zeroes host bits; returns whether any were set.
bool clearHostBits(policy::Cidr* cidr);

// Normalizes a TLS SNI / HTTP host pattern to what is seen on the wire: lower case, no trailing dot,
// A-labels. Returns the normalized pattern or, on failure, the reason (second = false).
std::pair<std::string, bool> normalizeHostPattern(const std::string& pattern);

// RFC 9110 tchar: what an HTTP method may be made of.
bool isToken(const std::string& text);

// ICMP and ICMPv6 message types by name; -1 where the protocol has no such type.
struct IcmpTypeName {
  const char* name;
  int icmp;
  int icmpv6;
};
// The type named `name`, or null.
const IcmpTypeName* findIcmpTypeName(std::string_view name);
// The known name closest to `name`, or "".
std::string suggestIcmpTypeName(std::string_view name);

}  // namespace vgate::control
