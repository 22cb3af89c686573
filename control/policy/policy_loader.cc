// Policy loader: walks the YAML tree by hand (not yaml-cpp's converters) so that each problem is reported
// with the position of the node at fault, and so that one pass collects all of them.
#include "control/policy/policy_loader.h"

#include <arpa/inet.h>
#include <hs/hs.h>
#include <idn2.h>
#include <openssl/evp.h>
#include <sched.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>
#include <yaml.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

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
// Bounds that keep a hostile or broken document from costing unbounded time: a hand-written policy is a few
// KiB, a generated 100k-rule one about 15 MiB.
constexpr size_t kMaxDocumentBytes = 32 << 20;
constexpr size_t kMaxDiagnostics = 100;
constexpr size_t kMaxRegexLength = 8192;
constexpr size_t kMaxFileBytes = 32 << 20;
constexpr uint32_t kMaxWindow = 65536;
// Hyperscan checks made ahead of the walk, on several threads: at most this many at a time (about 65 ms of
// work on one core of a VM), on up to kMaxRegexThreads threads, each given at least kMinChecksPerThread.
constexpr size_t kRegexBatch = 1024;
constexpr size_t kMaxRegexThreads = 8;
constexpr size_t kMinChecksPerThread = 16;

const char* typeName(YAML::NodeType::value type) {
  switch (type) {
    case YAML::NodeType::Scalar:
      return "a string";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Undefined:
      break;
  }
  return "undefined";
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Levenshtein distance, case-insensitive; keys are short, so the quadratic table is fine (long input is
// capped).
int editDistance(std::string_view a, std::string_view b) {
  if (a.size() > 64 || b.size() > 64) return 1000;
  std::string x = lower(a), y = lower(b);
  std::vector<int> previous(y.size() + 1), current(y.size() + 1);
  for (size_t j = 0; j <= y.size(); ++j) previous[j] = static_cast<int>(j);
  for (size_t i = 1; i <= x.size(); ++i) {
    current[0] = static_cast<int>(i);
    for (size_t j = 1; j <= y.size(); ++j) {
      int substitution = previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[y.size()];
}

// The nearest candidate within edit distance 2, for "did you mean" hints; empty when none is close.
// The candidate closest to word within edit distance 2, or "" (nameOf(candidate) gives its text).
template <typename Candidates, typename NameOf>
std::string suggestBy(std::string_view word, const Candidates& candidates, NameOf nameOf) {
  std::string best;
  int bestDistance = 3;
  for (const auto& candidate : candidates) {
    int distance = editDistance(word, nameOf(candidate));
    if (distance < bestDistance) {
      bestDistance = distance;
      best = nameOf(candidate);
    }
  }
  return best;
}

std::string suggest(std::string_view word, std::initializer_list<const char*> candidates) {
  return suggestBy(word, candidates, [](const char* candidate) { return candidate; });
}

std::string joinChoices(std::initializer_list<const char*> choices) {
  std::string out;
  for (const char* choice : choices) {
    if (!out.empty()) out += ", ";
    out += choice;
  }
  return out;
}

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

bool allDigits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Parses a decimal number of at most `maxDigits` digits; nullopt when not all digits.
std::optional<uint64_t> parseNumber(std::string_view text, size_t maxDigits = 10) {
  if (!allDigits(text) || text.size() > maxDigits) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) value = value * 10 + static_cast<uint64_t>(c - '0');
  return value;
}

std::string formatCidr(const Cidr& cidr) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(cidr.family == 4 ? AF_INET : AF_INET6, cidr.address, buffer, sizeof(buffer));
  return std::string(buffer) + "/" + std::to_string(cidr.prefixLength);
}

// Parses "addr" or "addr/len" (IPv4 or IPv6); on failure returns the reason.
std::variant<Cidr, std::string> parseCidr(const std::string& text) {
  Cidr cidr;
  size_t slash = text.find('/');
  std::string address = text.substr(0, slash);
  if (address.find('\0') != std::string::npos) return std::string("not an IPv4 or IPv6 address");
  bool v6 = address.find(':') != std::string::npos;
  cidr.family = v6 ? 6 : 4;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, address.c_str(), cidr.address) != 1) {
    return std::string("not an IPv4 or IPv6 address");
  }
  int maxPrefix = v6 ? 128 : 32;
  if (slash == std::string::npos) {
    cidr.prefixLength = static_cast<uint8_t>(maxPrefix);
    return cidr;
  }
  std::optional<uint64_t> prefix = parseNumber(std::string_view(text).substr(slash + 1), 3);
  if (!prefix || *prefix > static_cast<uint64_t>(maxPrefix)) {
    return "prefix length must be 0.." + std::to_string(maxPrefix);
  }
  cidr.prefixLength = static_cast<uint8_t>(*prefix);
  return cidr;
}

