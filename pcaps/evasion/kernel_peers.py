#!/usr/bin/env python3
"""kernel_peers.py - the client and server programs capture-kernel.sh runs.

Here the Linux kernel does the cutting: these programs only choose socket options
(TCP_NODELAY with one-byte writes, TCP_MAXSEG, IP(V6)_MTU_DISCOVER = DONT) and
write whole messages; the IP fragments and TCP segments in the captures are the
kernel's. The messages are the real ones make.py extracts from the captures in
the parent folder (curl's ClientHello; aioquic's ClientHello and its server's
ServerHello, sealed in QUIC v1 Initials by make.py's functions).

    kernel_peers.py quic-server ADDR PORT
    kernel_peers.py quic-client SRC SPORT DST DPORT SIZE
    kernel_peers.py tcp-client SRC SPORT DST DPORT (1byte|mss88)
"""
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make  # noqa: E402 - beside this file

IP_MTU_DISCOVER, IP_PMTUDISC_DONT = 10, 0
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT = 23, 0


def udp_socket(addr, port):
    v6 = ":" in addr
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    # let the kernel fragment datagrams larger than the link MTU instead of refusing them
    if v6:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT)
    else:
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
    s.bind((addr, port))
    s.settimeout(10)
    return s


def cids(dgram):
    """(DCID, SCID) of a long-header packet."""
    p = 5
    dcid = dgram[p + 1:p + 1 + dgram[p]]
    p += 1 + dgram[p]
    return dcid, dgram[p + 1:p + 1 + dgram[p]]


def quic_server(addr, port):
    _hello, sh = make.quic_source("quic-aioquic.pcap")
    rng = random.Random(80)
    s = udp_socket(addr, int(port))
    first, peer = s.recvfrom(65535)
    dcid, scid = cids(first)
    mine = bytes(rng.getrandbits(8) for _ in range(8))
    ini = make.seal_initial(make.initial_keys(dcid, b"server in"), make.V1, scid, mine, 0,
                            make.ack_frame(0) + make.crypto_frame(0, sh))
    s.sendto(ini + make.opaque_long(rng, 2, make.V1, scid, mine, 1200 - len(ini)), peer)
    s.recvfrom(65535)  # the client's Initial ACK
    s.recvfrom(65535)  # its first short-header packet
    s.sendto(make.short_header(rng, scid, 80), peer)


def quic_client(src, sport, dst, dport, size):
    hello, _sh = make.quic_source("quic-aioquic.pcap")
    rng = random.Random(21)
    dcid, scid = bytes(rng.getrandbits(8) for _ in range(8)), bytes(rng.getrandbits(8) for _ in range(8))
    keys = make.initial_keys(dcid, b"client in")
    s = udp_socket(src, int(sport))
    s.sendto(make.seal_initial(keys, make.V1, dcid, scid, 0, make.crypto_frame(0, hello), int(size)), (dst, int(dport)))
    answer, _ = s.recvfrom(65535)
    _d, server_cid = cids(answer)
    s.sendto(make.seal_initial(keys, make.V1, server_cid, scid, 1, make.ack_frame(0), 1200), (dst, int(dport)))
    s.sendto(make.short_header(rng, server_cid, 60), (dst, int(dport)))
    s.recvfrom(65535)


def tcp_client(src, sport, dst, dport, mode):
    hello, _flight = make.tcp_source("curl-tls13.pcap", "web.whatsapp.com")
    s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, int(sport)))
    if mode == "1byte":
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    elif mode == "mss88":
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 88)  # Linux's minimum MSS
    else:
        raise SystemExit(f"unknown mode {mode}")
    s.settimeout(10)
    s.connect((dst, int(dport)))
    if mode == "1byte":
        for b in hello:
            s.send(bytes([b]))
            time.sleep(0.002)
    else:
        s.sendall(hello)
    # read the server's first flight (until it pauses), then close: FIN
    got = b""
    s.settimeout(1.0)
    try:
        while len(got) < 100_000:
            d = s.recv(65535)
            if not d:
                break
            got += d
    except socket.timeout:
        pass
    s.close()
    if not got.startswith(b"\x16\x03"):
        raise SystemExit("no ServerHello from the server")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"quic-server": quic_server, "quic-client": quic_client, "tcp-client": tcp_client}[cmd](*args)
