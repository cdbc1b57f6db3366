//! `unsilo demo`: the hub on the embedded bus with every source system simulated, so realistic data flows from
//! the first minute.
//!
//! | source system | simulator | how the hub gets it |
//! |---|---|---|
//! | county grid platform (grid events through 上报…结案, households with care levels, residents, grids) | `unsilo_simulate::grid` | it pushes to `POST /ingest/grid` |
//! | 秦务员 (service cases, ratings, appeals) | `unsilo_simulate::qinwuyuan` | it pushes to `POST /ingest/qinwuyuan` |
//! | 12345 hotline work orders that change over time | `unsilo_simulate::hotline12345` serves the work-order API | the hub polls it (`http_poll`) |
//! | departmental GBK CSV / XLSX exports | `unsilo_simulate::dept_file` writes files into `<data_dir>/demo-dropbox` | the hub watches the folder (`file_drop`) |
//! | departmental databases (低保 roster in PostgreSQL, incidents in MySQL) | `unsilo_simulate::dept_sql`, only with `--postgres-url` / `--mysql-url` | the hub polls the tables (`sql_poll`) |
//!
//! Push tokens are made fresh for each run and only their SHA-256 is given to the hub. A share of every
//! simulator's records is malformed on purpose, so `dlq.<connector>` shows what rejection looks like.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};
use unsilo_connectors::sdk::Shutdown;
use unsilo_connectors::transport::file_drop::FileDropConfig;

use unsilo_hub::auth::{token_digest, Principal, Role};
use unsilo_hub::config::{Config, ConnectorConfig, TransportKind};
use unsilo_hub::server::{Hub, ServerError};
use unsilo_policy::model::SubscriptionStatus;

/// What the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Data directory of the embedded bus.
    pub data_dir: PathBuf,
    /// Where the hub serves HTTP.
    pub listen: SocketAddr,
    /// Records per second per simulator.
    pub rate: f64,
    /// Share of malformed records per simulator (0.0–1.0).
    pub malformed_share: f64,
    /// Seed of the simulators' random data.
    pub seed: u64,
    /// PostgreSQL for the 低保 roster simulator and its `sql_poll` connector (optional).
    pub postgres_url: Option<String>,
    /// MySQL / MariaDB for the incident-table simulator and its `sql_poll` connector (optional).
    pub mysql_url: Option<String>,
    /// Print only the banner, not a progress line every 10 seconds.
    pub quiet: bool,
}

/// Errors that stop the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The hub failed.
    #[error(transparent)]
    Hub(#[from] ServerError),
    /// A listener or folder could not be set up.
    #[error("{0}")]
    Setup(String),
}

