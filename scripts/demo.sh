#!/usr/bin/env bash
# vgate's demo until live interception lands: builds vgated and replays real client captures (curl, openssl,
# gnutls, python, node, chromium over TLS, QUIC and HTTP) through the dataplane, printing each flow's record.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${VGATE_RELEASE_BUILD:-build/release}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DVGATE_TESTS=OFF -DVGATE_BENCH=OFF >/dev/null
ninja -C "$build" vgated
for capture in tests/data/pcap/*.pcap; do
  echo "== $(basename "$capture")"
  summary=$(mktemp)
  "$build/control/vgated" replay --pcap "$capture" --flow-log - 2>"$summary" |
    python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    tls = r.get("tls") or r.get("quic") or {}
    http = r.get("http") or {}
    l7 = " ".join(x for x in [
        "sni=" + tls["sni"] if tls.get("sni") else "",
        "alpn=" + ",".join(tls.get("alpn", [])) if tls.get("alpn") else "",
        "ja4=" + tls["ja4"] if tls.get("ja4") else "",
        "host=" + http["hostname"] if http.get("hostname") else "",
        "url=" + http["url"] if http.get("url") else ""] if x)
    f = r["flow"]
    print("  %-4s %s:%s -> %s:%s %-5s pkts %d/%d bytes %d/%d %s/%s %s" % (
        r["proto"], r["src_ip"], r.get("src_port", "-"), r["dest_ip"], r.get("dest_port", "-"),
        r.get("app_proto", "-"), f["pkts_toserver"], f["pkts_toclient"], f["bytes_toserver"],
        f["bytes_toclient"], f["state"], f["reason"], l7))
'
  sed 's/^/  /' "$summary"
  rm -f "$summary"
done
echo
echo "The full JSON record of one flow:"
"$build/control/vgated" replay --pcap "$(ls tests/data/pcap/*.pcap | head -1)" --flow-log - | head -1 | python3 -m json.tool
