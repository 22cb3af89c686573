// TLS ClientHello parser: reassembles the handshake message from TLS records (or takes it from the QUIC
// CRYPTO stream), extracts SNI, ALPN and versions, and computes JA3 (Salesforce) and JA4 (FoxIO) with reused
// EVP contexts.
#include "dataplane/tls/client_hello.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace vgate::dataplane::tls {
namespace {

constexpr uint8_t kContentHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr size_t kRecordHeaderLength = 5;
constexpr size_t kHandshakeHeaderLength = 4;
// RFC 8446 5.1 caps a plaintext fragment at 2^14; RFC 5246 allows 2^14 + 2048 for compressed records, and
// being lenient here costs nothing since the message size is bounded separately.
constexpr size_t kMaxRecordFragment = 16384 + 2048;
constexpr size_t kRandomLength = 32;
constexpr size_t kMaxSessionId = 32;

// The ClientHello is bounded, so these bound every list in it (each entry takes at least 2 or 4 bytes).
constexpr size_t kMaxU16Entries = kMaxClientHelloLength / 2;
constexpr size_t kMaxExtensions = kMaxClientHelloLength / 4;

constexpr uint16_t kExtServerName = 0x0000;
constexpr uint16_t kExtSupportedGroups = 0x000a;
constexpr uint16_t kExtEcPointFormats = 0x000b;
constexpr uint16_t kExtSignatureAlgorithms = 0x000d;
constexpr uint16_t kExtAlpn = 0x0010;
constexpr uint16_t kExtSupportedVersions = 0x002b;
constexpr uint16_t kExtEncryptedClientHello = 0xfe0d;
constexpr uint8_t kServerNameHostName = 0;

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr char kEmptyHash[] = "000000000000";

// RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa.
bool isGrease(uint16_t value) { return (value & 0x0f0f) == 0x0a0a && (value >> 8) == (value & 0xff); }

uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t load24(const uint8_t* p) { return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2]; }

// Bounds-checked cursor: every read first checks what is left, so a lying length can only make a read fail.
class Reader {
 public:
  Reader(const uint8_t* data, size_t length) : data_(data), left_(length) {}

  bool u8(uint8_t& value) {
    if (left_ < 1) return false;
    value = data_[0];
    advance(1);
    return true;
  }
  bool u16(uint16_t& value) {
    if (left_ < 2) return false;
    value = load16(data_);
    advance(2);
    return true;
  }
  bool skip(size_t count) {
    if (left_ < count) return false;
    advance(count);
    return true;
  }
  // A sub-reader over the next `count` bytes, which this reader then skips.
  bool sub(size_t count, Reader& inner) {
    if (left_ < count) return false;
    inner = Reader(data_, count);
    advance(count);
    return true;
  }
  bool vector8(Reader& inner) {
    uint8_t count = 0;
    return u8(count) && sub(count, inner);
  }
  bool vector16(Reader& inner) {
    uint16_t count = 0;
    return u16(count) && sub(count, inner);
  }
  const uint8_t* data() const { return data_; }
  size_t left() const { return left_; }
  bool empty() const { return left_ == 0; }

 private:
  void advance(size_t count) {
    data_ += count;
    left_ -= count;
  }
  const uint8_t* data_;
  size_t left_;
};

// Where the interesting parts of a ClientHello are; pointers into the message, valid for one parse.
struct HelloView {
  uint16_t legacyVersion = 0;
  const uint8_t* ciphers = nullptr;  // big-endian u16 entries
  size_t cipherCount = 0;
  const uint8_t* groups = nullptr;
  size_t groupCount = 0;
  const uint8_t* pointFormats = nullptr;  // u8 entries
  size_t pointFormatCount = 0;
  const uint8_t* signatureAlgorithms = nullptr;
  size_t signatureAlgorithmCount = 0;
  const uint8_t* firstAlpn = nullptr;  // the first ALPN protocol as sent (JA4 uses its raw bytes)
  size_t firstAlpnLength = 0;
  bool hasAlpn = false;
  bool hasServerNameExtension = false;
  size_t extensionCount = 0;  // extension types, in order, are in the parser's scratch array
};

