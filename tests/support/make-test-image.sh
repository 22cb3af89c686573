#!/usr/bin/env bash
# Builds vgate-test:latest, the image of vgate's Docker tests and demo, without a registry: a rootfs of
# busybox-static plus the host's curl, openssl and iperf3 (with their shared libraries and loader) and a
# self-signed TLS certificate, put into Docker with `docker import`. Starts dockerd first when none answers.
#
#   make-test-image.sh            ensure dockerd, then the image (rebuilt only when its inputs changed)
#   make-test-image.sh --dockerd  ensure dockerd only
#
# The image carries a label vgate.inputs: the hash of this script and of the packages it copies from, so a
# second run with the same inputs does nothing. A dockerd started here keeps running (log:
# $VGATE_DOCKERD_LOG, default /var/log/vgate-dockerd.log).
set -euo pipefail

image=${VGATE_TEST_IMAGE:-vgate-test:latest}
dockerd_log=${VGATE_DOCKERD_LOG:-/var/log/vgate-dockerd.log}
packages=(busybox-static curl openssl iperf3)

say() { echo "make-test-image: $*" >&2; }

apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
}

ensure_dockerd() {
  if docker info >/dev/null 2>&1; then return 0; fi
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  command -v docker >/dev/null 2>&1 || apt_install docker.io
  if docker info >/dev/null 2>&1; then return 0; fi  # the package's service may have started it
  # A pid file left by a dockerd that died stops the next one from starting.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  if ! pgrep -x dockerd >/dev/null; then
    say "starting dockerd (log: $dockerd_log)"
    mkdir -p "$(dirname "$dockerd_log")"
    setsid nohup dockerd >>"$dockerd_log" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 300); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  say "dockerd does not answer after 30 s; the end of $dockerd_log:"
  tail -20 "$dockerd_log" >&2
  return 1
}

ensure_dockerd
[ "${1:-}" = "--dockerd" ] && exit 0

apt_install "${packages[@]}"
inputs=$( {
  sha256sum <"${BASH_SOURCE[0]}"
  dpkg-query -W -f='${Package} ${Version}\n' "${packages[@]}"
} | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "vgate.inputs"}}' "$image" 2>/dev/null)" = "$inputs" ]; then
  say "$image is up to date ($inputs)"
  exit 0
fi

started=$(date +%s.%N)
root=$(mktemp -d /tmp/vgate-test-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
# Merged /usr as on the host, so that a library found under /lib or /usr/lib lands in one place.
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc/ssl,tmp,root,proc,sys,dev,srv/www,etc/vgate-test}
for top in bin sbin lib lib64; do ln -s "usr/$top" "$root/$top"; done
chmod 1777 "$root/tmp"

cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list-full); do
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done

# A file at the same path in the rootfs, symlinks followed.
copy_file() { install -D -m "$(stat -L -c %a "$1")" "$1" "$root$1"; }
# A host binary with every shared library it loads, the loader included.
copy_binary() {
  local binary=$1 library
  copy_file "$binary"
  for library in $(ldd "$binary" | grep -o '/[^ ]*'); do
    [ -e "$root$library" ] || copy_file "$library"
  done
}
for binary in /usr/bin/curl /usr/bin/openssl /usr/bin/iperf3; do
  rm -f "$root$binary"  # a busybox applet of the same name gives way
  copy_binary "$binary"
done
# OpenSSL's config (s_server and s_client read it) and its providers, which it loads at run time.
copy_file /usr/lib/ssl/openssl.cnf
ln -s /usr/lib/ssl/openssl.cnf "$root/etc/ssl/openssl.cnf"
for module in /usr/lib/x86_64-linux-gnu/ossl-modules/*.so; do [ -e "$module" ] && copy_file "$module"; done

# One self-signed certificate, no CA: clients use -k (curl) or do not verify (s_client).
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=vgate-test -keyout "$root/etc/vgate-test/key.pem" \
  -out "$root/etc/vgate-test/cert.pem" 2>/dev/null
echo "hello from vgate-test" >"$root/srv/www/index.html"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

docker image rm -f "$image" >/dev/null 2>&1 || true
tar -C "$root" -c . | docker import --change "LABEL vgate.inputs=$inputs" --change 'CMD ["/bin/sh"]' \
  --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' - "$image" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$image")
say "built $image ($inputs): $((size / 1000000)) MB in $(echo "$(date +%s.%N) - $started" | bc | cut -c1-4) s"
