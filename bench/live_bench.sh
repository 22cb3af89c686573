#!/usr/bin/env bash
# The live path side by side, in one run on the same namespaces: the plain Linux bridge, vgate's fast path,
# vgate's slow path (--offload off: every packet through the AF_XDP workers) and vgate's io-forward mode
# (--io-forward: the trunks and AF_XDP without judging, the slow path's upper bound; dpdk-testpmd is not in
# Debian 12's DPDK packages). Each round measures every mode once, alternating, so that the machine's drift
# hits all of them alike; the medians and their ratios are printed at the end.
#   iperf3 TCP c1 -> c2 (Gbit/s) and 64-byte UDP frames (-l 18: 14 + 20 + 8 + 18 + 4 FCS) in packets/s received.
# Usage: bash bench/live_bench.sh [build dir (default build/release)] [rounds (default 3)] [seconds (default 4)]
set -euo pipefail

build=${1:-build/release}
rounds=${2:-3}
seconds=${3:-4}
vgated=$(realpath "$build/control/vgated")
vgatectl=$(realpath "$build/control/vgatectl")
tag=vgb$$
node=$tag-node
work=$(mktemp -d /tmp/vgate-bench.XXXXXX)
pid=""

cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  for ns in "$tag-c1" "$tag-c2" "$node"; do ip netns del "$ns" 2>/dev/null || true; done
  umount -l "$work/state/netns" 2>/dev/null || true
  umount -l "$work/bpf" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$node"
ip -n "$node" link add br0 type bridge
ip -n "$node" link set br0 type bridge nf_call_iptables 0 nf_call_ip6tables 0 2>/dev/null || true
ip -n "$node" link set br0 up
ip -n "$node" link set lo up
for i in 1 2; do
  ns=$tag-c$i
  ip netns add "$ns"
  ip -n "$node" link add "vh$i" type veth peer name eth0 netns "$ns"
  ip -n "$node" link set "vh$i" master br0 up
  ip -n "$ns" addr add "10.88.0.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done
ip netns exec "$tag-c2" iperf3 -s -D -p 5201 --logfile "$work/iperf-server.log"
sleep 0.5

start_vgated() {
  mkdir -p "$work/state"
  nsenter --net="/run/netns/$node" "$vgated" run --state-dir "$work/state" --bpffs "$work/bpf" \
    --socket "$work/state/vgated.sock" --flow-log /dev/null "$@" >"$work/vgated.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do [ -S "$work/state/vgated.sock" ] && break; sleep 0.1; done
  for i in 1 2; do "$vgatectl" --socket "$work/state/vgated.sock" attach --netns "/run/netns/$tag-c$i" --name "c$i" >/dev/null; done
}

stop_vgated() {
  "$vgatectl" --socket "$work/state/vgated.sock" detach --all >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
}

tcp_gbits() {
  ip netns exec "$tag-c1" timeout $((seconds + 10)) iperf3 -c 10.88.0.2 -p 5201 -t "$seconds" -J |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
}

udp_pps() {
  ip netns exec "$tag-c1" timeout $((seconds + 10)) iperf3 -c 10.88.0.2 -p 5201 -u -b 0 -l 18 -t "$seconds" -J |
    python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]["sum"]; print("%.0f" % ((e["packets"] - e["lost_packets"]) / e["seconds"]))'
}

# Idle cost: vgated with both ports attached and no traffic, CPU time over 10 s (the workers back off).
start_vgated
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
idle_before=$(ticks)
sleep 10
idle_after=$(ticks)
stop_vgated
idle_cpu=$(python3 -c "print('%.2f' % (($idle_after - $idle_before) / $(getconf CLK_TCK) / 10 * 100))")
echo "idle: vgated used ${idle_cpu}% of a core over 10 s with 2 ports attached and no traffic (goal < 2%)" >&2

modes=(bridge fast slow io-forward)
declare -A tcp udp
for round in $(seq "$rounds"); do
  for mode in "${modes[@]}"; do
    case $mode in
      bridge) ;;
      fast) start_vgated ;;
      slow) start_vgated --offload off ;;
      io-forward) start_vgated --offload off --io-forward ;;
    esac
    t=$(tcp_gbits)
    u=$(udp_pps)
    [ "$mode" != bridge ] && stop_vgated
    tcp[$mode]="${tcp[$mode]:-} $t"
    udp[$mode]="${udp[$mode]:-} $u"
    echo "round $round $mode: TCP $t Gbit/s, 64 B UDP $u pps" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo
echo "mode        TCP Gbit/s   64 B UDP pps   (medians of $rounds rounds, $seconds s each)"
declare -A mt mu
for mode in "${modes[@]}"; do
  mt[$mode]=$(echo "${tcp[$mode]}" | median)
  mu[$mode]=$(echo "${udp[$mode]}" | median)
  printf "%-11s %10s   %12s\n" "$mode" "${mt[$mode]}" "${mu[$mode]}"
done
ratio() { python3 -c "print('%.2f' % ($1 / $2 if $2 else 0))"; }
echo
echo "fast path TCP / bridge TCP:        $(ratio "${mt[fast]}" "${mt[bridge]}")x (goal >= 1.0)"
echo "slow path 64 B pps / io-forward:   $(ratio "${mu[slow]}" "${mu[io-forward]}")x (goal >= 0.9)"
echo "slow path 64 B pps / bridge:       $(ratio "${mu[slow]}" "${mu[bridge]}")x"
echo "idle CPU:                          ${idle_cpu}% of a core (goal < 2%)"
