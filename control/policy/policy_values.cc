// Policy value syntax: parsers and normalizers that say what is wrong, and the suggestions for hints.
#include "control/policy/policy_values.h"

#include <arpa/inet.h>
#include <idn2.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace vgate::control {

using policy::Cidr;
using policy::PortRange;

namespace {

constexpr uint32_t kMaxWindow = 65536;

bool allDigits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

constexpr IcmpTypeName kIcmpTypeNames[] = {
    {"echo-reply", 0, 129},
    {"destination-unreachable", 3, 1},
    {"packet-too-big", -1, 2},
    {"redirect", 5, 137},
    {"echo-request", 8, 128},
    {"router-advertisement", 9, 134},
    {"router-solicitation", 10, 133},
    {"time-exceeded", 11, 3},
    {"parameter-problem", 12, 4},
    {"neighbor-solicitation", -1, 135},
    {"neighbor-advertisement", -1, 136},
};

}  // namespace

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

int editDistance(std::string_view a, std::string_view b) {
  if (a.size() > 64 || b.size() > 64) return 1000;
  std::string x = lower(a), y = lower(b);
  std::vector<int> previous(y.size() + 1), current(y.size() + 1);
  for (size_t j = 0; j <= y.size(); ++j) previous[j] = static_cast<int>(j);
  for (size_t i = 1; i <= x.size(); ++i) {
    current[0] = static_cast<int>(i);
    for (size_t j = 1; j <= y.size(); ++j) {
      int substitution = previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[y.size()];
}

std::string suggest(std::string_view word, std::initializer_list<const char*> candidates) {
  return suggestBy(word, candidates, [](const char* candidate) { return candidate; });
}

std::string joinChoices(std::initializer_list<const char*> choices) {
  std::string out;
  for (const char* choice : choices) {
    if (!out.empty()) out += ", ";
    out += choice;
  }
  return out;
}

std::optional<uint64_t> parseNumber(std::string_view text, size_t maxDigits) {
  if (!allDigits(text) || text.size() > maxDigits) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) value = value * 10 + static_cast<uint64_t>(c - '0');
  return value;
}

std::optional<uint32_t> parsePayloadWindow(std::string_view text) {
  std::optional<uint64_t> window = parseNumber(text);
  if (!window || *window < 1 || *window > kMaxWindow) return std::nullopt;
  return static_cast<uint32_t>(*window);
}

std::variant<PortRange, std::string> parseRange(const std::string& text, const char* what, uint64_t max,
                                                const std::string& expected, const char* bounds) {
  size_t dash = text.find('-');
  std::optional<uint64_t> low = parseNumber(std::string_view(text).substr(0, dash));
  std::optional<uint64_t> high =
      dash == std::string::npos ? low : parseNumber(std::string_view(text).substr(dash + 1));
  if (!low || !high) return std::string("invalid ") + what + " '" + text + "': " + expected;
  if (*low > max || *high > max) return std::string("invalid ") + what + " '" + text + "': " + bounds;
  if (*low > *high) {
    return std::string("invalid ") + what + " range '" + text + "': " + std::to_string(*low) + " is above " +
           std::to_string(*high);
  }
  return PortRange{static_cast<uint16_t>(*low), static_cast<uint16_t>(*high)};
}

bool isPortGroupName(const std::string& name) {
  return !name.empty() && std::isalpha(static_cast<unsigned char>(name[0])) &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
         });
}

std::string formatCidr(const Cidr& cidr) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(cidr.family == 4 ? AF_INET : AF_INET6, cidr.address, buffer, sizeof(buffer));
  return std::string(buffer) + "/" + std::to_string(cidr.prefixLength);
}

std::variant<Cidr, std::string> parseCidr(const std::string& text) {
  Cidr cidr;
  size_t slash = text.find('/');
  std::string address = text.substr(0, slash);
  if (address.find('\0') != std::string::npos) return std::string("not an IPv4 or IPv6 address");
  bool v6 = address.find(':') != std::string::npos;
  cidr.family = v6 ? 6 : 4;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, address.c_str(), cidr.address) != 1) {
    return std::string("not an IPv4 or IPv6 address");
  }
  int maxPrefix = v6 ? 128 : 32;
  if (slash == std::string::npos) {
    cidr.prefixLength = static_cast<uint8_t>(maxPrefix);
    return cidr;
  }
  std::optional<uint64_t> prefix = parseNumber(std::string_view(text).substr(slash + 1), 3);
  if (!prefix || *prefix > static_cast<uint64_t>(maxPrefix)) {
    return "prefix length must be 0.." + std::to_string(maxPrefix);
  }
  cidr.prefixLength = static_cast<uint8_t>(*prefix);
  return cidr;
}

bool clearHostBits(Cidr* cidr) {
  int bytes = cidr->family == 4 ? 4 : 16;
  bool changed = false;
  for (int i = 0; i < bytes; ++i) {
    int bitsKept = std::clamp(static_cast<int>(cidr->prefixLength) - i * 8, 0, 8);
    uint8_t mask = static_cast<uint8_t>(bitsKept == 0 ? 0 : 0xff << (8 - bitsKept));
    if ((cidr->address[i] & ~mask) != 0) changed = true;
    cidr->address[i] &= mask;
  }
  return changed;
}

std::pair<std::string, bool> normalizeHostPattern(const std::string& pattern) {
  std::string name = pattern;
  std::string prefix;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return {"contains a control character", false};
  }
  if (name.empty()) return {"empty pattern", false};
  // A bare "*" is any non-empty name, which is how dataplane/l7match compiles it.
  if (name == "*") return {name, true};
  if (name.size() >= 2 && name.compare(0, 2, "*.") == 0) {
    prefix = "*.";
    name = name.substr(2);
  }
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty()) return {"no name after '" + prefix + "'", false};
  if (name.find('*') != std::string::npos) {
    return {"'*' is only allowed as the whole first label ('*.example.com')", false};
  }
  bool ascii =
      std::all_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) {
    name = lower(name);
  } else {
    // Unicode names go on the wire as A-labels (RFC 5891); UTS 46 non-transitional mapping also lower-cases.
    char* converted = nullptr;
    int rc = idn2_to_ascii_8z(name.c_str(), &converted, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
      return {std::string("cannot convert to an A-label: ") + idn2_strerror(rc), false};
    }
    name = lower(converted);
    idn2_free(converted);
  }
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view label =
        std::string_view(name).substr(start, dot == std::string::npos ? dot : dot - start);
    if (label.empty()) return {"empty label", false};
    if (label.size() > 63) return {"label longer than 63 characters", false};
    for (char c : label) {
      bool ldh = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      if (!ldh) {
        return {std::string("character '") + c + "' is not allowed in a host name (letters, digits, '-')",
                false};
      }
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  std::string normalized = prefix + name;
  if (normalized.size() > 253) return {"name longer than 253 characters", false};
  return {normalized, true};
}

bool isToken(const std::string& text) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           kExtra.find(c) != std::string_view::npos;
  });
}

const IcmpTypeName* findIcmpTypeName(std::string_view name) {
  for (const IcmpTypeName& candidate : kIcmpTypeNames) {
    if (name == candidate.name) return &candidate;
  }
  return nullptr;
}

std::string suggestIcmpTypeName(std::string_view name) {
  return suggestBy(name, kIcmpTypeNames, [](const IcmpTypeName& candidate) { return candidate.name; });
}

}  // namespace vgate::control
