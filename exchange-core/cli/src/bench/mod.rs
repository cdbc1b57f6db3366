//! `unsilo bench`: measures the hub's hot paths side by side with their baselines, in one run, and prints a
//! Markdown report (the figures in `docs/benchmarks.md` come from it); `--plot` also draws the scale curves as
//! an SVG.
//!
//! | section | measurement | unsilo path | baseline |
//! |---|---|---|---|
//! | foundation | Avro encode | `grid_event` encoded + Confluent wire framing | `apache_avro::to_avro_datum` alone |
//! | foundation | embedded append / read | `Bus::publish` with group commit (fsync) / a replay consumer | fjall batch insert + fsync / range scan of the same bytes |
//! | foundation | Kafka produce / consume | the Kafka bus | raw rdkafka on the same broker |
//! | ingest | normalisation per connector | contract + mapping + validators + Avro encode | `json_to_avro` + `to_avro_datum` |
//! | ingest | HTTP push, embedded and Kafka; 1–8 connectors | a whole hub ([`ingest`]) | the bare store / raw rdkafka with the same bytes |
//! | routing | 1 to 1,000 subscriptions, indexed and not; every subscription matching | [`routing`] | one `to_avro_datum` of the record |
//! | latency | publish → subscription topic at 10,000 records/s, per hop; peak memory | [`latency`] | — |
//! | scale | the province's shape: routing with 10,000 subscriptions, start with 10,000 subscriptions and 1,000 agencies, evidence bytes per release (live and backfill), the person report over 100 million releases | [`scale`], [`evidence`] | one `to_avro_datum` of the record; one signed entry per release; the targets |
//!
//! Benchmarks measure; tests assert: nothing here fails on a slow machine.

pub mod evidence;
pub mod foundation;
pub mod history;
pub mod ingest;
pub mod latency;
pub mod plot;
pub mod routing;
pub mod scale;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Records per embedded and encode measurement.
    pub records: usize,
    /// Kafka broker for the Kafka measurements; skipped when `None`.
    pub kafka: Option<String>,
    /// Records per Kafka measurement.
    pub kafka_records: usize,
    /// Records of history the scale section releases to a new subscription beside live traffic.
    pub history_records: usize,
    /// Only these sections (`foundation`, `ingest`, `routing`, `latency`, `scale`); all when empty.
    pub only: Vec<String>,
    /// Where the stores measured go (in temporary directories under it); the system's temp directory when `None`.
    pub data_dir: Option<PathBuf>,
}

/// Where the benchmark's stores go: fresh temporary directories, under a chosen directory or the system's own.
///
/// The file system they are on decides the fsync-bound figures (see [`unsilo_bus::embedded::FileSystem`]), so
/// the report names it; run with `--data-dir` on the volume the hub's data will live on.
#[derive(Clone, Debug)]
pub struct Scratch {
    root: Option<PathBuf>,
}

impl Scratch {
    /// Temporary directories under `root`, which must be a directory, or under the system's temp directory.
    pub fn under(root: Option<PathBuf>) -> Result<Self, BenchError> {
        match root {
            Some(root) if !root.is_dir() => Err(BenchError::NoDataDir(root)),
            root => Ok(Self { root }),
        }
    }

    /// A new empty directory, removed when dropped.
    pub fn dir(&self) -> std::io::Result<tempfile::TempDir> {
        match &self.root {
            Some(root) => tempfile::tempdir_in(root),
            None => tempfile::tempdir(),
        }
    }

    /// One sentence on where the stores are: the directory, its file system, and whether it trims online.
    pub fn describe(&self) -> String {
        let root = self.root.clone().unwrap_or_else(std::env::temp_dir);
        match unsilo_bus::embedded::FileSystem::of(&root) {
            Some(fs) => format!(
                "Stores in `{}`: {} mounted at `{}`, {}.",
                root.display(),
                fs.fs_type,
                fs.mount_point.display(),
                if fs.online_discard() {
                    "**with online discard** (every deleted file holds up fsyncs while it is trimmed)"
                } else {
                    "without online discard"
                }
            ),
            None => format!("Stores in `{}` (file system unknown).", root.display()),
        }
    }
}

