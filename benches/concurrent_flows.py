#!/usr/bin/env python3
"""Writes a classic pcap of N concurrent TCP connections: each a SYN, a SYN-ACK and an ACK, all
within 60 s of capture time, none closed, so every flow is still in the table when the capture
ends. Used by benches/concurrent_flows.sh to measure what a flow costs the table.

Usage: concurrent_flows.py N > flows.pcap   (deterministic; 70 bytes of capture per packet)"""
import struct
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
out = sys.stdout.buffer
out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
T0 = 1_700_000_000
SYN, ACK = 0x02, 0x10
SERVER = bytes([192, 0, 2, 80])


def packet(t_us, src, dst, sport, dport, seq, ack, flags):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, src, dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + tcp
    out.write(struct.pack("<IIII", T0 + t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
    out.write(frame)


step = max(1, 60_000_000 // max(N, 1))
for f in range(N):
    client = bytes([10, 64 + (f >> 16) % 64, (f >> 8) & 255, f & 255])
    cp = 1024 + (f >> 22)
    t = f * step
    packet(t, client, SERVER, cp, 443, 1000, 0, SYN)
    packet(t + 1, SERVER, client, 443, cp, 5000, 1001, SYN | ACK)
    packet(t + 2, client, SERVER, cp, 443, 1001, 5001, ACK)
