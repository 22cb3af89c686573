#!/usr/bin/python3
"""Write crafted edge-case pcaps for vgate's flow parser.

    /usr/bin/python3 tests/data/craft_captures.py tests/data/pcap

Every flow is a complete TCP conversation: 3-way handshake, a TLS ClientHello
(delivered in an awkward way), server ACKs, FIN exchange.  The ClientHello is
built deterministically (fixed random/session id/key share derived from the
case name), addresses, ports, sequence numbers and timestamps are fixed, so the
output is byte-for-byte reproducible.

CASES (below) is also imported by make_manifest.py: it holds the values the
script told each crafted flow to carry (expected SNI / ALPN / VLAN ids).
"""
import hashlib
from decimal import Decimal
import os
import struct
import sys

from scapy.all import (Dot1AD, Dot1Q, Ether, IP, IPv6, IPv6ExtHdrDestOpt,
                       IPv6ExtHdrHopByHop, PadN, Raw, TCP, UDP, fragment, wrpcap)

BASE_TS = 1700000000  # 2023-11-14T22:13:20Z, fixed for reproducibility
CLIENT_MAC = "02:00:0a:fb:00:02"
SERVER_MAC = "02:00:0a:fb:00:01"
ALPN = ["h2", "http/1.1"]


# --------------------------------------------------------------- ClientHello
def _det(seed, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}/{i}".encode()).digest()
        i += 1
    return out[:n]


def _ext(etype, body):
    return struct.pack("!HH", etype, len(body)) + body


def client_hello_handshake(sni, alpn=ALPN, seed="vgate", pad_to=512, extra_exts=b""):
    """Return a TLS 1.3-capable ClientHello handshake message (type 1 + len + body).

    Layout mirrors curl/OpenSSL 3 (no GREASE), SNI is the FIRST extension so
    that cut points can be placed inside the host name."""
    ciphers = [0x1302, 0x1303, 0x1301, 0xC02C, 0xC030, 0xC02B, 0xC02F,
               0xCCA9, 0xCCA8, 0x009F, 0x009E, 0x00FF]
    name = sni.encode()
    exts = b""
    exts += _ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
    exts += _ext(11, b"\x03\x00\x01\x02")                                   # ec_point_formats
    groups = [0x001D, 0x0017, 0x001E, 0x0019, 0x0018]
    exts += _ext(10, struct.pack("!H", 2 * len(groups)) + b"".join(struct.pack("!H", g) for g in groups))
    exts += _ext(35, b"")                                                  # session_ticket
    alpn_list = b"".join(bytes([len(p)]) + p.encode() for p in alpn)
    exts += _ext(16, struct.pack("!H", len(alpn_list)) + alpn_list)
    exts += _ext(22, b"")                                                  # encrypt_then_mac
    exts += _ext(23, b"")                                                  # extended_master_secret
    sigs = [0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080A, 0x080B,
            0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601]
    exts += _ext(13, struct.pack("!H", 2 * len(sigs)) + b"".join(struct.pack("!H", s) for s in sigs))
    exts += _ext(43, b"\x04\x03\x04\x03\x03")                              # supported_versions 1.3, 1.2
    exts += _ext(45, b"\x01\x01")                                          # psk_key_exchange_modes
    exts += _ext(51, struct.pack("!HHH", 36, 0x001D, 32) + _det(seed + "/ks", 32))  # key_share x25519
    exts += extra_exts
    body = struct.pack("!H", 0x0303) + _det(seed + "/random", 32)
    body += b"\x20" + _det(seed + "/sid", 32)
    body += struct.pack("!H", 2 * len(ciphers)) + b"".join(struct.pack("!H", c) for c in ciphers)
    body += b"\x01\x00"
    fixed = len(body) + 2 + len(exts)
    if pad_to and fixed + 4 < pad_to:                                      # RFC 7685 padding
        padlen = max(0, pad_to - 4 - fixed - 4)
        exts += _ext(21, b"\x00" * padlen)
    body += struct.pack("!H", len(exts)) + exts
    return b"\x01" + struct.pack("!I", len(body))[1:] + body


