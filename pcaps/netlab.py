#!/usr/bin/env python3
"""netlab.py - the small local peers that capture-quic.sh talks to.

    pip install aioquic==1.7.2 dnslib==0.9.26

Every server binds to a loopback address (127.0.0.1 / 127.0.0.2) and is meant
to run inside the private network namespace capture-quic.sh creates; nothing
here ever reaches another host. Sub-commands:

  h3server CERT KEY PORT [retry]   HTTP/3 server (aioquic), answers every request
                                    with 200 and a short body; "retry" makes it
                                    send a Retry packet first (RFC 9000 s8.1)
  h3client PORT SNI [v2]           aioquic HTTP/3 client: one GET /, ALPN h3;
                                    "v2" sends its first Initial as QUIC v2
                                    (RFC 9369, version 0x6b3343cf)
  dnsserver                        authoritative stand-in on 127.0.0.1:53 UDP+TCP
                                    (dnslib) with the zone in ZONE below
  dotserver CERT KEY               DNS over TLS (RFC 7858) on 127.0.0.1:853, same zone
  waserver / waclient ADDR PORT    a TCP peer pair speaking the first frames of
                                    WhatsApp's chat protocol (see wa_preface())
  stunserver / stunclient          RFC 5389 Binding request/response on UDP 3478
"""
import asyncio
import base64
import hashlib
import os
import socket
import ssl
import struct
import sys
import zlib

# ------------------------------------------------------------------ DNS zone
# ECHConfigList published in the HTTPS record of chatgpt.com. Layout from the
# TLS ECH draft (draft-ietf-tls-esni-18 s4, "ECHConfig"): version 0xfe0d,
# length, HpkeKeyConfig {config_id, kem_id, public_key<1..2^16-1>,
# cipher_suites<4..2^16-4> of (kdf_id, aead_id)}, maximum_name_length,
# public_name<1..255>, extensions<0..2^16-1>; the list is prefixed by a
# 2-byte length. The key is 32 fixed bytes (not a usable key: nobody decrypts).
ECH_CONFIG_ID = 0x5A
ECH_PUBLIC_NAME = b"cloudflare-ech.com"


def ech_config_list():
    pub = hashlib.sha256(b"shadowtap test ECH key").digest()
    hpke = (struct.pack("!BH", ECH_CONFIG_ID, 0x0020)            # DHKEM(X25519, HKDF-SHA256)
            + struct.pack("!H", len(pub)) + pub
            + struct.pack("!HHH", 4, 0x0001, 0x0001))            # HKDF-SHA256, AES-128-GCM
    contents = hpke + struct.pack("!BB", 0, len(ECH_PUBLIC_NAME)) + ECH_PUBLIC_NAME + struct.pack("!H", 0)
    config = struct.pack("!HH", 0xFE0D, len(contents)) + contents
    return struct.pack("!H", len(config)) + config


def https_rdata():
    """SVCB/HTTPS RDATA (RFC 9460 s2.2): priority 1, target ".", alpn=h3,h2, ech=..."""
    alpn = b"".join(bytes([len(a)]) + a for a in (b"h3", b"h2"))
    ech = ech_config_list()
    return (struct.pack("!H", 1) + b"\x00"
            + struct.pack("!HH", 1, len(alpn)) + alpn          # key 1 = alpn
            + struct.pack("!HH", 5, len(ech)) + ech)            # key 5 = ech


ZONE = [  # (name, type, data)
    ("web.whatsapp.com", "CNAME", "mmx-ds.cdn.whatsapp.net"),
    ("mmx-ds.cdn.whatsapp.net", "A", "127.0.0.1"),
    ("mmx-ds.cdn.whatsapp.net", "AAAA", "::1"),
    ("www.dropbox.com", "CNAME", "www-env.dropbox-dns.com"),
    ("www-env.dropbox-dns.com", "A", "127.0.0.1"),
    ("www-env.dropbox-dns.com", "AAAA", "::1"),
    ("mail.proton.me", "A", "127.0.0.1"),
    ("chatgpt.com", "A", "127.0.0.1"),
    ("chatgpt.com", "HTTPS", "raw"),
    ("g.whatsapp.net", "A", "127.0.0.2"),
]


