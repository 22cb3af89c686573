// libFuzzer target for the L2-L4 packet parser (its IPv6 extension-header walk included) and the ICMP error
// quote reader: any bytes, any split between
// contiguous and total length. ASan catches reads past the contiguous part; the checks below catch offsets
// that escape the frame.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "dataplane/packet/packet_parser.h"

using vgate::dataplane::ParsedPacket;
using vgate::dataplane::ParseStatus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 65535) return 0;
  ParsedPacket out;
  // Whole input contiguous: the common case.
  const auto frameLength = static_cast<uint32_t>(size);
  ParseStatus s = vgate::dataplane::parsePacket(data, frameLength, frameLength, out);
  if (s == ParseStatus::kOk) {
    // Headers were read, so they lie in the frame; the payload ends inside the frame too.
    if (out.payloadOffset > size || out.payloadOffset + out.payloadLength > size) std::abort();
    if (out.l4Offset > out.payloadOffset || out.l3Offset > out.l4Offset) std::abort();
    // The extension-header walk never stops on an extension header: the transport header it names is read.
    if (out.ipVersion == 6 && (out.protocol == 0 || out.protocol == 43 || out.protocol == 44 ||
                               out.protocol == 51 || out.protocol == 60))
      std::abort();
  }
  if (std::strcmp(vgate::dataplane::parseStatusName(s), "unknown") == 0) std::abort();

  // Multi-segment: only a prefix is contiguous. Use an exact-size copy so ASan sees any read past it.
  if (size > 0) {
    const uint32_t contiguous = data[size - 1] % (frameLength + 1);
    std::unique_ptr<uint8_t[]> prefix(new uint8_t[contiguous ? contiguous : 1]);
    if (contiguous) std::memcpy(prefix.get(), data, contiguous);
    ParsedPacket split;
    s = vgate::dataplane::parsePacket(prefix.get(), contiguous, frameLength, split);
    if (s == ParseStatus::kOk && split.payloadOffset > contiguous) std::abort();
    // An ICMP error's quote is read from the same prefix: ASan sees any read past it.
    ParsedPacket quoted;
    if (s == ParseStatus::kOk &&
        vgate::dataplane::parseIcmpErrorQuote(prefix.get(), contiguous, split, quoted) &&
        quoted.ipVersion != split.ipVersion)
      std::abort();
  }
  return 0;
}
