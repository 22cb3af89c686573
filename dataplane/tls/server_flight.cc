// Parses the server's first flight from its TCP payload: ServerHello fields and, below TLS 1.3, the leaf
// certificate decoded with OpenSSL and formatted like Suricata's EVE tls fields.
#include "dataplane/tls/server_flight.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <ctime>

namespace vgate::dataplane::tls {

namespace {

constexpr uint8_t kRecordChangeCipherSpec = 20;
constexpr uint8_t kRecordAlert = 21;
constexpr uint8_t kRecordHandshake = 22;
constexpr size_t kRecordHeaderLength = 5;
// RFC 5246 6.2.3: a record's fragment may be up to 2^14 + 2048 bytes (ciphertext); anything longer lies.
constexpr size_t kMaxRecordLength = (1u << 14) + 2048;

constexpr uint8_t kHelloRequest = 0;
constexpr uint8_t kServerHello = 2;
constexpr uint8_t kCertificate = 11;
constexpr uint8_t kServerKeyExchange = 12;
constexpr uint8_t kCertificateRequest = 13;
constexpr uint8_t kServerHelloDone = 14;
constexpr size_t kHandshakeHeaderLength = 4;

constexpr uint16_t kExtAlpn = 16;
constexpr uint16_t kExtSupportedVersions = 43;
constexpr uint16_t kTls12 = 0x0303;

// Handshake bytes gathered from the records. Per thread and static so that a call never allocates; the
// flight is copied because a message (the Certificate above all) may span records.
thread_local uint8_t tHandshake[kMaxServerFlightBytes];

uint32_t readU16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t readU24(const uint8_t* p) { return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2]; }

// Copies at most capacity-1 bytes, stopping at an embedded NUL, and always terminates.
void copyText(char* dst, size_t capacity, const uint8_t* src, size_t length) {
  size_t n = 0;
  while (n < length && n + 1 < capacity && src[n] != 0) {
    dst[n] = static_cast<char>(src[n]);
    ++n;
  }
  dst[n] = '\0';
}

// A bounded string builder over a fixed buffer: appends truncate silently, the result is always terminated.
class TextBuffer {
 public:
  TextBuffer(char* buffer, size_t capacity) : buffer_(buffer), capacity_(capacity) { buffer_[0] = '\0'; }

  void append(const char* text, size_t length) {
    for (size_t i = 0; i < length && text[i] != 0 && used_ + 1 < capacity_; ++i) buffer_[used_++] = text[i];
    buffer_[used_] = '\0';
  }
  void append(const char* text) { append(text, strlen(text)); }
  void appendHexByte(uint8_t byte, bool upper) {
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    const char pair[2] = {digits[byte >> 4], digits[byte & 0xf]};
    append(pair, 2);
  }

 private:
  char* buffer_;
  size_t capacity_;
  size_t used_ = 0;
};

// Gathers the payloads of handshake records into tHandshake, one whole record at a time.
class HandshakeReader {
 public:
  enum class Fill : uint8_t { kOk, kNeedMoreData, kMalformed, kTooLarge, kChangeCipherSpec };

  HandshakeReader(const uint8_t* stream, size_t length) : stream_(stream), length_(length) {}

  const uint8_t* data() const { return tHandshake; }

  // Makes at least `need` handshake bytes available, or says why not.
  Fill fill(size_t need) {
    if (need > kMaxServerFlightBytes) return Fill::kTooLarge;
    while (have_ < need) {
      const size_t remaining = length_ - position_;
      const uint8_t* record = stream_ + position_;
      if (remaining == 0) return Fill::kNeedMoreData;
      // Judge the part of a header that is there so garbage is not mistaken for a prefix.
      if (!validType(record[0])) return Fill::kMalformed;
      if (remaining >= 2 && record[1] != 3) return Fill::kMalformed;
      if (remaining < kRecordHeaderLength) return Fill::kNeedMoreData;
      const size_t payload = readU16(record + 3);
      if (payload > kMaxRecordLength) return Fill::kMalformed;
      if (record[0] == kRecordHandshake && have_ + payload > kMaxServerFlightBytes) return Fill::kTooLarge;
      if (remaining - kRecordHeaderLength < payload) return Fill::kNeedMoreData;
      if (record[0] == kRecordChangeCipherSpec) return Fill::kChangeCipherSpec;
      // An alert in the middle of the flight ends it without a certificate to read.
      if (record[0] == kRecordAlert) return Fill::kMalformed;
      memcpy(tHandshake + have_, record + kRecordHeaderLength, payload);
      have_ += payload;
      position_ += kRecordHeaderLength + payload;
    }
    return Fill::kOk;
  }

 private:
  static bool validType(uint8_t type) {
    return type == kRecordHandshake || type == kRecordChangeCipherSpec || type == kRecordAlert;
  }

