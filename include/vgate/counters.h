// Counter lists. Each set of counters is declared once, as an X-macro list beside its struct, one line per
// counter: X(name, kind, unit, help). The struct's fields, its sum, the status JSON (and so vgatectl status)
// and the metrics are generated from that list, so adding a counter is one line. `name` is the field and the
// status key (camelCase); `kind` is counter (only grows) or gauge (a level); `unit` is what it counts.
#pragma once

#include <cstdint>
#include <string_view>

namespace vgate {

enum class CounterKind : uint8_t { kCounter, kGauge };

struct CounterInfo {
  std::string_view name;
  CounterKind kind;
  std::string_view unit;
  std::string_view help;
};

}  // namespace vgate

#define VGATE_COUNTER_KIND_counter ::vgate::CounterKind::kCounter
#define VGATE_COUNTER_KIND_gauge ::vgate::CounterKind::kGauge

// The pieces a list expands into.
#define VGATE_COUNTER_FIELD(name, kind, unit, help) uint64_t name = 0;
#define VGATE_COUNTER_ADD(name, kind, unit, help) name += other.name;
#define VGATE_COUNTER_VISIT(name, kind, unit, help) \
  visitor(::vgate::CounterInfo{#name, VGATE_COUNTER_KIND_##kind, unit, help}, name);

// Inside a struct: the list's fields and forEach(visitor), which calls visitor(const CounterInfo&, uint64_t)
// once per counter, in list order.
#define VGATE_COUNTER_FIELDS(LIST)        \
  LIST(VGATE_COUNTER_FIELD)               \
  template <typename Visitor>             \
  void forEach(Visitor&& visitor) const { \
    LIST(VGATE_COUNTER_VISIT)             \
  }

// The same, plus add(), which sums another instance in: for structs that hold nothing but the list.
#define VGATE_COUNTER_MEMBERS(Type, LIST) \
  VGATE_COUNTER_FIELDS(LIST)              \
  void add(const Type& other) { LIST(VGATE_COUNTER_ADD) }
