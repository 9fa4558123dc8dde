//! `--workers N`: the output is the same for every number of engine shards. The real binary
//! over every capture of `pcaps/` (and `pcaps/evasion/`), with 1 to 4 workers: the same JSON
//! lines byte for byte, the same `--stats`, the same survey; and a DNS answer that names a flow
//! held by another shard still names it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use shadowtap::engine::shard::shard_of;
use shadowtap::flow::key::{Key, TCP, UDP};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn shadowtap(args: &[&str], inputs: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shadowtap")).args(args).args(inputs).output().unwrap()
}

fn inspect(workers: usize, inputs: &[PathBuf]) -> Output {
    shadowtap(&["inspect", "--format", "jsonl", "--stats", "--workers", &workers.to_string()], inputs)
}

#[test]
fn inspect_is_the_same_for_one_to_four_workers() {
    for dir in [root().join("pcaps"), root().join("pcaps/evasion")] {
        let one = inspect(1, std::slice::from_ref(&dir));
        assert!(!one.stdout.is_empty(), "{}", dir.display());
        let stderr = String::from_utf8_lossy(&one.stderr);
        assert!(stderr.contains("flows_created"), "{stderr}");
        for n in 2..=4 {
            let other = inspect(n, std::slice::from_ref(&dir));
            assert_eq!(one.status.code(), other.status.code());
            if one.stdout != other.stdout {
                let (a, b) = (String::from_utf8_lossy(&one.stdout), String::from_utf8_lossy(&other.stdout));
                let diff = a.lines().zip(b.lines()).find(|(x, y)| x != y);
                panic!("{}: --workers {n} wrote other records than --workers 1; first difference:\n{diff:#?}", dir.display());
            }
            assert_eq!(stderr, String::from_utf8_lossy(&other.stderr), "{}: --stats with --workers {n}", dir.display());
        }
    }
}

#[test]
fn every_capture_alone_is_the_same_for_one_and_three_workers() {
    // Alone, each capture is the whole run: frame numbers and flow numbers start at 0.
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["pcaps", "pcaps/evasion"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() > 40);
    for f in &files {
        let (one, three) = (inspect(1, std::slice::from_ref(f)), inspect(3, std::slice::from_ref(f)));
        assert_eq!(one.stdout, three.stdout, "{}", f.display());
        assert_eq!(one.stderr, three.stderr, "{}", f.display());
    }
}

#[test]
fn survey_is_the_same_for_one_and_four_workers() {
    let config = root().join("rules/config.toml");
    let run = |n: usize| {
        let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
            .args(["survey", "--config"])
            .arg(&config)
            .arg(root().join("pcaps"))
            .args(["--format", "json", "--workers", &n.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "survey --workers {n}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let one = run(1);
    assert!(!one.is_empty());
    assert_eq!(one, run(4), "survey --workers 4 differs from --workers 1");
}

fn records(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn key(r: &Value) -> Key {
    let src: SocketAddr = r["src"].as_str().unwrap().parse().unwrap();
    let dst: SocketAddr = r["dst"].as_str().unwrap().parse().unwrap();
    let proto = if r["transport"] == "udp" { UDP } else { TCP };
    Key::new(src.ip(), src.port(), dst.ip(), dst.port(), proto).0
}

#[test]
fn a_dns_answer_names_a_flow_held_by_another_shard() {
    let file = root().join("pcaps/dns-then-tls.pcap");
    let one = records(&inspect(1, std::slice::from_ref(&file)));
    let named = one.iter().find(|r| r["signal"] == "dns").expect("dns-then-tls.pcap has a flow named by DNS");
    let resolver = one.iter().find(|r| r["app"] == "dns").expect("and the DNS flow that named it");
    let mut apart = Vec::new();
    for n in 2..=4 {
        let (a, b) = (shard_of(&key(resolver), n), shard_of(&key(named), n));
        eprintln!("--workers {n}: DNS flow on shard {a}, the flow it names on shard {b}");
        if a != b {
            apart.push(n);
        }
        let got = records(&inspect(n, std::slice::from_ref(&file)));
        let same = got.iter().find(|r| r["src"] == named["src"] && r["dst"] == named["dst"]).unwrap();
        assert_eq!(same["signal"], "dns", "--workers {n}");
        assert_eq!(same["names_from_dns"], named["names_from_dns"], "--workers {n}");
    }
    assert!(!apart.is_empty(), "with 2 to 4 shards the two flows always share one: the test proves nothing");
}
