//! The `unsilo` command: `serve` runs the hub; `demo` runs it with simulated sources and agencies; `bench`
//! measures it; `agency`, `subscription`, `audit` and `dlq` administer a running hub (see `admin_cli`).

mod admin_cli;
mod edge_cli;
mod workflow_cli;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use unsilo_cli::bench::{self, BenchOptions};
use unsilo_hub::config::{BusKind, Config, LogFormat};
use unsilo_hub::server::{self, Hub};

/// mimalloc: the hub allocates and frees many small buffers per record; it is markedly faster here than the
/// system allocator (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// unsilo — the data-exchange hub that breaks government data silos.
#[derive(Debug, Parser)]
#[command(name = "unsilo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the hub: bus, schema registry and HTTP API. With no flags: embedded bus in ./data, HTTP on
    /// 127.0.0.1:8080.
    Serve(ServeArgs),
    /// Runs the hub on the embedded bus with every source system simulated: realistic data flows at once.
    Demo(DemoArgs),
    /// Stands in for one source system, speaking its own raw format with realistic data.
    Simulate(SimulateArgs),
    /// Measures the hub's hot paths against their baselines and prints a Markdown report.
    Bench(BenchArgs),
    /// Mapping files: `unsilo mapping test <mapping.toml> <sample.json>`.
    #[command(subcommand)]
    Mapping(MappingCommand),
    /// Connector definitions: list the built-ins, scaffold a new one, check one with the conformance kit.
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// The worker that reads one dropped workbook out of the hub's process (started by the hub itself).
    #[command(hide = true, name = "read-workbook")]
    ReadWorkbook {
        /// The request, as JSON.
        request: String,
    },
    /// Operators' credentials: `unsilo operator token new --name <name> --role <role>` makes a token and the
    /// configuration lines that let it in (only its SHA-256 goes into the file).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// The role × action matrix (三员分立): who may do what, as the hub enforces it, in Markdown.
    Roles,
    /// The keys of encryption at rest: `unsilo keys rotate` rotates the key-encryption key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The working-day calendar of the sharing deadlines (政务数据共享条例): `unsilo calendar due 2026-09-24 --days 10`.
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// Agencies (operators): create, list, issue tokens.
    Agency {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: admin_cli::AgencyCommand,
    },
    /// Subscriptions: request (agencies), approve / reject / revoke (operators), list, show, pull.
    Subscription {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: admin_cli::SubscriptionCommand,
    },
    /// The resource catalogue (政务数据资源目录): list, show, export (JSON or .xlsx), edit.
    Catalogue {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: workflow_cli::CatalogueCommand,
    },
    /// Requests under the sharing deadlines: `unsilo request overdue`, `unsilo request extend`.
    Request {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: workflow_cli::RequestCommand,
    },
    /// Corrections (校核纠错): an agency files one on a record it received; the provider answers.
    Correction {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: workflow_cli::CorrectionCommand,
    },
    /// The usage register (使用登记): an agency records how it used a subscription's data.
    Usage {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: workflow_cli::UsageCommand,
    },
    /// The supervisor's monthly report (Art. 38).
    Report {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: workflow_cli::ReportCommand,
    },
    /// Disposal when a grant ends (Art. 27): purpose fulfilled, the agency's confirmation of destruction.
    Disposal {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: workflow_cli::DisposalCommand,
    },
    /// The evidence log: verify its hash chains, query who received what.
    Audit {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: admin_cli::AuditCommand,
    },
    /// The department's exchange node (前置): `unsilo edge --config edge.toml` runs it;
    /// `unsilo edge --config edge.toml enrol --code <code>` enrols it with its hub first.
    Edge(edge_cli::EdgeArgs),
    /// Edge nodes (operators): register and get a one-time enrolment code, list, revoke, push connector
    /// definitions.
    Edges {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: edge_cli::EdgesCommand,
    },
    /// This hub's parent (级联): `unsilo parent enrol --config hub.toml --code <code>`.
    #[command(subcommand)]
    Parent(edge_cli::ParentCommand),
    /// Dead-letter queues: `unsilo dlq replay <subscription>` (delivery), `unsilo dlq replay --connector <name>`
    /// (a source's rejected originals, through its current definition).
    Dlq {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Operator tokens.
    #[command(subcommand)]
    Token(OperatorTokenCommand),
    /// Operators' one-time codes (the console's second factor, `[admin.sign_in] second_factor = "totp"`).
    #[command(subcommand)]
    Totp(OperatorTotpCommand),
}

