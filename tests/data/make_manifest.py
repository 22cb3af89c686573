#!/usr/bin/python3
"""Derive tests/data/captures.json from the pcaps, independently of vgate.

    /usr/bin/python3 tests/data/make_manifest.py tests/data/pcap tests/data/captures.json

Flows are rebuilt with scapy (VLAN tags, IPv6 extension headers and IPv4
fragments handled), the client is the side that sent the first SYN (first
packet for UDP).  Counters are per captured frame; bytes are the pcap
record's original length (Ethernet header included).

The expected application values (SNI, ALPN, TLS version, HTTP host/url, QUIC
SNI) are what make_captures.sh / craft_captures.py told the client to send.
They are cross-checked against the packets (own strict TLS parser, scapy's TLS
layer, QUIC Initial decryption); any mismatch aborts with an error.
"""
import json
import os
import struct
import sys

from scapy.all import (Dot1AD, Dot1Q, Ether, IP, IPv6, TCP, UDP, RawPcapReader,
                       load_layer)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import craft_captures  # noqa: E402

load_layer("tls")
from scapy.layers.tls.record import TLS  # noqa: E402
from scapy.layers.tls.handshake import TLSClientHello  # noqa: E402

E = os.environ.get
CURL = E("VG_CURL_VERSION")
OPENSSL = E("VG_OPENSSL_VERSION")
GNUTLS = E("VG_GNUTLS_VERSION")
PYTHON = E("VG_PYTHON_VERSION")
NODE = E("VG_NODE_VERSION")
CHROMIUM = E("VG_CHROMIUM_VERSION")
H1, H2H1 = ["http/1.1"], ["h2", "http/1.1"]

# what each real client was told to do (make_captures.sh)
REAL = {
    "curl_https_h1_tls13": dict(client=CURL, tls=dict(sni="www.vgate.test", alpn=H1, version="TLS 1.3"),
        note="curl --http1.1 https://www.vgate.test/ (--resolve to 10.250.0.1) against openssl s_server (TLS 1.3, -alpn h2,http/1.1, -www)"),
    "curl_https_h2_tls13": dict(client=CURL, tls=dict(sni="h2.vgate.test", alpn=H2H1, version="TLS 1.3"),
        note="curl --http2 https://h2.vgate.test/; server selects h2 but s_server -www does not speak HTTP/2, so the request fails after the handshake"),
    "curl_https_h1_tls12": dict(client=CURL, tls=dict(sni="tls12.vgate.test", alpn=H1, version="TLS 1.2"),
        note="curl --http1.1 https://tls12.vgate.test:4433/ against s_server -tls1_2: server Certificate in clear"),
    "curl_http_plain": dict(client=CURL, http=dict(hostname="www.vgate.test", url="/admin/index.html?x=1", http_method="GET"),
        note="curl --http1.1 http://www.vgate.test/admin/index.html?x=1 against python3 -m http.server"),
    "curl_https_ipv6": dict(client=CURL, tls=dict(sni="v6.vgate.test", alpn=H1, version="TLS 1.3"),
        note="curl -6 https://v6.vgate.test/ to [fd00:250::1]:443"),
    "openssl_s_client_tls13": dict(client=OPENSSL, tls=dict(sni="openssl.vgate.test", alpn=H2H1, version="TLS 1.3"),
        note="openssl s_client -servername openssl.vgate.test -alpn h2,http/1.1, stdin /dev/null"),
    "openssl_s_client_tls12": dict(client=OPENSSL, tls=dict(sni="openssl12.vgate.test", alpn=H1, version="TLS 1.2"),
        note="openssl s_client -servername openssl12.vgate.test -alpn http/1.1 to the TLS 1.2-only server (port 4433)"),
    "gnutls_cli_tls13": dict(client=GNUTLS, tls=dict(sni="gnutls.vgate.test", alpn=H2H1, version="TLS 1.3"),
        note="gnutls-cli --insecure --sni-hostname gnutls.vgate.test --alpn h2 --alpn http/1.1 10.250.0.1"),
    "python_ssl_tls13": dict(client=PYTHON, tls=dict(sni="python.vgate.test", alpn=H2H1, version="TLS 1.3"),
        note="python ssl: wrap_socket(server_hostname=python.vgate.test), set_alpn_protocols([h2, http/1.1]); handshake then close"),
    "node_tls_tls13": dict(client=NODE, tls=dict(sni="node.vgate.test", alpn=H2H1, version="TLS 1.3"),
        note="node tls.connect({servername: node.vgate.test, ALPNProtocols: [h2, http/1.1]}); handshake then end()"),
    "chromium_https": dict(client=CHROMIUM, tls=dict(sni="chromium.vgate.test", alpn=H2H1, version="TLS 1.3"),
        note="headless chromium fetching https://chromium.vgate.test/ (--host-resolver-rules MAP to 10.250.0.1); "
             "ALPN is chromium's default list; chromium may open more than one connection and uses GREASE / ECH-GREASE"),
    "chromium_quic": dict(client=CHROMIUM, quic=dict(sni="quic.vgate.test", alpn=["h3"], version=1),
        note="headless chromium --origin-to-force-quic-on=quic.vgate.test:443; nothing answers (UDP sink), "
             "so only client Initials (QUIC v1, ClientHello possibly spread over several Initials) are on the wire"),
}