// Zeroes host bits; returns whether any were set.
bool clearHostBits(Cidr* cidr) {
  int bytes = cidr->family == 4 ? 4 : 16;
  bool changed = false;
  for (int i = 0; i < bytes; ++i) {
    int bitsKept = std::clamp(static_cast<int>(cidr->prefixLength) - i * 8, 0, 8);
    uint8_t mask = static_cast<uint8_t>(bitsKept == 0 ? 0 : 0xff << (8 - bitsKept));
    if ((cidr->address[i] & ~mask) != 0) changed = true;
    cidr->address[i] &= mask;
  }
  return changed;
}

// Normalizes a TLS SNI / HTTP host pattern to what is seen on the wire: lower case, no trailing dot,
// A-labels. Returns the normalized pattern or, on failure, the reason (second = false).
std::pair<std::string, bool> normalizeHostPattern(const std::string& pattern) {
  std::string name = pattern;
  std::string prefix;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return {"contains a control character", false};
  }
  if (name.empty()) return {"empty pattern", false};
  // A bare "*" is any non-empty name, which is how dataplane/l7match compiles it.
  if (name == "*") return {name, true};
  if (name.size() >= 2 && name.compare(0, 2, "*.") == 0) {
    prefix = "*.";
    name = name.substr(2);
  }
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty()) return {"no name after '" + prefix + "'", false};
  if (name.find('*') != std::string::npos) {
    return {"'*' is only allowed as the whole first label ('*.example.com')", false};
  }
  bool ascii =
      std::all_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) {
    name = lower(name);
  } else {
    // Unicode names go on the wire as A-labels (RFC 5891); UTS 46 non-transitional mapping also lower-cases.
    char* converted = nullptr;
    int rc = idn2_to_ascii_8z(name.c_str(), &converted, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
      return {std::string("cannot convert to an A-label: ") + idn2_strerror(rc), false};
    }
    name = lower(converted);
    idn2_free(converted);
  }
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view label =
        std::string_view(name).substr(start, dot == std::string::npos ? dot : dot - start);
    if (label.empty()) return {"empty label", false};
    if (label.size() > 63) return {"label longer than 63 characters", false};
    for (char c : label) {
      bool ldh = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      if (!ldh) {
        return {std::string("character '") + c + "' is not allowed in a host name (letters, digits, '-')",
                false};
      }
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  std::string normalized = prefix + name;
  if (normalized.size() > 253) return {"name longer than 253 characters", false};
  return {normalized, true};
}

// RFC 9110 tchar: what an HTTP method may be made of.
bool isToken(const std::string& text) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           kExtra.find(c) != std::string_view::npos;
  });
}

constexpr unsigned int kRegexFlags = HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY;
constexpr unsigned int kSniRegexFlags = kRegexFlags | HS_FLAG_CASELESS;
constexpr unsigned int kPayloadRegexFlags = kRegexFlags | HS_FLAG_DOTALL;

// What is wrong with a regex before Hyperscan sees it, if anything.
std::optional<std::string> regexPrecheck(const std::string& pattern) {
  if (pattern.empty()) return std::string("empty pattern");
  if (pattern.find('\0') != std::string::npos) return std::string("contains a NUL byte (write it as \\x00)");
  if (pattern.size() > kMaxRegexLength) {
    return "longer than " + std::to_string(kMaxRegexLength) + " characters";
  }
  return std::nullopt;
}

// An SNI regex must match the whole name, as dataplane/l7match anchors it.
std::string anchoredSniRegex(const std::string& pattern) { return "^(?:" + pattern + ")\\z"; }

std::string regexKey(const std::string& expression, unsigned int flags, uint32_t maxOffset) {
  return std::to_string(flags) + "/" + std::to_string(maxOffset) + "/" + expression;
}

// Hyperscan's verdict on one expression: why it is rejected, or nullopt. Depends on nothing but its
// arguments, and is safe to call from several threads.
std::optional<std::string> checkWithHyperscan(const std::string& expression, unsigned int flags,
                                              uint32_t maxOffset) {
  hs_expr_ext_t ext{};
  ext.flags = HS_EXT_FLAG_MAX_OFFSET;
  ext.max_offset = maxOffset;
  // Hyperscan's parser and analysis, without building a database: the same syntax and semantic errors as a
  // compile at a small part of its cost (compiling each regex here was most of a 10k-rule policy's load
  // time). What only a whole compile finds (a database too large) is reported by the compiler, naming the
  // rule, when the policy is applied.
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* compileError = nullptr;
  std::optional<std::string> result;
  if (hs_expression_ext_info(expression.c_str(), flags, maxOffset > 0 ? &ext : nullptr, &info,
                             &compileError) != HS_SUCCESS) {
    result = compileError && compileError->message ? compileError->message : "Hyperscan rejected it";
  }
  hs_free_compile_error(compileError);
  std::free(info);  // allocated with Hyperscan's misc allocator, malloc by default
  return result;
}