  const uint8_t* stream_;
  size_t length_;
  size_t position_ = 0;
  size_t have_ = 0;
};

// Reads ServerHello's body. Returns kComplete on success (the caller decides what comes next).
ServerFlightStatus parseServerHello(const uint8_t* body, size_t length, ServerFlight& out) {
  // version(2) random(32) session_id(1+n) cipher_suite(2) compression_method(1) [extensions(2+n)]
  if (length < 2 + 32 + 1) return ServerFlightStatus::kMalformed;
  const uint32_t legacyVersion = readU16(body);
  if ((legacyVersion >> 8) != 3) return ServerFlightStatus::kMalformed;
  size_t offset = 34;
  const size_t sessionIdLength = body[offset++];
  if (sessionIdLength > 32 || length - offset < sessionIdLength + 3) return ServerFlightStatus::kMalformed;
  offset += sessionIdLength;
  out.cipherSuite = static_cast<uint16_t>(readU16(body + offset));
  offset += 3;
  out.version = static_cast<uint16_t>(legacyVersion);
  if (offset == length) return ServerFlightStatus::kComplete;  // no extensions at all (allowed)
  if (length - offset < 2) return ServerFlightStatus::kMalformed;
  const size_t extensionsLength = readU16(body + offset);
  offset += 2;
  if (length - offset != extensionsLength) return ServerFlightStatus::kMalformed;
  while (offset < length) {
    if (length - offset < 4) return ServerFlightStatus::kMalformed;
    const uint32_t type = readU16(body + offset);
    const size_t extLength = readU16(body + offset + 2);
    offset += 4;
    if (length - offset < extLength) return ServerFlightStatus::kMalformed;
    const uint8_t* ext = body + offset;
    offset += extLength;
    if (type == kExtSupportedVersions) {
      // In ServerHello this extension holds exactly the selected version (RFC 8446 4.2.1).
      if (extLength != 2) return ServerFlightStatus::kMalformed;
      out.version = static_cast<uint16_t>(readU16(ext));
    } else if (type == kExtAlpn) {
      // ProtocolNameList with exactly one name (RFC 7301 3.1).
      if (extLength < 3 || readU16(ext) != extLength - 2 || ext[2] == 0 || ext[2] != extLength - 3) {
        return ServerFlightStatus::kMalformed;
      }
      copyText(out.alpn, sizeof(out.alpn), ext + 3, ext[2]);
    }
  }
  return ServerFlightStatus::kComplete;
}

// Suricata's EVE tls.subject / tls.issuerdn come from the Rust x509-parser crate's X509Name Display: RDNs in
// DER order joined by ", ", attributes of a multi-valued RDN joined by " + ", "KEY=value" with the short name
// (C, ST, L, O, OU, CN, emailAddress, ...) and the value's bytes unescaped; non-string values in upper-case
// hex. OpenSSL's short names match x509-parser's abbreviations for the usual attributes; an unknown OID is
// printed dotted. One deliberate difference: BMPString/UniversalString are converted to UTF-8, where
// x509-parser fails.
void formatName(const X509_NAME* name, char* dst, size_t capacity) {
  TextBuffer text(dst, capacity);
  if (name == nullptr) return;
  int previousSet = -1;
  const int count = X509_NAME_entry_count(name);
  for (int i = 0; i < count; ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    if (entry == nullptr) continue;
    const int set = X509_NAME_ENTRY_set(entry);
    if (i > 0) text.append(set == previousSet ? " + " : ", ");
    previousSet = set;

    const ASN1_OBJECT* object = X509_NAME_ENTRY_get_object(entry);
    const int nid = OBJ_obj2nid(object);
    const char* shortName = nid == NID_undef ? nullptr : OBJ_nid2sn(nid);
    if (shortName != nullptr) {
      text.append(shortName);
    } else {
      char oid[128];
      const int written = OBJ_obj2txt(oid, sizeof(oid), object, 1);
      if (written > 0) text.append(oid);
    }
    text.append("=");

    const ASN1_STRING* value = X509_NAME_ENTRY_get_data(entry);
    if (value == nullptr) continue;
    const int type = ASN1_STRING_type(value);
    const auto* bytes = ASN1_STRING_get0_data(value);
    const int length = ASN1_STRING_length(value);
    switch (type) {
      case V_ASN1_UTF8STRING:
      case V_ASN1_PRINTABLESTRING:
      case V_ASN1_IA5STRING:
      case V_ASN1_T61STRING:
      case V_ASN1_NUMERICSTRING:
      case V_ASN1_VISIBLESTRING:
      case V_ASN1_GENERALSTRING:
      case V_ASN1_GRAPHICSTRING:
      case V_ASN1_VIDEOTEXSTRING:
        text.append(reinterpret_cast<const char*>(bytes), static_cast<size_t>(length));
        break;
      case V_ASN1_BMPSTRING:
      case V_ASN1_UNIVERSALSTRING: {
        unsigned char* utf8 = nullptr;
        const int utf8Length = ASN1_STRING_to_UTF8(&utf8, value);
        if (utf8Length > 0) text.append(reinterpret_cast<const char*>(utf8), static_cast<size_t>(utf8Length));
        OPENSSL_free(utf8);
        break;
      }
      default:
        for (int b = 0; b < length; ++b) text.appendHexByte(bytes[b], true);
        break;
    }
  }
}

// The serial as x509-parser's raw_serial: the INTEGER's content octets as encoded (a leading 00 included).
void formatSerial(const X509* cert, char* dst, size_t capacity) {
  TextBuffer text(dst, capacity);
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  if (serial == nullptr) return;
  unsigned char* der = nullptr;
  const int derLength = i2d_ASN1_INTEGER(serial, &der);
  if (derLength > 2 && der != nullptr) {
    // Skip tag and length (short or long form) to the content octets.
    size_t offset = 1;
    const uint8_t first = der[offset++];
    if (first & 0x80) offset += first & 0x7f;
    for (size_t i = offset; i < static_cast<size_t>(derLength); ++i) {
      if (i > offset) text.append(":");
      text.appendHexByte(der[i], true);
    }
  }
  OPENSSL_free(der);
}

void formatFingerprint(const uint8_t* der, size_t length, char* dst, size_t capacity) {
  TextBuffer text(dst, capacity);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLength = 0;
  if (EVP_Digest(der, length, digest, &digestLength, EVP_sha1(), nullptr) != 1) return;
  for (unsigned int i = 0; i < digestLength; ++i) {
    if (i > 0) text.append(":");
    text.appendHexByte(digest[i], false);
  }
}

int64_t epochSeconds(const ASN1_TIME* time) {
  struct tm parts = {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &parts) != 1) return 0;
  return static_cast<int64_t>(timegm(&parts));
}