def record(payload, ctype=22, version=0x0301, length=None):
    return struct.pack("!BHH", ctype, version, len(payload) if length is None else length) + payload


def sni_name_offset(hs, sni):
    """Offset of the SNI host name inside the handshake message."""
    off = hs.find(sni.encode())
    assert off > 0
    return off


# --------------------------------------------------------------- TCP flows
class Flow:
    """Builds the frames of one TCP conversation with deterministic fields."""

    def __init__(self, idx, v6=False, vlans=(), v6_exthdrs=False, sport=443):
        self.idx = idx
        self.v6 = v6
        self.vlans = list(vlans)
        self.v6_exthdrs = v6_exthdrs
        if v6:
            self.cip, self.sip = f"fd00:251:{idx}::2", f"fd00:251:{idx}::1"
        else:
            self.cip, self.sip = f"10.251.{idx}.2", f"10.251.{idx}.1"
        self.cport, self.sport = 40000 + idx, sport
        self.c_isn, self.s_isn = 1000000 * idx + 1, 2000000 * idx + 7
        self.cseq, self.sseq = self.c_isn, self.s_isn        # next seq to send
        self.ipid = {True: 100 * idx, False: 100 * idx + 50}
        self.frames = []
        self.ts_us = (BASE_TS + 10 * idx) * 1000000   # integer microseconds

    # l2 + l3 headers
    def _l2(self):
        if not self.vlans:
            return Ether(src=None, dst=None)
        if len(self.vlans) == 1:
            return Ether() / Dot1Q(vlan=self.vlans[0])
        return Ether(type=0x88A8) / Dot1AD(vlan=self.vlans[0]) / Dot1Q(vlan=self.vlans[1])

    def _frame(self, to_server, l4):
        src_mac, dst_mac = (CLIENT_MAC, SERVER_MAC) if to_server else (SERVER_MAC, CLIENT_MAC)
        l2 = self._l2()
        l2.src, l2.dst = src_mac, dst_mac
        src, dst = (self.cip, self.sip) if to_server else (self.sip, self.cip)
        if self.v6:
            l3 = IPv6(src=src, dst=dst, hlim=64)
            if self.v6_exthdrs:
                l3 = l3 / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\x00\x00\x00\x00")]) \
                        / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])
        else:
            self.ipid[to_server] += 1
            l3 = IP(src=src, dst=dst, ttl=64, id=self.ipid[to_server])
        return l2 / l3 / l4

    def _add(self, pkt, dt=0.001):
        pkt = pkt.__class__(bytes(pkt))                      # freeze checksums/lengths
        self.ts_us += int(round(dt * 1000000))
        pkt.time = Decimal(self.ts_us) / Decimal(1000000)
        self.frames.append(pkt)
        return pkt

    def tcp(self, to_server, flags, payload=b"", seq=None, dt=0.001, ipfrag=0, frag_reverse=False):
        sport, dport = (self.cport, self.sport) if to_server else (self.sport, self.cport)
        if seq is None:
            seq = self.cseq if to_server else self.sseq
        ack = (self.sseq if to_server else self.cseq) if "A" in flags else 0
        opts = [("MSS", 1460)] if "S" in flags else []
        l4 = TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=64240, options=opts)
        if payload:
            l4 = l4 / Raw(payload)
        pkt = self._frame(to_server, l4)
        if ipfrag:
            full = pkt.__class__(bytes(pkt))                  # TCP checksum over full payload
            frags = fragment(full[IP], fragsize=ipfrag)
            if frag_reverse:
                frags = frags[::-1]
            for i, f in enumerate(frags):
                fr = Ether(src=full.src, dst=full.dst) / f
                self._add(fr, dt if i == 0 else 0.000001)
        else:
            self._add(pkt, dt)
        adv = len(payload) + (1 if ("S" in flags or "F" in flags) else 0)
        end = (seq + adv) & 0xFFFFFFFF
        if to_server:
            self.cseq = max(self.cseq, end)
        else:
            self.sseq = max(self.sseq, end)

    def udp(self, to_server, payload, dt=0.001):
        sport, dport = (self.cport, self.sport) if to_server else (self.sport, self.cport)
        self._add(self._frame(to_server, UDP(sport=sport, dport=dport) / Raw(payload)), dt)

    def handshake(self):
        self.tcp(True, "S")
        self.tcp(False, "SA")
        self.tcp(True, "A")

    def server_ack(self, ack_to=None):
        """Pure ACK from the server; ack_to = client seq to acknowledge (default: all)."""
        saved = self.cseq
        if ack_to is not None:
            self.cseq = ack_to
        self.tcp(False, "A")
        self.cseq = saved

    def close(self):
        self.tcp(True, "FA", dt=0.01)
        self.tcp(False, "FA")
        self.tcp(True, "A")