// The CPUs this thread may run on, which the threads it starts inherit: the count from the affinity mask, not
// the machine's, so that a loader confined to housekeeping cores stays there.
size_t usableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return static_cast<size_t>(std::max(CPU_COUNT(&set), 1));
}

// Records where each document starts, and nothing else.
struct DocumentCounter : YAML::EventHandler {
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
  }
  void OnMapEnd() override {}
  std::vector<YAML::Mark> starts;
};

// One node of the document as the validator sees it. The parser's events are built into these rather than
// into YAML::Node: yaml-cpp's node graph (a shared_ptr per node, each kept in a std::set) took longer to
// build, walk and free than the parse itself on a 10k-rule policy.
struct Node {
  YAML::NodeType::value type = YAML::NodeType::Null;
  YAML::Mark mark;
  std::string scalar;
  std::vector<const Node*> items;  // a sequence's items, or a map's keys and values alternating

  bool isNull() const { return type == YAML::NodeType::Null; }
  bool isScalar() const { return type == YAML::NodeType::Scalar; }
  bool isSequence() const { return type == YAML::NodeType::Sequence; }
  bool isMap() const { return type == YAML::NodeType::Map; }
};

// Builds one document's tree the way yaml-cpp's NodeBuilder (behind YAML::Load) does, step for step, so that
// every node, position and alias is what the validator saw when it walked YAML::Node: an alias is the
// anchored node itself (possibly an ancestor), and duplicate keys are all kept, in document order.
class TreeBuilder : public YAML::EventHandler {
 public:
  // Null for a document without one (no document, or an empty one).
  const Node* root() const { return root_; }

  // A null node, for the libyaml path, which learns an empty node's yaml-cpp position only afterwards.
  Node& addNull(const YAML::Mark& mark) {
    Node& node = push(mark, 0);
    pop();
    return node;
  }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    push(mark, anchor);
    pop();
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    // An unknown anchor is the parser's error, thrown before this; the check only keeps a bad id in bounds.
    if (anchor < anchors_.size() && anchors_[anchor]) {
      push(*anchors_[anchor]);
    } else {
      push(mark, 0);
    }
    pop();
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    Node& node = push(mark, anchor);
    node.type = YAML::NodeType::Scalar;
    node.scalar = value;
    pop();
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    push(mark, anchor).type = YAML::NodeType::Sequence;
  }
  void OnSequenceEnd() override { pop(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    push(mark, anchor).type = YAML::NodeType::Map;
    ++mapDepth_;
  }
  void OnMapEnd() override {
    if (mapDepth_ > 0) --mapDepth_;
    pop();
  }

 private:
  Node& push(const YAML::Mark& mark, YAML::anchor_t anchor) {
    Node& node = nodes_.emplace_back();
    node.mark = mark;
    if (anchor) {
      if (anchor >= anchors_.size()) anchors_.resize(anchor + 1);
      anchors_[anchor] = &node;
    }
    push(node);
    return node;
  }
  void push(Node& node) {
    // A node pushed into a map whose pending key is not yet known is that key.
    bool needsKey = !stack_.empty() && stack_.back()->isMap() && keys_.size() < mapDepth_;
    stack_.push_back(&node);
    if (needsKey) keys_.emplace_back(&node, false);
  }
  void pop() {
    if (stack_.empty()) return;
    Node* node = stack_.back();
    stack_.pop_back();
    if (stack_.empty()) {
      root_ = node;
      return;
    }
    Node& collection = *stack_.back();
    if (collection.isSequence()) {
      collection.items.push_back(node);
    } else if (collection.isMap() && !keys_.empty()) {
      auto& [key, complete] = keys_.back();
      if (complete) {
        collection.items.push_back(key);
        collection.items.push_back(node);
        keys_.pop_back();
      } else {
        complete = true;
      }
    }
  }

  std::deque<Node> nodes_;  // a deque: nodes are referenced by address while more are added
  std::vector<Node*> stack_;
  std::vector<Node*> anchors_;                // by anchor id, which the parser numbers from 1
  std::vector<std::pair<Node*, bool>> keys_;  // each open map's key, and whether it is complete
  size_t mapDepth_ = 0;
  Node* root_ = nullptr;
};

// Feeds a TreeBuilder from libyaml, which parses several times faster than yaml-cpp. yaml-cpp stays the
// reference: whatever yaml-cpp would give must come out unchanged, so this path only takes documents on
// which the two are known to agree, and returns false (the caller then parses with yaml-cpp, whose error
// messages are the ones reported) on anything else: a libyaml error, anchors and aliases, tags,
// directives, a second document, empty nodes other than block map values and sequence items, '?' in flow
// context, block scalars that keep trailing lines, deep nesting, no final line break, and any byte other
// than printable ASCII and line breaks (yaml-cpp counts columns in bytes and libyaml in characters, and the
// two disagree on which characters break lines). The '?' and trailing-lines rules answer differences that a
// differential test of the two parsers found on mutated policies; the other rules avoid what the test
// did not reach or what is rare in a policy.
class LibyamlParser {
 public:
  explicit LibyamlParser(const std::string& text) : text_(text) {}

