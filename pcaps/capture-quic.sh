#!/usr/bin/env bash
# capture-quic.sh - record real QUIC, DNS, DoT, STUN and "named by DNS" flows
# for shadowtap tests. Separate from capture.sh (the TLS-over-TCP captures),
# which it never touches; run either on its own.
#
# WHAT IT DOES
#   Creates a fresh private network namespace whose loopback has MTU 1500 (no
#   TSO/GSO/GRO) and 127.0.0.2 as a second address, starts the local peers of
#   netlab.py inside it (aioquic HTTP/3 server on UDP 443 and 8443 [Retry],
#   dnslib DNS server on 53, DNS-over-TLS on 853, a WhatsApp-preface TCP peer
#   on 127.0.0.2:443, a STUN responder on 3478), with a throw-away self-signed
#   ECDSA certificate, and captures with `tcpdump -i lo -s 0`:
#     headless chromium forced onto QUIC (https://web.whatsapp.com/),
#     the aioquic client (QUIC v1, v1 + Retry, v2), dig over UDP and TCP,
#     kdig over TLS, a DNS lookup followed by a non-TLS TCP flow, STUN.
#   Every packet stays inside the namespace; nothing leaves the machine; no
#   real user data is involved.
#
# OUTPUT (next to this script, overwritten on every run = idempotent)
#   quic-chromium.pcap quic-aioquic.pcap quic-retry.pcap quic-v2.pcap
#   dns-udp.pcap dns-tcp.pcap dns-https-ech.pcap dns-then-tls.pcap dot.pcap
#   stun.pcap   classic pcap (microsecond), link type 1 (Ethernet, zero MACs)
#   manifest-quic.tsv   what each client was told to do (tool + version,
#                       file, kind, name, detail); derive.py reads it.
#
# NEEDS
#   root; Debian: apt-get install tcpdump openssl chromium python3 iproute2
#     ethtool bind9-dnsutils knot-dnsutils
#   PyPI: pip install aioquic==1.7.2 dnslib==0.9.26
#   Runs in about 30-60 s (chromium start-up dominates).
#
# USAGE
#   sudo ./capture-quic.sh && python3 derive.py
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

if [[ $(id -u) -ne 0 ]]; then
  echo "capture-quic.sh: must run as root (network namespace + tcpdump)" >&2
  exit 1
fi
for tool in tcpdump openssl chromium python3 ip ethtool dig kdig; do
  command -v "$tool" >/dev/null || { echo "capture-quic.sh: missing $tool" >&2; exit 1; }
done
python3 -c "import aioquic, dnslib" || { echo "capture-quic.sh: pip install aioquic dnslib" >&2; exit 1; }

NS="shadowtap-quic-$$"
WORK="$(mktemp -d)"
PIDS=()
PY="$(command -v python3)"

cleanup() {
  # stop only the processes this script started, by pid
  for p in "${PIDS[@]:-}"; do
    [[ -n "$p" ]] && kill "$p" 2>/dev/null || true
  done
  sleep 0.3
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

nsx() { ip netns exec "$NS" "$@"; }

# ---------------------------------------------------------------- namespace
ip netns add "$NS"
ip -n "$NS" link set lo mtu 1500
ip -n "$NS" link set lo up
ip -n "$NS" addr add 127.0.0.2/8 dev lo 2>/dev/null || true   # the "other server" address
nsx ethtool -K lo tso off gso off gro off tx off rx off >/dev/null 2>&1 || true

# ---------------------------------------------------------------- certificate
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=shadowtap-test" \
  -addext "subjectAltName=DNS:web.whatsapp.com,DNS:www.dropbox.com,DNS:cloudflare-dns.com,IP:127.0.0.1" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
# chromium's QUIC stack may refuse the self-signed certificate even with
# --ignore-certificate-errors; pinning its SPKI hash makes it accept it.
SPKI="$(openssl x509 -in "$WORK/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der \
  | openssl dgst -sha256 -binary | base64)"

# ---------------------------------------------------------------- servers
start() {  # run a netlab.py server inside the namespace; $! is its pid
  ip netns exec "$NS" "$PY" "$HERE/netlab.py" "$@" >"$WORK/$1.$$.$RANDOM.log" 2>&1 &
  PIDS+=($!)
}
start h3server "$WORK/cert.pem" "$WORK/key.pem" 443
start h3server "$WORK/cert.pem" "$WORK/key.pem" 8443 retry
start dnsserver
start dotserver "$WORK/cert.pem" "$WORK/key.pem"
start waserver 127.0.0.2 443
start stunserver
sleep 2

# ---------------------------------------------------------------- capture helpers
TCPDUMP_PID=""
cap_start() {  # $1 = output file, $2 = BPF filter
  ip netns exec "$NS" tcpdump -i lo -s 0 -U --immediate-mode -Z root -w "$WORK/$1" "$2" >/dev/null 2>&1 &
  TCPDUMP_PID=$!
  PIDS+=("$TCPDUMP_PID")
  sleep 1
}
cap_stop() {  # $1 = output file
  sleep 1
  kill -TERM "$TCPDUMP_PID" 2>/dev/null || true
  wait "$TCPDUMP_PID" 2>/dev/null || true
  cp "$WORK/$1" "$HERE/$1"
  chmod 0644 "$HERE/$1"
}

