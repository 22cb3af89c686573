// The control socket's wire contract: see control_protocol.h.
#include "control/socket/control_protocol.h"

#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vgate::control {
namespace {

using Json = nlohmann::json;

// Errno values fit here on Linux; a status outside it is not an errno value.
constexpr int kMaxErrno = 4095;

// A SAX consumer that only counts nesting, so that over-deep JSON is refused before any DOM is built.
class DepthCheck {
 public:
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(Json::number_integer_t) { return true; }
  bool number_unsigned(Json::number_unsigned_t) { return true; }
  bool number_float(Json::number_float_t, const Json::string_t&) { return true; }
  bool string(Json::string_t&) { return true; }
  bool binary(Json::binary_t&) { return true; }
  bool start_object(std::size_t) { return enter(); }
  bool key(Json::string_t&) { return true; }
  bool end_object() { return leave(); }
  bool start_array(std::size_t) { return enter(); }
  bool end_array() { return leave(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

  bool tooDeep() const { return tooDeep_; }

 private:
  bool enter() {
    if (++depth_ > kControlMaxJsonDepth) tooDeep_ = true;
    return !tooDeep_;
  }
  bool leave() {
    --depth_;
    return true;
  }

  size_t depth_ = 0;
  bool tooDeep_ = false;
};

// Parses `text` as a JSON object without throwing, or a one-line reason.
Result<Json> parseJson(std::string_view text, const char* what) {
  DepthCheck depth;
  bool valid = Json::sax_parse(text.begin(), text.end(), &depth, nlohmann::detail::input_format_t::json,
                               /*strict=*/true, /*ignore_comments=*/false);
  if (depth.tooDeep()) {
    return makeError(EINVAL,
                     std::string(what) + " nests deeper than " + std::to_string(kControlMaxJsonDepth));
  }
  if (!valid) return makeError(EINVAL, std::string(what) + " is not valid JSON");
  Json value = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return makeError(EINVAL, std::string(what) + " is not valid JSON");
  if (!value.is_object()) return makeError(EINVAL, std::string(what) + " is not a JSON object");
  return value;
}

// A non-negative integer member, or nullptr when it is absent or of another type.
const Json* unsignedMember(const Json& object, const char* name) {
  auto found = object.find(name);
  if (found == object.end() || !found->is_number_unsigned()) return nullptr;
  return &*found;
}

bool validVerb(const std::string& verb) {
  if (verb.empty() || verb.size() > kControlMaxVerbLength) return false;
  return std::all_of(verb.begin(), verb.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

Error versionError(uint64_t version) {
  return makeError(EPROTO, "protocol version " + std::to_string(version) +
                               " is not supported (this end speaks " +
                               std::to_string(kControlProtocolVersion) + ")");
}

int remainingMilliseconds(ControlDeadline deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
}

// Waits until `fd` is ready for `events`, or ETIMEDOUT when the deadline passes first.
Result<void> waitFor(int fd, short events, ControlDeadline deadline) {
  for (;;) {
    int timeout = remainingMilliseconds(deadline);
    if (timeout == 0) return makeError(ETIMEDOUT, "timed out");
    pollfd entry{fd, events, 0};
    int ready = ::poll(&entry, 1, timeout);
    if (ready > 0) return {};
    if (ready == 0) return makeError(ETIMEDOUT, "timed out");
    if (errno != EINTR) return makeError(errno, std::string("poll: ") + std::strerror(errno));
  }
}

// Reads exactly `size` bytes. `cleanEofAllowed`: EOF before the first byte is ENODATA rather than ECONNRESET.
Result<void> readExact(int fd, char* data, size_t size, ControlDeadline deadline, bool cleanEofAllowed) {
  size_t done = 0;
  while (done < size) {
    if (auto ready = waitFor(fd, POLLIN, deadline); !ready) return ready.error();
    ssize_t got = ::recv(fd, data + done, size - done, MSG_DONTWAIT);
    if (got > 0) {
      done += static_cast<size_t>(got);
    } else if (got == 0) {
      if (done == 0 && cleanEofAllowed) return makeError(ENODATA, "connection closed");
      return makeError(ECONNRESET, "connection closed in the middle of a message");
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return makeError(errno, std::string("recv: ") + std::strerror(errno));
    }
  }
  return {};
}

}  // namespace

ControlReply ControlReply::success(nlohmann::json result) {
  ControlReply reply;
  reply.result = std::move(result);
  return reply;
}

ControlReply ControlReply::failure(int status, std::string error) {
  ControlReply reply;
  reply.status = status;
  reply.error = std::move(error);
  return reply;
}

std::string errnoName(int code) {
  if (code == 0) return "OK";
  const char* name = code > 0 && code <= kMaxErrno ? ::strerrorname_np(code) : nullptr;
  return name != nullptr ? name : "E" + std::to_string(code);
}

int errnoFromName(std::string_view name) {
  if (name == "OK") return 0;
  for (int code = 1; code <= kMaxErrno; ++code) {
    const char* known = ::strerrorname_np(code);
    if (known != nullptr && name == known) return code;
  }
  return -1;
}

std::string encodeFrame(std::string_view payload) {
  auto size = static_cast<uint32_t>(payload.size());
  std::string frame;
  frame.reserve(kControlFrameHeaderBytes + payload.size());
  frame.push_back(static_cast<char>(size >> 24));
  frame.push_back(static_cast<char>(size >> 16));
  frame.push_back(static_cast<char>(size >> 8));
  frame.push_back(static_cast<char>(size));
  frame.append(payload);
  return frame;
}

Result<uint32_t> decodeFrameLength(const uint8_t (&header)[kControlFrameHeaderBytes]) {
  uint32_t size = (uint32_t{header[0]} << 24) | (uint32_t{header[1]} << 16) | (uint32_t{header[2]} << 8) |
                  uint32_t{header[3]};
  if (size > kControlMaxMessageBytes) {
    return makeError(EMSGSIZE, "message of " + std::to_string(size) + " bytes is over the limit of " +
                                   std::to_string(kControlMaxMessageBytes));
  }
  return size;
}

std::string encodeRequest(const ControlRequest& request) {
  Json document = {{"version", request.version},
                   {"id", request.id},
                   {"verb", request.verb},
                   {"args", request.args.is_null() ? Json::object() : request.args}};
  return document.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<ControlRequest> decodeRequest(std::string_view text, uint64_t* id) {
  auto parsed = parseJson(text, "request");
  if (!parsed) return parsed.error();
  const Json& document = parsed.value();

  ControlRequest request;
  const Json* idMember = unsignedMember(document, "id");
  if (idMember != nullptr) {
    request.id = idMember->get<uint64_t>();
    if (id != nullptr) *id = request.id;
  }
  if (!document.contains("version")) return makeError(EINVAL, "request has no \"version\"");
  const Json* version = unsignedMember(document, "version");
  if (version == nullptr) return makeError(EINVAL, "request \"version\" is not a non-negative integer");
  if (version->get<uint64_t>() != kControlProtocolVersion) return versionError(version->get<uint64_t>());
  if (idMember == nullptr)
    return makeError(EINVAL, "request \"id\" is missing or not a non-negative integer");

  auto verb = document.find("verb");
  if (verb == document.end() || !verb->is_string())
    return makeError(EINVAL, "request has no \"verb\" string");
  request.verb = verb->get<std::string>();
  if (!validVerb(request.verb)) {
    return makeError(EINVAL, "request \"verb\" must be 1 to " + std::to_string(kControlMaxVerbLength) +
                                 " letters, digits, '_', '-' or '.'");
  }

  auto args = document.find("args");
  if (args != document.end() && !args->is_null()) {
    if (!args->is_object()) return makeError(EINVAL, "request \"args\" is not an object");
    request.args = *args;
  }
  return request;
}

std::string encodeReply(const ControlReply& reply) {
  Json document = {
      {"version", reply.version}, {"id", reply.id},
      {"status", reply.status},   {"errno", errnoName(reply.status)},
      {"error", reply.error},     {"result", reply.result.is_null() ? Json::object() : reply.result}};
  return document.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<ControlReply> decodeReply(std::string_view text) {
  auto parsed = parseJson(text, "reply");
  if (!parsed) return parsed.error();
  const Json& document = parsed.value();

  ControlReply reply;
  const Json* version = unsignedMember(document, "version");
  if (version == nullptr)
    return makeError(EINVAL, "reply \"version\" is missing or not a non-negative integer");
  if (version->get<uint64_t>() != kControlProtocolVersion) return versionError(version->get<uint64_t>());
  const Json* id = unsignedMember(document, "id");
  if (id == nullptr) return makeError(EINVAL, "reply \"id\" is missing or not a non-negative integer");
  reply.id = id->get<uint64_t>();
  const Json* status = unsignedMember(document, "status");
  if (status == nullptr || status->get<uint64_t>() > kMaxErrno) {
    return makeError(EINVAL, "reply \"status\" is missing or not an errno value");
  }
  reply.status = static_cast<int>(status->get<uint64_t>());
  if (auto error = document.find("error"); error != document.end() && !error->is_null()) {
    if (!error->is_string()) return makeError(EINVAL, "reply \"error\" is not a string");
    reply.error = error->get<std::string>();
  }
  if (auto result = document.find("result"); result != document.end() && !result->is_null()) {
    if (!result->is_object()) return makeError(EINVAL, "reply \"result\" is not an object");
    reply.result = *result;
  }
  return reply;
}

Result<void> writeFrame(int fd, std::string_view payload, ControlDeadline deadline) {
  if (payload.size() > kControlMaxMessageBytes) {
    return makeError(EMSGSIZE, "message of " + std::to_string(payload.size()) +
                                   " bytes is over the limit of " + std::to_string(kControlMaxMessageBytes));
  }
  std::string frame = encodeFrame(payload);
  size_t done = 0;
  while (done < frame.size()) {
    if (auto ready = waitFor(fd, POLLOUT, deadline); !ready) return ready.error();
    ssize_t sent = ::send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent >= 0) {
      done += static_cast<size_t>(sent);
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return makeError(errno, std::string("send: ") + std::strerror(errno));
    }
  }
  return {};
}

Result<std::string> readFrame(int fd, ControlDeadline deadline) {
  uint8_t header[kControlFrameHeaderBytes];
  if (auto read = readExact(fd, reinterpret_cast<char*>(header), sizeof(header), deadline, true); !read) {
    return read.error();
  }
  auto size = decodeFrameLength(header);
  if (!size) return size.error();
  std::string payload(size.value(), '\0');
  if (auto read = readExact(fd, payload.data(), payload.size(), deadline, false); !read) return read.error();
  return payload;
}

}  // namespace vgate::control
