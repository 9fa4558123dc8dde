//! afl target `pcap_reader`: see `targets::pcap_reader` and docs/fuzzing.md.

#[allow(dead_code)]
#[path = "../../targets.rs"]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        targets::pcap_reader(data);
    });
}
