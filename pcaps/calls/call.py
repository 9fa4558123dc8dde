#!/usr/bin/env python3
"""call.py - one side of a real WebRTC audio call (aiortc), for capture.sh.

    pip install aiortc==1.16.0

  call.py offer  DIR SNI TURN   open a TLS connection naming SNI to TURN's host on
                                port 443 (the "signalling", kept open), then make the
                                offer of an audio call relayed through the TURN server
                                TURN (host:port, user "shadowtap", password "calls"):
                                writes DIR/offer.sdp, waits for DIR/answer.sdp
  call.py answer DIR SNI TURN   the same signalling, then answers DIR/offer.sdp

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


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("offer", "answer"):
        raise SystemExit(__doc__)
    asyncio.run(main(*sys.argv[1:]))