# ------------------------------------------------------------------ TLS parsing
def parse_hello_exts(exts):
    out = {}
    p = 0
    while p + 4 <= len(exts):
        t, ln = struct.unpack("!HH", exts[p:p + 4])
        body = exts[p + 4:p + 4 + ln]
        if len(body) != ln:
            raise ValueError("truncated extension")
        out.setdefault(t, body)
        p += 4 + ln
    if p != len(exts):
        raise ValueError("bad extensions length")
    return out


def parse_client_hello(body):
    p = 2 + 32
    sid = body[p]; p += 1 + sid
    cs = struct.unpack("!H", body[p:p + 2])[0]; p += 2 + cs
    cm = body[p]; p += 1 + cm
    el = struct.unpack("!H", body[p:p + 2])[0]; p += 2
    if p + el != len(body):
        raise ValueError("bad ClientHello length")
    exts = parse_hello_exts(body[p:p + el])
    res = {}
    if 0 in exts:
        sn = exts[0]
        q = 2
        while q + 3 <= len(sn):
            nt, nl = sn[q], struct.unpack("!H", sn[q + 1:q + 3])[0]
            if nt == 0:
                res["sni"] = sn[q + 3:q + 3 + nl].decode()
                break
            q += 3 + nl
    if 16 in exts:
        al = exts[16]
        q, lst = 2, []
        while q < len(al):
            n = al[q]
            lst.append(al[q + 1:q + 1 + n].decode())
            q += 1 + n
        res["alpn"] = lst
    return res


TLS_VER = {0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}


def parse_server_hello(body):
    legacy = struct.unpack("!H", body[:2])[0]
    p = 2 + 32
    sid = body[p]; p += 1 + sid
    p += 2 + 1
    ver = legacy
    if p + 2 <= len(body):
        el = struct.unpack("!H", body[p:p + 2])[0]
        exts = parse_hello_exts(body[p + 2:p + 2 + el])
        if 43 in exts:
            ver = struct.unpack("!H", exts[43][:2])[0]
    return TLS_VER.get(ver, hex(ver))


