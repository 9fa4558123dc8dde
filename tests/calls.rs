//! Calls without a name of their own: a STUN flow is counted for the calls of the messaging or
//! conferencing service its client was talking to when it started (the resolver's association,
//! `engine::resolve`), and for nothing when the client was not, or had stopped long before.

mod common;

use common::capture::{at, client_hello, stun_binding, Pcap, ACK, MONDAY_2026_03_02, PSH, SYN};
use serde_json::Value;

/// An open TLS connection from `client` naming `sni` at `t` (µs), handshake and hello only.
fn signalling(p: &mut Pcap, t: i64, client: &str, sni: &str) {
    let (c, s) = (at(client), at("203.0.113.10:443"));
    let hello = client_hello(sni);
    p.tcp(t, c, s, SYN, 100, 0, &[])
        .tcp(t + 1000, s, c, SYN | ACK, 900, 101, &[])
        .tcp(t + 2000, c, s, ACK, 101, 901, &[])
        .tcp(t + 3000, c, s, PSH | ACK, 101, 901, &hello)
        .tcp(t + 4000, s, c, ACK, 901, 101 + hello.len() as u32, &[]);
}

/// An open TCP connection from `client` whose first bytes are WhatsApp's chat preface
/// (`WA`, version 6.2, then the start of a Noise handshake), to a server outside Meta's ranges.
fn whatsapp_chat(p: &mut Pcap, t: i64, client: &str) {
    let (c, s) = (at(client), at("203.0.113.20:5222"));
    let preface = b"WA\x06\x02\x00\x00\x24\x12\x22\x0a\x20";
    p.tcp(t, c, s, SYN, 100, 0, &[])
        .tcp(t + 1000, s, c, SYN | ACK, 900, 101, &[])
        .tcp(t + 2000, c, s, ACK, 101, 901, &[])
        .tcp(t + 3000, c, s, PSH | ACK, 101, 901, preface)
        .tcp(t + 4000, s, c, ACK, 901, 101 + preface.len() as u32, &[]);
}

/// STUN Binding requests and answers between `client` and a relay outside every catalog range.
fn stun(p: &mut Pcap, t: i64, client: &str, relay: &str) {
    let (c, r) = (at(client), at(relay));
    for i in 0..3u8 {
        p.udp(t + i64::from(i) * 20_000, c, r, &stun_binding(i));
        let mut answer = stun_binding(i);
        answer[0..2].copy_from_slice(&[0x01, 0x01]);
        p.udp(t + i64::from(i) * 20_000 + 5000, r, c, &answer);
    }
}

/// The records of `p` with the bundled configuration and `workers` workers.
fn records(p: &Pcap, workers: &str) -> Vec<Value> {
    let dir = common::stack::TempDir::new();
    let pcap = dir.0.join("calls.pcap");
    p.write(&pcap);
    records_of(&pcap, workers)
}

/// The records of the capture `pcap` with the bundled configuration and `workers` workers.
fn records_of(pcap: &std::path::Path, workers: &str) -> Vec<Value> {
    let dir = common::stack::TempDir::new();
    let config = dir.0.join("config.toml");
    std::fs::write(&config, common::bundled_config()).unwrap();
    let run = common::inspect(&[pcap], &["--config", config.to_str().unwrap(), "--workers", workers]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.records
}

/// A record's service, channel and the signal that attributed it.
fn attribution(r: &Value) -> (Option<&str>, Option<&str>, Option<&str>) {
    (r["service"].as_str(), r["channel"].as_str(), r["service_signal"].as_str())
}

fn udp_to<'a>(recs: &'a [Value], client: &str) -> &'a Value {
    recs.iter().find(|r| r["transport"] == "udp" && r["src"] == client).unwrap_or_else(|| panic!("no UDP flow of {client}: {recs:?}"))
}

#[test]
fn a_stun_flow_counts_for_the_calls_of_the_service_its_client_was_signalling_to() {
    let t = (MONDAY_2026_03_02 + 9 * 3600) * 1_000_000;
    let mut p = Pcap::new();
    // 10.20.0.1 talks to Signal (connection still open), then starts STUN to a relay.
    signalling(&mut p, t, "10.20.0.1:40001", "chat.signal.org");
    stun(&mut p, t + 2_000_000, "10.20.0.1:50001", "198.51.100.7:3478");
    // 10.20.0.2 sends the same STUN without any signalling.
    stun(&mut p, t + 2_000_000, "10.20.0.2:50002", "198.51.100.7:3478");
    // 10.20.0.3 talks to a service outside the messaging and conferencing categories.
    signalling(&mut p, t, "10.20.0.3:40003", "www.dropbox.com");
    stun(&mut p, t + 2_000_000, "10.20.0.3:50003", "198.51.100.7:3478");
    let one = records(&p, "1");
    let call = udp_to(&one, "10.20.0.1:50001");
    assert_eq!((call["app"].as_str(), attribution(call)), (Some("stun"), (Some("signal"), Some("calls"), Some("association"))), "{call}");
    for lone in ["10.20.0.2:50002", "10.20.0.3:50003"] {
        let r = udp_to(&one, lone);
        assert_eq!((r["app"].as_str(), r["service"].as_str()), (Some("stun"), None), "{r}");
    }
    // The association is made in packet order by the resolver: the same with two shards.
    assert_eq!(records(&p, "2"), one);
}

