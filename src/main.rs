//! `shadowtap` command line: parses arguments and hands over to the library's runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc instead of the system allocator: flows allocate small summaries at a high rate,
/// and glibc malloc/free took 13% of a run over the reference workload. Built as v2 without
/// transparent huge pages (Cargo.toml): the default v3 with huge pages peaked 38 MiB higher on
/// the same heap (docs/architecture.md, "Where the time goes").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use shadowtap::capture::{LiveOptions, DEFAULT_BUFFER_BYTES, DEFAULT_SNAPLEN};
use shadowtap::runtime::report as command;
use shadowtap::runtime::{self, Format, InspectOptions};

#[derive(Parser)]
#[command(name = "shadowtap", version, about = "Passive sensor for shadow-IT channels: TLS/QUIC/DNS metadata, never content")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Jsonl,
    Table,
}

#[derive(Subcommand)]
enum Command {
    /// Print one record per flow (JSON lines or a table) from captures or live interfaces.
    Inspect {
        /// Capture files (pcap, pcapng) or directories of them; `-` reads standard input.
        #[arg(value_name = "PCAP")]
        inputs: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: FormatArg,
        /// Capture live from this interface (repeatable; `any` = all interfaces).
        #[arg(short = 'i', long = "interface", value_name = "IF")]
        interfaces: Vec<String>,
        /// Snapshot length of live captures, bytes.
        #[arg(long, default_value_t = DEFAULT_SNAPLEN)]
        snaplen: i32,
        /// Kernel buffer size of live captures, bytes.
        #[arg(long, default_value_t = DEFAULT_BUFFER_BYTES)]
        buffer_size: i32,
        /// Do not put interfaces in promiscuous mode.
        #[arg(long)]
        no_promisc: bool,
        /// BPF filter (tcpdump syntax) for files and interfaces.
        #[arg(short = 'f', long)]
        filter: Option<String>,
        /// Stop live capture after this many frames.
        #[arg(short = 'c', long)]
        count: Option<u64>,
        /// Most flows held at once (the least recently seen are evicted beyond it); default: the
        /// configuration's `[engine] max_flows`, else 262144.
        #[arg(long)]
        max_flows: Option<usize>,
        /// Print the sensor's counters (drops by reason, give-ups, flows) to stderr at the end.
        #[arg(long)]
        stats: bool,
        /// Configuration file (catalog, departments, policy): adds service, channel, category,
        /// department and status to every record.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Engine worker threads (flows split by a symmetric hash; the output is the same for
        /// any number). Default: the cores available but one (the reader's), at most 4. A live capture uses one.
        #[arg(long, value_name = "N", value_parser = workers_arg)]
        workers: Option<usize>,
    },
    /// Run the sensor: replay captures and/or read interfaces, aggregate per department, serve
    /// Prometheus metrics until stopped (SIGTERM/SIGINT); SIGHUP reloads the configuration.
    Run {
        /// Configuration file.
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Capture files or directories to replay (repeatable). At least one --pcap or
        /// --interface is required.
        #[arg(long = "pcap", value_name = "PATH")]
        pcaps: Vec<PathBuf>,
        /// Live interface (repeatable).
        #[arg(short = 'i', long = "interface", value_name = "IF")]
        interfaces: Vec<String>,
        /// HTTP address of /metrics, /healthz and /readyz.
        #[arg(long, default_value = shadowtap::runtime::run::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// Replay captures at their recorded pace.
        #[arg(long)]
        realtime: bool,
        /// BPF filter (tcpdump syntax) for files and interfaces.
        #[arg(short = 'f', long)]
        filter: Option<String>,
        /// Snapshot length of live captures, bytes.
        #[arg(long, default_value_t = DEFAULT_SNAPLEN)]
        snaplen: i32,
        /// Kernel buffer size of live captures, bytes.
        #[arg(long, default_value_t = DEFAULT_BUFFER_BYTES)]
        buffer_size: i32,
        /// Do not put interfaces in promiscuous mode.
        #[arg(long)]
        no_promisc: bool,
        /// Directory of the saved aggregation: restored at start, saved periodically and at a
        /// clean stop, so a restart keeps its windows and counts.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Seconds between state saves (what a crash can lose at most).
        #[arg(long, default_value_t = 60)]
        save_interval: u64,
        /// Switch to this user once the capture devices are open (when started as root).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Write security events (ECS-style JSON lines) to this file, or `-` for stdout.
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        /// TLS and basic authentication for /metrics: a Prometheus exporter-toolkit web
        /// configuration file (tls_server_config, basic_auth_users).
        #[arg(long, value_name = "FILE")]
        web_config: Option<PathBuf>,
        /// Rollup store (SQLite) of daily usage for reports, flushed every --save-interval and
        /// at a clean stop; its keys go to FILE.keys. Default with --state-dir: DIR/rollup.sqlite.
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
        /// Name of this sensor in the store's uptime record (default: the machine's host name).
        #[arg(long, value_name = "NAME")]
        sensor_name: Option<String>,
        /// Engine worker threads for the replayed captures (the results are the same for any
        /// number). Default: the cores available but one (the reader's), at most 4. A live capture uses one.
        #[arg(long, value_name = "N", value_parser = workers_arg)]
        workers: Option<usize>,
    },
    /// Maintain a rollup store.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// The default ASN database (openly licensed IP-to-ASN table, CC BY 4.0, no account).
    Asn {
        #[command(subcommand)]
        action: AsnAction,
    },
    /// Validate the configuration and the service catalog; every problem with file and line.
    Check {
        /// Configuration file.
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Fail on warnings too (an expired exemption, host bits in a prefix, an unloadable
        /// GeoIP database), not only on problems.
        #[arg(long)]
        strict: bool,
    },
    /// Survey report of a period (HTML, Markdown, CSV or JSON) for CISOs and auditors: use per
    /// department, category and service, weekly trend, top unsanctioned services, exemptions,
    /// methodology and coverage. Groups smaller than the minimum group size are never shown.
    Report(ReportArgs),
    /// The auditor's path: process capture files with a configuration and write the survey
    /// report directly (no daemon; no store left behind unless --store is given).
    Survey(SurveyArgs),
    /// List the catalog's services (id, name, category, vendor, vendor country) as a table.
    Services {
        /// Only the services of this category (`messaging`, `file-sharing`, ...).
        #[arg(long, value_name = "C")]
        category: Option<String>,
        /// Configuration file (its `catalog` is listed).
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show which service, channel, rule and status a host name or IP address matches.
    Explain {
        /// A host name (`web.whatsapp.com`) or an IP address.
        query: String,
        /// Configuration file.
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreAction {
    /// Copy a store while the sensor writes it (SQLite online backup: a consistent snapshot).
    /// The key file is not copied: the backup alone cannot test addresses against sketches.
    Backup {
        /// The store.
        #[arg(long, value_name = "FILE")]
        store: PathBuf,
        /// The copy (must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum AsnAction {
    /// Install or refresh the ASN database: fetches the npm package @ip-location-db/asn with
    /// `npm pack` (npm's configured registry), compiles its table into an MMDB file, checks known
    /// lookups and renames it into place; prints the licence attribution. Used by the sensor
    /// when `geoip_asn` is not configured.
    Update {
        /// Folder to install asn.mmdb into.
        #[arg(long, value_name = "DIR", default_value = shadowtap::asndb::DEFAULT_DIR)]
        dir: PathBuf,
        /// Install this file instead of running npm: the package tarball (`npm pack`), one of
        /// its CSV tables, or an ASN MMDB file (GeoLite2-ASN schema).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormatArg {
    Html,
    Md,
    Csv,
    Json,
}

/// Where `report` reads the facts of the period: exactly one.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct ReportSource {
    /// The local rollup store of `shadowtap run`.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
    /// A Prometheus server's base URL (all its shadowtap sensors are reported together).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// A saved report input (ReportInput as JSON), e.g. an archived survey.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
}

/// How a report is rendered: shared by `report` and `survey`.
#[derive(clap::Args)]
struct RenderArgs {
    /// Report on one department only.
    #[arg(long, value_name = "ID")]
    department: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "html")]
    format: ReportFormatArg,
    /// Output file (standard output when absent).
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Minimum group size: no group of fewer hosts is shown; the sources' own k (the sensors'
    /// or the configuration's privacy.min_group_size) applies if larger. Default: the k a
    /// saved input records for `report --input`, 5 for `report --store`/`--prometheus`; for
    /// `survey`, the configuration's.
    #[arg(long, value_name = "N")]
    k: Option<u64>,
    /// Day exemptions are judged on (expired, expiring); the last day of the period by default.
    #[arg(long, value_name = "DATE")]
    as_of: Option<String>,
    /// Days after --as-of within which an exemption counts as expiring.
    #[arg(long, value_name = "DAYS", default_value_t = shadowtap::report::model::DEFAULT_EXPIRING_WITHIN_DAYS)]
    expiring_within: u32,
    /// Also write the facts of the period (JSON): `report --input` renders them again next
    /// year, or in another format.
    #[arg(long, value_name = "FILE")]
    save_input: Option<PathBuf>,
    /// Render the report even when the source holds no data for the period (no packet, flow
    /// or sensor uptime); without it such a period is an error naming the days it holds.
    #[arg(long)]
    allow_empty: bool,
    /// A saved input of an earlier period (from --save-input): the report compares each
    /// category's share of active devices now and then, in percentage points, under the same k.
    #[arg(long, value_name = "INPUT")]
    compare: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// First day of the period (YYYY-MM-DD, UTC); with --input, the input's by default; with
    /// --store, the store's first day with data.
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    /// Last day of the period (YYYY-MM-DD, UTC, inclusive); with --input, the input's by
    /// default; with --store, the store's last day with data.
    #[arg(long, value_name = "DATE")]
    to: Option<String>,
    #[command(flatten)]
    render: RenderArgs,
    #[command(flatten)]
    source: ReportSource,
    /// Basic-auth user for --prometheus; the password is read from the environment variable
    /// SHADOWTAP_PROMETHEUS_PASSWORD.
    #[arg(long, value_name = "USER", requires = "prometheus")]
    prometheus_user: Option<String>,
    /// Configuration that describes the services and departments (display names, the service
    /// table with risk ratings, configured departments without traffic), which the store and
    /// Prometheus do not record. Default for --store and --prometheus: the default
    /// configuration file when it exists.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SurveyArgs {
    /// Configuration file (departments, policy, catalog; its privacy.min_group_size applies
    /// when larger than --k).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Capture files (pcap, pcapng) or directories of them.
    #[arg(value_name = "PCAP", required = true)]
    inputs: Vec<PathBuf>,
    /// First day of the period (YYYY-MM-DD, UTC); the first day with a flow by default.
    #[arg(long, value_name = "DATE", requires = "to")]
    from: Option<String>,
    /// Last day of the period (YYYY-MM-DD, UTC, inclusive); the last day with a flow by default.
    #[arg(long, value_name = "DATE", requires = "from")]
    to: Option<String>,
    /// Keep the rollup in this store (created if needed; its key file beside it) for later
    /// `report --store`.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
    /// Fail (exit 1, no report written) when any capture is damaged, instead of reading past
    /// it and naming it in the methodology.
    #[arg(long)]
    strict: bool,
    /// Engine worker threads (the report is the same for any number). Default: the cores
    /// available but one (the reader's), at most 4.
    #[arg(long, value_name = "N", value_parser = workers_arg)]
    workers: Option<usize>,
    #[command(flatten)]
    render: RenderArgs,
}

/// Environment variable holding the password of --prometheus-user (never on the command line,
/// where other users could read it).
const PROMETHEUS_PASSWORD_ENV: &str = "SHADOWTAP_PROMETHEUS_PASSWORD";

/// `shadowtap report`: arguments to a `command::Command`, then run it.
fn report(args: ReportArgs) -> ExitCode {
    use shadowtap::report;
    use command::{self as command, ReportError};
    let command = (|| -> Result<command::Command, ReportError> {
        let source = match (args.source.store, args.source.prometheus, args.source.input) {
            (Some(path), _, _) => command::Source::Store(path),
            (_, Some(url), _) => {
                let password = std::env::var(PROMETHEUS_PASSWORD_ENV).ok();
                if args.prometheus_user.is_some() && password.is_none() {
                    return Err(ReportError::Usage(format!("--prometheus-user needs the password in {PROMETHEUS_PASSWORD_ENV}")));
                }
                command::Source::Prometheus(report::prometheus::Server { url, user: args.prometheus_user, password })
            }
            (_, _, Some(path)) => command::Source::Input(path),
            (None, None, None) => return Err(ReportError::Usage("give --store, --prometheus or --input".into())),
        };
        let describe = args.config.or_else(|| {
            let default = PathBuf::from(DEFAULT_CONFIG);
            (!matches!(source, command::Source::Input(_)) && default.exists()).then_some(default)
        });
        let mut c = report_command(source, args.from, args.to, args.render, None)?;
        c.describe = describe;
        Ok(c)
    })();
    run_report(command)
}

/// The `command::Command` of a source, a period and the rendering arguments.
fn report_command(
    source: command::Source,
    from: Option<String>,
    to: Option<String>,
    r: RenderArgs,
    default_k: Option<u64>,
) -> Result<command::Command, command::ReportError> {
    use shadowtap::report;
    let date = |d: Option<String>| d.as_deref().map(command::parse_date).transpose();
    Ok(command::Command {
        source,
        from: date(from)?,
        to: date(to)?,
        department: r.department,
        format: match r.format {
            ReportFormatArg::Html => report::Format::Html,
            ReportFormatArg::Md => report::Format::Markdown,
            ReportFormatArg::Csv => report::Format::Csv,
            ReportFormatArg::Json => report::Format::Json,
        },
        output: r.output,
        k: r.k.or(default_k),
        as_of: date(r.as_of)?,
        expiring_within_days: r.expiring_within,
        save_input: r.save_input,
        allow_empty: r.allow_empty,
        compare: r.compare,
        describe: None,
    })
}

/// Runs a report command; the exit code says how it went (2: bad command line).
fn run_report(command: Result<command::Command, command::ReportError>) -> ExitCode {
    // Rounded up: queries run at whole seconds, and a sample scraped in the current second
    // must be inside the period.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 + i64::from(d.subsec_nanos() > 0))
        .unwrap_or(0);
    let stdout = std::io::stdout();
    match command.and_then(|c| command::run(&c, now, &mut stdout.lock())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `--workers`: 1 to [`runtime::workers::MAX_WORKERS`].
fn workers_arg(s: &str) -> Result<usize, String> {
    let max = runtime::workers::MAX_WORKERS;
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a number of workers from 1 to {max}")),
    }
}

/// Where the configuration is unless `--config` says otherwise.
const DEFAULT_CONFIG: &str = shadowtap::config::DEFAULT_PATH;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, strict } => runtime::check(&config, strict, &mut std::io::stdout()),
        Command::Store { action: StoreAction::Backup { store, to } } => runtime::store_backup(&store, &to, &mut std::io::stdout()),
        Command::Asn { action: AsnAction::Update { dir, from } } => {
            let opts = runtime::asn::UpdateOptions { dir, from, ..Default::default() };
            match runtime::asn::update(&opts, &mut std::io::stdout()) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            config,
            pcaps,
            interfaces,
            listen,
            realtime,
            filter,
            snaplen,
            buffer_size,
            no_promisc,
            state_dir,
            save_interval,
            user,
            events,
            web_config,
            store,
            sensor_name,
            workers,
        } => {
            let opts = shadowtap::runtime::run::RunOptions {
                config,
                pcaps,
                live: interfaces
                    .into_iter()
                    .map(|interface| LiveOptions { interface, snaplen, buffer_bytes: buffer_size, promiscuous: !no_promisc })
                    .collect(),
                filter,
                listen,
                realtime,
                state_dir,
                save_every: std::time::Duration::from_secs(save_interval.max(1)),
                user,
                events,
                web_config,
                store,
                sensor_name,
                workers: workers.unwrap_or(0),
            };
            match shadowtap::runtime::run::run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Report(args) => report(args),
        Command::Survey(a) => {
            let workers = a.workers.unwrap_or(0);
            let source = command::Source::Captures { config: a.config, inputs: a.inputs, store: a.store, strict: a.strict, workers };
            run_report(report_command(source, a.from, a.to, a.render, Some(1)))
        }
        Command::Services { category, config } => runtime::services(&config, category.as_deref(), &mut std::io::stdout()),
        Command::Explain { query, config } => runtime::explain(&config, &query, &mut std::io::stdout()),
        Command::Inspect {
            inputs,
            format,
            interfaces,
            snaplen,
            buffer_size,
            no_promisc,
            filter,
            count,
            max_flows,
            stats,
            config,
            workers,
        } => {
            if inputs.is_empty() && interfaces.is_empty() {
                eprintln!("error: give capture files, directories, `-` or --interface");
                return ExitCode::from(2);
            }
            let opts = InspectOptions {
                inputs,
                live: interfaces
                    .into_iter()
                    .map(|interface| LiveOptions {
                        interface,
                        snaplen,
                        buffer_bytes: buffer_size,
                        promiscuous: !no_promisc,
                    })
                    .collect(),
                filter,
                format: match format {
                    FormatArg::Jsonl => Format::Jsonl,
                    FormatArg::Table => Format::Table,
                },
                max_flows,
                stats,
                config,
                max_frames: count,
                workers: workers.unwrap_or(0),
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let mut err = std::io::stderr();
            match runtime::inspect(&opts, &mut out, &mut err) {
                Ok(o) if o.failed_inputs == 0 => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    // A closed pipe (`| head`) is not an error worth a message.
                    if e.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    {
                        return ExitCode::SUCCESS;
                    }
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
