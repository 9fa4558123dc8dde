//! The drivers: what each command wires together, and everything that touches signals,
//! threads and the terminal. Only this module, `capture`, `serve` and `export` do I/O.
//!
//! ```text
//! pipeline   sources (files, interfaces) → engine → Sink      one loop for every command
//! control    signals → stop flag; SIGHUP / mapping change → Settings built off the packet thread
//! inspect    Sink: ordered JSON lines or table
//! survey     Sink: rollup into a store → report facts
//! run        Sink: attribute → aggregate, events, rollup → writer thread; HTTP on the main thread
//! writer     the daemon's background writer (store flushes, state saves, events)
//! report     `shadowtap report` / `survey`: facts from a source → report::model → render
//! ```

pub mod asn;
pub mod control;
pub mod inspect;
pub mod pipeline;
pub mod report;
pub mod run;
pub mod survey;
pub mod workers;
pub mod handoff;
mod writer;

use std::io::Write;

use crate::config::Settings;
use crate::decode::DropReason;
use crate::engine::Counters;
use crate::flow::defrag::GiveUp;
use crate::time::Timestamp;

pub use inspect::{inspect, Format, InspectOptions, Outcome};

/// Prints the engine's counters, one `name value` per line (zero counters omitted).
pub fn write_stats(err: &mut impl Write, engine: &Counters) -> std::io::Result<()> {
    let s = &engine.stats;
    let t = engine.table_stats();
    writeln!(err, "frames {}", s.frames)?;
    writeln!(err, "frame_bytes {}", s.frame_bytes)?;
    writeln!(err, "flows_created {}", t.created)?;
    writeln!(err, "flows_peak {}", t.peak)?;
    writeln!(err, "flows_evicted {}", t.evicted)?;
    writeln!(err, "client_hellos {}", s.client_hellos)?;
    writeln!(err, "server_hellos {}", s.server_hellos)?;
    let mut nonzero = |label: String, v: u64| -> std::io::Result<()> {
        if v > 0 {
            writeln!(err, "{label} {v}")?;
        }
        Ok(())
    };
    nonzero("unsupported_link".into(), s.unsupported_link)?;
    nonzero("other_transport".into(), s.other_transport)?;
    nonzero("orientation_fixed".into(), s.orientation_fixed)?;
    nonzero("inconsistent_overlaps".into(), s.inconsistent_overlaps)?;
    nonzero("memory_budget_giveups".into(), s.memory_giveups)?;
    nonzero("associated".into(), s.associated)?;
    nonzero("association_clients_dropped".into(), s.association_clients_dropped)?;
    for r in DropReason::ALL {
        nonzero(format!("decode_drop.{}", r.as_str()), s.decode_drops[r.index()])?;
    }
    for (k, v) in &s.reassembly_giveups {
        nonzero(format!("reassembly_giveup.{k}"), *v)?;
    }
    let d = &s.defrag;
    nonzero("ip_fragments".into(), d.fragments)?;
    nonzero("ip_reassembled".into(), d.reassembled)?;
    nonzero("ip_fragment_duplicates".into(), d.duplicates)?;
    nonzero("ip_reassembly_conflicts".into(), d.conflicts)?;
    for reason in GiveUp::ALL {
        nonzero(format!("ip_reassembly_giveup.{}", reason.as_str()), d.giveup(reason))?;
    }
    nonzero("ip_reassembly_pending".into(), d.pending)?;
    nonzero("dns_messages".into(), s.dns_messages)?;
    let (cache, cache_len) = engine.dns_cache_stats();
    nonzero("dns_cache_inserted".into(), cache.inserted)?;
    nonzero("dns_cache_hits".into(), cache.hits)?;
    nonzero("dns_cache_evicted".into(), cache.evicted)?;
    nonzero("dns_cache_addresses".into(), cache_len as u64)?;
    for (prefix, map) in [
        ("tls_error", &s.tls_errors),
        ("quic_giveup", &s.quic_giveups),
        ("dns_error", &s.dns_errors),
        ("named", &s.named),
        ("unnamed", &s.unnamed),
        ("evasion", &s.evasions),
    ] {
        for (k, v) in map {
            nonzero(format!("{prefix}.{k}"), *v)?;
        }
    }
    for (k, v) in &s.flows_ended {
        nonzero(format!("flows_ended.{k}"), *v)?;
    }
    Ok(())
}

