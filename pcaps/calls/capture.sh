#!/usr/bin/env bash
# capture.sh - record a real WebRTC call relayed by a real TURN server, for
# tests/calls.rs. Separate from ../capture.sh and ../capture-quic.sh; the
# snapshot tests read pcaps/ without recursing, so this folder is not theirs.
#
# WHAT IT DOES
#   Three private network namespaces: "srv" (10.30.0.1 and 10.30.1.1, routing
#   between the two others) runs Debian's coturn (TURN on UDP 3478, long-term
#   credentials shadowtap/calls, relaying on 10.30.0.1) and a TLS server on
#   443 that accepts connections and holds them; "a" (10.30.0.2) and "b"
#   (10.30.1.2) each run call.py: a TLS connection naming chat.signal.org to
#   srv:443 (standing in for the messenger's signalling; nothing is sent on
#   it), then an aiortc audio call (Opus in SRTP, ICE relay-only through the
#   TURN server), about 4 s, then hang up. tcpdump records srv's two links.
#   Nothing leaves the namespaces; no real user data is involved.
#
#   Then a second capture: "a" and "b" each open a TLS connection naming
#   teams.microsoft.com and send each other plain RTP (Opus, libavformat's RTP
#   muxer through PyAV, with RTCP on the next port) for 3 s: media without
#   STUN, as a SIP phone or a call set up elsewhere sends it.
#
# OUTPUT (next to this script, overwritten on every run)
#   webrtc-turn.pcap   the WebRTC call (Linux cooked v2, tcpdump -i any)
#   rtp-media.pcap     the plain RTP streams
#
# NEEDS
#   root; Debian: apt-get install coturn tcpdump openssl iproute2 python3
#   PyPI: pip install aiortc==1.16.0
#
# USAGE
#   sudo ./capture.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
[[ $(id -u) -eq 0 ]] || { echo "capture.sh: must run as root (network namespaces, tcpdump)" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in st-calls-a st-calls-b st-calls-srv; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for n in st-calls-srv st-calls-a st-calls-b; do ip netns del "$n" 2>/dev/null || true; ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add st-va type veth peer name st-va-srv
ip link add st-vb type veth peer name st-vb-srv
ip link set st-va netns st-calls-a
ip link set st-vb netns st-calls-b
ip link set st-va-srv netns st-calls-srv
ip link set st-vb-srv netns st-calls-srv
ip -n st-calls-srv addr add 10.30.0.1/24 dev st-va-srv
ip -n st-calls-srv addr add 10.30.1.1/24 dev st-vb-srv
ip -n st-calls-a addr add 10.30.0.2/24 dev st-va
ip -n st-calls-b addr add 10.30.1.2/24 dev st-vb
for l in "st-calls-srv st-va-srv" "st-calls-srv st-vb-srv" "st-calls-a st-va" "st-calls-b st-vb"; do
  set -- $l; ip -n "$1" link set "$2" up
done
ip -n st-calls-a route add default via 10.30.0.1
ip -n st-calls-b route add default via 10.30.1.1
ip netns exec st-calls-srv sysctl -q -w net.ipv4.ip_forward=1

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=chat.signal.org -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
ip netns exec st-calls-srv turnserver --listening-ip 10.30.0.1 --relay-ip 10.30.0.1 \
  --listening-port 3478 --lt-cred-mech --user shadowtap:calls --realm shadowtap.test \
  --no-tls --no-dtls --no-cli --allow-loopback-peers --allowed-peer-ip 10.30.0.0-10.30.1.255 \
  --log-file stdout --simple-log > "$WORK/turn.log" 2>&1 &
PIDS+=($!)
ip netns exec st-calls-srv python3 -c '
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s = socket.create_server(("0.0.0.0", 443))
def hold(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
        while t.recv(4096): pass
    except Exception: pass
while True:
    c, _ = s.accept(); threading.Thread(target=hold, args=(c,), daemon=True).start()
' "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/tls.log" 2>&1 &
PIDS+=($!)
sleep 1
ip netns exec st-calls-srv tcpdump -i any -s 0 -U -w "$WORK/call.pcap" 'not ip6' > "$WORK/tcpdump.log" 2>&1 &
TCPDUMP=$!
sleep 1
ip netns exec st-calls-b python3 call.py answer "$WORK" chat.signal.org 10.30.0.1:3478 &
B=$!
ip netns exec st-calls-a python3 call.py offer "$WORK" chat.signal.org 10.30.0.1:3478
wait "$B"
sleep 1
kill "$TCPDUMP"; wait "$TCPDUMP" 2>/dev/null || true
cp "$WORK/call.pcap" webrtc-turn.pcap
echo "capture.sh: wrote webrtc-turn.pcap ($(stat -c %s webrtc-turn.pcap) bytes)"

ip netns exec st-calls-srv tcpdump -i any -s 0 -U -w "$WORK/rtp.pcap" 'not ip6 and not arp' > "$WORK/tcpdump2.log" 2>&1 &
TCPDUMP=$!
sleep 1
ip netns exec st-calls-b python3 call.py rtp 10.30.1.1 teams.microsoft.com 10.30.0.2:5004 &
B=$!
ip netns exec st-calls-a python3 call.py rtp 10.30.0.1 teams.microsoft.com 10.30.1.2:5004
wait "$B"
sleep 1
kill "$TCPDUMP"; wait "$TCPDUMP" 2>/dev/null || true
cp "$WORK/rtp.pcap" rtp-media.pcap
echo "capture.sh: wrote rtp-media.pcap ($(stat -c %s rtp-media.pcap) bytes)"