def chunks(data, n):
    """Split data into n nearly equal non-empty pieces."""
    k, m = divmod(len(data), n)
    out, pos = [], 0
    for i in range(n):
        ln = k + (1 if i < m else 0)
        out.append((pos, data[pos:pos + ln]))
        pos += ln
    return out


# --------------------------------------------------------------- cases
def case_split2(f, sni):
    rec = record(client_hello_handshake(sni, seed=sni))
    cut = 5 + sni_name_offset(rec[5:], sni) + len(sni) // 2       # inside the host name
    f.handshake()
    base = f.cseq
    f.tcp(True, "PA", rec[:cut])
    f.server_ack()
    f.tcp(True, "PA", rec[cut:])
    f.server_ack()
    assert f.cseq == base + len(rec)
    f.close()


def case_split50(f, sni):
    rec = record(client_hello_handshake(sni, seed=sni))
    f.handshake()
    for i, (_, piece) in enumerate(chunks(rec, 50)):
        f.tcp(True, "PA", piece)
        if i % 10 == 9:
            f.server_ack()
    f.server_ack()
    f.close()


def case_reordered(f, sni):
    rec = record(client_hello_handshake(sni, seed=sni))
    f.handshake()
    base = f.cseq
    parts = chunks(rec, 4)
    for i in (1, 0, 3, 2):                                       # arrival order
        off, piece = parts[i]
        f.tcp(True, "PA", piece, seq=base + off)
        # server acks the contiguous prefix it has so far
        have = {1: 0, 0: 2, 3: 2, 2: 4}[i]
        ack_to = base + (parts[have][0] if have < 4 else len(rec))
        f.server_ack(ack_to)
    f.close()


def case_retrans_overlap(f, sni):
    rec = record(client_hello_handshake(sni, seed=sni))
    n = len(rec)
    f.handshake()
    base = f.cseq
    # (offset, end) ranges as sent; all carry consistent bytes
    sends = [(0, 200), (0, 200), (150, 400), (100, n - 50), (400, n), (n - 100, n)]
    for a, b in sends:
        f.tcp(True, "PA", rec[a:b], seq=base + a)
    f.server_ack()
    f.close()


def case_two_records(f, sni):
    hs = client_hello_handshake(sni, seed=sni)
    cut = sni_name_offset(hs, sni) + len(sni) // 2                # record boundary inside the name
    data = record(hs[:cut]) + record(hs[cut:])
    f.handshake()
    f.tcp(True, "PA", data)
    f.server_ack()
    f.close()


def case_plain(f, sni):
    rec = record(client_hello_handshake(sni, seed=sni))
    f.handshake()
    f.tcp(True, "PA", rec)
    f.server_ack()
    f.close()


def case_ipv4_frag(f, sni):
    rec = record(client_hello_handshake(sni, seed=sni))
    f.handshake()
    f.tcp(True, "PA", rec, ipfrag=256)                            # 3 IPv4 fragments
    f.server_ack()
    f.close()


