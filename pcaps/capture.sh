#!/usr/bin/env bash
# capture.sh - record real TLS ClientHellos from local clients for shadowtap tests.
#
# WHAT IT DOES
#   Creates a private network namespace whose loopback has MTU 1500 (and no
#   TSO/GSO/GRO, so the wire image is what a real 1500-MTU link would carry),
#   starts TLS servers inside it with a throw-away self-signed certificate,
#   and captures with `tcpdump -i lo -s 0` the handshakes of:
#     curl (TLS 1.3 and --tls-max 1.2), openssl s_client (with and without
#     SNI), a Python `ssl` client, headless chromium (post-quantum key share,
#     ClientHello spans two TCP segments) and curl over IPv6 (::1).
#   Every packet stays inside the namespace (127.0.0.1 / ::1); nothing leaves
#   the machine. No real user data is involved.
#
# OUTPUT (next to this script, overwritten on every run = idempotent)
#   curl-tls13.pcap curl-tls12.pcap openssl-s_client.pcap openssl-nosni.pcap
#   python-ssl.pcap chromium-pq.pcap curl-ipv6.pcap
#     classic pcap (microsecond), link type 1 (DLT_EN10MB): tcpdump on Linux
#     "lo" writes Ethernet frames with all-zero MAC addresses.
#   manifest.tsv  what each client was told to send (tool, version, SNI, ALPN,
#                 max TLS version); derive.py turns it into expected.json.
#
# NEEDS
#   root (network namespaces, tcpdump), Debian packages:
#     apt-get install tcpdump openssl curl chromium python3 iproute2 ethtool
#   Runs in about 15-30 seconds (chromium start-up dominates).
#
# USAGE
#   sudo ./capture.sh && python3 derive.py
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

if [[ $(id -u) -ne 0 ]]; then
  echo "capture.sh: must run as root (network namespace + tcpdump)" >&2
  exit 1
fi
for tool in tcpdump openssl curl chromium python3 ip ethtool; do
  command -v "$tool" >/dev/null || { echo "capture.sh: missing $tool" >&2; exit 1; }
done

NS="shadowtap-cap-$$"
WORK="$(mktemp -d)"
PIDS=()

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
# no segmentation offloads: segments are cut at the MSS (1448 with TCP
# timestamps) by the stack itself, as on a real MTU-1500 link. Note: lo keeps
# checksum offload, so TCP checksums in these captures are not filled in.
nsx ethtool -K lo tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
nsx sysctl -qw net.ipv6.conf.lo.disable_ipv6=0 || true

# ---------------------------------------------------------------- certificate
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=shadowtap-test" \
  -addext "subjectAltName=DNS:web.whatsapp.com,DNS:www.dropbox.com,DNS:drive.google.com,DNS:mail.proton.me,DNS:chatgpt.com,IP:127.0.0.1,IP:::1" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

# ---------------------------------------------------------------- servers
# openssl s_server -www answers any GET with an HTTP/1.0 status page.
# It offers ALPN http/1.1 and h2 but prefers http/1.1 (server order), so the
# HTTP exchange after the handshake works for every client.
start_server() {  # $1 = accept spec (port or [::1]:port)
  # call `ip netns exec` directly (not through a function) so that $! is the
  # pid of the server itself (ip netns exec execs its command)
  ip netns exec "$NS" openssl s_server -quiet -www -accept "$1" -cert "$WORK/cert.pem" \
    -key "$WORK/key.pem" -alpn http/1.1,h2 </dev/null >/dev/null 2>&1 &
  PIDS+=($!)
}
start_server 8443            # IPv4 (and any) : curl, s_client, python
start_server 8444            # chromium
start_server "[::1]:8445"    # IPv6 curl
sleep 1

# ---------------------------------------------------------------- capture helpers
TCPDUMP_PID=""
cap_start() {  # $1 = output file, $2 = BPF filter
  ip netns exec "$NS" tcpdump -i lo -s 0 -U --immediate-mode -Z root -w "$WORK/$1" "$2" >/dev/null 2>&1 &
  TCPDUMP_PID=$!
  PIDS+=("$TCPDUMP_PID")
  sleep 1   # let tcpdump open the socket
}
cap_stop() {  # $1 = output file
  sleep 1   # let the last packets (FIN/ACK) arrive
  kill -TERM "$TCPDUMP_PID" 2>/dev/null || true   # tcpdump flushes and exits
  wait "$TCPDUMP_PID" 2>/dev/null || true
  cp "$WORK/$1" "$HERE/$1"
  chmod 0644 "$HERE/$1"
}

