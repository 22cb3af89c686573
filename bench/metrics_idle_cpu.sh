#!/usr/bin/env bash
# Idle CPU of vgated with the metrics exposer off, on and unscraped, and on with a scrape every second: each
# run starts a vgated (no container attached) in a throwaway netns and reads its utime+stime from
# /proc/<pid>/stat over SECONDS. As root. Usage: bash bench/metrics_idle_cpu.sh BUILD_DIR [SECONDS]
set -euo pipefail
build=${1:?build dir}
seconds=${2:-30}
vgated=$build/control/vgated
netns=vgmetrics$$
dir=$(mktemp -d /tmp/vgate-metrics-cpu-XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns del "$netns" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$netns"
ip -n "$netns" link set lo up
ticks=$(getconf CLK_TCK)

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {  # label, scrape (yes/no), vgated arguments...
  local label=$1 scrape=$2
  shift 2
  rm -rf "$dir/state" "$dir/bpffs"
  mkdir -p "$dir/state" "$dir/bpffs"
  ip netns exec "$netns" "$vgated" run --state-dir "$dir/state" --bpffs "$dir/bpffs" \
    --socket "$dir/state/vgated.sock" --flow-log "$dir/flows.json" "$@" >"$dir/vgated.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q running "$dir/vgated.log" && break; sleep 0.2; done
  sleep 3  # past start-up
  local before after
  before=$(cpu_of "$pid")
  if [ "$scrape" = yes ]; then
    for _ in $(seq "$seconds"); do
      ip netns exec "$netns" curl -s -o /dev/null http://127.0.0.1:9477/metrics
      sleep 1
    done
  else
    sleep "$seconds"
  fi
  after=$(cpu_of "$pid")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
  awk -v l="$label" -v t=$((after - before)) -v hz="$ticks" -v s="$seconds" \
    'BEGIN { printf "%-40s %6.2f%% of a core (%d ticks in %d s)\n", l, 100 * t / hz / s, t, s }'
}

[ "${ONLY_SCRAPED:-}" ] || run "exposer off (baseline)" no --metrics-address off
[ "${ONLY_SCRAPED:-}" ] || run "exposer on, not scraped" no
run "exposer on, scraped every second" yes