def handshake_messages(stream):
    """Strict TLS record walk: yields (type, body) of complete handshake messages."""
    hs = b""
    pos = 0
    while pos + 5 <= len(stream):
        ct, ver, ln = struct.unpack("!BHH", stream[pos:pos + 5])
        if ct not in (20, 21, 22, 23) or (ver >> 8) != 3 or ln == 0 or ln > 16384 + 2048 or (ct == 22 and ln > 16384):
            break
        if pos + 5 + ln > len(stream):
            break
        if ct == 22:
            hs += stream[pos + 5:pos + 5 + ln]
        elif ct != 20:
            break
        pos += 5 + ln
    msgs = []
    q = 0
    while q + 4 <= len(hs):
        t = hs[q]
        ln = int.from_bytes(hs[q + 1:q + 4], "big")
        if q + 4 + ln > len(hs):
            break
        msgs.append((t, hs[q + 4:q + 4 + ln]))
        q += 4 + ln
    return msgs


def tls_info(c2s, s2c):
    info = {}
    for t, body in handshake_messages(c2s):
        if t == 1:
            info.update(parse_client_hello(body))
            break
    if "sni" in info or "alpn" in info:
        for t, body in handshake_messages(s2c):
            if t == 2:
                info["version"] = parse_server_hello(body)
                break
    return info


def scapy_sni(c2s):
    """Second opinion from scapy's TLS layer (single-record hellos only)."""
    try:
        rec = TLS(c2s)
    except Exception:
        return None
    for m in getattr(rec, "msg", []) or []:
        if isinstance(m, TLSClientHello):
            for e in m.ext or []:
                if getattr(e, "servernames", None):
                    return e.servernames[0].servername.decode()
    return None


# ------------------------------------------------------------------ QUIC Initial decryption
def quic_client_hello(datagrams):
    from cryptography.hazmat.primitives import hashes, hmac
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    def hmac256(key, data):
        h = hmac.HMAC(key, hashes.SHA256())
        h.update(data)
        return h.finalize()

    def expand_label(secret, label, length):
        full = b"tls13 " + label
        info = struct.pack("!H", length) + bytes([len(full)]) + full + b"\x00"
        out, t, i = b"", b"", 1
        while len(out) < length:
            t = hmac256(secret, t + info + bytes([i]))
            out += t
            i += 1
        return out[:length]

    def varint(b, p):
        n = 1 << (b[p] >> 6)
        v = b[p] & 0x3F
        for i in range(1, n):
            v = (v << 8) | b[p + i]
        return v, p + n

    salt_v1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
    crypto = {}
    keys = None
    version = None
    for dg in datagrams:
        p = 0
        while p < len(dg):
            first = dg[p]
            if not first & 0x80:
                break
            ver = struct.unpack("!I", dg[p + 1:p + 5])[0]
            q = p + 5
            dcl = dg[q]; dcid = dg[q + 1:q + 1 + dcl]; q += 1 + dcl
            scl = dg[q]; q += 1 + scl
            ptype = (first >> 4) & 3
            if ver != 1 or ptype != 0:
                break
            tl, q = varint(dg, q); q += tl
            length, q = varint(dg, q)
            pn_off, end = q, q + length
            if keys is None:
                isec = hmac256(salt_v1, dcid)
                csec = expand_label(isec, b"client in", 32)
                keys = (expand_label(csec, b"quic key", 16), expand_label(csec, b"quic iv", 12),
                        expand_label(csec, b"quic hp", 16))
                version = ver
            key, iv, hp = keys
            pkt = bytearray(dg[p:end])
            o = pn_off - p
            sample = bytes(pkt[o + 4:o + 20])
            enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
            mask = enc.update(sample) + enc.finalize()
            pkt[0] ^= mask[0] & 0x0F
            pnl = (pkt[0] & 3) + 1
            for i in range(pnl):
                pkt[o + i] ^= mask[1 + i]
            pn = int.from_bytes(pkt[o:o + pnl], "big")
            nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
            plain = AESGCM(key).decrypt(nonce, bytes(pkt[o + pnl:]), bytes(pkt[:o + pnl]))
            r = 0
            while r < len(plain):
                ft = plain[r]
                if ft == 0x00 or ft == 0x01:
                    r += 1
                elif ft == 0x06:
                    off, r = varint(plain, r + 1)
                    ln, r = varint(plain, r)
                    crypto.setdefault(off, plain[r:r + ln])
                    r += ln
                else:
                    break  # ACK / CONNECTION_CLOSE etc.: not expected from a fresh client
            p = end
    buf = bytearray()
    while True:
        cands = [(o, d) for o, d in crypto.items() if o <= len(buf) < o + len(d)]
        if not cands:
            break
        o, d = cands[0]
        buf += d[len(buf) - o:]
    if len(buf) < 4 or buf[0] != 1:
        return None, version
    ln = int.from_bytes(buf[1:4], "big")
    if len(buf) < 4 + ln:
        return None, version
    return parse_client_hello(bytes(buf[4:4 + ln])), version