  bool build(TreeBuilder* builder) {
    if (!plainAscii()) return false;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return false;
    yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text_.data()), text_.size());
    bool ok = run(&parser, builder);
    yaml_parser_delete(&parser);
    return ok;
  }

 private:
  struct Collection {
    bool map;
    bool flow;
    size_t column;
    size_t children;
  };

  // A block map's value or a block sequence's item must be indented past its collection, but for a
  // sequence that is a map's value ("key:\n- item"). libyaml lets some nodes through at or left of that
  // column ("-\n|\n" is one document to it, two to yaml-cpp); those go to yaml-cpp.
  static bool misplaced(const std::vector<Collection>& stack, const yaml_event_t& event) {
    if (stack.empty() || stack.back().flow) return false;
    const Collection& parent = stack.back();
    if (parent.map && parent.children % 2 == 0) return false;  // a key
    if (event.start_mark.column > parent.column) return false;
    return !(parent.map && event.type == YAML_SEQUENCE_START_EVENT &&
             event.data.sequence_start.style != YAML_FLOW_SEQUENCE_STYLE &&
             event.start_mark.column == parent.column);
  }

  // Only '\n', "\r\n" and printable ASCII; and a final line break, since at the end of a document without
  // one the two put the position of an empty node on different lines.
  bool plainAscii() const {
    const size_t size = text_.size();
    if (size == 0 || text_[size - 1] != '\n') return false;
    for (size_t i = 0; i < size; ++i) {
      unsigned char c = static_cast<unsigned char>(text_[i]);
      if (c >= 0x20 && c < 0x7f) continue;
      if (c == '\n') continue;
      if (c == '\r' && i + 1 < size && text_[i + 1] == '\n') continue;
      return false;
    }
    return true;
  }

  static YAML::Mark toMark(const yaml_mark_t& from) {
    YAML::Mark mark;
    mark.pos = static_cast<int>(from.index);
    mark.line = static_cast<int>(from.line);
    mark.column = static_cast<int>(from.column);
    return mark;
  }

  // yaml-cpp places an empty node at the token after it (the next key, '-' or dedent), where libyaml places
  // it right after the ':' or '-' before it: skip spaces, line breaks and comments from there.
  std::optional<YAML::Mark> emptyNodeMark(const yaml_mark_t& from) const {
    size_t i = from.index;
    if (i == 0 || i > text_.size() || (text_[i - 1] != ':' && text_[i - 1] != '-')) return std::nullopt;
    YAML::Mark mark = toMark(from);
    while (i < text_.size()) {
      char c = text_[i];
      if (c == ' ') {
        ++i;
        ++mark.column;
      } else if (c == '\r' || c == '\n') {
        i += c == '\r' ? 2 : 1;
        ++mark.line;
        mark.column = 0;
      } else if (c == '#') {
        while (i < text_.size() && text_[i] != '\r' && text_[i] != '\n') {
          ++i;
          ++mark.column;
        }
      } else {
        break;
      }
    }
    mark.pos = static_cast<int>(i);
    return mark;
  }

  bool hasQuestionMark(size_t from, size_t to) const {
    return from < to && to <= text_.size() && std::memchr(text_.data() + from, '?', to - from) != nullptr;
  }

  // A block scalar with '+' in its header: at the end of the document yaml-cpp keeps one of its trailing
  // line breaks and libyaml all of them.
  bool keepsTrailingLines(yaml_scalar_style_t style, size_t start) const {
    if (style != YAML_LITERAL_SCALAR_STYLE && style != YAML_FOLDED_SCALAR_STYLE) return false;
    for (size_t i = start + 1; i < text_.size(); ++i) {
      char c = text_[i];
      if (c == '+') return true;
      if (c != '-' && (c < '0' || c > '9')) break;
    }
    return false;
  }

  // yaml-cpp's null spellings for a plain scalar without a tag (IsNullString).
  static bool isNullString(std::string_view value) {
    return value.empty() || value == "~" || value == "null" || value == "Null" || value == "NULL";
  }

  bool run(yaml_parser_t* parser, TreeBuilder* builder) {
    // yaml-cpp refuses to nest deeper than its own bound (DepthGuard, 2000); stay far below it.
    constexpr size_t kMaxDepth = 256;
    std::vector<Collection> stack;
    size_t flowDepth = 0;
    int documents = 0;
    size_t lastEnd = 0;
    while (true) {
      yaml_event_t event;
      if (!yaml_parser_parse(parser, &event)) return false;
      // In flow context libyaml takes every '?' for a key indicator and yaml-cpp does not (it reports
      // "unknown token" or a missing end of flow): any '?' there outside a quoted scalar goes to yaml-cpp.
      // A collection event's own text is only indicators, among them the '?' opening a single-pair map.
      size_t checkTo = event.type == YAML_SCALAR_EVENT ? event.start_mark.index : event.end_mark.index;
      bool ok = flowDepth == 0 || !hasQuestionMark(lastEnd, checkTo);
      lastEnd = event.end_mark.index;
      bool done = false;
      switch (ok ? event.type : YAML_NO_EVENT) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
        case YAML_NO_EVENT:
          break;
        case YAML_STREAM_END_EVENT:
          done = true;
          break;
        case YAML_DOCUMENT_START_EVENT:
          ok = ++documents == 1 && !event.data.document_start.version_directive &&
               event.data.document_start.tag_directives.start == event.data.document_start.tag_directives.end;
          break;
        case YAML_ALIAS_EVENT:
          ok = false;
          break;
        case YAML_SCALAR_EVENT: {
          const auto& scalar = event.data.scalar;
          if (scalar.anchor || scalar.tag) {
            ok = false;
            break;
          }
          bool isKey = !stack.empty() && stack.back().map && stack.back().children % 2 == 0;
          std::string_view value(reinterpret_cast<const char*>(scalar.value), scalar.length);
          bool empty = scalar.style == YAML_PLAIN_SCALAR_STYLE && value.empty();
          if (!empty && misplaced(stack, event)) {
            ok = false;
            break;
          }
          if (!stack.empty()) ++stack.back().children;
          if ((flowDepth > 0 && scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               value.find('?') != std::string_view::npos) ||
              keepsTrailingLines(scalar.style, event.start_mark.index)) {
            ok = false;
            break;
          }
          if (scalar.style == YAML_PLAIN_SCALAR_STYLE && isNullString(value)) {
            if (value.empty()) {
              // An empty node: only as a block map's value or a block sequence's item is its yaml-cpp
              // position known here (and the root's, which is only ever reported as an empty document).
              std::optional<YAML::Mark> mark;
              if (stack.empty()) {
                mark = toMark(event.start_mark);
              } else if (!isKey && flowDepth == 0) {
                mark = emptyNodeMark(event.start_mark);
              }
              if (!mark) {
                ok = false;
                break;
              }
              builder->addNull(*mark);
            } else {
              builder->OnNull(toMark(event.start_mark), YAML::NullAnchor);
            }
          } else {
            builder->OnScalar(toMark(event.start_mark), "", YAML::NullAnchor, std::string(value));
          }
          break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
          bool map = event.type == YAML_MAPPING_START_EVENT;
          bool flow = map ? event.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE
                          : event.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
          bool properties = map ? event.data.mapping_start.anchor || event.data.mapping_start.tag
                                : event.data.sequence_start.anchor || event.data.sequence_start.tag;
          if (properties || stack.size() >= kMaxDepth || misplaced(stack, event)) {
            ok = false;
            break;
          }
          if (!stack.empty()) ++stack.back().children;
          stack.push_back({map, flow, event.start_mark.column, 0});
          if (flow) ++flowDepth;
          if (map) {
            builder->OnMapStart(toMark(event.start_mark), "", YAML::NullAnchor, YAML::EmitterStyle::Default);
          } else {
            builder->OnSequenceStart(toMark(event.start_mark), "", YAML::NullAnchor,
                                     YAML::EmitterStyle::Default);
          }
          break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
          if (stack.empty()) {
            ok = false;
            break;
          }
          if (stack.back().flow) --flowDepth;
          stack.pop_back();
          if (event.type == YAML_MAPPING_END_EVENT) {
            builder->OnMapEnd();
          } else {
            builder->OnSequenceEnd();
          }
          break;
      }
      yaml_event_delete(&event);
      if (!ok) return false;
      if (done) return true;
    }
  }

  const std::string& text_;
};