// Everything a parser owns; allocated once per parser so that parsing allocates nothing.
struct ParserState {
  EVP_MD* md5 = nullptr;
  EVP_MD* sha256 = nullptr;
  // Created once, one per algorithm. OpenSSL 3.0 still frees and re-creates the provider's small digest state
  // on each EVP_DigestInit_ex2 (measured: one malloc per init, three per complete ClientHello); that is once
  // per connection, not per packet, and the only allocation left on this path.
  EVP_MD_CTX* md5Ctx = nullptr;
  EVP_MD_CTX* sha256Ctx = nullptr;
  char* rawJa3 = nullptr;
  size_t rawJa3Capacity = 0;
  char* rawJa4 = nullptr;
  size_t rawJa4Capacity = 0;
  uint16_t extensions[kMaxExtensions];
  uint16_t sortScratch[kMaxU16Entries];
  uint8_t message[kMaxClientHelloLength];  // handshake bytes gathered from several records
};

// Streams text into a digest through a small buffer (no allocation), optionally copying it to a raw buffer.
class DigestWriter {
 public:
  DigestWriter(EVP_MD_CTX* ctx, const EVP_MD* md, char* raw, size_t rawCapacity)
      : ctx_(ctx), ok_(ctx != nullptr && md != nullptr), raw_(raw), rawCapacity_(rawCapacity) {
    if (ok_) ok_ = EVP_DigestInit_ex2(ctx_, md, nullptr) == 1;
    if (raw_ != nullptr && rawCapacity_ > 0) raw_[0] = '\0';
  }

  void put(char c) {
    if (used_ == sizeof(buffer_)) flush();
    buffer_[used_++] = c;
    if (raw_ != nullptr && rawLength_ + 1 < rawCapacity_) {
      raw_[rawLength_++] = c;
      raw_[rawLength_] = '\0';
    }
  }
  void put(const char* text) {
    while (*text != '\0') put(*text++);
  }
  void putDecimal(unsigned value) {
    char digits[10];
    int count = 0;
    do {
      digits[count++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    while (count > 0) put(digits[--count]);
  }
  void putHex16(uint16_t value) {
    put(kHexDigits[value >> 12]);
    put(kHexDigits[(value >> 8) & 0xf]);
    put(kHexDigits[(value >> 4) & 0xf]);
    put(kHexDigits[value & 0xf]);
  }

  // Writes the digest as lower-case hex, `hexLength` characters of it, and a NUL; "" if OpenSSL failed.
  void finish(char* out, size_t hexLength) {
    flush();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digestLength = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_, digest, &digestLength) != 1 || hexLength > digestLength * 2) {
      out[0] = '\0';
      return;
    }
    for (size_t i = 0; i < hexLength; ++i) {
      const uint8_t byte = digest[i / 2];
      out[i] = kHexDigits[i % 2 == 0 ? byte >> 4 : byte & 0xf];
    }
    out[hexLength] = '\0';
  }

 private:
  void flush() {
    if (ok_ && used_ > 0) ok_ = EVP_DigestUpdate(ctx_, buffer_, used_) == 1;
    used_ = 0;
  }

  EVP_MD_CTX* ctx_;
  bool ok_;
  char* raw_;
  size_t rawCapacity_;
  size_t rawLength_ = 0;
  char buffer_[256];
  size_t used_ = 0;
};

// JA4's lists: the values sorted, as 4-digit hex, comma-joined (ciphers in JA4_b, extensions in JA4_c).
void putSortedHexList(DigestWriter& writer, uint16_t* values, size_t count) {
  std::sort(values, values + count);
  for (size_t i = 0; i < count; ++i) {
    if (i != 0) writer.put(',');
    writer.putHex16(values[i]);
  }
}

// Appends text to a bounded raw buffer (JA4_r pieces that are not hashed).
void appendRaw(char* raw, size_t capacity, const char* text) {
  if (raw == nullptr || capacity == 0) return;
  size_t length = strnlen(raw, capacity);
  while (*text != '\0' && length + 1 < capacity) raw[length++] = *text++;
  raw[length < capacity ? length : capacity - 1] = '\0';
}

