// Builds the normalized FlowKey of a parsed packet and tells which side of the key the packet came from.
#pragma once

#include <cstdint>

#include "dataplane/packet/packet_parser.h"
#include "vgate/flow_key.h"

namespace vgate::dataplane {

// Fills `key` and returns true when the packet's source is the key's low endpoint.
bool buildFlowKey(const ParsedPacket& packet, FlowKey& key);

// Which worker owns a packet. Hashes the address pair and zone only, not the ports, so that every fragment of
// a datagram (only the first carries ports) reaches the worker that owns its flow. Symmetric by construction.
uint32_t flowDispatchHash(const ParsedPacket& packet);

// Copies a 16-byte key address back to the record form (IPv4: first 4 bytes).
void keyAddressToRecord(const uint8_t* keyAddress, bool ipv4, uint8_t* out);

}  // namespace vgate::dataplane