#[test]
fn a_stun_flow_long_after_the_signalling_ended_is_not_associated() {
    let t = (MONDAY_2026_03_02 + 9 * 3600) * 1_000_000;
    let mut p = Pcap::new();
    let (c, s) = (at("10.20.0.1:40001"), at("203.0.113.10:443"));
    let hello = client_hello("chat.signal.org");
    let q = hello.len() as u32;
    p.tcp(t, c, s, SYN, 100, 0, &[])
        .tcp(t + 1000, s, c, SYN | ACK, 900, 101, &[])
        .tcp(t + 2000, c, s, ACK, 101, 901, &[])
        .tcp(t + 3000, c, s, PSH | ACK, 101, 901, &hello)
        .tcp(t + 4000, s, c, ACK, 901, 101 + q, &[])
        .tcp(t + 5000, c, s, common::capture::FIN | ACK, 101 + q, 901, &[])
        .tcp(t + 6000, s, c, common::capture::FIN | ACK, 901, 102 + q, &[])
        .tcp(t + 7000, c, s, ACK, 102 + q, 902, &[]);
    // Within the window after the close: associated; long after: not.
    stun(&mut p, t + 30_000_000, "10.20.0.1:50001", "198.51.100.7:3478");
    stun(&mut p, t + 400_000_000, "10.20.0.1:50009", "198.51.100.8:3478");
    let recs = records(&p, "1");
    assert_eq!(udp_to(&recs, "10.20.0.1:50001")["service_signal"].as_str(), Some("association"));
    let late = udp_to(&recs, "10.20.0.1:50009");
    assert_eq!(late["service"].as_str(), None, "{late}");
}

/// A real call: aiortc on both ends, relay-only ICE through Debian's coturn, each client with a
/// TLS connection naming chat.signal.org held open (`pcaps/calls/capture.sh`). Each client's
/// TURN flow counts for Signal's calls by association; the relay's own flow between its two
/// allocations (the server talking to itself) is nobody's call.
#[test]
fn a_real_webrtc_call_through_turn_counts_for_the_signalling_service() {
    let pcap = common::root().join("pcaps/calls/webrtc-turn.pcap");
    for workers in ["1", "2"] {
        let recs = records_of(&pcap, workers);
        let turn: Vec<&Value> = recs.iter().filter(|r| r["transport"] == "udp" && r["dst"] == "10.30.0.1:3478").collect();
        assert_eq!(turn.len(), 2, "{:?}", recs);
        for r in turn {
            assert_eq!((r["app"].as_str(), attribution(r)), (Some("stun"), (Some("signal"), Some("calls"), Some("association"))), "{r}");
            assert!(r["packets_up"].as_u64() > Some(100), "media went through the relay: {r}");
        }
        let relay = recs.iter().find(|r| r["src"].as_str().is_some_and(|s| s.starts_with("10.30.0.1:"))).expect("the relay's own flow");
        assert_eq!(relay["service"].as_str(), None, "{relay}");
    }
}

#[test]
fn a_stun_flow_beside_teams_signalling_counts_for_microsoft_365_calls() {
    // Microsoft 365 is a corporate suite, not a messenger, but it has a call channel.
    let t = (MONDAY_2026_03_02 + 9 * 3600) * 1_000_000;
    let mut p = Pcap::new();
    signalling(&mut p, t, "10.20.0.4:40004", "teams.microsoft.com");
    stun(&mut p, t + 2_000_000, "10.20.0.4:50004", "198.51.100.7:3478");
    let recs = records(&p, "1");
    let call = udp_to(&recs, "10.20.0.4:50004");
    assert_eq!(attribution(call), (Some("microsoft-365"), Some("calls"), Some("association")), "{call}");
}

#[test]
fn a_stun_flow_beside_a_whatsapp_chat_preface_counts_for_whatsapp_calls() {
    // WhatsApp's chat carries no name, only its preface (a marker one service claims).
    let t = (MONDAY_2026_03_02 + 9 * 3600) * 1_000_000;
    let mut p = Pcap::new();
    whatsapp_chat(&mut p, t, "10.20.0.5:40005");
    stun(&mut p, t + 2_000_000, "10.20.0.5:50005", "198.51.100.9:3478");
    let recs = records(&p, "1");
    let chat = recs.iter().find(|r| r["transport"] == "tcp").unwrap();
    assert_eq!((chat["marker"].as_str(), chat["service"].as_str()), (Some("whatsapp-noise"), Some("whatsapp")), "{chat}");
    let call = udp_to(&recs, "10.20.0.5:50005");
    assert_eq!(attribution(call), (Some("whatsapp"), Some("calls"), Some("association")), "{call}");
}