bool isAlphanumeric(uint8_t c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

const char* ja4Version(uint16_t version) {
  switch (version) {
    case 0x0304:
      return "13";
    case 0x0303:
      return "12";
    case 0x0302:
      return "11";
    case 0x0301:
      return "10";
    case 0x0300:
      return "s3";
    case 0x0002:
      return "s2";
    case 0xfeff:
      return "d1";
    case 0xfefd:
      return "d2";
    case 0xfefc:
      return "d3";
    default:
      return "00";
  }
}

// Reads a list of big-endian u16 with a u16 byte length that must be even and fill the reader exactly.
bool u16List(Reader& ext, const uint8_t*& entries, size_t& count) {
  Reader list(nullptr, 0);
  if (!ext.vector16(list) || !ext.empty() || list.left() % 2 != 0) return false;
  entries = list.data();
  count = list.left() / 2;
  return true;
}

bool parseServerName(Reader ext, ClientHello& out) {
  Reader list(nullptr, 0);
  if (!ext.vector16(list) || !ext.empty() || list.empty()) return false;
  while (!list.empty()) {
    uint8_t type = 0;
    Reader name(nullptr, 0);
    if (!list.u8(type) || !list.vector16(name)) return false;
    if (type != kServerNameHostName || out.hasSni) continue;
    // A DNS name is at most 253 bytes; a longer or empty host_name is no name a policy could match.
    if (name.empty() || name.left() > kMaxSniLength) return false;
    memcpy(out.sni, name.data(), name.left());
    out.sni[name.left()] = '\0';
    out.sniLength = static_cast<uint16_t>(name.left());
    out.hasSni = true;
  }
  return true;
}

bool parseAlpn(Reader ext, HelloView& view, ClientHello& out) {
  Reader list(nullptr, 0);
  if (!ext.vector16(list) || !ext.empty() || list.empty()) return false;
  view.hasAlpn = true;
  bool first = true;
  while (!list.empty()) {
    Reader protocol(nullptr, 0);
    if (!list.vector8(protocol)) return false;
    if (first) {
      view.firstAlpn = protocol.data();
      view.firstAlpnLength = protocol.left();
      first = false;
    }
    if (out.alpnCount == kMaxAlpnEntries || protocol.left() > kMaxAlpnLength) {
      out.alpnTruncated = true;
      continue;
    }
    memcpy(out.alpn[out.alpnCount], protocol.data(), protocol.left());
    out.alpn[out.alpnCount][protocol.left()] = '\0';
    ++out.alpnCount;
  }
  return true;
}

bool parseSupportedVersions(Reader ext, ClientHello& out) {
  Reader list(nullptr, 0);
  if (!ext.vector8(list) || !ext.empty() || list.left() % 2 != 0) return false;
  while (!list.empty()) {
    uint16_t version = 0;
    list.u16(version);
    if (!isGrease(version) && version > out.maxSupportedVersion) out.maxSupportedVersion = version;
  }
  return true;
}

}  // namespace

struct ClientHelloParser::Digests : ParserState {};

const char* clientHelloStatusName(ClientHelloStatus status) {
  switch (status) {
    case ClientHelloStatus::kComplete:
      return "complete";
    case ClientHelloStatus::kNeedMoreData:
      return "need_more_data";
    case ClientHelloStatus::kNotTls:
      return "not_tls";
    case ClientHelloStatus::kNotClientHello:
      return "not_client_hello";
    case ClientHelloStatus::kMalformed:
      return "malformed";
    case ClientHelloStatus::kTooLarge:
      return "too_large";
    case ClientHelloStatus::kCount:
      break;
  }
  return "unknown";
}

ClientHelloParser::ClientHelloParser() : digests_(new Digests) {
  digests_->md5 = EVP_MD_fetch(nullptr, "MD5", nullptr);
  digests_->sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  digests_->md5Ctx = EVP_MD_CTX_new();
  digests_->sha256Ctx = EVP_MD_CTX_new();
}

ClientHelloParser::~ClientHelloParser() {
  EVP_MD_CTX_free(digests_->md5Ctx);
  EVP_MD_CTX_free(digests_->sha256Ctx);
  EVP_MD_free(digests_->md5);
  EVP_MD_free(digests_->sha256);
  delete digests_;
}

void ClientHelloParser::setRawOutput(char* ja3, size_t ja3Capacity, char* ja4r, size_t ja4rCapacity) {
  digests_->rawJa3 = ja3Capacity > 0 ? ja3 : nullptr;
  digests_->rawJa3Capacity = ja3Capacity;
  digests_->rawJa4 = ja4rCapacity > 0 ? ja4r : nullptr;
  digests_->rawJa4Capacity = ja4rCapacity;
}

