// Bytes as hex text in the interposer's JSON state (MACs, raw netlink attributes and objects).
#pragma once

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace vgate::control {

inline std::string toHex(const std::vector<uint8_t>& bytes, const char* separator = "") {
  std::string text;
  for (size_t i = 0; i < bytes.size(); ++i) {
    char digits[3];
    std::snprintf(digits, sizeof(digits), "%02x", bytes[i]);
    if (i > 0) text += separator;
    text += digits;
  }
  return text;
}

// Accepts "0a1b" and "0a:1b"; throws std::invalid_argument on anything else (callers parse JSON state
// inside a try block).
inline std::vector<uint8_t> fromHex(const std::string& text) {
  std::vector<uint8_t> bytes;
  std::string digits;
  for (char c : text) {
    if (c == ':') continue;
    digits += c;
    if (digits.size() == 2) {
      bytes.push_back(static_cast<uint8_t>(std::stoul(digits, nullptr, 16)));
      digits.clear();
    }
  }
  if (!digits.empty()) throw std::invalid_argument("odd number of hex digits");
  return bytes;
}

}  // namespace vgate::control