/// Errors that stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Encoding the sample record failed.
    #[error("avro: {0}")]
    Avro(String),
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] unsilo_bus::Error),
    /// The raw rdkafka baseline failed.
    #[error("kafka baseline: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The raw fjall baseline failed.
    #[error("fjall baseline: {0}")]
    Fjall(String),
    /// Temporary files could not be made.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// `--data-dir` names no directory.
    #[error("--data-dir {}: no such directory", .0.display())]
    NoDataDir(PathBuf),
}

struct Row {
    name: String,
    ours: f64,
    baseline_name: &'static str,
    baseline: f64,
}

impl Row {
    /// A measurement, `ours`, beside its `baseline`.
    fn new(name: impl Into<String>, ours: f64, baseline_name: &'static str, baseline: f64) -> Self {
        Self {
            name: name.into(),
            ours,
            baseline_name,
            baseline,
        }
    }
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// CPU time (user and system) used so far by every thread of this process, from `/proc/self/stat`; `None`
/// where there is no such file. Its resolution is a clock tick (10 ms), so it suits runs of seconds.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name, field 2, is in parentheses and may hold spaces: count fields after its `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    // `/proc` counts in USER_HZ, which is 100 on every Linux ABI.
    Some(Duration::from_millis((user + system) * 10))
}

/// `12.3 µs`, or `not measured` where the CPU time could not be read.
fn cpu_per_record(figure: Throughput) -> String {
    figure
        .cpu_us_per_record
        .map_or_else(|| "not measured".to_owned(), |us| format!("{us:.1} µs"))
}

/// A measurement's wall-clock rate and the CPU it cost.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Throughput {
    /// Records per second.
    pub(super) per_second: f64,
    /// Microseconds of CPU per record, over every thread of the process (for a whole hub that includes the
    /// benchmark's own HTTP senders and the store's background threads); `None` where it cannot be read.
    pub(super) cpu_us_per_record: Option<f64>,
}

/// Times a measurement of `records` records, on the wall clock and in CPU.
struct Stopwatch {
    started: std::time::Instant,
    cpu: Option<Duration>,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            cpu: process_cpu(),
            started: std::time::Instant::now(),
        }
    }

    fn stop(self, records: usize) -> Throughput {
        let elapsed = self.started.elapsed();
        let cpu = self
            .cpu
            .zip(process_cpu())
            .map(|(before, after)| after.saturating_sub(before));
        Throughput {
            per_second: rate(records, elapsed),
            cpu_us_per_record: cpu.map(|c| c.as_secs_f64() * 1e6 / records.max(1) as f64),
        }
    }
}

/// Figures for the scale plot, gathered while the report is written.
#[derive(Default)]
struct Curves {
    /// (subscriptions, records/s indexed, records/s every filter evaluated).
    indexed: Vec<(f64, f64, f64)>,
    /// (subscriptions, records/s) with the mixed filters.
    mixed: Vec<(f64, f64)>,
    /// (connectors, records/s) of HTTP push on the embedded bus.
    connectors: Vec<(f64, f64)>,
    /// The bare store's records/s with the same bytes.
    bare_store: Option<f64>,
    /// (subscriptions, records/s, releases/s) routing at the province's shape.
    province: Vec<(f64, f64, f64)>,
    /// (subscriptions, records/s) routing with every subscription scoped to one town.
    towns: Vec<(f64, f64)>,
    /// (subscriptions a record goes to, evidence bytes per release).
    evidence: Vec<(f64, f64)>,
    /// Bytes per release of one signed entry per release (the evidence before batching).
    evidence_one_each: Option<f64>,
    /// (releases in the audit log, person report p99 ms after a restart).
    person_report: Vec<(f64, f64)>,
}

