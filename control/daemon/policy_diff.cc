// Rule-level policy differences: see policy_diff.h.
#include "control/daemon/policy_diff.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <map>
#include <set>

namespace vgate::control {

namespace {

using Json = nlohmann::json;

const char* actionName(VerdictAction action) {
  switch (action) {
    case VerdictAction::kAllow:
      return "allow";
    case VerdictAction::kDeny:
      return "deny";
    case VerdictAction::kReject:
      return "reject";
    case VerdictAction::kLog:
      return "log";
  }
  return "?";
}

const char* protocolName(policy::Protocol protocol) {
  switch (protocol) {
    case policy::Protocol::kAny:
      return "any";
    case policy::Protocol::kIcmp:
      return "icmp";
    case policy::Protocol::kTcp:
      return "tcp";
    case policy::Protocol::kUdp:
      return "udp";
    case policy::Protocol::kIcmpv6:
      return "icmpv6";
    case policy::Protocol::kSctp:
      return "sctp";
  }
  return "?";
}

std::string cidrText(const policy::Cidr& cidr) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(cidr.family == 6 ? AF_INET6 : AF_INET, cidr.address, text, sizeof(text));
  return std::string(text) + "/" + std::to_string(cidr.prefixLength);
}

Json rangesJson(const std::vector<policy::PortRange>& ranges) {
  Json out = Json::array();
  for (const auto& range : ranges) {
    out.push_back(range.low == range.high ? std::to_string(range.low)
                                          : std::to_string(range.low) + "-" + std::to_string(range.high));
  }
  return out;
}

Json endpointJson(const policy::EndpointMatch& endpoint) {
  Json cidrs = Json::array();
  for (const auto& cidr : endpoint.cidrs) cidrs.push_back(cidrText(cidr));
  Json out{{"cidrs", cidrs}, {"ports", rangesJson(endpoint.ports)}};
  if (endpoint.containers.present) {
    out["containers"] = {{"name", endpoint.containers.name}, {"labels", endpoint.containers.labels}};
  }
  return out;
}

// The paths at which two JSON values differ, descending into objects only.
void differences(const Json& a, const Json& b, const std::string& path, std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (const auto& [key, value] : a.items()) keys.insert(key);
    for (const auto& [key, value] : b.items()) keys.insert(key);
    for (const auto& key : keys) {
      static const Json kNull;
      const Json& left = a.contains(key) ? a[key] : kNull;
      const Json& right = b.contains(key) ? b[key] : kNull;
      differences(left, right, path.empty() ? key : path + "." + key, out);
    }
    return;
  }
  if (a != b) out.push_back(path);
}

// Each rule's key (see diffPolicies), in rule order.
std::vector<std::string> ruleKeys(const policy::Policy& policy) {
  std::vector<std::string> keys;
  std::map<std::string, int> seen;
  for (size_t i = 0; i < policy.rules.size(); ++i) {
    const std::string& name = policy.rules[i].name;
    std::string key = name.empty() ? "#" + std::to_string(i + 1) : name;
    int times = ++seen[key];
    keys.push_back(times == 1 ? key : key + "#" + std::to_string(times));
  }
  return keys;
}

Json endpointsJson(const policy::Policy& policy) {
  Json out = Json::array();
  for (const auto& endpoint : policy.endpoints) {
    Json addresses = Json::array();
    for (const auto& cidr : endpoint.addresses) addresses.push_back(cidrText(cidr));
    out.push_back({{"name", endpoint.name}, {"labels", endpoint.labels}, {"addresses", addresses}});
  }
  return out;
}

}  // namespace

Json ruleJson(const policy::Rule& rule) {
  const char* direction = rule.direction == policy::Direction::kEgress    ? "egress"
                          : rule.direction == policy::Direction::kIngress ? "ingress"
                                                                          : "any";
  const char* family = rule.family == policy::Family::kIpv4   ? "ipv4"
                       : rule.family == policy::Family::kIpv6 ? "ipv6"
                                                              : "any";
  Json match{{"protocol", protocolName(rule.protocol)},
             {"family", family},
             {"source", endpointJson(rule.source)},
             {"destination", endpointJson(rule.destination)},
             {"tls",
              {{"sni", rule.tls.sni},
               {"sniRegex", rule.tls.sniRegex},
               {"alpn", rule.tls.alpn},
               {"certificate",
                {{"subject", rule.tls.certificate.subject},
                 {"issuer", rule.tls.certificate.issuer},
                 {"san", rule.tls.certificate.san}}}}},
             {"http", {{"host", rule.http.host}, {"path", rule.http.path}, {"method", rule.http.method}}},
             {"payload", {{"regex", rule.payload.regex}, {"window", rule.payload.window}}},
             {"icmp", {{"types", rangesJson(rule.icmpTypes)}}}};
  return Json{{"name", rule.name},
              {"action", actionName(rule.action)},
              {"direction", direction},
              {"log", rule.log},
              {"match", std::move(match)}};
}

PolicyDiff diffPolicies(const policy::Policy& from, const policy::Policy& to) {
  PolicyDiff diff;
  auto setting = [&](const char* field, const Json& a, const Json& b) {
    if (a != b) diff.settings.push_back({field, a, b});
  };
  setting("name", from.name, to.name);
  setting("mode", from.mode == PolicyMode::kAudit ? "audit" : "enforce",
          to.mode == PolicyMode::kAudit ? "audit" : "enforce");
  setting("default", actionName(from.defaultAction), actionName(to.defaultAction));
  setting("endpoints", endpointsJson(from), endpointsJson(to));

  std::vector<std::string> fromKeys = ruleKeys(from);
  std::vector<std::string> toKeys = ruleKeys(to);
  std::map<std::string, size_t> fromIndex;
  for (size_t i = 0; i < fromKeys.size(); ++i) fromIndex[fromKeys[i]] = i;
  std::set<std::string> toSet(toKeys.begin(), toKeys.end());

  for (const auto& key : fromKeys) {
    if (!toSet.count(key)) diff.removed.push_back(key);
  }
  std::vector<std::string> commonInNewOrder;
  for (size_t i = 0; i < toKeys.size(); ++i) {
    auto found = fromIndex.find(toKeys[i]);
    if (found == fromIndex.end()) {
      diff.added.push_back(toKeys[i]);
      continue;
    }
    commonInNewOrder.push_back(toKeys[i]);
    Json before = ruleJson(from.rules[found->second]);
    Json after = ruleJson(to.rules[i]);
    before.erase("name");  // the key already matched them; "#N" keys may differ in name only by position
    after.erase("name");
    std::vector<std::string> fields;
    differences(before, after, "", fields);
    if (!fields.empty()) diff.changed.push_back({toKeys[i], std::move(fields)});
  }
  std::vector<std::string> commonInOldOrder;
  for (const auto& key : fromKeys) {
    if (toSet.count(key)) commonInOldOrder.push_back(key);
  }
  diff.orderChanged = commonInOldOrder != commonInNewOrder;
  return diff;
}

Json PolicyDiff::toJson() const {
  Json changes = Json::array();
  for (const auto& change : changed) changes.push_back({{"rule", change.rule}, {"fields", change.fields}});
  Json settingChanges = Json::array();
  for (const auto& change : settings) {
    settingChanges.push_back({{"field", change.field}, {"from", change.from}, {"to", change.to}});
  }
  return Json{{"added", added},
              {"removed", removed},
              {"changed", changes},
              {"settings", settingChanges},
              {"orderChanged", orderChanged},
              {"identical", empty()}};
}

}  // namespace vgate::control
