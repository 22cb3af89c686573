// A small byte writer for hand-built frames in tests; every field is written big-endian, as on the wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vgate::testing {

using Bytes = std::vector<uint8_t>;

class Builder {
 public:
  Builder& u8(uint32_t v) {
    bytes_.push_back(static_cast<uint8_t>(v));
    return *this;
  }
  Builder& u16(uint32_t v) { return u8(v >> 8).u8(v); }
  Builder& u24(uint32_t v) { return u8(v >> 16).u16(v); }
  Builder& u32(uint32_t v) { return u16(v >> 16).u16(v); }
  Builder& fill(size_t n, uint8_t v = 0) {
    bytes_.insert(bytes_.end(), n, v);
    return *this;
  }
  Builder& add(const Bytes& b) {
    bytes_.insert(bytes_.end(), b.begin(), b.end());
    return *this;
  }
  Builder& add(const std::string& s) {
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  Bytes done() const { return bytes_; }

 private:
  Bytes bytes_;
};

}  // namespace vgate::testing
