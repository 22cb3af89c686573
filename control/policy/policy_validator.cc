// The schema walk: a policy document's tree checked key by key into the policy model, each problem reported
// at the position of the node at fault, all of them in one pass.
#include "control/policy/policy_validator.h"

#include <netinet/in.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <map>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

#include "control/policy/policy_regex_check.h"
#include "control/policy/policy_values.h"
#include "control/policy/policy_yaml_tree.h"
#include "dataplane/l7match/l7_patterns.h"

namespace vgate::control {
namespace {

using policy::Cidr;
using policy::ContainerSelector;
using policy::Direction;
using policy::EndpointMatch;
using policy::PortRange;
using policy::Protocol;
using policy::Rule;

constexpr const char* kApiVersion = "vgate.io/v1";
constexpr const char* kKind = "Policy";
// Bounds that keep a hostile or broken document from costing unbounded time.
constexpr size_t kMaxDocumentBytes = 32 << 20;
constexpr size_t kMaxDiagnostics = 100;

std::string sha256Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

// One key: value pair of a YAML map, with the key's position for "unknown key" errors.
struct Entry {
  const Node* keyNode;
  const Node* value;
  const std::string& key() const { return keyNode->scalar; }
};

// The known keys present in a map, each once. A handful at most, so a flat list beats a tree.
struct Fields {
  std::vector<Entry> entries;
  const Entry* find(std::string_view key) const {
    for (const Entry& entry : entries) {
      if (entry.key() == key) return &entry;
    }
    return nullptr;
  }
};

class Validator {
 public:
  Validator(const std::string& fileName, std::vector<PolicyDiagnostic>* diagnostics)
      : file_(fileName), diagnostics_(diagnostics) {}

  void run(const std::string& text, policy::Policy* policy);

 private:
  void report(const YAML::Mark& mark, std::string message, bool warning = false);
  void error(const Node* node, std::string message) { report(node->mark, std::move(message)); }
  bool full() const { return errors_ >= kMaxDiagnostics; }

  Fields fields(const Node* map, std::initializer_list<const char*> known);
  const Entry* find(const Fields& fields, const char* key) const { return fields.find(key); }
  bool expectMap(const Entry& entry);
  const std::string* scalar(const Entry& entry);
  const std::vector<const Node*>& list(const Entry& entry);
  std::vector<const Node*> stringList(const Entry& entry);
  std::optional<int> choice(const Entry& entry, std::initializer_list<const char*> choices);

  void parseSpec(const Node* spec, policy::Policy* policy);
  void parseRule(const Node* node, size_t index, Rule* rule, const Node** nameNode);
  void parseMatch(const Node* node, Rule* rule);
  void parseEndpointMatch(const Entry& entry, EndpointMatch* match, std::vector<const Node*>* portNodes);
  void parseContainers(const Entry& entry, ContainerSelector* selector);
  void parseLabels(const Entry& entry, std::map<std::string, std::string>* labels);
  void parseCidrs(const Entry& entry, std::vector<Cidr>* cidrs, std::vector<const Node*>* nodes = nullptr);
  // groups: names of spec.portGroups are allowed (not inside a group's own list).
  void parsePorts(const Entry& entry, std::vector<PortRange>* ports, bool groups = true);
  void parsePortGroups(const Entry& entry);
  // node's "N" or "N-M" within 0..max, or nothing after reporting why: "invalid <what> '...': <expected>",
  // "...: <bounds>", or "invalid <what> range '...': N is above M".
  std::optional<PortRange> parseRange(const Node* node, const char* what, uint64_t max,
                                      const std::string& expected, const char* bounds);
  void parseIcmp(const Entry& entry, const std::string& protocolName, bool protocolKnown, Protocol p,
                 std::vector<PortRange>* types);
  void parseTls(const Entry& entry, policy::TlsMatch* tls);
  void parseHttp(const Entry& entry, policy::HttpMatch* http);
  void parsePayload(const Entry& entry, policy::PayloadMatch* payload);
  void parseHostPatterns(const Entry& entry, const char* what, std::vector<std::string>* out);
  void parseRegexes(const Entry& entry, dataplane::L7Condition condition, uint32_t window,
                    std::vector<std::string>* out);
  void parseGlobs(const Entry& entry, std::vector<std::string>* out);
  void parseEndpoints(const Entry& entry, std::vector<policy::Endpoint>* endpoints);

