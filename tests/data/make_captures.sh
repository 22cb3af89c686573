#!/usr/bin/env bash
# Regenerate vgate's packet-capture test data.
#
#   sudo tests/data/make_captures.sh            # everything
#   SKIP_CHROMIUM=1 tests/data/make_captures.sh # without the chromium captures
#
# Creates two private network namespaces joined by a veth pair, runs local
# servers in one and real clients in the other, captures one pcap per client
# into tests/data/pcap/, writes crafted edge-case pcaps (craft_captures.py) and
# finally derives tests/data/captures.json from the pcaps (scapy).
# Traffic never leaves the two namespaces; every client is bounded by timeout;
# namespaces, servers and tcpdump are removed on every exit path.
set -euo pipefail

if [[ $EUID -ne 0 ]]; then echo "make_captures.sh: must run as root" >&2; exit 1; fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$HERE/pcap
PY=/usr/bin/python3            # Debian python with python3-scapy (not pyenv)
SRV=vgcap-srv-$$
CLI=vgcap-cli-$$
VS=vgs$$                       # veth end in server ns (<= 15 chars)
VC=vgc$$                       # veth end in client ns
S4=10.250.0.1  C4=10.250.0.2
S6=fd00:250::1 C6=fd00:250::2
WORK=$(mktemp -d /tmp/vgcap.XXXXXX)
PIDS=()

log() { printf '[make_captures] %s\n' "$*" >&2; }

