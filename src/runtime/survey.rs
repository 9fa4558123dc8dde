//! `shadowtap survey`'s facts: the pipeline over capture files into a rollup, without a daemon.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::pipeline::{self, Origin, Pipeline, Sink, SystemClock, View};
use crate::config::Settings;
use crate::engine::FlowRecord;
use crate::report::input::{CaptureDamage, DamagedCapture, ReportInput};
use crate::store::{Counters, Store, Writer};
use crate::time::Timestamp;

/// Sensor name of a survey in the store's uptime record.
pub const SURVEY_SENSOR: &str = "survey";

/// The survey sink: every flow attributed and rolled up by day.
struct Survey<'a> {
    settings: &'a Settings,
    writer: Writer,
    days: Option<(time::Date, time::Date)>,
    /// Minutes (Unix time / 60, UTC) that hold at least one packet: the survey's coverage.
    minutes: BTreeSet<i64>,
}

impl Sink for Survey<'_> {
    fn flow(&mut self, r: FlowRecord, _: &Origin) -> std::io::Result<()> {
        let c = &self.settings.classifier;
        let a = c.attribute(&r);
        self.writer.rollup.add(&r, &a, &c.catalog);
        if let Some(d) = r.ts_start.utc_date() {
            self.days = Some(self.days.map_or((d, d), |(a, b)| (a.min(d), b.max(d))));
        }
        Ok(())
    }

    fn tick(&mut self, view: &View<'_>, _: &mut dyn Write) -> std::io::Result<()> {
        self.writer.rollup.observe(Counters { packets: view.frames, ..Counters::default() });
        Ok(())
    }

    fn wants_packet_times(&self) -> bool {
        true
    }

    fn packet_times(&mut self, times: &mut dyn Iterator<Item = Timestamp>) {
        let mut last = None;
        for t in times {
            let m = t.secs().div_euclid(60);
            if last != Some(m) {
                self.minutes.insert(m);
                last = Some(m);
            }
        }
    }
}

/// The minutes that hold packets as uptime: each run of consecutive minutes once.
fn add_minutes(writer: &mut Writer, minutes: &BTreeSet<i64>) {
    let mut run: Option<(i64, i64)> = None;
    for &m in minutes {
        run = match run {
            Some((a, b)) if b + 1 == m => Some((a, m)),
            Some((a, b)) => {
                writer.rollup.add_uptime(a * 60, (b + 1) * 60);
                Some((m, m))
            }
            None => Some((m, m)),
        };
    }
    if let Some((a, b)) = run {
        writer.rollup.add_uptime(a * 60, (b + 1) * 60);
    }
}

/// The facts of a report over capture files, without a daemon: the engine and classifier run
/// over `inputs` exactly as `inspect --config` does (the same pipeline: files in turn, each its
/// own capture), every flow goes to a [`crate::store::Rollup`], which is flushed into `store`
/// when given (a file kept for later reports, with its key file) or into a store in memory
/// (nothing left behind), and the period `from..=to` is loaded (default: the first and last
/// day with a flow).
///
/// Damaged captures do not stop a survey: a truncated one is used up to the cut, as `inspect`
/// does; an unreadable or corrupt one is left out from the damage on. Each is named on `log`
/// and in the input's [`ReportInput::damaged_captures`] (the report's methodology). With
/// `strict`, any damaged capture is an error instead, and nothing is returned.
///
/// What a survey reads, and how.
#[derive(Debug, Clone, Copy)]
pub struct Captures<'a> {
    /// The configuration (departments, policy, catalog, k).
    pub config: &'a Path,
    /// Capture files or directories.
    pub inputs: &'a [PathBuf],
    /// A store to keep the rollup in (else memory).
    pub store: Option<&'a Path>,
    /// Any damaged capture is an error rather than named in the methodology.
    pub strict: bool,
    /// Engine workers (0: the default; the input is the same for any number).
    pub workers: usize,
}

