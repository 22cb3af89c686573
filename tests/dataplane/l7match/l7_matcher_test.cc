// Tests of the L7 matcher: each condition kind's translation edge cases, the AND/OR semantics across and
// within fields, absent facts, a 10k-literal policy, and the per-chunk serialized-database cache (round trip,
// corruption, edits and insertions that recompile one chunk, bounded growth).
#include "dataplane/l7match/l7_matcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <set>
#include <string>
#include <vector>

// Counts allocations while `countingAllocations` is set, to show that matching allocates nothing.
namespace {
bool countingAllocations = false;
size_t allocations = 0;
}  // namespace

// Every non-aligned form is replaced, so that AddressSanitizer never sees one side of a pair from it and the
// other from here.
namespace {
void* countedAllocate(size_t size) {
  if (countingAllocations) ++allocations;
  return std::malloc(size == 0 ? 1 : size);
}
void* mustAllocate(size_t size) {
  void* memory = countedAllocate(size);
  if (memory == nullptr) std::abort();
  return memory;
}
}  // namespace

void* operator new(size_t size) { return mustAllocate(size); }
void* operator new[](size_t size) { return mustAllocate(size); }
void* operator new(size_t size, const std::nothrow_t&) noexcept { return countedAllocate(size); }
void* operator new[](size_t size, const std::nothrow_t&) noexcept { return countedAllocate(size); }
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete[](void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, size_t) noexcept { std::free(memory); }
void operator delete[](void* memory, size_t) noexcept { std::free(memory); }
void operator delete(void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete[](void* memory, const std::nothrow_t&) noexcept { std::free(memory); }

namespace vgate::dataplane {
namespace {

policy::Rule rule(std::string name) {
  policy::Rule result;
  result.name = std::move(name);
  return result;
}

std::shared_ptr<const L7Matcher> compileOk(const policy::Policy& policy, const CompileOptions& options = {}) {
  auto compiled = L7Matcher::compile(policy, options);
  EXPECT_TRUE(compiled.ok()) << (compiled.ok() ? "" : compiled.error().message);
  return compiled.ok() ? compiled.value() : nullptr;
}

// A matcher with its own scratch and result set, and helpers that build facts for one field.
class Harness {
 public:
  explicit Harness(const policy::Policy& policy, const CompileOptions& options = {})
      : matcher_(compileOk(policy, options)) {
    if (matcher_ == nullptr) return;
    auto scratch = matcher_->makeScratch();
    EXPECT_TRUE(scratch.ok());
    if (scratch.ok()) scratch_ = std::move(scratch.value());
    out_ = matcher_->ruleSet();
  }

  std::vector<uint32_t> match(const L7Facts& facts) {
    std::vector<uint32_t> rules;
    if (matcher_ == nullptr || scratch_ == nullptr) return rules;
    matcher_->match(facts, *scratch_, out_);
    for (uint32_t i = 0; i < out_.size(); ++i) {
      if (out_.test(i)) rules.push_back(i);
    }
    EXPECT_EQ(out_.count(), rules.size());
    return rules;
  }
  std::vector<uint32_t> sni(std::string_view name) {
    L7Facts facts;
    facts.sni = name;
    facts.presentFields = kFactSni;
    return match(facts);
  }

  const L7Matcher& matcher() const { return *matcher_; }
  L7Scratch& scratch() { return *scratch_; }
  RuleSet& out() { return out_; }

 private:
  std::shared_ptr<const L7Matcher> matcher_;
  std::unique_ptr<L7Scratch> scratch_;
  RuleSet out_;
};

using Rules = std::vector<uint32_t>;

TEST(L7MatcherTranslate, Patterns) {
  EXPECT_EQ(l7ExactPattern("h2"), "^h2\\z");
  EXPECT_EQ(l7HostPattern("api.example.com"), "^api\\x2eexample\\x2ecom\\z");
  EXPECT_EQ(l7HostPattern("*.bank.example"), "^[^.]+(?:\\.[^.]+)*\\.bank\\x2eexample\\z");
  EXPECT_EQ(l7PathPattern("/admin/*"), "^\\x2fadmin\\x2f.*\\z");
}

TEST(L7Matcher, WildcardSniEdgeCases) {
  policy::Policy policy;
  auto apex = rule("apex");
  apex.tls.sni = {"bank.example"};
  auto under = rule("under");
  under.tls.sni = {"*.bank.example"};
  auto label = rule("label");
  label.tls.sni = {"api-*.example.com"};
  policy.rules = {apex, under, label};
  Harness h(policy);
  EXPECT_EQ(h.sni("bank.example"), (Rules{0}));
  EXPECT_EQ(h.sni("BANK.Example"), (Rules{0}));
  EXPECT_EQ(h.sni("a.bank.example"), (Rules{1}));
  EXPECT_EQ(h.sni("a.b.bank.example"), (Rules{1}));
  EXPECT_EQ(h.sni("WWW.BANK.EXAMPLE"), (Rules{1}));
  EXPECT_EQ(h.sni("xbank.example"), Rules{});
  EXPECT_EQ(h.sni(".bank.example"), Rules{});
  EXPECT_EQ(h.sni("a..bank.example"), Rules{});
  EXPECT_EQ(h.sni("bank.example.evil"), Rules{});
  EXPECT_EQ(h.sni("bank.example\n"), Rules{});
  EXPECT_EQ(h.sni("api-v2.example.com"), (Rules{2}));
  EXPECT_EQ(h.sni("api-.example.com"), (Rules{2}));
  EXPECT_EQ(h.sni("api-a.b.example.com"), Rules{});
  EXPECT_EQ(h.sni(""), Rules{});
}

TEST(L7Matcher, LiteralMetacharactersAreLiteral) {
  policy::Policy policy;
  auto dotted = rule("dotted");
  dotted.tls.sni = {"a.b+c(d).example"};
  policy.rules = {dotted};
  Harness h(policy);
  EXPECT_EQ(h.sni("a.b+c(d).example"), (Rules{0}));
  EXPECT_EQ(h.sni("axbbc(d).example"), Rules{});
  EXPECT_EQ(h.sni("a.bbc(d).example"), Rules{});
}

TEST(L7Matcher, SniRegexIsWholeStringAndOredWithSni) {
  policy::Policy policy;
  auto regex = rule("regex");
  regex.tls.sniRegex = {"api[0-9]+\\.example\\.com"};
  auto anchored = rule("anchored");
  anchored.tls.sniRegex = {"^cdn\\..*$"};
  auto both = rule("both");
  both.tls.sni = {"exact.example"};
  both.tls.sniRegex = {"re[a-z]\\.example"};
  policy.rules = {regex, anchored, both};
  Harness h(policy);
  EXPECT_EQ(h.sni("api12.example.com"), (Rules{0}));
  EXPECT_EQ(h.sni("API7.EXAMPLE.COM"), (Rules{0}));
  EXPECT_EQ(h.sni("xapi12.example.com"), Rules{});
  EXPECT_EQ(h.sni("api12.example.com.evil"), Rules{});
  EXPECT_EQ(h.sni("cdn.anything"), (Rules{1}));
  EXPECT_EQ(h.sni("exact.example"), (Rules{2}));
  EXPECT_EQ(h.sni("rex.example"), (Rules{2}));
}

TEST(L7Matcher, AlpnAnyOfOfferedAgainstAnyOfListed) {
  policy::Policy policy;
  auto h2 = rule("h2");
  h2.tls.alpn = {"h2", "h3"};
  auto http11 = rule("http11");
  http11.tls.alpn = {"http/1.1"};
  policy.rules = {h2, http11};
  Harness h(policy);
  auto alpn = [&](std::vector<std::string_view> offered) {
    L7Facts facts;
    facts.alpn = offered.data();
    facts.alpnCount = offered.size();
    facts.presentFields = kFactAlpn;
    return h.match(facts);
  };
  EXPECT_EQ(alpn({"h3"}), (Rules{0}));
  EXPECT_EQ(alpn({"spdy/3", "http/1.1"}), (Rules{1}));
  EXPECT_EQ(alpn({"http/1.1", "h2"}), (Rules{0, 1}));
  EXPECT_EQ(alpn({"H2"}), Rules{});  // ALPN ids are case-sensitive bytes
  EXPECT_EQ(alpn({"h2c"}), Rules{});
  EXPECT_EQ(alpn({}), Rules{});
}

TEST(L7Matcher, HttpHostPathMethodAreAnded) {
  policy::Policy policy;
  auto admin = rule("admin");
  admin.http.host = {"*.corp.example", "corp.example"};
  admin.http.path = {"/admin/*"};
  admin.http.method = {"POST", "PUT"};
  auto exactPath = rule("exact-path");
  exactPath.http.path = {"/health", "/v?/status"};
  policy.rules = {admin, exactPath};
  Harness h(policy);
  auto http = [&](std::string_view host, std::string_view path, std::string_view method) {
    L7Facts facts;
    facts.httpHost = host;
    facts.httpPath = path;
    facts.httpMethod = method;
    facts.presentFields = kFactHttpHost | kFactHttpPath | kFactHttpMethod;
    return h.match(facts);
  };
  EXPECT_EQ(http("www.corp.example", "/admin/users/1", "POST"), (Rules{0}));
  EXPECT_EQ(http("CORP.example", "/admin/", "PUT"), (Rules{0}));
  EXPECT_EQ(http("corp.example", "/admin/x", "GET"), Rules{});
  EXPECT_EQ(http("corp.example", "/admin/x", "post"), Rules{});  // methods are case-sensitive
  EXPECT_EQ(http("corp.example", "/Admin/x", "POST"), Rules{});  // paths are case-sensitive
  EXPECT_EQ(http("corp.example", "/admin", "POST"), Rules{});
  EXPECT_EQ(http("other.example", "/admin/x", "POST"), Rules{});
  EXPECT_EQ(http("x", "/health", "GET"), (Rules{1}));
  EXPECT_EQ(http("x", "/health/", "GET"), Rules{});
  EXPECT_EQ(http("x", "/v1/status", "GET"), (Rules{1}));
  EXPECT_EQ(http("x", "/v12/status", "GET"), Rules{});
}

TEST(L7Matcher, CertificateGlobs) {
  policy::Policy policy;
  auto subject = rule("subject");
  subject.tls.certificate.subject = {"CN=*.bank.example,O=Bank*"};
  auto issuer = rule("issuer");
  issuer.tls.certificate.issuer = {"*O=Let's Encrypt*"};
  auto san = rule("san");
  san.tls.certificate.san = {"*.internal"};
  policy.rules = {subject, issuer, san};
  Harness h(policy);
  L7Facts facts;
  facts.certSubject = "CN=www.bank.example,O=Bank Ltd,C=GB";
  facts.certIssuer = "C=US, O=Let's Encrypt, CN=R3";
  std::string_view sans[] = {"example.org", "db.internal"};
  facts.sans = sans;
  facts.sanCount = 2;
  facts.presentFields = kFactCertSubject | kFactCertIssuer | kFactSan;
  EXPECT_EQ(h.match(facts), (Rules{0, 1, 2}));
  facts.certSubject = "cn=WWW.BANK.EXAMPLE,o=bank";
  facts.certIssuer = "O=Other CA";
  facts.sanCount = 1;
  EXPECT_EQ(h.match(facts), (Rules{0}));
}

TEST(L7Matcher, PayloadRegexWithinWindow) {
  policy::Policy policy;
  auto secret = rule("secret");
  secret.payload.regex = {"BEGIN RSA.*KEY"};
  secret.payload.window = 64;
  auto wide = rule("wide");
  wide.payload.regex = {"password="};
  wide.payload.window = 4096;
  policy.rules = {secret, wide};
  Harness h(policy);
  EXPECT_EQ(h.matcher().payloadWindow(), 4096u);
  auto payload = [&](std::string_view toServer, std::string_view toClient) {
    L7Facts facts;
    facts.payloadToServer = toServer;
    facts.payloadToClient = toClient;
    facts.presentFields = kFactPayloadToServer | kFactPayloadToClient;
    return h.match(facts);
  };
  EXPECT_EQ(payload("xx BEGIN RSA\nPRIVATE KEY", ""), (Rules{0}));  // DOTALL: `.` crosses the newline
  EXPECT_EQ(payload("", "BEGIN RSA KEY"), (Rules{0}));
  std::string late(100, 'a');
  late += "BEGIN RSA KEY password=1";
  EXPECT_EQ(payload(late, ""), (Rules{1}));  // past the 64-byte window of rule 0
  std::string beyond(5000, 'a');
  beyond += "password=";
  EXPECT_EQ(payload(beyond, ""), Rules{});
}

// HS_FLAG_ALLOWEMPTY is added only after Hyperscan refuses a database for a pattern that can match the
// empty string: the patterns that can get it, the others keep compiling and matching as before.
TEST(L7Matcher, PatternsThatCanMatchEmptyStillCompile) {
  policy::Policy policy;
  auto optional = rule("optional");
  optional.tls.sniRegex = {"(www\\.)?"};
  auto plain = rule("plain");
  plain.tls.sniRegex = {"a+\\.example"};
  policy.rules = {optional, plain};
  Harness h(policy);
  EXPECT_EQ(h.sni(""), (Rules{0}));
  EXPECT_EQ(h.sni("WWW."), (Rules{0}));
  EXPECT_EQ(h.sni("aa.example"), (Rules{1}));
  EXPECT_EQ(h.sni("x"), Rules{});
}

// The cache files in `dir` (names only).
std::set<std::string> cacheFilesIn(const std::filesystem::path& dir) {
  std::set<std::string> names;
  std::error_code error;
  for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    names.insert(it->path().filename().string());
  }
  return names;
}

// A cache file is named by 32 hex digits and nothing from the policy.
bool hexName(const std::string& name) {
  return name.size() == 32 + 5 && name.ends_with(".hsdb") && name.find_first_not_of("0123456789abcdef") == 32;
}

// Enough regexes for four databases (more than 2 * kChunkPatterns distinct patterns, so four hash ranges):
// every rule still matches, whichever database holds it, and the cache keeps one file per database.
TEST(L7Matcher, ManyPatternsAreSplitAcrossDatabases) {
  policy::Policy policy;
  policy.sourceHash = "split01";
  constexpr int kRules = static_cast<int>(2 * kChunkPatterns + 10);
  for (int i = 0; i < kRules; ++i) {
    auto r = rule("r" + std::to_string(i));
    r.tls.sniRegex = {"r" + std::to_string(i) + "-[0-9]+\\.example"};
    policy.rules.push_back(r);
  }
  auto dir = std::filesystem::temp_directory_path() / ("vgate-l7split-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  CompileOptions options{dir.string()};
  Harness first(policy, options);
  EXPECT_EQ(first.matcher().stats().databaseCount[static_cast<size_t>(L7Field::kSni)], 4u);
  EXPECT_EQ(first.matcher().stats().cacheWrites, 4u);
  EXPECT_EQ(first.matcher().stats().compiledPatterns, size_t{kRules});
  auto files = first.matcher().cacheFiles(L7Field::kSni);
  EXPECT_EQ(std::set<std::string>(files.begin(), files.end()), cacheFilesIn(dir));
  for (const auto& name : files) EXPECT_TRUE(hexName(name)) << name;
  Harness second(policy, options);
  EXPECT_EQ(second.matcher().stats().cacheHits, 4u);
  EXPECT_EQ(second.matcher().stats().compiledPatterns, 0u);
  EXPECT_TRUE(second.matcher().stats().loadedFromCache[static_cast<size_t>(L7Field::kSni)]);
  for (int i : {0, 1, kRules / 2, kRules - 1}) {
    std::string name = "r" + std::to_string(i) + "-42.example";
    EXPECT_EQ(first.sni(name), (Rules{static_cast<uint32_t>(i)})) << name;
    EXPECT_EQ(second.sni(name), (Rules{static_cast<uint32_t>(i)})) << name;
  }
  EXPECT_EQ(first.sni("r1-.example"), Rules{});
  std::filesystem::remove_all(dir);
}

// One pattern used by several rules is compiled once and reports every one of them.
TEST(L7Matcher, SharedPatternReportsEveryRule) {
  policy::Policy policy;
  for (int i = 0; i < 4; ++i) {
    auto r = rule("r" + std::to_string(i));
    r.tls.sniRegex = {i == 2 ? "other[0-9]+\\.example" : "api-[0-9]+\\.example"};
    policy.rules.push_back(r);
  }
  Harness h(policy);
  EXPECT_EQ(h.matcher().stats().compiledPatterns, 2u);
  EXPECT_EQ(h.sni("api-1.example"), (Rules{0, 1, 3}));
  EXPECT_EQ(h.sni("other7.example"), (Rules{2}));
}

TEST(L7Matcher, TwoFieldsMatchOnlyWhenBothHold) {
  policy::Policy policy;
  auto l3only = rule("l3only");
  auto both = rule("both");
  both.tls.sni = {"*.example.com"};
  both.tls.alpn = {"h2"};
  policy.rules = {l3only, both};
  Harness h(policy);
  EXPECT_FALSE(h.matcher().hasL7(0));
  EXPECT_TRUE(h.matcher().hasL7(1));
  std::string_view h2[] = {"h2"};
  std::string_view h11[] = {"http/1.1"};
  L7Facts facts;
  facts.sni = "www.example.com";
  facts.alpn = h2;
  facts.alpnCount = 1;
  facts.presentFields = kFactSni | kFactAlpn;
  EXPECT_EQ(h.match(facts), (Rules{1}));
  facts.alpn = h11;
  EXPECT_EQ(h.match(facts), Rules{});
  facts.alpn = h2;
  facts.sni = "example.com";
  EXPECT_EQ(h.match(facts), Rules{});
  // No ALPN known (absent, not empty): the alpn condition is false.
  facts.sni = "www.example.com";
  facts.presentFields = kFactSni;
  EXPECT_EQ(h.match(facts), Rules{});
}

TEST(L7Matcher, AbsentFactIsFalse) {
  policy::Policy policy;
  auto sni = rule("sni");
  sni.tls.sni = {"*"};
  auto method = rule("method");
  method.http.method = {"GET"};
  policy.rules = {sni, method};
  Harness h(policy);
  L7Facts facts;
  facts.sni = "a.example";  // set but not marked present
  facts.httpMethod = "GET";
  facts.presentFields = kFactHttpMethod;
  EXPECT_EQ(h.match(facts), (Rules{1}));
  facts.presentFields = 0;
  EXPECT_EQ(h.match(facts), Rules{});
  facts.presentFields = kFactSni;
  EXPECT_EQ(h.match(facts), (Rules{0}));
}

TEST(L7Matcher, FirstMatchingRuleBelowBound) {
  policy::Policy policy;
  for (int i = 0; i < 200; ++i) {
    auto r = rule("r" + std::to_string(i));
    if (i == 5 || i == 70 || i == 150) r.tls.sni = {"*.example"};
    policy.rules.push_back(r);
  }
  Harness h(policy);
  L7Facts facts;
  facts.sni = "a.example";
  facts.presentFields = kFactSni;
  EXPECT_EQ(h.matcher().firstMatchingRule(facts, h.scratch(), h.out(), 200), 5u);
  EXPECT_EQ(h.matcher().firstMatchingRule(facts, h.scratch(), h.out(), 6), 5u);
  EXPECT_EQ(h.matcher().firstMatchingRule(facts, h.scratch(), h.out(), 5), RuleSet::kNone);
  EXPECT_EQ(h.out().count(), 3u);
  facts.sni = "example";
  EXPECT_EQ(h.matcher().firstMatchingRule(facts, h.scratch(), h.out(), 200), RuleSet::kNone);
}

TEST(L7Matcher, HostTablesAndHyperscanAreOredInOneField) {
  policy::Policy policy;
  auto mixed = rule("mixed");
  mixed.http.host = {"*.a.example", "b?.example", "exact.example", "exact.example"};
  auto other = rule("other");
  other.http.host = {"exact.example", "*.example"};
  policy.rules = {mixed, other};
  Harness h(policy);
  EXPECT_EQ(h.matcher().stats().tablePatterns[static_cast<size_t>(L7Field::kHttpHost)], 5u);
  EXPECT_TRUE(h.matcher().hasDatabase(L7Field::kHttpHost));  // "b?.example"
  auto host = [&](std::string_view name) {
    L7Facts facts;
    facts.httpHost = name;
    facts.presentFields = kFactHttpHost;
    return h.match(facts);
  };
  EXPECT_EQ(host("x.a.example"), (Rules{0, 1}));
  EXPECT_EQ(host("bz.example"), (Rules{0, 1}));
  EXPECT_EQ(host("EXACT.example"), (Rules{0, 1}));
  EXPECT_EQ(host("z.example"), (Rules{1}));
  EXPECT_EQ(host("example"), Rules{});
  EXPECT_EQ(host("a.example"), (Rules{1}));
}

TEST(L7Matcher, MatchDoesNotAllocate) {
  policy::Policy policy;
  auto r = rule("r");
  r.tls.sni = {"*.example", "a.example"};
  r.tls.sniRegex = {"re[0-9]\\.example"};
  r.tls.alpn = {"h2"};
  r.payload.regex = {"needle"};
  auto p = rule("p");
  p.http.path = {"/x/*"};
  policy.rules = {r, p};
  Harness h(policy);
  std::string_view alpn[] = {"h2"};
  L7Facts facts;
  facts.sni = "a.example";
  facts.alpn = alpn;
  facts.alpnCount = 1;
  facts.payloadToServer = "haystack needle";
  facts.httpPath = "/x/y";
  facts.presentFields = kFactSni | kFactAlpn | kFactPayloadToServer | kFactHttpPath;
  allocations = 0;
  countingAllocations = true;
  for (int i = 0; i < 100; ++i) h.matcher().match(facts, h.scratch(), h.out());
  uint32_t first = h.matcher().firstMatchingRule(facts, h.scratch(), h.out(), 2);
  countingAllocations = false;
  EXPECT_EQ(allocations, 0u);
  EXPECT_EQ(first, 0u);
  EXPECT_EQ(h.out().count(), 2u);
}

TEST(L7Matcher, ClonedScratchMatchesTheSame) {
  policy::Policy policy;
  auto r = rule("r");
  r.tls.sni = {"a.example"};
  policy.rules = {r};
  Harness h(policy);
  auto clone = h.scratch().clone();
  ASSERT_TRUE(clone.ok());
  L7Facts facts;
  facts.sni = "A.example";
  facts.presentFields = kFactSni;
  RuleSet out = h.matcher().ruleSet();
  h.matcher().match(facts, *clone.value(), out);
  EXPECT_TRUE(out.test(0));
}

TEST(L7Matcher, NoL7RulesHasNoDatabases) {
  policy::Policy policy;
  policy.rules = {rule("a"), rule("b")};
  Harness h(policy);
  for (size_t f = 0; f < kL7FieldCount; ++f) EXPECT_FALSE(h.matcher().hasDatabase(static_cast<L7Field>(f)));
  L7Facts facts;
  facts.sni = "x";
  facts.presentFields = kFactSni;
  EXPECT_EQ(h.match(facts), Rules{});
}

TEST(L7Matcher, RejectedPatternNamesRuleAndHyperscanMessage) {
  policy::Policy policy;
  auto good = rule("good");
  good.tls.sni = {"a.example"};
  auto bad = rule("broken-regex");
  bad.location.file = "policy.yaml";
  bad.location.line = 12;
  bad.tls.sniRegex = {"x[z-a]"};  // an inverted range: balanced, but Hyperscan rejects it
  policy.rules = {good, bad};
  auto compiled = L7Matcher::compile(policy);
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.error().code, EINVAL);
  EXPECT_NE(compiled.error().message.find("broken-regex"), std::string::npos) << compiled.error().message;
  EXPECT_NE(compiled.error().message.find("policy.yaml:12"), std::string::npos) << compiled.error().message;
  EXPECT_NE(compiled.error().message.find("Hyperscan: "), std::string::npos) << compiled.error().message;
  EXPECT_NE(compiled.error().message.find("x[z-a]"), std::string::npos) << compiled.error().message;

  auto escape = rule("escape");
  escape.tls.sniRegex = {"a)|(.*"};  // balanced only once wrapped: must not become an unanchored alternative
  policy.rules = {escape};
  compiled = L7Matcher::compile(policy);
  ASSERT_FALSE(compiled.ok());
  EXPECT_NE(compiled.error().message.find("unbalanced"), std::string::npos) << compiled.error().message;

  auto classes = rule("classes");
  classes.tls.sniRegex = {"[)(]x\\)[^]()][[:alpha:]]+\\Q)(\\E"};
  policy.rules = {classes};
  compiled = L7Matcher::compile(policy);
  EXPECT_TRUE(compiled.ok()) << compiled.error().message;

  auto nul = rule("nul");
  nul.payload.regex = {std::string("ab\0cd", 5)};
  policy.rules = {nul};
  compiled = L7Matcher::compile(policy);
  ASSERT_FALSE(compiled.ok());
  EXPECT_NE(compiled.error().message.find("NUL"), std::string::npos) << compiled.error().message;

  auto backref = rule("backref");
  backref.payload.regex = {"(a)\\1"};  // back-references: PCRE has them, Hyperscan does not
  policy.rules = {backref};
  compiled = L7Matcher::compile(policy);
  ASSERT_FALSE(compiled.ok());
  EXPECT_NE(compiled.error().message.find("backref"), std::string::npos) << compiled.error().message;
}

std::string sniName(int i) {
  return "host" + std::to_string(i) + ".svc" + std::to_string(i % 97) + ".example";
}

TEST(L7Matcher, TenThousandSniLiterals) {
  constexpr int kRules = 10000;
  policy::Policy policy;
  policy.rules.reserve(kRules);
  for (int i = 0; i < kRules; ++i) {
    auto r = rule("r" + std::to_string(i));
    r.tls.sni = {sniName(i)};
    policy.rules.push_back(std::move(r));
  }
  Harness h(policy);
  EXPECT_EQ(h.matcher().stats().patternCount[static_cast<size_t>(L7Field::kSni)], size_t{kRules});
  EXPECT_EQ(h.matcher().stats().tablePatterns[static_cast<size_t>(L7Field::kSni)], size_t{kRules});
  for (int i = 0; i < kRules; i += 37) {
    ASSERT_EQ(h.sni(sniName(i)), (Rules{static_cast<uint32_t>(i)})) << sniName(i);
  }
  EXPECT_EQ(h.sni(sniName(kRules - 1)), (Rules{kRules - 1}));
  EXPECT_EQ(h.sni("host1.svc1.example.x"), Rules{});
  EXPECT_EQ(h.sni("host10000.svc9.example"), Rules{});
}

// A fresh directory per test, removed in teardown even when the test fails.
class L7MatcherCache : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vgate-l7cache-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    policy_.sourceHash = "ab12cd34";
    auto a = rule("a");
    a.tls.sni = {"*.bank.example"};
    a.tls.sniRegex = {"w+[0-9]*\\.bank\\.example"};
    a.tls.alpn = {"h2"};
    auto b = rule("b");
    b.http.path = {"/admin/*"};
    b.payload.regex = {"secret[0-9]+"};
    policy_.rules = {a, b};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  policy::Policy policy_;
};

Rules probe(Harness& h) {
  std::string_view alpn[] = {"h2"};
  L7Facts facts;
  facts.sni = "www.bank.example";
  facts.alpn = alpn;
  facts.alpnCount = 1;
  facts.httpPath = "/admin/x";
  facts.payloadToServer = "GET secret42";
  facts.presentFields = kFactSni | kFactAlpn | kFactHttpPath | kFactPayloadToServer;
  return h.match(facts);
}

TEST_F(L7MatcherCache, RoundTrip) {
  CompileOptions options{dir_.string()};
  Harness first(policy_, options);
  EXPECT_EQ(first.matcher().stats().cacheHits, 0u);
  EXPECT_EQ(first.matcher().stats().cacheWrites, 4u);
  EXPECT_EQ(cacheFilesIn(dir_).size(), 4u);
  for (auto field : {L7Field::kSni, L7Field::kAlpn, L7Field::kHttpPath, L7Field::kPayload}) {
    auto files = first.matcher().cacheFiles(field);
    ASSERT_EQ(files.size(), 1u) << l7FieldName(field);
    EXPECT_TRUE(std::filesystem::exists(dir_ / files[0])) << l7FieldName(field);
  }
  EXPECT_TRUE(first.matcher().cacheFiles(L7Field::kHttpHost).empty());

  Harness second(policy_, options);
  const auto& stats = second.matcher().stats();
  EXPECT_EQ(stats.cacheHits, 4u);
  EXPECT_EQ(stats.cacheWrites, 0u);
  EXPECT_EQ(stats.cacheRejected, 0u);
  EXPECT_TRUE(stats.loadedFromCache[static_cast<size_t>(L7Field::kSni)]);
  EXPECT_TRUE(stats.loadedFromCache[static_cast<size_t>(L7Field::kPayload)]);
  EXPECT_EQ(stats.totalDatabaseBytes, first.matcher().stats().totalDatabaseBytes);
  EXPECT_EQ(probe(first), (Rules{0, 1}));
  EXPECT_EQ(probe(second), probe(first));
}

TEST_F(L7MatcherCache, CorruptFileIsRebuilt) {
  CompileOptions options{dir_.string()};
  std::filesystem::path sni, alpn;
  {
    Harness first(policy_, options);
    sni = dir_ / first.matcher().cacheFiles(L7Field::kSni).at(0);
    alpn = dir_ / first.matcher().cacheFiles(L7Field::kAlpn).at(0);
  }
  auto size = std::filesystem::file_size(sni);
  {
    std::fstream file(sni, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(size - 10));
    file.write("garbage!!!", 10);
  }
  std::filesystem::resize_file(alpn, 20);  // truncated
  Harness second(policy_, options);
  const auto& stats = second.matcher().stats();
  EXPECT_EQ(stats.cacheRejected, 2u);
  EXPECT_EQ(stats.cacheHits, 2u);
  EXPECT_EQ(stats.cacheWrites, 2u);
  EXPECT_FALSE(stats.loadedFromCache[static_cast<size_t>(L7Field::kSni)]);
  EXPECT_EQ(probe(second), (Rules{0, 1}));

  Harness third(policy_, options);  // the rebuilt files are good again
  EXPECT_EQ(third.matcher().stats().cacheHits, 4u);
  EXPECT_EQ(probe(third), (Rules{0, 1}));
}

TEST_F(L7MatcherCache, SameHashOtherPatternsIsNotReused) {
  CompileOptions options{dir_.string()};
  { Harness first(policy_, options); }
  policy_.rules[0].tls.sniRegex = {
      "only\\.example"};  // a stale hash must not hand back another policy's database
  Harness second(policy_, options);
  EXPECT_FALSE(second.matcher().stats().loadedFromCache[static_cast<size_t>(L7Field::kSni)]);
  EXPECT_EQ(second.sni("only.example"), Rules{});  // alpn not present
  std::string_view alpn[] = {"h2"};
  L7Facts facts;
  facts.sni = "only.example";
  facts.alpn = alpn;
  facts.alpnCount = 1;
  facts.presentFields = kFactSni | kFactAlpn;
  EXPECT_EQ(second.match(facts), (Rules{0}));
}

TEST_F(L7MatcherCache, FileNamesNeverComeFromThePolicy) {
  policy_.sourceHash = "../escape";
  policy_.rules[0].name = "../../rule";
  Harness h(policy_, CompileOptions{dir_.string()});
  EXPECT_EQ(h.matcher().stats().cacheWrites, 4u);
  auto files = cacheFilesIn(dir_);
  EXPECT_EQ(files.size(), 4u);
  for (const auto& name : files) EXPECT_TRUE(hexName(name)) << name;
  EXPECT_FALSE(std::filesystem::exists(dir_.parent_path() / "escape-sni.hsdb"));
  EXPECT_EQ(probe(h), (Rules{0, 1}));
}

// A file longer than its header says (data appended) is not what was written: rejected and rebuilt.
TEST_F(L7MatcherCache, LongerFileIsRebuilt) {
  CompileOptions options{dir_.string()};
  std::filesystem::path sni;
  {
    Harness first(policy_, options);
    sni = dir_ / first.matcher().cacheFiles(L7Field::kSni).at(0);
  }
  { std::ofstream(sni, std::ios::app | std::ios::binary) << "x"; }
  Harness second(policy_, options);
  EXPECT_EQ(second.matcher().stats().cacheRejected, 1u);
  EXPECT_EQ(second.matcher().stats().cacheWrites, 1u);
  EXPECT_EQ(probe(second), (Rules{0, 1}));
}

// The regex rules of the edit tests: enough distinct patterns for four chunks, so that an edit can be seen
// to recompile only the chunks it touches. One digit, not [0-9]+: a repeat makes each pattern cost Hyperscan
// several times as much, and these tests compile hundreds.
policy::Policy regexPolicy(int rules) {
  policy::Policy policy;
  for (int i = 0; i < rules; ++i) {
    auto r = rule("r" + std::to_string(i));
    r.tls.sniRegex = {"r" + std::to_string(i) + "-[0-9]\\.example"};
    policy.rules.push_back(r);
  }
  return policy;
}

std::string regexName(int i) { return "r" + std::to_string(i) + "-4.example"; }

class L7MatcherChunkCache : public L7MatcherCache {
 protected:
  static constexpr int kRules = static_cast<int>(2 * kChunkPatterns + 10);  // four chunks (see above)
  static constexpr size_t kChunks = 4;
};

TEST_F(L7MatcherChunkCache, EditingOnePatternRecompilesOnlyItsChunks) {
  CompileOptions options{dir_.string()};
  auto policy = regexPolicy(kRules);
  Harness cold(policy, options);
  ASSERT_EQ(cold.matcher().stats().databaseCount[0], kChunks);
  auto before = cold.matcher().cacheFiles(L7Field::kSni);

  // Dropping one regex (the rule now names an SNI literal, a host table entry) changes its chunk only.
  policy.rules[7].tls.sniRegex.clear();
  policy.rules[7].tls.sni = {"seven.example"};
  Harness dropped(policy, options);
  const auto& droppedStats = dropped.matcher().stats();
  EXPECT_EQ(droppedStats.cacheWrites, 1u);
  EXPECT_EQ(droppedStats.cacheHits, kChunks - 1);
  EXPECT_LT(droppedStats.compiledPatterns, size_t{kChunkPatterns});
  EXPECT_EQ(dropped.sni(regexName(7)), Rules{});
  EXPECT_EQ(dropped.sni("seven.example"), Rules{7});

  // Changing one regex: it leaves one chunk and joins one (perhaps the same); the others are hits.
  policy = regexPolicy(kRules);
  policy.rules[100].tls.sniRegex = {"changed-[a-z]+\\.example"};
  Harness edited(policy, options);
  const auto& stats = edited.matcher().stats();
  EXPECT_GE(stats.cacheWrites, 1u);
  EXPECT_LE(stats.cacheWrites, 2u);
  EXPECT_EQ(stats.cacheHits + stats.cacheWrites, kChunks);
  EXPECT_LT(stats.compiledPatterns, size_t{2 * kChunkPatterns});
  auto after = edited.matcher().cacheFiles(L7Field::kSni);
  size_t same = 0;
  for (const auto& name : after) same += std::count(before.begin(), before.end(), name);
  EXPECT_EQ(same, kChunks - stats.cacheWrites);
  EXPECT_EQ(edited.sni("changed-abc.example"), Rules{100});
  EXPECT_EQ(edited.sni(regexName(100)), Rules{});
  for (int i : {0, 99, 101, kRules - 1})
    EXPECT_EQ(edited.sni(regexName(i)), Rules{static_cast<uint32_t>(i)}) << i;

  // The same result as without any cache.
  Harness uncached(policy);
  for (int i = 0; i < kRules; ++i) {
    EXPECT_EQ(edited.sni(regexName(i)), uncached.sni(regexName(i))) << i;
  }
  EXPECT_EQ(edited.sni("changed-x.example"), uncached.sni("changed-x.example"));
}

TEST_F(L7MatcherChunkCache, InsertingAtTheTopShiftsRulesWithoutRecompiling) {
  CompileOptions options{dir_.string()};
  auto policy = regexPolicy(kRules);
  { Harness cold(policy, options); }

  // A rule without a regex in front: every index moves by one, every chunk is a hit, every verdict moves.
  auto top = rule("top");
  top.tls.sni = {"top.example"};
  policy.rules.insert(policy.rules.begin(), top);
  Harness shifted(policy, options);
  EXPECT_EQ(shifted.matcher().stats().cacheHits, kChunks);
  EXPECT_EQ(shifted.matcher().stats().compiledPatterns, 0u);
  EXPECT_EQ(shifted.sni("top.example"), Rules{0});
  Harness uncached(policy);
  for (int i = 0; i < kRules; ++i) {
    EXPECT_EQ(shifted.sni(regexName(i)), (Rules{static_cast<uint32_t>(i + 1)})) << i;
    EXPECT_EQ(shifted.sni(regexName(i)), uncached.sni(regexName(i))) << i;
  }

  // A regex rule in front: its pattern joins one chunk, the other chunks are hits.
  policy.rules[0].tls.sni.clear();
  policy.rules[0].tls.sniRegex = {"top-[0-9]+\\.example"};
  Harness inserted(policy, options);
  EXPECT_EQ(inserted.matcher().stats().cacheWrites, 1u);
  EXPECT_EQ(inserted.matcher().stats().cacheHits, kChunks - 1);
  EXPECT_EQ(inserted.sni("top-1.example"), Rules{0});
  for (int i : {0, 1, kRules / 2, kRules - 1}) {
    EXPECT_EQ(inserted.sni(regexName(i)), (Rules{static_cast<uint32_t>(i + 1)})) << i;
  }
}

// The directory keeps this compile's files and at most max(kCacheKeepOther, that many) others, newest first.
TEST_F(L7MatcherCache, GrowthIsBounded) {
  CompileOptions options{dir_.string()};
  Harness current(policy_, options);
  auto mine = cacheFilesIn(dir_);
  ASSERT_EQ(mine.size(), 4u);
  // Stale files from other policies, oldest first by mtime.
  auto now = std::filesystem::file_time_type::clock::now();
  for (size_t i = 0; i < kCacheKeepOther + 10; ++i) {
    char name[40];
    std::snprintf(name, sizeof(name), "%032zx.hsdb", i);
    std::ofstream(dir_ / name) << "old";
    std::filesystem::last_write_time(dir_ / name, now - std::chrono::hours(100 - static_cast<int>(i)));
  }
  std::ofstream(dir_ / "00000000000000000000000000000000.hsdb.tmp.1.0") << "crashed";
  std::filesystem::last_write_time(dir_ / "00000000000000000000000000000000.hsdb.tmp.1.0",
                                   now - std::chrono::hours(2));
  std::ofstream(dir_ / "unrelated.txt") << "kept";
  // A compile that writes (one pattern changed) sweeps.
  policy_.rules[1].payload.regex = {"other[0-9]+"};
  Harness next(policy_, options);
  EXPECT_EQ(next.matcher().stats().cacheWrites, 1u);
  EXPECT_EQ(next.matcher().stats().cacheEvicted, 11u + 1u);  // 75 others over 64, and the temporary
  auto left = cacheFilesIn(dir_);
  EXPECT_EQ(left.size(), 4u + kCacheKeepOther + 1u);  // this compile's, the newest others, unrelated.txt
  for (const auto& name : mine) EXPECT_EQ(left.count(name), 1u) << name;  // the previous version stays
  EXPECT_EQ(left.count("00000000000000000000000000000000.hsdb"), 0u);     // the oldest went
  EXPECT_EQ(left.count("unrelated.txt"), 1u);
  EXPECT_EQ(probe(next), (Rules{0}));
}

TEST_F(L7MatcherCache, UnwritableDirectoryStillCompiles) {
  CompileOptions options{"/proc/vgate-no-such-dir"};
  Harness h(policy_, options);
  EXPECT_EQ(h.matcher().stats().cacheWrites, 0u);
  EXPECT_EQ(probe(h), (Rules{0, 1}));
}

}  // namespace
}  // namespace vgate::dataplane
