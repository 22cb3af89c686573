// Fuzzes the fragment reassembler: the input is a sequence of frames (each a 16-bit length then its bytes)
// with a microsecond clock step before each, fed one by one as a worker feeds fragments. Checks that every
// completed datagram parses, that cutting it again gives fragments no larger than the largest that came and
// that put back together give the datagram's bytes, and that no mbuf leaks once the reassembler goes.
#include <rte_eal.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/fragment/fragment_reassembler.h"
#include "dataplane/packet/packet_parser.h"

namespace {

using namespace vgate::dataplane;

rte_mempool* mbufs = nullptr;
constexpr unsigned kMbufs = 2048;

std::vector<uint8_t> bytesOf(const rte_mbuf* mbuf) {
  std::vector<uint8_t> bytes(mbuf->pkt_len);
  const void* data = rte_pktmbuf_read(mbuf, 0, mbuf->pkt_len, bytes.data());
  if (data != bytes.data()) std::memcpy(bytes.data(), data, bytes.size());
  return bytes;
}

// The fragmentable part of a datagram and of its pieces: after the IPv4 header, or after IPv6's fixed header
// (and, in a piece, its fragment header), placed at each piece's offset.
void checkPieces(const std::vector<uint8_t>& datagram, const ParsedPacket& whole, rte_mbuf** pieces,
                 uint16_t count, uint32_t largestIpLength) {
  const bool v4 = whole.ipVersion == 4;
  const uint32_t head = v4 ? whole.l4Offset : whole.l3Offset + 40u;
  std::vector<uint8_t> rebuilt(datagram.size() - head);
  std::vector<bool> seen(rebuilt.size());
  for (uint16_t i = 0; i < count; ++i) {
    std::vector<uint8_t> piece = bytesOf(pieces[i]);
    ParsedPacket parsed;
    if (parsePacket(piece.data(), static_cast<uint32_t>(piece.size()), static_cast<uint32_t>(piece.size()),
                    parsed) != ParseStatus::kFragment &&
        count > 1)
      std::abort();
    if (parsed.ipLength > largestIpLength && parsed.ipLength > (v4 ? 28u : 56u)) std::abort();
    uint32_t offset = parsed.fragmentOffset;
    uint32_t start = v4 ? whole.l4Offset : whole.l3Offset + 48u;
    for (uint32_t b = start; b < piece.size(); ++b) {
      uint32_t at = offset + (b - start);
      if (at >= rebuilt.size() || seen[at]) std::abort();  // pieces never overlap nor run past the datagram
      rebuilt[at] = piece[b];
      seen[at] = true;
    }
  }
  if (count > 0 && !std::equal(rebuilt.begin(), rebuilt.end(), datagram.begin() + head)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  rte_openlog_stream(stderr);
  std::vector<std::string> args = {
      "fragment-fuzz",  "--no-huge",           "-m", "256", "--no-shconf", "--no-pci",
      "--no-telemetry", "--log-level=*:error", "-l", "0"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) std::abort();
  mbufs = rte_pktmbuf_pool_create("fuzz_mbufs", kMbufs, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  if (mbufs == nullptr) std::abort();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FragmentConfig config;
  config.datagrams = 16;
  config.timeoutUs = 1000;
  {
    auto created = FragmentReassembler::create(config);
    if (!created) std::abort();
    auto reassembler = std::move(created).value();
    uint64_t nowUs = 1;
    size_t at = 0;
    while (at + 3 <= size) {
      nowUs += data[at];
      size_t length = size_t{data[at + 1]} << 8 | data[at + 2];
      at += 3;
      if (length > size - at) length = size - at;
      if (length > 2000) length = 2000;
      rte_mbuf* mbuf = rte_pktmbuf_alloc(mbufs);
      if (mbuf == nullptr) std::abort();
      std::memcpy(rte_pktmbuf_append(mbuf, static_cast<uint16_t>(length)), data + at, length);
      at += length;
      ParsedPacket packet;
      if (parsePacket(rte_pktmbuf_mtod(mbuf, const uint8_t*), mbuf->data_len, mbuf->pkt_len, packet) !=
          ParseStatus::kFragment) {
        rte_pktmbuf_free(mbuf);
        continue;
      }
      ReassembledDatagram datagram;
      if (!reassembler->add(mbuf, packet, nowUs, datagram)) continue;
      std::vector<uint8_t> whole = bytesOf(datagram.mbuf);
      ParsedPacket headers;
      ParseStatus status = parsePacket(rte_pktmbuf_mtod(datagram.mbuf, const uint8_t*),
                                       datagram.mbuf->data_len, datagram.mbuf->pkt_len, headers);
      if (status != ParseStatus::kOk && status != ParseStatus::kFragment) {
        rte_pktmbuf_free(datagram.mbuf);  // a datagram whose transport header lies is dropped by the worker
        continue;
      }
      if (status == ParseStatus::kFragment) {  // a fragment header inside the datagram: never sent on
        rte_pktmbuf_free(datagram.mbuf);
        continue;
      }
      rte_mbuf* pieces[kMaxFragmentsPerDatagram];
      datagram.setHeaders(headers);
      uint16_t count = reassembler->refragment(datagram, pieces);
      if (count > kMaxFragmentsPerDatagram) std::abort();
      checkPieces(whole, headers, pieces, count, datagram.largestIpLength);
      rte_pktmbuf_free_bulk(pieces, count);
    }
  }
  if (rte_mempool_avail_count(mbufs) != kMbufs) std::abort();  // the reassembler freed what it held
  return 0;
}
