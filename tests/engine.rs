//! Library-level properties over the bundled captures: batch and frame-by-frame handling agree,
//! and the engine is deterministic.

use std::path::Path;

use shadowtap::capture::file::{FileReader, Next};
use shadowtap::engine::{Config, Engine, FlowRecord};

/// A frame read from a capture, owned: timestamp, link type, bytes, wire length, DLT.
type OwnedFrame = (shadowtap::time::Timestamp, Option<shadowtap::decode::LinkType>, Vec<u8>, u32, i32);

fn frames(path: &Path) -> Vec<OwnedFrame> {
    let mut r = FileReader::open(path).unwrap();
    let mut out = Vec::new();
    loop {
        let (batch, st) = r.next_batch();
        out.extend(batch.iter().map(|f| (f.ts, f.link, f.data.to_vec(), f.wire_len, f.dlt)));
        if st != Next::More {
            return out;
        }
    }
}

fn run_single(fr: &[OwnedFrame]) -> Vec<FlowRecord> {
    let mut e = Engine::new(Config::default());
    for (ts, link, data, len, _) in fr {
        e.handle(*ts, *link, data, *len);
    }
    e.finish();
    let mut r = std::mem::take(&mut e.records);
    r.sort_by_key(|r| r.seq);
    r
}

#[test]
fn batch_and_single_frame_handling_agree() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
    for name in ["chromium-pq.pcap", "curl-tls13.pcap", "ooo-segments.pcap", "vxlan.pcap", "linktype-sll2.pcap"] {
        let fr = frames(&dir.join(name));
        let single = run_single(&fr);
        let mut e = Engine::new(Config::default());
        for chunk in fr.chunks(7) {
            let batch: Vec<shadowtap::decode::Frame<'_>> = chunk
                .iter()
                .map(|(ts, link, data, len, dlt)| shadowtap::decode::Frame { ts: *ts, data, wire_len: *len, link: *link, dlt: *dlt })
                .collect();
            e.handle_batch(&batch);
        }
        e.finish();
        let mut batched = std::mem::take(&mut e.records);
        batched.sort_by_key(|r| r.seq);
        assert_eq!(single, batched, "{name}");
        assert!(!single.is_empty());
        assert_eq!(single, run_single(&fr), "{name}: deterministic");
    }
}
