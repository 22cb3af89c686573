#!/usr/bin/env bash
# Installs what vgate needs to build, test and demo on Debian 12, from Debian's own packages. Idempotent: does
# nothing when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-format
  libdpdk-dev libpcap-dev libssl-dev libhyperscan-dev libyaml-cpp-dev libyaml-dev nlohmann-json3-dev
  libbpf-dev libxdp-dev libmnl-dev libidn2-dev libgtest-dev libgmock-dev libbenchmark-dev
  bpftool iproute2 ethtool tcpdump python3-scapy iputils-ping iperf3 netcat-openbsd curl
  prometheus-cpp-dev prometheus
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