cleanup() {
  local rc=$?
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  # anything still running inside our namespaces (e.g. chromium helpers)
  for ns in "$SRV" "$CLI"; do
    if ip netns list | grep -qw "$ns"; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    fi
  done
  ip link del "$VS" 2>/dev/null
  [[ -n "${KEEP_WORK:-}" ]] && echo "kept $WORK" >&2 || rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---------------------------------------------------------------- packages
need_pkgs=()
command -v tcpdump    >/dev/null || need_pkgs+=(tcpdump)
command -v openssl    >/dev/null || need_pkgs+=(openssl)
command -v gnutls-cli >/dev/null || need_pkgs+=(gnutls-bin)
command -v curl       >/dev/null || need_pkgs+=(curl)
command -v ethtool    >/dev/null || need_pkgs+=(ethtool)
$PY -c 'import scapy' 2>/dev/null || need_pkgs+=(python3-scapy)
$PY -c 'import cryptography' 2>/dev/null || need_pkgs+=(python3-cryptography)
if ((${#need_pkgs[@]})); then
  log "installing ${need_pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >&2; }
fi
NODE=$(command -v node || echo /usr/bin/node)
CHROMIUM=""
if [[ -z "${SKIP_CHROMIUM:-}" ]]; then
  if ! command -v chromium >/dev/null; then
    log "installing chromium"
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >&2 || log "chromium install failed: skipping chromium captures"
  fi
  CHROMIUM=$(command -v chromium || true)
  [[ -n "$CHROMIUM" ]] || log "chromium not available: skipping chromium captures"
fi

# ---------------------------------------------------------------- network
log "creating namespaces $SRV / $CLI"
ip netns add "$SRV"
ip netns add "$CLI"
ip link add "$VS" type veth peer name "$VC"
ip link set "$VS" netns "$SRV"
ip link set "$VC" netns "$CLI"
ip -n "$SRV" link set "$VS" address 02:00:0a:fa:00:01
ip -n "$CLI" link set "$VC" address 02:00:0a:fa:00:02
ip -n "$SRV" addr add $S4/24 dev "$VS"
ip -n "$CLI" addr add $C4/24 dev "$VC"
ip -n "$SRV" addr add $S6/64 dev "$VS" nodad
ip -n "$CLI" addr add $C6/64 dev "$VC" nodad
for ns_dev in "$SRV:$VS" "$CLI:$VC"; do
  ns=${ns_dev%%:*} dev=${ns_dev#*:}
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$dev" up
  ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off tx off rx off >/dev/null 2>&1 ||
    ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 || true
done
# static neighbours: no ARP / neighbour discovery traffic during captures
ip -n "$CLI" neigh replace $S4 lladdr 02:00:0a:fa:00:01 dev "$VC" nud permanent
ip -n "$CLI" neigh replace $S6 lladdr 02:00:0a:fa:00:01 dev "$VC" nud permanent
ip -n "$SRV" neigh replace $C4 lladdr 02:00:0a:fa:00:02 dev "$VS" nud permanent
ip -n "$SRV" neigh replace $C6 lladdr 02:00:0a:fa:00:02 dev "$VS" nud permanent

insrv() { ip netns exec "$SRV" "$@"; }
incli() { ip netns exec "$CLI" "$@"; }

# ---------------------------------------------------------------- servers
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj "/CN=vgate.test" \
  -addext "subjectAltName=DNS:vgate.test,DNS:*.vgate.test,IP:$S4,IP:$S6" 2>/dev/null

mkdir -p "$WORK/www/admin"
printf '<html><body>vgate admin test page</body></html>\n' >"$WORK/www/admin/index.html"
printf '<html><body>vgate</body></html>\n' >"$WORK/www/index.html"

start_bg() { # start_bg LOGNAME cmd... ; runs in server ns
  local name=$1; shift
  ip netns exec "$SRV" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  PIDS+=($!)
}
# TLS 1.3 capable servers on IPv4 and IPv6 (s_server's [::] socket is v6-only)
start_bg s_server13 openssl s_server -accept "$S4:443" -cert "$WORK/cert.pem" -key "$WORK/key.pem" \
  -alpn "h2,http/1.1" -www -no_ticket
start_bg s_server13v6 openssl s_server -accept "[$S6]:443" -cert "$WORK/cert.pem" -key "$WORK/key.pem" \
  -alpn "h2,http/1.1" -www -no_ticket
# TLS 1.2-only server: the certificate travels in clear
start_bg s_server12 openssl s_server -accept 4433 -cert "$WORK/cert.pem" -key "$WORK/key.pem" \
  -alpn "h2,http/1.1" -www -tls1_2 -no_ticket
# plain HTTP
start_bg httpd $PY -m http.server --bind $S4 --directory "$WORK/www" 80
# UDP sink on 443 so that QUIC Initials are not answered with ICMP unreachable
start_bg udpsink $PY -c '
import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("0.0.0.0",443))
while True: s.recvfrom(65535)'

wait_port() { # wait_port tcp|udp PORT
  for _ in $(seq 50); do
    if insrv ss -lnH -"${1:0:1}" "sport = :$2" | grep -q .; then return 0; fi
    sleep 0.1
  done
  log "server on $1/$2 did not come up"; return 1
}
wait_port tcp 443; wait_port tcp 4433; wait_port tcp 80; wait_port udp 443

# ---------------------------------------------------------------- capturing
mkdir -p "$OUT"
rm -f "$OUT"/crafted_*.pcap   # captured pcaps are overwritten one by one (kept if a client is skipped)
CAPTURED=()

# capture NAME TIMEOUT cmd... : run cmd in the client ns while tcpdump records
capture() {
  local name=$1 tmo=$2; shift 2
  local f="$OUT/$name.pcap" tlog="$WORK/tcpdump-$name.log"
  ip netns exec "$CLI" tcpdump -Z root -i "$VC" -U -s 65535 -w "$f" "(tcp or udp) and (host $S4 or host $S6)" >"$tlog" 2>&1 &
  local tp=$!
  PIDS+=($tp)
  for _ in $(seq 50); do grep -q "listening on" "$tlog" && break; sleep 0.1; done
  sleep 0.2
  log "capture $name: $*"
  local rc=0
  incli timeout -k 2 "$tmo" "$@" >"$WORK/client-$name.out" 2>&1 </dev/null || rc=$?
  sleep 1                                  # let FIN/ACKs and server replies arrive
  kill -TERM $tp 2>/dev/null || true
  wait $tp 2>/dev/null || true
  log "  client rc=$rc, $(tail -1 "$tlog")"
  CAPTURED+=("$name")
}

CURL=(curl -sS -k -o /dev/null --max-time 8)

capture curl_https_h1_tls13 10 "${CURL[@]}" --http1.1 --resolve www.vgate.test:443:$S4 https://www.vgate.test/
capture curl_https_h2_tls13 10 "${CURL[@]}" --http2 --resolve h2.vgate.test:443:$S4 https://h2.vgate.test/
capture curl_https_h1_tls12 10 "${CURL[@]}" --http1.1 --resolve tls12.vgate.test:4433:$S4 https://tls12.vgate.test:4433/
capture curl_http_plain 10 "${CURL[@]}" --http1.1 --resolve www.vgate.test:80:$S4 "http://www.vgate.test/admin/index.html?x=1"
capture curl_https_ipv6 10 "${CURL[@]}" -6 --http1.1 --resolve "v6.vgate.test:443:[$S6]" https://v6.vgate.test/
capture openssl_s_client_tls13 10 openssl s_client -connect $S4:443 -servername openssl.vgate.test -alpn "h2,http/1.1"
capture openssl_s_client_tls12 10 openssl s_client -connect $S4:4433 -servername openssl12.vgate.test -alpn "http/1.1"
capture gnutls_cli_tls13 10 gnutls-cli --insecure --sni-hostname gnutls.vgate.test --alpn h2 --alpn http/1.1 -p 443 $S4
capture python_ssl_tls13 10 $PY -c '
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2", "http/1.1"])
with socket.create_connection(("10.250.0.1", 443), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="python.vgate.test") as s:
        print(s.version(), s.selected_alpn_protocol())
'
capture node_tls_tls13 10 "$NODE" -e '
const tls = require("tls");
const s = tls.connect({host: "10.250.0.1", port: 443, servername: "node.vgate.test",
                       ALPNProtocols: ["h2", "http/1.1"], rejectUnauthorized: false}, () => {
  console.log(s.getProtocol(), s.alpnProtocol); s.end(); });
s.on("error", e => { console.error(e.message); process.exit(1); });
s.on("close", () => process.exit(0));
'

CHROME_FLAGS=(--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --disable-default-apps --disable-extensions
  --disable-breakpad --no-default-browser-check --ignore-certificate-errors --dump-dom)
if [[ -n "$CHROMIUM" ]]; then
  d1=$(mktemp -d "$WORK/chr.XXXXXX")
  capture chromium_https 20 env HOME="$d1" "$CHROMIUM" "${CHROME_FLAGS[@]}" --user-data-dir="$d1" \
    --host-resolver-rules="MAP chromium.vgate.test $S4" --timeout=8000 https://chromium.vgate.test/
  d2=$(mktemp -d "$WORK/chr.XXXXXX")
  capture chromium_quic 12 env HOME="$d2" "$CHROMIUM" "${CHROME_FLAGS[@]}" --user-data-dir="$d2" \
    --host-resolver-rules="MAP quic.vgate.test $S4" --enable-quic --origin-to-force-quic-on=quic.vgate.test:443 \
    --timeout=5000 https://quic.vgate.test/
fi

# stop servers before crafting (nothing else uses the namespaces)
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done

# ---------------------------------------------------------------- crafted + manifest
log "crafting edge-case pcaps"
$PY "$HERE/craft_captures.py" "$OUT"

log "writing captures.json"
CHROMIUM_VERSION=""
[[ -n "$CHROMIUM" ]] && CHROMIUM_VERSION=$("$CHROMIUM" --version 2>/dev/null | tail -1 | awk '{print $1" "$2}')
export VG_CURL_VERSION="curl $(curl --version | head -1 | awk '{print $2}')"
export VG_OPENSSL_VERSION="openssl s_client $(openssl version | awk '{print $2}')"
export VG_GNUTLS_VERSION="gnutls-cli $(gnutls-cli --version 2>/dev/null | head -1 | awk '{print $NF}')"
export VG_PYTHON_VERSION="python $($PY -c 'import sys,ssl;print("%d.%d.%d"%sys.version_info[:3], "ssl", ssl.OPENSSL_VERSION.split()[1])')"
export VG_NODE_VERSION="node $("$NODE" --version)"
export VG_CHROMIUM_VERSION="$CHROMIUM_VERSION"   # empty: keep the value from the previous manifest
$PY "$HERE/make_manifest.py" "$OUT" "$HERE/captures.json"

du -sh "$OUT" >&2
log "done"