void collectSans(const X509* cert, ServerCertificate& out) {
  int critical = 0;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &critical, nullptr));
  if (names == nullptr) return;
  const int count = sk_GENERAL_NAME_num(names);
  for (int i = 0; i < count && out.sanCount < kMaxSanEntries; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    char* slot = out.sans[out.sanCount];
    if (name->type == GEN_DNS) {
      const ASN1_IA5STRING* dns = name->d.dNSName;
      if (dns == nullptr) continue;
      copyText(slot, kMaxSanLength + 1, ASN1_STRING_get0_data(dns),
               static_cast<size_t>(ASN1_STRING_length(dns)));
      ++out.sanCount;
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      if (ip == nullptr) continue;
      const int ipLength = ASN1_STRING_length(ip);
      const int family = ipLength == 4 ? AF_INET : (ipLength == 16 ? AF_INET6 : 0);
      // Other lengths (name constraints' address/mask pairs) have no textual form worth logging.
      if (family != 0 && inet_ntop(family, ASN1_STRING_get0_data(ip), slot, kMaxSanLength + 1) != nullptr) {
        ++out.sanCount;
      }
    }
  }
  GENERAL_NAMES_free(names);
}

// Reads the Certificate message body (TLS <= 1.2) and decodes its first entry.
ServerFlightStatus parseCertificate(const uint8_t* body, size_t length, ServerFlight& out) {
  if (length < 3 || readU24(body) != length - 3) return ServerFlightStatus::kMalformed;
  // Walk every entry so that a lying length anywhere in the chain is reported as such.
  size_t offset = 3;
  const uint8_t* leaf = nullptr;
  size_t leafLength = 0;
  while (offset < length) {
    if (length - offset < 3) return ServerFlightStatus::kMalformed;
    const size_t entryLength = readU24(body + offset);
    offset += 3;
    if (length - offset < entryLength) return ServerFlightStatus::kMalformed;
    if (leaf == nullptr) {
      leaf = body + offset;
      leafLength = entryLength;
    }
    offset += entryLength;
  }
  if (leaf == nullptr) return ServerFlightStatus::kComplete;  // an empty chain: nothing to show
  if (leafLength == 0) return ServerFlightStatus::kBadCertificate;

  const unsigned char* cursor = leaf;
  X509* cert = d2i_X509(nullptr, &cursor, static_cast<long>(leafLength));
  if (cert == nullptr) {
    // Leave no decoding errors behind on this thread's OpenSSL error queue for unrelated callers to find.
    ERR_clear_error();
    return ServerFlightStatus::kBadCertificate;
  }
  ServerCertificate& certificate = out.certificate;
  formatName(X509_get_subject_name(cert), certificate.subject, sizeof(certificate.subject));
  formatName(X509_get_issuer_name(cert), certificate.issuer, sizeof(certificate.issuer));
  formatSerial(cert, certificate.serial, sizeof(certificate.serial));
  // Suricata hashes the bytes as sent, not a re-encoding.
  formatFingerprint(leaf, leafLength, certificate.fingerprint, sizeof(certificate.fingerprint));
  certificate.notBefore = epochSeconds(X509_get0_notBefore(cert));
  certificate.notAfter = epochSeconds(X509_get0_notAfter(cert));
  collectSans(cert, certificate);
  X509_free(cert);
  ERR_clear_error();
  out.hasCertificate = true;
  return ServerFlightStatus::kComplete;
}

