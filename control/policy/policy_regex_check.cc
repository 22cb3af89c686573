// Regex checks: the loader's own bounds, then Hyperscan's parser on what dataplane/l7match compiles, with the
// results kept by expression and made ahead of the walk on several threads.
#include "control/policy/policy_regex_check.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>

#include "control/policy/policy_values.h"

namespace vgate::control {

using dataplane::L7Condition;
using dataplane::L7Expression;

namespace {

constexpr size_t kMaxRegexLength = 8192;
// Checks made ahead of the walk: at most this many at a time, on up to kMaxRegexThreads threads, each given
// at least kMinChecksPerThread.
constexpr size_t kRegexBatch = 1024;
constexpr size_t kMaxRegexThreads = 8;
constexpr size_t kMinChecksPerThread = 16;

// What is wrong with a regex before Hyperscan sees it, if anything.
std::optional<std::string> regexPrecheck(const std::string& pattern) {
  if (pattern.empty()) return std::string("empty pattern");
  if (pattern.find('\0') != std::string::npos) return std::string("contains a NUL byte (write it as \\x00)");
  if (pattern.size() > kMaxRegexLength) {
    return "longer than " + std::to_string(kMaxRegexLength) + " characters";
  }
  return std::nullopt;
}

// What Hyperscan is asked about a regex, in order: an SNI regex as the user wrote it first (wrapped as
// ^(?:...)\z, an unbalanced "a)(b" would otherwise pass, and Hyperscan's positions are then the user's),
// then what the matcher compiles.
std::vector<L7Expression> checkedExpressions(const std::string& pattern, L7Condition condition,
                                             uint32_t window) {
  L7Expression compiled = dataplane::l7Expression(condition, pattern, window);
  if (condition != L7Condition::kSniRegex) return {std::move(compiled)};
  L7Expression raw = compiled;
  raw.expression = pattern;
  return {std::move(raw), std::move(compiled)};
}

std::string regexKey(const L7Expression& expression) {
  return std::to_string(expression.flags) + "/" + std::to_string(expression.maxOffset) + "/" +
         expression.expression;
}

// The CPUs this thread may run on, which the threads it starts inherit: the count from the affinity mask, not
// the machine's, so that a loader confined to housekeeping cores stays there.
size_t usableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return static_cast<size_t>(std::max(CPU_COUNT(&set), 1));
}

}  // namespace

std::optional<std::string> RegexChecker::check(const std::string& pattern, L7Condition condition,
                                               uint32_t window) {
  if (auto problem = regexPrecheck(pattern)) return problem;
  for (const L7Expression& expression : checkedExpressions(pattern, condition, window)) {
    if (auto problem = hyperscan(expression)) return problem;
  }
  return std::nullopt;
}

std::optional<std::string> RegexChecker::hyperscan(const L7Expression& expression) {
  std::string key = regexKey(expression);
  if (auto it = results_.find(key); it != results_.end()) return it->second;
  std::optional<std::string> result = dataplane::l7ExpressionError(expression);
  results_.emplace(std::move(key), result);
  return result;
}

// The walk finds the results made here, and makes itself any check not foreseen, so diagnostics do not
// depend on this; the batches bound the work wasted once the walk stops checking (too many errors).
size_t RegexChecker::prefetch(const std::vector<const Node*>& rules, size_t first) {
  struct Check {
    std::string key;
    L7Expression expression;
    std::optional<std::string> result;
    bool done = false;
  };
  std::vector<Check> checks;
  std::unordered_set<std::string> keys;
  auto add = [&](const std::string& pattern, L7Condition condition, uint32_t window) {
    for (L7Expression& expression : checkedExpressions(pattern, condition, window)) {
      std::string key = regexKey(expression);
      if (results_.count(key) != 0 || !keys.insert(key).second) continue;
      checks.push_back(Check{std::move(key), std::move(expression), std::nullopt});
    }
  };
  size_t next = first;
  while (next < rules.size() && checks.size() < kRegexBatch) {
    const Node* match = child(rules[next++], "match");
    if (const Node* list = child(child(match, "tls"), "sniRegex"); list && list->isSequence()) {
      for (const Node* item : list->items) {
        if (checks.size() >= kRegexBatch) break;
        if (!item->isScalar() || regexPrecheck(item->scalar)) continue;
        add(item->scalar, L7Condition::kSniRegex, 0);
      }
    }
    const Node* payload = child(match, "payload");
    if (const Node* list = child(payload, "regex"); list && list->isSequence()) {
      // The window as parsePayload reads it: the default, the value given, or 0 when that is invalid.
      uint32_t window = policy::PayloadMatch{}.window;
      if (const Node* given = child(payload, "window")) {
        window = given->isScalar() ? parsePayloadWindow(given->scalar).value_or(0) : 0;
      }
      for (const Node* item : list->items) {
        if (checks.size() >= kRegexBatch) break;
        if (!item->isScalar() || regexPrecheck(item->scalar)) continue;
        add(item->scalar, L7Condition::kPayloadRegex, window);
      }
    }
  }
  size_t threads = std::min({usableCpus(), kMaxRegexThreads, checks.size() / kMinChecksPerThread});
  if (threads < 2) return next;  // not worth a thread: the walk checks them as it goes
  std::atomic<size_t> taken{0};
  auto work = [&] {
    for (size_t i; (i = taken.fetch_add(1, std::memory_order_relaxed)) < checks.size();) {
      try {
        checks[i].result = dataplane::l7ExpressionError(checks[i].expression);
        checks[i].done = true;
      } catch (...) {
        // Out of memory: left to the walk, which reports it.
      }
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(threads);  // first: once a thread runs, only starting another may throw, and that is caught
  try {
    while (workers.size() + 1 < threads) workers.emplace_back(work);
  } catch (const std::system_error&) {
    // Fewer threads than hoped: the ones running (this one at least) take all the checks.
  }
  work();
  for (std::thread& worker : workers) worker.join();
  for (Check& check : checks) {
    if (check.done) results_.emplace(std::move(check.key), std::move(check.result));
  }
  return next;
}

}  // namespace vgate::control
