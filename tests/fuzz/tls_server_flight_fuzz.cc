// libFuzzer target for the TLS server flight parser: any bytes as the server's stream. ASan/LSan catch reads
// past the input and OpenSSL objects left behind; the checks below catch broken outputs and decisions that
// depend on bytes the parser had not seen yet.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "dataplane/tls/server_flight.h"

using vgate::dataplane::tls::kMaxSanEntries;
using vgate::dataplane::tls::parseServerFlight;
using vgate::dataplane::tls::ServerFlight;
using vgate::dataplane::tls::ServerFlightStatus;
using vgate::dataplane::tls::serverFlightStatusName;

namespace {

void checkTerminated(const char* text, size_t capacity) {
  if (strnlen(text, capacity) == capacity) std::abort();
}

void checkOutput(const ServerFlight& flight) {
  checkTerminated(flight.alpn, sizeof(flight.alpn));
  const auto& c = flight.certificate;
  checkTerminated(c.subject, sizeof(c.subject));
  checkTerminated(c.issuer, sizeof(c.issuer));
  checkTerminated(c.serial, sizeof(c.serial));
  checkTerminated(c.fingerprint, sizeof(c.fingerprint));
  if (c.sanCount > kMaxSanEntries) std::abort();
  for (const auto& san : c.sans) checkTerminated(san, sizeof(san));
  if (flight.hasCertificate && strlen(c.fingerprint) != 59) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 * 1024) return 0;
  // The parser keeps state per thread, not per object: outputs must not depend on a previous call.
  static ServerFlight full;
  const ServerFlightStatus status = parseServerFlight(data, size, full);
  if (std::strcmp(serverFlightStatusName(status), "unknown") == 0) std::abort();
  checkOutput(full);

  // A prefix that reaches a verdict must reach the same one as the whole stream: the parser decides only on
  // bytes it has seen. The copy is exact-size so that ASan sees any read past the prefix.
  if (size == 0) return 0;
  const size_t cut = (size_t{data[size - 1]} * 257 + data[size / 2]) % size;
  std::unique_ptr<uint8_t[]> prefix(new uint8_t[cut ? cut : 1]);
  if (cut) std::memcpy(prefix.get(), data, cut);
  static ServerFlight partial;
  const ServerFlightStatus prefixStatus = parseServerFlight(prefix.get(), cut, partial);
  checkOutput(partial);
  if (prefixStatus != ServerFlightStatus::kNeedMoreData) {
    if (prefixStatus != status) std::abort();
    if (partial.version != full.version || partial.cipherSuite != full.cipherSuite) std::abort();
    if (std::strcmp(partial.certificate.subject, full.certificate.subject) != 0) std::abort();
    if (std::strcmp(partial.certificate.fingerprint, full.certificate.fingerprint) != 0) std::abort();
  }
  return 0;
}
