// Fuzzes the control socket's request decoder: no crash, throw or over-read on any input, and whatever it
// accepts survives an encode/decode round trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "control/socket/control_protocol.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vgate::control;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  if (size >= kControlFrameHeaderBytes) {
    uint8_t header[kControlFrameHeaderBytes] = {data[0], data[1], data[2], data[3]};
    auto length = decodeFrameLength(header);
    check(length.ok() ? length.value() <= kControlMaxMessageBytes : length.error().code == EMSGSIZE);
  }

  uint64_t id = 0;
  auto request = decodeRequest(text, &id);
  if (!request.ok()) {
    int code = request.error().code;
    check(code == EINVAL || code == EPROTO);
    check(!request.error().message.empty());
    // What the server would send back must encode and decode.
    ControlReply reply = ControlReply::failure(code, request.error().message);
    reply.id = id;
    auto decoded = decodeReply(encodeReply(reply));
    check(decoded.ok() && decoded.value().status == code && decoded.value().id == id);
    return 0;
  }
  check(request.value().id == id);
  check(request.value().args.is_object());
  auto again = decodeRequest(encodeRequest(request.value()));
  check(again.ok());
  check(again.value().id == request.value().id && again.value().verb == request.value().verb &&
        again.value().args == request.value().args);
  return 0;
}