#[derive(Debug, Subcommand)]
enum CalendarCommand {
    /// The day a time limit of N working days, starting on DATE, ends (the start day never counts).
    Due {
        /// The start day, `YYYY-MM-DD` (Beijing).
        date: String,
        /// Working days.
        #[arg(long)]
        days: u32,
        /// A directory of year files (`<year>.toml`) added to the shipped years.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Lists the years the calendar covers, where each comes from, and its days off and worked weekend days.
    Years {
        /// A directory of year files added to the shipped years (checked as the hub checks them).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// A new key-encryption key becomes current and every data key is re-wrapped under it; the old KEK is
    /// removed. The data on the bus is not rewritten. Safe while the hub runs.
    Rotate {
        /// The hub's configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Overrides bus.embedded.data_dir (where the keys live without `[security.keys]` paths).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum OperatorTotpCommand {
    /// Shows an operator's one-time-code secret as an otpauth URI and a QR code for an authenticator app, with
    /// the current code. Run it on the hub's machine (it reads the deployment secret), in front of the operator
    /// only. To re-enrol, raise the operator's `totp_epoch` in the configuration and run it again.
    Enrol {
        /// The operator's name, as in `[[admin.operators]]`.
        name: String,
        /// The hub's configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Overrides bus.embedded.data_dir (where the deployment secret lives without `[security] secret_file`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Prints the current code of an enrolment (a file holding an `otpauth://` URI, as the demo writes), like
    /// an authenticator app: `UNSILO_OTP=$(unsilo operator totp code ./data/demo-tokens/audit.totp)`.
    Code {
        /// The file with the otpauth URI.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum OperatorTokenCommand {
    /// Makes a random token (256 bits) and prints it once, with the `[[admin.operators]]` lines holding its
    /// SHA-256 — the hub never stores the token. Works for push sources' `token_sha256` too.
    New {
        /// The operator's name, for the configuration lines.
        #[arg(long, default_value = "operator")]
        name: String,
        /// The operator's one role (三员分立): system (系统管理员), security (安全管理员) or audit (审计管理员).
        #[arg(long, value_parser = ["system", "security", "audit"], default_value = "security")]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// With a subscription: puts the records of its delivery DLQ back on its topic, to be delivered again.
    /// With `--connector`: runs the source's rejected originals through its current definition again — what
    /// now passes lands on `std.`, what still fails stays on the DLQ with its new reason; a second replay does
    /// not take the same entries again.
    Replay {
        /// `<agency>.<name>` (a delivery DLQ).
        #[arg(required_unless_present = "connector", conflicts_with = "connector")]
        subscription: Option<String>,
        /// A source connector (its `dlq.<connector>`).
        #[arg(long)]
        connector: Option<String>,
        /// Only dead letters with this reason code, e.g. `unknown_code`.
        #[arg(long, requires = "connector")]
        code: Option<String>,
        /// Only dead letters since then: a duration ago (`2h`, `1d`) or an RFC 3339 time.
        #[arg(long, requires = "connector")]
        since: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Data directory of the embedded bus.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Where the hub serves HTTP.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Records per second per simulated source system.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Share of deliberately malformed records (0.0–1.0), to show the dead-letter topics at work.
    #[arg(long, default_value_t = 0.05)]
    malformed: f64,
    /// Seed of the simulated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also simulate a civil-affairs 低保 roster in this PostgreSQL, polled by the hub.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Also simulate a public-security incident table in this MySQL / MariaDB, polled by the hub.
    #[arg(long)]
    mysql_url: Option<String>,
    /// Print only the banner, not a progress line every 10 seconds.
    #[arg(long)]
    quiet: bool,
}

/// Options every simulator takes.
#[derive(Debug, clap::Args)]
struct SimulateArgs {
    #[command(subcommand)]
    system: SimulatedSystem,
    /// Records per second.
    #[arg(long, global = true, default_value_t = 10.0)]
    rate: f64,
    /// Share of deliberately malformed records (0.0–1.0).
    #[arg(long, global = true, default_value_t = 0.05)]
    malformed: f64,
    /// Seed of the generated data (same seed, same data).
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Stop after this many records (default: run until Ctrl-C).
    #[arg(long, global = true)]
    limit: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum SimulatedSystem {
    /// The county grid platform: pushes events, households, residents and grids to the hub.
    Grid {
        /// The hub's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        hub: String,
        /// The connector token.
        #[arg(long, env = "UNSILO_GRID_TOKEN")]
        token: String,
    },
    /// The 秦务员 platform: pushes service cases, ratings and appeals to the hub.
    Qinwuyuan {
        /// The hub's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        hub: String,
        /// The connector token.
        #[arg(long, env = "UNSILO_QINWUYUAN_TOKEN")]
        token: String,
    },
    /// The 12345 hotline: serves its work-order API for the hub to poll.
    Hotline12345 {
        /// Where to serve the API.
        #[arg(long, default_value = "127.0.0.1:8091")]
        listen: std::net::SocketAddr,
    },
    /// Departmental databases: writes a 低保 roster (PostgreSQL) and an incident table (MySQL).
    DeptSql {
        /// PostgreSQL URL for the roster.
        #[arg(long)]
        postgres_url: Option<String>,
        /// MySQL / MariaDB URL for the incident table.
        #[arg(long)]
        mysql_url: Option<String>,
    },
    /// Departmental exports: drops GBK CSV and XLSX rosters into a folder.
    DeptFile {
        /// The watched folder.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum MappingCommand {
    /// Loads a mapping and normalises a sample (a JSON object, a JSON array or JSON lines), printing each
    /// normalised record or the errors. Exits non-zero if the mapping does not load or a sample is rejected.
    Test {
        /// The mapping file.
        mapping: PathBuf,
        /// The sample raw records.
        sample: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConnectorCommand {
    /// Lists the built-in connectors and the shared schemas they produce.
    List,
    /// Scaffolds a new connector definition — contract, mapping, fixtures and a conformance test — that passes
    /// the conformance kit out of the box.
    New {
        /// The connector's name (a-z, 0-9, `-`, `_`).
        name: String,
        /// The shared schema it produces, e.g. `rating`.
        #[arg(long)]
        schema: String,
        /// The folder to create it in (default: the current folder).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Checks a connector definition folder (or `builtin:<name>`) with the conformance kit and its fixtures.
    Check {
        /// A definition folder, or `builtin:<name>`.
        definition: String,
    },
    /// Runs a connector's stored originals (`raw.<name>`) through its current definition again, on a running
    /// hub: after a mapping fix or a new schema version, `std.` gets the records again with the same ids.
    Renormalise {
        #[command(flatten)]
        hub: admin_cli::HubArgs,
        /// The connector.
        name: String,
        /// From when: a duration ago (`2h`, `1d`) or an RFC 3339 time.
        #[arg(long)]
        from: String,
        /// Until when (default: now): a duration ago or an RFC 3339 time.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML), e.g. deploy/kafka.toml. Without it, the embedded defaults apply.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Overrides http.listen, e.g. 0.0.0.0:8080.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Overrides bus.embedded.data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides bus.kafka.bootstrap_servers.
    #[arg(long, env = "UNSILO_KAFKA_BOOTSTRAP_SERVERS")]
    kafka_bootstrap: Option<String>,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Records per measurement.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// A Kafka-protocol broker for the Kafka measurements (bus layer vs raw rdkafka); skipped without it.
    #[arg(long, env = "UNSILO_BENCH_KAFKA")]
    kafka: Option<String>,
    /// Records per measurement on Kafka (Tansu's fetch path is slow, so fewer by default).
    #[arg(long, default_value_t = 20_000)]
    kafka_records: usize,
    /// Records of history the scale section releases to a new subscription beside live traffic (the province's
    /// target is 10,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    history_records: usize,
    /// Writes the report to this file as well as to standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Draws the scale curves (routing against subscriptions, ingest against connectors; with `scale`: routing at
    /// the province's shape, evidence bytes against fan-out, the person report against releases) as an SVG here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Only these sections: foundation, ingest, routing, latency, scale (repeatable; default all).
    #[arg(long, value_parser = ["foundation", "ingest", "routing", "latency", "scale"])]
    only: Vec<String>,
    /// Puts the stores measured in temporary directories here (default: the system's temp directory). Use the
    /// volume the hub's data will live on: its file system decides the fsync-bound figures.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// The log: standard error, and with `[log] dir` daily files kept `keep_days` days as well.
fn init_logging(config: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let json = config.log.format == LogFormat::Json;
    let stderr = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    let stderr = if json {
        stderr.json().boxed()
    } else {
        stderr.boxed()
    };
    let files = match &config.log.dir {
        Some(dir) => {
            let appender = daily_log_files(dir, config.log.keep_days)?;
            let layer = tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(false)
                .with_writer(appender);
            Some(if json {
                layer.json().boxed()
            } else {
                layer.boxed()
            })
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(files)
        .init();
    if config.log.keep_days < 180 {
        tracing::warn!(
            keep_days = config.log.keep_days,
            "[log] keep_days is under 180: the Cybersecurity Law (Art. 21) asks for six months of network logs."
        );
    }
    Ok(())
}

/// Daily files `unsilo.YYYY-MM-DD.log` in `dir` (created if missing), the oldest removed past `keep_days`.
fn daily_log_files(
    dir: &std::path::Path,
    keep_days: usize,
) -> anyhow::Result<tracing_appender::rolling::RollingFileAppender> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("[log] dir {}: {e}", dir.display()))?;
    tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("unsilo")
        .filename_suffix("log")
        .max_log_files(keep_days.max(1))
        .build(dir)
        .map_err(|e| anyhow::anyhow!("[log] dir {}: {e}", dir.display()))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.http.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.bus.embedded.data_dir = dir;
    }
    if let Some(servers) = args.kafka_bootstrap {
        if let Some(k) = config.bus.kafka.as_mut() {
            k.bootstrap_servers = servers;
        }
    }
    config.check()?;
    init_logging(&config)?;
    match config.bus.kind {
        BusKind::Embedded => tracing::info!(
            data_dir = %config.bus.embedded.data_dir.display(),
            "Starting on the embedded bus."
        ),
        BusKind::Kafka => tracing::info!(
            bootstrap_servers = %config.bus.kafka.as_ref().map(|k| k.bootstrap_servers.as_str()).unwrap_or(""),
            "Starting on Kafka."
        ),
    }
    // Certificate problems should stop the start before anything else happens.
    let tls = config.http.tls.as_ref().map(server::load_tls).transpose()?;
    #[cfg(feature = "tlcp")]
    let tlcp = config
        .http
        .tlcp
        .as_ref()
        .map(|t| unsilo_hub::tlcp::TlcpAcceptor::load(t).map(|a| (t.listen, a)))
        .transpose()?;
    let hub = Hub::start(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    // One shutdown signal for every listener.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        server::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    #[cfg(feature = "tlcp")]
    if let Some((addr, acceptor)) = tlcp {
        let tlcp_listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (TLCP)"))?;
        let hub = hub.clone();
        let shutdown = until_stopped(stopped.clone());
        tokio::spawn(async move {
            if let Err(e) = hub.serve_tlcp(tlcp_listener, acceptor, shutdown).await {
                tracing::error!(error = %e, "The TLCP listener stopped with an error.");
            }
        });
    }
    // Once the hub runs, the listener also trusts its link CA: enrolled edges present certificates it issued.
    let tls = match (&config.http.tls, tls) {
        (Some(t), Some(_)) => Some(server::load_tls_trusting(t, &[hub.link_ca_der()?])?),
        _ => None,
    };
    hub.serve_with(listener, tls, until_stopped(stopped))
        .await?;
    Ok(())
}

async fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    // Logs to standard error: standard output is the report.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let report = bench::run(BenchOptions {
        records: args.records,
        kafka: args.kafka,
        kafka_records: args.kafka_records,
        history_records: args.history_records,
        only: args.only,
        data_dir: args.data_dir,
    })
    .await?;
    print!("{}", report.markdown);
    if let Some(path) = args.out {
        std::fs::write(&path, &report.markdown)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = args.plot {
        match &report.svg {
            Some(svg) => {
                std::fs::write(&path, svg)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("bench: scale plot written to {}", path.display());
            }
            None => eprintln!(
                "bench: no scale curves in the sections run (they come from `routing` and `ingest`); {} not written",
                path.display()
            ),
        }
    }
    Ok(())
}

fn init_cli_logging() {
    init_logging_at("info");
}

/// Logs to stderr at `default_level`, unless `RUST_LOG` says otherwise.
fn init_logging_at(default_level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_target(false)
        .init();
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    // The demo speaks through its banner and progress line; the hub's own log shows warnings and errors
    // (RUST_LOG=info shows everything).
    init_logging_at("warn");
    unsilo_cli::demo::run(
        unsilo_cli::demo::DemoOptions {
            data_dir: args.data_dir,
            listen: args.listen,
            rate: args.rate,
            malformed_share: args.malformed,
            seed: args.seed,
            postgres_url: args.postgres_url,
            mysql_url: args.mysql_url,
            quiet: args.quiet,
        },
        server::shutdown_signal(),
    )
    .await?;
    Ok(())
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    init_cli_logging();
    let (trigger, shutdown) = unsilo_connectors::sdk::Shutdown::new();
    tokio::spawn(async move {
        server::shutdown_signal().await;
        trigger.trigger();
    });
    let load = unsilo_cli::SimulatorLoad {
        rate: args.rate,
        malformed_share: args.malformed,
        seed: args.seed,
        limit: args.limit,
    };
    let stats = match args.system {
        SimulatedSystem::Grid { hub, token } => format!(
            "{:?}",
            unsilo_simulate::grid::run(
                unsilo_cli::simulator_options!(
                    load,
                    unsilo_simulate::grid::GridSimulatorOptions {
                        hub_url: hub,
                        token
                    }
                ),
                shutdown,
            )
            .await?
        ),
        SimulatedSystem::Qinwuyuan { hub, token } => format!(
            "{:?}",
            unsilo_simulate::qinwuyuan::run(
                unsilo_cli::simulator_options!(
                    load,
                    unsilo_simulate::qinwuyuan::QinwuyuanOptions {
                        url: format!("{}/ingest/qinwuyuan", hub.trim_end_matches('/')),
                        token
                    }
                ),
                shutdown,
            )
            .await?
        ),
        SimulatedSystem::Hotline12345 { listen } => format!(
            "{:?}",
            unsilo_simulate::hotline12345::run(
                unsilo_cli::simulator_options!(
                    load,
                    unsilo_simulate::hotline12345::Hotline12345Options { addr: listen }
                ),
                shutdown,
            )
            .await?
        ),
        SimulatedSystem::DeptSql {
            postgres_url,
            mysql_url,
        } => format!(
            "{:?}",
            unsilo_simulate::dept_sql::run(
                unsilo_cli::simulator_options!(
                    load,
                    unsilo_simulate::dept_sql::DeptSqlOptions {
                        postgres_url,
                        mysql_url
                    }
                ),
                shutdown,
            )
            .await?
        ),
        SimulatedSystem::DeptFile { dir } => format!(
            "{:?}",
            unsilo_simulate::dept_file::run(
                unsilo_simulate::dept_file::DeptFileOptions {
                    malformed_share: load.malformed_share,
                    seed: load.seed,
                    limit: load.limit,
                    files_per_minute: args.rate.clamp(0.1, 600.0),
                    ..unsilo_simulate::dept_file::DeptFileOptions::new(dir)
                },
                shutdown,
            )
            .await?
        ),
    };
    println!("{stats}");
    Ok(())
}

fn mapping_test(mapping: &std::path::Path, sample: &std::path::Path) -> anyhow::Result<()> {
    let report = unsilo_connectors::mapping::test_mapping(mapping, sample)?;
    print!("{report}");
    if report
        .lines()
        .any(|l| l.starts_with("sample ") && l.contains(": rejected: "))
    {
        anyhow::bail!("some samples were rejected (see above)");
    }
    Ok(())
}

/// `unsilo operator token new`: a random token, and the configuration that admits it.
fn operator_token_new(name: &str, role: &str) -> anyhow::Result<()> {
    let (token, digest) = unsilo_hub::auth::new_token();
    println!("{token}");
    eprintln!(
        "The token above is shown only now: give it to `{name}` and keep it nowhere else. Add to the hub's configuration:\n\n[[admin.operators]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{digest}\"\n"
    );
    Ok(())
}

/// `unsilo operator totp code FILE`: the current code of an enrolment URI, as an authenticator app shows it.
fn operator_totp_code(file: &std::path::Path) -> anyhow::Result<()> {
    let uri = unsilo_hub::secrets::read_private(file)
        .with_context(|| format!("reading {}", file.display()))?;
    let secret = unsilo_hub::totp::secret_of_uri(&uri)
        .with_context(|| format!("{} holds no otpauth:// URI with a secret", file.display()))?;
    let now = u64::try_from(unsilo_bus::now_ms() / 1000).unwrap_or(0);
    println!("{}", unsilo_hub::totp::code_at(&secret, now));
    Ok(())
}

/// `unsilo calendar …`.
fn calendar(command: CalendarCommand) -> anyhow::Result<()> {
    use unsilo_hub::calendar::WorkingCalendar;
    let load = |dir: Option<&std::path::Path>| match dir {
        Some(d) => WorkingCalendar::with_dir(d),
        None => WorkingCalendar::shipped(),
    };
    match command {
        CalendarCommand::Due { date, days, dir } => {
            let start = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d")
                .with_context(|| format!("`{date}` is not a date (YYYY-MM-DD)"))?;
            let due = load(dir.as_deref())?.due_day(start, days)?;
            println!("{due}");
        }
        CalendarCommand::Years { dir } => {
            for (year, y) in load(dir.as_deref())?.years() {
                println!(
                    "{year}: {} days off, {} weekend days worked — {}",
                    y.holidays.len(),
                    y.workdays.len(),
                    y.source
                );
            }
        }
    }
    Ok(())
}

/// `unsilo keys rotate`: a new KEK, every data key re-wrapped under it.
fn keys_rotate(config: Option<&std::path::Path>, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = match config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = data_dir {
        config.bus.embedded.data_dir = dir;
    }
    let secret_file = config.secret_file();
    let keys = &config.security.keys;
    let kek_file = keys.kek_file(&secret_file);
    if !kek_file.exists() {
        anyhow::bail!(
            "no key-encryption key at {}: the hub creates it at its first start (or set [security.keys] kek_file)",
            kek_file.display()
        );
    }
    let rotation = unsilo_hub::at_rest::keys::rotate_kek(
        &kek_file,
        &keys.data_key_dir(&secret_file),
        unsilo_hub::at_rest::cipher::Algorithm::of(config.security.crypto),
    )?;
    println!("{}", serde_json::to_string_pretty(&rotation)?);
    eprintln!(
        "KEK rotated: {} is current; {} data keys re-wrapped; retired {}.",
        rotation.kek,
        rotation.rewrapped,
        rotation.retired.join(", ")
    );
    Ok(())
}

/// `unsilo operator totp enrol`: the operator's secret as a URI, a QR code and base32, and the current code.
fn operator_totp_enrol(
    name: &str,
    config: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut config = match config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = data_dir {
        config.bus.embedded.data_dir = dir;
    }
    let Some(operator) = config.admin.operators.iter().find(|o| o.name == name) else {
        let names: Vec<&str> = config
            .admin
            .operators
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        anyhow::bail!(
            "no operator `{name}` in the configuration (operators: {}); add them to [[admin.operators]] first",
            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
        );
    };
    let secret = config.load_secret()?;
    let key = secret.totp_secret(name, operator.totp_epoch);
    let uri = unsilo_hub::totp::otpauth_uri(name, &key);
    let qr = qrcode::QrCode::new(uri.as_bytes())?;
    let drawing = qr
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build();
    let now = u64::try_from(unsilo_bus::now_ms() / 1000).unwrap_or(0);
    println!("{drawing}");
    println!("{uri}");
    println!(
        "secret (manual entry): {}",
        unsilo_hub::totp::secret_base32(&key)
    );
    println!(
        "current code: {} (role {}, enrolment {})",
        unsilo_hub::totp::code_at(&key, now),
        operator.role,
        operator.totp_epoch
    );
    eprintln!(
        "Scan the code with an authenticator app in front of `{name}` only: whoever sees it can make their codes. To re-enrol, raise totp_epoch for `{name}` and run this again."
    );
    Ok(())
}

fn connector_list() -> anyhow::Result<()> {
    for name in unsilo_connectors::builtin::names() {
        let d = unsilo_connectors::builtin::definition(name)?;
        let targets: Vec<&str> = d.target_schemas().iter().map(|s| s.name()).collect();
        println!(
            "builtin:{name:<14} {}  →  {}",
            d.manifest().description,
            targets.join(", ")
        );
    }
    Ok(())
}

fn connector_new(name: &str, schema: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let scaffold = unsilo_connectors::scaffold::new_connector(name, schema, dir)?;
    println!("Created connector `{name}` in {}:", scaffold.dir.display());
    for f in &scaffold.files {
        println!("  {}", f.display());
    }
    println!(
        "\nNext: edit the contract and the mapping for your source's own field names, then\n  \
         unsilo mapping test {} {}\n  unsilo connector check {}",
        scaffold.mapping.display(),
        scaffold.sample.display(),
        scaffold.dir.display()
    );
    Ok(())
}

fn connector_check(spec: &str) -> anyhow::Result<()> {
    let definition = unsilo_hub::ingest::load_definition(spec)?;
    let fixtures = match spec.strip_prefix("builtin:") {
        Some(name) => unsilo_connectors::conformance::read_fixtures(
            unsilo_connectors::builtin::fixtures(name),
        ),
        None => unsilo_connectors::conformance::read_fixture_dir(std::path::Path::new(spec)),
    }
    .map_err(|e| anyhow::anyhow!(e))?;
    let report = unsilo_connectors::conformance::check_fixtures(&definition, &fixtures);
    if report.passed() {
        println!("{spec}: conformance passed ({} fixtures).", report.checked);
        Ok(())
    } else {
        for f in &report.failures {
            println!("FAIL {f}");
        }
        anyhow::bail!(
            "{spec}: {} of {} fixture checks failed",
            report.failures.len(),
            report.checked
        )
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::ReadWorkbook { .. }) {
        // Dropped workbooks are read by a worker process of this binary, under a memory limit.
        if let Ok(program) = std::env::current_exe() {
            unsilo_connectors::transport::file_drop::isolate_workbooks(
                unsilo_connectors::transport::file_drop::WorkbookWorker::new(
                    program,
                    ["read-workbook"],
                ),
            );
        }
    }
    let result = match cli.command {
        Command::ReadWorkbook { request } => {
            unsilo_connectors::transport::file_drop::serve_workbook_request(
                &request,
                std::io::stdin().lock(),
                std::io::stdout().lock(),
            )
            .map_err(anyhow::Error::from)
        }
        Command::Serve(args) => serve(args).await,
        Command::Bench(args) => run_bench(args).await,
        Command::Demo(args) => demo(args).await,
        Command::Simulate(args) => simulate(args).await,
        Command::Mapping(MappingCommand::Test { mapping, sample }) => {
            mapping_test(&mapping, &sample)
        }
        Command::Connector(ConnectorCommand::List) => connector_list(),
        Command::Connector(ConnectorCommand::New { name, schema, dir }) => {
            connector_new(&name, &schema, &dir)
        }
        Command::Connector(ConnectorCommand::Check { definition }) => connector_check(&definition),
        Command::Connector(ConnectorCommand::Renormalise {
            hub,
            name,
            from,
            to,
        }) => admin_cli::renormalise(&hub, &name, &from, to.as_deref()).await,
        Command::Operator(OperatorCommand::Token(OperatorTokenCommand::New { name, role })) => {
            operator_token_new(&name, &role)
        }
        Command::Operator(OperatorCommand::Totp(OperatorTotpCommand::Enrol {
            name,
            config,
            data_dir,
        })) => operator_totp_enrol(&name, config.as_deref(), data_dir),
        Command::Keys(KeysCommand::Rotate { config, data_dir }) => {
            keys_rotate(config.as_deref(), data_dir)
        }
        Command::Operator(OperatorCommand::Totp(OperatorTotpCommand::Code { file })) => {
            operator_totp_code(&file)
        }
        Command::Calendar(command) => calendar(command),
        Command::Roles => {
            print!("{}", unsilo_hub::roles::markdown_matrix());
            Ok(())
        }
        Command::Agency { hub, command } => admin_cli::agency(&hub, command).await,
        Command::Subscription { hub, command } => admin_cli::subscription(&hub, command).await,
        Command::Audit { hub, command } => admin_cli::audit(&hub, command).await,
        Command::Catalogue { hub, command } => workflow_cli::catalogue(&hub, command).await,
        Command::Request { hub, command } => workflow_cli::request(&hub, command).await,
        Command::Correction { hub, command } => workflow_cli::correction(&hub, command).await,
        Command::Usage { hub, command } => workflow_cli::usage(&hub, command).await,
        Command::Disposal { hub, command } => workflow_cli::disposal(&hub, command).await,
        Command::Edge(args) => {
            init_logging_at("info");
            edge_cli::edge(args).await
        }
        Command::Edges { hub, command } => edge_cli::edges(&hub, command).await,
        Command::Parent(command) => {
            init_logging_at("warn");
            edge_cli::parent(command).await
        }
        Command::Report { hub, command } => workflow_cli::report(&hub, command).await,
        Command::Dlq {
            hub,
            command:
                DlqCommand::Replay {
                    subscription,
                    connector,
                    code,
                    since,
                },
        } => match (subscription, connector) {
            (Some(subscription), _) => admin_cli::dlq_replay(&hub, &subscription).await,
            (None, Some(connector)) => {
                admin_cli::source_dlq_replay(&hub, &connector, code, since.as_deref()).await
            }
            (None, None) => Err(anyhow::anyhow!("give a subscription or --connector <name>")),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unsilo: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
