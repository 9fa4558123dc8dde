//! `shadowtap inspect`: one record per flow, as JSON lines or a table, from the pipeline.
//!
//! Records of a capture file are written in the order of their flows' first packets (a flow
//! that ended early waits for every earlier-starting one); records of a live interface are
//! written, and flushed, as their flows end, so a first look at a SPAN port shows flows at once.
//!
//! With `--stats`, the end adds the registrable domains outside the catalog (every named
//! destination without `--config`) with the most distinct clients, each with its flows: at most
//! [`crate::aggregate::UNCATALOGUED_TOP`], only domains of at least k clients (the
//! configuration's minimum group size; 1 without one, as each record names its client anyway),
//! the others counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::control::{Control, Reload};
use super::pipeline::{self, Origin, Pipeline, Sink, SystemClock, View};
use crate::capture::LiveOptions;
use crate::classify::Classifier;
use crate::config::Settings;
use crate::engine::{self, FlowRecord};
use crate::export;

/// Time `inspect` has to end after SIGINT/SIGTERM before it exits regardless (it may be
/// blocked opening a FIFO or reading an idle standard input).
pub const STOP_GRACE: Duration = Duration::from_secs(5);

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
    /// Most flows held at once; the configuration's `[engine] max_flows` (or the default)
    /// when absent. The other engine limits come from the configuration's `[engine]`.
    pub max_flows: Option<usize>,
    /// Print counters to stderr at the end.
    pub stats: bool,
    /// Configuration (catalog, departments, policy): adds service and status to each record.
    pub config: Option<PathBuf>,
    /// Stop a live capture after this many frames (live records are written as flows end).
    pub max_frames: Option<u64>,
    /// Engine workers (`--workers`; 0: the default): the records are the same for any number.
    pub workers: usize,
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

/// The inspect sink: ordered records, with the classifier in force (reloads between records).
struct Ordered<'w, W: Write> {
    out: &'w mut W,
    classifier: Option<Classifier>,
    control: &'w Control,
    /// Configuration reloads that took effect / were rejected (the old one stayed in force).
    reloads: [u64; 2],
    format: Format,
    pending: BTreeMap<u64, (FlowRecord, Arc<str>)>,
    next: u64,
    written: u64,
    /// What unanswered flows count toward (the configuration's; apart without one).
    unanswered: crate::aggregate::Unanswered,
    /// Domains outside the catalog, with `--stats`.
    discovery: Option<Discovery>,
}

/// Flows and distinct clients per registrable domain outside the catalog, bounded like the
/// daemon's ([`crate::aggregate::MAX_UNCATALOGUED_DOMAINS`] domains, clients counted up to
/// [`crate::aggregate::MAX_HOSTS_PER_DOMAIN`]).
#[derive(Debug, Default)]
struct Discovery {
    domains: HashMap<String, (u64, HashSet<IpAddr>)>,
    dropped: u64,
}

impl Discovery {
    fn add(&mut self, domain: String, client: IpAddr) {
        let full = self.domains.len() >= crate::aggregate::MAX_UNCATALOGUED_DOMAINS;
        let entry = match self.domains.get_mut(&domain) {
            Some(e) => e,
            None if full => {
                self.dropped += 1;
                return;
            }
            None => self.domains.entry(domain).or_default(),
        };
        entry.0 += 1;
        if entry.1.len() < crate::aggregate::MAX_HOSTS_PER_DOMAIN {
            entry.1.insert(client);
        }
    }

    /// `uncatalogued_domain DOMAIN flows N clients N` for the top domains of at least `k`
    /// clients, then what was left out, counted.
    fn write(&self, err: &mut impl Write, k: usize) -> std::io::Result<()> {
        let mut named: Vec<(&str, u64, usize)> =
            self.domains.iter().map(|(d, (f, c))| (d.as_str(), *f, c.len())).filter(|x| x.2 >= k.max(1)).collect();
        named.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(b.0)));
        let top = crate::aggregate::UNCATALOGUED_TOP;
        for (d, flows, clients) in named.iter().take(top) {
            writeln!(err, "uncatalogued_domain {d} flows {flows} clients {clients}")?;
        }
        let below_k = self.domains.len() - named.len();
        for (label, v) in [
            ("uncatalogued_domains_not_listed", named.len().saturating_sub(top) as u64),
            ("uncatalogued_domains_below_k", below_k as u64),
            ("uncatalogued_domains_dropped", self.dropped),
        ] {
            if v > 0 {
                writeln!(err, "{label} {v}")?;
            }
        }
        Ok(())
    }
}

