#!/usr/bin/env bash
# vgate's demo: puts vgated in front of three live Docker containers (web, api, bank) on one Docker network,
# under policies/demo.yaml, and shows what gets through, what is blocked and why, vgatectl status and the flow
# log; then undoes everything. A last section replays the committed client captures through the same
# dataplane. Run as root on Debian 12: installs its own dependencies (Docker included) and builds Release.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
build=${VGATE_RELEASE_BUILD:-build/release}
work=${VGATE_DEMO_DIR:-/tmp/vgate-demo}
network=vgate-demo
containers=(vgate-demo-web vgate-demo-api vgate-demo-bank)
policy=policies/demo.yaml

if [ -t 1 ]; then bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' plain=$'\e[0m'; else bold='' green='' red='' plain=''; fi
heading() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
vgatectl() { "$build/control/vgatectl" --socket "$work/vgated.sock" "$@"; }
in_container() { docker exec "vgate-demo-$1" sh -c "$2"; }
# try "what" CONTAINER COMMAND: runs it and says whether it got through.
try() {
  local what=$1 container=$2 command=$3 output
  if output=$(in_container "$container" "$command" 2>&1); then
    printf '  %sPASSED%s   %-58s %s\n' "$green" "$plain" "$what" "$(echo "$output" | head -1 | cut -c1-40)"
  else
    printf '  %sBLOCKED%s  %-58s (%s)\n' "$red" "$plain" "$what" "$(echo "$output" | tail -1 | cut -c1-40)"
  fi
}

vgated_pid=""
cleanup() {
  [ -S "$work/vgated.sock" ] && vgatectl detach --all >/dev/null 2>&1 || true
  # A vgated that an interrupted earlier run left behind.
  if [ -z "$vgated_pid" ] && [ -f "$work/vgated.pid" ] &&
    grep -q vgated "/proc/$(cat "$work/vgated.pid")/cmdline" 2>/dev/null; then
    vgated_pid=$(cat "$work/vgated.pid")
    kill -TERM "$vgated_pid"
    while kill -0 "$vgated_pid" 2>/dev/null; do sleep 0.1; done
  fi
  if [ -n "$vgated_pid" ] && kill -0 "$vgated_pid" 2>/dev/null; then
    kill -TERM "$vgated_pid"
    wait "$vgated_pid" 2>/dev/null || true
  fi
  vgated_pid=""
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    docker rm -f "${containers[@]}" >/dev/null 2>&1 || true
    docker network rm "$network" >/dev/null 2>&1 || true
  fi
  # vgate's netns and bpffs: the kernel drops their veths and programs with the last mount.
  umount -l "$work/state/netns" 2>/dev/null || true
  umount -l "$work/bpffs" 2>/dev/null || true
}

heading "Setting up: dependencies, Release build, Docker and the test image"
bash scripts/install-deps.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DVGATE_TESTS=OFF -DVGATE_BENCH=OFF >/dev/null
ninja -C "$build" vgated vgatectl | tail -1
bash tests/support/make-test-image.sh  # installs docker.io and busybox-static, starts dockerd if needed
cleanup  # what an interrupted earlier run left
rm -rf "$work" && mkdir -p "$work"
trap cleanup EXIT

heading "Three containers on Docker network $network"
subnet=""
for third in 250 251 252 253; do
  if docker network create --subnet "10.213.$third.0/24" "$network" >/dev/null 2>&1; then subnet=10.213.$third; break; fi
done
[ -n "$subnet" ] || docker network create "$network" >/dev/null
for name in "${containers[@]}"; do
  docker run -d --network "$network" --name "$name" --hostname "${name#vgate-demo-}" vgate-test sleep 3600 >/dev/null
done
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "vgate-demo-$1"; }
web=$(ip_of web) api=$(ip_of api) bank=$(ip_of bank)
tls_server='sleep 3600 | openssl s_server -quiet -www -accept 443 -cert /etc/vgate-test/cert.pem -key /etc/vgate-test/key.pem'
docker exec -d vgate-demo-web sh -c 'httpd -p 80 -h /srv/www'
docker exec -d vgate-demo-web sh -c "$tls_server"
docker exec -d vgate-demo-bank sh -c "$tls_server"
docker exec -d vgate-demo-bank sh -c 'while true; do sleep 3600 | nc -l -p 23 >/dev/null; done'
echo "  web  $web   HTTP on 80, HTTPS on 443"
echo "  api  $api   the client"
echo "  bank $bank   HTTPS on 443, a telnet-like service on 23"
for _ in $(seq 1 50); do
  in_container bank 'netstat -ltn | grep -q ":23 "' && in_container web 'netstat -ltn | grep -q ":443 "' && break
  sleep 0.1
done

heading "Starting vgated with $policy and attaching the containers"
sed -n '/^spec:/,$p' "$policy" | sed 's/^/  /'
"$build/control/vgated" run --policy "$policy" --state-dir "$work/state" --bpffs "$work/bpffs" \
  --socket "$work/vgated.sock" --flow-log "$work/flows.jsonl" >"$work/vgated.log" 2>&1 &
vgated_pid=$!
echo "$vgated_pid" >"$work/vgated.pid"
for _ in $(seq 1 100); do
  vgatectl status >/dev/null 2>&1 && break
  kill -0 "$vgated_pid" 2>/dev/null || { cat "$work/vgated.log"; exit 1; }
  sleep 0.1
