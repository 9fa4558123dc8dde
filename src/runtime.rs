//! Wiring for the commands: sources → engine → output, with error and signal handling.
//!
//! Only this module, `capture` and `export` touch files, terminals and signals.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::capture::file::{self, FileReader};
use crate::classify::Classifier;
use crate::capture::{self, LiveOptions, Next, OfflineFilter, Source};
use crate::decode::DropReason;
use crate::engine::{self, Engine, FlowRecord};
use crate::export;

/// Output format of `inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// A fixed-width table.
    Table,
}

/// What `inspect` reads and how.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// Capture files or directories (`-` = standard input).
    pub inputs: Vec<PathBuf>,
    /// Live interfaces.
    pub live: Vec<LiveOptions>,
    /// BPF filter applied to every source.
    pub filter: Option<String>,
    /// Output format.
    pub format: Format,
    /// Engine limits.
    pub engine: engine::Config,
    /// Print counters to stderr at the end.
    pub stats: bool,
    /// Configuration (catalog, departments, policy): adds service and status to each record.
    pub config: Option<PathBuf>,
    /// Stop a live capture after this many frames (live records are written as flows end).
    pub max_frames: Option<u64>,
}

/// The result of an `inspect` run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Flow records written.
    pub records: u64,
    /// Inputs that failed (could not be opened or were corrupt): each already reported.
    pub failed_inputs: usize,
    /// Inputs that ended mid-record (what they held was used).
    pub truncated_inputs: usize,
}

/// Writes records in the order of their flows' first packets, holding back those that ended
/// before an earlier-starting flow did.
struct Ordered<'w, W: Write> {
    out: &'w mut W,
    classifier: Option<Classifier>,
    /// Configuration reloads that took effect / were rejected (the old one stayed in force).
    reloads: [u64; 2],
    format: Format,
    pending: BTreeMap<u64, (FlowRecord, Arc<str>)>,
    next: u64,
    written: u64,
}

impl<W: Write> Ordered<'_, W> {
    /// Reloads the configuration (SIGHUP, or a changed mapping file): the new one replaces the
    /// old atomically between two records; an invalid one is rejected, reported and counted,
    /// and the old one stays in force.
    fn reload(&mut self, path: &std::path::Path, err: &mut impl Write, why: &str) -> std::io::Result<()> {
        match Classifier::load(path) {
            Ok(c) => {
                writeln!(err, "{}: configuration reloaded ({why})", path.display())?;
                self.classifier = Some(c);
                self.reloads[0] += 1;
            }
            Err(diags) => {
                for d in &diags {
                    writeln!(err, "error: {d}")?;
                }
                writeln!(err, "error: {}: reload rejected; the previous configuration stays in force", path.display())?;
                self.reloads[1] += 1;
            }
        }
        Ok(())
    }

    /// Checks for a reload request or a changed mapping file (at most once a second).
    fn maybe_reload(
        &mut self,
        config: Option<&std::path::Path>,
        hup: &AtomicBool,
        last_check: &mut std::time::Instant,
        err: &mut impl Write,
    ) -> std::io::Result<()> {
        let Some(path) = config else { return Ok(()) };
        if hup.swap(false, Ordering::Relaxed) {
            return self.reload(path, err, "SIGHUP");
        }
        if last_check.elapsed() >= std::time::Duration::from_secs(1) {
            *last_check = std::time::Instant::now();
            if self.classifier.as_ref().is_some_and(|c| c.mapping_changed()) {
                return self.reload(path, err, "mapping file changed");
            }
        }
        Ok(())
    }

    fn push(&mut self, r: FlowRecord, capture: &Arc<str>) -> std::io::Result<()> {
        self.pending.insert(r.seq, (r, capture.clone()));
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.next {
                break;
            }
            let (r, cap) = entry.remove();
            self.emit(&r, &cap)?;
            self.next += 1;
        }
        Ok(())
    }

    fn emit(&mut self, r: &FlowRecord, capture: &str) -> std::io::Result<()> {
        self.written += 1;
        let attribution = self.classifier.as_ref().map(|c| c.attribute(r));
        let attributed = attribution.as_ref().zip(self.classifier.as_ref().map(|c| &c.catalog));
        match self.format {
            Format::Jsonl => export::jsonl::write(self.out, r, capture, attributed),
            Format::Table => export::table::write(self.out, r, capture, attributed),
        }
    }

    /// Writes everything still held (end of a capture: every flow has ended).
    fn flush_all(&mut self) -> std::io::Result<()> {
        while let Some((seq, (r, cap))) = self.pending.pop_first() {
            self.emit(&r, &cap)?;
            self.next = seq + 1;
        }
        self.out.flush()
    }
}

