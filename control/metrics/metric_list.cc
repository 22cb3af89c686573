// The metric catalog: see metric_list.h.
#include "control/metrics/metric_list.h"

namespace vgate::control::metrics {

namespace {

#define VGATE_METRIC_TYPE_counter MetricType::kCounter
#define VGATE_METRIC_TYPE_gauge MetricType::kGauge
#define VGATE_METRIC_TYPE_histogram MetricType::kHistogram
#define VGATE_METRIC_SPEC(id, name, type, help, ...) \
  MetricSpec{name, VGATE_METRIC_TYPE_##type, help, {__VA_ARGS__}, "VGATE_METRICS"},

std::vector<MetricSpec> buildCatalog() {
  std::vector<MetricSpec> catalog{VGATE_METRICS(VGATE_METRIC_SPEC)};
#define VGATE_METRIC_LIST_SPECS(Counters, prefix, source) \
  Counters{}.forEach(                                     \
      [&](const CounterInfo& info, uint64_t) { catalog.push_back(counterListSpec(prefix, info, source)); });
  VGATE_METRIC_COUNTER_LISTS(VGATE_METRIC_LIST_SPECS)
#undef VGATE_METRIC_LIST_SPECS
  return catalog;
}

#undef VGATE_METRIC_SPEC

// A help line as Prometheus shows it: capitalised, ending with a full stop.
std::string sentence(std::string_view text) {
  std::string out(text);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 'a' + 'A');
  if (!out.empty() && out.back() != '.') out += '.';
  return out;
}

}  // namespace

std::string snakeCase(std::string_view camel) {
  std::string out;
  for (char c : camel) {
    if (c >= 'A' && c <= 'Z') {
      if (!out.empty()) out += '_';
      out += static_cast<char>(c - 'A' + 'a');
    } else {
      out += c;
    }
  }
  return out;
}

MetricSpec counterListSpec(std::string_view prefix, const CounterInfo& info, std::string_view source) {
  MetricSpec spec;
  spec.name = std::string(prefix) + snakeCase(info.name);
  spec.type = info.kind == CounterKind::kCounter ? MetricType::kCounter : MetricType::kGauge;
  spec.help = sentence(info.help);
  spec.source = std::string(source);
  if (info.unit == "nanoseconds") {
    // busyTime -> busy_time_seconds: Prometheus wants base units.
    spec.name += "_seconds";
    spec.scale = 1e-9;
  }
  if (spec.type == MetricType::kCounter) spec.name += "_total";
  return spec;
}

std::string_view metricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

const std::vector<MetricSpec>& metricCatalog() {
  static const std::vector<MetricSpec> catalog = buildCatalog();
  return catalog;
}

std::string renderMetricTable() {
  std::string out = "| metric | type | labels | help |\n| --- | --- | --- | --- |\n";
  for (const MetricSpec& spec : metricCatalog()) {
    std::string labels;
    for (const std::string& label : spec.labels) labels += (labels.empty() ? "" : ", ") + label;
    std::string help = spec.help;
    if (spec.source != "VGATE_METRICS") help += " (`" + spec.source + "`)";
    std::string escaped;
    for (char c : help) escaped += c == '|' ? std::string("\\|") : std::string(1, c);
    out += "| `" + spec.name + "` | " + std::string(metricTypeName(spec.type)) + " | " + labels + " | " +
           escaped + " |\n";
  }
  return out;
}

}  // namespace vgate::control::metrics