namespace {

// Parses a whole ClientHello handshake message (header included) and fills `out`.
ClientHelloStatus parseMessage(const uint8_t* message, size_t size, char protocol, ParserState& d,
                               ClientHello& out);

}  // namespace

ClientHelloStatus ClientHelloParser::parseHandshake(const uint8_t* message, size_t length,
                                                    TlsTransport transport, ClientHello& out) {
  out = ClientHello{};
  if (length == 0) return ClientHelloStatus::kNeedMoreData;
  if (message[0] != kHandshakeClientHello) return ClientHelloStatus::kNotClientHello;
  if (length < kHandshakeHeaderLength) return ClientHelloStatus::kNeedMoreData;
  const size_t size = kHandshakeHeaderLength + load24(message + 1);
  if (size > kMaxClientHelloLength) return ClientHelloStatus::kTooLarge;
  if (length < size) return ClientHelloStatus::kNeedMoreData;
  return parseMessage(message, size, transport == TlsTransport::kQuic ? 'q' : 't', *digests_, out);
}

ClientHelloStatus ClientHelloParser::parseRecords(const uint8_t* stream, size_t length, ClientHello& out) {
  out = ClientHello{};
  uint8_t* const buffer = digests_->message;
  size_t offset = 0;
  size_t gathered = 0;     // handshake bytes copied into `buffer`
  size_t messageSize = 0;  // header included; 0 until the 4-byte header has been seen
  bool firstRecord = true;
  // Only the first record decides whether this is TLS at all; a bad record after it breaks a TLS stream.
  const auto badRecord = [&firstRecord] {
    return firstRecord ? ClientHelloStatus::kNotTls : ClientHelloStatus::kMalformed;
  };
  for (;;) {
    const uint8_t* record = stream + offset;
    const size_t available = length - offset;
    if (available >= 1 && record[0] != kContentHandshake) return badRecord();
    if (available >= 2 && record[1] != 3) return badRecord();
    if (available < kRecordHeaderLength) return ClientHelloStatus::kNeedMoreData;
    const size_t fragmentLength = load16(record + 3);
    // RFC 8446 5.1: zero-length handshake fragments are forbidden.
    if (fragmentLength == 0 || fragmentLength > kMaxRecordFragment) return ClientHelloStatus::kMalformed;
    const uint8_t* fragment = record + kRecordHeaderLength;
    const size_t fragmentAvailable = std::min(fragmentLength, available - kRecordHeaderLength);

    if (firstRecord && fragmentAvailable >= kHandshakeHeaderLength) {
      if (fragment[0] != kHandshakeClientHello) return ClientHelloStatus::kNotClientHello;
      const size_t size = kHandshakeHeaderLength + load24(fragment + 1);
      if (size > kMaxClientHelloLength) return ClientHelloStatus::kTooLarge;
      // The common case, one record holding the whole message: parse it in place, no copy.
      if (fragmentAvailable >= size) return parseMessage(fragment, size, 't', *digests_, out);
    }

    size_t used = 0;
    while (used < fragmentAvailable) {
      const size_t target = messageSize != 0 ? messageSize : kHandshakeHeaderLength;
      const size_t take = std::min(target - gathered, fragmentAvailable - used);
      memcpy(buffer + gathered, fragment + used, take);
      gathered += take;
      used += take;
      if (buffer[0] != kHandshakeClientHello) return ClientHelloStatus::kNotClientHello;
      if (messageSize == 0 && gathered == kHandshakeHeaderLength) {
        messageSize = kHandshakeHeaderLength + load24(buffer + 1);
        if (messageSize > kMaxClientHelloLength) return ClientHelloStatus::kTooLarge;
      }
      if (messageSize != 0 && gathered == messageSize) {
        return parseMessage(buffer, messageSize, 't', *digests_, out);
      }
    }
    if (fragmentAvailable < fragmentLength) return ClientHelloStatus::kNeedMoreData;
    offset += kRecordHeaderLength + fragmentLength;
    firstRecord = false;
  }
}