impl Curves {
    /// The SVG of `--plot`: routing throughput against subscriptions, ingest against connectors; `None` when the
    /// sections run measured neither.
    fn svg(&self) -> Option<String> {
        let mut charts = Vec::new();
        if !self.indexed.is_empty() || !self.mixed.is_empty() {
            charts.push(plot::Chart {
                title: "Routing, one core".into(),
                x_label: "active subscriptions on the schema".into(),
                y_label: "records/s".into(),
                x_ticks: vec![1.0, 10.0, 100.0, 1000.0],
                series: vec![
                    plot::Series {
                        name: "county filters, route index".into(),
                        colour: "#1f77b4",
                        points: self.indexed.iter().map(|&(s, i, _)| (s, i)).collect(),
                    },
                    plot::Series {
                        name: "county filters, every filter evaluated".into(),
                        colour: "#d62728",
                        points: self.indexed.iter().map(|&(s, _, e)| (s, e)).collect(),
                    },
                    plot::Series {
                        name: "mixed filters (no guard to index)".into(),
                        colour: "#7f7f7f",
                        points: self.mixed.clone(),
                    },
                ],
            });
        }
        if !self.connectors.is_empty() {
            let mut series = vec![plot::Series {
                name: "HTTP push → embedded bus, fsync (2 senders each)".into(),
                colour: "#2ca02c",
                points: self.connectors.clone(),
            }];
            if let Some(bare) = self.bare_store {
                series.push(plot::Series {
                    name: "bare store, same bytes (fjall + fsync)".into(),
                    colour: "#ff7f0e",
                    points: self.connectors.iter().map(|&(c, _)| (c, bare)).collect(),
                });
            }
            charts.push(plot::Chart {
                title: "Ingest of 1.2 KB grid records".into(),
                x_label: "push connectors".into(),
                y_label: "records/s".into(),
                x_ticks: vec![1.0, 2.0, 4.0, 8.0],
                series,
            });
        }
        if !self.province.is_empty() {
            charts.push(plot::Chart {
                title: "Routing at the province's shape, one core".into(),
                x_label: "active subscriptions on the schema".into(),
                y_label: "per second".into(),
                x_ticks: vec![1000.0, 3000.0, 10000.0],
                series: vec![
                    plot::Series {
                        name: "records, 90 % county or town scoped (~190 releases each)".into(),
                        colour: "#1f77b4",
                        points: self.province.iter().map(|&(s, r, _)| (s, r)).collect(),
                    },
                    plot::Series {
                        name: "releases, the same run".into(),
                        colour: "#9467bd",
                        points: self.province.iter().map(|&(s, _, r)| (s, r)).collect(),
                    },
                    plot::Series {
                        name: "records, every subscription one town's (~10 releases each)".into(),
                        colour: "#2ca02c",
                        points: self.towns.clone(),
                    },
                ],
            });
        }
        if !self.evidence.is_empty() {
            let mut series = vec![plot::Series {
                name: "batched, deflated (steady state)".into(),
                colour: "#1f77b4",
                points: self.evidence.clone(),
            }];
            if let Some(one_each) = self.evidence_one_each {
                series.push(plot::Series {
                    name: "one signed entry per release (before)".into(),
                    colour: "#d62728",
                    points: self.evidence.iter().map(|&(f, _)| (f, one_each)).collect(),
                });
            }
            charts.push(plot::Chart {
                title: "Evidence per release on the bus".into(),
                x_label: "subscriptions each record goes to".into(),
                y_label: "bytes per release".into(),
                x_ticks: vec![1.0, 10.0, 100.0],
                series,
            });
        }
        if !self.person_report.is_empty() {
            charts.push(plot::Chart {
                title: "Person report after a restart".into(),
                x_label: "releases in the audit log".into(),
                y_label: "p99 ms".into(),
                x_ticks: vec![1e6, 1e7, 1e8],
                series: vec![plot::Series {
                    name: "on-disk person index".into(),
                    colour: "#1f77b4",
                    points: self.person_report.clone(),
                }],
            });
        }
        if charts.is_empty() {
            return None;
        }
        Some(plot::svg(
            &charts,
            &format!(
                "unsilo bench, {} logical CPUs; log scales",
                std::thread::available_parallelism().map_or(0, usize::from)
            ),
        ))
    }
}

/// The report of one run: the table of rows and the sections below it, and the curves for the plot.
pub struct Report {
    /// Markdown.
    pub markdown: String,
    /// The scale curves as an SVG document, when the sections run (`routing`, `ingest`) measured any.
    pub svg: Option<String>,
}

