// Tests for the flow records' rings and pools: creation errors and cleanup, one ring per worker over shared
// pools, drain order and object return, the drain deadline, and the memory estimate.
#include "dataplane/records/record_pools.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rte_errno.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstring>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "support/eal_environment.h"
#include "vgate/clock.h"

namespace vgate::dataplane {
namespace {

using ::testing::HasSubstr;

// Small pools with small caches: rte_mempool refuses a cache too large for its pool.
RecordPoolSizes smallSizes() {
  RecordPoolSizes sizes;
  sizes.ringSize = 256;
  sizes.endRecordsPerWorker = 256;
  sizes.metadataPerWorker = 64;
  sizes.endCache = 8;
  sizes.metadataCache = 4;
  return sizes;
}

std::unique_ptr<RecordPools> makePools(const std::string& name, uint16_t workers,
                                       const RecordPoolSizes& sizes = smallSizes()) {
  auto created = RecordPools::create(name, workers, sizes, SOCKET_ID_ANY);
  EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.error().message);
  return created.ok() ? std::move(created).value() : nullptr;
}

// What a worker does: takes an object from the pool, fills it, enqueues it on its ring.
void sendEnd(const RecordChannel& channel, uint64_t flowId) {
  void* object = nullptr;
  ASSERT_EQ(rte_mempool_get(channel.endRecords, &object), 0);
  auto* record = new (object) FlowEndRecord();
  record->flowId = flowId;
  record->srcPort = static_cast<uint16_t>(flowId + 1000);
  record->pkts[kToServer] = flowId * 3;
  ASSERT_EQ(rte_ring_sp_enqueue(channel.ring, object), 0);
}

void sendMetadata(const RecordChannel& channel, uint64_t flowId) {
  void* object = nullptr;
  ASSERT_EQ(rte_mempool_get(channel.metadataRecords, &object), 0);
  auto* record = new (object) FlowMetadataRecord();
  record->flowId = flowId;
  std::string sni = "flow" + std::to_string(flowId) + ".example";
  std::memcpy(record->tls.sni, sni.c_str(), sni.size() + 1);
  ASSERT_EQ(rte_ring_sp_enqueue(channel.ring, object), 0);
}

// Keeps what it is given, in order, with the fields sendEnd/sendMetadata set.
class EventSink : public RecordSink {
 public:
  struct Event {
    FlowMessageType type;
    uint64_t flowId;
    bool operator==(const Event&) const = default;
  };
  void onMetadata(const FlowMetadataRecord& metadata) override {
    events.push_back({FlowMessageType::kMetadata, metadata.flowId});
    EXPECT_EQ(std::string(metadata.tls.sni), "flow" + std::to_string(metadata.flowId) + ".example");
  }
  void onEnd(const FlowEndRecord& record) override {
    events.push_back({FlowMessageType::kEnd, record.flowId});
    EXPECT_EQ(record.srcPort, record.flowId + 1000);
    EXPECT_EQ(record.pkts[kToServer], record.flowId * 3);
  }
  std::vector<Event> events;
};

// Every object of both pools is back (rte_mempool_avail_count includes the lcore caches).
void expectPoolsFull(const RecordPools& pools, const RecordPoolSizes& sizes) {
  RecordChannel channel = pools.channel(0);
  EXPECT_EQ(rte_mempool_avail_count(channel.endRecords), sizes.endRecordsPerWorker * pools.workers());
  EXPECT_EQ(rte_mempool_avail_count(channel.metadataRecords), sizes.metadataPerWorker * pools.workers());
}

TEST(RecordPools, CreateRejectsZeroWorkersAndBadSizes) {
  auto none = RecordPools::create("rp_none", 0, smallSizes(), SOCKET_ID_ANY);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, EINVAL);
  EXPECT_THAT(none.error().message, HasSubstr("at least one worker"));

  RecordPoolSizes badRing = smallSizes();
  badRing.ringSize = 1000;  // not a power of two
  auto ring = RecordPools::create("rp_badring", 1, badRing, SOCKET_ID_ANY);
  ASSERT_FALSE(ring.ok());
  EXPECT_THAT(ring.error().message, HasSubstr("flow record ring"));
  EXPECT_THAT(ring.error().message, HasSubstr(rte_strerror(EINVAL)));
  // The pools made before the ring failed went with the failed object.
  EXPECT_EQ(rte_mempool_lookup("rp_badring_end"), nullptr);
  EXPECT_EQ(rte_mempool_lookup("rp_badring_meta"), nullptr);

  RecordPoolSizes badCache = smallSizes();
  badCache.endCache = 4096;  // beyond rte_mempool's cache limit
  auto cache = RecordPools::create("rp_badcache", 1, badCache, SOCKET_ID_ANY);
  ASSERT_FALSE(cache.ok());
  EXPECT_THAT(cache.error().message, HasSubstr("record pools"));
  EXPECT_EQ(rte_mempool_lookup("rp_badcache_meta"), nullptr);
}