  std::string file_;
  std::string rule_;                                          // the rule being parsed, for diagnostics
  std::map<std::string, std::vector<PortRange>> portGroups_;  // spec.portGroups, read before the rules
  std::vector<PolicyDiagnostic>* diagnostics_;
  size_t errors_ = 0;
  bool truncated_ = false;
  RegexChecker regexes_;
};

void Validator::report(const YAML::Mark& mark, std::string message, bool warning) {
  if (full()) {
    if (!truncated_) {
      truncated_ = true;
      PolicyDiagnostic last;
      last.location.file = file_;
      last.message = "too many errors; stopping after " + std::to_string(kMaxDiagnostics);
      diagnostics_->push_back(std::move(last));
    }
    return;
  }
  PolicyDiagnostic diagnostic;
  diagnostic.location.file = file_;
  diagnostic.location.line = mark.line >= 0 ? mark.line + 1 : 0;
  diagnostic.location.column = mark.column >= 0 ? mark.column + 1 : 0;
  diagnostic.rule = rule_;
  diagnostic.message = std::move(message);
  diagnostic.warning = warning;
  if (!warning) ++errors_;
  diagnostics_->push_back(std::move(diagnostic));
}

Fields Validator::fields(const Node* map, std::initializer_list<const char*> known) {
  Fields out;
  for (size_t i = 0; i + 1 < map->items.size(); i += 2) {
    const Node* key = map->items[i];
    if (!key->isScalar()) {
      error(key, std::string("keys must be strings, not ") + typeName(key->type));
      continue;
    }
    const std::string& name = key->scalar;
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return name == k; })) {
      std::string hint = suggest(name, known);
      error(key, "unknown key '" + name + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
      continue;
    }
    if (const Entry* first = out.find(name)) {
      error(key, "duplicate key '" + name + "' (first at line " +
                     std::to_string(first->keyNode->mark.line + 1) + ")");
      continue;
    }
    out.entries.push_back(Entry{key, map->items[i + 1]});
  }
  return out;
}

bool Validator::expectMap(const Entry& entry) {
  if (entry.value->isMap()) return true;
  if (!entry.value->isNull())
    error(entry.value, "'" + entry.key() + "' must be a map, not " + typeName(entry.value->type));
  return false;
}

const std::string* Validator::scalar(const Entry& entry) {
  if (entry.value->isScalar()) return &entry.value->scalar;
  // A key with nothing after it has no useful position of its own: point at the key.
  const Node* at = entry.value->isNull() ? entry.keyNode : entry.value;
  error(at, "'" + entry.key() + "' must be a string, not " + typeName(entry.value->type));
  return nullptr;
}

const std::vector<const Node*>& Validator::list(const Entry& entry) {
  static const std::vector<const Node*> kEmpty;
  if (entry.value->isNull()) return kEmpty;  // "key:" with nothing: an empty list
  if (!entry.value->isSequence()) {
    error(entry.value, "'" + entry.key() + "' must be a list, not " + typeName(entry.value->type));
    return kEmpty;
  }
  return entry.value->items;
}

std::vector<const Node*> Validator::stringList(const Entry& entry) {
  std::vector<const Node*> out;
  for (const Node* item : list(entry)) {
    if (!item->isScalar()) {
      error(item, "items of '" + entry.key() + "' must be strings, not " + typeName(item->type));
      continue;
    }
    out.push_back(item);
  }
  return out;
}

