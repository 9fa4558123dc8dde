#!/usr/bin/env bash
# capture-kernel.sh - evasion-shaped traffic cut by the Linux kernel itself.
#
# WHAT IT DOES
#   Two private network namespaces (client, server) joined by two veth pairs:
#     k4c <-> k4s  MTU 576,  IPv4 10.20.1.21 -> 10.20.1.80
#     k6c <-> k6s  MTU 1280, IPv6 2001:db8:1::21 -> 2001:db8:1::80
#   with no offloads (checksums filled in by the stack, no TSO/GSO/GRO), and
#   captures on the client side, one file per case:
#     kernel-udp4-frag.pcap      a 1,300-byte UDP datagram (aioquic's real hello in a
#                                QUIC v1 Initial) over MTU 576: the kernel cuts it
#                                into 3 IPv4 fragments; the server's 1,200-byte
#                                answer is fragmented too
#     kernel-udp6-frag.pcap      the same datagram over MTU 1280: 2 IPv6 fragments
#     kernel-tcp-1byte.pcap      curl's real hello written one byte per send() with
#                                TCP_NODELAY (2 ms apart) to openssl s_server
#     kernel-tcp-mss88.pcap      the same hello in one send() on a socket with
#                                TCP_MAXSEG 88: the kernel cuts ~76-byte segments
#     kernel-openssl-maxfrag.pcap  openssl s_client -max_send_frag 512 with a long
#                                ALPN list: a ~700-byte hello in 2 TLS records (512 is
#                                OpenSSL's smallest fragment; -split_send_frag only
#                                splits application data for pipelining), then cut
#                                at the 524-byte MSS of the 576 link
#   Everything stays inside the namespaces; no real service is contacted.
#   The peers are kernel_peers.py (messages built by make.py's functions from
#   the real captures in ..), openssl s_server and s_client.
#
# OUTPUT (next to this script, overwritten on every run)
#   the 5 pcaps above (classic pcap, Ethernet, captured on k4c/k6c). Their
#   expected outcome is listed in make.py (KERNEL_FILES); re-run make.py
#   afterwards to rewrite expected.json. Not byte-identical between runs
#   (timestamps, ISNs, IP ids are the kernel's); ports and addresses are fixed.
#
# NEEDS
#   root; Debian: tcpdump openssl python3 python3-scapy python3-cryptography
#   iproute2 ethtool. About 15 seconds.
#
# USAGE
#   sudo ./capture-kernel.sh && python3 make.py
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
PY=${PYTHON:-python3}

if [[ $(id -u) -ne 0 ]]; then
  echo "capture-kernel.sh: must run as root (network namespaces + tcpdump)" >&2
  exit 1
fi
for tool in tcpdump openssl "$PY" ip ethtool timeout; do
  command -v "$tool" >/dev/null || { echo "capture-kernel.sh: missing $tool" >&2; exit 1; }
done

C="shadowtap-kc-$$"
S="shadowtap-ks-$$"
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
  # stop only the processes this script started, by pid
  for p in "${PIDS[@]:-}"; do
    [[ -n "$p" ]] && kill "$p" 2>/dev/null || true
  done
  sleep 0.3
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- namespaces
ip netns add "$C"
ip netns add "$S"
ip link add k4c netns "$C" type veth peer name k4s netns "$S"
ip link add k6c netns "$C" type veth peer name k6s netns "$S"
for ns in "$C" "$S"; do
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.tcp_autocorking=0 2>/dev/null || true
done
for dev in k4c k4s; do
  ns=$C; [[ $dev == *s ]] && ns=$S
  ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
  ip -n "$ns" link set "$dev" mtu 576
done
for dev in k6c k6s; do
  ns=$C; [[ $dev == *s ]] && ns=$S
  ip -n "$ns" link set "$dev" mtu 1280