ServerFlightStatus fromFill(HandshakeReader::Fill fill) {
  switch (fill) {
    case HandshakeReader::Fill::kNeedMoreData:
      return ServerFlightStatus::kNeedMoreData;
    case HandshakeReader::Fill::kTooLarge:
      return ServerFlightStatus::kTooLarge;
    default:
      return ServerFlightStatus::kMalformed;
  }
}

}  // namespace

const char* serverFlightStatusName(ServerFlightStatus status) {
  switch (status) {
    case ServerFlightStatus::kComplete:
      return "complete";
    case ServerFlightStatus::kEncrypted:
      return "encrypted";
    case ServerFlightStatus::kNeedMoreData:
      return "need_more_data";
    case ServerFlightStatus::kNotTls:
      return "not_tls";
    case ServerFlightStatus::kMalformed:
      return "malformed";
    case ServerFlightStatus::kBadCertificate:
      return "bad_certificate";
    case ServerFlightStatus::kTooLarge:
      return "too_large";
    case ServerFlightStatus::kCount:
      break;
  }
  return "unknown";
}

ServerFlightStatus parseServerFlight(const uint8_t* stream, size_t length, ServerFlight& out) {
  out = ServerFlight{};
  if (stream == nullptr || length == 0) return ServerFlightStatus::kNeedMoreData;
  // The flight opens with a handshake record of TLS (major version 3); anything else is another protocol.
  if (stream[0] != kRecordHandshake || (length >= 2 && stream[1] != 3)) return ServerFlightStatus::kNotTls;

  HandshakeReader reader(stream, length);
  size_t consumed = 0;
  bool sawServerHello = false;
  for (;;) {
    HandshakeReader::Fill fill = reader.fill(consumed + kHandshakeHeaderLength);
    if (fill == HandshakeReader::Fill::kChangeCipherSpec) {
      // After ServerHello and at a message boundary, ChangeCipherSpec means an abbreviated (resumed)
      // handshake: the server sends no certificate and what follows is encrypted.
      if (!sawServerHello) return ServerFlightStatus::kMalformed;
      HandshakeReader::Fill partial = reader.fill(consumed + 1);
      if (partial != HandshakeReader::Fill::kChangeCipherSpec) return ServerFlightStatus::kMalformed;
      return ServerFlightStatus::kComplete;
    }
    if (fill != HandshakeReader::Fill::kOk) return fromFill(fill);
    const uint8_t* header = reader.data() + consumed;
    const uint8_t type = header[0];
    const size_t messageLength = readU24(header + 1);
    const size_t end = consumed + kHandshakeHeaderLength + messageLength;
    fill = reader.fill(end);
    if (fill == HandshakeReader::Fill::kChangeCipherSpec) return ServerFlightStatus::kMalformed;
    if (fill != HandshakeReader::Fill::kOk) return fromFill(fill);
    const uint8_t* body = reader.data() + consumed + kHandshakeHeaderLength;
    consumed = end;

    if (!sawServerHello) {
      if (type == kHelloRequest && messageLength == 0) continue;
      if (type != kServerHello) return ServerFlightStatus::kMalformed;
      const ServerFlightStatus status = parseServerHello(body, messageLength, out);
      if (status != ServerFlightStatus::kComplete) return status;
      // Past TLS 1.2 (including drafts and private versions) the certificate is encrypted.
      if (out.version > kTls12 || (out.version >> 8) != 3) return ServerFlightStatus::kEncrypted;
      sawServerHello = true;
      continue;
    }
    switch (type) {
      case kCertificate:
        return parseCertificate(body, messageLength, out);
      case kServerKeyExchange:
      case kCertificateRequest:
      case kServerHelloDone:
        // These follow Certificate when there is one: this cipher suite sends none (anonymous or PSK).
        return ServerFlightStatus::kComplete;
      default:
        // NewSessionTicket, CertificateStatus, unknown messages: not what we are looking for.
        continue;
    }
  }
}

}  // namespace vgate::dataplane::tls
