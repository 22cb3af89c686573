#!/usr/bin/env bash
# vgate's demo until live interception lands: builds vgated and replays real client captures (curl, openssl,
# gnutls, python, node, chromium over TLS, QUIC and HTTP) and crafted edge cases through the dataplane under the
# shipped policy policies/deny-bank-sni.yaml, printing each flow with its verdict and the rule that decided it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${VGATE_RELEASE_BUILD:-build/release}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DVGATE_TESTS=OFF -DVGATE_BENCH=OFF >/dev/null
ninja -C "$build" vgated
vgated="$build/control/vgated"
policy=policies/deny-bank-sni.yaml

echo
"$vgated" validate "$policy"
echo
for capture in tests/data/pcap/*.pcap; do
  echo "== $(basename "$capture")"
  summary=$(mktemp)
  "$vgated" replay --pcap "$capture" --policy "$policy" --flow-log - 2>"$summary" |
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
    f, v = r["flow"], r["verdict"]
    verdict = v["action"].upper() + (" by " + v["rule"] if v["rule"] else " (default)")
    print("  %-22s %-4s %s:%s -> %s:%s %-6s pkts %d/%d bytes %d/%d %s/%s %s" % (
        verdict, r["proto"], r["src_ip"], r.get("src_port", "-"), r["dest_ip"], r.get("dest_port", "-"),
        r.get("app_proto", "-"), f["pkts_toserver"], f["pkts_toclient"], f["bytes_toserver"],
        f["bytes_toclient"], f["state"], f["reason"], l7))
'
  sed 's/^/  /' "$summary"
  rm -f "$summary"
done
echo
echo "The full JSON record of a denied flow:"
"$vgated" replay --pcap tests/data/pcap/crafted_bank_sni.pcap --policy "$policy" --flow-log - 2>/dev/null |
  python3 -m json.tool
