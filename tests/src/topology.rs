//! The pieces of the topology tests (`tests/topology.rs`, `tests/cascade.rs`): the `unsilo` binary run as
//! separate processes ([`Proc`]), a link proxy the test can cut ([`LinkProxy`]), TLS files, hub and edge
//! configurations, and the polling helpers they share.

use std::collections::BTreeSet;
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

use crate::api::{Api, AUDITOR_TOKEN, OPERATOR_TOKEN, PUSH_TOKEN, REVIEWER_TOKEN, SYSTEM_TOKEN};

/// The PostgreSQL the tests use (tests/run.sh starts it).
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// The `unsilo` binary cargo built for this workspace.
pub fn unsilo_binary() -> PathBuf {
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
pub struct Proc {
    /// Its name in messages.
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `unsilo <args>` in `dir`, its output in `<dir>/<name>.log`.
    pub fn spawn(name: &str, dir: &Path, args: &[&str]) -> Self {
        Self::spawn_with_env(name, dir, args, &[])
    }

    /// Starts `unsilo <args>` in `dir` with `env` set (a fault to inject, say), its output in
    /// `<dir>/<name>.log`.
    pub fn spawn_with_env(name: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(unsilo_binary())
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied())
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

    /// What it wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `within` for it to exit and returns how it ended; panics with its log if it is still running.
    pub async fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {within:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Panics with its log if it has exited.
    pub fn assert_running(&mut self) {
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
pub fn unsilo(dir: &Path, args: &[&str]) -> String {
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
pub struct LinkProxy {
    /// The port the proxy listens on.
    pub port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl LinkProxy {
    /// A proxy on a free port to `127.0.0.1:<target>`.
    pub async fn start(target: u16) -> Self {
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

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for t in self.open.lock().expect("lock").drain(..) {
            t.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// A CA and the hub's server certificate for 127.0.0.1, written to `dir`.
pub fn tls_files(dir: &Path) {
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

/// Writes `hub.toml` in `dir`: TLS with the test CA's certificate (see [`tls_files`]), an embedded bus, the
/// test operators, a `grid` push connector, and `extra` appended (a `[parent]` section, policy …).
pub fn hub_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
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
{extra}
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
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
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
pub async fn pull_all(api: &Api, token: &str, subscription: &str) -> Vec<Value> {
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
pub async fn pull_every_row(
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
pub async fn wait_ready(hub: &mut Proc, http: &reqwest::Client, base: &str) {
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
pub fn trusting_client(dir: &Path) -> reqwest::Client {
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
pub fn pull_request(
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

/// The one number `sql` answers on the PostgreSQL database at `url`.
pub async fn count(url: &str, sql: &str) -> i64 {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql);
    c.close().await.ok();
    n
}

/// Writes `<id>.toml` in `dir`: an edge linked through the proxy on `proxy_port` to the hub (test CA), with
/// `edge_extra` in its `[edge]` section and one connector `connector` whose transport and the rest are `body`.
pub fn edge_config(
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