done
for name in "${containers[@]}"; do
  pid=$(docker inspect -f '{{.State.Pid}}' "$name")
  echo "  $(vgatectl attach --pid "$pid" --name "$name")"
done

heading "Allowed flows"
try "api -> web   ICMP ping" api "ping -c 2 -W 2 $web | tail -1"
try "api -> web   HTTP GET / (port 80)" api "curl -s --max-time 3 http://$web/"
try "api -> web   HTTPS, SNI web.shop.example" api \
  "curl -sk --max-time 3 -o /dev/null -w 'HTTP %{http_code} over TLS' --resolve web.shop.example:443:$web https://web.shop.example/"
try "api -> bank  HTTPS, SNI portal.example (same server, other name)" api \
  "curl -sk --max-time 3 -o /dev/null -w 'HTTP %{http_code} over TLS' --resolve portal.example:443:$bank https://portal.example/"

heading "Blocked flows"
try "api -> bank  TCP 23 (rule deny-telnet)" api "echo hello | nc -w 2 $bank 23 || { echo 'timed out'; exit 1; }"
try "api -> bank  HTTPS, SNI www.bank.example (rule deny-bank-tls)" api \
  "curl -sk --max-time 3 --resolve www.bank.example:443:$bank https://www.bank.example/ || { echo 'curl exit' \$?; exit 1; }"
try "web -> bank  HTTPS, SNI login.bank.example (rule deny-bank-tls)" web \
  "curl -sk --max-time 3 --resolve login.bank.example:443:$bank https://login.bank.example/ || { echo 'curl exit' \$?; exit 1; }"

heading "vgatectl status"
vgatectl status | sed 's/^/  /'
echo "  (Prometheus metrics come with the control-plane issue; these counters are what vgated exposes today.)"

heading "Detaching and stopping vgated: open flows end with reason 'shutdown' and are logged"
echo "  $(vgatectl detach --all)"
kill -TERM "$vgated_pid"
wait "$vgated_pid" || true
vgated_pid=""

heading "Flow log ($work/flows.jsonl): one line per flow"
python3 - "$work/flows.jsonl" "$web" "$api" "$bank" <<'EOF'
import json, sys
path, web, api, bank = sys.argv[1:]
names = {web: "web", api: "api", bank: "bank"}
records = [json.loads(line) for line in open(path)]
print("  A flow between two attached containers crosses vgate at both of their ports and is logged at each")
print("  (AT). A TLS flow denied at the client's port never shows the server's port its ClientHello: that port")
print("  logs the TCP handshake it saw with the verdict of the flow's ports and addresses alone, marked '@end'")
print("  (verdict.decided_at_end: the flow ended before the facts its L7 rules wait for).\n")
print("  %-5s %-24s %-5s %-5s    %-10s %-5s %-11s %s" % ("AT", "VERDICT", "PROTO", "FROM", "TO", "APP", "PKTS TO/FRO", "L7"))
for r in records:
    v = r["verdict"]
    verdict = v["action"].upper() + (" by " + v["rule"] if v["rule"] else " (default)")
    if v.get("decided_at_end"):
        verdict += " @end"
    sni = (r.get("tls") or {}).get("sni")
    http = (r.get("http") or {}).get("hostname")
    where = "%s:%s" % (names.get(r["dest_ip"], r["dest_ip"]), r.get("dest_port", r.get("icmp_type", "-")))
    f = r["flow"]
    at = ((r.get("container") or {}).get("name") or "-").replace("vgate-demo-", "")
    print("  %-5s %-24s %-5s %-5s -> %-10s %-5s %5d/%-5d %s" % (
        at, verdict, r["proto"], names.get(r["src_ip"], r["src_ip"]), where, r.get("app_proto", "-"),
        f["pkts_toserver"], f["pkts_toclient"],
        ("sni=" + sni) if sni else ("host=" + http) if http else ""))
denied = [r for r in records if r["verdict"]["action"] == "deny" and (r.get("tls") or {}).get("sni")]
if denied:
    print("\n  The whole record of a denied TLS flow:")
    print("\n".join("  " + line for line in json.dumps(denied[0], indent=2).splitlines()))
EOF

heading "Cleaning up"
cleanup
trap - EXIT
echo "  containers, network, vgate's netns and bpffs removed"
echo "  artifacts kept: $work/flows.jsonl (flow log), $work/vgated.log (daemon log)"

heading "Also: the committed client captures replayed through the same dataplane (policy deny-bank-sni)"
ninja -C "$build" vgated >/dev/null
for capture in tests/data/pcap/*.pcap; do
  "$build/control/vgated" replay --pcap "$capture" --policy policies/deny-bank-sni.yaml --flow-log - 2>/dev/null |
    python3 -c '
import json, sys
name = sys.argv[1]
for line in sys.stdin:
    r = json.loads(line)
    tls = r.get("tls") or r.get("quic") or {}
    v = r["verdict"]
    print("  %-30s %-22s %-4s %-6s %s" % (name, v["action"].upper() + (" by " + v["rule"] if v["rule"] else ""),
          r["proto"], r.get("app_proto", "-"), ("sni=" + tls["sni"]) if tls.get("sni") else ""))
' "$(basename "$capture" .pcap)"
done
echo "  (each capture's details: vgated replay --pcap FILE --policy FILE; repo $repo)"