def dns_resolver():
    from dnslib import AAAA, CNAME, QTYPE, RCODE, RD, RR, A
    from dnslib.server import BaseResolver

    class Zone(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            qname = str(request.q.qname).rstrip(".").lower()
            qtype = QTYPE[request.q.qtype]
            name, seen = qname, 0
            while seen < 8:
                seen += 1
                rrs = [z for z in ZONE if z[0] == name]
                if not rrs:
                    break
                cname = [z for z in rrs if z[1] == "CNAME"]
                if cname and qtype != "CNAME":
                    reply.add_answer(RR(name + ".", QTYPE.CNAME, ttl=300, rdata=CNAME(cname[0][2] + ".")))
                    name = cname[0][2]
                    continue
                for n, t, d in rrs:
                    if t != qtype:
                        continue
                    rd = {"A": lambda: A(d), "AAAA": lambda: AAAA(d),
                          "HTTPS": lambda: RD(https_rdata())}[t]()
                    reply.add_answer(RR(n + ".", getattr(QTYPE, t), ttl=300, rdata=rd))
                break
            if not any(z[0] == qname for z in ZONE):
                reply.header.rcode = RCODE.NXDOMAIN
            return reply
    return Zone()


def dns_stream_server(port, ctx=None):
    """DNS over a byte stream (RFC 1035 s4.2.2 / RFC 7766: 2-byte length prefix),
    any number of queries per connection; with ctx, over TLS (RFC 7858)."""
    from dnslib import DNSRecord
    r = dns_resolver()

    async def conn(reader, writer):
        try:
            while True:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
                q = DNSRecord.parse(await reader.readexactly(n))
                a = r.resolve(q, None).pack()
                writer.write(struct.pack("!H", len(a)) + a)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        writer.close()

    async def main():
        srv = await asyncio.start_server(conn, "127.0.0.1", port, ssl=ctx)
        await srv.serve_forever()
    asyncio.run(main())


def dnsserver():
    """UDP via dnslib's server thread; TCP by dns_stream_server (dnslib's own TCP
    handler closes after one answer, dig +keepopen wants several)."""
    from dnslib.server import DNSLogger, DNSServer
    log = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    DNSServer(dns_resolver(), port=53, address="127.0.0.1", logger=log).start_thread()
    print("dnsserver: ready", flush=True)
    dns_stream_server(53)


def dotserver(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["dot"])
    print("dotserver: ready", flush=True)
    dns_stream_server(853, ctx)


# ------------------------------------------------------------------ HTTP/3
def h3server(cert, key, port, retry=False):
    from aioquic.asyncio import QuicConnectionProtocol, serve
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import ProtocolNegotiated

    class H3(QuicConnectionProtocol):
        h3 = None

        def quic_event_received(self, event):
            if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
                self.h3 = H3Connection(self._quic)
            if self.h3 is None:
                return
            for ev in self.h3.handle_event(event):
                if isinstance(ev, HeadersReceived):
                    body = b"<html><body>shadowtap h3 test</body></html>\n"
                    self.h3.send_headers(ev.stream_id, [(b":status", b"200"), (b"content-type", b"text/html"),
                                                        (b"content-length", str(len(body)).encode())])
                    self.h3.send_data(ev.stream_id, body, end_stream=True)
            self.transmit()

    async def main():
        cfg = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        cfg.load_cert_chain(cert, key)
        await serve("127.0.0.1", port, configuration=cfg, create_protocol=H3, retry=retry)
        print("h3server: ready on udp %d%s" % (port, " (retry)" if retry else ""), flush=True)
        await asyncio.Future()
    asyncio.run(main())


def h3client(port, sni, v2=False):
    from aioquic.asyncio import QuicConnectionProtocol, connect
    from aioquic.h3.connection import H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.packet import QuicProtocolVersion

    class Client(QuicConnectionProtocol):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.h3 = H3Connection(self._quic)
            self.done = asyncio.get_running_loop().create_future()
            self.status = None

        def quic_event_received(self, event):
            for ev in self.h3.handle_event(event):
                if isinstance(ev, HeadersReceived):
                    self.status = dict(ev.headers).get(b":status")
                if isinstance(ev, (HeadersReceived, DataReceived)) and ev.stream_ended and not self.done.done():
                    self.done.set_result(True)

        async def get(self):
            sid = self._quic.get_next_available_stream_id()
            self.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", sni.encode()),
                                       (b":path", b"/"), (b"user-agent", b"shadowtap-test aioquic")], end_stream=True)
            self.transmit()
            await asyncio.wait_for(self.done, 10)

    async def main():
        cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name=sni,
                                verify_mode=ssl.CERT_NONE)   # self-signed test certificate
        if v2:
            cfg.supported_versions = [QuicProtocolVersion.VERSION_2]
        async with connect("127.0.0.1", port, configuration=cfg, create_protocol=Client) as c:
            await c.get()
            print("h3client: %s %s version 0x%08x" % (sni, c.status.decode(), c._quic._version), flush=True)
            c.close()
            await c.wait_closed()
    asyncio.run(main())


