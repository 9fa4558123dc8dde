//! `shadowtap report` and `shadowtap survey`: read the facts of a period from a source, build
//! the report and write it. Sources: a saved [`ReportInput`] (`--input`, JSON), a Prometheus
//! server (`--prometheus`), the local rollup store (`--store`), or capture files processed on
//! the spot (`survey`).

use std::path::PathBuf;

use time::Date;

use crate::report::compare::Comparison;
use crate::report::input::ReportInput;
use crate::report::model::{Report, ReportOptions, DEFAULT_EXPIRING_WITHIN_DAYS};
use crate::report::prometheus::{self, PromError};
use crate::report::render::{render, Format};

/// Minimum group size of a report unless asked otherwise (the sensors' default too): a report
/// is handed upwards, so it never shows smaller groups than production sensors would.
pub const DEFAULT_K: u64 = 5;

/// Where the facts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `ReportInput` saved as JSON (an archived survey, a test fixture).
    Input(PathBuf),
    /// The local rollup store.
    Store(PathBuf),
    /// A Prometheus server's HTTP API.
    Prometheus(prometheus::Server),
    /// Capture files processed now with a configuration (`shadowtap survey`): the rollup goes
    /// to `store` when given, else to memory and nothing is left behind.
    Captures {
        /// The configuration (departments, policy, catalog, k).
        config: PathBuf,
        /// Capture files or directories.
        inputs: Vec<PathBuf>,
        /// A store to keep the rollup in.
        store: Option<PathBuf>,
        /// Any damaged capture is an error (exit 1, nothing written) rather than named in the
        /// methodology.
        strict: bool,
        /// Engine workers (`--workers`, 0: the default; the report is the same for any number).
        workers: usize,
    },
}

/// What `shadowtap report` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The source.
    pub source: Source,
    /// First day; required with [`Source::Prometheus`]; with [`Source::Input`] the input's
    /// period by default (which it must then match); with [`Source::Store`] the first day with
    /// data by default; with [`Source::Captures`] the captures' first day.
    pub from: Option<Date>,
    /// Last day; as `from`.
    pub to: Option<Date>,
    /// Narrow to one department.
    pub department: Option<String>,
    /// Output format.
    pub format: Format,
    /// Output file; standard output when none.
    pub output: Option<PathBuf>,
    /// Minimum group size asked for (the larger of this and the sensors' applies); `None`:
    /// the k a saved input records ([`Source::Input`]), else [`DEFAULT_K`].
    pub k: Option<u64>,
    /// Day exemptions are judged on; `to` when none.
    pub as_of: Option<Date>,
    /// Days within which an exemption counts as expiring.
    pub expiring_within_days: u32,
    /// Also write the facts (`ReportInput` as JSON) here: an archive that `--input` renders
    /// again, or compares with next year's survey.
    pub save_input: Option<PathBuf>,
    /// Render a period the source holds no data for (no packet, no flow, no sensor uptime)
    /// instead of refusing it with [`ReportError::NoData`].
    pub allow_empty: bool,
    /// A saved input of an earlier period to compare with (`--compare`): the report gains a
    /// comparison section, both periods under the same k.
    pub compare: Option<PathBuf>,
    /// A configuration that describes the input (`report --config`): display names, the
    /// service table with risk ratings, the configured departments. The store and Prometheus
    /// do not record them; a saved input's own description is replaced.
    pub describe: Option<PathBuf>,
}