/// Runs `inspect`: every input in turn (each file is its own capture: its flows end with it),
/// then every live interface until interrupted.
///
/// Errors of one input are reported on `err` and the run goes on with the next; the caller turns
/// [`Outcome::failed_inputs`] into the exit status.
///
/// # Errors
/// Only an I/O error on `out` (e.g. a closed pipe) or an unusable input list stops the run.
pub fn inspect(opts: &InspectOptions, out: &mut impl Write, err: &mut impl Write) -> anyhow::Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let mut engine = Engine::new(opts.engine);
    let mut outcome = Outcome::default();
    let classifier = match &opts.config {
        Some(path) => match Classifier::load(path) {
            Ok(c) => {
                for w in &c.warnings {
                    writeln!(err, "warning: {w}")?;
                }
                Some(c)
            }
            Err(diags) => {
                for d in &diags {
                    writeln!(err, "error: {d}")?;
                }
                anyhow::bail!("{}: configuration has {} error(s); `shadowtap check` lists them", path.display(), diags.len());
            }
        },
        None => None,
    };
    let mut ordered =
        Ordered { out, classifier, reloads: [0; 2], format: opts.format, pending: BTreeMap::new(), next: 0, written: 0 };
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))?;
    let mut last_mapping_check = std::time::Instant::now();
    if opts.format == Format::Table {
        export::table::write_header(ordered.out)?;
    }

    let files = capture::expand_inputs(&opts.inputs)?;
    for path in &files {
        let name = display_name(&path.display().to_string());
        let mut reader = match FileReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                writeln!(err, "error: {e}")?;
                outcome.failed_inputs += 1;
                continue;
            }
        };
        let mut filter = opts.filter.as_deref().map(OfflineFilter::new);
        let mut frames = 0u64;
        let mut warned = 0;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            ordered.maybe_reload(opts.config.as_deref(), &hup, &mut last_mapping_check, err)?;
            let (mut batch, status) = reader.next_batch();
            if let Some(f) = filter.as_mut() {
                let mut keep = Vec::with_capacity(batch.len());
                for fr in batch.drain(..) {
                    match f.matches(&path.display().to_string(), &fr) {
                        Ok(true) => keep.push(fr),
                        Ok(false) => {}
                        Err(e) => {
                            writeln!(err, "error: {e}")?;
                            outcome.failed_inputs += 1;
                            return Ok(outcome);
                        }
                    }
                }
                batch = keep;
            }
            frames += batch.len() as u64;
            engine.handle_batch(&batch);
            for r in engine.records.drain(..) {
                ordered.push(r, &name)?;
            }
            let unsupported = reader.unsupported_dlts.len();
            if unsupported > warned {
                for dlt in &reader.unsupported_dlts[warned..] {
                    writeln!(
                        err,
                        "warning: {}: link type {dlt} is not supported; its frames are counted as unsupported_link",
                        path.display()
                    )?;
                }
                warned = unsupported;
            }
            match status {
                file::Next::More => {}
                file::Next::End => break,
                file::Next::Truncated(msg) => {
                    writeln!(err, "warning: {}: truncated capture ({msg}); used the {frames} frames before the cut", path.display())?;
                    outcome.truncated_inputs += 1;
                    break;
                }
                file::Next::Failed(msg) => {
                    writeln!(err, "error: {}: corrupt after {frames} frames: {msg}", path.display())?;
                    outcome.failed_inputs += 1;
                    break;
                }
            }
        }
        engine.finish_with(|r| ordered.push(r, &name))?;
        ordered.flush_all()?;
        // Each file is its own capture: its flows ended with it, and so do its DNS answers.
        engine.forget_dns_answers();
    }

    for live in &opts.live {
        let mut source = match Source::open_live(live) {
            Ok(s) => s,
            Err(e) => {
                writeln!(err, "error: {e}")?;
                outcome.failed_inputs += 1;
                continue;
            }
        };
        if let Some(f) = &opts.filter {
            if let Err(e) = source.set_filter(f) {
                writeln!(err, "error: {e}")?;
                outcome.failed_inputs += 1;
                continue;
            }
        }
        if source.link.is_none() {
            writeln!(
                err,
                "warning: {}: link type {} is not supported; its frames are counted as unsupported_link",
                source.name, source.dlt
            )?;
        }
        let name = display_name(&source.name);
        let mut frames = 0u64;
        while !stop.load(Ordering::Relaxed) {
            ordered.maybe_reload(opts.config.as_deref(), &hup, &mut last_mapping_check, err)?;
            match source.next() {
                Next::Frame(f) => {
                    engine.handle(f.ts, f.link, f.data, f.wire_len);
                    frames += 1;
                    for r in engine.records.drain(..) {
                        ordered.emit(&r, &name)?;
                    }
                    if opts.max_frames.is_some_and(|m| frames >= m) {
                        break;
                    }
                }
                Next::Idle => {}
                Next::End => break,
                Next::Failed(msg) => {
                    writeln!(err, "error: {}: capture failed after {frames} frames: {msg}", source.name)?;
                    outcome.failed_inputs += 1;
                    break;
                }
            }
        }
        if let Some(s) = source.stats() {
            writeln!(
                err,
                "{}: received {} dropped-by-kernel {} dropped-by-interface {}",
                source.name, s.received, s.dropped, s.if_dropped
            )?;
        }
        engine.finish();
        for r in engine.records.drain(..) {
            ordered.emit(&r, &name)?;
        }
        ordered.out.flush()?;
    }
    outcome.records = ordered.written;
    if opts.stats {
        write_stats(err, &engine)?;
        if opts.config.is_some() {
            writeln!(err, "config_reloads {}", ordered.reloads[0])?;
            writeln!(err, "config_reload_failures {}", ordered.reloads[1])?;
        }
    }
    Ok(outcome)
}