TEST(RecordPools, EachWorkerHasItsOwnRingOverSharedPools) {
  const RecordPoolSizes sizes = smallSizes();
  auto pools = makePools("rp_chan", 3);
  ASSERT_TRUE(pools);
  EXPECT_EQ(pools->workers(), 3);
  std::set<rte_ring*> rings;
  for (uint16_t id = 0; id < 3; ++id) {
    RecordChannel channel = pools->channel(id);
    ASSERT_NE(channel.ring, nullptr);
    rings.insert(channel.ring);
    EXPECT_EQ(channel.ring, rte_ring_lookup(("rp_chan_rec_" + std::to_string(id)).c_str()));
    EXPECT_EQ(rte_ring_get_capacity(channel.ring), sizes.ringSize - 1);
    EXPECT_EQ(channel.endRecords, pools->channel(0).endRecords);
    EXPECT_EQ(channel.metadataRecords, pools->channel(0).metadataRecords);
  }
  EXPECT_EQ(rings.size(), 3u);
  EXPECT_NE(pools->channel(0).endRecords, pools->channel(0).metadataRecords);
  EXPECT_EQ(rte_mempool_lookup("rp_chan_end"), pools->channel(0).endRecords);
  EXPECT_EQ(rte_mempool_lookup("rp_chan_meta"), pools->channel(0).metadataRecords);
  // The pools hold every worker's share.
  expectPoolsFull(*pools, sizes);
}

TEST(RecordPools, DrainDeliversEveryRingInOrderAndReturnsTheObjects) {
  const RecordPoolSizes sizes = smallSizes();
  auto pools = makePools("rp_drain", 2);
  ASSERT_TRUE(pools);
  sendEnd(pools->channel(1), 20);
  sendEnd(pools->channel(0), 1);
  sendMetadata(pools->channel(0), 2);
  sendEnd(pools->channel(0), 3);
  sendMetadata(pools->channel(1), 21);
  EXPECT_EQ(rte_mempool_avail_count(pools->channel(0).endRecords), sizes.endRecordsPerWorker * 2 - 3);

  EventSink sink;
  EXPECT_TRUE(pools->drain(sink));
  using Event = EventSink::Event;
  const std::vector<Event> expected = {{FlowMessageType::kEnd, 1},
                                       {FlowMessageType::kMetadata, 2},
                                       {FlowMessageType::kEnd, 3},
                                       {FlowMessageType::kEnd, 20},
                                       {FlowMessageType::kMetadata, 21}};
  EXPECT_EQ(sink.events, expected);
  for (uint16_t id = 0; id < 2; ++id) EXPECT_EQ(rte_ring_count(pools->channel(id).ring), 0u);
  expectPoolsFull(*pools, sizes);

  // Nothing left: a second drain delivers nothing.
  EXPECT_TRUE(pools->drain(sink));
  EXPECT_EQ(sink.events.size(), expected.size());

  // One channel on its own.
  sendMetadata(pools->channel(1), 30);
  sendEnd(pools->channel(0), 31);
  EventSink one;
  EXPECT_TRUE(drainRecordChannel(pools->channel(1), one));
  EXPECT_EQ(one.events, (std::vector<Event>{{FlowMessageType::kMetadata, 30}}));
  EXPECT_EQ(rte_ring_count(pools->channel(0).ring), 1u);
  EXPECT_TRUE(pools->drain(one));
  expectPoolsFull(*pools, sizes);
}

