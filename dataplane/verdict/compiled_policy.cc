// Policy compilation and decisions: see compiled_policy.h and the evaluation notes in include/vgate/policy.h.
#include "dataplane/verdict/compiled_policy.h"

#include <netinet/in.h>
#include <rte_lcore.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

namespace vgate::dataplane {

namespace {

std::atomic<uint32_t> classifierSerial{0};

bool cidrContains(const policy::Cidr& cidr, const uint8_t* address, uint8_t ipVersion) {
  if (cidr.family != ipVersion) return false;
  uint32_t bits = cidr.prefixLength;
  for (uint32_t byte = 0; bits > 0; ++byte) {
    uint32_t take = bits >= 8 ? 8 : bits;
    uint8_t mask = static_cast<uint8_t>(0xff00u >> take);
    if ((address[byte] & mask) != (cidr.address[byte] & mask)) return false;
    bits -= take;
  }
  return true;
}

bool portIn(const std::vector<policy::PortRange>& ranges, uint16_t port) {
  if (ranges.empty()) return true;
  for (const auto& range : ranges) {
    if (port >= range.low && port <= range.high) return true;
  }
  return false;
}

bool addressIn(const std::vector<policy::Cidr>& cidrs, const uint8_t* address, uint8_t ipVersion) {
  if (cidrs.empty()) return true;
  for (const auto& cidr : cidrs) {
    if (cidrContains(cidr, address, ipVersion)) return true;
  }
  return false;
}

bool selectorMatches(const policy::ContainerSelector& selector, const policy::Endpoint& endpoint) {
  if (!selector.name.empty() && !globMatches(selector.name, endpoint.name)) return false;
  for (const auto& [key, value] : selector.labels) {
    auto found = endpoint.labels.find(key);
    if (found == endpoint.labels.end() || found->second != value) return false;
  }
  return true;
}

// The addresses an endpoint match stands for. Without a container selector, its CIDRs (empty = any). With
// one, the addresses of the containers it selects, kept only where they fall in the CIDRs if any are given:
// an empty result then means "no container", which must never widen into "any address".
std::vector<policy::Cidr> resolveEndpoint(const policy::EndpointMatch& match,
                                          const std::vector<policy::Endpoint>& endpoints,
                                          bool& matchesNothing) {
  matchesNothing = false;
  if (!match.containers.present) return match.cidrs;
  std::vector<policy::Cidr> addresses;
  for (const auto& endpoint : endpoints) {
    if (!selectorMatches(match.containers, endpoint)) continue;
    for (const auto& address : endpoint.addresses) {
      if (addressIn(match.cidrs, address.address, address.family)) {
        policy::Cidr host = address;
        host.prefixLength = address.family == 4 ? 32 : 128;
        addresses.push_back(host);
      }
    }
  }
  matchesNothing = addresses.empty();
  return addresses;
}

std::string classifierName(const char* role) {
  return std::string("vgp") + std::to_string(classifierSerial.fetch_add(1)) + role;
}

}  // namespace

bool globMatches(const std::string& pattern, const std::string& text) {
  size_t p = 0, t = 0, starP = std::string::npos, starT = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      starP = p++;
      starT = t;
    } else if (starP != std::string::npos) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Result<std::shared_ptr<const CompiledPolicy>> CompiledPolicy::compile(const policy::Policy& policy,
                                                                      uint32_t version,
                                                                      const CompileOptions& options,
                                                                      uint32_t workers) {
  auto started = std::chrono::steady_clock::now();
  std::shared_ptr<CompiledPolicy> compiled(new CompiledPolicy());
  compiled->name_ = policy.name;
  compiled->version_ = version;
  compiled->mode_ = policy.mode;
  compiled->defaultAction_ = policy.defaultAction;
  compiled->stats_.rules = static_cast<uint32_t>(policy.rules.size());
  compiled->l7RuleParts_.resize(policy.rules.size());
  compiled->reachable_.assign(policy.rules.size(), 1);
  std::vector<L34Rule> l34Only;
  std::vector<L34Rule> l7Parts;
  std::vector<L34Rule> httpParts;
  for (uint32_t id = 0; id < policy.rules.size(); ++id) {
    const policy::Rule& rule = policy.rules[id];
    compiled->ruleNames_.push_back(rule.name);
    // "log" records the rule on the flow and lets it through: the first match still ends evaluation.
    compiled->actions_.push_back(rule.action);
    L34Rule part;
    part.ruleId = id;
    part.protocol = static_cast<uint8_t>(rule.protocol);
    bool noSources = false, noDestinations = false;
    part.sources = resolveEndpoint(rule.source, policy.endpoints, noSources);
    part.destinations = resolveEndpoint(rule.destination, policy.endpoints, noDestinations);
    part.sourcePorts = rule.source.ports;
    part.destinationPorts = rule.destination.ports;
    part.direction = static_cast<uint8_t>(rule.direction);
    part.family = static_cast<uint8_t>(rule.family);
    part.icmpTypes = rule.icmpTypes;
    if (noSources || noDestinations) {
      compiled->reachable_[id] = 0;
      ++compiled->stats_.neverMatching;
      continue;
    }
    if (rule.hasL7()) {
      if (!rule.http.host.empty() || !rule.http.path.empty() || !rule.http.method.empty()) {
        httpParts.push_back(part);
      }
      compiled->l7RuleParts_[id] = part;
      l7Parts.push_back(std::move(part));
    } else {
      l34Only.push_back(std::move(part));
    }
  }
  for (const auto& endpoint : policy.endpoints) {
    compiled->endpointAddresses_.insert(compiled->endpointAddresses_.end(), endpoint.addresses.begin(),
                                        endpoint.addresses.end());
  }
  compiled->stats_.l34Rules = static_cast<uint32_t>(l34Only.size());
  compiled->stats_.l7Rules = static_cast<uint32_t>(l7Parts.size());
  compiled->stats_.httpRules = static_cast<uint32_t>(httpParts.size());
  // The L7 databases (Hyperscan, seconds for thousands of regexes) compile on their own thread while the
  // L3/L4 classifiers build on this one: the policy is ready when the slower of the two is.
  std::optional<Result<std::shared_ptr<const L7Matcher>>> l7;
  std::thread l7Thread([&] { l7.emplace(L7Matcher::compile(policy, options)); });
  int socket = static_cast<int>(rte_socket_id());
  L34ClassifierConfig l34Config;
  if (options.rteAcl) l34Config.engine = L34Engine::kRteAcl;
  auto l34 = L34Classifier::build(l34Only, classifierName("a"), socket, l34Config);
  auto l7L34 = l34 ? L34Classifier::build(l7Parts, classifierName("b"), socket, l34Config)
                   : Result<std::unique_ptr<L34Classifier>>(l34.error());
  auto httpL34 = l7L34 ? L34Classifier::build(httpParts, classifierName("c"), socket, l34Config)
                       : Result<std::unique_ptr<L34Classifier>>(l7L34.error());
  l7Thread.join();
  if (!l34) return makeError(l34.error().code, "policy '" + policy.name + "': " + l34.error().message);
  compiled->l34Only_ = std::move(l34).value();
  if (!l7L34) return makeError(l7L34.error().code, "policy '" + policy.name + "': " + l7L34.error().message);
  compiled->l7L34_ = std::move(l7L34).value();
  if (!httpL34)
    return makeError(httpL34.error().code, "policy '" + policy.name + "': " + httpL34.error().message);
  compiled->httpL34_ = std::move(httpL34).value();
  if (!*l7) return makeError(l7->error().code, "policy '" + policy.name + "': " + l7->error().message);
  compiled->l7_ = std::move(*l7).value();
  compiled->needsServerFacts_ = compiled->l7_->hasField(L7Field::kCertSubject) ||
                                compiled->l7_->hasField(L7Field::kCertIssuer) ||
                                compiled->l7_->hasField(L7Field::kSan);
  compiled->stats_.l34 = compiled->l34Only_->stats();
  compiled->stats_.l7L34 = compiled->l7L34_->stats();
  compiled->stats_.l7 = compiled->l7_->stats();
  for (uint32_t worker = 0; worker < workers; ++worker) {
    auto scratch = compiled->makeScratch();
    if (!scratch) return scratch.error();
    compiled->scratches_.push_back(std::move(scratch).value());
  }
  compiled->stats_.compileMillis =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return std::shared_ptr<const CompiledPolicy>(std::move(compiled));
}

CompiledPolicy::~CompiledPolicy() = default;

Result<std::unique_ptr<PolicyScratch>> CompiledPolicy::makeScratch() const {
  auto l7 = l7_->makeScratch();
  if (!l7) return l7.error();
  auto scratch = std::make_unique<PolicyScratch>();
  scratch->l7 = std::move(l7).value();
  scratch->matches = l7_->ruleSet();
  return scratch;
}

uint8_t CompiledPolicy::directionOf(const L34Tuple& tuple) const {
  // addressIn takes no CIDRs as any address: without endpoints no flow has a direction.
  if (endpointAddresses_.empty()) return kDirectionUnknown;
  if (addressIn(endpointAddresses_, tuple.src, tuple.ipVersion)) return kDirectionEgress;
  if (addressIn(endpointAddresses_, tuple.dst, tuple.ipVersion)) return kDirectionIngress;
  return kDirectionUnknown;
}

L34Tuple CompiledPolicy::withDirection(const L34Tuple& tuple) const {
  L34Tuple judged = tuple;
  if (judged.direction == kDirectionUnknown) judged.direction = directionOf(judged);
  return judged;
}

VerdictDecision CompiledPolicy::classifyNewFlow(const L34Tuple& flowTuple) const {
  L34Tuple tuple = withDirection(flowTuple);
  const L34Tuple* tuples[1] = {&tuple};
  uint32_t first = kNoRule;
  uint32_t firstL7 = kNoRule;
  l34Only_->classify(tuples, 1, &first);
  l7L34_->classify(tuples, 1, &firstL7);
  VerdictDecision decision;
  decision.ruleId = first;
  decision.action = actionOf(first);
  // An earlier L7 rule whose L3/L4 part matches could still take the flow: hold it until the L7 facts are in.
  decision.pending = firstL7 < first;
  return decision;
}

bool CompiledPolicy::judgesHttp(const L34Tuple& flowTuple) const {
  if (stats_.httpRules == 0) return false;
  L34Tuple tuple = withDirection(flowTuple);
  const L34Tuple* tuples[1] = {&tuple};
  uint32_t first = kNoRule;
  uint32_t firstHttp = kNoRule;
  l34Only_->classify(tuples, 1, &first);
  httpL34_->classify(tuples, 1, &firstHttp);
  return firstHttp < first;
}

bool CompiledPolicy::l34Matches(uint32_t ruleId, const L34Tuple& tuple) const {
  const L34Rule& rule = l7RuleParts_[ruleId];
  if (!reachable_[ruleId]) return false;
  if (rule.protocol != 0 && rule.protocol != tuple.protocol) return false;
  if (rule.direction != kDirectionUnknown && rule.direction != tuple.direction) return false;
  if (rule.family != 0 && rule.family != tuple.ipVersion) return false;
  if (!addressIn(rule.sources, tuple.src, tuple.ipVersion) ||
      !addressIn(rule.destinations, tuple.dst, tuple.ipVersion))
    return false;
  bool ports =
      tuple.protocol == IPPROTO_TCP || tuple.protocol == IPPROTO_UDP || tuple.protocol == IPPROTO_SCTP;
  if (!rule.icmpTypes.empty()) {
    // The rule's protocol (ICMP or ICMPv6, checked above) says the tuple carries a type.
    return portIn(rule.icmpTypes, tuple.icmpType);
  }
  if (!rule.sourcePorts.empty() || !rule.destinationPorts.empty()) {
    if (!ports) return false;
    return portIn(rule.sourcePorts, tuple.srcPort) && portIn(rule.destinationPorts, tuple.dstPort);
  }
  return true;
}

VerdictDecision CompiledPolicy::decide(const L34Tuple& flowTuple, const L7Facts& facts, uint32_t fallbackRule,
                                       PolicyScratch& scratch) const {
  L34Tuple tuple = withDirection(flowTuple);
  l7_->match(facts, *scratch.l7, scratch.matches);
  VerdictDecision decision;
  decision.ruleId = fallbackRule;
  for (uint32_t candidate = scratch.matches.nextAtOrAbove(0, fallbackRule); candidate < fallbackRule;
       candidate = scratch.matches.nextAtOrAbove(candidate + 1, fallbackRule)) {
    if (l34Matches(candidate, tuple)) {
      decision.ruleId = candidate;
      break;
    }
  }
  decision.action = actionOf(decision.ruleId);
  return decision;
}

}  // namespace vgate::dataplane