impl<W: Write> Ordered<'_, W> {
    fn emit(&mut self, r: &FlowRecord, capture: &str) -> std::io::Result<()> {
        self.written += 1;
        let attribution = self.classifier.as_ref().map(|c| c.attribute(r));
        if let Some(disc) = &mut self.discovery {
            // Outside the catalog: named, no service matched (without a catalog, every name).
            let outside = attribution.as_ref().is_none_or(|a| a.target.is_none() && a.status.is_none());
            let used = r.answered() || self.unanswered == crate::aggregate::Unanswered::AsUse;
            if let Some(domain) = (outside && used).then(|| crate::classify::domain::flow_domain(r)).flatten() {
                disc.add(domain, r.client.ip());
            }
        }
        let attributed = attribution.as_ref().zip(self.classifier.as_ref().map(|c| &c.catalog));
        match self.format {
            Format::Jsonl => export::jsonl::write(self.out, r, capture, attributed),
            Format::Table => export::table::write(self.out, r, capture, attributed),
        }
    }
}

impl<W: Write> Sink for Ordered<'_, W> {
    fn flow(&mut self, r: FlowRecord, origin: &Origin) -> std::io::Result<()> {
        if origin.live {
            self.emit(&r, &origin.name)?;
            return self.out.flush();
        }
        self.pending.insert(r.seq, (r, origin.name.clone()));
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

    /// Puts a reloaded configuration in force between two records.
    fn tick(&mut self, _: &View<'_>, log: &mut dyn Write) -> std::io::Result<()> {
        while let Some(reload) = self.control.try_reload() {
            match reload {
                Reload::Loaded(s, why) => {
                    writeln!(log, "{}: configuration reloaded ({})", s.path.display(), why.as_str())?;
                    self.classifier = Some(s.classifier);
                    self.reloads[0] += 1;
                }
                Reload::Rejected(diags, _) => {
                    for d in &diags {
                        writeln!(log, "error: {d}")?;
                    }
                    writeln!(log, "error: reload rejected; the previous configuration stays in force")?;
                    self.reloads[1] += 1;
                }
            }
        }
        Ok(())
    }

    /// Writes everything still held (end of a capture: every flow has ended).
    fn capture_done(&mut self, _: Option<(crate::time::Timestamp, crate::time::Timestamp)>) -> std::io::Result<()> {
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
/// Only an I/O error on `out` (e.g. a closed pipe), an invalid configuration or signal handlers
/// that cannot be set up stop the run.
pub fn inspect(opts: &InspectOptions, out: &mut impl Write, err: &mut impl Write) -> anyhow::Result<Outcome> {
    let settings = match &opts.config {
        Some(path) => match Settings::load(path) {
            Ok(s) => {
                for w in &s.warnings {
                    writeln!(err, "warning: {w}")?;
                }
                Some(s)
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
    let control = Control::start(settings.as_ref().map(|s| (s.path.clone(), s.mapping_watch())), STOP_GRACE)?;
    let popts = pipeline::Options {
        inputs: opts.inputs.clone(),
        live: opts.live.clone(),
        filter: opts.filter.clone(),
        realtime: false,
        max_frames: opts.max_frames,
        linger: false,
        workers: opts.workers,
    };
    let mut limits = settings.as_ref().map_or_else(engine::Config::default, |s| s.engine);
    limits.max_flows = opts.max_flows.unwrap_or(limits.max_flows);
    let mut pipe = Pipeline::open(limits, popts, Arc::clone(&control.stop), Arc::new(SystemClock), err)?;
    let k = settings.as_ref().map_or(1, |s| s.privacy.min_group_size);
    let unanswered = settings.as_ref().map_or_else(Default::default, |s| s.unanswered);
    let mut ordered = Ordered {
        out,
        unanswered,
        discovery: opts.stats.then(Discovery::default),
        classifier: settings.map(|s| s.classifier),
        control: &control,
        reloads: [0; 2],
        format: opts.format,
        pending: BTreeMap::new(),
        next: 0,
        written: 0,
    };
    if opts.format == Format::Table {
        export::table::write_header(ordered.out)?;
    }
    let done = pipe.run(&mut ordered, err);
    let (reloads, written, discovery) = (ordered.reloads, ordered.written, ordered.discovery.take());
    ordered.out.flush()?;
    drop(ordered);
    let done = done?;
    if opts.stats {
        super::write_stats(err, pipe.counters())?;
        if opts.config.is_some() {
            writeln!(err, "config_reloads {}", reloads[0])?;
            writeln!(err, "config_reload_failures {}", reloads[1])?;
        }
        if let Some(d) = discovery {
            d.write(err, k)?;
        }
    }
    Ok(Outcome { records: written, failed_inputs: done.failed, truncated_inputs: done.truncated })
}
