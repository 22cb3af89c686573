// The policy document as the validator walks it: a light tree of nodes, built from libyaml where it is known
// to agree with yaml-cpp, and from yaml-cpp, the reference whose errors are reported, everywhere else.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vgate::control {

// One node of the document as the validator sees it (lighter than YAML::Node to build, walk and free).
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

// "a string", "a list", "a map" or "null", for messages.
const char* typeName(YAML::NodeType::value type);

// The value of a map's first `key` (the one the validator keeps), or null.
const Node* child(const Node* map, std::string_view key);

class TreeBuilder;

// One document's tree; it owns the nodes.
class YamlTree {
 public:
  using Report = std::function<void(const YAML::Mark& mark, const std::string& message)>;

  YamlTree();
  ~YamlTree();
  YamlTree(const YamlTree&) = delete;
  YamlTree& operator=(const YamlTree&) = delete;

  // Builds the tree of the text's first document; yaml-cpp's errors, and a second document, go to
  // `report`. False when there is no tree to validate.
  bool parse(const std::string& text, const Report& report);
  // Null for a document without one (no document, or an empty one).
  const Node* root() const;

 private:
  std::unique_ptr<TreeBuilder> builder_;
};

}  // namespace vgate::control