SNIS=(web.whatsapp.com www.dropbox.com drive.google.com mail.proton.me chatgpt.com)
CURL_V="curl $(curl --version | head -1 | awk '{print $2}')"
OPENSSL_V="$(openssl version | awk '{print $1" "$2}')"
PY_V="python $(python3 -c 'import sys,ssl;print(sys.version.split()[0]+" ("+ssl.OPENSSL_VERSION+")")')"
CHROMIUM_V="$(chromium --version 2>/dev/null | awk '{print $1" "$2}')"

# manifest: file <TAB> tool <TAB> sni (- = none) <TAB> alpn (comma list) <TAB> max TLS
MANIFEST="$WORK/manifest.tsv"
printf '# file\ttool\tsni\talpn\ttls_max\n' >"$MANIFEST"
note() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$MANIFEST"; }

# a short GET keeps the capture to the handshake plus a little data
CURL_OPTS=(-sS -k -o /dev/null --max-time 10)

# ---------------------------------------------------------------- curl TLS 1.3
cap_start curl-tls13.pcap "tcp port 8443"
for sni in "${SNIS[@]}"; do
  nsx curl -w "%{http_code} " "${CURL_OPTS[@]}" --resolve "$sni:8443:127.0.0.1" "https://$sni:8443/" || true
  note curl-tls13.pcap "$CURL_V" "$sni" "h2,http/1.1" "1.3"
done
cap_stop curl-tls13.pcap

# ---------------------------------------------------------------- curl TLS <= 1.2
cap_start curl-tls12.pcap "tcp port 8443"
for sni in "${SNIS[@]}"; do
  nsx curl -w "%{http_code} " "${CURL_OPTS[@]}" --tls-max 1.2 --resolve "$sni:8443:127.0.0.1" "https://$sni:8443/" || true
  note curl-tls12.pcap "$CURL_V" "$sni" "h2,http/1.1" "1.2"
done
cap_stop curl-tls12.pcap

# ---------------------------------------------------------------- openssl s_client
cap_start openssl-s_client.pcap "tcp port 8443"
for sni in web.whatsapp.com chatgpt.com; do
  printf 'GET / HTTP/1.0\r\n\r\n' | nsx timeout 10 openssl s_client -quiet -connect 127.0.0.1:8443 \
    -servername "$sni" -alpn h2,http/1.1 >/dev/null 2>&1 || true
  note openssl-s_client.pcap "$OPENSSL_V s_client" "$sni" "h2,http/1.1" "1.3"
done
cap_stop openssl-s_client.pcap

cap_start openssl-nosni.pcap "tcp port 8443"
printf 'GET / HTTP/1.0\r\n\r\n' | nsx timeout 10 openssl s_client -quiet -connect 127.0.0.1:8443 \
  -noservername -alpn h2,http/1.1 >/dev/null 2>&1 || true
note openssl-nosni.pcap "$OPENSSL_V s_client" "-" "h2,http/1.1" "1.3"
cap_stop openssl-nosni.pcap

# ---------------------------------------------------------------- python ssl
cap_start python-ssl.pcap "tcp port 8443"
for sni in www.dropbox.com mail.proton.me; do
  nsx python3 - "$sni" <<'EOF' || true
import socket, ssl, sys
sni = sys.argv[1]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE          # self-signed test certificate
ctx.set_alpn_protocols(["h2", "http/1.1"])
with socket.create_connection(("127.0.0.1", 8443), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname=sni) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: " + sni.encode() + b"\r\n\r\n")
        s.recv(200)
EOF
  note python-ssl.pcap "$PY_V" "$sni" "h2,http/1.1" "1.3"
done
cap_stop python-ssl.pcap

# ---------------------------------------------------------------- chromium
# X25519MLKEM768 key share makes the ClientHello ~1.8 KB -> 2 segments at MSS 1460
cap_start chromium-pq.pcap "tcp port 8444"
CHROME_DIR="$(mktemp -d -p "$WORK")"
nsx timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-features=DnsOverHttps --user-data-dir="$CHROME_DIR" \
  --host-resolver-rules="MAP * 127.0.0.1" --ignore-certificate-errors \
  --dump-dom "https://web.whatsapp.com:8444/" >/dev/null 2>&1 || true
note chromium-pq.pcap "$CHROMIUM_V" "web.whatsapp.com" "h2,http/1.1" "1.3"
cap_stop chromium-pq.pcap

# ---------------------------------------------------------------- curl IPv6
cap_start curl-ipv6.pcap "tcp port 8445"
nsx curl -w "%{http_code} " "${CURL_OPTS[@]}" --resolve "drive.google.com:8445:[::1]" "https://drive.google.com:8445/" || true
note curl-ipv6.pcap "$CURL_V" "drive.google.com" "h2,http/1.1" "1.3"
cap_stop curl-ipv6.pcap

cp "$MANIFEST" "$HERE/manifest.tsv"
echo "capture.sh: done"
ls -l "$HERE"/*.pcap
