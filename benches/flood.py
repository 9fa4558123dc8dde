#!/usr/bin/env python3
"""Writes a classic pcap of N TCP flows that each park a nearly complete hello in both
directions: the client's and the server's first record announce 16 KiB and send ~15 KB, and
never complete. The worst case for memory per flow; used by benches/flood.sh.

Usage: flood.py N > flood.pcap   (deterministic; about 31 KB of capture per flow)"""
import struct
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 60000
out = sys.stdout.buffer
out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
T0 = 1_700_000_000


def packet(i, src, dst, sport, dport, seq, ack, flags, payload):
    ip_len = 20 + 20 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, 6, 0, src, dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + tcp + payload
    out.write(struct.pack("<IIII", T0 + i // 100000, i % 100000 * 10, len(frame), len(frame)))
    out.write(frame)


SYN, ACK, PSH = 0x02, 0x10, 0x08
record = bytes([22, 3, 1, 0x40, 0x00, 1, 0x00, 0x3F, 0xFB]) + b"A" * (15000 - 9)
n = 0
for f in range(N):
    c = bytes([10, 20 + (f >> 16), (f >> 8) & 255, f & 255])
    s = bytes([192, 0, 2, 80])
    cp, sp = 1024 + f % 60000, 443
    packet(n, c, s, cp, sp, 1000, 0, SYN, b""); n += 1
    packet(n, s, c, sp, cp, 5000, 1001, SYN | ACK, b""); n += 1
    for k in range(0, len(record), 1400):
        packet(n, c, s, cp, sp, 1001 + k, 5001, PSH | ACK, record[k:k + 1400]); n += 1
        packet(n, s, c, sp, cp, 5001 + k, 1001 + k, PSH | ACK, record[k:k + 1400]); n += 1
