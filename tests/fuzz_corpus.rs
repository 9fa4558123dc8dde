//! The committed fuzz corpus replayed through every fuzz target as an ordinary test.
//!
//! `tests/fuzz/targets.rs` is the same file the afl binaries in `tests/fuzz/src/bin/` run, so an
//! input afl once found interesting (or a crash that became a regression input) is checked on
//! every `cargo test`, on the stable toolchain, without afl. Each input must return (no panic)
//! within [`MAX_PER_INPUT`]; each target must have at least its minimum number of inputs, so an
//! emptied or misnamed corpus directory fails instead of passing vacuously. See docs/fuzzing.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "fuzz/targets.rs"]
mod targets;

/// Longest a single input may take in this (unoptimised) test build. afl's own hang limit on the
/// release build is far lower; this only catches inputs that are quadratic or worse.
const MAX_PER_INPUT: Duration = Duration::from_secs(10);

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target)
}

/// Runs every file of `corpus/<name>/` through the target, which must have at least `min`
/// (about half of what the last `cargo afl cmin` kept: a corpus that lost most of its inputs
/// fails).
fn replay(name: &str, min: usize) {
    let (_, target) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let dir = corpus(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= min, "{name}: {} corpus inputs, expected at least {min}", files.len());
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let start = Instant::now();
        target(&data);
        let took = start.elapsed();
        assert!(took < MAX_PER_INPUT, "{}: took {took:?}", f.display());
    }
}

#[test]
fn every_target_has_a_corpus_and_a_test() {
    let mut dirs: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    let mut names: Vec<String> = targets::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(dirs, names, "one corpus directory per target");
    for (name, _) in targets::TARGETS {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/src/bin").join(format!("{name}.rs"));
        assert!(bin.is_file(), "{}: the afl binary of target {name}", bin.display());
    }
}

#[test]
fn decode() {
    replay("decode", 80);
}

#[test]
fn tls_hello() {
    replay("tls_hello", 90);
}

#[test]
fn dns() {
    replay("dns", 50);
}

#[test]
fn quic() {
    replay("quic", 30);
}

#[test]
fn proxy_marker() {
    replay("proxy_marker", 35);
}

#[test]
fn pcap_reader() {
    replay("pcap_reader", 100);
}

#[test]
fn engine() {
    replay("engine", 250);
}
