#!/usr/bin/env python3
"""derive.py - build edge-case pcaps and expected.json from the real captures.

    pip install dpkt==1.9.8         # packet decoding + Internet checksum
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
print("derive.py: wrote %d files + expected.json" % (len(EXPECTED) - len(REAL)))