done
ip -n "$C" addr add 10.20.1.21/24 dev k4c
ip -n "$S" addr add 10.20.1.80/24 dev k4s
ip -n "$C" addr add 2001:db8:1::21/64 dev k6c nodad
ip -n "$S" addr add 2001:db8:1::80/64 dev k6s nodad
for dev in k4c k6c; do ip netns exec "$C" ethtool -K "$dev" tx off rx off sg off tso off gso off gro off >/dev/null 2>&1 || true; done
for dev in k4s k6s; do ip netns exec "$S" ethtool -K "$dev" tx off rx off sg off tso off gso off gro off >/dev/null 2>&1 || true; done
for dev in k4c k6c; do ip -n "$C" link set "$dev" up; done
for dev in k4s k6s; do ip -n "$S" link set "$dev" up; done
sleep 1

# ---------------------------------------------------------------- certificate, TLS server
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=shadowtap-test" \
  -addext "subjectAltName=DNS:web.whatsapp.com" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
ip netns exec "$S" openssl s_server -quiet -www -accept 10.20.1.80:443 -cert "$WORK/cert.pem" -key "$WORK/key.pem" \
  -alpn http/1.1,h2 </dev/null >/dev/null 2>&1 &
PIDS+=($!)
sleep 1

# ---------------------------------------------------------------- capture helpers
TCPDUMP_PID=""
cap_start() {  # $1 = output file, $2 = interface, $3 = BPF filter
  ip netns exec "$C" tcpdump -i "$2" -s 0 -U --immediate-mode -Z root -w "$WORK/$1" "$3" >/dev/null 2>&1 &
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
V6ONLY='ip6 and (ip6[6] == 6 or ip6[6] == 17 or ip6[6] == 44)'

quic_case() {  # $1 file, $2 iface, $3 filter, $4 client addr, $5 client port, $6 server addr
  cap_start "$1" "$2" "$3"
  ip netns exec "$S" timeout 15 "$PY" "$HERE/kernel_peers.py" quic-server "$6" 443 &
  local srv=$!
  PIDS+=("$srv")
  sleep 0.5
  ip netns exec "$C" timeout 15 "$PY" "$HERE/kernel_peers.py" quic-client "$4" "$5" "$6" 443 1300
  wait "$srv"
  cap_stop "$1"
}

quic_case kernel-udp4-frag.pcap k4c ip 10.20.1.21 47001 10.20.1.80
quic_case kernel-udp6-frag.pcap k6c "$V6ONLY" 2001:db8:1::21 47002 2001:db8:1::80

cap_start kernel-tcp-1byte.pcap k4c ip
ip netns exec "$C" timeout 15 "$PY" "$HERE/kernel_peers.py" tcp-client 10.20.1.21 47003 10.20.1.80 443 1byte
cap_stop kernel-tcp-1byte.pcap

cap_start kernel-tcp-mss88.pcap k4c ip
ip netns exec "$C" timeout 15 "$PY" "$HERE/kernel_peers.py" tcp-client 10.20.1.21 47004 10.20.1.80 443 mss88
cap_stop kernel-tcp-mss88.pcap

ALPN="h2,http/1.1,http/1.0,spdy/3,spdy/2,spdy/1,h2c,h3,stun.turn,stun.nat-discovery,webrtc,c-webrtc,ftp,imap,pop3"
ALPN="$ALPN,managesieve,coap,xmpp-client,xmpp-server,acme-tls/1,mqtt,dot,ntske/1,sunrpc,smb,irc,nntp,nnsp,doq"
ALPN="$ALPN,sip/2,tds/8.0,dicom,postgresql,radius/1.0,radius/1.1,co,http/0.9,collectd/5,ldap"
cap_start kernel-openssl-maxfrag.pcap k4c ip
printf 'GET / HTTP/1.0\r\n\r\n' | ip netns exec "$C" timeout 10 openssl s_client -quiet -connect 10.20.1.80:443 \
  -bind 10.20.1.21:47005 -servername web.whatsapp.com -max_send_frag 512 -alpn "$ALPN" >/dev/null 2>&1 || true
cap_stop kernel-openssl-maxfrag.pcap

echo "capture-kernel.sh: done"
ls -l "$HERE"/kernel-*.pcap