namespace {

// Builds JA3 and JA4 from the parsed view. The extension types are in d.extensions[0, view.extensionCount).
void fingerprint(const HelloView& view, char protocol, ParserState& d, ClientHello& out) {
  // JA3: SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats, decimal, GREASE removed.
  {
    DigestWriter ja3(d.md5Ctx, d.md5, d.rawJa3, d.rawJa3Capacity);
    ja3.putDecimal(view.legacyVersion);
    ja3.put(',');
    const auto putU16List = [&ja3](const uint8_t* entries, size_t count) {
      bool first = true;
      for (size_t i = 0; i < count; ++i) {
        const uint16_t value = load16(entries + 2 * i);
        if (isGrease(value)) continue;
        if (!first) ja3.put('-');
        ja3.putDecimal(value);
        first = false;
      }
    };
    putU16List(view.ciphers, view.cipherCount);
    ja3.put(',');
    bool first = true;
    for (size_t i = 0; i < view.extensionCount; ++i) {
      if (isGrease(d.extensions[i])) continue;
      if (!first) ja3.put('-');
      ja3.putDecimal(d.extensions[i]);
      first = false;
    }
    ja3.put(',');
    putU16List(view.groups, view.groupCount);
    ja3.put(',');
    for (size_t i = 0; i < view.pointFormatCount; ++i) {
      if (i != 0) ja3.put('-');
      ja3.putDecimal(view.pointFormats[i]);
    }
    ja3.finish(out.ja3, 32);
  }

  // JA4_a: protocol, version, d/i, cipher count, extension count, ALPN first and last character.
  size_t cipherCount = 0;
  for (size_t i = 0; i < view.cipherCount; ++i) {
    const uint16_t value = load16(view.ciphers + 2 * i);
    if (!isGrease(value)) d.sortScratch[cipherCount++] = value;
  }
  size_t extensionCount = 0;
  for (size_t i = 0; i < view.extensionCount; ++i) extensionCount += isGrease(d.extensions[i]) ? 0 : 1;
  char a[11];
  a[0] = protocol;
  const char* version = ja4Version(out.maxSupportedVersion);
  a[1] = version[0];
  a[2] = version[1];
  a[3] = view.hasServerNameExtension ? 'd' : 'i';
  const size_t shownCiphers = std::min<size_t>(cipherCount, 99);
  const size_t shownExtensions = std::min<size_t>(extensionCount, 99);
  a[4] = static_cast<char>('0' + shownCiphers / 10);
  a[5] = static_cast<char>('0' + shownCiphers % 10);
  a[6] = static_cast<char>('0' + shownExtensions / 10);
  a[7] = static_cast<char>('0' + shownExtensions % 10);
  if (view.firstAlpn == nullptr || view.firstAlpnLength == 0) {
    a[8] = '0';
    a[9] = '0';
  } else {
    const uint8_t firstByte = view.firstAlpn[0];
    const uint8_t lastByte = view.firstAlpn[view.firstAlpnLength - 1];
    if (isAlphanumeric(firstByte) && isAlphanumeric(lastByte)) {
      a[8] = static_cast<char>(firstByte);
      a[9] = static_cast<char>(lastByte);
    } else {
      // FoxIO: a non-alphanumeric end switches to the hex form: first nibble of the first byte, last of the
      // last.
      a[8] = kHexDigits[firstByte >> 4];
      a[9] = kHexDigits[lastByte & 0xf];
    }
  }
  a[10] = '\0';
  memcpy(out.ja4, a, 10);
  out.ja4[10] = '_';
  if (d.rawJa4 != nullptr) {
    d.rawJa4[0] = '\0';
    appendRaw(d.rawJa4, d.rawJa4Capacity, a);
    appendRaw(d.rawJa4, d.rawJa4Capacity, "_");
  }
  const auto rawTail = [&d]() -> std::pair<char*, size_t> {
    if (d.rawJa4 == nullptr) return {nullptr, 0};
    const size_t used = strnlen(d.rawJa4, d.rawJa4Capacity);
    return {d.rawJa4 + used, d.rawJa4Capacity - used};
  };

  // JA4_b: sorted cipher list, 4-digit hex, comma-joined, SHA-256 truncated to 12.
  if (cipherCount == 0) {
    memcpy(out.ja4 + 11, kEmptyHash, 12);
  } else {
    const auto [raw, capacity] = rawTail();
    DigestWriter b(d.sha256Ctx, d.sha256, raw, capacity);
    putSortedHexList(b, d.sortScratch, cipherCount);
    b.finish(out.ja4 + 11, 12);
  }
  out.ja4[23] = '_';
  if (d.rawJa4 != nullptr) appendRaw(d.rawJa4, d.rawJa4Capacity, "_");

  // JA4_c: sorted extensions without SNI and ALPN, then "_" and the signature algorithms in their order.
  size_t hashedExtensions = 0;
  for (size_t i = 0; i < view.extensionCount; ++i) {
    const uint16_t type = d.extensions[i];
    if (!isGrease(type) && type != kExtServerName && type != kExtAlpn)
      d.sortScratch[hashedExtensions++] = type;
  }
  if (hashedExtensions == 0) {
    memcpy(out.ja4 + 24, kEmptyHash, 12);
  } else {
    const auto [raw, capacity] = rawTail();
    DigestWriter c(d.sha256Ctx, d.sha256, raw, capacity);
    putSortedHexList(c, d.sortScratch, hashedExtensions);
    bool first = true;
    for (size_t i = 0; i < view.signatureAlgorithmCount; ++i) {
      const uint16_t algorithm = load16(view.signatureAlgorithms + 2 * i);
      // The spec ignores GREASE "anywhere it sees" it, signature algorithms included.
      if (isGrease(algorithm)) continue;
      c.put(first ? '_' : ',');
      c.putHex16(algorithm);
      first = false;
    }
    c.finish(out.ja4 + 24, 12);
  }
  out.ja4[36] = '\0';
}

ClientHelloStatus parseMessage(const uint8_t* message, size_t size, char protocol, ParserState& d,
                               ClientHello& out) {
  constexpr auto kMalformed = ClientHelloStatus::kMalformed;
  out.messageLength = static_cast<uint32_t>(size);
  Reader body(message + kHandshakeHeaderLength, size - kHandshakeHeaderLength);
  HelloView view;
  Reader sessionId(nullptr, 0), ciphers(nullptr, 0), compression(nullptr, 0);
  if (!body.u16(view.legacyVersion) || !body.skip(kRandomLength) || !body.vector8(sessionId) ||
      sessionId.left() > kMaxSessionId || !body.vector16(ciphers) || ciphers.left() % 2 != 0 ||
      !body.vector8(compression)) {
    return kMalformed;
  }
  out.legacyVersion = view.legacyVersion;
  view.ciphers = ciphers.data();
  view.cipherCount = ciphers.left() / 2;

  // Extensions are optional (SSL 3.0 style hellos end after the compression methods).
  if (!body.empty()) {
    Reader extensions(nullptr, 0);
    if (!body.vector16(extensions) || !body.empty()) return kMalformed;
    // Duplicates of the extensions we read would let a policy see one value and the server another.
    uint32_t seen = 0;
    const auto once = [&seen](uint32_t bit) {
      const bool first = (seen & bit) == 0;
      seen |= bit;
      return first;
    };
    while (!extensions.empty()) {
      uint16_t type = 0;
      Reader ext(nullptr, 0);
      if (!extensions.u16(type) || !extensions.vector16(ext)) return kMalformed;
      if (view.extensionCount == kMaxExtensions) return kMalformed;  // cannot happen within the size bound
      d.extensions[view.extensionCount++] = type;
      bool ok = true;
      switch (type) {
        case kExtServerName:
          view.hasServerNameExtension = true;
          ok = once(1u << 0) && parseServerName(ext, out);
          break;
        case kExtAlpn:
          ok = once(1u << 1) && parseAlpn(ext, view, out);
          break;
        case kExtSupportedVersions:
          ok = once(1u << 2) && parseSupportedVersions(ext, out);
          break;
        case kExtSupportedGroups:
          ok = once(1u << 3) && u16List(ext, view.groups, view.groupCount);
          break;
        case kExtSignatureAlgorithms:
          ok = once(1u << 4) && u16List(ext, view.signatureAlgorithms, view.signatureAlgorithmCount);
          break;
        case kExtEcPointFormats: {
          Reader list(nullptr, 0);
          ok = once(1u << 5) && ext.vector8(list) && ext.empty();
          view.pointFormats = list.data();
          view.pointFormatCount = list.left();
          break;
        }
        case kExtEncryptedClientHello:
          ok = once(1u << 6);
          out.echOuter = true;
          break;
        default:
          break;
      }
      if (!ok) return kMalformed;
    }
  }
  if (out.maxSupportedVersion == 0) out.maxSupportedVersion = out.legacyVersion;
  fingerprint(view, protocol, d, out);
  return ClientHelloStatus::kComplete;
}

}  // namespace

}  // namespace vgate::dataplane::tls
