// A throwaway "node" for live daemon tests: its own network namespace with a bridge (the "host"), container
// namespaces wired to the bridge by veths, and a real vgated started inside the node with vgatectl to drive
// it. Everything (processes, namespaces, mounts, the temporary directory) goes on destruction, also when a
// test fails.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace vgate::testing {

inline int sh(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct ShellResult {
  int exitCode = -1;
  std::string out;  // stdout and stderr together
};

// Runs `command` through the shell and returns its exit code with its output.
inline ShellResult shOut(const std::string& command) {
  ShellResult result;
  std::FILE* pipe = popen(("(" + command + ") 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.out.append(buffer, n);
  int status = pclose(pipe);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

inline std::string fileText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A shell command run in the background in its own process group; killed (the whole group) when it goes out
// of scope unless waited for.
class Background {
 public:
  Background() = default;
  explicit Background(const std::string& command, const std::string& outputPath = "/dev/null") {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      int fd = open(outputPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    if (pid_ > 0) setpgid(pid_, pid_);
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  Background(Background&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }
  Background& operator=(Background&& other) noexcept {
    if (this != &other) {
      kill();
      pid_ = other.pid_;
      other.pid_ = -1;
    }
    return *this;
  }
  ~Background() { kill(); }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Exit code (-1 when killed by a signal or the wait timed out; then the group is killed).
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (pid_ <= 0) return -1;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        kill();
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // True (and reaped) when the process has exited.
  bool exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
  }

  void signal(int number) {
    if (pid_ > 0) ::kill(pid_, number);
  }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        ::kill(-pid_, SIGKILL);  // stragglers of the group
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// The traffic helper the tests run inside namespaces (python3 from the distribution, standard library only).
inline constexpr const char* kTrafficTool = R"PY(
import hashlib, json, os, socket, ssl, struct, sys, threading, time

def payload(n, seed):
    block = hashlib.sha256(seed.encode()).digest() * 2048
    out = bytearray()
    while len(out) < n:
        out += block
        block = hashlib.sha256(block[:32]).digest() * 2048
    return bytes(out[:n])

def family(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET

def serve_tcp(port):
    # Each connection: read to EOF, answer with the byte count and sha256 of what came.
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('::', port)); s.listen(64)
    def handle(c):
        h = hashlib.sha256(); n = 0
        while True:
            d = c.recv(1 << 16)
            if not d: break
            h.update(d); n += len(d)
        c.sendall(('%d %s\n' % (n, h.hexdigest())).encode()); c.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()

def send_tcp(host, port, sport, n, seed, timeout, first=0):
    # first > 0: a first write of that many bytes, alone, like a client that speaks with a short request.
    data = payload(n, seed)
    c = socket.socket(family(host))
    c.settimeout(timeout)
    if sport: c.bind(('', sport))
    c.connect((host, port))
    if first:
        c.sendall(data[:first]); time.sleep(0.1)
    c.sendall(data[first:]); c.shutdown(socket.SHUT_WR)
    reply = b''
    while not reply.endswith(b'\n'):
        d = c.recv(256)
        if not d: break
        reply += d
    want = '%d %s' % (n, hashlib.sha256(data).hexdigest())
    print(reply.decode().strip(), 'want', want)
    sys.exit(0 if reply.decode().strip() == want else 1)

def serve_udp(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(('::', port))
    while True:
        d, a = s.recvfrom(65536)
        s.sendto(d, a)

def send_udp(host, port, sport, count):
    c = socket.socket(family(host), socket.SOCK_DGRAM)
    c.settimeout(1)
    c.bind(('', sport))
    echoed = 0
    for i in range(count):
        msg = ('datagram %d' % i).encode()
        c.sendto(msg, (host, port))
        try:
            d, _ = c.recvfrom(65536)
            echoed += d == msg
        except socket.timeout:
            pass
    print('echoed', echoed, 'of', count)
    sys.exit(0 if echoed == count else 1)

def serve_echo(port):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('::', port)); s.listen(8)
    def handle(c):
        f = c.makefile('rwb', buffering=0)
        for line in f:
            f.write(line)
        c.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()

def echo_client(host, port, seconds, interval, report):
    # A line every `interval` s, each echoed back; writes progress (lines, largest gap, error) to `report`.
    c = socket.socket(family(host)); c.settimeout(5)
    c.connect((host, port))
    f = c.makefile('rwb', buffering=0)
    start = time.time(); last = start; lines = 0; gap = 0.0; error = None
    try:
        while time.time() - start < seconds and not os.path.exists(report + '.stop'):
            msg = ('line %d\n' % lines).encode()
            f.write(msg)
            if f.readline() != msg:
                error = 'bad echo'; break
            now = time.time(); gap = max(gap, now - last); last = now; lines += 1
            with open(report, 'w') as r:
                json.dump({'lines': lines, 'maxGap': gap, 'error': error, 'done': False}, r)
            time.sleep(interval)
    except Exception as e:
        error = repr(e)
    with open(report, 'w') as r:
        json.dump({'lines': lines, 'maxGap': gap, 'error': error, 'done': True}, r)
    sys.exit(0 if error is None else 1)

def serve_tls(port, cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('::', port)); s.listen(16)
    def handle(c):
        try:
            c.settimeout(5)
            t = context.wrap_socket(c, server_side=True)
            t.recv(4096)
            t.sendall(b'HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n')
            t.close()
        except Exception:
            c.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()

def hold_tcp(host, port, sport, seconds):
    c = socket.socket(family(host)); c.settimeout(5)
    c.bind(('', sport)); c.connect((host, port))
    time.sleep(seconds); c.close()

def icmp_checksum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b[:len(b) // 2 * 2])) + (b[-1] << 8 if len(b) % 2 else 0)
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff

def icmp_error(to, quoted_src, quoted_dst, sport, dport):
    # "Fragmentation needed" (next-hop MTU 1280) about a TCP segment quoted_src:sport -> quoted_dst:dport.
    quote = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 1500, 1, 0x4000, 64, 6, 0,
                        socket.inet_aton(quoted_src), socket.inet_aton(quoted_dst))
    quote += struct.pack('!HHI', sport, dport, 1)
    msg = struct.pack('!BBHHH', 3, 4, 0, 0, 1280) + quote
    msg = msg[:2] + struct.pack('!H', icmp_checksum(msg)) + msg[4:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.sendto(msg, (to, 0))

def icmp_listen(seconds, out):
    # The quoted source ports of the "fragmentation needed" errors received, as a JSON list.
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    end = time.time() + seconds; ports = []
    open(out + '.ready', 'w').close()
    while time.time() < end:
        s.settimeout(max(end - time.time(), 0.01))
        try: data = s.recv(2048)
        except socket.timeout: break
        ihl = (data[0] & 0xf) * 4
        if len(data) < ihl + 8 + 24 or data[ihl] != 3 or data[ihl + 1] != 4: continue
        quoted = data[ihl + 8:]
        ports.append(struct.unpack('!H', quoted[(quoted[0] & 0xf) * 4:][:2])[0])
    with open(out, 'w') as f: json.dump(ports, f)

mode = sys.argv[1]; a = sys.argv[2:]
if mode == 'serve-tcp': serve_tcp(int(a[0]))
elif mode == 'send-tcp': send_tcp(a[0], int(a[1]), int(a[2]), int(a[3]), a[4], float(a[5]), int(a[6]) if len(a) > 6 else 0)
elif mode == 'serve-udp': serve_udp(int(a[0]))
elif mode == 'send-udp': send_udp(a[0], int(a[1]), int(a[2]), int(a[3]))
elif mode == 'serve-echo': serve_echo(int(a[0]))
elif mode == 'echo-client': echo_client(a[0], int(a[1]), float(a[2]), float(a[3]), a[4])
elif mode == 'serve-tls': serve_tls(int(a[0]), a[1], a[2])
elif mode == 'hold-tcp': hold_tcp(a[0], int(a[1]), int(a[2]), float(a[3]))
elif mode == 'icmp-error': icmp_error(a[0], a[1], a[2], int(a[3]), int(a[4]))
elif mode == 'icmp-listen': icmp_listen(float(a[0]), a[1])
)PY";

// The node: a network namespace holding a bridge with 10.77.0.254/24 and fd77::fe/64 (the "host" side),
// container namespaces numbered 1.. with eth0 at 10.77.0.<n>/24 and fd77::<n>/64, and vgated running inside.
class LiveNode {
 public:
  static constexpr const char* kBridge = "vgbr0";
  static constexpr const char* kHostV4 = "10.77.0.254";
  static constexpr const char* kHostV6 = "fd77::fe";

  LiveNode() {
    prefix_ = "vgl" + std::to_string(getpid());
    char pattern[] = "/tmp/vgate-live-XXXXXX";
    if (mkdtemp(pattern) != nullptr) dir_ = pattern;
  }
  LiveNode(const LiveNode&) = delete;
  LiveNode& operator=(const LiveNode&) = delete;
  ~LiveNode() { destroy(); }

  // Why the machine cannot run these tests, or empty.
  static std::string missingPrerequisite() {
    if (geteuid() != 0) return "needs root to create network namespaces";
    for (const char* tool : {"ip", "nsenter", "iperf3", "curl", "openssl", "ethtool", "/usr/bin/python3"}) {
      if (sh(std::string("command -v ") + tool + " >/dev/null 2>&1") != 0)
        return std::string("needs ") + tool;
    }
    if (!std::filesystem::exists(std::string(VGATE_BINARY_DIR) + "/control/vgated"))
      return "vgated not built";
    return {};
  }

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path stateDir() const { return dir_ / "state"; }
  std::filesystem::path flowLogPath() const { return dir_ / "flows.json"; }
  std::filesystem::path socketPath() const { return dir_ / "state" / "vgated.sock"; }
  std::string node() const { return prefix_ + "n"; }
  std::string container(int n) const { return prefix_ + "c" + std::to_string(n); }
  std::string containerPath(int n) const { return "/run/netns/" + container(n); }
  static std::string v4(int n) { return "10.77.0." + std::to_string(n); }
  static std::string v6(int n) { return "fd77::" + std::to_string(n); }
  static std::string hostEnd(int n) { return "vh" + std::to_string(n); }
  std::string toolPath() const { return (dir_ / "traffic.py").string(); }

  // In the node's netns (the "host").
  std::string inNode(const std::string& command) const { return "ip netns exec " + node() + " " + command; }
  // In container n's netns.
  std::string in(int n, const std::string& command) const {
    return "ip netns exec " + container(n) + " " + command;
  }
  // The traffic tool, run in container n (0: the node).
  std::string tool(int n, const std::string& arguments) const {
    std::string command = "/usr/bin/python3 " + toolPath() + " " + arguments;
    return n == 0 ? inNode(command) : in(n, command);
  }

  ::testing::AssertionResult create() {
    if (dir_.empty()) return ::testing::AssertionFailure() << "mkdtemp failed";
    std::ofstream(toolPath()) << kTrafficTool;
    created_ = true;
    std::string script =
        "set -e; ip netns add " + node() + "; ip -n " + node() + " link set lo up; ip -n " + node() +
        " link add " + kBridge + " type bridge; ip -n " + node() + " link set " + kBridge +
        " type bridge nf_call_iptables 0 nf_call_ip6tables 0 2>/dev/null || true; " + "ip -n " + node() +
        " addr add " + kHostV4 + "/24 dev " + kBridge + "; ip -n " + node() + " addr add " + kHostV6 +
        "/64 dev " + kBridge + " nodad; ip -n " + node() + " link set " + kBridge + " up";
    auto result = shOut(script);
    if (result.exitCode != 0) return ::testing::AssertionFailure() << script << ": " << result.out;
    return ::testing::AssertionSuccess();
  }

  // Container n: a netns whose eth0 is a veth to the bridge (host end vh<n>), with the given MTU.
  ::testing::AssertionResult addContainer(int n, int mtu = 1500) {
    containers_.push_back(n);
    std::string c = container(n);
    std::string m = std::to_string(mtu);
    std::string script = "set -e; ip netns add " + c + "; ip -n " + node() + " link add " + hostEnd(n) +
                         " mtu " + m + " type veth peer name eth0 mtu " + m + " netns " + c + "; ip -n " +
                         node() + " link set " + hostEnd(n) + " master " + kBridge + " up; ip -n " + c +
                         " addr add " + v4(n) + "/24 dev eth0; ip -n " + c + " addr add " + v6(n) +
                         "/64 dev eth0 nodad; ip -n " + c + " link set eth0 up; ip -n " + c +
                         " link set lo up";
    if (mtu != 1500) script += "; ip -n " + node() + " link set " + kBridge + " mtu " + m;
    auto result = shOut(script);
    if (result.exitCode != 0) return ::testing::AssertionFailure() << script << ": " << result.out;
    return ::testing::AssertionSuccess();
  }

  // Container n routed from the node, as Calico wires it: no bridge; the host end vr<n> has Calico's MAC
  // ee:ee:ee:ee:ee:ee and proxy ARP without delay, the node routes routedV4(n)/32 and routedV6(n)/128
  // through it, and the container's default routes go via 169.254.1.1 (answered by proxy ARP) and the host
  // end's link-local address. The node gets a default route so that proxy ARP has a route to answer for.
  static std::string routedV4(int n) { return "10.78.0." + std::to_string(n); }
  static std::string routedV6(int n) { return "fd78::" + std::to_string(n); }
  static std::string routedHostEnd(int n) { return "vr" + std::to_string(n); }
  ::testing::AssertionResult addRoutedContainer(int n) {
    containers_.push_back(n);
    std::string c = container(n);
    std::string h = routedHostEnd(n);
    std::string node = "ip -n " + this->node() + " ";
    std::string in = "ip -n " + c + " ";
    std::string script =
        "set -e; ip netns add " + c + "; " + in + "link set lo up; " + node + "link add " + h +
        " address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns " + c + "; " + inNode("sysctl -qw") +
        " net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf." + h + ".proxy_arp=1" +
        " net.ipv4.neigh." + h + ".proxy_delay=0 net.ipv6.conf." + h + ".proxy_ndp=1 net.ipv6.conf." + h +
        ".accept_dad=0; " + node + "link set " + h + " up; " + node + "route replace default dev " + kBridge +
        "; " + node + "route add " + routedV4(n) + "/32 dev " + h + " scope link; " + node + "-6 route add " +
        routedV6(n) + "/128 dev " + h + "; " + in + "addr add " + routedV4(n) + "/32 dev eth0; " + in +
        "addr add " + routedV6(n) + "/128 dev eth0 nodad; " + in + "link set eth0 up; " + in +
        "route add 169.254.1.1 dev eth0 scope link; " + in + "route add default via 169.254.1.1 dev eth0; " +
        in + "-6 route add default via fe80::ecee:eeff:feee:eeee dev eth0";
    auto result = shOut(script);
    if (result.exitCode != 0) return ::testing::AssertionFailure() << script << ": " << result.out;
    return ::testing::AssertionSuccess();
  }

  // Starts vgated in the node (nsenter, so that its mounts stay in this mount namespace for the next start)
  // and waits until its control socket answers.
  // `environment`: VAR=value words for vgated's environment.
  ::testing::AssertionResult startVgated(const std::string& arguments = "",
                                         const std::string& environment = "") {
    std::filesystem::create_directories(stateDir());
    std::filesystem::create_directories(dir_ / "bpffs");
    std::string command = "exec env " + environment + " nsenter --net=/run/netns/" + node() + " " +
                          VGATE_BINARY_DIR + "/control/vgated run --state-dir " + stateDir().string() +
                          " --bpffs " + (dir_ / "bpffs").string() + " --socket " + socketPath().string() +
                          " --flow-log " + flowLogPath().string() + " " + arguments;
    ++starts_;
    std::string log = (dir_ / ("vgated-" + std::to_string(starts_) + ".log")).string();
    vgated_ = Background(command, log);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (vgated_.exited()) {
        return ::testing::AssertionFailure() << "vgated exited at start: " << fileText(log);
      }
      if (std::filesystem::exists(socketPath()) && ctl("status").exitCode == 0)
        return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return ::testing::AssertionFailure() << "vgated did not answer in 60 s: " << fileText(log);
  }

  pid_t vgatedPid() const { return vgated_.pid(); }
  std::string vgatedLog() const { return fileText(dir_ / ("vgated-" + std::to_string(starts_) + ".log")); }

  // SIGTERM and wait: the exit code (0 for a clean stop).
  int stopVgated() {
    if (!vgated_.running()) return -1;
    vgated_.signal(SIGTERM);
    return vgated_.wait(std::chrono::seconds(30));
  }
  void killVgated() {
    if (!vgated_.running()) return;
    vgated_.signal(SIGKILL);
    vgated_.wait(std::chrono::seconds(10));
  }

  ShellResult ctl(const std::string& arguments) const {
    return shOut(std::string(VGATE_BINARY_DIR) + "/control/vgatectl --socket " + socketPath().string() + " " +
                 arguments);
  }
  nlohmann::json status() const {
    auto result = ctl("status --json");
    auto json = nlohmann::json::parse(result.out, nullptr, false);
    return json.is_discarded() ? nlohmann::json() : json;
  }
  ::testing::AssertionResult attach(int n) {
    auto result = ctl("attach --netns " + containerPath(n) + " --name c" + std::to_string(n));
    if (result.exitCode != 0) return ::testing::AssertionFailure() << "attach c" << n << ": " << result.out;
    return ::testing::AssertionSuccess();
  }

  std::vector<nlohmann::json> flowLog() const {
    std::vector<nlohmann::json> lines;
    std::istringstream in(fileText(flowLogPath()));
    for (std::string line; std::getline(in, line);) {
      auto json = nlohmann::json::parse(line, nullptr, false);
      if (!json.is_discarded()) lines.push_back(std::move(json));
    }
    return lines;
  }

  // Links in vgate's own netns (brief form).
  std::string vgateLinks() const {
    return shOut("nsenter --net=" + stateDir().string() + "/netns ip -br link").out;
  }

  void destroy() {
    if (dir_.empty()) return;
    if (vgated_.running()) {
      vgated_.signal(SIGTERM);
      if (vgated_.wait(std::chrono::seconds(15)) != 0) vgated_.kill();
    }
    vgated_ = Background();
    if (created_) {
      for (int n : containers_) sh("ip netns del " + container(n) + " 2>/dev/null");
      sh("ip netns del " + node() + " 2>/dev/null");
    }
    // The persistent netns and the bpffs are mounts in this mount namespace.
    std::string netns = (stateDir() / "netns").string();
    if (umount2(netns.c_str(), 0) != 0) umount2(netns.c_str(), MNT_DETACH);
    std::string bpffs = (dir_ / "bpffs").string();
    if (umount2(bpffs.c_str(), 0) != 0) umount2(bpffs.c_str(), MNT_DETACH);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    dir_.clear();
  }

 private:
  std::string prefix_;
  std::filesystem::path dir_;
  bool created_ = false;
  std::vector<int> containers_;
  Background vgated_;
  int starts_ = 0;
};

}  // namespace vgate::testing