// The value of a map's first `key` (the one fields() keeps), or null.
const Node* child(const Node* map, std::string_view key) {
  if (!map || !map->isMap()) return nullptr;
  for (size_t i = 0; i + 1 < map->items.size(); i += 2) {
    if (map->items[i]->isScalar() && map->items[i]->scalar == key) return map->items[i + 1];
  }
  return nullptr;
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
  bool parseWithYamlCpp(const std::string& text, TreeBuilder* builder);
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
  void parseRegexes(const Entry& entry, bool sni, uint32_t window, std::vector<std::string>* out);
  void parseGlobs(const Entry& entry, std::vector<std::string>* out);
  void parseEndpoints(const Entry& entry, std::vector<policy::Endpoint>* endpoints);
  std::optional<std::string> compileRegex(const std::string& pattern, bool sni, uint32_t window);
  std::optional<std::string> hyperscan(const std::string& expression, unsigned int flags, uint32_t maxOffset);
  size_t prefetchRegexes(const std::vector<const Node*>& rules, size_t first);

  std::string file_;
  std::string rule_;                                          // the rule being parsed, for diagnostics
  std::map<std::string, std::vector<PortRange>> portGroups_;  // spec.portGroups, read before the rules
  std::vector<PolicyDiagnostic>* diagnostics_;
  size_t errors_ = 0;
  bool truncated_ = false;
  std::unordered_map<std::string, std::optional<std::string>> regexCache_;  // aliases can repeat a regex
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

// The reference parser, for what the libyaml path does not take: builds the first document and reports
// yaml-cpp's errors; false when there is no tree to validate.
bool Validator::parseWithYamlCpp(const std::string& text, TreeBuilder* builder) {
  // One parser for both jobs: it builds the first document, then goes on to look for a second. Parsing the
  // text twice (YAML::Load, then counting documents from the start) was a third of the load time.
  std::istringstream in(text);
  std::optional<YAML::Parser> parser;
  try {
    parser.emplace(in);
    parser->HandleNextDocument(*builder);
  } catch (const YAML::Exception& e) {
    report(e.mark, e.msg);
    return false;
  }
  const Node* root = builder->root();
  if (!root || root->isNull()) return true;
  // Not YAML::LoadAll: on some malformed input (",% v") it yields empty documents forever. Looking for one
  // more document, and stopping there, is bounded.
  try {
    DocumentCounter counter;
    parser->HandleNextDocument(counter);
    if (!counter.starts.empty()) {
      report(counter.starts.front(), "a policy file holds one YAML document; found a second one");
    }
  } catch (const YAML::Exception& e) {
    report(e.mark, e.msg);
  }
  return true;
}

void Validator::run(const std::string& text, policy::Policy* policy) {
  if (text.size() > kMaxDocumentBytes) {
    report(YAML::Mark(),
           "policy document is larger than " + std::to_string(kMaxDocumentBytes >> 20) + " MiB");
    return;
  }
  std::optional<TreeBuilder> builder(std::in_place);
  if (!LibyamlParser(text).build(&*builder)) {
    builder.emplace();
    if (!parseWithYamlCpp(text, &*builder)) return;
  }
  const Node* root = builder->root();
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
      if (i == prefetched && !full()) prefetched = prefetchRegexes(items, i);
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
    static constexpr Protocol kProtocols[] = {Protocol::kTcp,    Protocol::kUdp,  Protocol::kIcmp,
                                              Protocol::kIcmpv6, Protocol::kSctp, Protocol::kAny};
    if (auto index = choice(*e, {"tcp", "udp", "icmp", "icmpv6", "sctp", "any"})) {
      rule->protocol = kProtocols[*index];
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
        char text[INET6_ADDRSTRLEN] = {};
        inet_ntop(cidr.family == 4 ? AF_INET : AF_INET6, cidr.address, text, sizeof(text));
        error(family->value, std::string(side == &rule->source ? "source" : "destination") + " CIDR " + text +
                                 "/" + std::to_string(cidr.prefixLength) + " is not " + fname +
                                 ": it could never match");
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
    bool wellFormed =
        !name.empty() && std::isalpha(static_cast<unsigned char>(name[0])) &&
        std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
    if (!wellFormed) {
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
  const std::string& text = node->scalar;
  size_t dash = text.find('-');
  std::optional<uint64_t> low = parseNumber(std::string_view(text).substr(0, dash));
  std::optional<uint64_t> high =
      dash == std::string::npos ? low : parseNumber(std::string_view(text).substr(dash + 1));
  if (!low || !high) {
    error(node, std::string("invalid ") + what + " '" + text + "': " + expected);
    return std::nullopt;
  }
  if (*low > max || *high > max) {
    error(node, std::string("invalid ") + what + " '" + text + "': " + bounds);
    return std::nullopt;
  }
  if (*low > *high) {
    error(node, std::string("invalid ") + what + " range '" + text + "': " + std::to_string(*low) +
                    " is above " + std::to_string(*high));
    return std::nullopt;
  }
  return PortRange{static_cast<uint16_t>(*low), static_cast<uint16_t>(*high)};
}

// ICMP and ICMPv6 message types by name; -1 where the protocol has no such type.
struct IcmpTypeName {
  const char* name;
  int icmp;
  int icmpv6;
};
constexpr IcmpTypeName kIcmpTypeNames[] = {
    {"echo-reply", 0, 129},
    {"destination-unreachable", 3, 1},
    {"packet-too-big", -1, 2},
    {"redirect", 5, 137},
    {"echo-request", 8, 128},
    {"router-advertisement", 9, 134},
    {"router-solicitation", 10, 133},
    {"time-exceeded", 11, 3},
    {"parameter-problem", 12, 4},
    {"neighbor-solicitation", -1, 135},
    {"neighbor-advertisement", -1, 136},
};

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
      const IcmpTypeName* known = nullptr;
      for (const IcmpTypeName& candidate : kIcmpTypeNames) {
        if (text == candidate.name) known = &candidate;
      }
      if (known == nullptr) {
        std::string hint =
            suggestBy(text, kIcmpTypeNames, [](const IcmpTypeName& candidate) { return candidate.name; });
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

// Compiles the regex the way dataplane/l7match does (same flags, same wrapping, the window as max_offset), so
// that a policy that validates also compiles there.
std::optional<std::string> Validator::compileRegex(const std::string& pattern, bool sni, uint32_t window) {
  if (auto problem = regexPrecheck(pattern)) return problem;
  if (!sni) return hyperscan(pattern, kPayloadRegexFlags, window);
  // The raw pattern first: wrapped as ^(?:...)\z, an unbalanced "a)(b" would otherwise pass.
  if (auto problem = hyperscan(pattern, kSniRegexFlags, 0)) return problem;
  return hyperscan(anchoredSniRegex(pattern), kSniRegexFlags, 0);
}

std::optional<std::string> Validator::hyperscan(const std::string& expression, unsigned int flags,
                                                uint32_t maxOffset) {
  std::string key = regexKey(expression, flags, maxOffset);
  if (auto it = regexCache_.find(key); it != regexCache_.end()) return it->second;
  std::optional<std::string> result = checkWithHyperscan(expression, flags, maxOffset);
  regexCache_.emplace(std::move(key), result);
  return result;
}

// Makes the Hyperscan checks that the rules from `first` on will need, up to about kRegexBatch of them, on
// several threads, into regexCache_; returns the index of the first rule it did not cover. A check costs
// about 65 us on a VM, most of it in the CPUID instructions Hyperscan runs on every call (each one traps to
// the hypervisor), and an SNI regex takes two: serially, 1k of them were a quarter of a 10k-rule load. The
// walk finds them cached, and makes itself any check not foreseen here, so diagnostics do not depend on this;
// the batches bound the work wasted once the walk stops checking (too many errors).
size_t Validator::prefetchRegexes(const std::vector<const Node*>& rules, size_t first) {
  struct Check {
    std::string key;
    std::string expression;
    unsigned int flags;
    uint32_t maxOffset;
    std::optional<std::string> result;
    bool done = false;
  };
  std::vector<Check> checks;
  std::unordered_set<std::string> keys;
  auto add = [&](std::string expression, unsigned int flags, uint32_t maxOffset) {
    std::string key = regexKey(expression, flags, maxOffset);
    if (regexCache_.count(key) != 0 || !keys.insert(key).second) return;
    checks.push_back(Check{std::move(key), std::move(expression), flags, maxOffset, std::nullopt});
  };
  size_t next = first;
  while (next < rules.size() && checks.size() < kRegexBatch) {
    const Node* match = child(rules[next++], "match");
    if (const Node* list = child(child(match, "tls"), "sniRegex"); list && list->isSequence()) {
      for (const Node* item : list->items) {
        if (checks.size() >= kRegexBatch) break;
        if (!item->isScalar() || regexPrecheck(item->scalar)) continue;
        add(item->scalar, kSniRegexFlags, 0);
        add(anchoredSniRegex(item->scalar), kSniRegexFlags, 0);
      }
    }
    const Node* payload = child(match, "payload");
    if (const Node* list = child(payload, "regex"); list && list->isSequence()) {
      // The window as parsePayload reads it: the default, the value given, or 0 when that is invalid.
      uint32_t window = policy::PayloadMatch{}.window;
      if (const Node* given = child(payload, "window")) {
        std::optional<uint64_t> value = given->isScalar() ? parseNumber(given->scalar) : std::nullopt;
        window = value && *value >= 1 && *value <= kMaxWindow ? static_cast<uint32_t>(*value) : 0;
      }
      for (const Node* item : list->items) {
        if (checks.size() >= kRegexBatch) break;
        if (!item->isScalar() || regexPrecheck(item->scalar)) continue;
        add(item->scalar, kPayloadRegexFlags, window);
      }
    }
  }
  size_t threads = std::min({usableCpus(), kMaxRegexThreads, checks.size() / kMinChecksPerThread});
  if (threads < 2) return next;  // not worth a thread: the walk checks them as it goes
  std::atomic<size_t> taken{0};
  auto work = [&] {
    for (size_t i; (i = taken.fetch_add(1, std::memory_order_relaxed)) < checks.size();) {
      try {
        checks[i].result = checkWithHyperscan(checks[i].expression, checks[i].flags, checks[i].maxOffset);
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
    if (check.done) regexCache_.emplace(std::move(check.key), std::move(check.result));
  }
  return next;
}

void Validator::parseRegexes(const Entry& entry, bool sni, uint32_t window, std::vector<std::string>* out) {
  for (const Node* node : stringList(entry)) {
    const std::string& text = node->scalar;
    if (full()) return;  // compiling costs; nothing more will be reported anyway
    if (auto problem = compileRegex(text, sni, window)) {
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
  if (const Entry* e = find(f, "sniRegex")) parseRegexes(*e, true, 0, &tls->sniRegex);
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
  if (const Entry* e = find(f, "path")) parseGlobs(*e, &http->path);
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
      std::optional<uint64_t> window = parseNumber(*text);
      if (!window || *window < 1 || *window > kMaxWindow) {
        error(e->value, "payload window must be 1..65536 bytes, not '" + *text + "'");
      } else {
        payload->window = static_cast<uint32_t>(*window);
        windowOk = true;
      }
    }
  }
  if (const Entry* e = find(f, "regex"))
    parseRegexes(*e, false, windowOk ? payload->window : 0, &payload->regex);
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

std::string PolicyDiagnostic::toString() const {
  std::ostringstream out;
  out << location.file << ":" << location.line << ":" << location.column << ": ";
  if (!rule.empty()) out << "rule '" << rule << "': ";
  if (warning) out << "warning: ";
  out << message;
  return out.str();
}

bool hasPolicyErrors(const std::vector<PolicyDiagnostic>& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const PolicyDiagnostic& d) { return !d.warning; });
}

std::vector<PolicyDiagnostic> validatePolicy(const std::string& yamlText, const std::string& fileName,
                                             policy::Policy* out) {
  std::vector<PolicyDiagnostic> diagnostics;
  policy::Policy policy;
  // yaml-cpp reports through exceptions; none may leave this API.
  try {
    Validator(fileName, &diagnostics).run(yamlText, &policy);
  } catch (const YAML::Exception& e) {
    PolicyDiagnostic diagnostic;
    diagnostic.location = {fileName, e.mark.line >= 0 ? e.mark.line + 1 : 0,
                           e.mark.column >= 0 ? e.mark.column + 1 : 0};
    diagnostic.message = e.msg;
    diagnostics.push_back(std::move(diagnostic));
  } catch (const std::exception& e) {
    diagnostics.push_back(
        PolicyDiagnostic{{fileName, 0, 0}, "", std::string("internal error: ") + e.what(), false});
  } catch (...) {
    diagnostics.push_back(PolicyDiagnostic{{fileName, 0, 0}, "", "internal error", false});
  }
  // Fields are visited in key order, not document order; report in the order a reader meets them.
  std::stable_sort(diagnostics.begin(), diagnostics.end(),
                   [](const PolicyDiagnostic& a, const PolicyDiagnostic& b) {
                     auto key = [](const PolicyDiagnostic& d) {
                       // Position-less ones (the "too many errors" line) go last.
                       return d.location.line == 0 ? std::pair{INT32_MAX, 0}
                                                   : std::pair{d.location.line, d.location.column};
                     };
                     return key(a) < key(b);
                   });
  if (out && !hasPolicyErrors(diagnostics)) *out = std::move(policy);
  return diagnostics;
}

Result<policy::Policy> loadPolicy(const std::string& yamlText, const std::string& fileName) {
  try {
    policy::Policy policy;
    std::vector<PolicyDiagnostic> diagnostics = validatePolicy(yamlText, fileName, &policy);
    if (!hasPolicyErrors(diagnostics)) return policy;
    std::string message;
    for (const PolicyDiagnostic& d : diagnostics) {
      if (d.warning) continue;
      if (!message.empty()) message += "\n";
      message += d.toString();
    }
    return makeError(EINVAL, std::move(message));
  } catch (const std::exception& e) {
    return makeError(ENOMEM, std::string("loading policy: ") + e.what());
  }
}

Result<std::string> readPolicyFile(const std::string& path) {
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      return makeError(errno ? errno : ENOENT,
                       "cannot open " + path + ": " + std::strerror(errno ? errno : ENOENT));
    std::string text;
    char buffer[65536];
    while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
      text.append(buffer, static_cast<size_t>(in.gcount()));
      if (text.size() > kMaxFileBytes) return makeError(EFBIG, path + ": policy file is too large");
    }
    if (in.bad()) return makeError(EIO, "cannot read " + path);
    return text;
  } catch (const std::exception& e) {
    return makeError(ENOMEM, std::string("reading policy: ") + e.what());
  }
}

Result<std::vector<PolicyDiagnostic>> validatePolicyFile(const std::string& path, policy::Policy* out) {
  auto text = readPolicyFile(path);
  if (!text) return text.error();
  return validatePolicy(text.value(), path, out);
}

Result<policy::Policy> loadPolicyFile(const std::string& path) {
  auto text = readPolicyFile(path);
  if (!text) return text.error();
  return loadPolicy(text.value(), path);
}

}  // namespace vgate::control