/// `shadowtap check`: loads the configuration and the catalog, prints every problem (with file
/// and line), every warning (an expired exemption, host bits in a prefix, an unloadable GeoIP
/// database) and a summary. Problems fail; warnings fail only with `strict`.
pub fn check(path: &std::path::Path, strict: bool, out: &mut impl Write) -> std::process::ExitCode {
    let (problems, warnings, summary) = match Settings::load(path) {
        Ok(s) => {
            let c = &s.classifier;
            let (asn, country) = c.geoip();
            let onoff = |b: bool| if b { "on" } else { "off" };
            let mut summary = format!(
                "{} services in {} files (catalog {}), {} departments, config {}, ASN signal {}, country {}",
                c.catalog.services.len(),
                c.catalog.files.len(),
                &c.catalog.digest[..12],
                c.department_ids().len(),
                &s.config_digest[..12],
                onoff(asn),
                onoff(country)
            );
            if s.unanswered == crate::aggregate::Unanswered::AsUse {
                // Not the default, and it changes what counts as use: say it.
                summary.push_str(", unanswered flows count as use (engine.count_unanswered)");
            }
            for n in &s.notes {
                let _ = writeln!(out, "note: {n}");
            }
            let unverified: Vec<&str> =
                c.catalog.services.iter().filter(|x| x.references.iter().any(|r| !r.verified)).map(|x| x.id.as_str()).collect();
            if !unverified.is_empty() {
                // Not a problem for matching, but an auditor citing the service table should know.
                let _ = writeln!(
                    out,
                    "note: {} of {} services cite references not yet verified against their source (verified = false): reports say so",
                    unverified.len(),
                    c.catalog.services.len()
                );
            }
            let mut warnings = s.warnings.clone();
            warnings.extend(s.expired_exemptions(Timestamp::wall_clock()));
            (Vec::new(), warnings, Some(summary))
        }
        Err(diags) => (diags, Vec::new(), None),
    };
    for w in &warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for p in &problems {
        let _ = writeln!(out, "error: {p}");
    }
    if let Some(s) = summary {
        let _ = writeln!(out, "{s}");
    }
    if !problems.is_empty() {
        let _ = writeln!(out, "{} problem(s)", problems.len());
        std::process::ExitCode::FAILURE
    } else if strict && !warnings.is_empty() {
        let _ = writeln!(out, "{} warning(s): failing (--strict)", warnings.len());
        std::process::ExitCode::FAILURE
    } else {
        if !warnings.is_empty() {
            let _ = writeln!(out, "{} warning(s)", warnings.len());
        }
        let _ = writeln!(out, "ok");
        std::process::ExitCode::SUCCESS
    }
}

/// `shadowtap services`: the catalog named by the configuration at `path`, one service a row
/// (id, name, category, vendor, vendor country), only those of `category` when given.
pub fn services(path: &std::path::Path, category: Option<&str>, out: &mut impl Write) -> std::process::ExitCode {
    use crate::classify::catalog::CATEGORIES;
    let fail = |out: &mut dyn Write, diags: Vec<crate::diag::Diagnostic>| {
        for d in diags {
            let _ = writeln!(out, "error: {d}");
        }
        std::process::ExitCode::FAILURE
    };
    if let Some(c) = category.filter(|c| !CATEGORIES.contains(c)) {
        let _ = writeln!(out, "error: unknown category {c:?}{} (known: {})", crate::diag::did_you_mean(c, CATEGORIES.iter().copied()), CATEGORIES.join(", "));
        return std::process::ExitCode::FAILURE;
    }
    let loaded = match crate::config::Loaded::read(path) {
        Ok(l) => l,
        Err(d) => return fail(out, d),
    };
    let catalog = match crate::config::settings::read_catalog_dir(&loaded.resolve(&loaded.config.catalog)) {
        Ok(c) => c,
        Err(d) => return fail(out, d),
    };
    let header = ["ID", "NAME", "CATEGORY", "VENDOR", "COUNTRY"];
    let rows: Vec<[&str; 5]> = catalog
        .services
        .iter()
        .filter(|s| category.is_none_or(|c| s.category == c))
        .map(|s| [s.id.as_str(), s.name.as_str(), s.category.as_str(), s.vendor.as_str(), if s.vendor_country.is_empty() { "-" } else { s.vendor_country.as_str() }])
        .collect();
    let mut width = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = r.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    let _ = writeln!(out, "{} services", rows.len());
    std::process::ExitCode::SUCCESS
}

/// `shadowtap explain HOST|IP`: which service, channel, rule and status a name or address matches.
pub fn explain(path: &std::path::Path, query: &str, out: &mut impl Write) -> std::process::ExitCode {
    match Settings::load(path) {
        Ok(s) => {
            for line in s.classifier.explain(query, Timestamp::wall_clock()) {
                let _ = writeln!(out, "{line}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(diags) => {
            for d in diags {
                let _ = writeln!(out, "error: {d}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// `shadowtap store backup`: copies a store while a sensor may be writing it.
pub fn store_backup(store: &std::path::Path, to: &std::path::Path, out: &mut impl Write) -> std::process::ExitCode {
    match crate::store::Store::open_existing(store).and_then(|s| s.backup(to)) {
        Ok(()) => {
            let _ = writeln!(
                out,
                "{} written (the key file {} is not part of a backup)",
                to.display(),
                crate::store::keys::path_for(store).display()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