impl Command {
    /// A command with the defaults: HTML, every department, the source's k, no empty period.
    pub fn new(source: Source, from: Option<Date>, to: Option<Date>) -> Command {
        Command {
            source,
            from,
            to,
            department: None,
            format: Format::Html,
            output: None,
            k: None,
            as_of: None,
            expiring_within_days: DEFAULT_EXPIRING_WITHIN_DAYS,
            save_input: None,
            allow_empty: false,
            compare: None,
            describe: None,
        }
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The command line asks for something impossible (bad dates, empty period...): exit 2.
    #[error("{0}")]
    Usage(String),
    /// The input file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The input file is not a report input.
    #[error("{path} is not a report input (ReportInput as JSON): {source}")]
    Input {
        /// The file.
        path: PathBuf,
        /// Where and why it did not parse.
        source: serde_json::Error,
    },
    /// The Prometheus source failed.
    #[error(transparent)]
    Prometheus(#[from] PromError),
    /// The captures of a survey could not be processed.
    #[error("{0:#}")]
    Survey(anyhow::Error),
    /// The rollup store could not be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The configuration named to describe the input could not be loaded.
    #[error("{0}")]
    Config(String),
    /// The source holds no data for the period (a report of it would read as "no use"):
    /// the message names the period and, where the source can tell, the days it does hold.
    #[error("{0} (--allow-empty renders the report anyway)")]
    NoData(String),
    /// The output could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file (`-` for standard output).
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ReportError {
    /// The process exit code: 2 for a bad command line, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Parses a `YYYY-MM-DD` date.
///
/// # Errors
/// [`ReportError::Usage`] naming the text.
pub fn parse_date(text: &str) -> Result<Date, ReportError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.trim(), format).map_err(|e| ReportError::Usage(format!("bad date {text:?} ({e}): expected YYYY-MM-DD")))
}

/// Checks the period of a command against the source's needs; returns it.
fn period(cmd: &Command) -> Result<(Date, Date), ReportError> {
    let (Some(from), Some(to)) = (cmd.from, cmd.to) else {
        return Err(ReportError::Usage("--from and --to are required with --store and --prometheus".into()));
    };
    if from > to {
        return Err(ReportError::Usage(format!("empty period: --from {from} is after --to {to}")));
    }
    Ok((from, to))
}

/// Reads a saved input, checking it against `--from`/`--to` when given.
fn read_input(path: &PathBuf, cmd: &Command) -> Result<ReportInput, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read { path: path.clone(), source })?;
    let input: ReportInput = serde_json::from_str(&text).map_err(|source| ReportError::Input { path: path.clone(), source })?;
    if input.from > input.to {
        return Err(ReportError::Usage(format!("{}: empty period {} to {}", path.display(), input.from, input.to)));
    }
    if cmd.from.is_some_and(|f| f != input.from) || cmd.to.is_some_and(|t| t != input.to) {
        return Err(ReportError::Usage(format!(
            "{} covers {} to {}: leave out --from/--to or give that period (a saved input cannot be cut)",
            path.display(),
            input.from,
            input.to
        )));
    }
    Ok(input)
}

/// The facts of the command's period from its source; `now` is the current Unix time.
///
/// # Errors
/// Usage errors, and the source's errors.
pub fn load(cmd: &Command, now: i64) -> Result<ReportInput, ReportError> {
    let mut input = load_facts(cmd, now)?;
    if let Some(path) = &cmd.describe {
        let settings = crate::config::Settings::load(path).map_err(|d| ReportError::Config(d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))?;
        settings.describe(&mut input);
    }
    Ok(input)
}

/// The facts of the command's period from its source, as the source records them.
fn load_facts(cmd: &Command, now: i64) -> Result<ReportInput, ReportError> {
    match &cmd.source {
        Source::Input(path) => read_input(path, cmd),
        Source::Prometheus(server) => {
            let (from, to) = period(cmd)?;
            Ok(prometheus::load(server, from, to, now)?)
        }
        Source::Store(path) => {
            let store = crate::store::Store::open_existing(path)?;
            let days = store.data_days()?;
            let (from, to) = match (cmd.from, cmd.to, days.first(), days.last()) {
                (None, None, Some(first), Some(last)) => (*first, *last),
                (None, None, _, _) => {
                    return Err(ReportError::NoData("the store holds no data on any day: give --from and --to".into()));
                }
                _ => period(cmd)?,
            };
            // Every department (None), not `cmd.department`: the model decides suppression
            // over all departments first.
            let input = store.load(from, to, None)?;
            if !input.has_data() && !cmd.allow_empty {
                let held = if days.is_empty() { "no day at all".to_string() } else { describe_days(&days) };
                return Err(ReportError::NoData(format!("the store holds no data from {from} to {to}; it holds {held}")));
            }
            Ok(input)
        }
        Source::Captures { config, inputs, store, strict, workers } => {
            if cmd.from.is_some() {
                period(cmd)?; // a reversed period is a usage error; none means the captures' days
            }
            let what = super::survey::Captures { config, inputs, store: store.as_deref(), strict: *strict, workers: *workers };
            super::survey::input_with(&what, cmd.from, cmd.to, &mut std::io::stderr()).map_err(ReportError::Survey)
        }
    }
}

/// The days of `days` (sorted) as ranges of consecutive days and their number:
/// "2026-11-23 (1 day)", "2026-10-01 to 2026-10-05, 2026-10-07 (6 days)"; past six ranges, the
/// first three and the last two with the number left out between them.
pub fn describe_days(days: &[Date]) -> String {
    let mut ranges: Vec<(Date, Date)> = Vec::new();
    for &d in days {
        match ranges.last_mut() {
            Some((_, last)) if last.next_day() == Some(d) || *last == d => *last = d,
            _ => ranges.push((d, d)),
        }
    }
    let text = |&(a, b): &(Date, Date)| if a == b { a.to_string() } else { format!("{a} to {b}") };
    let mut parts: Vec<String> = Vec::new();
    if ranges.len() > 6 {
        parts.extend(ranges[..3].iter().map(text));
        parts.push(format!("{} more ranges", ranges.len() - 5));
        parts.extend(ranges[ranges.len() - 2..].iter().map(text));
    } else {
        parts.extend(ranges.iter().map(text));
    }
    let n = ranges.iter().map(|(a, b)| (*b - *a).whole_days() + 1).sum::<i64>();
    format!("{} ({n} day{})", parts.join(", "), if n == 1 { "" } else { "s" })
}

