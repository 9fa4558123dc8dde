//! afl target `engine`: see `targets::engine` and docs/fuzzing.md.

#[allow(dead_code)]
#[path = "../../targets.rs"]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        targets::engine(data);
    });
}