# ------------------------------------------------------------------ flows
class FlowAcc:
    def __init__(self, proto, cli, srv, first_ts):
        self.proto, self.cli, self.srv = proto, cli, srv
        self.first_ts = first_ts
        self.pkts = [0, 0]
        self.bytes = [0, 0]
        self.vlans = None
        self.isn = [None, None]
        self.segs = [[], []]
        self.dgrams = []
        self.frag_frames = 0


def reassemble(isn, segs):
    if isn is None:
        return b""
    data = {}
    for seq, payload in segs:
        off = (seq - (isn + 1)) & 0xFFFFFFFF
        if off > 1 << 30:
            continue
        for i, b in enumerate(payload):
            data.setdefault(off + i, b)
    out = bytearray()
    while len(out) in data:
        out.append(data[len(out)])
    return bytes(out)


def read_flows(path):
    flows = {}
    order = []
    frags = {}
    for raw, meta in RawPcapReader(path):
        wl = meta.wirelen
        eth = Ether(raw)
        vl = []
        layer = eth.payload
        while isinstance(layer, (Dot1Q, Dot1AD)):
            vl.append(layer.vlan)
            layer = layer.payload
        frames = [wl]
        nfrag = 0
        if isinstance(layer, IP) and (layer.flags.MF or layer.frag):
            key = (layer.src, layer.dst, layer.id, layer.proto)
            ent = frags.setdefault(key, {"parts": {}, "wl": [], "hdr": None, "last": None})
            ent["parts"][layer.frag * 8] = bytes(layer.original[layer.ihl * 4: layer.len])
            ent["wl"].append(wl)
            if layer.frag == 0:
                ent["hdr"] = layer
            if not layer.flags.MF:
                ent["last"] = layer.frag * 8 + layer.len - layer.ihl * 4
            if ent["hdr"] is None or ent["last"] is None:
                continue
            buf = bytearray()
            while len(buf) in ent["parts"]:
                buf += ent["parts"][len(buf)]
            if len(buf) < ent["last"]:
                continue
            h = ent["hdr"]
            hdr = bytes(IP(src=h.src, dst=h.dst, proto=h.proto, id=h.id, ttl=h.ttl))[:20]
            tot = 20 + ent["last"]
            hdr = hdr[:2] + struct.pack("!H", tot) + hdr[4:]
            layer = IP(hdr + bytes(buf[: ent["last"]]))          # reassembled datagram
            frames = ent["wl"]
            nfrag = len(frames)
            del frags[key]
        if isinstance(layer, (IP, IPv6)):
            l4 = layer.getlayer(TCP) or layer.getlayer(UDP)
        else:
            continue
        if l4 is None:
            continue
        proto = "TCP" if isinstance(l4, TCP) else "UDP"
        a = (layer.src, l4.sport)
        b = (layer.dst, l4.dport)
        key = (proto,) + tuple(sorted([a, b]))
        f = flows.get(key)
        if f is None:
            if proto == "TCP" and not (l4.flags.S and not l4.flags.A) and l4.flags.S:
                cli, srv = b, a            # first seen is SYN/ACK: its receiver is the client
            else:
                cli, srv = a, b
            f = flows[key] = FlowAcc(proto, cli, srv, float(meta.sec) + meta.usec / 1e6)
            order.append(key)
        d = 0 if a == f.cli else 1
        f.pkts[d] += len(frames)
        f.bytes[d] += sum(frames)
        f.frag_frames += nfrag
        if f.vlans is None:
            f.vlans = vl
        if proto == "TCP":
            if l4.flags.S:
                f.isn[d] = l4.seq
            # raw bytes (never re-serialise: scapy's TLS layer may rewrite them)
            pl = bytes(l4.original[l4.dataofs * 4:])
            if isinstance(layer, IP):
                pl = pl[: max(0, layer.len - layer.ihl * 4 - l4.dataofs * 4)] if layer.len else pl
            if pl:
                f.segs[d].append((l4.seq, pl))
        elif d == 0:
            f.dgrams.append(bytes(l4.original[8:l4.len if l4.len else None]))
    return [flows[k] for k in order]


