//! Helpers shared by the integration tests: run the real `shadowtap` binary.
#![allow(dead_code)]

pub mod capture;
pub mod stack;

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one run of `shadowtap inspect` produced.
pub struct Run {
    /// Parsed JSON lines.
    pub records: Vec<serde_json::Value>,
    /// Raw stdout.
    pub stdout: String,
    /// Raw stderr.
    pub stderr: String,
    /// Exit status code.
    pub code: Option<i32>,
}

/// Runs `shadowtap inspect --format jsonl ARGS...`.
pub fn inspect(args: &[&Path], extra: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shadowtap"));
    cmd.arg("inspect").arg("--format").arg("jsonl").args(extra).args(args);
    let out = cmd.output().expect("run shadowtap");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    let records = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    Run { records, stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned(), code: out.status.code() }
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled configuration (`rules/config.toml`) with its relative paths (the catalog, the
/// risk weights) made absolute, for a test that writes it elsewhere.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn bundled_config() -> String {
    let text = std::fs::read_to_string(root().join("rules/config.toml")).unwrap();
    let (catalog, risk) = (root().join("rules/services"), root().join("rules/risk.toml"));
    assert!(text.contains("catalog = \"services\"") && text.contains("risk = \"risk.toml\""), "the bundled config's paths changed");
    text.replace("catalog = \"services\"", &format!("catalog = {:?}", catalog.to_str().unwrap()))
        .replace("risk = \"risk.toml\"", &format!("risk = {:?}", risk.to_str().unwrap()))
}

/// `../shared/corpus` beside the checkout (or `$SHADOWTAP_CORPUS`), if present.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SHADOWTAP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("..").join("shared").join("corpus"));
    dir.join("expected.jsonl").is_file().then_some(dir)
}

/// Field as string or None for null/missing.
pub fn s<'a>(v: &'a serde_json::Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(|x| x.as_str())
}