def case_ipv4_frag_reversed(f, sni):
    rec = record(client_hello_handshake(sni, seed=sni))
    f.handshake()
    f.tcp(True, "PA", rec, ipfrag=256, frag_reverse=True)         # fragments arrive last-first
    f.server_ack()
    f.close()


def case_split_record_header(f, sni):
    rec = record(client_hello_handshake(sni, seed=sni))
    f.handshake()
    f.tcp(True, "PA", rec[:3])                                    # half a record header
    f.server_ack()
    f.tcp(True, "PA", rec[3:])
    f.server_ack()
    f.close()


HTTP_SPLIT_REQ = (b"GET /split/path.html?q=a%20b&x=1 HTTP/1.1\r\n"
                  b"Host: httpsplit.vgate.test\r\n"
                  b"User-Agent: craft_captures/1\r\n"
                  b"Accept: */*\r\n\r\n")
HTTP_RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
             b"Connection: close\r\n\r\nok\n")


def case_http_split(f, sni):
    req = HTTP_SPLIT_REQ
    cut = req.find(b"httpsplit") + 4                              # inside the Host header value
    f.handshake()
    f.tcp(True, "PA", req[:cut])
    f.server_ack()
    f.tcp(True, "PA", req[cut:])
    f.server_ack()
    f.tcp(False, "PA", HTTP_RESP)
    f.tcp(True, "A")
    f.tcp(False, "FA", dt=0.01)                                   # server closes first
    f.tcp(True, "FA")
    f.tcp(False, "A")