/// Refuses an input without data unless `--allow-empty` ([`Source::Store`] checks in [`load`],
/// where it knows the days it holds).
fn check_data(cmd: &Command, input: &ReportInput) -> Result<(), ReportError> {
    if input.has_data() || cmd.allow_empty {
        return Ok(());
    }
    let (from, to) = (input.from, input.to);
    Err(ReportError::NoData(match &cmd.source {
        Source::Input(path) => format!("{} holds no data from {from} to {to} (no packet, flow or sensor uptime)", path.display()),
        Source::Prometheus(server) => {
            format!("Prometheus at {} holds no data from {from} to {to}: no sensor was scraped up and no flow counted", server.url)
        }
        Source::Store(_) => format!("the store holds no data from {from} to {to}"),
        Source::Captures { .. } => format!("the captures hold no data from {from} to {to}"),
    }))
}

/// The rendered report of `input` for the command's options.
///
/// # Errors
/// [`ReportError::Usage`] when `--department` names a department the input does not know.
pub fn report(cmd: &Command, input: &ReportInput) -> Result<String, ReportError> {
    let earlier = cmd.compare.as_ref().map(read_earlier).transpose()?;
    report_with(cmd, input, earlier.as_ref())
}

/// Reads the earlier period's input of `--compare`.
fn read_earlier(path: &PathBuf) -> Result<ReportInput, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read { path: path.clone(), source })?;
    let input: ReportInput = serde_json::from_str(&text).map_err(|source| ReportError::Input { path: path.clone(), source })?;
    if input.from > input.to {
        return Err(ReportError::Usage(format!("{}: empty period {} to {}", path.display(), input.from, input.to)));
    }
    Ok(input)
}

/// [`report`] with the earlier period's input already read.
fn report_with(cmd: &Command, input: &ReportInput, earlier: Option<&ReportInput>) -> Result<String, ReportError> {
    if let Some(d) = &cmd.department {
        if !input.departments.iter().any(|r| &r.department == d) {
            return Err(ReportError::Usage(format!("department {d:?} has no data in {} to {}", input.from, input.to)));
        }
    }
    let k = cmd.k.unwrap_or(match cmd.source {
        // A saved input is rendered with the k it was made with (its sources' own k), so that
        // a survey made with k = 1 shows the same groups again.
        Source::Input(_) => input.coverage.min_group_size.max(1),
        _ => DEFAULT_K,
    });
    // Both periods under the same k: the larger of the request and both sources'.
    let k = earlier.map_or(k, |e| k.max(e.coverage.min_group_size));
    let opts = ReportOptions {
        k,
        department: cmd.department.clone(),
        as_of: cmd.as_of.unwrap_or(input.to),
        expiring_within_days: cmd.expiring_within_days,
    };
    let mut built = Report::build(input, &opts);
    if let Some(e) = earlier {
        built.comparison = Some(Comparison::build(&built, input, e, &opts));
    }
    Ok(render(&built, cmd.format))
}