# ------------------------------------------------------------------ manifest
def check(cond, msg):
    if not cond:
        raise SystemExit("make_manifest: " + msg)


def describe(name, path, expect, crafted):
    out_flows = []
    tls_seen = quic_seen = http_seen = 0
    for f in read_flows(path):
        e = {"src_ip": f.cli[0], "src_port": f.cli[1], "dest_ip": f.srv[0], "dest_port": f.srv[1],
             "proto": f.proto, "pkts_toserver": f.pkts[0], "pkts_toclient": f.pkts[1],
             "bytes_toserver": f.bytes[0], "bytes_toclient": f.bytes[1]}
        if f.vlans:
            e["vlan"] = f.vlans
        if f.frag_frames:
            e["ipv4_fragment_frames"] = f.frag_frames
        if f.proto == "TCP":
            c2s = reassemble(f.isn[0], f.segs[0])
            s2c = reassemble(f.isn[1], f.segs[1])
            ti = tls_info(c2s, s2c)
            if "tls" in expect and ("sni" in ti or "alpn" in ti):
                want = expect["tls"]
                for k in ("sni", "alpn", "version"):
                    if k in want and (k != "version" or "version" in ti):
                        check(ti.get(k) == want[k], f"{name}: {k} parsed {ti.get(k)!r} != expected {want[k]!r}")
                ss = scapy_sni(c2s)
                # scapy's TLS layer does not join handshake fragments across records: only real
                # (unfragmented) hellos must agree exactly
                check(crafted or ss == want["sni"], f"{name}: scapy TLS layer sees SNI {ss!r}")
                e["tls"] = {k: want[k] for k in ("sni", "alpn", "version") if k in want and (k != "version" or "version" in ti)}
                tls_seen += 1
                print(f"  {name}: {f.cli} -> {f.srv} tls {ti} (scapy TLS layer SNI: {ss})", file=sys.stderr)
            elif "tls" not in expect:
                check("sni" not in ti, f"{name}: unexpected SNI {ti.get('sni')!r} parsed")
                if crafted and expect.get("sent_sni"):
                    ss = scapy_sni(c2s)
                    print(f"  {name}: no SNI by strict parse (scapy TLS layer says {ss!r})", file=sys.stderr)
            if "http" in expect and c2s[:4] in (b"GET ", b"POST", b"HEAD", b"PUT "):
                head = c2s.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
                method, url, _ = head[0].split(" ", 2)
                host = next((h.split(":", 1)[1].strip() for h in head[1:] if h.lower().startswith("host:")), None)
                want = expect["http"]
                got = {"hostname": host, "url": url, "http_method": method}
                check(got == want, f"{name}: http parsed {got} != expected {want}")
                e["http"] = dict(want)
                http_seen += 1
        elif "quic" in expect and f.dgrams:
            ch, ver = quic_client_hello(f.dgrams)
            want = expect["quic"]
            check(ch is not None, f"{name}: could not decrypt/reassemble the QUIC ClientHello")
            check(ch.get("sni") == want["sni"], f"{name}: QUIC SNI {ch.get('sni')!r}")
            check(ch.get("alpn") == want["alpn"], f"{name}: QUIC ALPN {ch.get('alpn')!r}")
            check(ver == want["version"], f"{name}: QUIC version {ver}")
            e["quic"] = dict(want)
            quic_seen += 1
            print(f"  {name}: QUIC Initial decrypted: {ch}", file=sys.stderr)
        out_flows.append(e)
    check(out_flows, f"{name}: no flows")
    check("tls" not in expect or tls_seen, f"{name}: no ClientHello with the expected SNI found")
    check("quic" not in expect or quic_seen, f"{name}: no QUIC Initial found")
    check("http" not in expect or http_seen, f"{name}: no HTTP request found")
    return out_flows