/// The file name of a path (what the `capture` field shows).
fn display_name(source: &str) -> Arc<str> {
    Arc::from(
        std::path::Path::new(source)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| source.to_string()),
    )
}

/// Prints the engine's counters, one `name value` per line (zero counters omitted).
pub fn write_stats(err: &mut impl Write, engine: &Engine) -> std::io::Result<()> {
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
    for r in DropReason::ALL {
        nonzero(format!("decode_drop.{}", r.as_str()), s.decode_drops[r.index()])?;
    }
    for (k, v) in &s.reassembly_giveups {
        nonzero(format!("reassembly_giveup.{k}"), *v)?;
    }
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
/// and line) and a summary; expired exemptions count as problems.
pub fn check(path: &std::path::Path, out: &mut impl Write) -> std::process::ExitCode {
    let now = wall_clock();
    let result = crate::config::Loaded::read(path).and_then(|loaded| {
        let c = Classifier::load(path)?;
        Ok((c.expired_exemptions(&loaded, now), c))
    });
    let (problems, summary) = match result {
        Ok((expired, c)) => {
            for w in &c.warnings {
                let _ = writeln!(out, "warning: {w}");
            }
            let (asn, country) = c.geoip();
            let onoff = |b: bool| if b { "on" } else { "off" };
            let summary = format!(
                "{} services in {} files (catalog {}), {} departments, config {}, ASN signal {}, country {}",
                c.catalog.services.len(),
                c.catalog.files.len(),
                &c.catalog.digest[..12],
                c.department_ids().len(),
                &c.config_digest[..12],
                onoff(asn),
                onoff(country)
            );
            (expired, Some(summary))
        }
        Err(diags) => (diags, None),
    };
    for p in &problems {
        let _ = writeln!(out, "error: {p}");
    }
    if let Some(s) = summary {
        let _ = writeln!(out, "{s}");
    }
    if problems.is_empty() {
        let _ = writeln!(out, "ok");
        std::process::ExitCode::SUCCESS
    } else {
        let _ = writeln!(out, "{} problem(s)", problems.len());
        std::process::ExitCode::FAILURE
    }
}

/// `shadowtap explain HOST|IP`: which service, channel, rule and status a name or address matches.
pub fn explain(path: &std::path::Path, query: &str, out: &mut impl Write) -> std::process::ExitCode {
    match Classifier::load(path) {
        Ok(c) => {
            for line in c.explain(query, wall_clock()) {
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

/// Sensor name of a survey in the store's uptime record.
pub const SURVEY_SENSOR: &str = "survey";

/// Longest span of one capture file counted as survey uptime; a longer one (a corrupt
/// timestamp) adds no uptime rather than years of it.
pub const MAX_SURVEY_FILE_SPAN_SECS: i64 = 366 * 86_400;

/// The facts of a report over capture files, without a daemon: the engine and classifier run
/// over `inputs` exactly as `inspect --config` does (files in turn, each its own capture), every
/// flow goes to a [`crate::store::Rollup`], which is flushed into `store` when given (a file
/// kept for later reports, with its key file) or into a store in memory (nothing left behind),
/// and the period `from..=to` is loaded (default: the first and last day with a flow).
/// Truncated captures are used up to the cut, as `inspect` does; a corrupt or unreadable one is
/// an error, since a report must not silently leave a capture out. Coverage names one sensor,
/// [`SURVEY_SENSOR`], whose uptime is the span of each capture.
///
/// # Errors
/// An invalid configuration, an unreadable or corrupt capture, a store error, or captures
/// without any flow and no period given.
pub fn survey_input(
    config: &std::path::Path,
    inputs: &[PathBuf],
    from: Option<time::Date>,
    to: Option<time::Date>,
    store: Option<&std::path::Path>,
) -> anyhow::Result<crate::report::input::ReportInput> {
    use crate::store::{ConfigFacts, Counters, Store, Writer};
    let classifier = Classifier::load(config).map_err(|diags| {
        let list: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        anyhow::anyhow!("{}: configuration has {} error(s):\n{}", config.display(), diags.len(), list.join("\n"))
    })?;
    let mut st = match store {
        Some(p) => Store::open(p)?,
        None => Store::open_in_memory()?,
    };
    st.set_settings(classifier.store);
    let mut w = Writer::new(st, SURVEY_SENSOR);
    w.rollup.set_config(ConfigFacts::of(&classifier));
    let mut engine = Engine::new(engine::Config::default());
    let files = capture::expand_inputs(inputs)?;
    anyhow::ensure!(!files.is_empty(), "no capture files in the inputs");
    let mut days: Option<(time::Date, time::Date)> = None;
    let mut account = |r: FlowRecord, w: &mut Writer| {
        let a = classifier.attribute(&r);
        w.rollup.add(&r, &a, &classifier.catalog);
        if let Some(d) = r.ts_start.utc_date() {
            days = Some(days.map_or((d, d), |(a, b)| (a.min(d), b.max(d))));
        }
    };
    for path in &files {
        let mut reader = FileReader::open(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut span: Option<(i64, i64)> = None;
        loop {
            let (batch, status) = reader.next_batch();
            if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
                span = Some((span.map_or(first.ts.secs(), |s| s.0), last.ts.secs()));
            }
            engine.handle_batch(&batch);
            drop(batch);
            for r in std::mem::take(&mut engine.records) {
                account(r, &mut w);
            }
            w.rollup.observe(Counters { packets: engine.stats.frames, ..Counters::default() });
            match status {
                file::Next::More => {}
                file::Next::End | file::Next::Truncated(_) => break,
                file::Next::Failed(msg) => anyhow::bail!("{}: corrupt capture: {msg}", path.display()),
            }
        }
        let _ = engine.finish_with(|r| -> Result<(), ()> {
            account(r, &mut w);
            Ok(())
        });
        engine.forget_dns_answers();
        w.rollup.observe(Counters { packets: engine.stats.frames, ..Counters::default() });
        if let Some((a, b)) = span.filter(|(a, b)| (0..=MAX_SURVEY_FILE_SPAN_SECS).contains(&(b - a))) {
            w.rollup.add_uptime(a, b);
        }
    }
    w.flush()?;
    let (Some(from), Some(to)) = (from.or(days.map(|d| d.0)), to.or(days.map(|d| d.1))) else {
        anyhow::bail!("the captures hold no flow: give the period of the report");
    };
    let mut input = w.store.load(from, to, None)?;
    input.source = format!("survey of {} capture file(s)", files.len());
    Ok(input)
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

/// The wall clock as a [`crate::time::Timestamp`]: for commands about "now" (check, explain),
/// never inside the packet path.
fn wall_clock() -> crate::time::Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    crate::time::Timestamp::from_parts(secs, 0)
}
