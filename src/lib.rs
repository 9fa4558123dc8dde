//! # shadowtap: a passive sensor for shadow-IT channels
//!
//! The crate reads packets, never content. Its data path, one folder per stage:
//!
//! ```text
//! capture/      pcap files, stdin, live interfaces          (the only stage touching libpcap)
//!    │ (timestamp, link type, frame bytes)
//! decode/       link layers, VLAN/MPLS/PPPoE, IP, tunnels   (pure, borrows the frame)
//!    │ decode::Packet { addresses, ports, TCP/UDP payload, vlan, tunnel }
//! flow/         bidirectional flow table, bounded TCP reassembly of the client's first bytes
//!    │ first client bytes of each flow, until it is identified
//! proto/        TLS ClientHello/ServerHello summaries (tls-parser), protocol probes
//!    │ tls::ClientHello
//! fingerprint/  JA3, JA4 (pure functions of a ClientHello summary)
//!    │
//! engine        drives the stages above, sans-IO: packets and their timestamps in, flow records out
//!    │ engine::FlowRecord
//! export/       JSON lines and table output of `shadowtap inspect`
//!    │ (with `run`: aggregate/ for the metrics, and)
//! store/        per-day rollup with distinct-host sketches in SQLite, for reports
//!    │ report::input::ReportInput (also from Prometheus, or a survey of captures)
//! report/       survey model with minimum group size; HTML, Markdown, CSV, JSON
//! ```
//!
//! Everything between `capture` and `export` is sans-IO: it takes bytes and a packet timestamp and
//! returns results, so a replay is deterministic and the wall clock never enters the pipeline.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aggregate;
pub mod asndb;
pub mod capture;
pub mod classify;
pub mod config;
pub mod decode;
pub mod diag;
pub mod dnscache;
pub mod engine;
pub mod export;
pub mod fingerprint;
pub mod flow;
pub mod intern;
pub mod proto;
pub mod report;
pub mod runtime;
pub mod store;
pub mod time;
pub mod serve;

#[cfg(test)]
mod testutil;