#[test]
fn messengers_without_names_on_the_wire_are_known_by_their_networks() {
    // LINE's and imo's own networks name their flows; Kakao Corp's network is vendor-wide, so it
    // names only a call's STUN flows as KakaoTalk, not its other traffic.
    let t = (MONDAY_2026_03_02 + 9 * 3600) * 1_000_000;
    let mut p = Pcap::new();
    p.connection(t, at("10.20.0.6:40006"), at("147.92.130.10:10443"), b"\x00\x01line", b"\x00\x01ok");
    p.connection(t, at("10.20.0.7:40007"), at("169.136.64.20:443"), b"\x00\x01imo", b"\x00\x01ok");
    p.connection(t, at("10.20.0.8:40008"), at("211.249.200.10:443"), b"\x00\x01web", b"\x00\x01ok");
    stun(&mut p, t, "10.20.0.8:50008", "211.249.200.11:3478");
    let recs = records(&p, "1");
    let by_server = |server: &str| recs.iter().find(|r| r["dst"] == server).unwrap_or_else(|| panic!("{server}: {recs:?}"));
    assert_eq!(by_server("147.92.130.10:10443")["service"].as_str(), Some("line"));
    assert_eq!(by_server("169.136.64.20:443")["service"].as_str(), Some("imo"));
    assert_eq!(by_server("211.249.200.10:443")["service"].as_str(), None, "Kakao's network alone is not KakaoTalk");
    let call = by_server("211.249.200.11:3478");
    assert_eq!((call["service"].as_str(), call["channel"].as_str()), (Some("kakaotalk"), Some("calls")), "{call}");
}

/// Real plain RTP (`pcaps/calls/capture.sh`: Opus packetised by libavformat, symmetric ports,
/// each packet captured twice on its way through the router namespace) beside Teams
/// signalling: the media flow is `rtp` and counts for Microsoft 365's calls by association.
#[test]
fn real_rtp_media_beside_teams_signalling_counts_for_microsoft_365_calls() {
    let pcap = common::root().join("pcaps/calls/rtp-media.pcap");
    let recs = records_of(&pcap, "1");
    let media = recs.iter().find(|r| r["dst"].as_str().is_some_and(|d| d.ends_with(":5004"))).expect("the RTP flow");
    assert_eq!((media["app"].as_str(), attribution(media)), (Some("rtp"), (Some("microsoft-365"), Some("calls"), Some("association"))), "{media}");
}

/// A TURN CreatePermission (RFC 8656 §9) from a client naming `peer` in its XOR-PEER-ADDRESS.
fn create_permission(tx: u8, peer: std::net::SocketAddrV4) -> Vec<u8> {
    let mut m = vec![0x00, 0x08, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    m.extend_from_slice(&[tx; 12]);
    m.extend_from_slice(&[0x00, 0x12, 0x00, 0x08, 0x00, 0x01]);
    m.extend_from_slice(&(peer.port() ^ 0x2112).to_be_bytes());
    m.extend_from_slice(&(u32::from(*peer.ip()) ^ 0x2112_a442).to_be_bytes());
    m
}

#[test]
fn a_flow_to_a_peer_named_by_a_turn_request_is_the_same_call_whatever_its_framing() {
    let t = (MONDAY_2026_03_02 + 9 * 3600) * 1_000_000;
    let mut p = Pcap::new();
    signalling(&mut p, t, "10.20.0.1:40001", "chat.signal.org");
    // The client's TURN exchange names its peer 192.0.2.77:6000...
    let (c, turn) = (at("10.20.0.1:50001"), at("198.51.100.7:3478"));
    p.udp(t + 2_000_000, c, turn, &stun_binding(1));
    p.udp(t + 2_005_000, turn, c, &{
        let mut a = stun_binding(1);
        a[0..2].copy_from_slice(&[0x01, 0x01]);
        a
    });
    p.udp(t + 2_010_000, c, turn, &create_permission(2, at("192.0.2.77:6000")));
    // ...then media goes straight to it, in a framing nobody recognises.
    for i in 0..4u8 {
        p.udp(t + 3_000_000 + i64::from(i) * 20_000, at("10.20.0.1:50011"), at("192.0.2.77:6000"), &[0x99, i, 0x42, 0x17, 0x00, 0x00, 0xaa, 0xbb]);
        p.udp(t + 3_010_000 + i64::from(i) * 20_000, at("192.0.2.77:6000"), at("10.20.0.1:50011"), &[0x98, i, 0x42, 0x17]);
    }
    // Another client's flow to the same address is not this call.
    for i in 0..2u8 {
        p.udp(t + 3_000_000 + i64::from(i) * 20_000, at("10.20.0.2:50012"), at("192.0.2.77:6000"), &[0x99, i]);
        p.udp(t + 3_010_000 + i64::from(i) * 20_000, at("192.0.2.77:6000"), at("10.20.0.2:50012"), &[0x98, i]);
    }
    for workers in ["1", "2"] {
        let recs = records(&p, workers);
        let media = udp_to(&recs, "10.20.0.1:50011");
        assert_eq!((media["app"].as_str(), attribution(media)), (Some("unknown"), (Some("signal"), Some("calls"), Some("association"))), "{media}");
        let other = udp_to(&recs, "10.20.0.2:50012");
        assert_eq!(other["service"].as_str(), None, "{other}");
    }
}
