//! The `unsilo` command: `serve` runs the hub; `bench` measures it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use unsilo_exchange_core::bench::{self, BenchOptions};
use unsilo_exchange_core::config::{BusKind, Config, LogFormat};
use unsilo_exchange_core::server::{self, Hub};

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
    /// Measures the hub's hot paths against their baselines and prints a Markdown report.
    Bench(BenchArgs),
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
    /// Writes the report to this file as well as to standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
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
    init_logging(&config);
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
    let hub = Hub::start(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    hub.serve(listener, server::shutdown_signal()).await?;
    Ok(())
}

async fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let report = bench::run(BenchOptions {
        records: args.records,
        kafka: args.kafka,
        kafka_records: args.kafka_records,
    })
    .await?;
    print!("{report}");
    if let Some(path) = args.out {
        std::fs::write(&path, &report)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Bench(args) => run_bench(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unsilo: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