# --------------------------------------------------------------- QUIC v1 Initials (RFC 9001 5.2, A.2)
def _quic_client_keys(dcid):
    from cryptography.hazmat.primitives import hashes, hmac

    def hm(k, d):
        h = hmac.HMAC(k, hashes.SHA256())
        h.update(d)
        return h.finalize()

    def label(secret, lbl, n):
        full = b"tls13 " + lbl
        info = struct.pack("!H", n) + bytes([len(full)]) + full + b"\x00"
        return hm(secret, info + b"\x01")[:n]                       # n <= 32: one HKDF block

    init = hm(bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"), dcid)
    c = label(init, b"client in", 32)
    return label(c, b"quic key", 16), label(c, b"quic iv", 12), label(c, b"quic hp", 16)


def _varint(v):
    if v < 0x40:
        return bytes([v])
    if v < 0x4000:
        return struct.pack("!H", 0x4000 | v)
    return struct.pack("!I", 0x80000000 | v)


def quic_initial(dcid, scid, pn, frames, min_size=1200):
    """One client Initial datagram (padded to >= 1200 bytes), header protection applied."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key, iv, hp = _quic_client_keys(dcid)
    pn_len = 2
    head = bytes([0xC0 | (pn_len - 1)]) + struct.pack("!I", 1) + bytes([len(dcid)]) + dcid \
        + bytes([len(scid)]) + scid + _varint(0)
    hdr_wo_len = len(head) + 2 + pn_len                              # 2-byte length varint
    pad = max(0, min_size - hdr_wo_len - len(frames) - 16)
    payload = frames + b"\x00" * pad
    head += struct.pack("!H", 0x4000 | (pn_len + len(payload) + 16))
    head += pn.to_bytes(pn_len, "big")
    nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
    ct = AESGCM(key).encrypt(nonce, payload, head)
    pkt = bytearray(head + ct)
    pn_off = len(head) - pn_len
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(bytes(pkt[pn_off + 4:pn_off + 20])) + enc.finalize()
    pkt[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        pkt[pn_off + i] ^= mask[1 + i]
    return bytes(pkt)


def crypto_frame(off, data):
    return b"\x06" + _varint(off) + _varint(len(data)) + data


def _quic_hello(sni):
    tp = _ext(0x39, bytes.fromhex("0104000075300504800800000604800400000704800400000801640901640f08") + _det(sni + "/scid", 8))
    return client_hello_handshake(sni, alpn=["h3"], seed=sni, pad_to=0, extra_exts=tp)


def case_quic_initial(f, sni):
    dcid, scid = _det(sni + "/dcid", 8), _det(sni + "/scid", 8)
    ch = _quic_hello(sni)
    f.udp(True, quic_initial(dcid, scid, 0, crypto_frame(0, ch)))
    f.udp(True, quic_initial(dcid, scid, 1, crypto_frame(0, ch)), dt=0.3)   # PTO retransmission


def case_quic_initial_split(f, sni):
    dcid, scid = _det(sni + "/dcid", 8), _det(sni + "/scid", 8)
    ch = _quic_hello(sni)
    cut = sni_name_offset(ch, sni) + len(sni) // 2                 # CRYPTO boundary inside the name
    f.udp(True, quic_initial(dcid, scid, 0, crypto_frame(cut, ch[cut:])))   # second half first
    f.udp(True, quic_initial(dcid, scid, 1, crypto_frame(0, ch[:cut])))


def case_truncated(f, sni):
    rec = record(client_hello_handshake(sni, seed=sni))
    cut = 5 + sni_name_offset(rec[5:], sni) + len(sni) // 2       # stops inside the host name
    f.handshake()
    f.tcp(True, "PA", rec[:cut])
    f.server_ack()
    f.close()


def case_lying_len_long(f, sni):
    hs = client_hello_handshake(sni, seed=sni)
    data = record(hs, length=0xFFFF)                              # > 2^14: record_overflow, never completes
    f.handshake()
    f.tcp(True, "PA", data)
    f.server_ack()
    f.close()


def case_lying_len_short(f, sni):
    hs = client_hello_handshake(sni, seed=sni)
    short = sni_name_offset(hs, sni) - 9                          # record ends before the SNI extension
    data = record(hs, length=short)
    nxt = data[5 + short]
    assert nxt not in (20, 21, 22, 23, 24), nxt                  # bytes after it are no valid record header
    f.handshake()
    f.tcp(True, "PA", data)
    f.server_ack()
    f.close()


# name -> dict(builder, flow kwargs, expected values, note)
CASES = {
    "crafted_split2": dict(fn=case_split2, idx=1, sni="split2.vgate.test",
        note="ClientHello in 2 TCP segments, cut inside the SNI host name; server ACKs each"),
    "crafted_split50": dict(fn=case_split50, idx=2, sni="split50.vgate.test",
        note="ClientHello in 50 TCP segments of ~10 bytes"),
    "crafted_reordered": dict(fn=case_reordered, idx=3, sni="reordered.vgate.test",
        note="ClientHello in 4 segments arriving in order 2,1,4,3 (server sends duplicate ACKs)"),
    "crafted_retrans_overlap": dict(fn=case_retrans_overlap, idx=4, sni="retrans.vgate.test",
        note="ClientHello sent as 6 segments with an exact duplicate and overlapping retransmissions "
             "(consistent bytes): [0,200) [0,200) [150,400) [100,n-50) [400,n) [n-100,n)"),
    "crafted_two_records": dict(fn=case_two_records, idx=5, sni="tworecords.vgate.test",
        note="ClientHello handshake message fragmented over 2 TLS records (boundary inside the SNI name), "
             "both records in one TCP segment"),
    "crafted_vlan_8021q": dict(fn=case_plain, idx=6, sni="vlan.vgate.test", vlans=[100],
        note="802.1Q tagged (VLAN 100) flow, every frame tagged"),
    "crafted_qinq": dict(fn=case_plain, idx=7, sni="qinq.vgate.test", vlans=[300, 100],
        note="QinQ: outer 802.1ad (0x88a8) VLAN 300, inner 802.1Q VLAN 100; vlan list is outer first"),
    "crafted_ipv4_frag": dict(fn=case_ipv4_frag, idx=8, sni="frag.vgate.test",
        note="The ClientHello packet is split into 3 IPv4 fragments (256+256+rest bytes of IP payload); "
             "packet counts count each fragment frame as one packet"),
    "crafted_ipv4_frag_reversed": dict(fn=case_ipv4_frag_reversed, idx=13, sni="fragrev.vgate.test",
        note="Like crafted_ipv4_frag but the 3 IPv4 fragments arrive in reverse order (last fragment first)"),
    "crafted_split_record_header": dict(fn=case_split_record_header, idx=14, sni="splithdr.vgate.test",
        note="First segment carries only 3 bytes of the 5-byte TLS record header, the rest follows"),
    "crafted_http_split": dict(fn=case_http_split, idx=15, sni=None, sport=80,
        http=dict(hostname="httpsplit.vgate.test", url="/split/path.html?q=a%20b&x=1", http_method="GET"),
        note="Plain HTTP/1.1 GET to port 80, request split over 2 segments inside the Host header value; "
             "server answers 200 and closes first"),
    "crafted_quic_initial": dict(fn=case_quic_initial, idx=16, sni=None, quic_sni="quicinit.vgate.test",
        note="QUIC v1 client Initial (whole ClientHello in one CRYPTO frame, padded to 1200 bytes), then an "
             "identical-content retransmission with packet number 1; deterministic DCID/keys; no server reply"),
    "crafted_quic_initial_split": dict(fn=case_quic_initial_split, idx=17, sni=None, quic_sni="quicsplit.vgate.test",
        note="QUIC v1: ClientHello split over 2 Initial datagrams, CRYPTO boundary inside the SNI name; the datagram "
             "with the SECOND half (offset > 0) comes first; no server reply"),
    "crafted_ipv6_exthdr": dict(fn=case_plain, idx=9, sni="v6ext.vgate.test", v6=True, v6_exthdrs=True,
        note="IPv6, every packet carries a Hop-by-Hop and a Destination Options extension header before TCP"),
    "crafted_truncated": dict(fn=case_truncated, idx=10, sni=None, sent_sni="truncated.vgate.test",
        note="Connection ends (FIN) in the middle of the ClientHello, inside the SNI host name: no SNI expected"),
    "crafted_lying_record_len_long": dict(fn=case_lying_len_long, idx=11, sni=None, sent_sni="lyinglong.vgate.test",
        note="TLS record header claims 65535 bytes (> 2^14, RFC 8446 record_overflow); the complete "
             "ClientHello follows, then FIN: the record never completes, no SNI expected"),
    "crafted_lying_record_len_short": dict(fn=case_lying_len_short, idx=12, sni=None, sent_sni="lyingshort.vgate.test",
        note="TLS record header claims fewer bytes than the ClientHello (record ends before the SNI "
             "extension); the following bytes are no valid record header: no SNI expected"),
    "crafted_bank_sni": dict(fn=case_plain, idx=18, sni="www.bank.example",
        note="TLS to www.bank.example: matched by policies/deny-bank-sni.yaml's *.bank.example"),
    "crafted_bank_apex": dict(fn=case_plain, idx=19, sni="bank.example",
        note="TLS to the apex bank.example: *.bank.example must NOT match it"),
    "crafted_bank_quic": dict(fn=case_quic_initial, idx=20, sni=None, quic_sni="api.example.com",
        note="QUIC v1 Initial to api.example.com: an SNI rule must judge HTTP/3 too; no server reply"),
}


def build(name):
    c = CASES[name]
    f = Flow(c["idx"], v6=c.get("v6", False), vlans=c.get("vlans", ()), v6_exthdrs=c.get("v6_exthdrs", False),
             sport=c.get("sport", 443))
    c["fn"](f, c["sni"] or c.get("sent_sni") or c.get("quic_sni"))
    return f


def main(argv):
    outdir = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "pcap")
    os.makedirs(outdir, exist_ok=True)
    for name in CASES:
        f = build(name)
        path = os.path.join(outdir, name + ".pcap")
        wrpcap(path, f.frames, linktype=1)
        print(f"{path}: {len(f.frames)} frames", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
