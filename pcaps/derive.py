#!/usr/bin/env python3
"""derive.py - build edge-case pcaps and expected.json from the real captures.

    pip install dpkt==1.9.8         # packet decoding + Internet checksum
    pip install cryptography        # QUIC Initial protection (quic-coalesced.pcap)
    apt-get install tshark          # optional: independent reader for JA3

Run after capture.sh, from anywhere:  python3 derive.py
Everything is deterministic: no randomness (all "random" values are fixed
constants), timestamps are taken from the source capture (synthetic packets
get the source timestamp plus fixed microsecond offsets), output is rewritten
byte-identical on every run for the same input captures.

Derived packets get freshly computed IPv4/TCP/UDP checksums (the real loopback
captures carry unfinished checksums because lo keeps checksum offload).
Outer tunnel addresses are documentation addresses (RFC 5737 / RFC 3849);
nothing here is ever sent anywhere.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import dpkt

HERE = os.path.dirname(os.path.abspath(__file__))
os.chdir(HERE)  # all paths below are relative to this folder

LT_NULL, LT_EN10MB, LT_PPP, LT_RAW, LT_SLL, LT_SLL2 = 0, 1, 9, 101, 113, 276
ETH_IP4, ETH_IP6 = 0x0800, 0x86DD


# --------------------------------------------------------------------- pcap I/O
def read_pcap(name):
    """Return (linktype, [(sec, usec, frame_bytes), ...]) of a classic pcap."""
    with open(name, "rb") as f:
        data = f.read()
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4, name + ": expected little-endian usec pcap"
    pkts, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack("<IIII", data[off:off + 16])
        pkts.append((sec, usec, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return linktype, pkts


def pcap_bytes(pkts, linktype, snaplen=262144):
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    for sec, usec, frame in pkts:
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    return b"".join(out)


def write_pcap(name, pkts, linktype=LT_EN10MB):
    with open(name, "wb") as f:
        f.write(pcap_bytes(pkts, linktype))


def ts_add(sec, usec, add_usec):
    t = sec * 1000000 + usec + add_usec
    return t // 1000000, t % 1000000


# --------------------------------------------------------------------- building
def cksum(b):
    return dpkt.in_cksum(b)


def ipv4(src, dst, proto, payload, ident=0, ttl=64):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000,
                      ttl, proto, 0, src, dst)
    return hdr[:10] + struct.pack("!H", cksum(hdr)) + hdr[12:] + payload


def ipv6(src, dst, nxt, payload, hlim=64):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nxt, hlim, src, dst) + payload


def l4_cksum(src, dst, proto, seg):
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(seg))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), proto)
    return cksum(pseudo + seg)


def tcp(src, dst, sport, dport, seq, ack, flags, win, opts, payload):
    opts = opts + b"\x01" * (-len(opts) % 4)  # pad with NOPs
    off = (20 + len(opts)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      off << 4, flags, win, 0, 0) + opts + payload
    c = l4_cksum(src, dst, 6, seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(src, dst, sport, dport, payload):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = l4_cksum(src, dst, 17, seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def eth(ethertype, payload, dst=b"\x02\x00\x00\x00\x00\x02", src=b"\x02\x00\x00\x00\x00\x01"):
    return dst + src + struct.pack("!H", ethertype) + payload


# --------------------------------------------------------------------- parsing
class Pkt:
    """One decoded IPv4/IPv6 TCP packet of a source capture."""

    def __init__(self, sec, usec, frame):
        self.sec, self.usec = sec, usec
        e = dpkt.ethernet.Ethernet(frame)
        ip = e.data
        self.v6 = isinstance(ip, dpkt.ip6.IP6)
        self.src, self.dst = ip.src, ip.dst
        t = ip.data
        self.sport, self.dport, self.seq, self.ack = t.sport, t.dport, t.seq, t.ack
        self.flags, self.win, self.opts = t.flags, t.win, bytes(t.opts)
        self.payload = bytes(t.data)
        self.ident = 0 if self.v6 else ip.id

    def copy(self, **kw):
        p = object.__new__(Pkt)
        p.__dict__.update(self.__dict__)
        p.__dict__.update(kw)
        return p

    def ip_bytes(self):
        """The IP packet, rebuilt with correct lengths and checksums."""
        seg = tcp(self.src, self.dst, self.sport, self.dport, self.seq, self.ack,
                  self.flags, self.win, self.opts, self.payload)
        if self.v6:
            return ipv6(self.src, self.dst, 6, seg)
        return ipv4(self.src, self.dst, 6, seg, self.ident)

    def ethertype(self):
        return ETH_IP6 if self.v6 else ETH_IP4

    def frame(self):
        return eth(self.ethertype(), self.ip_bytes(), b"\0" * 6, b"\0" * 6)

    def rec(self, frame=None, add_usec=0):
        s, u = ts_add(self.sec, self.usec, add_usec)
        return (s, u, self.frame() if frame is None else frame)


def flows_of(name):
    """Split a capture into TCP flows: {client_port: [Pkt, ...]} in order."""
    _, recs = read_pcap(name)
    flows, server_ports = {}, set()
    for sec, usec, fr in recs:
        p = Pkt(sec, usec, fr)
        if p.flags & dpkt.tcp.TH_SYN and not p.flags & dpkt.tcp.TH_ACK:
            server_ports.add(p.dport)
            flows[p.sport] = []
        cport = p.dport if p.sport in server_ports else p.sport
        flows.setdefault(cport, []).append(p)
    return flows


def is_client(p, flow):
    return p.sport == flow[0].sport


def hello_packets(flow):
    """Indexes of the client data packets that carry the first TLS record(s)
    making up the ClientHello, and the hello bytes (records included)."""
    idx, buf = [], b""
    for i, p in enumerate(flow):
        if is_client(p, flow) and p.payload:
            idx.append(i)
            buf += p.payload
            if len(buf) >= 5 and len(buf) >= 5 + struct.unpack("!H", buf[3:5])[0]:
                return idx, buf[:5 + struct.unpack("!H", buf[3:5])[0]]
    raise ValueError("no complete ClientHello")


def addr(ip, port):
    if len(ip) == 16:
        import ipaddress
        return "[%s]:%d" % (ipaddress.IPv6Address(ip), port)
    return "%d.%d.%d.%d:%d" % (tuple(ip) + (port,))


# ---------------------------------------------------------------- ClientHello
def parse_hello(rec):
    """Minimal strict ClientHello parser (for ground truth of built files)."""
    body = rec[5:]
    assert rec[0] == 0x16 and body[0] == 1
    hs = body[4:4 + int.from_bytes(body[1:4], "big")]
    legacy = hs[0:2]
    p = 2 + 32
    p += 1 + hs[p]                                   # session id
    p += 2 + struct.unpack("!H", hs[p:p + 2])[0]     # cipher suites
    p += 1 + hs[p]                                   # compression
    end = p + 2 + struct.unpack("!H", hs[p:p + 2])[0]
    p += 2
    out = {"sni": None, "alpn": [], "versions": [], "ech": False}
    while p < end:
        et, el = struct.unpack("!HH", hs[p:p + 4])
        ed = hs[p + 4:p + 4 + el]
        if et == 0:
            out["sni"] = ed[5:5 + struct.unpack("!H", ed[3:5])[0]].decode()
        elif et == 16:
            q = 2
            while q < len(ed):
                out["alpn"].append(ed[q + 1:q + 1 + ed[q]].decode())
                q += 1 + ed[q]
        elif et == 43:
            out["versions"] = [struct.unpack("!H", ed[1 + i:3 + i])[0] for i in range(0, ed[0], 2)]
        elif et == 0xFE0D:
            out["ech"] = True
        p += 4 + el
    vers = [v for v in out["versions"] if (v & 0x0F0F) != 0x0A0A] or [struct.unpack("!H", legacy)[0]]
    out["tls_max"] = {0x0304: "TLS1.3", 0x0303: "TLS1.2", 0x0302: "TLS1.1", 0x0301: "TLS1.0"}[max(vers)]
    return out


def tshark_hellos(name):
    """Independent reader: tshark's view of every ClientHello (ja3 included)."""
    if not shutil.which("tshark"):
        return None
    fields = ["tcp.srcport", "tls.handshake.extensions_server_name",
              "tls.handshake.extensions_alpn_str", "tls.handshake.ja3", "tls.handshake.ja3_full"]
    cmd = ["tshark", "-r", name, "-Y", "tls.handshake.type==1", "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=;"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        port, sni, alpn, ja3, ja3f = (line.split("\t") + [""] * 5)[:5]
        res[int(port)] = {"sni": sni or None, "alpn": alpn.replace(";", ",").split(",") if alpn else [],
                          "ja3": ja3 or None, "ja3_full": ja3f or None}
    return res


def tshark_version():
    if not shutil.which("tshark"):
        return None
    return subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.split("\n")[0]


# =================================================================== main
EXPECTED = {}
REAL = ["curl-tls13.pcap", "curl-tls12.pcap", "openssl-s_client.pcap", "openssl-nosni.pcap",
        "python-ssl.pcap", "chromium-pq.pcap", "curl-ipv6.pcap"]


def flow_entry(flow, hello_rec, **extra):
    h = parse_hello(hello_rec)
    c = flow[0]
    e = {"client": addr(c.src, c.sport), "server": addr(c.dst, c.dport), "transport": "tcp",
         "sni": h["sni"], "alpn": h["alpn"], "tls_version_offered": h["tls_max"],
         "ech": h["ech"], "vlan": None, "tunnel": None}
    e.update(extra)
    return e


def load_manifest():
    rows = {}
    with open("manifest.tsv") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            fn, tool, sni, alpn, tmax = line.rstrip("\n").split("\t")
            rows.setdefault(fn, []).append({"tool": tool, "sni": None if sni == "-" else sni,
                                            "alpn": alpn.split(","), "tls_max": "TLS" + tmax})
    return rows


manifest = load_manifest()
FLOWS = {}   # file -> {client_port: flow}
for name in REAL:
    flows = flows_of(name)
    FLOWS[name] = flows
    ts = tshark_hellos(name)
    wanted = manifest[name]
    entries = []
    for port, flow in flows.items():
        _, rec = hello_packets(flow)
        e = flow_entry(flow, rec, tool=wanted[0]["tool"])
        # cross-check our parse against what the script was told to send ...
        if not any(w["sni"] == e["sni"] and w["alpn"] == e["alpn"] and w["tls_max"] == e["tls_version_offered"]
                   for w in wanted):
            sys.exit("%s: flow %d does not match manifest: %r" % (name, port, e))
        # ... and against tshark, an independent reader
        if ts is not None:
            t = ts[port]
            if t["sni"] != e["sni"] or t["alpn"] != e["alpn"]:
                sys.exit("%s: tshark disagrees on flow %d: %r vs %r" % (name, port, t, e))
            e["ja3"], e["ja3_full"] = t["ja3"], t["ja3_full"]
        entries.append(e)
    if len({e["sni"] for e in entries}) != len({w["sni"] for w in wanted}):
        sys.exit("%s: expected SNIs %r" % (name, [w["sni"] for w in wanted]))
    EXPECTED[name] = {"source": "real capture", "linktype": LT_EN10MB, "flows": entries}


def first_flow(name, sni=None):
    for flow in FLOWS[name].values():
        _, rec = hello_packets(flow)
        if sni is None or parse_hello(rec)["sni"] == sni:
            return flow
    raise KeyError(sni)


def real_entry(name, flow):
    for e in EXPECTED[name]["flows"]:
        if e["client"] == addr(flow[0].src, flow[0].sport):
            return dict(e)
    raise KeyError


def derived(name, what, flows, **kw):
    d = {"source": what, "linktype": kw.pop("linktype", LT_EN10MB), "flows": flows}
    d.update(kw)
    EXPECTED[name] = d


CHROME = first_flow("chromium-pq.pcap")
CURL = first_flow("curl-tls13.pcap", "chatgpt.com")
CURL6 = first_flow("curl-ipv6.pcap")
chrome_e = real_entry("chromium-pq.pcap", CHROME)
curl_e = real_entry("curl-tls13.pcap", CURL)
curl6_e = real_entry("curl-ipv6.pcap", CURL6)

# ------------------------------------------------------------ segment games
hidx, hrec = hello_packets(CHROME)
assert len(hidx) == 2, "chromium hello should span two segments (MTU 1500)"
s1, s2 = CHROME[hidx[0]], CHROME[hidx[1]]

# ooo-segments: second hello segment delivered before the first
recs = [p.rec() for p in CHROME]
# keep the capture timestamps in place (monotonic), swap the segments' contents
recs[hidx[0]] = (s1.sec, s1.usec, s2.frame())
recs[hidx[1]] = (s2.sec, s2.usec, s1.frame())
write_pcap("ooo-segments.pcap", recs)
derived("ooo-segments.pcap", "chromium-pq.pcap first flow, hello segments swapped", [chrome_e])

# retransmit-overlap: seg1, seg1 again (exact retransmission), then a segment
# covering the second half of seg1 and the first half of seg2 (same bytes), then seg2
recs = []
for i, p in enumerate(CHROME):
    recs.append(p.rec())
    if i == hidx[0]:
        recs.append(p.rec(add_usec=1))                      # exact retransmission
        half1, half2 = len(s1.payload) // 2, len(s2.payload) // 2
        ov = s1.copy(seq=s1.seq + half1, payload=s1.payload[half1:] + s2.payload[:half2])
        recs.append(ov.rec(add_usec=2))                     # overlapping retransmission
write_pcap("retransmit-overlap.pcap", recs)
derived("retransmit-overlap.pcap", "chromium-pq.pcap first flow, hello retransmitted + overlap",
        [chrome_e], note="exact retransmission of segment 1, then a segment with seq inside segment 1 "
                         "overlapping into segment 2 (identical bytes); reassembly must yield the same hello")

# gap: second hello segment missing
recs = [p.rec() for i, p in enumerate(CHROME) if i != hidx[1]]
write_pcap("gap.pcap", recs)
g = dict(chrome_e, sni=None, alpn=[], tls_version_offered=None, ech=None)
g.pop("ja3", None), g.pop("ja3_full", None)
derived("gap.pcap", "chromium-pq.pcap first flow, second hello segment removed", [g],
        expect="hello incomplete: sensor gives up on this flow and counts it (gap), never hangs")

# small-segments: hello re-fragmented into 3 TLS records, then cut in 100-byte segments
hs = hrec[5:]
cuts = [0, len(hs) // 3, 2 * len(hs) // 3, len(hs)]
records = b"".join(hrec[:3] + struct.pack("!H", b - a) + hs[a:b] for a, b in zip(cuts, cuts[1:]))
recs = []
shift = len(records) - len(hrec)   # client seq numbers after the hello move by this
for i, p in enumerate(CHROME):
    if i == hidx[0]:
        for k in range(0, len(records), 100):
            recs.append(p.copy(payload=records[k:k + 100], seq=s1.seq + k).rec(add_usec=k // 100))
    elif i == hidx[1]:
        continue
    elif i > hidx[1] and is_client(p, CHROME):
        recs.append(p.copy(seq=p.seq + shift).rec())
    elif i > hidx[1]:
        recs.append(p.copy(ack=p.ack + shift if p.ack else 0).rec())
    else:
        recs.append(p.rec())
write_pcap("small-segments.pcap", recs)
derived("small-segments.pcap", "chromium-pq.pcap first flow, hello as 3 TLS records in 100-byte TCP segments",
        [chrome_e], tls_records=3, segment_size=100)

# hello-in-syn-tfo: hello carried in the SYN (TCP Fast Open, cookie option 34)
cidx, crec = hello_packets(CURL)
assert len(cidx) == 1
hlen = len(crec)
TFO_COOKIE = bytes.fromhex("5348414457544150")       # fixed 8-byte cookie "SHADWTAP"
recs = []
for i, p in enumerate(CURL):
    if i == 0:      # SYN + TFO option + hello
        recs.append(p.copy(opts=p.opts + bytes([34, 10]) + TFO_COOKIE, payload=crec).rec())
    elif i == 1:    # SYN/ACK acknowledges the data in the SYN
        recs.append(p.copy(ack=p.ack + hlen).rec())
    elif i == cidx[0]:
        continue    # hello already sent in the SYN
    elif is_client(p, CURL) and p.seq == CURL[0].seq + 1:
        recs.append(p.copy(seq=p.seq + hlen).rec())
    else:
        recs.append(p.rec())
write_pcap("hello-in-syn-tfo.pcap", recs)
derived("hello-in-syn-tfo.pcap", "curl-tls13.pcap chatgpt.com flow, hello moved into the SYN (TFO)", [curl_e])

# ------------------------------------------------------------ encapsulations
A4, B4 = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])           # RFC 5737 outer endpoints
A6 = bytes.fromhex("20010db8000000000000000000000001")          # RFC 3849
B6 = bytes.fromhex("20010db8000000000000000000000002")


def encap(name, flow, entry, wrap, linktype=LT_EN10MB, **kw):
    recs = []
    for n, p in enumerate(flow):
        c2s = is_client(p, flow)
        recs.append(p.rec(frame=wrap(p, c2s, n)))
    write_pcap(name, recs, linktype)
    what = kw.pop("what")
    e = dict(entry)
    e.update({k: v for k, v in kw.items() if k in ("vlan", "tunnel")})
    extra = {k: v for k, v in kw.items() if k not in ("vlan", "tunnel")}
    derived(name, what, [e], linktype=linktype, **extra)


def outer4(c2s, proto, payload, n):
    s, d = (A4, B4) if c2s else (B4, A4)
    return eth(ETH_IP4, ipv4(s, d, proto, payload, ident=n + 1))


def outer_udp4(c2s, sport, dport, payload, n, fixed_dport=False):
    """Outer UDP/IPv4. With fixed_dport (VXLAN, GENEVE: RFC 7348 §5, RFC 8926 §3.3) every
    packet, either way, goes to the tunnel port from a flow-hashed source port; otherwise the
    ports swap with the direction, as for a client/server conversation (Teredo)."""
    s, d = (A4, B4) if c2s else (B4, A4)
    if not c2s and not fixed_dport:
        sport, dport = dport, sport
    return eth(ETH_IP4, ipv4(s, d, 17, udp(s, d, sport, dport, payload), ident=n + 1))


def mac_hdr():
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"


SRC = "curl-tls13.pcap chatgpt.com flow"
encap("vlan.pcap", CURL, curl_e,
      lambda p, c, n: mac_hdr() + struct.pack("!HHH", 0x8100, 100, p.ethertype()) + p.ip_bytes(),
      vlan=[100], what=SRC + " in 802.1Q VLAN 100")
encap("qinq.pcap", CURL, curl_e,
      lambda p, c, n: mac_hdr() + struct.pack("!HHHHH", 0x88A8, 200, 0x8100, 300, p.ethertype()) + p.ip_bytes(),
      vlan=[200, 300], what=SRC + " in QinQ (outer 802.1ad 200, inner 802.1Q 300)")
encap("mpls.pcap", CURL, curl_e,
      lambda p, c, n: mac_hdr() + struct.pack("!HII", 0x8847, (1000 << 12) | 64, (2000 << 12) | 0x100 | 64)
      + p.ip_bytes(), mpls_labels=[1000, 2000], what=SRC + " under MPLS labels 1000, 2000")
encap("pppoe.pcap", CURL, curl_e,
      lambda p, c, n: mac_hdr() + struct.pack("!HBBHHH", 0x8864, 0x11, 0, 0x1234, 2 + len(p.ip_bytes()), 0x0021)
      + p.ip_bytes(), pppoe_session=0x1234, what=SRC + " in PPPoE session 0x1234")
encap("gre.pcap", CURL, curl_e,
      lambda p, c, n: outer4(c, 47, struct.pack("!HHI", 0x2000, 0x0800, 42) + p.ip_bytes(), n),
      tunnel="gre", gre_key=42, what=SRC + " in GRE (key 42) over IPv4")
encap("erspan2.pcap", CURL, curl_e,
      lambda p, c, n: outer4(c, 47, struct.pack("!HHI", 0x1000, 0x88BE, n)
                             + struct.pack("!HHI", (1 << 12) | 0, 7, 0) + p.frame(), n),
      tunnel="erspan", erspan_session=7, what=SRC + " Ethernet frames in GRE/ERSPAN type II session 7")
encap("vxlan.pcap", CURL, curl_e,
      lambda p, c, n: outer_udp4(c, 49152, 4789, struct.pack("!II", 0x08000000, 42 << 8) + p.frame(), n,
                                 fixed_dport=True),
      tunnel="vxlan", vni=42, what=SRC + " Ethernet frames in VXLAN VNI 42")
GENEVE_OPT = struct.pack("!HBB", 0xFF01, 0x01, 1) + b"STAP"      # experimental class, 4 data bytes
encap("geneve.pcap", CURL, curl_e,
      lambda p, c, n: outer_udp4(c, 49153, 6081, struct.pack("!BBHI", len(GENEVE_OPT) // 4, 0, 0x6558, 42 << 8)
                                 + GENEVE_OPT + p.frame(), n, fixed_dport=True),
      tunnel="geneve", vni=42, what=SRC + " Ethernet frames in Geneve VNI 42 with one option")
encap("ipip-4in4.pcap", CURL, curl_e, lambda p, c, n: outer4(c, 4, p.ip_bytes(), n),
      tunnel="ip-in-ip", what=SRC + " in IPv4-in-IPv4 (proto 4)")
encap("ipip-6in4.pcap", CURL6, curl6_e, lambda p, c, n: outer4(c, 41, p.ip_bytes(), n),
      tunnel="ip-in-ip", what="curl-ipv6.pcap flow in IPv6-in-IPv4 (proto 41)")
encap("ipip-4in6.pcap", CURL, curl_e,
      lambda p, c, n: eth(ETH_IP6, ipv6(A6 if c else B6, B6 if c else A6, 4, p.ip_bytes())),
      tunnel="ip-in-ip", what=SRC + " in IPv4-in-IPv6 (next header 4)")
encap("teredo.pcap", CURL6, curl6_e, lambda p, c, n: outer_udp4(c, 49154, 3544, p.ip_bytes(), n),
      tunnel="teredo", what="curl-ipv6.pcap flow in Teredo (UDP 3544)")
encap("gtpu.pcap", CURL, curl_e,
      lambda p, c, n: outer_udp4(c, 2152, 2152, struct.pack("!BBHI", 0x30, 0xFF, len(p.ip_bytes()), 0x42)
                                 + p.ip_bytes(), n),
      tunnel="gtp-u", teid=0x42, what=SRC + " in GTPv1-U T-PDU (UDP 2152, TEID 0x42)")

# ------------------------------------------------------------ link types
encap("linktype-sll.pcap", CURL, curl_e,
      lambda p, c, n: struct.pack("!HHH8sH", 0 if not c else 4, 772, 6, b"\0" * 8, p.ethertype()) + p.ip_bytes(),
      linktype=LT_SLL, what=SRC + ", Linux cooked capture v1")
encap("linktype-sll2.pcap", CURL, curl_e,
      lambda p, c, n: struct.pack("!HHIHBB8s", p.ethertype(), 0, 1, 772, 0 if not c else 4, 6, b"\0" * 8)
      + p.ip_bytes(), linktype=LT_SLL2, what=SRC + ", Linux cooked capture v2")
encap("linktype-raw.pcap", CURL, curl_e, lambda p, c, n: p.ip_bytes(),
      linktype=LT_RAW, what=SRC + ", raw IP (no link header)")
encap("linktype-null.pcap", CURL, curl_e, lambda p, c, n: struct.pack("<I", 2) + p.ip_bytes(),
      linktype=LT_NULL, what=SRC + ", BSD loopback, AF_INET=2 little-endian")
encap("linktype-ppp.pcap", CURL, curl_e, lambda p, c, n: b"\xff\x03\x00\x21" + p.ip_bytes(),
      linktype=LT_PPP, what=SRC + ", PPP (address ff, control 03, protocol 0x0021)")

# ------------------------------------------------------------ pcapng
def pcapng_block(btype, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


_, src_recs = read_pcap("python-ssl.pcap")
ng = [pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
      pcapng_block(0x00000001, struct.pack("<HHI", LT_EN10MB, 0, 0))]
for sec, usec, fr in src_recs:
    t = sec * 1000000 + usec
    ng.append(pcapng_block(0x00000006, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(fr), len(fr)) + fr))
with open("pcapng-sample.pcapng", "wb") as f:
    f.write(b"".join(ng))
EXPECTED["pcapng-sample.pcapng"] = dict(EXPECTED["python-ssl.pcap"], format="pcapng",
                                        source="python-ssl.pcap converted to pcapng (SHB, IDB, EPBs)")

# ------------------------------------------------------------ bad input
_, nosni = read_pcap("openssl-nosni.pcap")
full = pcap_bytes(nosni, LT_EN10MB)
keep = 6                                               # hello is in record 4
cut = len(pcap_bytes(nosni[:keep], LT_EN10MB)) + 16 + len(nosni[keep][2]) // 2
with open("truncated.pcap", "wb") as f:
    f.write(full[:cut])
EXPECTED["truncated.pcap"] = dict(EXPECTED["openssl-nosni.pcap"], source="openssl-nosni.pcap cut mid-record",
                                  complete_records=keep, error=None,
                                  warning="truncated: last record cut in the middle; return the %d complete records" % keep)

# Files that must fail live in bad/, so that `shadowtap inspect pcaps/` (the demo) reads only
# captures that are valid or merely truncated.
os.makedirs("bad", exist_ok=True)
with open("bad/not-a-pcap.pcap", "w") as f:
    f.write("This is not a packet capture.\nIt is a text file named .pcap; a reader must reject it.\n")
EXPECTED["bad/not-a-pcap.pcap"] = {"source": "text file", "flows": [], "error": "not a pcap/pcapng file (bad magic)",
                               "warning": None}

bad = bytearray(pcap_bytes(nosni[:3], LT_EN10MB))
struct.pack_into("<II", bad, 24 + 8, 0xFFFFFFF0, 0xFFFFFFF0)  # first record: incl_len, orig_len
with open("bad/corrupt-header.pcap", "wb") as f:
    f.write(bytes(bad))
EXPECTED["bad/corrupt-header.pcap"] = {"source": "valid global header, first record length 0xFFFFFFF0",
                                   "flows": [], "error": "record length larger than snaplen / sane limit; stop, "
                                   "do not allocate", "warning": None}

# ------------------------------------------------------------ hostile TLS
LO = bytes([127, 0, 0, 1])
T0 = (CURL[0].sec, CURL[0].usec)


def synthetic_flow(cport, client_data, t_usec):
    """A complete TCP flow 127.0.0.1:cport -> 127.0.0.1:443 with client_data."""
    cs, ss = 0x10000000 + cport, 0x20000000 + cport   # fixed ISNs
    pk = []

    def add(c2s, flags, seq, ack, payload=b""):
        s, d, sp, dp = (LO, LO, cport, 443) if c2s else (LO, LO, 443, cport)
        pk.append((c2s, ipv4(s, d, 6, tcp(s, d, sp, dp, seq, ack, flags, 65535, b"", payload),
                             ident=len(pk) + 1)))
    S, A, P, F = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN
    add(True, S, cs, 0)
    add(False, S | A, ss, cs + 1)
    add(True, A, cs + 1, ss + 1)
    seq = cs + 1
    for k in range(0, len(client_data), 1448):
        chunk = client_data[k:k + 1448]
        add(True, A | P, seq, ss + 1, chunk)
        seq += len(chunk)
    add(False, A, ss + 1, seq)
    add(True, F | A, seq, ss + 1)
    add(False, F | A, ss + 1, seq + 1)
    add(True, A, seq + 1, ss + 2)
    return [ts_add(T0[0], T0[1], t_usec + 100 * i) + (eth(ETH_IP4, b, b"\0" * 6, b"\0" * 6),)
            for i, (c2s, b) in enumerate(pk)]


# flow 1: a full 16 KiB record whose handshake header declares 16 MiB (0xFFFFFF)
huge = b"\x16\x03\x01\x40\x00" + b"\x01\xff\xff\xff" + bytes(range(256)) * 63 + bytes(0x4000 - 4 - 256 * 63)
# flow 2: curl's real ClientHello with the SNI extension length overrunning the extensions block
h = bytearray(crec)
body = h[9:]
p = 2 + 32
p += 1 + body[p]
p += 2 + struct.unpack("!H", body[p:p + 2])[0]
p += 1 + body[p]
ext_end = p + 2 + struct.unpack("!H", body[p:p + 2])[0]
p += 2
while struct.unpack("!H", body[p:p + 2])[0] != 0:    # find server_name
    p += 4 + struct.unpack("!H", body[p + 2:p + 4])[0]
struct.pack_into("!H", h, 9 + p + 2, 0xFFF0)            # extension length way past the end
overrun = bytes(h)
recs = synthetic_flow(40001, huge, 0) + synthetic_flow(40002, overrun, 100000)
write_pcap("hostile-tls.pcap", recs)
EXPECTED["hostile-tls.pcap"] = {"source": "synthetic", "linktype": LT_EN10MB, "flows": [
    {"client": "127.0.0.1:40001", "server": "127.0.0.1:443", "transport": "tcp", "sni": None, "alpn": [],
     "tls_version_offered": None, "ech": None, "vlan": None, "tunnel": None, "malformed": True,
     "note": "TLS record of 16384 bytes holding a handshake header that declares 16777215 bytes; "
             "must not buffer/allocate 16 MiB, count as malformed/oversized, no panic"},
    {"client": "127.0.0.1:40002", "server": "127.0.0.1:443", "transport": "tcp", "sni": None, "alpn": [],
     "tls_version_offered": None, "ech": None, "vlan": None, "tunnel": None, "malformed": True,
     "note": "curl ClientHello (sni chatgpt.com) whose server_name extension length is 0xFFF0, overrunning "
             "the extensions block; count as malformed, no panic, no SNI"}],
    "error": None, "warning": None}

# =================================================================== QUIC, DNS, markers
# Second part (added with capture-quic.sh): ground truth for the real captures
# capture-quic.sh made (manifest-quic.tsv says what each client was told to do;
# tshark, which decrypts QUIC Initials, is the independent reader), then
# synthetic marker flows. Layout sources are named next to each builder; no
# code from other projects. "Random" payload bytes come from SHA-256 of a fixed
# label (prand), so the output is deterministic.
import base64
import hashlib

NONTLS = {"sni": None, "alpn": [], "tls_version_offered": None, "ech": None, "vlan": None, "tunnel": None}
DNS_TYPES = {1: "A", 5: "CNAME", 28: "AAAA", 65: "HTTPS", 41: "OPT"}
QUIC_VERSIONS = {0x00000001: "v1", 0x6B3343CF: "v2"}


def prand(label, n):
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(b"shadowtap/%s/%d" % (label.encode(), i)).digest()
        i += 1
    return out[:n]


def l4_packets(name):
    """Every IPv4 TCP/UDP packet of a capture as a dict (no reassembly needed on lo)."""
    _, recs = read_pcap(name)
    out = []
    for sec, usec, fr in recs:
        ip = dpkt.ethernet.Ethernet(fr).data
        t = ip.data
        out.append({"sec": sec, "usec": usec, "frame": fr, "src": ip.src, "dst": ip.dst,
                    "proto": "tcp" if isinstance(t, dpkt.tcp.TCP) else "udp", "sport": t.sport,
                    "dport": t.dport, "flags": getattr(t, "flags", 0), "payload": bytes(t.data)})
    return out


def conversations(pkts):
    """{(proto, client ip, client port, server ip, server port): [pkt, ...]} in capture order;
    the client is the sender of the conversation's first packet (the SYN for TCP)."""
    conv = {}
    for p in pkts:
        fwd = (p["proto"], p["src"], p["sport"], p["dst"], p["dport"])
        rev = (p["proto"], p["dst"], p["dport"], p["src"], p["sport"])
        key = rev if rev in conv else fwd
        p["c2s"] = key == fwd
        conv.setdefault(key, []).append(p)
    return conv


def conv_entry(key, **extra):
    e = {"client": addr(key[1], key[2]), "server": addr(key[3], key[4]), "transport": key[0]}
    e.update(NONTLS)
    e.update(extra)
    return e


def stream_messages(pkts, c2s):
    """DNS over a byte stream (RFC 1035 s4.2.2): 2-byte length, message."""
    buf = b"".join(p["payload"] for p in pkts if p["c2s"] == c2s)
    out = []
    while len(buf) >= 2:
        n = struct.unpack("!H", buf[:2])[0]
        out.append(buf[2:2 + n])
        buf = buf[2 + n:]
    return out


# ---------------------------------------------------------------- DNS (own reader)
def dns_name(msg, off):
    """RFC 1035 s4.1.4 name with compression pointers; returns (name, offset after)."""
    labels, end, hops = [], None, 0
    while True:
        n = msg[off]
        if n >= 0xC0:
            end = off + 2 if end is None else end
            off = ((n & 0x3F) << 8) | msg[off + 1]
            hops += 1
            assert hops < 32
            continue
        if n == 0:
            return ".".join(labels), (off + 1 if end is None else end)
        labels.append(msg[off + 1:off + 1 + n].decode())
        off += 1 + n


def svcb_text(rd, msg, off):
    """HTTPS/SVCB RDATA (RFC 9460 s2.2) in presentation form (alpn, ech as base64)."""
    prio = struct.unpack("!H", rd[:2])[0]
    target, p = dns_name(msg, off + 2)
    p -= off
    parts = [str(prio), target + "." if target else "."]
    while p < len(rd):
        k, n = struct.unpack("!HH", rd[p:p + 4])
        v = rd[p + 4:p + 4 + n]
        if k == 1:
            ids, q = [], 0
            while q < len(v):
                ids.append(v[q + 1:q + 1 + v[q]].decode())
                q += 1 + v[q]
            parts.append("alpn=" + ",".join(ids))
        elif k == 5:
            parts.append("ech=" + base64.b64encode(v).decode())
        else:
            parts.append("key%d=%s" % (k, v.hex()))
        p += 4 + n
    return " ".join(parts)


def dns_parse(msg):
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    off, qs, ans = 12, [], []
    for _ in range(qd):
        name, off = dns_name(msg, off)
        qs.append((name, DNS_TYPES.get(struct.unpack("!H", msg[off:off + 2])[0], "?")))
        off += 4
    for _ in range(an):
        name, off = dns_name(msg, off)
        t, _, _, n = struct.unpack("!HHIH", msg[off:off + 10])
        rd = msg[off + 10:off + 10 + n]
        tn = DNS_TYPES.get(t, str(t))
        if tn == "A":
            data = "%d.%d.%d.%d" % tuple(rd)
        elif tn == "AAAA":
            import ipaddress
            data = str(ipaddress.IPv6Address(rd))
        elif tn == "CNAME":
            data = dns_name(msg, off + 10)[0]
        elif tn == "HTTPS":
            data = svcb_text(rd, msg, off + 10)
        else:
            data = rd.hex()
        ans.append({"name": name, "type": tn, "data": data})
        off += 10 + n
    return {"response": bool(flags & 0x8000), "rcode": flags & 0xF, "questions": qs, "answers": ans}


def dns_flow_fields(pkts, transport):
    if transport == "udp":
        q = [dns_parse(p["payload"]) for p in pkts if p["c2s"]]
        r = [dns_parse(p["payload"]) for p in pkts if not p["c2s"]]
    else:
        q = [dns_parse(m) for m in stream_messages(pkts, True)]
        r = [dns_parse(m) for m in stream_messages(pkts, False)]
    rcodes = {0: "NOERROR", 3: "NXDOMAIN"}
    return {"dns_queries": [n for m in q for n, _ in m["questions"]],
            "dns_query_types": [t for m in q for _, t in m["questions"]],
            "dns_answers": [a for m in r for a in m["answers"]],
            "dns_rcodes": [rcodes.get(m["rcode"], str(m["rcode"])) for m in r]}


def tshark_rows(name, display, fields):
    if not shutil.which("tshark"):
        return None
    cmd = ["tshark", "-r", name, "-Y", display, "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=;"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, (line.split("\t") + [""] * len(fields))[:len(fields)])) for line in out.splitlines()]


def split(v):
    return [x for x in v.split(";") if x] if v else []


def check_dns_with_tshark(name, key, f):
    """tshark's own DNS dissection of this flow must give the same names, types and data."""
    port = "%s.srcport" % key[0]
    rows = tshark_rows(name, "dns && %s == %d || dns && %s.dstport == %d" % (port, key[2], key[0], key[2]),
                       ["dns.flags.response", "dns.qry.name", "dns.resp.name", "dns.resp.type", "dns.cname",
                        "dns.a", "dns.aaaa", "dns.svcb.svcparam.alpn", "dns.svcb.svcparam.echconfig"])
    if rows is None:
        return
    qn = [n for r in rows if r["dns.flags.response"] in ("0", "False") for n in split(r["dns.qry.name"])]
    resp = [r for r in rows if r["dns.flags.response"] in ("1", "True")]
    names = [n for r in resp for n in split(r["dns.resp.name"])]
    data = {"CNAME": [x for r in resp for x in split(r["dns.cname"])],
            "A": [x for r in resp for x in split(r["dns.a"])],
            "AAAA": [x for r in resp for x in split(r["dns.aaaa"])]}
    ans = [a for a in f["dns_answers"]]
    ok = qn == f["dns_queries"] and names == [a["name"] for a in ans]
    for t in data:
        ok = ok and data[t] == [a["data"] for a in ans if a["type"] == t]
    for a in ans:
        if a["type"] == "HTTPS":
            alpn = [x for r in resp for x in split(r["dns.svcb.svcparam.alpn"])]
            ech = [x for r in resp for x in split(r["dns.svcb.svcparam.echconfig"])]
            ok = ok and ("alpn=" + ",".join(alpn)) in a["data"] and ech and \
                ("ech=" + base64.b64encode(bytes.fromhex(ech[0])).decode()) in a["data"]
    if not ok:
        sys.exit("%s: tshark disagrees on DNS flow %r: %r vs %r" % (name, key, rows, f))


# ---------------------------------------------------------------- QUIC (headers only, own reader)
def quic_long(d):
    """Long header fields (RFC 8999 s5.1: version-independent) + packet type (RFC 9000 s17.2,
    RFC 9369 s3.2: v2 renumbers the types)."""
    if not d or not d[0] & 0x80:
        return None
    ver = struct.unpack("!I", d[1:5])[0]
    dl = d[5]
    dcid = d[6:6 + dl]
    sl = d[6 + dl]
    scid = d[7 + dl:7 + dl + sl]
    bits = (d[0] >> 4) & 3
    types = {1: ["initial", "0rtt", "handshake", "retry"], 0x6B3343CF: ["retry", "initial", "0rtt", "handshake"]}
    return {"version": ver, "type": types[ver][bits] if ver in types else None, "dcid": dcid.hex(), "scid": scid.hex()}


def quic_fields(pkts):
    hdrs = [(p["c2s"], quic_long(p["payload"])) for p in pkts]
    first = hdrs[0][1]
    assert hdrs[0][0] and first["type"] == "initial"
    f = {"quic_version": QUIC_VERSIONS[first["version"]], "quic_initial_dcid": first["dcid"]}
    n = 0
    for c2s, h in hdrs:                      # client Initial datagrams before the server's first
        if not c2s:
            break
        n += 1
    f["quic_client_initials_first_flight"] = n
    retry = [h for c2s, h in hdrs if not c2s and h and h["type"] == "retry"]
    f["quic_retry"] = bool(retry)
    if retry:
        f["quic_retry_scid"] = retry[0]["scid"]
        after = [h for c2s, h in hdrs[hdrs.index((False, retry[0])) + 1:] if c2s and h and h["type"] == "initial"]
        assert after[0]["dcid"] == retry[0]["scid"], "client must switch to the Retry's SCID (RFC 9000 s17.2.5.2)"
    return f


def tshark_quic(name):
    rows = tshark_rows(name, "tls.handshake.type == 1",
                       ["udp.srcport", "tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str",
                        "tls.handshake.extension.type", "tls.handshake.extensions.supported_version",
                        "tls.handshake.ja3", "tls.handshake.ja3_full", "quic.version"])
    return rows


# ---------------------------------------------------------------- STUN / WhatsApp (own readers)
def stun_attrs(d):
    """RFC 5389 s6/s15: 20-byte header with magic cookie 0x2112A442, then TLVs padded to 4."""
    mtype, n, cookie = struct.unpack("!HHI", d[:8])
    assert cookie == 0x2112A442 and len(d) == 20 + n
    p, attrs = 20, {}
    while p < len(d):
        t, ln = struct.unpack("!HH", d[p:p + 4])
        attrs[t] = d[p + 4:p + 4 + ln]
        p += 4 + ln + (-ln % 4)
    return mtype, attrs


def wa_header(payload):
    """'WA' + protocol byte + dictionary version, then a 3-byte-length Noise frame."""
    if payload[:2] != b"WA" or len(payload) < 7:
        return None
    n = int.from_bytes(payload[4:7], "big")
    assert len(payload) >= 7 + n
    return payload[:4].hex()


# ---------------------------------------------------------------- real captures of capture-quic.sh
def load_manifest_quic():
    rows = []
    with open("manifest-quic.tsv") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            fn, tool, kind, nm, detail = line.rstrip("\n").split("\t")
            rows.append({"file": fn, "tool": tool, "kind": kind, "name": nm, "detail": detail})
    return rows


MQ = load_manifest_quic()
try:
    with open("expected.json") as _f:
        PREVIOUS = json.load(_f)["files"]
except (OSError, ValueError, KeyError):
    PREVIOUS = {}
REAL2 = ["quic-chromium.pcap", "quic-aioquic.pcap", "quic-retry.pcap", "quic-v2.pcap", "dns-udp.pcap",
         "dns-tcp.pcap", "dns-https-ech.pcap", "dns-then-tls.pcap", "dot.pcap", "stun.pcap"]
assert sorted({m["file"] for m in MQ}) == sorted(REAL2)
CONV = {}
for name in REAL2:
    rows = [m for m in MQ if m["file"] == name]
    tool = rows[0]["tool"]
    conv = conversations(l4_packets(name))
    CONV[name] = conv
    entries = []
    answers_seen = {}
    for key, pk in conv.items():
        if key[4] in (53,):                                          # DNS, UDP or TCP
            f = dns_flow_fields(pk, key[0])
            check_dns_with_tshark(name, key, f)
            want = [(m["name"], m["detail"]) for m in rows if m["kind"].startswith("dns")]
            got = list(zip(f["dns_queries"], f["dns_query_types"]))
            if not set(got) <= set(want):
                sys.exit("%s: DNS flow %r asks %r, manifest says %r" % (name, key, got, want))
            for a in f["dns_answers"]:
                answers_seen.setdefault(a["data"], a["name"])
            entries.append(conv_entry(key, tool=rows[0]["tool"] if rows[0]["kind"].startswith("dns") else tool,
                                      app="dns", **f))
        elif key[0] == "udp" and key[4] in (443, 8443):               # QUIC
            f = quic_fields(pk)
            m = rows[0]
            ts = tshark_quic(name)
            e = conv_entry(key, tool=m["tool"], app="quic")
            if ts is not None:
                hello = [r for r in ts if r["udp.srcport"] == str(key[2]) and r["tls.handshake.extensions_server_name"]]
                t = hello[0]
                vers = [int(v, 16) for v in split(t["tls.handshake.extensions.supported_version"])]
                e.update({"sni": t["tls.handshake.extensions_server_name"],
                          "alpn": t["tls.handshake.extensions_alpn_str"].replace(";", ",").split(","),
                          "tls_version_offered": "TLS1.3" if 0x0304 in vers else None,
                          "ech": "65037" in split(t["tls.handshake.extension.type"])})
                if e["sni"] != m["name"] or "h3" not in e["alpn"] or QUIC_VERSIONS[int(t["quic.version"].split(";")[0], 16)] \
                        != f["quic_version"] or f["quic_version"] not in m["detail"]:
                    sys.exit("%s: QUIC flow disagrees with manifest/tshark: %r %r %r" % (name, m, t, f))
                e["ja3"], e["ja3_full"] = t["tls.handshake.ja3"] or None, t["tls.handshake.ja3_full"] or None
            else:   # no tshark: keep the TLS fields the last run (with tshark) wrote for this flow
                old = [x for x in PREVIOUS.get(name, {}).get("flows", []) if x["client"] == e["client"]]
                if not old:
                    sys.exit("%s: tshark is needed to decrypt the QUIC Initials (SNI/ALPN ground truth)" % name)
                e.update({k: old[0].get(k) for k in ("sni", "alpn", "tls_version_offered", "ech", "ja3", "ja3_full")})
            if ("retry" in m["detail"]) != f["quic_retry"]:
                sys.exit("%s: retry expected %r" % (name, m["detail"]))
            e["ech_grease"] = e["ech"] if "Chromium" in m["tool"] else False
            e.update(f)
            entries.append(e)
        elif key[4] == 853:                                           # DNS over TLS
            fl = [f for f in flows_of(name).values()][0]
            _, rec = hello_packets(fl)
            m = rows[0]
            e = flow_entry(fl, rec, tool=m["tool"], marker="dot", app="tls")
            ts = tshark_hellos(name)
            if ts is not None:
                t = ts[key[2]]
                if t["sni"] != e["sni"] or t["alpn"] != e["alpn"] or e["sni"] != m["name"]:
                    sys.exit("%s: tshark/manifest disagree %r %r" % (name, t, e))
                e["ja3"], e["ja3_full"] = t["ja3"], t["ja3_full"]
            e["ech_grease"] = False
            entries.append(e)
        elif key[4] == 3478:                                          # STUN
            req = [stun_attrs(p["payload"]) for p in pk if p["c2s"]]
            rsp = [stun_attrs(p["payload"]) for p in pk if not p["c2s"]]
            assert req[0][0] == 0x0001 and rsp[0][0] == 0x0101
            e = conv_entry(key, tool=rows[0]["tool"], marker="stun", app="stun",
                           stun_software=req[0][1][0x8022].decode(),
                           stun_software_server=rsp[0][1][0x8022].decode(),
                           stun_messages=["binding-request", "binding-success"])
            sw = tshark_rows(name, "stun", ["stun.att.software"])
            if sw is not None and [r["stun.att.software"] for r in sw] != [e["stun_software"], e["stun_software_server"]]:
                sys.exit("%s: tshark disagrees on SOFTWARE: %r" % (name, sw))
            entries.append(e)
        elif key[0] == "tcp":                                         # the non-TLS flow after a lookup
            first = next(p["payload"] for p in pk if p["c2s"] and p["payload"])
            hdr = wa_header(first)
            m = [r for r in rows if r["kind"] == "whatsapp-noise"][0]
            srv = "%d.%d.%d.%d" % tuple(key[3])
            if hdr is None or m["detail"] != "%s:%d" % (srv, key[4]) or answers_seen.get(srv) != m["name"]:
                sys.exit("%s: non-TLS flow %r does not match manifest / DNS answer" % (name, key))
            entries.append(conv_entry(key, tool=m["tool"], marker="whatsapp-noise", app="whatsapp",
                                      wa_header=hdr, dns_name=m["name"],
                                      note="first client bytes are WhatsApp's 'WA' preface, not TLS; the "
                                           "server address was the A answer for %s just before" % m["name"]))
        else:
            sys.exit("%s: unexpected conversation %r" % (name, key))
    EXPECTED[name] = {"source": "real capture (capture-quic.sh)", "linktype": LT_EN10MB, "flows": entries}

# the HTTPS record's ECH config, reused by ech-real.pcap below
_https = [a for f in EXPECTED["dns-https-ech.pcap"]["flows"] for a in f["dns_answers"] if a["type"] == "HTTPS"][0]
ECH_LIST = base64.b64decode(_https["data"].split("ech=")[1].split()[0])
ECH_CONFIG_ID = ECH_LIST[6]                          # list len(2) version(2) len(2), then config_id
_pn = ECH_LIST[6 + 1 + 2 + 2 + 32 + 2 + 4 + 1:]     # kem(2) keylen(2) key(32) suites(2+4) maxlen(1)
ECH_PUBLIC_NAME = _pn[1:1 + _pn[0]].decode()
assert ECH_PUBLIC_NAME == "cloudflare-ech.com"
EXPECTED["dns-https-ech.pcap"]["ech_config"] = {"config_id": ECH_CONFIG_ID, "public_name": ECH_PUBLIC_NAME,
                                                "kem_id": 0x0020, "cipher_suites": [[1, 1]]}

# ---------------------------------------------------------------- synthetic conversations
def tcp_conv(cip, sip, cport, sport, msgs, t0, label):
    """A complete TCP conversation: handshake, msgs = [(client_to_server, bytes)] each cut at
    1448 bytes and ACKed, then FIN/FIN-ACK/ACK. Fixed ISNs; timestamps t0 + 100 us steps."""
    cs = int.from_bytes(prand(label + "/isn-c", 4), "big")
    ss = int.from_bytes(prand(label + "/isn-s", 4), "big")
    seq = {True: cs + 1, False: ss + 1}
    pk = []
    S, A, P, F = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN

    def add(c2s, flags, s, a, payload=b""):
        src, dst, sp, dp = (cip, sip, cport, sport) if c2s else (sip, cip, sport, cport)
        pk.append(ipv4(src, dst, 6, tcp(src, dst, sp, dp, s, a, flags, 65535, b"", payload), ident=len(pk) + 1))
    add(True, S, cs, 0)
    add(False, S | A, ss, cs + 1)
    add(True, A, cs + 1, ss + 1)
    for c2s, data in msgs:
        for k in range(0, len(data), 1448):
            chunk = data[k:k + 1448]
            add(c2s, A | P, seq[c2s], seq[not c2s], chunk)
            seq[c2s] += len(chunk)
        add(not c2s, A, seq[not c2s], seq[c2s])
    add(True, F | A, seq[True], seq[False])
    add(False, F | A, seq[False], seq[True] + 1)
    add(True, A, seq[True] + 1, seq[False] + 1)
    return [ts_add(t0[0], t0[1], 100 * i) + (eth(ETH_IP4, b, b"\0" * 6, b"\0" * 6),) for i, b in enumerate(pk)]


def syn_entry(cip, sip, cport, sport, **kw):
    return conv_entry(("tcp", cip, cport, sip, sport), **kw)


def hello_entry(rec, cip, sip, cport, sport, **kw):
    h = parse_hello(rec)
    e = syn_entry(cip, sip, cport, sport)
    e.update({"sni": h["sni"], "alpn": h["alpn"], "tls_version_offered": h["tls_max"], "ech": h["ech"]})
    e.update(kw)
    return e


def check_tls_with_tshark(name, entries):
    ts = tshark_hellos(name)
    if ts is None:
        return
    for e in entries:
        if e["sni"] is None:
            continue
        t = ts[int(e["client"].rsplit(":", 1)[1])]
        if t["sni"] != e["sni"] or t["alpn"] != e["alpn"]:
            sys.exit("%s: tshark disagrees: %r vs %r" % (name, t, e))
        e["ja3"], e["ja3_full"] = t["ja3"], t["ja3_full"]


LO2 = bytes([127, 0, 0, 2])
T1 = (CHROME[0].sec, CHROME[0].usec)

# whatsapp-noise: WhatsApp chat connections. Facts (no code): open reimplementations of the
# client (whatsmeow socket/constants.go: WAConnHeader = 'W','A', WAMagicValue 6, DictVersion 3;
# Baileys NOISE_WA_HEADER) write "WA" (57 41) 06 03, then Noise_XX_25519_AESGCM_SHA256 handshake
# frames, each with a 3-byte big-endian length; the first frame is a HandshakeMessage protobuf:
# field 2 clientHello { field 1 ephemeral (32 bytes) }, i.e. 57 41 06 03 00 00 24 12 22 0a 20 + key;
# the server answers field 3 serverHello { ephemeral 32, static 48, payload }. Clients that know
# their edge route first send an "ED" preamble: 45 44 00 01 + 3-byte length + routing bytes
# (nDPI's whatsapp.c matches 45 44 00 01 00 00 04 08 and ... 00 00 02 08; its 2015 rule was
# 57 41 01 05), then the "WA" header.
WA_EDGE = b"ED\x00\x01" + (4).to_bytes(3, "big") + b"\x08\x02\x10\x05"   # 4 routing bytes, start 0x08


def wa_client_hello(label, edge=b""):
    msg = b"\x12\x22\x0a\x20" + prand(label + "/ephemeral", 32)
    return edge + b"WA\x06\x03" + len(msg).to_bytes(3, "big") + msg


def wa_server_hello(label):
    inner = b"\x0a\x20" + prand(label + "/s-eph", 32) + b"\x12\x30" + prand(label + "/s-static", 48) \
        + b"\x1a\xc8\x01" + prand(label + "/s-payload", 200)
    msg = b"\x1a" + bytes([0x80 | (len(inner) & 0x7F), len(inner) >> 7]) + inner
    return len(msg).to_bytes(3, "big") + msg


def wa_client_finish(label):
    inner = b"\x0a\x30" + prand(label + "/c-static", 48) + b"\x12\x80\x02" + prand(label + "/c-payload", 256)
    msg = b"\x22" + bytes([0x80 | (len(inner) & 0x7F), len(inner) >> 7]) + inner
    return len(msg).to_bytes(3, "big") + msg


recs, ents = [], []
for i, (cport, sport, edge) in enumerate(((40201, 443, b""), (40202, 5222, b""), (40203, 443, WA_EDGE))):
    lab = "wa%d" % cport
    hello = wa_client_hello(lab, edge)
    recs += tcp_conv(LO, LO2, cport, sport, [(True, hello), (False, wa_server_hello(lab)),
                                             (True, wa_client_finish(lab))], ts_add(T1[0], T1[1], 200000 * i), lab)
    ents.append(syn_entry(LO, LO2, cport, sport, marker="whatsapp-noise", app="whatsapp", wa_header=hello[:4].hex(),
                          wa_edge_routing=bool(edge),
                          note=("'ED' 00 01 edge-routing preamble (3-byte length 4), then " if edge else "")
                          + "'WA' 06 03 + 3-byte-length Noise ClientHello frame (not TLS)"))
write_pcap("whatsapp-noise.pcap", recs)
derived("whatsapp-noise.pcap", "synthetic (derive.py): WhatsApp chat preface on TCP 443 and 5222, and with the "
        "'ED' edge-routing preamble on 443", ents)

# http-host: cleartext HTTP/1.1 (RFC 9112: request line, Host header) and an HTTP CONNECT tunnel
# (RFC 9110 s9.3.6: "CONNECT host:port", 2xx, then the tunnelled bytes = curl's real ClientHello).
DRIVE = first_flow("curl-tls13.pcap", "drive.google.com")
_, drive_rec = hello_packets(DRIVE)
get = (b"GET / HTTP/1.1\r\nHost: www.wetransfer.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
moved = (b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://www.wetransfer.com/\r\nContent-Length: 0\r\n\r\n")
connect = (b"CONNECT drive.google.com:443 HTTP/1.1\r\nHost: drive.google.com:443\r\nUser-Agent: curl/7.88.1\r\n"
           b"Proxy-Connection: Keep-Alive\r\n\r\n")
est = b"HTTP/1.1 200 Connection established\r\n\r\n"
recs = tcp_conv(LO, LO2, 40301, 80, [(True, get), (False, moved)], ts_add(T1[0], T1[1], 400000), "http80")
recs += tcp_conv(LO, LO2, 40302, 3128, [(True, connect), (False, est), (True, drive_rec)],
                 ts_add(T1[0], T1[1], 600000), "connect3128")
write_pcap("http-host.pcap", recs)
ents = [syn_entry(LO, LO2, 40301, 80, app="http", http_host="www.wetransfer.com", http_method="GET"),
        hello_entry(drive_rec, LO, LO2, 40302, 3128, app="tls", http_method="CONNECT",
                    proxy_target="drive.google.com:443", ech_grease=False,
                    note="HTTP CONNECT to a proxy, 200, then curl's ClientHello (from curl-tls13.pcap) in the tunnel")]
check_tls_with_tshark("http-host.pcap", ents)
ht = tshark_rows("http-host.pcap", "http.request", ["tcp.srcport", "http.request.method", "http.host"])
if ht is not None and sorted((r["tcp.srcport"], r["http.request.method"], r["http.host"]) for r in ht) != \
        [("40301", "GET", "www.wetransfer.com"), ("40302", "CONNECT", "drive.google.com:443")]:
    sys.exit("http-host.pcap: tshark disagrees: %r" % ht)
derived("http-host.pcap", "synthetic (derive.py): HTTP GET with Host on :80; CONNECT tunnel on :3128 carrying "
        "curl-tls13.pcap's drive.google.com ClientHello", ents)


# ech-grease / ech-real: TLS ECH (draft-ietf-tls-esni-18 s5): extension 0xfe0d in the outer
# ClientHello = ECHClientHello { type (0 = outer), cipher_suite (kdf_id u16, aead_id u16),
# config_id u8, enc<0..2^16-1>, payload<1..2^16-1> }. GREASE ECH (s6.2) is built to look exactly
# like it, with a random config_id and payload; what tells real ECH apart on the wire is only an
# outer SNI that is the public_name of a published ECHConfig (and its config_id).
def hello_split(rec):
    hs = rec[9:9 + int.from_bytes(rec[6:9], "big")]
    p = 2 + 32
    p += 1 + hs[p]
    p += 2 + struct.unpack("!H", hs[p:p + 2])[0]
    p += 1 + hs[p]
    end = p + 2 + struct.unpack("!H", hs[p:p + 2])[0]
    head, q, exts = hs[:p], p + 2, []
    while q < end:
        t, n = struct.unpack("!HH", hs[q:q + 4])
        exts.append([t, hs[q + 4:q + 4 + n]])
        q += 4 + n
    return head, exts


def hello_join(rec, head, exts):
    eb = b"".join(struct.pack("!HH", t, len(d)) + d for t, d in exts)
    hs = head + struct.pack("!H", len(eb)) + eb
    body = b"\x01" + len(hs).to_bytes(3, "big") + hs
    return rec[:3] + struct.pack("!H", len(body)) + body


def sni_ext(name):
    n = name.encode()
    return struct.pack("!HBH", 3 + len(n), 0, len(n)) + n      # RFC 6066 s3 server_name_list


head, exts = hello_split(hrec)
assert hello_join(hrec, head, exts) == hrec
grease_ech = [d for t, d in exts if t == 0xFE0D][0]
assert grease_ech[0] == 0                                      # outer
real = []
for t, d in exts:
    if t == 0:
        d = sni_ext(ECH_PUBLIC_NAME)
    elif t == 0xFE0D:
        d = b"\x00" + struct.pack("!HHB", 1, 1, ECH_CONFIG_ID) + d[6:]   # suite + config_id of the HTTPS record
    real.append([t, d])
real_rec = hello_join(hrec, head, real)
assert parse_hello(real_rec)["sni"] == ECH_PUBLIC_NAME and len(real_rec) == len(hrec) + 2

recs = tcp_conv(LO, LO2, 40401, 443, [(True, hrec)], T1, "ech-grease")
write_pcap("ech-grease.pcap", recs)
ents = [hello_entry(hrec, LO, LO2, 40401, 443, app="tls", ech_grease=True, ech_config_id=grease_ech[5],
                    note="chromium-pq.pcap's ClientHello: GREASE ECH (random config_id/payload), real SNI outside")]
check_tls_with_tshark("ech-grease.pcap", ents)
derived("ech-grease.pcap", "synthetic (derive.py): chromium-pq.pcap's hello (GREASE ECH) alone on a flow to 443", ents)

recs = tcp_conv(LO, LO2, 40402, 443, [(True, real_rec)], ts_add(T1[0], T1[1], 100000), "ech-real")
write_pcap("ech-real.pcap", recs)
ents = [hello_entry(real_rec, LO, LO2, 40402, 443, app="tls", ech_grease=False, ech_config_id=ECH_CONFIG_ID,
                    ech_public_name=ECH_PUBLIC_NAME,
                    note="chromium-pq.pcap's hello edited: outer SNI = public_name cloudflare-ech.com and ECH "
                         "config_id/suite of the HTTPS record in dns-https-ech.pcap; the inner name is "
                         "encrypted (here: random bytes), so no SNI beyond the public name is knowable")]
check_tls_with_tshark("ech-real.pcap", ents)
derived("ech-real.pcap", "synthetic (derive.py): chromium-pq.pcap's hello with outer SNI cloudflare-ech.com and the "
        "ECH config_id from dns-https-ech.pcap", ents)

# quic-reordered: quic-chromium.pcap with the client's first two datagrams (both Initials, the
# ClientHello's CRYPTO frames scattered over them) swapped; timestamps stay monotonic.
_, qrecs = read_pcap("quic-chromium.pcap")
qp = l4_packets("quic-chromium.pcap")
ci = [i for i, p in enumerate(qp) if p["sport"] == qp[0]["sport"]][:2]
assert ci == [0, 1] and all(quic_long(qp[i]["payload"])["type"] == "initial" for i in ci)
qrecs = list(qrecs)
qrecs[0], qrecs[1] = (qrecs[0][0], qrecs[0][1], qrecs[1][2]), (qrecs[1][0], qrecs[1][1], qrecs[0][2])
write_pcap("quic-reordered.pcap", qrecs)
qe = dict(EXPECTED["quic-chromium.pcap"]["flows"][0])
qe["note"] = "the client's two Initial datagrams arrive swapped; the hello must still be reassembled"
qts = tshark_quic("quic-reordered.pcap")
if qts is not None and not any(r["tls.handshake.extensions_server_name"] == qe["sni"] for r in qts):
    sys.exit("quic-reordered.pcap: tshark finds no hello")
derived("quic-reordered.pcap", "quic-chromium.pcap with the client's two Initial datagrams swapped", [qe])

# quic-coalesced: quic-aioquic.pcap's first client datagram rebuilt as two QUIC packets in one
# UDP datagram (RFC 9000 s12.2). aioquic sends its Initial (hello, no PADDING frames) and fills
# the 1200-byte datagram (RFC 9000 s14.1) with zero bytes after the packet; here those bytes
# become a 0-RTT packet (random bytes; no 0-RTT keys exist), so a reader must walk the packets
# by their Length field. The Initial is decrypted and re-sealed (PADDING frames dropped, if any). Initial protection from
# RFC 9001 s5 (HKDF with the v1 salt, AES-128-GCM, AES-ECB header protection), checked below
# against the RFC 9001 Appendix A vector. Needs `pip install cryptography`.
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

QUIC_V1_SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")


def hkdf_expand_label(secret, label, n):
    full = b"tls13 " + label
    info = struct.pack("!HB", n, len(full)) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(secret, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


def client_initial_keys(dcid):
    init = hmac.new(QUIC_V1_SALT, dcid, hashlib.sha256).digest()          # HKDF-Extract
    sec = hkdf_expand_label(init, b"client in", 32)
    return (hkdf_expand_label(sec, b"quic key", 16), hkdf_expand_label(sec, b"quic iv", 12),
            hkdf_expand_label(sec, b"quic hp", 16))


assert client_initial_keys(bytes.fromhex("8394c8f03e515708"))[0].hex() == "1f369613dd76d5467730efcbe3b1a22d"


def varint(b, p):
    n = 1 << (b[p] >> 6)
    v = b[p] & 0x3F
    for k in range(1, n):
        v = (v << 8) | b[p + k]
    return v, p + n


def hp_mask(hp, sample):
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    return enc.update(sample) + enc.finalize()


def initial_open(d):
    """(header fields, pn, frames plaintext, packet length) of the Initial at the start of d."""
    dl = d[5]
    dcid = d[6:6 + dl]
    p = 7 + dl + d[6 + dl]
    tlen, p = varint(d, p)
    p += tlen
    length, pn_off = varint(d, p)
    key, iv, hp = client_initial_keys(dcid)
    mask = hp_mask(hp, d[pn_off + 4:pn_off + 20])
    first = d[0] ^ (mask[0] & 0x0F)
    pnl = (first & 3) + 1
    pn_bytes = bytes(x ^ y for x, y in zip(d[pn_off:pn_off + pnl], mask[1:1 + pnl]))
    pn = int.from_bytes(pn_bytes, "big")
    aad = bytes([first]) + d[1:pn_off] + pn_bytes
    nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
    plain = AESGCM(key).decrypt(nonce, d[pn_off + pnl:pn_off + length], aad)
    return {"first": first, "dcid": dcid, "pre": d[1:p], "pnl": pnl, "key": key, "iv": iv, "hp": hp}, pn, plain, \
        pn_off + length


def initial_seal(h, pn, frames):
    pn_bytes = pn.to_bytes(h["pnl"], "big")
    length = h["pnl"] + len(frames) + 16
    hdr = bytes([h["first"]]) + h["pre"] + struct.pack("!H", 0x4000 | length) + pn_bytes
    nonce = bytes(a ^ b for a, b in zip(h["iv"], pn.to_bytes(12, "big")))
    ct = AESGCM(h["key"]).encrypt(nonce, frames, hdr)
    pn_off = len(hdr) - h["pnl"]
    mask = hp_mask(h["hp"], ct[4 - h["pnl"]:20 - h["pnl"]])
    out = bytearray(hdr + ct)
    out[0] ^= mask[0] & 0x0F
    for k in range(h["pnl"]):
        out[pn_off + k] ^= mask[1 + k]
    return bytes(out)


def strip_padding(plain):
    """Keep every frame but PADDING (0x00). Frames in a client's first Initial: PADDING,
    PING (0x01), CRYPTO (0x06: offset, length, data) -- RFC 9000 s19."""
    out, p = b"", 0
    while p < len(plain):
        t = plain[p]
        if t == 0x00:
            p += 1
        elif t == 0x01:
            out += plain[p:p + 1]
            p += 1
        elif t == 0x06:
            _, q = varint(plain, p + 1)
            n, q = varint(plain, q)
            out += plain[p:q + n]
            p = q + n
        else:
            raise ValueError("unexpected frame 0x%02x in the first Initial" % t)
    return out


_, arecs = read_pcap("quic-aioquic.pcap")
ap = l4_packets("quic-aioquic.pcap")
d0 = ap[0]["payload"]
assert ap[0]["dport"] == 443 and quic_long(d0)["type"] == "initial"
h, pn, plain, used = initial_open(d0)
assert set(d0[used:]) <= {0}, "aioquic pads the datagram with zero bytes after its Initial"
frames = strip_padding(plain)
initial = initial_seal(h, pn, frames)
assert initial_open(initial)[2] == frames
assert frames != plain or initial == d0[:used], "re-sealing must reproduce the captured packet"
rest = len(d0) - len(initial)                       # keep the datagram at its original 1200 bytes
dl = len(h["dcid"])
sc = h["pre"][6 + dl:6 + dl + h["pre"][5 + dl]]           # pre = version, dcid len, dcid, scid len, scid, token
zrtt_hdr = bytes([0xC0 | (1 << 4) | 1]) + h["pre"][:4] + bytes([dl]) + h["dcid"] + bytes([len(sc)]) + sc
zlen = rest - len(zrtt_hdr) - 2
zrtt = zrtt_hdr + struct.pack("!H", 0x4000 | zlen) + prand("quic-coalesced/0rtt", zlen)
dgram = initial + zrtt
assert len(dgram) == len(d0) and quic_long(zrtt)["type"] == "0rtt"
ip0 = dpkt.ethernet.Ethernet(arecs[0][2]).data
frame0 = eth(ETH_IP4, ipv4(ip0.src, ip0.dst, 17, udp(ip0.src, ip0.dst, ap[0]["sport"], 443, dgram), ident=ip0.id),
             b"\0" * 6, b"\0" * 6)
write_pcap("quic-coalesced.pcap", [(arecs[0][0], arecs[0][1], frame0)] + list(arecs[1:]))
ce = dict(EXPECTED["quic-aioquic.pcap"]["flows"][0])
ce.update({"quic_coalesced": ["initial", "0rtt"],
           "note": "first datagram = Initial (hello, no PADDING, %d bytes) + 0-RTT packet (%d bytes, random); "
                   "walk packets by their Length field" % (len(initial), len(zrtt))})
qts = tshark_quic("quic-coalesced.pcap")
if qts is not None and not any(r["tls.handshake.extensions_server_name"] == ce["sni"] for r in qts):
    sys.exit("quic-coalesced.pcap: tshark finds no hello")
derived("quic-coalesced.pcap", "quic-aioquic.pcap with the first Initial re-encrypted without PADDING and "
        "coalesced with a 0-RTT packet in the same datagram", [ce])

# ------------------------------------------------------------ expected.json
for v in EXPECTED.values():
    v.setdefault("error", None)
    v.setdefault("warning", None)
meta = {"_about": "Ground truth written by capture.sh (manifest.tsv: what each client was told to send) "
                  "and derive.py (what it built). Not produced by any sensor. ja3/ja3_full come from tshark "
                  "(independent reader); JA4 is absent because this tshark has no tls.handshake.ja4 field. "
                  "vlan = list of VLAN ids outermost first, or null. client/server are the inner flow.",
        "_tshark": tshark_version()}
with open("expected.json", "w") as f:
    json.dump(dict(meta, files=dict(sorted(EXPECTED.items()))), f, indent=1, sort_keys=False)
    f.write("\n")
print("derive.py: wrote %d files + expected.json" % (len(EXPECTED) - len(REAL) - len(REAL2)))
