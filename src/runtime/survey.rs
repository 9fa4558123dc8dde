//! `shadowtap survey`'s facts: the pipeline over capture files into a rollup, without a daemon.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::pipeline::{self, Origin, Pipeline, Sink, SystemClock, View};
use crate::config::Settings;
use crate::engine::{Engine, FlowRecord};
use crate::report::input::ReportInput;
use crate::store::{Counters, Store, Writer};
use crate::time::Timestamp;

/// Sensor name of a survey in the store's uptime record.
pub const SURVEY_SENSOR: &str = "survey";

/// Longest span of one capture file counted as survey uptime; a longer one (a corrupt
/// timestamp) adds no uptime rather than years of it.
pub const MAX_SURVEY_FILE_SPAN_SECS: i64 = 366 * 86_400;

/// The survey sink: every flow attributed and rolled up by day.
struct Survey<'a> {
    settings: &'a Settings,
    writer: Writer,
    days: Option<(time::Date, time::Date)>,
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
        self.writer.rollup.observe(Counters { packets: view.engine.stats.frames, ..Counters::default() });
        Ok(())
    }

    fn capture_done(&mut self, span: Option<(Timestamp, Timestamp)>) -> std::io::Result<()> {
        if let Some((a, b)) = span.map(|(a, b)| (a.secs(), b.secs())).filter(|(a, b)| (0..=MAX_SURVEY_FILE_SPAN_SECS).contains(&(b - a))) {
            self.writer.rollup.add_uptime(a, b);
        }
        Ok(())
    }
}

/// The facts of a report over capture files, without a daemon: the engine and classifier run
/// over `inputs` exactly as `inspect --config` does (the same pipeline: files in turn, each its
/// own capture), every flow goes to a [`crate::store::Rollup`], which is flushed into `store`
/// when given (a file kept for later reports, with its key file) or into a store in memory
/// (nothing left behind), and the period `from..=to` is loaded (default: the first and last
/// day with a flow). Truncated captures are used up to the cut, as `inspect` does; a corrupt or
/// unreadable one is an error, since a report must not silently leave a capture out. Coverage
/// names one sensor, [`SURVEY_SENSOR`], whose uptime is the span of each capture.
///
/// # Errors
/// An invalid configuration, an unreadable or corrupt capture, a store error, or captures
/// without any flow and no period given.
pub fn input(config: &Path, inputs: &[PathBuf], from: Option<time::Date>, to: Option<time::Date>, store: Option<&Path>) -> anyhow::Result<ReportInput> {
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
    let opts = pipeline::Options { inputs: inputs.to_vec(), ..pipeline::Options::default() };
    let mut log = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut pipe = Pipeline::open(Engine::new(settings.engine), opts, stop, Arc::new(SystemClock), &mut log)?;
    anyhow::ensure!(!pipe.sources.is_empty(), "no capture files in the inputs");
    let mut survey = Survey { settings: &settings, writer, days: None };
    pipe.run(&mut survey, &mut log)?;
    if let Some(bad) = pipe.sources.iter().find(|s| s.error.is_some()) {
        anyhow::bail!("{}: unusable capture: {}", bad.name, bad.error.as_deref().unwrap_or("failed"));
    }
    let Survey { mut writer, days, .. } = survey;
    writer.flush()?;
    let (Some(from), Some(to)) = (from.or(days.map(|d| d.0)), to.or(days.map(|d| d.1))) else {
        anyhow::bail!("the captures hold no flow: give the period of the report");
    };
    let mut input = writer.store.load(from, to, None)?;
    input.source = format!("survey of {} capture file(s)", pipe.sources.len());
    input.departments_configured = settings.department_names.iter().map(|(id, _)| id.clone()).collect();
    Ok(input)
}