CHROMIUM_V="$(chromium --version 2>/dev/null | awk '{print $1" "$2}')"
AIOQUIC_V="aioquic $("$PY" -c 'import aioquic;print(aioquic.__version__)')"
DIG_V="dig $(dig -v 2>&1 | awk '{print $2}')"
KDIG_V="kdig $(kdig --version | awk '{print $NF}')"
PY_V="python $("$PY" -c 'import sys;print(sys.version.split()[0])')"

# manifest: file <TAB> tool <TAB> kind <TAB> name <TAB> detail
MANIFEST="$WORK/manifest-quic.tsv"
printf '# file\ttool\tkind\tname\tdetail\n' >"$MANIFEST"
note() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$MANIFEST"; }

# ---------------------------------------------------------------- chromium over QUIC
cap_start quic-chromium.pcap "udp port 443"
CHROME_DIR="$(mktemp -d -p "$WORK")"
nsx timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-features=DnsOverHttps --user-data-dir="$CHROME_DIR" \
  --enable-quic --origin-to-force-quic-on=web.whatsapp.com:443 \
  --host-resolver-rules="MAP * 127.0.0.1" --ignore-certificate-errors \
  --ignore-certificate-errors-spki-list="$SPKI" \
  --dump-dom "https://web.whatsapp.com/" >"$WORK/chromium.out" 2>/dev/null || true
grep -q "shadowtap h3 test" "$WORK/chromium.out" || { echo "capture-quic.sh: chromium got no HTTP/3 answer" >&2; exit 1; }
note quic-chromium.pcap "$CHROMIUM_V" quic web.whatsapp.com "v1 h3"
cap_stop quic-chromium.pcap

# ---------------------------------------------------------------- aioquic client
cap_start quic-aioquic.pcap "udp port 443"
nsx "$PY" netlab.py h3client 443 www.dropbox.com
note quic-aioquic.pcap "$AIOQUIC_V" quic www.dropbox.com "v1 h3"
cap_stop quic-aioquic.pcap

cap_start quic-retry.pcap "udp port 8443"
nsx "$PY" netlab.py h3client 8443 www.dropbox.com
note quic-retry.pcap "$AIOQUIC_V" quic www.dropbox.com "v1 h3 retry"
cap_stop quic-retry.pcap

cap_start quic-v2.pcap "udp port 443"
nsx "$PY" netlab.py h3client 443 www.dropbox.com v2
note quic-v2.pcap "$AIOQUIC_V" quic www.dropbox.com "v2 h3"
cap_stop quic-v2.pcap

# ---------------------------------------------------------------- DNS
DIG=(dig @127.0.0.1 +time=2 +tries=1)
cap_start dns-udp.pcap "port 53"
for q in "web.whatsapp.com A" "web.whatsapp.com AAAA" "www.dropbox.com A" "mail.proton.me A" "nosuch.example.com A"; do
  set -- $q
  nsx "${DIG[@]}" "$1" "$2" >/dev/null
  note dns-udp.pcap "$DIG_V" dns-udp "$1" "$2"
done
cap_stop dns-udp.pcap

# several queries on one TCP connection (dig +keepopen reuses the socket)
cap_start dns-tcp.pcap "port 53"
nsx "${DIG[@]}" +tcp +keepopen web.whatsapp.com A www.dropbox.com AAAA g.whatsapp.net A >/dev/null
for q in "web.whatsapp.com A" "www.dropbox.com AAAA" "g.whatsapp.net A"; do
  set -- $q
  note dns-tcp.pcap "$DIG_V" dns-tcp "$1" "$2"
done
cap_stop dns-tcp.pcap

cap_start dns-https-ech.pcap "port 53"
nsx "${DIG[@]}" chatgpt.com HTTPS >/dev/null
note dns-https-ech.pcap "$DIG_V" dns-udp chatgpt.com HTTPS
cap_stop dns-https-ech.pcap

# a lookup, then a TCP flow to the looked-up address that is not TLS
cap_start dns-then-tls.pcap "port 53 or host 127.0.0.2"
ADDR="$(nsx "${DIG[@]}" +short g.whatsapp.net A | tail -1)"   # one lookup, answer 127.0.0.2
note dns-then-tls.pcap "$DIG_V" dns-udp g.whatsapp.net A
nsx "$PY" netlab.py waclient "$ADDR" 443
note dns-then-tls.pcap "$PY_V netlab.py waclient" whatsapp-noise g.whatsapp.net "$ADDR:443"
cap_stop dns-then-tls.pcap

# ---------------------------------------------------------------- DNS over TLS
cap_start dot.pcap "tcp port 853"
nsx kdig @127.0.0.1 -p 853 +tls +tls-sni=cloudflare-dns.com +time=2 +retry=0 +keepopen \
  web.whatsapp.com A www.dropbox.com A >/dev/null
note dot.pcap "$KDIG_V" dot cloudflare-dns.com "queries web.whatsapp.com A, www.dropbox.com A"
cap_stop dot.pcap

# ---------------------------------------------------------------- STUN
cap_start stun.pcap "udp port 3478"
nsx "$PY" netlab.py stunclient
note stun.pcap "$PY_V netlab.py stunclient" stun - "Binding request/response, SOFTWARE"
cap_stop stun.pcap

cp "$MANIFEST" "$HERE/manifest-quic.tsv"
echo "capture-quic.sh: done"
ls -l "$HERE"/quic-*.pcap "$HERE"/dns-*.pcap "$HERE"/dot.pcap "$HERE"/stun.pcap
