//! afl target `tls_hello`: see `targets::tls_hello` and docs/fuzzing.md.

#[allow(dead_code)]
#[path = "../../targets.rs"]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        targets::tls_hello(data);
    });
}