/// Runs every measurement asked for and returns the report.
pub async fn run(options: BenchOptions) -> Result<Report, BenchError> {
    let wants =
        |section: &str| options.only.is_empty() || options.only.iter().any(|o| o == section);
    let mut rows = Vec::new();
    let mut sections = String::new();
    let mut curves = Curves::default();
    let mut size = 0;
    let scratch = Scratch::under(options.data_dir.clone())?;
    // First, so the peak memory it reports is the hub's under load, not what earlier sections left allocated.
    let mut latency_section = String::new();
    if wants("latency") {
        eprintln!("bench: latency at 10 000 records/s for 10 s, 100 subscriptions…");
        let l = latency::latency(&scratch, 10_000, 10, 100).await?;
        let hop = |name: &str, q: &latency::Quantiles| {
            format!(
                "| {name} | {:.1} | {:.1} | {:.1} |",
                q.p50_ms, q.p99_ms, q.max_ms
            )
        };
        let _ = writeln!(
            latency_section,
            "\n**Latency**, whole hub on the embedded bus (fsync on), {} records/s offered to `std.grid_event`, {} \
             active subscriptions ({:.2} releases per record), {} records measured on the subscription that takes \
             every record:\n\n| hop | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|\n{}\n{}\n{}\n{}",
            l.rate,
            l.subscriptions,
            l.releases_per_record,
            l.records,
            hop("ingest write: publish → durable on `std.`", &l.ingest_write),
            hop("router read: durable → read from `std.`", &l.router_read),
            hop("release: read from `std.` → read from `sub.` (route + one atomic write)", &l.release),
            hop("**end to end**: publish → read from `sub.`", &l.end_to_end),
        );
        let [write, read, release] = l.tail_hops_ms;
        let _ = writeln!(
            latency_section,
            "\nWhere the slowest 1 % ({} records, end to end ≥ its p99) lost their time, median per hop: ingest \
             write {write:.1} ms, router read {read:.1} ms, release {release:.1} ms.",
            l.tail_records
        );
        let mib =
            |v: Option<f64>| v.map_or_else(|| "unknown".to_owned(), |v| format!("{v:.0} MiB"));
        let _ = writeln!(
            latency_section,
            "\nPeak resident memory of the process during the run (hub + load generator): **{}**; before the hub \
             started: {}.",
            mib(l.peak_rss_mib),
            mib(l.rss_before_mib)
        );
    }
    if wants("foundation") {
        eprintln!("bench: Avro encode ({} records)…", options.records);
        size = foundation::bench_encode(options.records, &mut rows)?;
        for record_size in [size, 256] {
            eprintln!(
                "bench: embedded bus ({} records of {record_size} bytes)…",
                options.records
            );
            foundation::bench_embedded(&scratch, options.records, record_size, &mut rows).await?;
        }
        if let Some(broker) = &options.kafka {
            eprintln!(
                "bench: Kafka at {broker} ({} records)…",
                options.kafka_records
            );
            foundation::bench_kafka(broker, options.kafka_records, size, &mut rows).await?;
        }
    }
    if wants("ingest") {
        eprintln!("bench: connectors ({} records each)…", options.records);
        ingest::bench_connectors(options.records, &mut rows)?;
        let pushed = options.records.min(100_000);
        eprintln!("bench: HTTP push end to end ({pushed} records)…");
        let figures = ingest::embedded(&scratch, pushed, &mut rows).await?;
        let _ = writeln!(
            sections,
            "\n**Ingest** ({pushed} simulated grid records, {:.0} bytes each as written: original + normalised): HTTP \
             push {:.0} records/s = **{:.0}%** of the bare store ({:.0}); the sink alone {:.0}. CPU per record, \
             every thread of the process: HTTP push {} (the benchmark's senders included), the sink alone {}, the \
             bare store {}. With more push connectors, two senders each:\n\n| connectors | records/s |\n|---:|---:|",
            figures.bytes_per_record,
            figures.pushed.per_second,
            figures.pushed.per_second / figures.bare_store.per_second.max(1e-9) * 100.0,
            figures.bare_store.per_second,
            figures.direct.per_second,
            cpu_per_record(figures.pushed),
            cpu_per_record(figures.direct),
            cpu_per_record(figures.bare_store),
        );
        for (connectors, r) in &figures.by_connectors {
            let _ = writeln!(sections, "| {connectors} | {r:.0} |");
        }
        let stages = &figures.stages;
        let _ = writeln!(
            sections,
            "\nWhere a grid record's CPU goes before the write, one stage at a time on one core:\n\n\
             | stage | µs per record |\n|---|---:|"
        );
        for (stage, us) in stages {
            let _ = writeln!(sections, "| {stage} | {us:.2} |");
        }
        let _ = writeln!(
            sections,
            "| **sum** | **{:.2}** |",
            stages.iter().map(|(_, us)| us).sum::<f64>()
        );
        curves.connectors = figures
            .by_connectors
            .iter()
            .map(|&(c, r)| (c as f64, r))
            .collect();
        curves.bare_store = Some(figures.bare_store.per_second);
        if let Some(broker) = &options.kafka {
            eprintln!(
                "bench: HTTP push end to end on Kafka at {broker} ({} records)…",
                options.kafka_records
            );
            ingest::kafka(broker, options.kafka_records, &mut rows).await?;
        }
    }
    if wants("routing") {
        let routed = options.records.min(20_000);
        let _ = writeln!(
            sections,
            "\n**Routing** (one core; record × subscription evaluations = filter, and for released records the view \
             plan, the view encode and framing), mixed filters:\n\n| subscriptions | records/s | evaluations/s | ns \
             per evaluation | filter-only evaluations/s | released |\n|---:|---:|---:|---:|---:|---:|"
        );
        for subscriptions in [1, 10, 100, 1000] {
            eprintln!("bench: routing with {subscriptions} subscriptions ({routed} records)…");
            let n = if subscriptions >= 1000 {
                routed / 4
            } else {
                routed
            };
            let (t, baseline, filters) = routing::throughput(n, subscriptions)?;
            rows.push(Row::new(
                format!(
                    "routing, {subscriptions} subscriptions, mixed filters (records/s, one core)"
                ),
                t.records_per_s,
                "to_avro_datum of the full record (records/s)",
                baseline,
            ));
            let _ = writeln!(
                sections,
                "| {subscriptions} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}% |",
                t.records_per_s,
                t.evaluations_per_s,
                t.ns_per_evaluation,
                filters,
                t.released_share * 100.0
            );
            curves.mixed.push((subscriptions as f64, t.records_per_s));
        }
        let _ = writeln!(
            sections,
            "\n**Indexed routing** (one core): each subscription on its own county (`region_code.startsWith`) and two \
             event types; records spread over the counties and four event types, a fifth from outside them. The \
             baseline routes the same filters written `(…) || false`, so every filter runs:\n\n| subscriptions | \
             records/s indexed | records/s every filter | routes evaluated per record | releases per record |\n\
             |---:|---:|---:|---:|---:|"
        );
        for subscriptions in [1, 10, 100, 1000] {
            eprintln!(
                "bench: indexed routing, {subscriptions} county subscriptions ({routed} records)…"
            );
            let t = routing::indexed(routed, subscriptions)?;
            rows.push(Row::new(
                format!(
                    "routing, {subscriptions} county subscriptions, indexed (records/s, one core)"
                ),
                t.indexed_per_s,
                "every filter evaluated (records/s)",
                t.scan_per_s,
            ));
            let _ = writeln!(
                sections,
                "| {subscriptions} | {:.0} | {:.0} | {:.1} | {:.2} |",
                t.indexed_per_s, t.scan_per_s, t.candidates_per_record, t.releases_per_record
            );
            curves
                .indexed
                .push((subscriptions as f64, t.indexed_per_s, t.scan_per_s));
        }
        eprintln!("bench: every subscription matching ({routed} records × 100)…");
        let every = routing::every_match(routed / 10, 100)?;
        let _ = writeln!(
            sections,
            "\nWith 100 subscriptions that all match every record (filter `true`, 5–9 field rules): **{every:.0} full \
             evaluations/s** on one core (filter, view plan, view encode, framing)."
        );
    }
    if wants("scale") {
        scale_section(
            &scratch,
            options.records,
            options.history_records,
            &mut rows,
            &mut sections,
            &mut curves,
        )
        .await?;
    }
    sections.push_str(&latency_section);
    if options.kafka.is_none() {
        eprintln!("bench: no --kafka broker given; Kafka measurements skipped.");
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "| measurement | unsilo | baseline | baseline figure | unsilo / baseline |\n|---|---:|---|---:|---:|"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {:.0} | {:.2} |",
            r.name,
            r.ours,
            r.baseline_name,
            r.baseline,
            r.ours / r.baseline.max(1e-9)
        );
    }
    if wants("foundation") {
        let _ = writeln!(
            out,
            "\nRecord size {size} bytes (the shipped grid_event example, Confluent-framed); {} records per embedded \
             measurement, {} per Kafka measurement; {} logical CPUs.",
            options.records,
            options.kafka_records,
            std::thread::available_parallelism().map_or(0, usize::from)
        );
    }
    out.push_str(&sections);
    if wants("foundation") || wants("ingest") || wants("latency") {
        let _ = writeln!(out, "\n{}", scratch.describe());
    }
    Ok(Report {
        markdown: out,
        svg: curves.svg(),
    })
}