def main(argv):
    pdir = argv[1] if len(argv) > 1 else os.path.join(HERE, "pcap")
    out = argv[2] if len(argv) > 2 else os.path.join(HERE, "captures.json")
    old = {}
    if os.path.exists(out):
        try:
            old = {p["file"]: p for p in json.load(open(out))["pcaps"]}
        except Exception:
            old = {}
    import scapy
    pcaps = []
    for fn in sorted(os.listdir(pdir)):
        if not fn.endswith(".pcap"):
            continue
        name = fn[:-5]
        rel = "pcap/" + fn
        path = os.path.join(pdir, fn)
        if name in craft_captures.CASES:
            c = craft_captures.CASES[name]
            expect = {"sent_sni": c.get("sent_sni")}
            if c["sni"]:
                expect["tls"] = {"sni": c["sni"], "alpn": list(craft_captures.ALPN)}
            if c.get("quic_sni"):
                expect["quic"] = {"sni": c["quic_sni"], "alpn": ["h3"], "version": 1}
            if c.get("http"):
                expect["http"] = dict(c["http"])
            client = f"scapy {scapy.VERSION} (craft_captures.py)"
            note = c["note"]
            crafted = True
        elif name in REAL:
            r = REAL[name]
            expect = {k: v for k, v in r.items() if k in ("tls", "http", "quic")}
            client = r["client"] or old.get(rel, {}).get("client") or name.split("_")[0]
            note = r["note"]
            crafted = False
        else:
            print(f"make_manifest: {fn}: unknown capture, skipped", file=sys.stderr)
            continue
        flows = describe(name, path, expect, crafted)
        size = os.path.getsize(path)
        check(size < 200 * 1024, f"{fn} is {size} bytes (limit 200 KB)")
        pcaps.append({"file": rel, "client": client, "crafted": crafted, "linktype": "EN10MB",
                      "note": note, "flows": flows})
    doc = {
        "format": 1,
        "generated_by": "tests/data/make_captures.sh (make_manifest.py)",
        "conventions": {
            "client": "side that sent the first SYN (TCP) or the first datagram (UDP); src_* is the client, dest_* the server",
            "pkts": "captured frames per direction; every IPv4 fragment frame counts as one packet",
            "bytes": "sum of pcap record original lengths (whole Ethernet frame incl. 14-byte header and VLAN tags, no FCS)",
            "vlan": "VLAN ids, outermost first; absent when untagged",
            "tls": "sni / alpn (list, client's offer order) from what the client was told to send, verified against the "
                   "ClientHello; version = negotiated version from the ServerHello, only when a ServerHello is present",
            "http": "first request of the flow: Host header, request-target, method",
            "quic": "from the decrypted client Initial(s): sni, alpn, QUIC version",
            "absent": "a field is absent when it must NOT be produced or is not known for certain",
        },
        "pcaps": pcaps,
    }
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    print(f"make_manifest: wrote {out} ({len(pcaps)} pcaps, {sum(len(p['flows']) for p in pcaps)} flows)", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
