#!/usr/bin/env python3
"""seed.py - cut the fuzz seeds of every target from the captures in pcaps/.

    python3 tests/fuzz/seed.py            # from anywhere; standard library only

Writes tests/fuzz/corpus/<target>/seed-*, in the input layouts that tests/fuzz/targets.rs
documents (one function per target):

  decode        one frame per file, behind a byte that names its link type
  tls_hello     one direction of a TCP flow that starts with a TLS handshake record, behind a
                byte that sets how HandshakeReader is fed (piece size, sliding)
  dns           DNS messages over UDP, DNS-over-TCP streams (each direction)
  quic          one UDP flow's datagrams, each behind a 2-byte header (direction bit + length)
  proxy_marker  the first bytes of each TCP direction and each non-DNS UDP payload, plus a few
                proxy preambles written out here (no capture has SOCKS)
  pcap_reader   whole small captures and the first bytes of larger ones (so a file ends inside
                a record), and pcaps/bad
  engine        the first frames of every capture: a link-type byte, then each frame as
                [seconds since the previous frame: u8][length: u16 BE][bytes]

Only files named seed-* are replaced: inputs afl found (named afl-*) and regression inputs
(named crash-* or hang-*) are kept. Output is deterministic (files named by content hash).
"""
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PCAPS = os.path.join(ROOT, "pcaps")
CORPUS = os.path.join(HERE, "corpus")

# targets.rs LINKS, by libpcap DLT number.
LINK_INDEX = {1: 0, 113: 1, 276: 2, 12: 3, 14: 3, 101: 3, 228: 4, 229: 5, 0: 6, 108: 7, 9: 8, 50: 9}

TARGETS = ["decode", "tls_hello", "dns", "quic", "proxy_marker", "pcap_reader", "engine"]

STREAM_BYTES = 4096    # most bytes kept of one TCP direction
ENGINE_BYTES = 6144    # most bytes of frames in one engine seed
READER_BYTES = 2048    # captures up to this size are seeds whole; larger ones are cut
MAX_DATAGRAMS = 8      # datagrams in one quic seed


