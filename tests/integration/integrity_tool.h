// The attacker's and the victims' side of the enforcement integrity tests: a python3 script (Debian's, with
// scapy for what the kernel cannot craft) run inside the test's namespaces. Each mode prints one JSON line
// and exits 0 when it ran; what it saw is for the test to judge.
#pragma once

namespace vgate::testing {

inline constexpr const char* kIntegrityTool = R"PY(
import json, os, socket, ssl, struct, sys, threading, time

def family(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET

def out(**values):
    print(json.dumps(values)); sys.stdout.flush()

def udp_big(host, port, sport, size):
    # One datagram larger than the MTU (the kernel fragments it); did the echo come back whole?
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    s = socket.socket(family(host), socket.SOCK_DGRAM); s.settimeout(1); s.bind(('', sport))
    echoed = False
    for attempt in range(3):
        s.sendto(data, (host, port))
        try:
            d, _ = s.recvfrom(65536); echoed = d == data
            if echoed: break
        except (socket.timeout, ConnectionRefusedError):
            pass
    out(echoed=echoed)

def syn_ext(host, port, sport, kind):
    # An IPv6 SYN behind extension headers, crafted; did a SYN-ACK come back?
    # (A sniffer, not sr1: scapy does not pair an answer without the request's extension headers.)
    # The kernel resolves the neighbour (scapy's own solicitation goes astray in a namespace).
    import subprocess
    from scapy.all import Ether, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, TCP, AsyncSniffer, sendp, conf
    conf.verb = 0
    subprocess.run(['ping', '-6', '-c', '1', '-W', '1', host], stdout=subprocess.DEVNULL)
    neigh = subprocess.run(['ip', '-6', 'neigh', 'show', host], capture_output=True, text=True).stdout.split()
    mac = neigh[neigh.index('lladdr') + 1] if 'lladdr' in neigh else 'ff:ff:ff:ff:ff:ff'
    ext = IPv6ExtHdrDestOpt() if kind == 'dstopts' else IPv6ExtHdrRouting(type=0, segleft=1, addresses=[host])
    synack = lambda p: p.haslayer(TCP) and p[TCP].sport == port and p[TCP].dport == sport and \
        (int(p[TCP].flags) & 0x12) == 0x12
    sniffer = AsyncSniffer(iface='eth0', lfilter=synack, count=1, timeout=3)
    sniffer.start(); time.sleep(0.3)
    sendp(Ether(dst=mac) / IPv6(dst=host) / ext / TCP(sport=sport, dport=port, flags='S', seq=1000), iface='eth0')
    sniffer.join()
    out(synack=bool(sniffer.results))

def raw_send(host, proto, count):
    s = socket.socket(family(host), socket.SOCK_RAW, proto)
    body = struct.pack('!HH', 0, 0x0800) + b'x' * 32 if proto == 47 else struct.pack('!HHII', 5000, 6000, 1, 0) + b'y' * 32
    for i in range(count):
        s.sendto(body, (host, 0)); time.sleep(0.05)
    out(sent=count)

def raw_listen(proto, seconds, path):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto); s.settimeout(0.2)
    open(path + '.ready', 'w').close()
    got = 0; end = time.time() + seconds
    while time.time() < end:
        try:
            s.recv(2048); got += 1
        except socket.timeout:
            pass
    with open(path, 'w') as f: json.dump({'received': got}, f)

def tls_client(host, port, sport, sni, linger_reset=False, timeout=3):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
    c = socket.socket(family(host)); c.settimeout(timeout)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sport: c.bind(('', sport))
    try:
        c.connect((host, port))
        t = context.wrap_socket(c, server_hostname=sni)
        t.sendall(b'GET / HTTP/1.0\r\n\r\n'); reply = t.recv(64)
        ok = reply.startswith(b'HTTP/1.0 200')
        if linger_reset:
            t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        t.close()
        return ok, None
    except Exception as e:
        c.close()
        return False, type(e).__name__

def tls_reuse(host, port, sport, first, second):
    # An allowed handshake ended by RST, then a new connection from the same client port naming another host.
    ok1, e1 = tls_client(host, port, sport, first, linger_reset=True)
    time.sleep(0.3)
    ok2, e2 = tls_client(host, port, sport, second)
    out(first=ok1, second=ok2, errors=[e1, e2])

def tls_fastopen(host, port, sport, sni, timeout):
    # The ClientHello in the SYN (MSG_FASTOPEN), the rest of the handshake through a memory BIO.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    engine = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    c = socket.socket(family(host)); c.settimeout(timeout)
    if sport: c.bind(('', sport))
    try:
        try: engine.do_handshake()
        except ssl.SSLWantReadError: pass
        c.sendto(outgoing.read(), socket.MSG_FASTOPEN, (host, port))
        while True:
            try:
                engine.do_handshake(); break
            except ssl.SSLWantReadError:
                data = c.recv(65536)
                if not data: return False, 'eof'
                incoming.write(data)
                pending = outgoing.read()
                if pending: c.sendall(pending)
        engine.write(b'GET / HTTP/1.0\r\n\r\n'); c.sendall(outgoing.read())
        reply = b''
        while not reply:
            try:
                reply = engine.read(64)
            except ssl.SSLWantReadError:
                data = c.recv(65536)
                if not data: break
                incoming.write(data)
        c.close()
        return reply.startswith(b'HTTP/1.0 200'), None
    except Exception as e:
        c.close()
        return False, type(e).__name__

def tls_once(host, port, sport, sni, fastopen, timeout):
    start = time.time()
    if fastopen == 'tfo':
        ok, error = tls_fastopen(host, port, sport, sni, float(timeout))
    else:
        ok, error = tls_client(host, port, sport, sni, timeout=float(timeout))
    out(ok=ok, error=error, seconds=time.time() - start)

def tls_idle(host, port, count, seconds):
    # `count` connections that each send a TLS record header and nothing more, held open.
    held = []
    for i in range(count):
        c = socket.socket(family(host)); c.settimeout(3)
        try:
            c.connect((host, port)); c.sendall(b'\x16\x03\x01\x02\x00'); held.append(c)
        except OSError:
            c.close()
    out(held=len(held)); time.sleep(float(seconds))

def tls_slow(host, port, sport, sni, pause):
    # A ClientHello sent in two halves with a pause between them (a slow sender); does the handshake finish?
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    engine = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    try: engine.do_handshake()
    except ssl.SSLWantReadError: pass
    hello = outgoing.read()
    c = socket.socket(family(host)); c.settimeout(3); c.bind(('', sport)); c.connect((host, port))
    c.sendall(hello[:len(hello) // 2]); time.sleep(float(pause))
    ok = False
    try:
        c.sendall(hello[len(hello) // 2:])
        data = c.recv(4096); ok = len(data) > 0 and data[0] == 0x16
    except OSError as e:
        pass
    out(serverHello=ok)

def tcp_connect(host, port, timeout):
    start = time.time(); c = socket.socket(family(host)); c.settimeout(float(timeout))
    try:
        c.connect((host, port)); result = 'connected'
    except ConnectionRefusedError: result = 'refused'
    except ConnectionResetError: result = 'reset'
    except socket.timeout: result = 'timeout'
    except OSError as e: result = type(e).__name__
    out(result=result, seconds=time.time() - start)

def udp_ask(host, port, timeout):
    start = time.time(); c = socket.socket(family(host), socket.SOCK_DGRAM); c.settimeout(float(timeout))
    c.connect((host, port))
    try:
        c.send(b'ping'); c.recv(64); result = 'answered'
    except ConnectionRefusedError: result = 'refused'
    except socket.timeout: result = 'timeout'
    out(result=result, seconds=time.time() - start)

def serve_tls_one(port, cert, key, path):
    # One connection at a time, as a small server does: each ends by EOF, reset or a 10 s timeout, logged.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); context.load_cert_chain(cert, key)
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('::', port)); s.listen(16)
    while True:
        c, _ = s.accept(); start = time.time(); c.settimeout(10)
        try:
            t = context.wrap_socket(c, server_side=True); t.recv(4096)
            t.sendall(b'HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n'); t.close(); how = 'served'
        except ConnectionResetError: how = 'reset'
        except socket.timeout: how = 'timeout'
        except Exception as e: how = type(e).__name__
        c.close()
        with open(path, 'a') as f: f.write(json.dumps({'end': how, 'seconds': time.time() - start}) + '\n')

mode = sys.argv[1]; a = sys.argv[2:]
if mode == 'udp-big': udp_big(a[0], int(a[1]), int(a[2]), int(a[3]))
elif mode == 'syn-ext': syn_ext(a[0], int(a[1]), int(a[2]), a[3])
elif mode == 'raw-send': raw_send(a[0], int(a[1]), int(a[2]))
elif mode == 'raw-listen': raw_listen(int(a[0]), float(a[1]), a[2])
elif mode == 'tls-reuse': tls_reuse(a[0], int(a[1]), int(a[2]), a[3], a[4])
elif mode == 'tls-once': tls_once(a[0], int(a[1]), int(a[2]), a[3], a[4], a[5])
elif mode == 'tls-idle': tls_idle(a[0], int(a[1]), int(a[2]), a[3])
elif mode == 'tls-slow': tls_slow(a[0], int(a[1]), int(a[2]), a[3], a[4])
elif mode == 'tcp-connect': tcp_connect(a[0], int(a[1]), a[2])
elif mode == 'udp-ask': udp_ask(a[0], int(a[1]), a[2])
elif mode == 'serve-tls-one': serve_tls_one(int(a[0]), a[1], a[2], a[3])
)PY";

}  // namespace vgate::testing