/// Coverage names one sensor, [`SURVEY_SENSOR`], whose uptime is the minutes (UTC) that hold
/// at least one packet, each counted once.
///
/// # Errors
/// An invalid configuration, no capture file, a damaged capture with `strict`, a store error,
/// or captures without any flow and no period given.
pub fn input_with(what: &Captures<'_>, from: Option<time::Date>, to: Option<time::Date>, log: &mut dyn Write) -> anyhow::Result<ReportInput> {
    let Captures { config, inputs, store, strict, workers } = *what;
    let settings = Settings::load(config).map_err(|diags| {
        let list: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        anyhow::anyhow!("{}: configuration has {} error(s):\n{}", config.display(), diags.len(), list.join("\n"))
    })?;
    let mut st = match store {
        Some(p) => Store::open(p)?,
        None => Store::open_in_memory()?,
    };
    st.set_settings(settings.store);
    let mut writer = Writer::new(st, SURVEY_SENSOR);
    writer.rollup.set_config(settings.facts());
    let opts = pipeline::Options { inputs: inputs.to_vec(), workers, ..pipeline::Options::default() };
    let mut pipe_log = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut pipe = Pipeline::open(settings.engine, opts, stop, Arc::new(SystemClock), &mut pipe_log)?;
    anyhow::ensure!(!pipe.sources.is_empty(), "no capture files in the inputs");
    let mut survey = Survey { settings: &settings, writer, days: None, minutes: BTreeSet::new() };
    pipe.run(&mut survey, &mut pipe_log)?;
    let mut damaged: Vec<(String, DamagedCapture)> = Vec::new();
    for s in pipe.sources.iter().filter(|s| s.error.is_some()) {
        let file = pipeline::display_name(&s.name).to_string();
        // The report names the file, never the directories of this machine above it.
        let reason = s.error.clone().unwrap_or_default().replace(&s.name, &file);
        damaged.push((s.name.clone(), DamagedCapture { file, damage: CaptureDamage::Skipped, reason }));
    }
    for (name, msg) in &pipe.truncated {
        damaged.push((name.clone(), DamagedCapture { file: pipeline::display_name(name).to_string(), damage: CaptureDamage::Truncated, reason: msg.clone() }));
    }
    for (name, d) in &damaged {
        let what = match d.damage {
            CaptureDamage::Skipped => "skipped",
            CaptureDamage::Truncated => "truncated, used up to the cut",
        };
        writeln!(log, "{}: {name}: {what}: {}", if strict { "error" } else { "warning" }, d.reason)?;
    }
    if strict && !damaged.is_empty() {
        anyhow::bail!("{} and --strict: no report written", crate::report::display::counted(damaged.len() as u64, "damaged capture file", "damaged capture files"));
    }
    let Survey { mut writer, days, minutes, .. } = survey;
    add_minutes(&mut writer, &minutes);
    writer.flush()?;
    let (Some(from), Some(to)) = (from.or(days.map(|d| d.0)), to.or(days.map(|d| d.1))) else {
        anyhow::bail!("the captures hold no flow: give the period of the report");
    };
    let mut input = writer.store.load(from, to, None)?;
    input.source = format!("survey of {}", crate::report::display::counted(pipe.sources.len() as u64, "capture file", "capture files"));
    input.damaged_captures = damaged.into_iter().map(|(_, d)| d).collect();
    input.damaged_captures.sort();
    settings.describe(&mut input);
    Ok(input)
}

/// [`input_with`], not strict, naming damaged captures on standard error.
///
/// # Errors
/// As [`input_with`].
pub fn input(config: &Path, inputs: &[PathBuf], from: Option<time::Date>, to: Option<time::Date>, store: Option<&Path>) -> anyhow::Result<ReportInput> {
    let what = Captures { config, inputs, store, strict: false, workers: 0 };
    input_with(&what, from, to, &mut std::io::stderr())
}