# ------------------------------------------------------------------ WhatsApp preface
def wa_preface():
    """First bytes a WhatsApp client sends on its chat connection (port 443 or 5222):
    the 4-byte connection header "WA" (0x57 0x41), a protocol byte and a dictionary
    version (6 and 3 in current clients), then Noise-XX handshake frames, each
    prefixed by a 3-byte big-endian length. The first frame is a HandshakeMessage
    protobuf whose field 2 (clientHello) holds field 1 (ephemeral, 32 bytes).
    Facts from open reimplementations (whatsmeow socket/constants.go WAConnHeader,
    Baileys NOISE_WA_HEADER); no code taken. The key here is random bytes."""
    hello = b"\x12\x22\x0a\x20" + os.urandom(32)
    return b"WA\x06\x03" + len(hello).to_bytes(3, "big") + hello


def waserver(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(4)
    print("waserver: ready", flush=True)
    while True:
        c, _ = s.accept()
        c.recv(4096)
        # serverHello: field 3 {ephemeral 32, static 48 (encrypted), payload ~ 200 (encrypted)}
        inner = b"\x0a\x20" + os.urandom(32) + b"\x12\x30" + os.urandom(48) + b"\x1a\xc8\x01" + os.urandom(200)
        msg = b"\x1a" + bytes([0x80 | (len(inner) & 0x7F), len(inner) >> 7]) + inner   # protobuf varint length
        c.sendall(len(msg).to_bytes(3, "big") + msg)
        c.recv(4096)
        c.close()


def waclient(addr, port):
    s = socket.create_connection((addr, int(port)), timeout=5)
    s.sendall(wa_preface())
    n = s.recv(4096)
    print("waclient: got %d bytes" % len(n), flush=True)
    s.close()


# ------------------------------------------------------------------ STUN
MAGIC = 0x2112A442


def stun_msg(mtype, txid, attrs):
    """RFC 5389 s6: type, length, magic cookie, 96-bit transaction id, then TLV
    attributes padded to 4 bytes; FINGERPRINT (s15.5) = CRC-32 ^ 0x5354554e last."""
    body = b"".join(struct.pack("!HH", t, len(v)) + v + b"\0" * (-len(v) % 4) for t, v in attrs)
    hdr = struct.pack("!HHI", mtype, len(body) + 8, MAGIC) + txid
    crc = (zlib.crc32(hdr + body) ^ 0x5354554E) & 0xFFFFFFFF
    return hdr + body + struct.pack("!HHI", 0x8028, 4, crc)


STUN_CLIENT_SOFTWARE = b"shadowtap-test STUN client 1.0"
STUN_SERVER_SOFTWARE = b"shadowtap-test STUN responder 1.0"


def stunserver():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 3478))
    print("stunserver: ready", flush=True)
    while True:
        d, (ip, port) = s.recvfrom(2048)
        if len(d) < 20 or struct.unpack("!HHI", d[:8])[2] != MAGIC or struct.unpack("!H", d[:2])[0] != 0x0001:
            continue
        txid = d[8:20]
        xaddr = struct.pack("!BBH", 0, 1, port ^ (MAGIC >> 16)) + \
            struct.pack("!I", struct.unpack("!I", socket.inet_aton(ip))[0] ^ MAGIC)
        s.sendto(stun_msg(0x0101, txid, [(0x0020, xaddr), (0x8022, STUN_SERVER_SOFTWARE)]), (ip, port))


def stunclient():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    txid = os.urandom(12)
    s.sendto(stun_msg(0x0001, txid, [(0x8022, STUN_CLIENT_SOFTWARE)]), ("127.0.0.1", 3478))
    d = s.recv(2048)
    assert d[8:20] == txid and struct.unpack("!H", d[:2])[0] == 0x0101
    print("stunclient: binding success, %d bytes" % len(d), flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "h3server":
        h3server(args[0], args[1], int(args[2]), retry=args[3:] == ["retry"])
    elif cmd == "h3client":
        h3client(int(args[0]), args[1], v2=args[2:] == ["v2"])
    elif cmd == "dnsserver":
        dnsserver()
    elif cmd == "dotserver":
        dotserver(args[0], args[1])
    elif cmd == "waserver":
        waserver(args[0], args[1])
    elif cmd == "waclient":
        waclient(args[0], args[1])
    elif cmd == "stunserver":
        stunserver()
    elif cmd == "stunclient":
        stunclient()
    elif cmd == "ech-config-list":
        print(base64.b64encode(ech_config_list()).decode())
    else:
        sys.exit("unknown command " + cmd)
