//! afl target `proxy_marker`: see `targets::proxy_marker` and docs/fuzzing.md.

#[allow(dead_code)]
#[path = "../../targets.rs"]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        targets::proxy_marker(data);
    });
}