# ------------------------------------------------------------------ capture files
def read_capture(path):
    """[(dlt, seconds, frame)] of a pcap or pcapng file (the first section of a pcapng)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return read_pcapng(data)
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return []
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    dlt = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + incl]
        if len(frame) < incl:
            break
        out.append((dlt, sec + frac / (1e9 if nanos else 1e6), frame))
        pos += 16 + incl
    return out


def read_pcapng(data):
    out, pos, e, links = [], 0, "<", []
    while pos + 12 <= len(data):
        btype = struct.unpack(e + "I", data[pos:pos + 4])[0]
        if btype == 0x0A0D0D0A:
            e = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        blen = struct.unpack(e + "I", data[pos + 4:pos + 8])[0]
        if blen < 12 or pos + blen > len(data):
            break
        body = data[pos + 8:pos + blen - 4]
        if btype == 1:
            links.append(struct.unpack(e + "H", body[:2])[0])
        elif btype == 6:
            ifid, hi, lo, cap, _ = struct.unpack(e + "IIIII", body[:20])
            if ifid < len(links):
                out.append((links[ifid], ((hi << 32) | lo) / 1e6, body[20:20 + cap]))
        elif btype == 3 and links:
            out.append((links[0], 0.0, body[4:]))
        pos += blen
    return out


# ------------------------------------------------------------ link, IP, transport
def link_payload(dlt, frame):
    """(ethertype, bytes after the link header), or None for what is not walked here."""
    if dlt == 1:
        et, pos = struct.unpack(">H", frame[12:14])[0] if len(frame) >= 14 else 0, 14
        while et in (0x8100, 0x88A8, 0x9100) and len(frame) >= pos + 4:
            et, pos = struct.unpack(">H", frame[pos + 2:pos + 4])[0], pos + 4
        return et, frame[pos:]
    if dlt == 113 and len(frame) >= 16:
        return struct.unpack(">H", frame[14:16])[0], frame[16:]
    if dlt == 276 and len(frame) >= 20:
        return struct.unpack(">H", frame[0:2])[0], frame[20:]
    if dlt in (12, 14, 101, 228, 229) and frame:
        return (0x0800 if frame[0] >> 4 == 4 else 0x86DD), frame
    if dlt in (0, 108) and len(frame) >= 4:
        return (0x0800 if frame[4] >> 4 == 4 else 0x86DD) if len(frame) > 4 else 0, frame[4:]
    if dlt == 9 and len(frame) >= 4:
        rest = frame[2:] if frame[:2] == b"\xff\x03" else frame
        proto = struct.unpack(">H", rest[:2])[0]
        return {0x21: 0x0800, 0x57: 0x86DD}.get(proto, 0), rest[2:]
    return None


def transport(dlt, frame):
    """(proto, src, sport, dst, dport, seq, flags, payload) of a plain IPv4/IPv6 TCP or UDP
    packet, or None (tunnels, fragments, other protocols)."""
    lp = link_payload(dlt, frame)
    if lp is None:
        return None
    et, ip = lp
    if et == 0x0800 and len(ip) >= 20:
        ihl = (ip[0] & 15) * 4
        if struct.unpack(">H", ip[6:8])[0] & 0x3FFF:
            return None  # a fragment
        total = struct.unpack(">H", ip[2:4])[0] or len(ip)
        proto, src, dst, l4 = ip[9], ip[12:16], ip[16:20], ip[ihl:total]
    elif et == 0x86DD and len(ip) >= 40:
        proto, src, dst = ip[6], ip[8:24], ip[24:40]
        l4 = ip[40:40 + struct.unpack(">H", ip[4:6])[0]]
    else:
        return None
    if proto == 6 and len(l4) >= 20:
        sport, dport, seq = struct.unpack(">HHI", l4[:8])
        off = (l4[12] >> 4) * 4
        return 6, src, sport, dst, dport, seq, l4[13], l4[off:]
    if proto == 17 and len(l4) >= 8:
        sport, dport = struct.unpack(">HH", l4[:4])
        return 17, src, sport, dst, dport, 0, 0, l4[8:]
    return None


def flows(packets):
    """{(proto, client, server): [(to_server, seq, flags, payload)]}; the client is the sender of
    the first packet (or of the SYN)."""
    out, order = {}, []
    for dlt, _, frame in packets:
        t = transport(dlt, frame)
        if t is None:
            continue
        proto, src, sport, dst, dport, seq, flags, payload = t
        a, b = (src, sport), (dst, dport)
        key = (proto, a, b) if (proto, a, b) in out else (proto, b, a) if (proto, b, a) in out else None
        if key is None:
            syn_ack = proto == 6 and flags & 0x12 == 0x12
            key = (proto, b, a) if syn_ack else (proto, a, b)
            out[key] = []
            order.append(key)
        out[key].append((key[1] == a, seq, flags, payload))
    return [(k, out[k]) for k in order]


def tcp_stream(pkts, to_server):
    """The bytes of one TCP direction in sequence order from its first byte, retransmissions and
    overlaps dropped, up to the first gap (or STREAM_BYTES)."""
    segs = {}
    isn = None
    for d, seq, flags, payload in pkts:
        if d != to_server:
            continue
        if flags & 0x02:
            isn = (seq + 1) & 0xFFFFFFFF
        if payload:
            segs.setdefault(seq, payload)
    if not segs:
        return b""
    if isn is None:
        isn = min(segs, key=lambda s: (s - next(iter(segs))) & 0xFFFFFFFF)
    out, pos = bytearray(), isn
    while len(out) < STREAM_BYTES:
        best = None
        for s, p in segs.items():
            off = (pos - s) & 0xFFFFFFFF
            if off < len(p) and (best is None or len(p) - off > len(best)):
                best = p[off:]
        if best is None:
            break
        out += best
        pos = (pos + len(best)) & 0xFFFFFFFF
    return bytes(out[:STREAM_BYTES])


# ------------------------------------------------------------------ the seeds
def put(seeds, target, data):
    if data:
        seeds[target].add(bytes(data))


def engine_seed(packets):
    dlt = packets[0][0]
    if dlt not in LINK_INDEX:
        return None
    out, prev = bytearray([LINK_INDEX[dlt]]), packets[0][1]
    for pdlt, ts, frame in packets:
        if pdlt != dlt or len(out) + 3 + len(frame) > ENGINE_BYTES:
            break
        dt = max(0, min(255, int(ts - prev)))
        prev = ts
        out += struct.pack(">BH", dt, len(frame)) + frame
    return bytes(out)


def datagram_seed(pkts):
    out = bytearray()
    for to_server, _, _, payload in pkts[:MAX_DATAGRAMS]:
        out += struct.pack(">H", (0 if to_server else 0x8000) | min(len(payload), 0x7FFF)) + payload
    return bytes(out)


def seeds_of(path, seeds):
    with open(path, "rb") as f:
        raw = f.read()
    seeds["pcap_reader"].add(raw if len(raw) <= READER_BYTES else raw[:READER_BYTES])
    packets = read_capture(path)
    if not packets:
        return
    seed = engine_seed(packets)
    if seed:
        put(seeds, "engine", seed)
    # decode: the first frame, and the first two that carry a payload (the hellos).
    chosen = [packets[0]] + [p for p in packets if (transport(p[0], p[2]) or (0,) * 8)[7]][:2]
    for dlt, _, frame in chosen:
        if dlt in LINK_INDEX:
            put(seeds, "decode", bytes([LINK_INDEX[dlt]]) + frame)
    for (proto, client, server), pkts in flows(packets):
        ports = (client[1], server[1])
        if proto == 6:
            for to_server in (True, False):
                stream = tcp_stream(pkts, to_server)
                if not stream:
                    continue
                if 53 in ports:
                    put(seeds, "dns", stream)
                if stream[0] == 0x16:
                    # 1 KiB pieces with sliding; 16-byte pieces without.
                    put(seeds, "tls_hello", b"\x8a" + stream)
                    put(seeds, "tls_hello", b"\x04" + stream[:1024])
                put(seeds, "proxy_marker", stream[:1024])
        else:
            payloads = [p for _, _, _, p in pkts if p]
            if not payloads:
                continue
            if 53 in ports or 5353 in ports:
                for p in payloads[:4]:
                    put(seeds, "dns", p)
            elif payloads[0][0] & 0x80:
                put(seeds, "quic", datagram_seed(pkts))
            else:
                for p in payloads[:2]:
                    put(seeds, "proxy_marker", p)


# Preambles no capture carries (RFC 1928 and the SOCKS4/4a protocol), written out here.
PROXY = [
    b"CONNECT drive.example.com:443 HTTP/1.1\r\nHost: drive.example.com:443\r\n\r\n\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03",
    b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03",
    b"\x04\x01\x01\xbb\x5d\xb8\xd8\x22user\x00\x16\x03\x01",
    b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00mail.example.org\x00\x16\x03\x01",
    b"\x00\x5a\x01\xbb\x5d\xb8\xd8\x22\x16\x03\x03",
    b"\x05\x02\x00\x02\x05\x01\x00\x03\x0bexample.com\x01\xbb\x16\x03\x01",
    b"\x05\x01\x02\x01\x04user\x04pass\x05\x01\x00\x04" + bytes(15) + b"\x01\x01\xbb\x16",
    b"\x05\x00\x05\x00\x00\x01\x0a\x00\x00\x01\x01\xbb\x16\x03\x03",
    b"GET / HTTP/1.1\r\nHost: www.example.net\r\nUser-Agent: x\r\n\r\n",
    b"ED\x00\x01\x00\x00\x08routing!WA\x06\x02",
]


def main():
    seeds = {t: set() for t in TARGETS}
    paths = []
    for d in (PCAPS, os.path.join(PCAPS, "evasion"), os.path.join(PCAPS, "bad")):
        paths += sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith((".pcap", ".pcapng")))
    for p in paths:
        seeds_of(p, seeds)
    for p in PROXY:
        put(seeds, "proxy_marker", p)
    for target in TARGETS:
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for n in os.listdir(d):
            if n.startswith("seed-"):
                os.remove(os.path.join(d, n))
        for s in seeds[target]:
            with open(os.path.join(d, "seed-" + hashlib.sha1(s).hexdigest()[:16]), "wb") as f:
                f.write(s)
        print(f"{target}: {len(seeds[target])} seeds, {sum(map(len, seeds[target]))} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
