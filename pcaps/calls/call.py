#!/usr/bin/env python3
"""call.py - one side of a real WebRTC audio call (aiortc), for capture.sh.

    pip install aiortc==1.16.0

  call.py offer  DIR SNI TURN   open a TLS connection naming SNI to TURN's host on
                                port 443 (the "signalling", kept open), then make the
                                offer of an audio call relayed through the TURN server
                                TURN (host:port, user "shadowtap", password "calls"):
                                writes DIR/offer.sdp, waits for DIR/answer.sdp
  call.py answer DIR SNI TURN   the same signalling, then answers DIR/offer.sdp
  call.py rtp SRV SNI PEER      the same signalling to SRV:443, then plain RTP (no
                                STUN, no DTLS: a SIP-style media stream) of Opus
                                audio encoded and packetised by libavformat (PyAV)
                                to PEER (host:port), with its RTCP to port + 1

Both sides send audio (aiortc's silent AudioStreamTrack, Opus in SRTP) for
CALL_SECONDS over the relay only (iceTransportPolicy "relay"), then hang up.
The SDP travels through files in DIR: the "signalling" connection carries
nothing but its TLS handshake, as far as the capture can tell.
"""
import asyncio
import os
import socket
import ssl
import sys

from aiortc import (AudioStreamTrack, RTCConfiguration, RTCIceServer,
                    RTCIceTransportPolicy,
                    RTCPeerConnection, RTCSessionDescription)

CALL_SECONDS = 4


def signalling(host, sni):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((host, 443), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=sni)


async def wait_for(path):
    for _ in range(300):
        if os.path.exists(path):
            await asyncio.sleep(0.1)
            with open(path) as f:
                return f.read()
        await asyncio.sleep(0.1)
    raise SystemExit(f"call.py: {path} never came")


async def main(role, folder, sni, turn):
    host, _ = turn.split(":")
    keep = signalling(host, sni)
    config = RTCConfiguration(
        iceServers=[RTCIceServer(urls=f"turn:{turn}", username="shadowtap", credential="calls")],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    pc = RTCPeerConnection(configuration=config)
    pc.addTrack(AudioStreamTrack())
    if role == "offer":
        await pc.setLocalDescription(await pc.createOffer())
        with open(os.path.join(folder, "offer.sdp.tmp"), "w") as f:
            f.write(pc.localDescription.sdp)
        os.rename(os.path.join(folder, "offer.sdp.tmp"), os.path.join(folder, "offer.sdp"))
        answer = await wait_for(os.path.join(folder, "answer.sdp"))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    else:
        offer = await wait_for(os.path.join(folder, "offer.sdp"))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        with open(os.path.join(folder, "answer.sdp.tmp"), "w") as f:
            f.write(pc.localDescription.sdp)
        os.rename(os.path.join(folder, "answer.sdp.tmp"), os.path.join(folder, "answer.sdp"))
    await asyncio.sleep(CALL_SECONDS)
    print(f"call.py {role}: ice {pc.iceConnectionState}, connection {pc.connectionState}", file=sys.stderr)
    await pc.close()
    keep.close()


RTP_FRAMES = 150  # 20 ms each: 3 s


def rtp(srv, sni, peer):
    """Plain RTP: Opus frames of silence, paced in real time, through libavformat's muxer."""
    import fractions
    import time
    import av
    keep = signalling(srv, sni)
    # Symmetric RTP (RFC 4961): sent from the port it is received on, as SIP phones do.
    port = int(peer.rsplit(":", 1)[1])
    out = av.open(f"rtp://{peer}?localrtpport={port}&localrtcpport={port + 1}", "w", format="rtp")
    stream = out.add_stream("libopus", rate=48000)
    stream.layout = "mono"
    pts = 0
    for _ in range(RTP_FRAMES):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate, frame.pts, frame.time_base = 48000, pts, fractions.Fraction(1, 48000)
        pts += 960
        for packet in stream.encode(frame):
            out.mux(packet)
        time.sleep(0.02)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    keep.close()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "rtp":
        rtp(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] in ("offer", "answer"):
        asyncio.run(main(*sys.argv[1:]))
    else:
        raise SystemExit(__doc__)
