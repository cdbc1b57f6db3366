//! The national topology from outside, as separate processes on one machine: a hub (`unsilo serve`, TLS) and
//! two department edge nodes (`unsilo edge`), each on its own data directory, the edges reaching the hub only
//! through a TCP proxy the test can cut.
//!
//! - The civil-affairs edge polls its department's PostgreSQL table (`mz_dbdx`); the public-security edge
//!   watches a folder of GBK CSV rosters. Both enrol with one-time codes and run the definitions the hub's
//!   operator pushed (signed).
//! - A health-commission subscription on the hub receives every row of the department's table, once.
//! - The link is cut while the department's table keeps changing; the edge buffers; restored, it resumes from
//!   the hub's acknowledged position: every row arrives, none twice (record ids checked, and the hub wrote
//!   exactly as many originals as the edge read).
//! - The civil-affairs edge also delivers the department's own subscription (households the grid platform
//!   pushed to the hub) into a table of the department's database.
//! - The console's edge list and `GET /admin/edges` show both edges with their counts.
//!
//! The `unsilo` binary is the one cargo built beside this test (`target/<profile>/unsilo`).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use unsilo_hub::auth::token_digest;
use unsilo_tests::api::{
    grid_messages, Api, AUDITOR_TOKEN, OPERATOR_TOKEN, PUSH_TOKEN, REVIEWER_TOKEN, SYSTEM_TOKEN,
};
use unsilo_tests::rand_suffix;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// The `unsilo` binary cargo built for this workspace.
fn unsilo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join("unsilo");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p unsilo-cli` (tests/run.sh builds the whole workspace)",
        bin.display()
    );
    bin
}

/// A process of the topology, its output in a log file; killed when dropped.
struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, dir: &Path, args: &[&str]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(unsilo_binary())
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("clone")))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `unsilo <args>` to completion in `dir` and returns its standard output; panics with its output if
/// it fails.
fn unsilo(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(unsilo_binary())
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run unsilo");
    assert!(
        out.status.success(),
        "unsilo {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP proxy in front of the hub that the test can cut (every open connection dropped, new ones refused)
/// and restore — a department's line going down.
struct LinkProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl LinkProxy {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (c, o) = (cut.clone(), open.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown().await;
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                o.lock().expect("lock").push(task);
            }
        });
        Self { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for t in self.open.lock().expect("lock").drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// A CA and the hub's server certificate for 127.0.0.1, written to `dir`.
fn tls_files(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "province test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write");
    std::fs::write(dir.join("hub.pem"), cert.pem()).expect("write");
    let key_file = dir.join("hub.key");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
}

fn hub_config(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("hub.toml");
    std::fs::write(
        &path,
        format!(
            r#"[http]
listen = "127.0.0.1:{port}"
[http.tls]
cert = "hub.pem"
key = "hub.key"
[bus]
kind = "embedded"
[bus.embedded]
data_dir = "hub-data"
[admin.sign_in]
api_second_factor = false
[delivery]
egress_allow_cidrs = ["127.0.0.0/8"]
[[admin.operators]]
name = "ops"
role = "security"
token_sha256 = "{op}"
[[admin.operators]]
name = "reviewer"
role = "security"
token_sha256 = "{rev}"
[[admin.operators]]
name = "sysadmin"
role = "system"
token_sha256 = "{sys}"
[[admin.operators]]
name = "auditor"
role = "audit"
token_sha256 = "{aud}"
[[connectors]]
name = "grid"
definition = "builtin:grid"
transport = "http_push"
[connectors.http_push]
token_sha256 = "{push}"
"#,
            op = token_digest(OPERATOR_TOKEN),
            rev = token_digest(REVIEWER_TOKEN),
            sys = token_digest(SYSTEM_TOKEN),
            aud = token_digest(AUDITOR_TOKEN),
            push = token_digest(PUSH_TOKEN),
        ),
    )
    .expect("hub.toml");
    path
}

/// Polls `check` every 200 ms until it answers `Some`, or panics with `what` after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pulls and acknowledges everything `subscription` has for now (until a batch comes back empty).
async fn pull_all(api: &Api, token: &str, subscription: &str) -> Vec<Value> {
    let mut records = Vec::new();
    loop {
        let (s, body) = api
            .get(
                token,
                &format!("/v1/subscriptions/{subscription}/records?max=1000&wait_ms=300"),
            )
            .await;
        assert_eq!(s, 200, "pull {subscription}: {body}");
        let batch = body["records"].as_array().cloned().unwrap_or_default();
        if batch.is_empty() {
            return records;
        }
        let (s, ack) = api
            .post(
                token,
                &format!("/v1/subscriptions/{subscription}/ack"),
                json!({"cursor": body["cursor"]}),
            )
            .await;
        assert_eq!(s, 200, "ack: {ack}");
        records.extend(batch);
    }
}

/// Pulls `subscription` into `received` until its records name `rows` distinct source rows (`record_key`), or
/// fails after 90 s with the edge's log.
async fn pull_every_row(
    api: &Api,
    token: &str,
    subscription: &str,
    rows: i64,
    received: &mut Vec<Value>,
    edge: &mut Proc,
) {
    let key = |r: &Value| r["record"]["record_key"].as_str().expect("key").to_owned();
    let mut keys: BTreeSet<String> = received.iter().map(key).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    while (keys.len() as i64) < rows {
        edge.assert_running();
        assert!(
            Instant::now() < deadline,
            "{} of {rows} rows at the hub\n{}",
            keys.len(),
            edge.log()
        );
        let batch = pull_all(api, token, subscription).await;
        keys.extend(batch.iter().map(key));
        received.extend(batch);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the hub process answers `/readyz` (60 s at most), failing with its log if it exits.
async fn wait_ready(hub: &mut Proc, http: &reqwest::Client, base: &str) {
    let started = Instant::now();
    loop {
        hub.assert_running();
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} never became ready:\n{}",
            hub.name,
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A client that trusts the test CA in `dir`.
fn trusting_client(dir: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).expect("ca"))
                .expect("pem"),
        )
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A pull subscription request `(name, schema)` for `fields` as `(field, treatment)`, for `(purpose, legal basis)`.
fn pull_request(
    (name, schema): (&str, &str),
    fields: &[(&str, &str)],
    (purpose, legal_basis): (&str, &str),
) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .map(|(f, t)| json!({ "field": f, "treatment": t }))
        .collect();
    json!({
        "name": name, "schema": schema, "fields": fields,
        "purpose": purpose, "legal_basis": legal_basis,
        "scenario": purpose, "scope": "网格户与名册对象",
        "expires_at": "2030-12-31T23:59:59+08:00",
        "channel": { "kind": "pull" }
    })
}

async fn count(url: &str, sql: &str) -> i64 {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql);
    c.close().await.ok();
    n
}

fn edge_config(
    dir: &Path,
    (id, edge_extra): (&str, &str),
    proxy_port: u16,
    connector: &str,
    body: &str,
) -> PathBuf {
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"[edge]
id = "{id}"
data_dir = "{id}-data"
{edge_extra}
[link]
hub = "https://127.0.0.1:{proxy_port}"
hub_ca = "ca.pem"
max_bytes_per_second = 2000000
batch_records = 50
status_every = "1s"
max_backoff = "2s"
[buffer]
max_bytes = 50000000
[[connectors]]
name = "{connector}"
{body}
"#
        ),
    )
    .expect("edge.toml");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_forward_through_a_cut_link_losing_and_repeating_nothing_and_deliver_locally() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    tls_files(d);
    let hub_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    hub_config(d, hub_port);
    let mut hub = Proc::spawn("hub", d, &["serve", "--config", "hub.toml"]);
    let base = format!("https://127.0.0.1:{hub_port}");
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(d.join("ca.pem")).expect("ca"))
                .expect("pem"),
        )
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    wait_ready(&mut hub, &http, &base).await;
    let api = Api::with_client(&base, http.clone());
    let proxy = LinkProxy::start(hub_port).await;

    // --- The department's database: the 低保 roster the civil-affairs edge polls.
    let suffix = rand_suffix();
    let db = format!("edge_civil_{suffix}");
    {
        let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (tests/run.sh starts it)");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await
            .expect("create database");
    }
    let dept_url = format!("{POSTGRES}/{db}");
    unsilo(
        d,
        &[
            "simulate",
            "--rate",
            "400",
            "--limit",
            "60",
            "--malformed",
            "0",
            "--seed",
            "11",
            "dept-sql",
            "--postgres-url",
            &dept_url,
        ],
    );

    // --- The hub's operator registers both edges; a wrong code is refused, a used code cannot be used again.
    let (s, civil) = api
        .post(
            SYSTEM_TOKEN,
            "/admin/edges",
            json!({"id": "civil-edge", "organisation": "civil-affairs", "description": "民政局前置机"}),
        )
        .await;
    assert_eq!(s, 201, "{civil}");
    let civil_code = civil["enrolment_code"].as_str().expect("code").to_owned();
    let (s, police) = api
        .post(
            SYSTEM_TOKEN,
            "/admin/edges",
            json!({"id": "police-edge", "description": "公安局前置机"}),
        )
        .await;
    assert_eq!(s, 201, "{police}");
    let police_code = police["enrolment_code"].as_str().expect("code").to_owned();
    let (s, _) = api
        .post(OPERATOR_TOKEN, "/admin/edges", json!({"id": "nope"}))
        .await;
    assert_eq!(s, 403, "only the system administrator registers edges");
    let wrong = http
        .post(format!("{base}/link/v1/enrol"))
        .json(&json!({"edge": "civil-edge", "code": "AAAAA-AAAAA-AAAAA-AAAAA", "csr_pem": "x"}))
        .send()
        .await
        .expect("enrol");
    assert_eq!(wrong.status().as_u16(), 401, "a wrong code is refused");

    // --- The departments: their agencies, and the civil-affairs subscription delivered at its edge.
    let civil_token = api
        .agency("civil-affairs", "汉阴县民政局", "11610921016050037T", "S3")
        .await;
    let health_token = api
        .agency("health", "汉阴县卫生健康局", "116109210160500883", "S3")
        .await;
    std::fs::write(d.join("civil.token"), &civil_token).expect("token file");
    let police_token = api
        .agency(
            "public-security",
            "汉阴县公安局",
            "11610921016050046Q",
            "S3",
        )
        .await;
    std::fs::write(d.join("police.token"), &police_token).expect("token file");
    let (folder_sub, _) = api
        .subscribe_approved(
            &police_token,
            "public-security",
            pull_request(
                ("households-inbox", "household"),
                &[("care_level", "clear"), ("village_code", "clear")],
                ("重点户走访", "《人民警察法》"),
            ),
            json!({}),
        )
        .await;
    let (local_sub, _) = api
        .subscribe_approved(
            &civil_token,
            "civil-affairs",
            pull_request(
                ("households-back", "household"),
                &[
                    ("head_cert_no", "pseudonymise"),
                    ("care_level", "clear"),
                    ("village_code", "clear"),
                ],
                ("连心户走访帮扶", "《社会救助暂行办法》"),
            ),
            json!({"approve_above_clearance": ["head_cert_no"]}),
        )
        .await;
    let (roster_sub, _) = api
        .subscribe_approved(
            &health_token,
            "health",
            pull_request(
                ("dibao-roster", "dept_record"),
                &[
                    ("record_key", "clear"),
                    ("table_name", "clear"),
                    ("operation", "clear"),
                ],
                ("低保对象医疗救助衔接", "《社会救助暂行办法》"),
            ),
            json!({}),
        )
        .await;

    // --- Edge configurations, enrolment (their own keys, certificates from the hub's link CA), definitions.
    let drop_dir = d.join("police-drop");
    std::fs::create_dir_all(&drop_dir).expect("drop dir");
    edge_config(
        d,
        ("civil-edge", ""),
        proxy.port,
        "civil-dibao",
        &format!(
            r#"transport = "sql_poll"
[connectors.sql_poll]
url = "{dept_url}"
table = "mz_dbdx"
cursor_column = "gxsj"
id_column = "id"
poll_interval = "200ms"
[[deliveries]]
subscription = "{local_sub}"
token_file = "civil.token"
[deliveries.sql]
url = "{dept_url}"
table = "jh_household"
"#
        ),
    );
    let push_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let edge_push_token = "police-grid-push-token-at-the-edge-7c1d";
    edge_config(
        d,
        (
            "police-edge",
            &format!("listen = \"127.0.0.1:{push_port}\""),
        ),
        proxy.port,
        "police-rosters",
        &format!(
            r#"transport = "file_drop"
[connectors.file_drop]
dir = "{}"
encoding = "gbk"
poll_interval = "200ms"
[[connectors]]
name = "police-grid"
transport = "http_push"
[connectors.http_push]
token_sha256 = "{}"
[[deliveries]]
subscription = "{folder_sub}"
token_file = "police.token"
[deliveries.folder]
path = "police-inbox"
"#,
            drop_dir.display(),
            token_digest(edge_push_token)
        ),
    );
    unsilo(
        d,
        &[
            "edge",
            "--config",
            "civil-edge.toml",
            "enrol",
            "--code",
            &civil_code,
        ],
    );
    unsilo(
        d,
        &[
            "edge",
            "--config",
            "police-edge.toml",
            "enrol",
            "--code",
            &police_code,
        ],
    );
    let reuse = http
        .post(format!("{base}/link/v1/enrol"))
        .json(&json!({"edge": "civil-edge", "code": civil_code, "csr_pem": "x"}))
        .send()
        .await
        .expect("enrol");
    assert_eq!(reuse.status().as_u16(), 401, "a used code is refused");
    let hub_arg = [
        "--hub",
        base.as_str(),
        "--ca-file",
        "ca.pem",
        "--token",
        SYSTEM_TOKEN,
    ];
    let pushed: Value = serde_json::from_str(&unsilo(
        d,
        &[
            &["edges"][..],
            &hub_arg,
            &["push", "civil-edge", "civil-dibao", "builtin:dept-sql"],
        ]
        .concat(),
    ))
    .expect("json");
    assert_eq!(pushed["version"], 1, "{pushed}");
    assert!(
        pushed["signature"].as_str().is_some_and(|s| s.len() > 60),
        "{pushed}"
    );
    unsilo(
        d,
        &[
            &["edges"][..],
            &hub_arg,
            &["push", "police-edge", "police-rosters", "builtin:dept-file"],
        ]
        .concat(),
    );
    unsilo(
        d,
        &[
            &["edges"][..],
            &hub_arg,
            &["push", "police-edge", "police-grid", "builtin:grid"],
        ]
        .concat(),
    );
    let (s, clash) = api
        .call(
            reqwest::Method::PUT,
            SYSTEM_TOKEN,
            "/admin/edges/police-edge/connectors/civil-dibao",
            Some(json!({"files": {"connector.toml": "x"}})),
        )
        .await;
    assert_eq!(s, 422, "one connector name, one place: {clash}");

    let mut civil_edge = Proc::spawn("civil-edge", d, &["edge", "--config", "civil-edge.toml"]);
    let mut police_edge = Proc::spawn("police-edge", d, &["edge", "--config", "police-edge.toml"]);
    unsilo(
        d,
        &[
            "simulate",
            "--rate",
            "400",
            "--limit",
            "40",
            "--malformed",
            "0",
            "--seed",
            "12",
            "dept-file",
            "--dir",
            drop_dir.to_str().expect("path"),
        ],
    );

    // --- Every row of the department's table reaches the health commission through the hub.
    let rows = count(&dept_url, "SELECT count(*) FROM mz_dbdx").await;
    let mut received = Vec::new();
    pull_every_row(
        &api,
        &health_token,
        &roster_sub,
        rows,
        &mut received,
        &mut civil_edge,
    )
    .await;

    // --- The link is cut; the department's table keeps changing; the edge keeps reading into its buffer.
    proxy.cut();
    unsilo(
        d,
        &[
            "simulate",
            "--rate",
            "400",
            "--limit",
            "80",
            "--malformed",
            "0",
            "--seed",
            "13",
            "dept-sql",
            "--postgres-url",
            &dept_url,
        ],
    );
    let cut_at = Instant::now();
    while !civil_edge.log().contains("The link to the hub is down") {
        civil_edge.assert_running();
        assert!(
            cut_at.elapsed() < Duration::from_secs(60),
            "the edge never noticed the cut:\n{}",
            civil_edge.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The link stays down a while longer: the edge keeps reading into its buffer meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = pull_all(&api, &health_token, &roster_sub).await;
    proxy.restore();

    // --- Restored: every row arrives, and no record id arrives twice.
    let rows = count(&dept_url, "SELECT count(*) FROM mz_dbdx").await;
    received.extend(during);
    pull_every_row(
        &api,
        &health_token,
        &roster_sub,
        rows,
        &mut received,
        &mut civil_edge,
    )
    .await;
    let mut ids = HashSet::new();
    for r in &received {
        let id = r["record_id"].as_str().expect("record id");
        assert!(ids.insert(id.to_owned()), "record {id} delivered twice");
    }

    // --- The hub's view of the edges: enrolled, counts that add up, nothing written twice.
    let civil_view = eventually(
        "the civil edge's report catches up",
        Duration::from_secs(30),
        || {
            let api = &api;
            async move {
                let (_, v) = api.get(SYSTEM_TOKEN, "/admin/edges/civil-edge").await;
                let c = v["report"]["connectors"][0].clone();
                (c["waiting"] == 0
                    && c["read"].as_u64() > Some(0)
                    && c["read"] == c["forwarded"]
                    && c["read"] == v["acknowledged"]["civil-dibao"]["next_offset"])
                    .then_some(v)
            }
        },
    )
    .await;
    assert_eq!(civil_view["state"], "enrolled", "{civil_view}");
    let read = civil_view["report"]["connectors"][0]["read"]
        .as_u64()
        .expect("read");
    assert_eq!(
        civil_view["acknowledged"]["civil-dibao"]["next_offset"], read,
        "the hub acknowledged exactly what the edge read: {civil_view}"
    );
    assert_eq!(
        civil_view["report"]["connectors"][0]["definition_version"],
        1
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(SYSTEM_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let ingested: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("unsilo_ingest_records_total{connector=\"civil-dibao\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        ingested, read,
        "the hub normalised each original the edge read once"
    );
    assert!(
        metrics.contains("unsilo_edge_buffer_alarm{edge=\"civil-edge\"} 0"),
        "operators can alert on the edges' buffers"
    );
    let public = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        !public.contains("civil-edge"),
        "an anonymous caller does not learn the edges"
    );
    let police_view = eventually(
        "the police edge forwards its rosters",
        Duration::from_secs(60),
        || {
            let api = &api;
            async move {
                let (_, v) = api.get(SYSTEM_TOKEN, "/admin/edges/police-edge").await;
                let c = v["report"]["connectors"][0].clone();
                (c["read"].as_u64() >= Some(40) && c["waiting"] == 0).then_some(v)
            }
        },
    )
    .await;
    police_edge.assert_running();
    assert_eq!(police_view["state"], "enrolled", "{police_view}");

    // --- A department system pushes to its edge, inside its own network, with its token.
    let edge_push = format!("http://127.0.0.1:{push_port}/ingest/police-grid");
    let plain = reqwest::Client::new();
    let (_, _, event) = grid_messages((suffix % 10_000_000) * 10 + 9);
    let r = plain
        .post(&edge_push)
        .bearer_auth("wrong-token")
        .json(&json!([event]))
        .send()
        .await
        .expect("push");
    assert_eq!(
        r.status().as_u16(),
        401,
        "a wrong token is refused at the edge"
    );
    let r = plain
        .post(&edge_push)
        .bearer_auth(edge_push_token)
        .json(&json!([event]))
        .send()
        .await
        .expect("push");
    assert_eq!(
        r.status().as_u16(),
        202,
        "{}\n{}",
        r.text().await.unwrap_or_default(),
        police_edge.log()
    );
    eventually(
        "the pushed event reaches the hub",
        Duration::from_secs(30),
        || {
            let api = &api;
            async move {
                let (_, v) = api.get(SYSTEM_TOKEN, "/admin/edges/police-edge").await;
                let next = v["acknowledged"]["police-grid"]["next_offset"].as_u64();
                (next == Some(1)).then_some(())
            }
        },
    )
    .await;

    // --- Local delivery: the households the grid platform pushes reach the department's own table.
    let mut pushed = Vec::new();
    for i in 0..3 {
        let (red, green, _) = grid_messages((suffix % 10_000_000) * 10 + i);
        pushed.push(red);
        pushed.push(green);
    }
    api.push_grid(&pushed.iter().collect::<Vec<_>>()).await;
    let delivered = eventually(
        "households land in the department's table",
        Duration::from_secs(60),
        || {
            let url = dept_url.clone();
            async move {
                let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jh_household")
                    .fetch_one(&mut c)
                    .await
                    .ok()?;
                (n >= 6).then_some(n)
            }
        },
    )
    .await;
    assert_eq!(delivered, 6, "each household once");
    let cert: i64 = count(
        &dept_url,
        "SELECT count(*) FROM jh_household WHERE head_cert_no LIKE '61%'",
    )
    .await;
    assert_eq!(cert, 0, "ID numbers arrive pseudonymised, as granted");
    let inbox = d.join("police-inbox");
    let in_files = eventually(
        "households land in the police inbox",
        Duration::from_secs(60),
        || {
            let inbox = inbox.clone();
            async move {
                let mut ids = BTreeSet::new();
                for entry in std::fs::read_dir(&inbox).ok()? {
                    let path = entry.ok()?.path();
                    if path.extension().is_some_and(|e| e == "jsonl") {
                        for line in std::fs::read_to_string(&path).ok()?.lines() {
                            let v: Value = serde_json::from_str(line).ok()?;
                            assert!(
                                v["record"]["head_cert_no"].is_null(),
                                "only the granted fields: {v}"
                            );
                            ids.insert(v["record_id"].as_str()?.to_owned());
                        }
                    }
                }
                (ids.len() >= 6).then_some(ids)
            }
        },
    )
    .await;
    assert_eq!(
        in_files.len(),
        6,
        "each household once, in JSON-lines files"
    );

    // --- The link protocol, spoken directly as a third edge: a batch sent twice is written once, a gap is
    // refused naming the expected offset, a revoked edge's certificate is refused.
    let (s, probe) = api
        .post(SYSTEM_TOKEN, "/admin/edges", json!({"id": "probe-edge"}))
        .await;
    assert_eq!(s, 201, "{probe}");
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    let (s, enrolled) = api
        .post(
            "",
            "/link/v1/enrol",
            json!({"edge": "probe-edge", "code": probe["enrolment_code"], "csr_pem": csr}),
        )
        .await;
    assert_eq!(s, 200, "{enrolled}");
    assert!(enrolled["hub_public_key"]
        .as_str()
        .is_some_and(|k| !k.is_empty()));
    let identity = format!(
        "{}\n{}",
        enrolled["certificate_pem"].as_str().expect("certificate"),
        key.serialize_pem()
    );
    let as_probe = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(d.join("ca.pem")).expect("ca"))
                .expect("pem"),
        )
        .identity(reqwest::Identity::from_pem(identity.as_bytes()).expect("identity"))
        .build()
        .expect("client");
    unsilo(
        d,
        &[
            &["edges"][..],
            &hub_arg,
            &["push", "probe-edge", "probe-grid", "builtin:grid"],
        ]
        .concat(),
    );
    let (_, _, event) = grid_messages((suffix % 10_000_000) * 10 + 8);
    let record = |offset: u64| {
        json!({
            "offset": offset,
            "original_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, event.to_string()),
            "parsed": event,
            "origin": "probe",
            "read_at_ms": 0
        })
    };
    let send = |records: Vec<Value>| {
        let as_probe = as_probe.clone();
        let url = format!("{base}/link/v1/batches");
        async move {
            let body = serde_json::to_vec(
                &json!({"connector": "probe-grid", "buffer": "b1", "records": records}),
            )
            .expect("json");
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut gz, &body).expect("gzip");
            let r = as_probe
                .post(url)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(gz.finish().expect("gzip"))
                .send()
                .await
                .expect("batch");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, first) = send(vec![record(0), record(1)]).await;
    assert_eq!(
        (s, &first["written"], &first["next_offset"]),
        (200, &json!(2), &json!(2)),
        "{first}"
    );
    let (s, again) = send(vec![record(0), record(1)]).await;
    assert_eq!(
        (s, &again["written"], &again["next_offset"]),
        (200, &json!(0), &json!(2)),
        "sent twice, written once: {again}"
    );
    let (s, gap) = send(vec![record(5)]).await;
    assert_eq!(s, 409, "{gap}");
    assert!(
        gap["message"]
            .as_str()
            .is_some_and(|m| m.contains("send from 2")),
        "{gap}"
    );
    let r = as_probe
        .post(format!("{base}/link/v1/batches"))
        .header("content-encoding", "gzip")
        .body("not gzip")
        .send()
        .await
        .expect("batch");
    assert_eq!(
        r.status().as_u16(),
        422,
        "a body that does not decompress is refused"
    );
    let (s, _) = api.get(OPERATOR_TOKEN, "/link/v1/positions").await;
    assert_eq!(s, 403, "an operator is not an edge");
    let anonymous = http
        .get(format!("{base}/link/v1/positions"))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status().as_u16(), 401);
    let (s, _) = api
        .post(SYSTEM_TOKEN, "/admin/edges/probe-edge/revoke", json!({}))
        .await;
    assert_eq!(s, 200);
    let revoked = as_probe
        .get(format!("{base}/link/v1/positions"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        revoked.status().as_u16(),
        401,
        "a revoked edge's certificate is refused"
    );

    // --- Operators list every node (the revoked probe too); agencies do not.
    let (s, list) = api.get(AUDITOR_TOKEN, "/admin/edges").await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["edges"].as_array().map(Vec::len), Some(3), "{list}");
    let (s, _) = api.get(&civil_token, "/admin/edges").await;
    assert_eq!(s, 403, "agencies do not see the edges");

    drop(civil_edge);
    drop(police_edge);
    drop(hub);
    let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
        .await
        .expect("connect");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_hub_links_to_its_province_and_publishes_its_catalogue_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (province_dir, county_dir) = (dir.path().join("province"), dir.path().join("county"));
    std::fs::create_dir_all(&province_dir).expect("dir");
    std::fs::create_dir_all(&county_dir).expect("dir");
    tls_files(&province_dir);
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port()
    };
    let (province_port, county_port) = (free(), free());
    hub_config(&province_dir, province_port);
    let mut province = Proc::spawn(
        "province",
        &province_dir,
        &["serve", "--config", "hub.toml"],
    );
    let province_base = format!("https://127.0.0.1:{province_port}");
    let http = trusting_client(&province_dir);
    wait_ready(&mut province, &http, &province_base).await;
    let province_api = Api::with_client(&province_base, http.clone());

    // The province registers the county as a member hub; the county enrols with the one-time code.
    let (s, member) = province_api
        .post(
            SYSTEM_TOKEN,
            "/admin/edges",
            json!({"id": "county-hanyin", "kind": "member_hub", "description": "汉阴县政务数据共享交换平台"}),
        )
        .await;
    assert_eq!(s, 201, "{member}");
    let county_config = county_dir.join("hub.toml");
    std::fs::write(
        &county_config,
        format!(
            r#"[http]
listen = "127.0.0.1:{county_port}"
[bus]
kind = "embedded"
[bus.embedded]
data_dir = "county-data"
[admin.sign_in]
api_second_factor = false
[[admin.operators]]
name = "sysadmin"
role = "system"
token_sha256 = "{sys}"
[[admin.operators]]
name = "auditor"
role = "audit"
token_sha256 = "{aud}"
[parent]
hub = "{province_base}"
hub_ca = "{ca}"
id = "county-hanyin"
report_every = "1s"
"#,
            sys = token_digest(SYSTEM_TOKEN),
            aud = token_digest(AUDITOR_TOKEN),
            ca = province_dir.join("ca.pem").display(),
        ),
    )
    .expect("county config");
    unsilo(
        &county_dir,
        &[
            "parent",
            "enrol",
            "--config",
            "hub.toml",
            "--code",
            member["enrolment_code"].as_str().expect("code"),
        ],
    );
    let mut county = Proc::spawn("county", &county_dir, &["serve", "--config", "hub.toml"]);
    let county_base = format!("http://127.0.0.1:{county_port}");
    wait_ready(&mut county, &reqwest::Client::new(), &county_base).await;
    let county_api = Api::new(&county_base);
    let (s, own) = county_api.get(SYSTEM_TOKEN, "/admin/catalogue").await;
    assert_eq!(s, 200, "{own}");
    let own_ids: BTreeSet<String> = own["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(!own_ids.is_empty(), "{own}");

    // The province's agencies see the county's resources.
    let agency = province_api
        .agency("health", "陕西省卫生健康委员会", "116109210160500883", "S3")
        .await;
    let published = eventually(
        "the county's catalogue reaches the province",
        Duration::from_secs(60),
        || {
            let api = &province_api;
            let agency = agency.clone();
            async move {
                let (s, v) = api.get(&agency, "/admin/members/catalogue").await;
                assert_eq!(s, 200, "{v}");
                let m = v["members"]
                    .as_array()?
                    .iter()
                    .find(|m| m["member"] == "county-hanyin")?
                    .clone();
                Some(m)
            }
        },
    )
    .await;
    county.assert_running();
    let published_ids: BTreeSet<String> = published["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        published_ids, own_ids,
        "every entry of the county's catalogue, as the county keeps it"
    );
    let (s, view) = province_api
        .get(SYSTEM_TOKEN, "/admin/edges/county-hanyin")
        .await;
    assert_eq!(s, 200, "{view}");
    assert_eq!(
        (&view["kind"], &view["state"]),
        (&json!("member_hub"), &json!("enrolled")),
        "{view}"
    );
    assert!(view["last_contact_ms"].is_i64(), "{view}");
    assert_eq!(view["catalogue_entries"], own_ids.len(), "{view}");
    assert!(
        county.log().contains("Linked to the parent hub"),
        "{}",
        county.log()
    );
    drop(county);
    drop(province);
}