/// Concurrent senders in the HTTP push measurement and its baseline, as several source systems (or one with
/// parallel uploads) push at once.
const SENDERS: usize = 8;

/// Waits for every sender task; the first failure is the benchmark's error.
async fn join_senders(
    tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>,
) -> Result<(), BenchError> {
    for t in tasks {
        t.await
            .map_err(|e| BenchError::Avro(e.to_string()))?
            .map_err(BenchError::Avro)?;
    }
    Ok(())
}

/// The province's shape (see [`scale`]): each figure beside its target.
async fn scale_section(
    scratch: &Scratch,
    records: usize,
    history_records: usize,
    rows: &mut Vec<Row>,
    sections: &mut String,
    curves: &mut Curves,
) -> Result<(), BenchError> {
    // First, so the memory sampled under load is the hub's, not what the routing measurements left allocated.
    let loaded = records.min(20_000);
    eprintln!("bench: a hub started again with 1 000 agencies and 10 000 subscriptions, then {loaded} records routed…");
    let s = scale::start_at_size(scratch, 1_000, 10_000, loaded).await?;
    let routed = records.min(20_000);
    eprintln!(
        "bench: routing at the province's shape, 1 000 to 10 000 subscriptions ({routed} records)…"
    );
    for subscriptions in [1_000, 3_000] {
        let p = scale::province_routing(routed, subscriptions, scale::Shape::Province)?;
        curves.province.push((
            subscriptions as f64,
            p.records_per_s,
            p.records_per_s * p.releases_per_record,
        ));
        let t = scale::province_routing(routed, subscriptions, scale::Shape::TownsOnly)?;
        curves.towns.push((subscriptions as f64, t.records_per_s));
    }
    let r = scale::province_routing(routed, 10_000, scale::Shape::Province)?;
    curves.province.push((
        10_000.0,
        r.records_per_s,
        r.records_per_s * r.releases_per_record,
    ));
    let towns = scale::province_routing(routed, 10_000, scale::Shape::TownsOnly)?;
    curves.towns.push((10_000.0, towns.records_per_s));
    rows.push(Row::new(
        "routing, 10,000 subscriptions, 90 % county or town scoped (records/s, one core)",
        r.records_per_s,
        "to_avro_datum of the full record (records/s)",
        r.baseline_per_s,
    ));

    let fan_out = r.releases_per_record.round().max(1.0) as usize;
    eprintln!(
        "bench: evidence bytes per release: live at fan-out {fan_out}, a backfill, one entry each…"
    );
    let live = evidence::evidence_bytes(scratch, 10_000, fan_out).await?;
    let backfill = evidence::evidence_bytes(scratch, 100_000, 1).await?;
    let one_each = evidence::bytes_per_release_entry(scratch, 20_000).await?;
    curves.evidence_one_each = Some(one_each);
    curves.evidence.push((1.0, backfill.bytes_per_release));
    for f in [10, 50] {
        let e = evidence::evidence_bytes(scratch, 10_000, f).await?;
        curves.evidence.push((f as f64, e.bytes_per_release));
    }
    curves
        .evidence
        .push((live.fan_out as f64, live.bytes_per_release));
    eprintln!("bench: the person report over 1, 10 and 100 million releases (fan-out {fan_out}, 100,000 residents)…");
    for releases in [1_000_000, 10_000_000] {
        let smaller =
            evidence::person_report_at_size(scratch, releases, fan_out, 100_000, 500).await?;
        curves.person_report.push((releases as f64, smaller.p99_ms));
    }
    let report =
        evidence::person_report_at_size(scratch, 100_000_000, fan_out, 100_000, 500).await?;
    curves
        .person_report
        .push((report.releases as f64, report.p99_ms));
    eprintln!("bench: a {history_records}-record history released to a new subscription beside live records at 1,000/s…");
    let h = history::history_beside_live(scratch, history_records, 1_000).await?;
    let met = |ok: bool| if ok { "met" } else { "**not met**" };
    let _ = writeln!(
        sections,
        "\n**History beside live traffic** (a whole hub, embedded bus, fsync on; one run):\n\n\
         | measure | measured | target | |\n|---|---:|---:|---|\n\
         | a {}-record history released to a new subscription, records/s from the grant until the subscriber has it all | {:.0} | ≥ 100,000 | {} |\n\
         | — baseline: the same history read from the bus alone, records/s | {:.0} | | |\n\
         | live records ({} /s) meanwhile, publish to subscriber: p50 / p99 / max ({} records) | {:.1} / {:.1} / {:.1} ms | p99 ≤ 50 ms | {} |\n\
         | — baseline: the same live rate before the grant, p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | | |",
        h.history_records,
        h.history_per_s,
        met(h.history_per_s >= 100_000.0),
        h.read_per_s,
        h.live_rate,
        h.live_beside_records,
        h.live_beside.p50_ms,
        h.live_beside.p99_ms,
        h.live_beside.max_ms,
        met(h.live_beside.p99_ms <= 50.0),
        h.live_alone.p50_ms,
        h.live_alone.p99_ms,
        h.live_alone.max_ms,
    );
    rows.push(Row::new(
        "history released to a new subscription beside live traffic (records/s)",
        h.history_per_s,
        "the same history read from the bus alone (records/s)",
        h.read_per_s,
    ));
    let rss = s.rss_mib.map_or("—".to_owned(), |m| format!("{m:.0} MiB"));
    let _ = writeln!(
        sections,
        "\n**Province scale** (the targets of the province-scale work; one run, one machine):\n\n\
         | measure | measured | target | |\n|---|---:|---:|---|\n\
         | routing, {} subscriptions (90 % county or town scoped, the rest mixed), records/s on one core | {:.0} | ≥ 200,000 | {} |\n\
         | — routes evaluated per record / releases per record / releases per second | {:.1} / {:.2} / {:.0} | | |\n\
         | — building the routing table (every filter and view compiled) | {:.2} s | | |\n\
         | — bytes of a released view (framed Avro value; the bus record adds its key and headers) | {:.0} | | |\n\
         | routing, {} subscriptions each scoped to one town (matching alone: {:.1} releases per record), records/s on one core | {:.0} | | |\n\
         | hub start with {} subscriptions and {} agencies on the control plane, until it serves (`/readyz`: bus, registry, control plane replayed; each router then compiles its table as above) | {:.2} s | ≤ 10 s | {} |\n\
         | — the process's resident memory then (not yet under load) | {} | ≤ 1 GiB | {} |\n\
         | — then {} records routed through it, the whole path (decode, match, views, evidence, the write and its fsync): records/s; releases per record | {:.0}; {:.1} | | |\n\
         | — the process's resident memory under that load, highest sampled | {} | ≤ 1 GiB | {} |\n\
         | — writing them to the control plane in bulk, and creating their topics | {:.2} s | | |\n\
         | evidence per release on the bus, live: each record to {} subscriptions (batched, deflated) | {:.1} bytes | ≤ 64 bytes | {} |\n\
         | evidence per release on the bus, a backfill to one subscription (the worst case) | {:.1} bytes | ≤ 64 bytes | {} |\n\
         | — baseline: one signed entry per release, as before batching | {:.0} bytes | | |\n\
         | person report with {:.0} million releases recorded ({} records naming {} residents), p99 after a restart | {:.1} ms | ≤ 200 ms | {} |\n\
         | — p50; releases per report | {:.1} ms; {:.0} | | |\n\
         | — entries the reopened index read (0: no scan after a restart) | {} | 0 | {} |\n\
         | — the index on disk, per release | {:.2} bytes | | |\n\
         | — writing that evidence; first building the index | {:.0} s; {:.0} records/s | | |",
        r.subscriptions,
        r.records_per_s,
        met(r.records_per_s >= 200_000.0),
        r.candidates_per_record,
        r.releases_per_record,
        r.records_per_s * r.releases_per_record,
        r.build_s,
        r.bytes_per_release,
        towns.subscriptions,
        towns.releases_per_record,
        towns.records_per_s,
        s.subscriptions,
        s.agencies,
        s.start_s,
        met(s.start_s <= 10.0),
        rss,
        met(s.rss_mib.is_some_and(|m| m <= 1024.0)),
        s.load_records,
        s.routed_per_s,
        s.releases_per_record,
        s.peak_rss_mib.map_or("—".to_owned(), |m| format!("{m:.0} MiB")),
        met(s.peak_rss_mib.is_some_and(|m| m <= 1024.0)),
        s.seed_s,
        live.fan_out,
        live.bytes_per_release,
        met(live.bytes_per_release <= 64.0),
        backfill.bytes_per_release,
        met(backfill.bytes_per_release <= 64.0),
        one_each,
        report.releases as f64 / 1e6,
        report.records,
        report.residents,
        report.p99_ms,
        met(report.p99_ms <= 200.0),
        report.p50_ms,
        report.releases_per_report,
        report.read_after_restart,
        met(report.read_after_restart == 0),
        report.index_bytes_per_release,
        report.write_s,
        report.index_records_per_s,
    );
    rows.push(Row::new(
        "evidence per release, backfill to one subscription (bytes; lower is better)",
        backfill.bytes_per_release,
        "one signed entry per release (bytes)",
        one_each,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{BenchOptions, Curves, Scratch};

    #[test]
    fn stores_go_under_the_chosen_directory_and_the_report_names_its_file_system() {
        let root = tempfile::tempdir().expect("tempdir");
        let scratch = Scratch::under(Some(root.path().to_owned())).expect("a directory");
        let dir = scratch.dir().expect("scratch dir");
        assert!(dir.path().starts_with(root.path()));
        let fs = unsilo_bus::embedded::FileSystem::of(root.path()).expect("mount table");
        let line = scratch.describe();
        assert!(line.contains(&root.path().display().to_string()), "{line}");
        assert!(line.contains(&fs.fs_type), "{line}");
        let discard = if fs.online_discard() {
            "**with online discard**"
        } else {
            "without online discard"
        };
        assert!(line.contains(discard), "{line}");
    }

    #[tokio::test]
    async fn a_missing_data_directory_is_refused_before_anything_runs() {
        let err = super::run(BenchOptions {
            records: 10,
            kafka: None,
            kafka_records: 10,
            history_records: 10,
            only: vec!["latency".into()],
            data_dir: Some("/nonexistent/unsilo-bench".into()),
        })
        .await
        .err()
        .expect("refused");
        assert!(
            err.to_string()
                .contains("--data-dir /nonexistent/unsilo-bench: no such directory"),
            "{err}"
        );
    }

    #[test]
    fn the_stopwatch_counts_the_cpu_the_process_spends() {
        let clock = super::Stopwatch::start();
        // Busy for 100 ms of wall time: even on a loaded machine at least one 10 ms tick of CPU.
        let busy = std::time::Instant::now();
        let mut x = 0u64;
        while busy.elapsed() < std::time::Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let figure = clock.stop(1_000);
        let cpu = figure.cpu_us_per_record.expect("/proc/self/stat is read");
        assert!(
            cpu >= 10.0,
            "≥ 10 ms of work over 1,000 records is ≥ 10 µs each, got {cpu}"
        );
        assert!(figure.per_second > 0.0 && figure.per_second.is_finite());
        assert_eq!(super::cpu_per_record(figure), format!("{cpu:.1} µs"));
        assert_eq!(
            super::cpu_per_record(super::Throughput::default()),
            "not measured"
        );
    }

    #[test]
    fn every_stage_of_the_push_path_is_timed_on_the_same_records() {
        let load = super::ingest::GridLoad::new(1_000, 11).expect("grid load");
        let stages = super::ingest::stage_costs(&load, 2).expect("stages");
        let names: Vec<&str> = stages.iter().map(|(name, _)| *name).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.iter().any(|n| n.contains("contract")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("Avro encode")), "{names:?}");
        for (name, us) in &stages {
            assert!(us.is_finite() && *us >= 0.0, "{name}: {us}");
        }
        assert!(
            stages.iter().map(|(_, us)| us).sum::<f64>() > 0.0,
            "the stages took no time: {stages:?}"
        );
    }

    #[test]
    fn a_plot_is_drawn_only_from_sections_that_measured_curves() {
        assert!(
            Curves::default().svg().is_none(),
            "latency or foundation alone: nothing to plot"
        );
        let ingest = Curves {
            connectors: vec![(1.0, 30_000.0), (2.0, 38_000.0)],
            bare_store: Some(100_000.0),
            ..Curves::default()
        };
        let svg = ingest.svg().expect("ingest curves");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("push connectors"), "{svg}");
        assert!(!svg.contains("Routing, one core"), "{svg}");
    }
}
