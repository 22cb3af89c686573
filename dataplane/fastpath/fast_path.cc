// The fast path's loader: see fast_path.h.
#include "dataplane/fastpath/fast_path.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

#include "dataplane/flow/flow_key_builder.h"
#include "fast_path.skel.h"
#include "vgate/clock.h"

namespace vgate::dataplane {

namespace {

uint16_t networkOrder(uint16_t port) { return static_cast<uint16_t>(port << 8 | port >> 8); }

// libbpf's own messages: warnings and errors only, on stderr with a prefix, without the kernel's note that a
// clsact qdisc already exists (a second attach finds it there, which is expected).
int printLibbpf(enum libbpf_print_level level, const char* format, va_list arguments) {
  if (level == LIBBPF_DEBUG) return 0;
  char message[512];
  std::vsnprintf(message, sizeof(message), format, arguments);
  if (std::strstr(message, "Exclusivity flag on") != nullptr) return 0;
  // libxdp's dispatcher object carries sections this libbpf does not know; they are not ours to load.
  if (std::strstr(message, "skipping unrecognized data section") != nullptr) return 0;
  return std::fprintf(stderr, "vgated: %s", message);  // libbpf's lines begin with "libbpf: "
}

// A map pinned by an earlier vgated whose shape differs from this build's (a new counter, a resized table):
// counters are dropped and recreated; anything holding state is refused with what to do, rather than
// silently losing the established flows.
Result<void> checkPinnedMap(bpf_map* map, const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return {};  // nothing pinned yet
  bpf_map_info info{};
  uint32_t length = sizeof(info);
  int rc = bpf_obj_get_info_by_fd(fd, &info, &length);
  close(fd);
  if (rc != 0) return {};
  bool same = info.type == static_cast<uint32_t>(bpf_map__type(map)) &&
              info.key_size == bpf_map__key_size(map) && info.value_size == bpf_map__value_size(map) &&
              info.max_entries == bpf_map__max_entries(map);
  if (same) return {};
  if (std::string(bpf_map__name(map)) == "vgate_fp_stats") {
    unlink(path.c_str());
    return {};
  }
  return makeError(EEXIST,
                   path + " was pinned by an incompatible vgated (different key, value or size); remove it " +
                       "to start afresh (flows in it will be judged again)");
}

bpf_tc_hook ingressHook(int ifindex) {
  bpf_tc_hook hook;
  std::memset(&hook, 0, sizeof(hook));
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = BPF_TC_INGRESS;
  return hook;
}

// vgate's one filter per port: handle 1, priority 1, so that a later vgated replaces it in place.
// `programFd` -1 for a detach, which must name the filter without a program.
bpf_tc_opts filterOptions(int programFd) {
  bpf_tc_opts options;
  std::memset(&options, 0, sizeof(options));
  options.sz = sizeof(options);
  options.handle = 1;
  options.priority = 1;
  if (programFd >= 0) options.prog_fd = programFd;
  return options;
}

Error libbpfError(int rc, const std::string& what) {
  int code = rc < 0 ? -rc : (errno != 0 ? errno : EINVAL);
  return makeError(code, what + ": " + std::strerror(code));
}

}  // namespace

vgate_fp_key fastPathKey(uint32_t ifindex, const FlowKey& flow) {
  vgate_fp_key key;
  std::memset(&key, 0, sizeof(key));
  key.ifindex = ifindex;
  std::memcpy(key.addr_low, flow.addrLow, 16);
  std::memcpy(key.addr_high, flow.addrHigh, 16);
  key.port_low = networkOrder(flow.portLow);
  key.port_high = networkOrder(flow.portHigh);
  key.protocol = flow.protocol;
  return key;
}

vgate_fp_key fastPathKey(uint32_t ifindex, const FastPathTuple& tuple) {
  ParsedPacket packet;
  packet.ipVersion = tuple.ipVersion;
  packet.protocol = tuple.protocol;
  std::memcpy(packet.srcAddr, tuple.src, 16);
  std::memcpy(packet.dstAddr, tuple.dst, 16);
  packet.srcPort = tuple.srcPort;
  packet.dstPort = tuple.dstPort;
  FlowKey flow;
  buildFlowKey(packet, flow);
  return fastPathKey(ifindex, flow);
}

Result<std::unique_ptr<FastPath>> FastPath::load(uint32_t maxFlows) {
  FastPathOptions options;
  options.maxFlows = maxFlows;
  return load(options);
}

Result<std::unique_ptr<FastPath>> FastPath::load(const FastPathOptions& options) {
  libbpf_set_print(printLibbpf);
  fast_path* skeleton = fast_path__open();
  if (skeleton == nullptr) return libbpfError(-errno, "cannot open the fast path BPF object");
  if (int rc = bpf_map__set_max_entries(skeleton->maps.vgate_fp_flows, options.maxFlows); rc != 0) {
    fast_path__destroy(skeleton);
    return libbpfError(rc, "cannot size the fast path flow map");
  }
  if (!options.pinDir.empty()) {
    // libbpf reuses a compatible map already pinned at the path, and pins a new one otherwise.
    bpf_map* maps[] = {skeleton->maps.vgate_fp_flows,  skeleton->maps.vgate_fp_stats,
                       skeleton->maps.vgate_fp_config, skeleton->maps.vgate_fp_ports,
                       skeleton->maps.vgate_fp_pairs,  skeleton->maps.vgate_fp_trunks};
    for (bpf_map* map : maps) {
      std::string path = options.pinDir + "/" + bpf_map__name(map);
      if (auto compatible = checkPinnedMap(map, path); !compatible) {
        fast_path__destroy(skeleton);
        return compatible.error();
      }
      if (int rc = bpf_map__set_pin_path(map, path.c_str()); rc != 0) {
        fast_path__destroy(skeleton);
        return libbpfError(rc, "cannot pin " + path);
      }
    }
  }
  if (int rc = fast_path__load(skeleton); rc != 0) {
    fast_path__destroy(skeleton);
    return libbpfError(
        rc, "cannot load the fast path BPF program (needs CAP_BPF and CAP_NET_ADMIN" +
                std::string(options.pinDir.empty() ? ")" : ", and " + options.pinDir + " on bpffs)"));
  }
  return std::unique_ptr<FastPath>(new FastPath(skeleton, options.keepAttached));
}

FastPath::~FastPath() {
  for (int ifindex : keepAttached_ ? std::vector<int>{} : attached_) {
    bpf_tc_hook hook = ingressHook(ifindex);
    bpf_tc_opts options = filterOptions(-1);
    bpf_tc_detach(&hook, &options);  // best effort: a port whose namespace is gone has lost it already
  }
  fast_path__destroy(skeleton_);
}

Result<void> FastPath::attachIngress(int ifindex) {
  return attach(ifindex, bpf_program__fd(skeleton_->progs.vgate_fast_path));
}

Result<void> FastPath::attachTrunkReturn(int ifindex) {
  return attach(ifindex, bpf_program__fd(skeleton_->progs.vgate_trunk_return));
}

Result<void> FastPath::attach(int ifindex, int programFd) {
  bpf_tc_hook hook = ingressHook(ifindex);
  int rc = bpf_tc_hook_create(&hook);
  if (rc != 0 && rc != -EEXIST)
    return libbpfError(rc, "cannot create the clsact hook on ifindex " + std::to_string(ifindex));
  bpf_tc_opts options = filterOptions(programFd);
  options.flags = BPF_TC_F_REPLACE;
  if (rc = bpf_tc_attach(&hook, &options); rc != 0) {
    return libbpfError(rc, "cannot attach a vgate program to ifindex " + std::to_string(ifindex));
  }
  attached_.push_back(ifindex);
  return {};
}

Result<void> FastPath::detachIngress(int ifindex) {
  bpf_tc_hook hook = ingressHook(ifindex);
  bpf_tc_opts options = filterOptions(-1);
  int rc = bpf_tc_detach(&hook, &options);
  std::erase(attached_, ifindex);
  if (rc != 0 && rc != -ENOENT && rc != -ENODEV && rc != -EINVAL) {
    return libbpfError(rc, "cannot detach from ifindex " + std::to_string(ifindex));
  }
  return {};
}

Result<void> FastPath::setFlow(const vgate_fp_key& key, uint32_t action, uint32_t redirectIfindex) {
  vgate_fp_value value;
  std::memset(&value, 0, sizeof(value));
  value.action = action;
  value.redirect_ifindex = redirectIfindex;
  value.last_seen_ns = monotonicNs();  // written counts as seen, so that an entry never hit still ages
  int rc =
      bpf_map__update_elem(skeleton_->maps.vgate_fp_flows, &key, sizeof(key), &value, sizeof(value), BPF_ANY);
  if (rc != 0) return libbpfError(rc, "cannot write a fast path flow");
  return {};
}

Result<vgate_fp_value> FastPath::flow(const vgate_fp_key& key) const {
  vgate_fp_value value;
  int rc = bpf_map__lookup_elem(skeleton_->maps.vgate_fp_flows, &key, sizeof(key), &value, sizeof(value), 0);
  if (rc != 0) return libbpfError(rc, "no such fast path flow");
  return value;
}

Result<void> FastPath::removeFlow(const vgate_fp_key& key) {
  int rc = bpf_map__delete_elem(skeleton_->maps.vgate_fp_flows, &key, sizeof(key), 0);
  if (rc != 0) return libbpfError(rc, "cannot remove a fast path flow");
  return {};
}

FastPathStats FastPath::stats() const {
  FastPathStats stats;
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return stats;
  std::vector<uint64_t> values(static_cast<size_t>(cpus));
#define VGATE_FP_STAT_ADDRESS(id, name, help) &stats.name,
  uint64_t* fields[VGATE_FP_STAT_COUNT] = {VGATE_FP_STATS(VGATE_FP_STAT_ADDRESS)};
#undef VGATE_FP_STAT_ADDRESS
  for (uint32_t stat = 0; stat < VGATE_FP_STAT_COUNT; ++stat) {
    if (bpf_map__lookup_elem(skeleton_->maps.vgate_fp_stats, &stat, sizeof(stat), values.data(),
                             values.size() * sizeof(uint64_t), 0) != 0)
      continue;
    for (uint64_t value : values) *fields[stat] += value;
  }
  return stats;
}

Result<vgate_fp_config> FastPath::config() const {
  uint32_t zero = 0;
  vgate_fp_config config;
  int rc =
      bpf_map__lookup_elem(skeleton_->maps.vgate_fp_config, &zero, sizeof(zero), &config, sizeof(config), 0);
  if (rc != 0) return libbpfError(rc, "cannot read the fast path configuration");
  return config;
}

Result<void> FastPath::writeConfig(const vgate_fp_config& config) {
  uint32_t zero = 0;
  int rc = bpf_map__update_elem(skeleton_->maps.vgate_fp_config, &zero, sizeof(zero), &config, sizeof(config),
                                BPF_ANY);
  if (rc != 0) return libbpfError(rc, "cannot write the fast path configuration");
  return {};
}

Result<void> FastPath::setFailMode(uint32_t failMode, uint32_t heartbeatTimeoutMs) {
  if (failMode != VGATE_FP_FAIL_CLOSED && failMode != VGATE_FP_FAIL_OPEN) {
    return makeError(EINVAL, "fail mode must be closed or open");
  }
  auto current = config();
  if (!current) return current.error();
  vgate_fp_config next = current.value();
  next.fail_mode = failMode;
  next.heartbeat_timeout_ms = heartbeatTimeoutMs;
  return writeConfig(next);
}

Result<void> FastPath::beat() {
  auto current = config();
  if (!current) return current.error();
  vgate_fp_config next = current.value();
  next.heartbeat_ns = monotonicNs();  // the clock bpf_ktime_get_ns reads
  return writeConfig(next);
}

Result<void> FastPath::setPort(uint32_t ifindex, uint32_t partnerIfindex, uint16_t pairId, uint8_t side) {
  vgate_fp_port port;
  std::memset(&port, 0, sizeof(port));
  port.partner_ifindex = partnerIfindex;
  port.pair_id = pairId;
  port.side = side;
  int rc = bpf_map__update_elem(skeleton_->maps.vgate_fp_ports, &ifindex, sizeof(ifindex), &port,
                                sizeof(port), BPF_ANY);
  if (rc != 0) return libbpfError(rc, "cannot write a port");
  return {};
}

Result<void> FastPath::removePort(uint32_t ifindex) {
  int rc = bpf_map__delete_elem(skeleton_->maps.vgate_fp_ports, &ifindex, sizeof(ifindex), 0);
  if (rc != 0 && rc != -ENOENT) return libbpfError(rc, "cannot remove a port");
  return {};
}

Result<void> FastPath::setPair(uint16_t pairId, uint32_t innerIfindex, uint32_t outerIfindex) {
  if (pairId == 0 || pairId >= VGATE_FP_MAX_PAIRS) return makeError(EINVAL, "pair id out of range");
  uint32_t key = pairId;
  vgate_fp_pair pair{innerIfindex, outerIfindex};
  int rc =
      bpf_map__update_elem(skeleton_->maps.vgate_fp_pairs, &key, sizeof(key), &pair, sizeof(pair), BPF_ANY);
  if (rc != 0) return libbpfError(rc, "cannot write a port pair");
  return {};
}

Result<void> FastPath::setTrunks(const std::vector<uint32_t>& trunkIfindexes, uint32_t maxFrame) {
  if (trunkIfindexes.size() > VGATE_FP_MAX_TRUNKS) return makeError(EINVAL, "too many trunks");
  for (uint32_t slot = 0; slot < trunkIfindexes.size(); ++slot) {
    uint32_t ifindex = trunkIfindexes[slot];
    int rc = bpf_map__update_elem(skeleton_->maps.vgate_fp_trunks, &slot, sizeof(slot), &ifindex,
                                  sizeof(ifindex), BPF_ANY);
    if (rc != 0) return libbpfError(rc, "cannot write a trunk");
  }
  auto current = config();
  if (!current) return current.error();
  vgate_fp_config next = current.value();
  next.trunk_count = static_cast<uint32_t>(trunkIfindexes.size());
  next.trunk_max_frame = maxFrame;
  return writeConfig(next);
}

size_t FastPath::removeFlowsIdleFor(uint64_t idleNs) {
  uint64_t now = monotonicNs();
  return removeFlowsWhere([&](const vgate_fp_key& key) {
    vgate_fp_value value;
    return bpf_map__lookup_elem(skeleton_->maps.vgate_fp_flows, &key, sizeof(key), &value, sizeof(value),
                                0) == 0 &&
           now > value.last_seen_ns && now - value.last_seen_ns > idleNs;
  });
}

size_t FastPath::removeFlowsOf(uint32_t ifindex) {
  return removeFlowsWhere([&](const vgate_fp_key& key) { return key.ifindex == ifindex; });
}

size_t FastPath::removeFlowsWhere(const std::function<bool(const vgate_fp_key&)>& doomed) {
  // Collect first: deleting while iterating a hash map may restart the walk.
  std::vector<vgate_fp_key> keys;
  vgate_fp_key key;
  vgate_fp_key next;
  const void* previous = nullptr;
  while (bpf_map__get_next_key(skeleton_->maps.vgate_fp_flows, previous, &next, sizeof(next)) == 0) {
    if (doomed(next)) keys.push_back(next);
    key = next;
    previous = &key;
  }
  size_t removed = 0;
  for (const vgate_fp_key& entry : keys) {
    if (bpf_map__delete_elem(skeleton_->maps.vgate_fp_flows, &entry, sizeof(entry), 0) == 0) ++removed;
  }
  return removed;
}

}  // namespace vgate::dataplane