/// Runs `shadowtap report`: loads, builds, renders and writes to `--output` or `stdout`.
///
/// # Errors
/// See [`ReportError`]; [`ReportError::exit_code`] gives the exit status.
pub fn run(cmd: &Command, now: i64, stdout: &mut dyn std::io::Write) -> Result<(), ReportError> {
    if cmd.from.is_some() != cmd.to.is_some() {
        return Err(ReportError::Usage("give both --from and --to".into()));
    }
    let earlier = cmd.compare.as_ref().map(read_earlier).transpose()?;
    let input = load(cmd, now)?;
    check_data(cmd, &input)?;
    if let Some(path) = &cmd.save_input {
        let mut json = serde_json::to_string_pretty(&input).map_err(|e| ReportError::Write { path: path.clone(), source: std::io::Error::other(e) })?;
        json.push('\n');
        std::fs::write(path, json).map_err(|source| ReportError::Write { path: path.clone(), source })?;
    }
    let text = report_with(cmd, &input, earlier.as_ref())?;
    match &cmd.output {
        Some(path) => std::fs::write(path, text).map_err(|source| ReportError::Write { path: path.clone(), source }),
        None => stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).map_err(|source| ReportError::Write { path: "-".into(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn temp(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("shadowtap-report-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn dates_parse_or_say_what_is_expected() {
        assert_eq!(parse_date("2026-10-01").unwrap(), date!(2026 - 10 - 01));
        for bad in ["2026-13-01", "2026-02-30", "01/10/2026", "", "yesterday"] {
            let e = parse_date(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");
        }
    }

    #[test]
    fn empty_periods_and_missing_dates_are_usage_errors() {
        let prom = Source::Prometheus(prometheus::Server { url: "http://127.0.0.1:1".into(), user: None, password: None });
        let cmd = Command::new(prom.clone(), Some(date!(2026 - 10 - 31)), Some(date!(2026 - 10 - 01)));
        let e = run(&cmd, 0, &mut Vec::new()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("empty period"), "{e}");
        let e = run(&Command::new(prom.clone(), None, None), 0, &mut Vec::new()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = run(&Command::new(prom, Some(date!(2026 - 10 - 01)), None), 0, &mut Vec::new()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn a_store_that_is_not_there_or_not_a_store_is_an_error() {
        let cmd = Command::new(Source::Store("absent-store.sqlite".into()), Some(date!(2026 - 10 - 01)), Some(date!(2026 - 10 - 31)));
        let e = run(&cmd, 0, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, ReportError::Store(_)), "{e}");
        assert!(!std::path::Path::new("absent-store.sqlite").exists(), "a report never creates a store");
        let junk = temp("junk-store", "this is not a database, just text long enough to be read");
        let e = run(&Command::new(Source::Store(junk), Some(date!(2026 - 10 - 01)), Some(date!(2026 - 10 - 31))), 0, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, ReportError::Store(_)), "{e}");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn corrupt_inputs_give_errors_not_panics() {
        for (name, text) in [("empty", ""), ("junk", "{\"from\": 3"), ("array", "[]"), ("baddate", "{\"from\": \"2026-99-01\"}")] {
            let p = temp(name, text);
            let e = run(&Command::new(Source::Input(p.clone()), None, None), 0, &mut Vec::new()).unwrap_err();
            assert!(matches!(e, ReportError::Input { .. }), "{name}: {e}");
            assert!(e.to_string().contains("not a report input"));
            std::fs::remove_file(p).unwrap();
        }
        let e = run(&Command::new(Source::Input("/nonexistent/x.json".into()), None, None), 0, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, ReportError::Read { .. }));
    }

    #[test]
    fn days_held_are_summarised_as_ranges() {
        assert_eq!(describe_days(&[date!(2026 - 11 - 23)]), "2026-11-23 (1 day)");
        let days = [date!(2026 - 10 - 01), date!(2026 - 10 - 02), date!(2026 - 10 - 03), date!(2026 - 10 - 07)];
        assert_eq!(describe_days(&days), "2026-10-01 to 2026-10-03, 2026-10-07 (4 days)");
        let many: Vec<Date> = (0..10).map(|i| date!(2026 - 01 - 01) + time::Duration::days(2 * i)).collect();
        assert_eq!(
            describe_days(&many),
            "2026-01-01, 2026-01-03, 2026-01-05, 5 more ranges, 2026-01-17, 2026-01-19 (10 days)"
        );
    }

    #[test]
    fn an_input_without_data_is_refused_unless_allowed() {
        let mut input = crate::report::model::tests::input();
        input.services.clear();
        input.channels.clear();
        input.categories.clear();
        input.departments.clear();
        input.weeks.clear();
        input.coverage = crate::report::input::Coverage { min_group_size: 1, ..Default::default() };
        let p = temp("nodata.json", &serde_json::to_string(&input).unwrap());
        let mut cmd = Command::new(Source::Input(p.clone()), None, None);
        let e = run(&cmd, 0, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, ReportError::NoData(_)), "{e}");
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("holds no data from 2026-10-01 to 2026-10-31") && e.to_string().contains("--allow-empty"), "{e}");
        cmd.allow_empty = true;
        run(&cmd, 0, &mut Vec::new()).unwrap();
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn a_saved_input_renders_and_keeps_its_period() {
        let input = crate::report::model::tests::input();
        let p = temp("ok.json", &serde_json::to_string(&input).unwrap());
        let mut cmd = Command::new(Source::Input(p.clone()), None, None);
        cmd.format = Format::Json;
        let mut out = Vec::new();
        run(&cmd, 0, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["period"]["from"], "2026-10-01");
        cmd.from = Some(date!(2026 - 10 - 02));
        cmd.to = Some(date!(2026 - 10 - 31));
        assert_eq!(run(&cmd, 0, &mut Vec::new()).unwrap_err().exit_code(), 2, "a saved input cannot be cut");
        cmd.from = None;
        cmd.to = None;
        cmd.department = Some("nosuch".into());
        assert_eq!(run(&cmd, 0, &mut Vec::new()).unwrap_err().exit_code(), 2);
        std::fs::remove_file(p).unwrap();
    }
}
