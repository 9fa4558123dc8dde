#!/usr/bin/env python3
"""Writes a classic pcap of N concurrent TCP connections, all within 60 s of capture time, none
closed, so every flow is still in the table when the capture ends. Used by
benches/concurrent_flows.sh to measure what a flow costs.

  handshake   SYN, SYN-ACK, ACK: the flow is still being identified (its probe state is held)
  named       then a ClientHello with a server name and a ServerHello, each acknowledged: the
              flow is named and only its table entry is left (the common case of a long flow)

Usage: concurrent_flows.py N [handshake|named] > flows.pcap   (deterministic)"""
import struct
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
MODE = sys.argv[2] if len(sys.argv) > 2 else "handshake"
out = sys.stdout.buffer
out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
T0 = 1_700_000_000
SYN, ACK = 0x02, 0x10
SERVER = bytes([192, 0, 2, 80])


def packet(t_us, src, dst, sport, dport, seq, ack, flags, payload=b""):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + tcp + payload
    out.write(struct.pack("<IIII", T0 + t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
    out.write(frame)


def record(handshake_type, body):
    msg = bytes([handshake_type]) + len(body).to_bytes(3, "big") + body
    return bytes([22, 3, 1]) + len(msg).to_bytes(2, "big") + msg


name = b"bench.example.org"
sni = struct.pack("!HH", 0, len(name) + 5) + struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
exts = sni + struct.pack("!HHH", 10, 4, 2) + b"\x00\x1d"
HELLO = record(1, b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x04\x13\x01\xc0\x2f" + b"\x01\x00"
               + struct.pack("!H", len(exts)) + exts)
SERVER_HELLO = record(2, b"\x03\x03" + b"\x22" * 32 + b"\x00" + b"\xc0\x2f" + b"\x00" + b"\x00\x00")
PSH = 0x08
step = max(1, 60_000_000 // max(N, 1))
for f in range(N):
    client = bytes([10, 64 + (f >> 16) % 64, (f >> 8) & 255, f & 255])
    cp = 1024 + (f >> 22)
    t = f * step
    packet(t, client, SERVER, cp, 443, 1000, 0, SYN)
    packet(t + 1, SERVER, client, 443, cp, 5000, 1001, SYN | ACK)
    packet(t + 2, client, SERVER, cp, 443, 1001, 5001, ACK)
    if MODE == "named":
        packet(t + 3, client, SERVER, cp, 443, 1001, 5001, PSH | ACK, HELLO)
        packet(t + 4, SERVER, client, 443, cp, 5001, 1001 + len(HELLO), PSH | ACK, SERVER_HELLO)
        packet(t + 5, client, SERVER, cp, 443, 1001 + len(HELLO), 5001 + len(SERVER_HELLO), ACK)