fn new_token() -> String {
    format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

fn push(name: &str, token: &str) -> ConnectorConfig {
    ConnectorConfig::http_push(name, &format!("builtin:{name}"), token_digest(token))
}

fn polled(name: &str, definition: &str, transport: TransportKind) -> ConnectorConfig {
    ConnectorConfig {
        name: name.into(),
        definition: format!("builtin:{definition}"),
        transport,
        http_push: None,
        http_poll: None,
        sql_poll: None,
        file_drop: None,
        kafka_topic: None,
        provider: None,
        provider_schemas: None,
    }
}

/// Runs a simulator in its own task, logging what it did when it stops (or why it failed).
fn spawn_simulator<S, E>(
    name: &'static str,
    run: impl Future<Output = Result<S, E>> + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    S: std::fmt::Debug + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::spawn(async move {
        match run.await {
            Ok(stats) => info!(simulator = name, ?stats, "Simulator stopped."),
            Err(e) => warn!(simulator = name, error = %e, "Simulator failed."),
        }
    })
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, DemoError> {
    toml::from_str(text).map_err(|e| DemoError::Setup(format!("demo {what} settings: {e}")))
}

/// The demo's agencies: id, name, unified social credit code, clearance.
const DEMO_AGENCIES: [(&str, &str, &str, &str); 3] = [
    ("civil-affairs", "汉阴县民政局", "11610921016050037T", "S3"),
    (
        "public-security",
        "汉阴县公安局",
        "11610921MB12345671",
        "S2",
    ),
    (
        "health-commission",
        "汉阴县卫生健康局",
        "12610921MB00000019",
        "S2",
    ),
];

/// The demo's providing organisations (提供方): id, name, unified social credit code, and the connectors whose
/// resources they provide (`provider` in their `[[connectors]]`). Each has a reviewer who decides the 有条件
/// requests for its catalogue entries.
const DEMO_PROVIDERS: [(&str, &str, &str, &[&str]); 4] = [
    (
        "grid-center",
        "汉阴县网格化服务管理中心",
        "12610921MB0000002C",
        &["grid"],
    ),
    (
        "gov-service",
        "汉阴县政务服务中心",
        "12610921MB0000003F",
        &["qinwuyuan"],
    ),
    (
        "hotline-12345",
        "汉阴县12345政务服务便民热线",
        "12610921MB0000005M",
        &["hotline12345"],
    ),
    (
        "data-bureau",
        "汉阴县数据局",
        "11610921MB0000004M",
        &["mz-dibao", "ga-jqxx"],
    ),
];

/// The name of each demo provider's reviewer (审核人).
pub(crate) const DEMO_PROVIDER_REVIEWER: &str = "王芳";

/// The providing organisation the demo names for connector `name`, if any.
fn demo_provider_of(name: &str) -> Option<String> {
    DEMO_PROVIDERS
        .iter()
        .find(|(_, _, _, connectors)| connectors.contains(&name))
        .map(|(id, _, _, _)| (*id).to_owned())
}

/// The demo's subscription requests, as the agencies would send them (`demo/subscriptions.json`).
const DEMO_SUBSCRIPTIONS: &str = include_str!("../demo/subscriptions.json");

/// One of the demo's subscriptions: who requests it, what the operator approves above the agency's clearance, and
/// whether it needs the PostgreSQL database of `unsilo demo --postgres-url`.
#[derive(serde::Deserialize)]
struct DemoSubscription {
    agency: String,
    approve_above_clearance: Vec<String>,
    #[serde(default)]
    with_postgres: bool,
    /// Filed but not approved: left for a newcomer to decide in the console.
    #[serde(default)]
    leave_pending: bool,
    request: unsilo_hub::governance::SubscriptionRequest,
}

/// Creates the demo's agencies (or issues them fresh tokens on a re-run) and their subscriptions, approved by
/// the demo operator, as an operator would with `unsilo agency create` and `unsilo subscription approve`.
/// Returns each agency's token, and the ids of the requests left waiting for an operator's decision.
async fn setup_agencies(
    hub: &Hub,
    postgres_url: Option<&str>,
) -> Result<(Vec<(String, String)>, Vec<String>), DemoError> {
    use unsilo_hub::governance::{ApproveRequest, NewAgency};
    use unsilo_policy::model::Channel;
    let operator = demo_operator(DEMO_SECURITY);
    let setup =
        |e: unsilo_hub::api_error::ApiError| DemoError::Setup(format!("demo agencies: {e}"));
    let mut tokens = Vec::new();
    let mut pending = Vec::new();
    for (id, name, uscc, clearance) in DEMO_AGENCIES {
        let token = if hub.control.agency(id).is_some() {
            hub.governance
                .issue_token(&operator, id, Default::default())
                .await
                .map_err(setup)?
                .0
        } else {
            let new = NewAgency {
                id: id.into(),
                name: name.into(),
                uscc: uscc.into(),
                clearance: clearance.into(),
                client_cert_sha256: None,
                token_expires_at_ms: None,
            };
            hub.governance
                .create_agency(&operator, new)
                .await
                .map_err(setup)?
                .1
        };
        tokens.push((id.to_owned(), token));
    }
    // The providing organisations, each with a reviewer's token (`<id>.reviewer`).
    for (id, name, uscc, _) in DEMO_PROVIDERS {
        if hub.control.agency(id).is_none() {
            let new = NewAgency {
                id: id.into(),
                name: name.into(),
                uscc: uscc.into(),
                clearance: "S1".into(),
                client_cert_sha256: None,
                token_expires_at_ms: None,
            };
            let (_, token) = hub
                .governance
                .create_agency(&operator, new)
                .await
                .map_err(setup)?;
            tokens.push((id.to_owned(), token));
        }
        let reviewer = unsilo_hub::governance::NewToken {
            expires_at_ms: None,
            reviewer: Some(DEMO_PROVIDER_REVIEWER.into()),
        };
        let (token, _) = hub
            .governance
            .issue_token(&operator, id, reviewer)
            .await
            .map_err(setup)?;
        tokens.push((format!("{id}.reviewer"), token));
    }
    let demo: Vec<DemoSubscription> = serde_json::from_str(DEMO_SUBSCRIPTIONS)
        .map_err(|e| DemoError::Setup(format!("demo subscriptions: {e}")))?;
    for DemoSubscription {
        agency,
        approve_above_clearance,
        with_postgres,
        leave_pending,
        mut request,
    } in demo
    {
        let agency = agency.as_str();
        if with_postgres {
            // The SQL channel goes to the database the demo was given, and is left out without one.
            let Some(url) = postgres_url else {
                continue;
            };
            if let Channel::Sql { url: target, .. } = &mut request.spec.channel {
                *target = url.to_owned();
            }
        }

        let id = unsilo_policy::model::Subscription::id_of(agency, &request.name);
        let existing = hub.control.subscription(&id).map(|s| s.status);
        if existing.is_none() {
            hub.governance
                .request(&Principal::Agency(agency.into()), request)
                .await
                .map_err(setup)?;
        }
        if leave_pending {
            if matches!(existing, None | Some(SubscriptionStatus::Requested)) {
                pending.push(id);
            }
            continue;
        }
        if existing.is_some() {
            continue;
        }
        let approval = ApproveRequest {
            approve_above_clearance,
            ..ApproveRequest::default()
        };
        crate::approve_with_review(hub, &operator, &demo_operator(DEMO_REVIEWER), &id, approval)
            .await
            .map_err(setup)?;
    }
    Ok((tokens, pending))
}

/// The demo's operators (三员分立): the file their token is written to, their name and their role. The two
/// security administrators decide requests, the second confirming grants that need two (双人复核).
const DEMO_OPERATORS: [(&str, &str, Role); 4] = [
    ("system", "demo-system", Role::System),
    ("security", "demo-security", Role::Security),
    ("security-reviewer", "demo-reviewer", Role::Security),
    ("audit", "demo-auditor", Role::Audit),
];

/// The demo's security administrator, who creates the agencies and approves.
const DEMO_SECURITY: usize = 1;
/// The second security administrator, who confirms (双人复核).
const DEMO_REVIEWER: usize = 2;

/// The principal of one of [`DEMO_OPERATORS`].
fn demo_operator(index: usize) -> Principal {
    let (_, name, role) = DEMO_OPERATORS[index];
    Principal::Operator {
        name: name.into(),
        role,
    }
}

/// The demo's correction: civil affairs says the member count of the last household it received is wrong, as
/// `unsilo correction file` would. Waits (up to two minutes) for a released household; does nothing on a re-run
/// that already has one.
async fn file_demo_correction(hub: Hub, mut shutdown: Shutdown) {
    const AGENCY: &str = "civil-affairs";
    let subscription = unsilo_policy::model::Subscription::id_of(AGENCY, "red-households");
    let who = Principal::Agency(AGENCY.into());
    if hub
        .governance
        .corrections(&who)
        .is_ok_and(|list| !list.is_empty())
    {
        return;
    }
    let topic = unsilo_schemas::names::subscription_topic(AGENCY, "red-households");
    for _ in 0..60 {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let ends = hub.bus.end_offsets(&topic).await.unwrap_or_default();
        let Some((partition, end)) = ends.iter().enumerate().find(|(_, e)| **e > 0) else {
            continue;
        };
        let fetch =
            unsilo_bus::FetchRequest::new(&topic, partition as u32, end - 1, 1, Duration::ZERO);
        let Some(record_id) = hub
            .bus
            .fetch(&fetch)
            .await
            .ok()
            .and_then(|batch| batch.first().map(|r| r.record.record_id()))
        else {
            continue;
        };
        let new = unsilo_hub::governance::NewCorrection {
            subscription: subscription.clone(),
            record_id,
            field: "member_count".into(),
            problem: "户内人数与入户走访核实情况不符".into(),
            evidence: "乡镇民政办入户走访记录".into(),
            proposed_value: None,
        };
        match hub.governance.file_correction(&who, new).await {
            Ok(c) => {
                info!(correction = %c.id, provider = ?c.provider, "Demo correction filed; the provider's reviewer answers it on /console/corrections.");
                return;
            }
            // The release's evidence may not be on the log yet: try again.
            Err(e) => tracing::debug!(error = %e, "Demo correction not filed yet."),
        }
    }
    warn!("No household reached civil affairs in two minutes; the demo filed no correction.");
}

/// Writes the demo's tokens to files readable only by the user (never to the log).
fn write_tokens(
    dir: &std::path::Path,
    operators: &[String],
    agencies: &[(String, String)],
) -> Result<(), DemoError> {
    let setup = |e: std::io::Error| {
        DemoError::Setup(format!("writing demo tokens to {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(setup)?;
    let mut files: Vec<(String, String)> = DEMO_OPERATORS
        .iter()
        .zip(operators)
        .map(|((file, _, _), token)| ((*file).to_owned(), token.clone()))
        .collect();
    files.extend(agencies.iter().cloned());
    for (name, token) in files {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        unsilo_hub::secrets::write_private(&path, token.as_bytes()).map_err(setup)?;
    }
    Ok(())
}

/// Writes each demo operator's one-time-code enrolment (`<file>.totp`: the otpauth URI an authenticator app
/// scans), readable only by the user.
fn write_totp_enrolments(
    dir: &std::path::Path,
    secret: &unsilo_hub::secrets::HubSecret,
) -> Result<(), DemoError> {
    for (file, name, _) in DEMO_OPERATORS {
        let path = dir.join(format!("{file}.totp"));
        let uri = unsilo_hub::totp::otpauth_uri(name, &secret.totp_secret(name, 0));
        let _ = std::fs::remove_file(&path);
        unsilo_hub::secrets::write_private(&path, uri.as_bytes())
            .map_err(|e| DemoError::Setup(format!("writing {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Runs the demo until `shutdown` completes: simulators stop first, then the hub drains and closes.
pub async fn run(
    options: DemoOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let (stop_simulators, sim_shutdown) = Shutdown::new();
    let load = crate::SimulatorLoad {
        rate: options.rate,
        malformed_share: options.malformed_share,
        seed: options.seed,
        limit: None,
    };
    let mut simulators: Vec<tokio::task::JoinHandle<()>> = Vec::new();

    // The 12345 work-order API, which the hub will poll.
    let hotline_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| DemoError::Setup(format!("cannot bind the 12345 simulator: {e}")))?;
    let hotline_addr = hotline_listener
        .local_addr()
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let hotline = crate::simulator_options!(
        load,
        unsilo_simulate::hotline12345::Hotline12345Options { addr: hotline_addr }
    );
    let sd = sim_shutdown.clone();
    simulators.push(spawn_simulator(
        "hotline12345",
        unsilo_simulate::hotline12345::serve(hotline_listener, hotline, sd),
    ));

    let dropbox = options.data_dir.join("demo-dropbox");
    std::fs::create_dir_all(&dropbox)
        .map_err(|e| DemoError::Setup(format!("cannot create {}: {e}", dropbox.display())))?;

    let grid_token = new_token();
    let qinwuyuan_token = new_token();
    let mut config = Config::default();
    config.bus.embedded.data_dir = options.data_dir.clone();
    config.http.listen = options.listen;
    config.connectors.push(push("grid", &grid_token));
    config.connectors.push(push("qinwuyuan", &qinwuyuan_token));
    let mut hotline_connector = polled("hotline12345", "hotline12345", TransportKind::HttpPoll);
    hotline_connector.http_poll = Some(parse(
        "http_poll",
        &format!(
            "url = \"http://{hotline_addr}/api/workorders\"\nrecords_pointer = \"/data/items\"\n\
             record_id_pointer = \"/gdbh\"\nupdated_pointer = \"/gxsj\"\n\
             cursor = {{ kind = \"updated_since\", param = \"updatedSince\", time_format = \"%Y%m%d%H%M%S\" }}\n\
             page_size = 200\npage_size_param = \"pageSize\"\npoll_interval = \"2s\"\n"
        ),
    )?);
    config.connectors.push(hotline_connector);
    let mut file_connector = polled("dept-file", "dept-file", TransportKind::FileDrop);
    file_connector.file_drop = Some(FileDropConfig::new(&dropbox));
    config.connectors.push(file_connector);
    if let Some(url) = &options.postgres_url {
        let mut c = polled("mz-dibao", "dept-sql", TransportKind::SqlPoll);
        c.sql_poll = Some(parse(
            "sql_poll",
            &format!(
                "url = {url:?}\ntable = \"{}\"\ncursor_column = \"gxsj\"\nid_column = \"id\"\npoll_interval = \"2s\"\n",
                unsilo_simulate::dept_sql::DIBAO_TABLE
            ),
        )?);
        config.connectors.push(c);
    }
    if let Some(url) = &options.mysql_url {
        let mut c = polled("ga-jqxx", "dept-sql", TransportKind::SqlPoll);
        c.sql_poll = Some(parse(
            "sql_poll",
            &format!(
                "url = {url:?}\ntable = \"{}\"\ncursor_column = \"gxsj\"\nid_column = \"id\"\npoll_interval = \"2s\"\n",
                unsilo_simulate::dept_sql::INCIDENT_TABLE
            ),
        )?);
        config.connectors.push(c);
    }

    // The dept-sql simulator creates its tables before the hub starts polling them.
    if options.postgres_url.is_some() || options.mysql_url.is_some() {
        let sql = crate::simulator_options!(
            load,
            unsilo_simulate::dept_sql::DeptSqlOptions {
                postgres_url: options.postgres_url.clone(),
                mysql_url: options.mysql_url.clone(),
            }
        );
        unsilo_simulate::dept_sql::prepare(&sql)
            .await
            .map_err(|e| DemoError::Setup(format!("dept-sql simulator: {e}")))?;
        let sd = sim_shutdown.clone();
        simulators.push(spawn_simulator(
            "dept-sql",
            unsilo_simulate::dept_sql::run(sql, sd),
        ));
    }

    // The departmental exports (dept-file) add to the grid's residents, which the grid centre provides.
    for c in &mut config.connectors {
        c.provider = demo_provider_of(&c.name);
    }
    let operator_tokens: Vec<String> = DEMO_OPERATORS.iter().map(|_| new_token()).collect();
    for ((_, name, role), token) in DEMO_OPERATORS.iter().zip(&operator_tokens) {
        config
            .admin
            .operators
            .push(unsilo_hub::auth::OperatorCredential {
                name: (*name).into(),
                role: *role,
                token_sha256: unsilo_hub::auth::token_digest(token),
                totp_epoch: 0,
                client_cert_sha256: None,
            });
    }
    let hub = Hub::start(&config).await?;
    let tokens_dir = options.data_dir.join("demo-tokens");
    let (agency_tokens, pending) = setup_agencies(&hub, options.postgres_url.as_deref()).await?;
    // Each request left waiting: who decides it, and by when.
    let pending: Vec<(String, Option<String>, String)> = pending
        .into_iter()
        .filter_map(|id| {
            let s = hub.control.subscription(&id)?;
            let provider = hub.governance.deciding_provider_of(&s);
            let due = s
                .deadlines
                .map(|d| unsilo_hub::calendar::beijing_time(d.answer_due_ms))
                .unwrap_or_default();
            Some((id, provider, due))
        })
        .collect();
    write_tokens(&tokens_dir, &operator_tokens, &agency_tokens)?;
    let secret = config
        .load_secret()
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    write_totp_enrolments(&tokens_dir, &secret)?;
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| DemoError::Setup(format!("cannot listen on {}: {e}", options.listen)))?;
    let base = format!("http://{}", options.listen);

    let grid = crate::simulator_options!(
        load,
        unsilo_simulate::grid::GridSimulatorOptions {
            hub_url: base.clone(),
            token: grid_token,
        }
    );
    let qinwuyuan = crate::simulator_options!(
        load,
        unsilo_simulate::qinwuyuan::QinwuyuanOptions {
            url: format!("{base}/ingest/qinwuyuan"),
            token: qinwuyuan_token,
        }
    );
    // Civil affairs files a correction (校核纠错) on a household it received, once one has arrived.
    simulators.push(tokio::spawn(file_demo_correction(
        hub.clone(),
        sim_shutdown.clone(),
    )));
    simulators.extend([
        spawn_simulator(
            "grid",
            unsilo_simulate::grid::run(grid, sim_shutdown.clone()),
        ),
        spawn_simulator(
            "qinwuyuan",
            unsilo_simulate::qinwuyuan::run(qinwuyuan, sim_shutdown.clone()),
        ),
    ]);
    let files = unsilo_simulate::dept_file::DeptFileOptions {
        malformed_share: options.malformed_share,
        seed: options.seed,
        files_per_minute: (options.rate * 2.0).clamp(1.0, 60.0),
        ..unsilo_simulate::dept_file::DeptFileOptions::new(&dropbox)
    };
    let sd = sim_shutdown.clone();
    simulators.push(spawn_simulator(
        "dept-file",
        unsilo_simulate::dept_file::run(files, sd),
    ));

    println!(
        "{}",
        banner(
            &base,
            &tokens_dir,
            &dropbox,
            &agency_tokens,
            &pending,
            &secret
        )
    );
    if !options.quiet {
        simulators.push(tokio::spawn(print_progress(
            Arc::clone(&hub.metrics),
            sim_shutdown.clone(),
        )));
    }

    let serving = hub.serve(listener, async move {
        shutdown.await;
        info!("Stopping the simulators.");
        stop_simulators.trigger();
    });
    let result = serving.await;
    for s in simulators {
        let _ = s.await;
    }
    result.map_err(DemoError::from)?;
    println!("  unsilo demo stopped cleanly · 演示已停止");
    Ok(())
}

/// The one block the demo prints at start: where the console is, how to sign in, what to try next.
fn banner(
    base: &str,
    tokens: &std::path::Path,
    dropbox: &std::path::Path,
    agencies: &[(String, String)],
    pending: &[(String, Option<String>, String)],
    secret: &unsilo_hub::secrets::HubSecret,
) -> String {
    let t = tokens.display();
    let (_, security_name, _) = DEMO_OPERATORS[DEMO_SECURITY];
    let security_key = secret.totp_secret(security_name, 0);
    let now = u64::try_from(unsilo_bus::now_ms() / 1000).unwrap_or(0);
    let agency_files: Vec<String> = agencies
        .iter()
        .filter(|(id, _)| !id.ends_with(".reviewer"))
        .map(|(id, _)| format!("{t}/{id}"))
        .collect();
    let mut out = format!(
        "\n  unsilo demo is running · 演示已启动\n\n  \
         Console 控制台       {base}/console/\n  \
         Sign in 登录         三员分立: name, token and a one-time code. The system, security and audit\n                      administrators' tokens are in {t}/system, {t}/security and {t}/audit;\n                      each one's authenticator URI beside it ({t}/security.totp …).\n                      e.g. name {security_name}, token {t}/security, code {code} now\n                      (add secret {secret32} to an authenticator app for later codes)\n  \
         Agency tokens       {}\n  \
         Sources 数据源       grid and 秦务员 push, the 12345 API is polled, GBK exports land in {}\n",
        agency_files.join(", "),
        dropbox.display(),
        code = unsilo_hub::totp::code_at(&security_key, now),
        secret32 = unsilo_hub::totp::secret_base32(&security_key),
    );
    for (id, provider, due) in pending {
        out.push_str(&format!(
            "  Waiting 待审批       {id}: {}, answer due {due} (Beijing)\n",
            match provider {
                Some(p) =>
                    format!("waits for its provider {p}; its reviewer's token is {t}/{p}.reviewer"),
                None => "approve or narrow it in the console (Requests)".to_owned(),
            }
        ));
    }
    // The commands name the binary as it was started (`target/release/unsilo` under `cargo run`).
    let unsilo = std::env::args()
        .next()
        .filter(|p| p.ends_with("unsilo"))
        .unwrap_or_else(|| "unsilo".to_owned());
    out.push_str(&format!(
        "\n  Try next:\n    \
         curl -s {base}/metrics | grep unsilo_ingest_records\n    \
         UNSILO_TOKEN=$(cat {t}/civil-affairs) {unsilo} subscription pull civil-affairs.red-households\n    \
         UNSILO_TOKEN=$(cat {t}/audit) UNSILO_OTP=$({unsilo} operator totp code {t}/audit.totp) {unsilo} audit verify\n\n  \
         A progress line follows every 10 s (--quiet hides it). Ctrl-C stops.\n"
    ));
    out
}

/// Prints one line every 10 seconds: records in per connector (accepted / rejected), releases per
/// subscription, dead letters.
async fn print_progress(metrics: Arc<unsilo_hub::metrics::Metrics>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => println!("{}", progress_line(&metrics.flows.snapshot())),
            () = shutdown.wait() => return,
        }
    }
}

/// One progress line from the live flows.
fn progress_line(flows: &unsilo_hub::flows::FlowSnapshot) -> String {
    let time = chrono::Local::now().format("%H:%M:%S");
    let sources: Vec<String> = flows
        .connectors
        .iter()
        .map(|(name, f)| format!("{name} {}✓ {}✗", f.accepted, f.rejected))
        .collect();
    let released: Vec<String> = flows
        .subscriptions
        .iter()
        .map(|(id, f)| format!("{id} {}", f.released))
        .collect();
    let rejected: u64 = flows.connectors.values().map(|f| f.rejected).sum();
    let refused: u64 = flows.subscriptions.values().map(|f| f.dead_lettered).sum();
    format!(
        "[{time}] in: {} | released: {} | dead letters: {rejected} from sources, {refused} in delivery",
        if sources.is_empty() { "—".to_owned() } else { sources.join(", ") },
        if released.is_empty() { "—".to_owned() } else { released.join(", ") },
    )
}