TEST(RecordPools, APassedDeadlineStopsEachRingAfterOneBurst) {
  const RecordPoolSizes sizes = smallSizes();
  auto pools = makePools("rp_deadline", 2);
  ASSERT_TRUE(pools);
  for (uint64_t id = 0; id < 100; ++id) sendEnd(pools->channel(0), id);
  for (uint64_t id = 500; id < 503; ++id) sendMetadata(pools->channel(1), id);

  // A deadline in the past: one burst (64) per ring, then false while ring 0 still holds 36.
  EventSink sink;
  EXPECT_FALSE(pools->drain(sink, 1));
  ASSERT_EQ(sink.events.size(), 64u + 3u);
  EXPECT_EQ(sink.events[63].flowId, 63u);
  EXPECT_EQ(sink.events[64].flowId, 500u);
  EXPECT_EQ(rte_ring_count(pools->channel(0).ring), 36u);
  // The rest fits one burst: empty after it, so true even past the deadline.
  EXPECT_TRUE(pools->drain(sink, 1));
  ASSERT_EQ(sink.events.size(), 103u);
  for (uint64_t i = 67; i < 103; ++i) EXPECT_EQ(sink.events[i].flowId, i - 3);
  expectPoolsFull(*pools, sizes);

  // A deadline far ahead drains everything in one call.
  for (uint64_t id = 0; id < 200; ++id) sendEnd(pools->channel(1), id);
  EventSink later;
  EXPECT_TRUE(drainRecordChannel(pools->channel(1), later, monotonicNs() + 60'000'000'000ull));
  EXPECT_EQ(later.events.size(), 200u);
  expectPoolsFull(*pools, sizes);
}

TEST(RecordPools, BytesPerWorkerGrowsWithEverySize) {
  const RecordPoolSizes base = smallSizes();
  const uint64_t bytes = base.bytesPerWorker();
  EXPECT_GE(bytes, uint64_t{base.endRecordsPerWorker} * sizeof(FlowEndRecord) +
                       uint64_t{base.metadataPerWorker} * sizeof(FlowMetadataRecord) +
                       uint64_t{base.ringSize} * sizeof(void*));
  RecordPoolSizes ring = base;
  ring.ringSize *= 2;
  EXPECT_GT(ring.bytesPerWorker(), bytes);
  RecordPoolSizes ends = base;
  ends.endRecordsPerWorker *= 2;
  EXPECT_GT(ends.bytesPerWorker(), bytes);
  RecordPoolSizes metadata = base;
  metadata.metadataPerWorker *= 2;
  EXPECT_GT(metadata.bytesPerWorker(), bytes);
  // The defaults (what vgated sizes EAL's heap by) count the mempool overhead on top of the records.
  EXPECT_GT(RecordPoolSizes{}.bytesPerWorker(),
            RecordPoolSizes{}.endRecordsPerWorker * sizeof(FlowEndRecord));
}

TEST(RecordPools, NamesAreUniqueAndDestructionFreesThem) {
  const RecordPoolSizes sizes = smallSizes();
  auto first = makePools("rp_name", 1);
  auto other = makePools("rp_other", 2);
  ASSERT_TRUE(first);
  ASSERT_TRUE(other);

  auto again = RecordPools::create("rp_name", 1, sizes, SOCKET_ID_ANY);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, EEXIST);
  EXPECT_THAT(again.error().message, HasSubstr(rte_strerror(EEXIST)));

  // The failed attempt left the first one whole.
  EXPECT_EQ(rte_mempool_lookup("rp_name_end"), first->channel(0).endRecords);
  EXPECT_EQ(rte_ring_lookup("rp_name_rec_0"), first->channel(0).ring);
  sendEnd(first->channel(0), 7);
  EventSink sink;
  EXPECT_TRUE(first->drain(sink));
  EXPECT_EQ(sink.events.size(), 1u);
  expectPoolsFull(*first, sizes);

  // A ring name taken by someone else: the pools and ring 0 made before it fail are freed.
  rte_ring* squatter = rte_ring_create("rp_ring_rec_1", 64, SOCKET_ID_ANY, 0);
  ASSERT_NE(squatter, nullptr);
  auto clash = RecordPools::create("rp_ring", 2, sizes, SOCKET_ID_ANY);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code, EEXIST);
  EXPECT_THAT(clash.error().message, HasSubstr(rte_strerror(EEXIST)));
  EXPECT_EQ(rte_ring_lookup("rp_ring_rec_0"), nullptr);
  EXPECT_EQ(rte_mempool_lookup("rp_ring_end"), nullptr);
  EXPECT_EQ(rte_mempool_lookup("rp_ring_meta"), nullptr);
  rte_ring_free(squatter);
  EXPECT_TRUE(makePools("rp_ring", 2));

  // Destruction frees every name: the same name can be created again, and the other pools are untouched.
  first.reset();
  EXPECT_EQ(rte_mempool_lookup("rp_name_end"), nullptr);
  EXPECT_EQ(rte_ring_lookup("rp_name_rec_0"), nullptr);
  auto recreated = makePools("rp_name", 1);
  ASSERT_TRUE(recreated);
  expectPoolsFull(*recreated, sizes);
  EXPECT_EQ(rte_ring_lookup("rp_other_rec_1"), other->channel(1).ring);
}

}  // namespace
}  // namespace vgate::dataplane

namespace vgate::dataplane {
namespace {

// Live sizes: a record object and a ring slot for every flow a table holds (a whole table ends at once
// at shutdown), and never less than the flood buffer.
TEST(RecordPools, LiveSizesHoldAWholeFlowTable) {
  for (uint32_t flows : {1024u, 16384u, 1u << 18, 1u << 20}) {
    RecordPoolSizes sizes = liveRecordPoolSizes(flows);
    EXPECT_GE(sizes.endRecordsPerWorker, flows);
    EXPECT_GE(sizes.endRecordsPerWorker, kLiveMinBufferedRecords);
    EXPECT_GT(sizes.ringSize, sizes.endRecordsPerWorker + sizes.metadataPerWorker) << "a ring of n holds n-1";
    EXPECT_EQ(sizes.ringSize & (sizes.ringSize - 1), 0u);
    EXPECT_GE(sizes.metadataPerWorker, 1024u) << "every inspection slot's metadata at once";
  }
}

}  // namespace
}  // namespace vgate::dataplane
