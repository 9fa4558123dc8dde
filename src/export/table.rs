//! A fixed-width table of flow records for people at a terminal.

use std::io::Write;

use super::jsonl::{Attributed, InspectLine};
use crate::engine::FlowRecord;

/// The header line.
pub const HEADER: &str = concat!(
    "start                        client                                         ",
    "server                                         proto app     sni                              ",
    "ja4                                    pkts>  pkts<   bytes>   bytes<  ",
    "service          department   status        notes"
);

/// Writes the header line.
///
/// # Errors
/// The writer's I/O error.
pub fn write_header(out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{HEADER}")
}

/// Writes one record as a table row.
///
/// # Errors
/// The writer's I/O error.
pub fn write(out: &mut impl Write, r: &FlowRecord, capture: &str, attributed: Attributed<'_>) -> std::io::Result<()> {
    let l = InspectLine::new(r, capture, attributed);
    writeln!(
        out,
        "{:<28} {:<46} {:<46} {:<5} {:<7} {:<32} {:<38} {:>5} {:>6} {:>8} {:>8}  {:<16} {:<12} {:<13} {}",
        l.ts_start,
        l.src,
        l.dst,
        l.transport,
        l.app,
        l.sni.as_deref().unwrap_or("-"),
        l.ja4.unwrap_or("-"),
        l.packets_up,
        l.packets_down,
        l.bytes_up,
        l.bytes_down,
        l.service.unwrap_or("-"),
        l.department.unwrap_or("-"),
        l.status.unwrap_or("-"),
        notes(&l)
    )
}

/// What makes a row suspect or not use, in a few words: `unanswered` (the server never
/// answered), the evasion signs, and `tls_error=...` for a hello read only up to its name.
fn notes(l: &InspectLine<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !l.answered {
        parts.push("unanswered".into());
    }
    parts.extend(l.evasion.iter().map(|e| (*e).to_string()));
    if let Some(e) = l.tls_error {
        parts.push(format!("tls_error={e}"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}
