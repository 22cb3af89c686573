// libFuzzer target for the ClientHello parser: the input is tried as a TCP stream of TLS records and as the
// handshake layer of a QUIC CRYPTO stream; the sanitizers catch any read outside it.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dataplane/tls/client_hello.h"

namespace {

using vgate::dataplane::tls::ClientHello;
using vgate::dataplane::tls::ClientHelloParser;
using vgate::dataplane::tls::ClientHelloStatus;
using vgate::dataplane::tls::TlsTransport;

void checkComplete(const ClientHello& hello) {
  // A complete parse must leave NUL-terminated, fixed-size fingerprints and a consistent SNI.
  if (strlen(hello.ja4) != 36 || hello.ja4[10] != '_' || hello.ja4[23] != '_') __builtin_trap();
  if (hello.sniLength > vgate::dataplane::tls::kMaxSniLength || hello.sni[hello.sniLength] != '\0')
    __builtin_trap();
  if (hello.alpnCount > vgate::dataplane::tls::kMaxAlpnEntries) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ClientHelloParser parser;
  static char ja3Raw[4096];
  static char ja4Raw[4096];
  // Alternate with and without the raw output so that both paths of the writer are exercised.
  if (size % 2 == 0) {
    parser.setRawOutput(ja3Raw, sizeof(ja3Raw), ja4Raw, sizeof(ja4Raw));
  } else {
    parser.setRawOutput(nullptr, 0, nullptr, 0);
  }
  ClientHello hello;
  if (parser.parseRecords(data, size, hello) == ClientHelloStatus::kComplete) checkComplete(hello);
  if (parser.parseHandshake(data, size, TlsTransport::kQuic, hello) == ClientHelloStatus::kComplete) {
    checkComplete(hello);
  }
  // The handshake-layer view of a record stream: skip the first record header.
  if (size > 5 &&
      parser.parseHandshake(data + 5, size - 5, TlsTransport::kTcp, hello) == ClientHelloStatus::kComplete) {
    checkComplete(hello);
  }
  return 0;
}