std::optional<int> Validator::choice(const Entry& entry, std::initializer_list<const char*> choices) {
  const std::string* value = scalar(entry);
  if (!value) return std::nullopt;
  int index = 0;
  for (const char* c : choices) {
    if (*value == c) return index;
    ++index;
  }
  std::string hint = suggest(*value, choices);
  error(entry.value, "invalid " + entry.key() + " '" + *value + "': expected one of " + joinChoices(choices) +
                         (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
  return std::nullopt;
}

void Validator::run(const std::string& text, policy::Policy* policy) {
  if (text.size() > kMaxDocumentBytes) {
    report(YAML::Mark(),
           "policy document is larger than " + std::to_string(kMaxDocumentBytes >> 20) + " MiB");
    return;
  }
  YamlTree tree;
  if (!tree.parse(text, [&](const YAML::Mark& mark, const std::string& message) { report(mark, message); })) {
    return;
  }
  const Node* root = tree.root();
  if (!root || root->isNull()) {
    report(YAML::Mark(), "policy document is empty");
    return;
  }
  if (!root->isMap()) {
    error(root, std::string("a policy document must be a map, not ") + typeName(root->type));
    return;
  }
  Fields top = fields(root, {"apiVersion", "kind", "metadata", "spec"});
  for (const char* key : {"apiVersion", "kind", "metadata", "spec"}) {
    if (!find(top, key)) error(root, std::string("missing required key '") + key + "'");
  }
  if (const Entry* e = find(top, "apiVersion")) {
    if (auto value = scalar(*e); value && *value != kApiVersion) {
      error(e->value, "apiVersion must be '" + std::string(kApiVersion) + "', not '" + *value + "'");
    }
  }
  if (const Entry* e = find(top, "kind")) {
    if (auto value = scalar(*e); value && *value != kKind) {
      error(e->value, "kind must be '" + std::string(kKind) + "', not '" + *value + "'");
    }
  }
  if (const Entry* e = find(top, "metadata")) {
    if (e->value->isNull()) {
      error(e->keyNode, "missing required key 'metadata.name'");
    } else if (expectMap(*e)) {
      Fields metadata = fields(e->value, {"name", "labels", "annotations"});
      if (const Entry* name = find(metadata, "name")) {
        if (auto value = scalar(*name)) {
          if (value->empty()) error(name->value, "metadata.name must not be empty");
          policy->name = *value;
        }
      } else {
        error(e->value, "missing required key 'metadata.name'");
      }
      std::map<std::string, std::string> ignored;
      if (const Entry* labels = find(metadata, "labels")) parseLabels(*labels, &ignored);
      if (const Entry* annotations = find(metadata, "annotations")) parseLabels(*annotations, &ignored);
    }
  }
  if (const Entry* e = find(top, "spec")) {
    if (e->value->isNull()) {
      error(e->keyNode, "'spec' must be a map, not null");
    } else if (expectMap(*e)) {
      parseSpec(e->value, policy);
    }
  }
  policy->sourceHash = sha256Hex(text);
}

void Validator::parseSpec(const Node* spec, policy::Policy* policy) {
  Fields f = fields(spec, {"mode", "default", "portGroups", "rules", "endpoints"});
  if (const Entry* e = find(f, "portGroups")) parsePortGroups(*e);
  if (const Entry* e = find(f, "mode")) {
    if (auto index = choice(*e, {"enforce", "audit"})) {
      policy->mode = *index == 0 ? PolicyMode::kEnforce : PolicyMode::kAudit;
    }
  }
  if (const Entry* e = find(f, "default")) {
    if (auto index = choice(*e, {"allow", "deny"})) {
      policy->defaultAction = *index == 0 ? VerdictAction::kAllow : VerdictAction::kDeny;
    }
  }
  if (const Entry* e = find(f, "rules")) {
    std::map<std::string, int> names;  // name -> line of its first definition
    std::optional<size_t> catchAll;    // index of the first rule that matches every flow
    const std::vector<const Node*>& items = list(*e);
    policy->rules.reserve(items.size());
    size_t prefetched = 0;  // the rules before this one have had their regexes checked ahead of the walk
    for (size_t i = 0; i < items.size(); ++i) {
      if (i == prefetched && !full()) prefetched = regexes_.prefetch(items, i);
      Rule rule;
      const Node* nameNode = nullptr;
      size_t errorsBefore = errors_;
      parseRule(items[i], i, &rule, &nameNode);
      rule_ = rule.name.empty() ? "#" + std::to_string(i + 1) : rule.name;
      if (!rule.name.empty()) {
        auto [it, inserted] = names.emplace(rule.name, rule.location.line);
        if (!inserted) {
          error(nameNode, "duplicate rule name '" + rule.name + "' (first defined at line " +
                              std::to_string(it->second) + ")");
        }
      }
      // First match wins, so a rule after one that matches every flow can never decide anything. "log" is
      // left out: whether a log rule ends evaluation is the data plane's call, so flagging it would be a
      // guess.
      if (catchAll) {
        const Rule& earlier = policy->rules[*catchAll];
        error(items[i], "rule can never match: rule '" + earlier.name + "' at line " +
                            std::to_string(earlier.location.line) +
                            " has no conditions and matches every flow");
      }
      bool matchesAll = rule.protocol == Protocol::kAny && rule.direction == Direction::kAny &&
                        rule.family == policy::Family::kAny && rule.source.cidrs.empty() &&
                        rule.source.ports.empty() && !rule.source.containers.present &&
                        rule.destination.cidrs.empty() && rule.destination.ports.empty() &&
                        !rule.destination.containers.present && !rule.hasL7();
      rule_.clear();
      policy->rules.push_back(std::move(rule));
      // A rule with errors may look empty only because its conditions failed to parse.
      if (!catchAll && matchesAll && errors_ == errorsBefore &&
          policy->rules.back().action != VerdictAction::kLog) {
        catchAll = policy->rules.size() - 1;
      }
    }
  }
  if (const Entry* e = find(f, "endpoints")) parseEndpoints(*e, &policy->endpoints);
}

void Validator::parseRule(const Node* node, size_t index, Rule* rule, const Node** nameNode) {
  rule_ = "#" + std::to_string(index + 1);
  rule->location.file = file_;
  rule->location.line = node->mark.line + 1;
  rule->location.column = node->mark.column + 1;
  if (!node->isMap()) {
    error(node, std::string("a rule must be a map, not ") + typeName(node->type));
    rule_.clear();
    return;
  }
  // The name first, so that every diagnostic about this rule carries it whatever the key order.
  for (size_t i = 0; i + 1 < node->items.size(); i += 2) {
    const Node* key = node->items[i];
    const Node* value = node->items[i + 1];
    if (key->isScalar() && key->scalar == "name" && value->isScalar() && !value->scalar.empty()) {
      rule_ = value->scalar;
      break;
    }
  }
  Fields f = fields(node, {"name", "action", "log", "direction", "match", "description"});
  if (const Entry* e = find(f, "name")) {
    if (auto name = scalar(*e)) {
      if (name->empty()) {
        error(e->value, "rule name must not be empty");
      } else {
        rule->name = *name;
        rule_ = *name;
        *nameNode = e->value;
      }
    }
  } else {
    error(node, "missing required key 'name'");
  }
  if (const Entry* e = find(f, "action")) {
    if (auto action = choice(*e, {"allow", "deny", "reject", "log"})) {
      rule->action = static_cast<VerdictAction>(*action);
    }
  } else {
    error(node, "missing required key 'action'");
  }
  if (const Entry* e = find(f, "log")) {
    if (auto value = scalar(*e)) {
      if (*value == "true" || *value == "True" || *value == "TRUE") {
        rule->log = true;
      } else if (*value == "false" || *value == "False" || *value == "FALSE") {
        rule->log = false;
      } else {
        error(e->value, "'log' must be true or false, not '" + *value + "'");
      }
    }
  }
  if (const Entry* e = find(f, "direction")) {
    if (auto direction = choice(*e, {"any", "egress", "ingress"})) {
      rule->direction = static_cast<Direction>(*direction);
    }
  }
  if (const Entry* e = find(f, "description")) (void)scalar(*e);
  if (const Entry* e = find(f, "match")) {
    if (expectMap(*e)) parseMatch(e->value, rule);
  }
  rule_.clear();
}

void Validator::parseMatch(const Node* node, Rule* rule) {
  Fields f = fields(node, {"protocol", "family", "source", "destination", "tls", "http", "payload", "icmp"});
  std::optional<std::string> protocolName;
  if (const Entry* e = find(f, "protocol")) {
    // Any IP protocol, by name or by its IANA number: what a rule does not name falls to the default.
    static constexpr uint8_t kProtocols[] = {IPPROTO_TCP,    IPPROTO_UDP,  IPPROTO_ICMP,
                                             IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_GRE,
                                             IPPROTO_ESP,    IPPROTO_AH,   0};
    const std::string* text = e->value && e->value->isScalar() ? &e->value->scalar : nullptr;
    unsigned number = 0;
    auto [end, problem] =
        text ? std::from_chars(text->data(), text->data() + text->size(), number) : std::from_chars_result{};
    if (text && !text->empty() && problem == std::errc() && end == text->data() + text->size()) {
      if (number > 255) {
        error(e->value, "invalid protocol '" + *text + "': an IP protocol number is 0 to 255");
      } else {
        rule->protocol = static_cast<Protocol>(number);
        protocolName = *text;
      }
    } else if (auto index = choice(*e, {"tcp", "udp", "icmp", "icmpv6", "sctp", "gre", "esp", "ah", "any"})) {
      rule->protocol = static_cast<Protocol>(kProtocols[*index]);
      protocolName = e->value->scalar;
    }
  }
  const Entry* family = find(f, "family");
  if (family) {
    static constexpr policy::Family kFamilies[] = {policy::Family::kAny, policy::Family::kIpv4,
                                                   policy::Family::kIpv6};
    if (auto index = choice(*family, {"any", "ipv4", "ipv6"})) rule->family = kFamilies[*index];
  }
  std::vector<const Node*>
      portNodes;  // each non-empty ports list, to point at when the protocol has no ports
  if (const Entry* e = find(f, "source")) parseEndpointMatch(*e, &rule->source, &portNodes);
  if (const Entry* e = find(f, "destination")) parseEndpointMatch(*e, &rule->destination, &portNodes);
  const Entry* tls = find(f, "tls");
  const Entry* http = find(f, "http");
  if (tls) parseTls(*tls, &rule->tls);
  if (http) parseHttp(*http, &rule->http);
  if (const Entry* e = find(f, "payload")) parsePayload(*e, &rule->payload);

  Protocol p = rule->protocol;
  std::string pname = protocolName.value_or("any");
  bool hasPortNumbers = p == Protocol::kTcp || p == Protocol::kUdp || p == Protocol::kSctp;
  // An unparsable protocol was already reported; don't pile a second error on it.
  if (!hasPortNumbers && (protocolName || !find(f, "protocol"))) {
    for (const Node* ports : portNodes) {
      error(ports, "ports need protocol tcp, udp or sctp (protocol is " + pname + ")");
    }
  }
  bool hasTls = !rule->tls.sni.empty() || !rule->tls.sniRegex.empty() || !rule->tls.alpn.empty() ||
                !rule->tls.certificate.subject.empty() || !rule->tls.certificate.issuer.empty() ||
                !rule->tls.certificate.san.empty();
  bool hasHttp = !rule->http.host.empty() || !rule->http.path.empty() || !rule->http.method.empty();
  // TLS runs over TCP, or over UDP as QUIC; HTTP/1 is only parsed over TCP. Anything else can never match.
  if (hasTls && p != Protocol::kAny && p != Protocol::kTcp && p != Protocol::kUdp) {
    error(tls->keyNode, "tls conditions need protocol tcp, udp (QUIC) or any (protocol is " + pname + ")");
  }
  if (hasHttp && p != Protocol::kAny && p != Protocol::kTcp) {
    error(http->keyNode, "http conditions need protocol tcp or any (protocol is " + pname + ")");
  }
  // A family and conditions only the other one can meet: the rule could never match.
  if (rule->family != policy::Family::kAny) {
    uint8_t version = static_cast<uint8_t>(rule->family);
    const std::string& fname = family->value->scalar;
    if ((p == Protocol::kIcmp && version == 6) || (p == Protocol::kIcmpv6 && version == 4)) {
      error(family->value, "protocol " + pname + " never runs over " + fname);
    }
    for (const auto* side : {&rule->source, &rule->destination}) {
      for (const Cidr& cidr : side->cidrs) {
        if (cidr.family == version) continue;
        error(family->value, std::string(side == &rule->source ? "source" : "destination") + " CIDR " +
                                 formatCidr(cidr) + " is not " + fname + ": it could never match");
      }
    }
  }
  if (const Entry* e = find(f, "icmp")) {
    // An unparsable protocol was already reported; don't pile a second error on it.
    parseIcmp(*e, pname, protocolName || !find(f, "protocol"), p, &rule->icmpTypes);
    if (!portNodes.empty())
      error(e->keyNode, "'icmp' cannot be combined with ports: ICMP messages have none");
  }
}

void Validator::parseEndpointMatch(const Entry& entry, EndpointMatch* match,
                                   std::vector<const Node*>* portNodes) {
  if (!expectMap(entry)) return;
  Fields f = fields(entry.value, {"cidrs", "containers", "ports"});
  if (const Entry* e = find(f, "cidrs")) parseCidrs(*e, &match->cidrs);
  if (const Entry* e = find(f, "containers")) parseContainers(*e, &match->containers);
  if (const Entry* e = find(f, "ports")) {
    parsePorts(*e, &match->ports);
    if (e->value->isSequence() && e->value->items.size() > 0) portNodes->push_back(e->value);
  }
}

void Validator::parseContainers(const Entry& entry, ContainerSelector* selector) {
  if (!expectMap(entry)) return;
  selector->present = true;
  Fields f = fields(entry.value, {"name", "labels"});
  if (const Entry* e = find(f, "name")) {
    if (auto name = scalar(*e)) selector->name = *name;
  }
  if (const Entry* e = find(f, "labels")) parseLabels(*e, &selector->labels);
}

void Validator::parseLabels(const Entry& entry, std::map<std::string, std::string>* labels) {
  if (!expectMap(entry)) return;
  for (size_t i = 0; i + 1 < entry.value->items.size(); i += 2) {
    const Node* key = entry.value->items[i];
    const Node* value = entry.value->items[i + 1];
    if (!key->isScalar()) {
      error(key, std::string("label keys must be strings, not ") + typeName(key->type));
      continue;
    }
    if (key->scalar.empty()) {
      error(key, "label key must not be empty");
      continue;
    }
    if (!value->isScalar()) {
      error(value->isNull() ? key : value,
            "label '" + key->scalar + "' must have a string value, not " + typeName(value->type));
      continue;
    }
    if (!labels->emplace(key->scalar, value->scalar).second) {
      error(key, "duplicate label '" + key->scalar + "'");
    }
  }
}

void Validator::parseCidrs(const Entry& entry, std::vector<Cidr>* cidrs, std::vector<const Node*>* nodes) {
  for (const Node* node : stringList(entry)) {
    const std::string& text = node->scalar;
    auto parsed = parseCidr(text);
    if (auto* reason = std::get_if<std::string>(&parsed)) {
      error(node, "invalid CIDR '" + text + "': " + *reason);
      continue;
    }
    Cidr cidr = std::get<Cidr>(parsed);
    if (clearHostBits(&cidr)) {
      error(node, "CIDR '" + text + "' has host bits set; did you mean '" + formatCidr(cidr) + "'?");
      continue;
    }
    cidrs->push_back(cidr);
    if (nodes) nodes->push_back(node);
  }
}

// Named lists of ports and ranges that rules use by name: `portGroups: {web: ["80", "443"]}`, then
// `ports: [web, "8080"]`. A name starts with a letter, so it never reads as a number.
void Validator::parsePortGroups(const Entry& entry) {
  if (!expectMap(entry)) return;
  for (size_t i = 0; i + 1 < entry.value->items.size(); i += 2) {
    const Node* key = entry.value->items[i];
    const Node* value = entry.value->items[i + 1];
    if (!key->isScalar()) {
      error(key, std::string("port group names must be strings, not ") + typeName(key->type));
      continue;
    }
    const std::string& name = key->scalar;
    if (!isPortGroupName(name)) {
      error(key, "invalid port group name '" + name + "': a letter, then letters, digits, '-', '_' or '.'");
      continue;
    }
    if (portGroups_.count(name) != 0) {
      error(key, "duplicate port group '" + name + "'");
      continue;
    }
    std::vector<PortRange> ranges;
    size_t errorsBefore = errors_;
    parsePorts(Entry{key, value}, &ranges, false);
    if (ranges.empty() && errors_ == errorsBefore) error(key, "port group '" + name + "' lists no port");
    // Kept even when it had errors, so that the rules using it are not told it does not exist.
    portGroups_.emplace(name, std::move(ranges));
  }
}

void Validator::parsePorts(const Entry& entry, std::vector<PortRange>* ports, bool groups) {
  for (const Node* node : stringList(entry)) {
    const std::string& text = node->scalar;
    if (!text.empty() && std::isalpha(static_cast<unsigned char>(text[0]))) {
      auto group = portGroups_.find(text);
      if (!groups || group == portGroups_.end()) {
        std::string known;
        for (const auto& [name, _] : portGroups_) known += (known.empty() ? "" : ", ") + name;
        error(node, "invalid port '" + text + "': " +
                        (groups ? "not a number, a range 'N-M' or a port group (spec.portGroups defines " +
                                      (known.empty() ? std::string("none") : known) + ")"
                                : std::string("a port group lists numbers and ranges 'N-M' only")));
        continue;
      }
      ports->insert(ports->end(), group->second.begin(), group->second.end());
      continue;
    }
    if (auto range =
            parseRange(node, "port", 65535, "expected a number or a range 'N-M'", "ports are 0..65535"))
      ports->push_back(*range);
  }
}

std::optional<PortRange> Validator::parseRange(const Node* node, const char* what, uint64_t max,
                                               const std::string& expected, const char* bounds) {
  auto parsed = control::parseRange(node->scalar, what, max, expected, bounds);
  if (auto* message = std::get_if<std::string>(&parsed)) {
    error(node, std::move(*message));
    return std::nullopt;
  }
  return std::get<PortRange>(parsed);
}

// match.icmp: {types: [...]}, each a number 0..255, a range "N-M" or a name resolved for the rule's protocol.
// protocolKnown: false when the protocol key failed to parse (already reported).
void Validator::parseIcmp(const Entry& entry, const std::string& protocolName, bool protocolKnown, Protocol p,
                          std::vector<PortRange>* types) {
  bool icmp = p == Protocol::kIcmp || p == Protocol::kIcmpv6;
  if (!icmp && protocolKnown) {
    error(entry.keyNode, "'icmp' needs protocol icmp or icmpv6 (protocol is " + protocolName + ")");
  }
  if (entry.value->isNull()) {
    error(entry.keyNode, "'icmp' needs 'types' (leave 'icmp' out to match every type)");
    return;
  }
  if (!expectMap(entry)) return;
  Fields f = fields(entry.value, {"types"});
  const Entry* e = find(f, "types");
  if (e == nullptr) {
    error(entry.value, "missing required key 'types'");
    return;
  }
  if (e->value->isNull() || (e->value->isSequence() && e->value->items.empty())) {
    error(e->value->isNull() ? e->keyNode : e->value,
          "'types' must not be empty (leave 'icmp' out to match every type)");
    return;
  }
  for (const Node* node : stringList(*e)) {
    const std::string& text = node->scalar;
    if (text.empty() || ((text[0] < '0' || text[0] > '9') && text[0] != '-')) {
      const IcmpTypeName* known = findIcmpTypeName(text);
      if (known == nullptr) {
        std::string hint = suggestIcmpTypeName(text);
        error(node, "unknown ICMP type '" + text + "': expected a number 0..255, a range 'N-M' or a name" +
                        (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
        continue;
      }
      if (!icmp) continue;  // no protocol to resolve it for: reported above
      int value = p == Protocol::kIcmp ? known->icmp : known->icmpv6;
      if (value < 0) {
        error(node, "ICMP type '" + text + "' does not exist for protocol " + protocolName);
        continue;
      }
      types->push_back(PortRange{static_cast<uint16_t>(value), static_cast<uint16_t>(value)});
      continue;
    }
    if (auto range = parseRange(node, "ICMP type", 255, "expected a number 0..255, a range 'N-M' or a name",
                                "types are 0..255"))
      types->push_back(*range);
  }
}

void Validator::parseHostPatterns(const Entry& entry, const char* what, std::vector<std::string>* out) {
  for (const Node* node : stringList(entry)) {
    const std::string& text = node->scalar;
    auto [normalized, ok] = normalizeHostPattern(text);
    if (!ok) {
      error(node, std::string("invalid ") + what + " pattern '" + text + "': " + normalized);
      continue;
    }
    out->push_back(std::move(normalized));
  }
}

void Validator::parseRegexes(const Entry& entry, dataplane::L7Condition condition, uint32_t window,
                             std::vector<std::string>* out) {
  for (const Node* node : stringList(entry)) {
    const std::string& text = node->scalar;
    if (full()) return;  // compiling costs; nothing more will be reported anyway
    if (auto problem = regexes_.check(text, condition, window)) {
      error(node, "invalid regex '" + text + "': " + *problem);
      continue;
    }
    out->push_back(text);
  }
}

void Validator::parseGlobs(const Entry& entry, std::vector<std::string>* out) {
  for (const Node* node : stringList(entry)) {
    const std::string& text = node->scalar;
    if (text.empty()) {
      error(node, "items of '" + entry.key() + "' must not be empty");
      continue;
    }
    out->push_back(text);
  }
}

void Validator::parseTls(const Entry& entry, policy::TlsMatch* tls) {
  if (!expectMap(entry)) return;
  Fields f = fields(entry.value, {"sni", "sniRegex", "alpn", "certificate"});
  if (const Entry* e = find(f, "sni")) parseHostPatterns(*e, "SNI", &tls->sni);
  if (const Entry* e = find(f, "sniRegex"))
    parseRegexes(*e, dataplane::L7Condition::kSniRegex, 0, &tls->sniRegex);
  if (const Entry* e = find(f, "alpn")) {
    for (const Node* node : stringList(*e)) {
      const std::string& text = node->scalar;
      // ALPN ids are opaque bytes compared exactly (RFC 7301), 1..255 of them.
      if (text.empty() || text.size() > 255) {
        error(node, "ALPN protocol id must be 1..255 bytes");
        continue;
      }
      tls->alpn.push_back(text);
    }
  }
  if (const Entry* e = find(f, "certificate")) {
    if (expectMap(*e)) {
      Fields c = fields(e->value, {"subject", "issuer", "san"});
      if (const Entry* s = find(c, "subject")) parseGlobs(*s, &tls->certificate.subject);
      if (const Entry* s = find(c, "issuer")) parseGlobs(*s, &tls->certificate.issuer);
      if (const Entry* s = find(c, "san")) parseGlobs(*s, &tls->certificate.san);
    }
  }
}

void Validator::parseHttp(const Entry& entry, policy::HttpMatch* http) {
  if (!expectMap(entry)) return;
  Fields f = fields(entry.value, {"host", "path", "method"});
  if (const Entry* e = find(f, "host")) parseHostPatterns(*e, "HTTP host", &http->host);
  if (const Entry* e = find(f, "path")) {
    for (const Node* node : stringList(*e)) {
      const std::string& text = node->scalar;
      if (text.empty()) {
        error(node, "items of 'path' must not be empty");
      } else if (const char* problem = dataplane::l7ValueProblem(dataplane::L7Condition::kHttpPath, text)) {
        error(node, "HTTP path '" + text + "' " + problem);
      } else {
        http->path.push_back(text);
      }
    }
  }
  if (const Entry* e = find(f, "method")) {
    for (const Node* node : stringList(*e)) {
      const std::string& text = node->scalar;
      if (!isToken(text)) {
        error(node, "invalid HTTP method '" + text + "'");
        continue;
      }
      http->method.push_back(text);
    }
  }
}

void Validator::parsePayload(const Entry& entry, policy::PayloadMatch* payload) {
  if (!expectMap(entry)) return;
  Fields f = fields(entry.value, {"regex", "window"});
  // The window first: the regexes are compiled with it as their max_offset.
  bool windowOk = true;
  if (const Entry* e = find(f, "window")) {
    windowOk = false;
    if (auto text = scalar(*e)) {
      if (std::optional<uint32_t> window = parsePayloadWindow(*text)) {
        payload->window = *window;
        windowOk = true;
      } else {
        error(e->value, "payload window must be 1..65536 bytes, not '" + *text + "'");
      }
    }
  }
  if (const Entry* e = find(f, "regex"))
    parseRegexes(*e, dataplane::L7Condition::kPayloadRegex, windowOk ? payload->window : 0, &payload->regex);
}

void Validator::parseEndpoints(const Entry& entry, std::vector<policy::Endpoint>* endpoints) {
  std::map<std::string, std::string> owners;  // address -> endpoint, so that replay identity is unambiguous
  std::map<std::string, int> names;
  for (const Node* node : list(entry)) {
    if (!node->isMap()) {
      error(node, std::string("an endpoint must be a map, not ") + typeName(node->type));
      continue;
    }
    policy::Endpoint endpoint;
    Fields f = fields(node, {"name", "labels", "addresses"});
    if (const Entry* e = find(f, "name")) {
      if (auto name = scalar(*e)) {
        if (name->empty()) {
          error(e->value, "endpoint name must not be empty");
        } else if (auto [it, inserted] = names.emplace(*name, e->value->mark.line + 1); !inserted) {
          error(e->value, "duplicate endpoint name '" + *name + "' (first defined at line " +
                              std::to_string(it->second) + ")");
        }
        endpoint.name = *name;
      }
    } else {
      error(node, "missing required key 'name'");
    }
    if (const Entry* e = find(f, "labels")) parseLabels(*e, &endpoint.labels);
    if (const Entry* e = find(f, "addresses")) {
      std::vector<Cidr> addresses;
      std::vector<const Node*> nodes;
      parseCidrs(*e, &addresses, &nodes);
      for (size_t i = 0; i < addresses.size(); ++i) {
        std::string key = formatCidr(addresses[i]);
        auto [it, inserted] = owners.emplace(key, endpoint.name);
        if (!inserted)
          error(nodes[i], "address " + key + " already belongs to endpoint '" + it->second + "'");
      }
      endpoint.addresses = std::move(addresses);
    }
    endpoints->push_back(std::move(endpoint));
  }
}

}  // namespace

void validateDocument(const std::string& text, const std::string& fileName, policy::Policy* policy,
                      std::vector<PolicyDiagnostic>* diagnostics) {
  Validator(fileName, diagnostics).run(text, policy);
}

}  // namespace vgate::control
