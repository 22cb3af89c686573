// The policy document's tree: yaml-cpp's events built into Nodes, and the libyaml fast path that feeds the
// same builder on documents where the two parsers are known to agree.
#include "control/policy/policy_yaml_tree.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml.h>

#include <cstring>
#include <deque>
#include <optional>
#include <sstream>
#include <utility>

namespace vgate::control {

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

namespace {

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

}  // namespace

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

namespace {

// Feeds a TreeBuilder from libyaml, which is faster, on documents where it gives what yaml-cpp would; false
// (parse with yaml-cpp instead, whose errors are the ones reported) on anything else: a libyaml error,
// anchors and aliases, tags, directives, a second document, empty nodes other than block map values and
// sequence items, '?' in flow context, block scalars that keep trailing lines, deep nesting, no final line
// break, and any byte other than printable ASCII and line breaks.
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

// The reference parser, for what the libyaml path does not take: builds the first document and reports
// yaml-cpp's errors; false when there is no tree to validate.
bool parseWithYamlCpp(const std::string& text, TreeBuilder* builder, const YamlTree::Report& report) {
  // One parser for both jobs: it builds the first document, then goes on to look for a second.
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

}  // namespace

const Node* child(const Node* map, std::string_view key) {
  if (!map || !map->isMap()) return nullptr;
  for (size_t i = 0; i + 1 < map->items.size(); i += 2) {
    if (map->items[i]->isScalar() && map->items[i]->scalar == key) return map->items[i + 1];
  }
  return nullptr;
}

YamlTree::YamlTree() = default;
YamlTree::~YamlTree() = default;

bool YamlTree::parse(const std::string& text, const Report& report) {
  builder_ = std::make_unique<TreeBuilder>();
  if (LibyamlParser(text).build(builder_.get())) return true;
  builder_ = std::make_unique<TreeBuilder>();
  return parseWithYamlCpp(text, builder_.get(), report);
}

const Node* YamlTree::root() const { return builder_ ? builder_->root() : nullptr; }

}  // namespace vgate::control
