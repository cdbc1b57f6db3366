//! The admin commands of the `unsilo` binary: `agency …`, `subscription …`, `audit …`, `dlq replay`.
//!
//! They are clients of a running hub's admin and pull APIs (`--hub`, default `http://127.0.0.1:8080`, and
//! `--token`, or `UNSILO_HUB` / `UNSILO_TOKEN`), so an operator's command goes through the same authentication,
//! checks and audit as an HTTP call. `audit verify --config` is the exception: it opens the bus itself, so an
//! auditor can check a copy of the log with no hub running.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};

/// How to reach the hub.
#[derive(Debug, clap::Args)]
pub(crate) struct HubArgs {
    /// The hub's base URL.
    #[arg(
        long,
        env = "UNSILO_HUB",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    hub: String,
    /// A bearer token: an operator's, or an agency's for its own subscriptions.
    #[arg(long, env = "UNSILO_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// An operator's current one-time code (the second factor on the API, `[admin.sign_in]
    /// api_second_factor`), sent as `X-Unsilo-OTP`; good for the 30 seconds it is shown.
    #[arg(long, env = "UNSILO_OTP", hide_env_values = true, global = true)]
    otp: Option<String>,
    /// Extra CA certificate (PEM) to trust for an HTTPS hub.
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    /// A TLS client certificate (PEM, with its key in the same file or in --client-key), for an agency bound
    /// to one (mutual TLS).
    #[arg(long, global = true)]
    client_cert: Option<PathBuf>,
    /// The private key (PEM) of --client-cert, when it is in a file of its own.
    #[arg(long, global = true)]
    client_key: Option<PathBuf>,
}

/// `unsilo agency …`
#[derive(Debug, Subcommand)]
pub(crate) enum AgencyCommand {
    /// Creates an agency and prints its first token (shown once).
    Create {
        /// Id, e.g. `civil-affairs`.
        #[arg(long)]
        id: String,
        /// Display name, e.g. `佳县民政局`.
        #[arg(long)]
        name: String,
        /// Unified social credit code.
        #[arg(long)]
        uscc: String,
        /// Clearance, S1–S4.
        #[arg(long)]
        clearance: String,
        /// Bind the agency to this TLS client certificate (SHA-256 fingerprint, hex): its token is then
        /// accepted only on a connection that presents that certificate.
        #[arg(long)]
        client_cert_sha256: Option<String>,
    },
    /// Lists agencies (an agency sees only itself).
    List,
    /// An agency's tokens: issue (shown once), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Suspends an agency's sharing for misuse (政务数据共享条例 Art. 27): its active subscriptions are paused
    /// and it files no request until the suspension is lifted.
    Suspend {
        /// The agency.
        id: String,
        /// The misuse found.
        #[arg(long)]
        reason: String,
    },
    /// Lifts a suspension (its paused subscriptions are then resumed one by one).
    LiftSuspension {
        /// The agency.
        id: String,
        /// Why it ends.
        #[arg(long)]
        reason: String,
    },
    /// Binds an agency to a TLS client certificate, or removes the binding (`--none`).
    BindCertificate {
        /// The agency.
        id: String,
        /// The certificate's SHA-256 fingerprint (hex; colons allowed).
        #[arg(long, conflicts_with_all = ["cert", "none"])]
        sha256: Option<String>,
        /// The certificate (PEM); its fingerprint is computed here.
        #[arg(long, conflicts_with = "none")]
        cert: Option<PathBuf>,
        /// Remove the binding.
        #[arg(long)]
        none: bool,
    },
}

/// `unsilo agency token …`
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issues an additional token to an agency (shown once). The other tokens keep working: rotate by issuing,
    /// switching the client over, then revoking the old one.
    Issue {
        /// The agency.
        id: String,
        /// The token stops being accepted after this long (`90d`, `12h`, `30m`); default: until revoked.
        #[arg(long)]
        expires_in: Option<String>,
        /// Issue it to a named reviewer (审核人) of the organisation: it decides the requests for the
        /// organisation's catalogue entries, and cannot request or pull data.
        #[arg(long)]
        reviewer: Option<String>,
    },
    /// Lists an agency's tokens: ids, issue, expiry and revocation times (never the tokens or digests).
    List {
        /// The agency.
        id: String,
    },
    /// Revokes one of an agency's tokens: it is refused from the next request on.
    Revoke {
        /// The agency.
        id: String,
        /// The token's id (`tok_…`, from `list`).
        token_id: String,
    },
}

/// `unsilo subscription …`
#[derive(Debug, Subcommand)]
pub(crate) enum SubscriptionCommand {
    /// Requests a subscription described by a JSON or TOML file (see docs/subscriptions.md).
    Request {
        /// The request file.
        file: PathBuf,
        /// The linked hub that holds the data (级联): a member hub's node id, or `parent` (回流). That hub decides
        /// the request; this hub follows its decision.
        #[arg(long)]
        held_at: Option<String>,
    },
    /// Lists subscriptions (an agency sees only its own).
    List {
        /// Only this status (requested, approved, active, rejected, revoked, expired).
        #[arg(long)]
        status: Option<String>,
    },
    /// Shows one subscription.
    Show {
        /// `<agency>.<name>`
        id: String,
    },
    /// Approves a requested subscription (optionally narrowed by a JSON or TOML file) and activates it.
    Approve {
        /// `<agency>.<name>`
        id: String,
        /// Narrowing and approvals: fields, and_filter, expires_at_ms, legal_basis, approve_above_clearance.
        #[arg(long)]
        grant: Option<PathBuf>,
        /// Fields above the agency's clearance approved explicitly (comma-separated).
        #[arg(long, value_delimiter = ',')]
        approve_above_clearance: Vec<String>,
        /// The legal basis on record.
        #[arg(long)]
        legal_basis: Option<String>,
    },
    /// Rejects a requested subscription.
    Reject {
        /// `<agency>.<name>`
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Revokes a subscription: nothing more is delivered.
    Revoke {
        /// `<agency>.<name>`
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Pauses an active subscription: nothing is released or delivered until it is resumed.
    Pause {
        /// `<agency>.<name>`
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Resumes a paused subscription: what arrived meanwhile is released first, then it continues live.
    Resume {
        /// `<agency>.<name>`
        id: String,
        /// A note for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Shows how far a subscription's history (a backfill, or the catch-up after a pause) has come; with
    /// `--wait`, draws a progress bar until it is live.
    Progress {
        /// `<agency>.<name>`
        id: String,
        /// Follow it until the subscription is live.
        #[arg(long)]
        wait: bool,
    },
    /// Pulls a batch of records (an agency, for a pull subscription) and prints them as JSON lines.
    Pull {
        /// `<agency>.<name>`
        id: String,
        /// Most records.
        #[arg(long, default_value_t = 10)]
        max: usize,
        /// Acknowledge the batch after printing it.
        #[arg(long)]
        ack: bool,
    },
}

/// `unsilo audit …`
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verifies the audit log: hash chains, the hubs' signatures and the signed checkpoints; exits non-zero if
    /// any entry was edited, removed, reordered or forged, or the newest entries were cut off.
    Verify {
        /// Open the bus of this configuration directly (hub stopped) instead of asking a running hub.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also check against checkpoints exported earlier (`unsilo audit checkpoints > file`) and kept elsewhere.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Prints the hub's audit public key (and the pinned keys of other hubs), to pin or to hand to auditors.
    Keys,
    /// Exports the hub's signed checkpoints as JSON lines, for anchoring outside the hub.
    Checkpoints,
    /// Exports the audit log of a period as a signed bundle (JSON lines) an auditor verifies offline with
    /// `unsilo audit verify-export` (the audit administrator).
    Export {
        /// Start of the period, inclusive: a date (`2026-12-01`, Beijing time) or RFC 3339 time.
        #[arg(long)]
        from: String,
        /// End of the period, exclusive: a date (the day is not included) or RFC 3339 time.
        #[arg(long)]
        to: String,
        /// Write the bundle here (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Verifies an exported bundle offline, without a hub: the manifest's signature, every entry's hash, chain
    /// link and signature, and the checkpoints. Exits non-zero when anything is wrong.
    VerifyExport {
        /// The bundle.
        file: PathBuf,
        /// The exporting hub's public key as you hold it (`unsilo audit keys`, handed over separately).
        /// Without it, the key in the bundle is used: that shows the bundle is whole, not whose it is.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Which agencies received data about a record or a person, under which subscription, when.
    Query {
        /// A record id.
        #[arg(long)]
        record_id: Option<String>,
        /// A person's ID number (turned into its pseudonymous key by the hub; never stored).
        #[arg(long)]
        cert_no: Option<String>,
        /// A pseudonymous person key.
        #[arg(long)]
        person_key: Option<String>,
        /// A subscription id.
        #[arg(long)]
        subscription: Option<String>,
        /// An agency id.
        #[arg(long)]
        agency: Option<String>,
    },
}

pub(crate) struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub(crate) fn new(args: &HubArgs) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(std::time::Duration::from_secs(60));
        if let Some(cert) = &args.client_cert {
            let mut pem =
                std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            if let Some(key) = &args.client_key {
                pem.extend(
                    std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
                );
            }
            builder =
                builder.identity(reqwest::Identity::from_pem(&pem).context(
                    "--client-cert (with --client-key) is not a PEM certificate and key",
                )?);
        }
        if let Some(ca) = &args.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(&pem)
                    .context("the CA file is not a PEM certificate")?,
            );
        }
        if let Some(otp) = &args.otp {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                unsilo_hub::access::OTP_HEADER,
                reqwest::header::HeaderValue::from_str(otp.trim())
                    .context("--otp is not a one-time code")?,
            );
            builder = builder.default_headers(headers);
        }
        Ok(Self {
            base: args.hub.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
            http: builder.build()?,
        })
    }

    /// GETs a text answer (an export).
    pub(crate) async fn text(&self, path: &str) -> anyhow::Result<String> {
        let bytes = self.bytes(path).await?;
        String::from_utf8(bytes).context("the hub's answer is not UTF-8 text")
    }

    /// GETs an answer's bytes (an export, a workbook).
    pub(crate) async fn bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let token = self
            .token
            .as_deref()
            .context("no token: pass --token or set UNSILO_TOKEN")?;
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach the hub at {}", self.base))?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default().to_vec();
        if !status.is_success() {
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            bail!(
                "{status}: {}",
                value["message"].as_str().unwrap_or("no message")
            );
        }
        Ok(body)
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let token = self
            .token
            .as_deref()
            .context("no token: pass --token or set UNSILO_TOKEN")?;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        match body {
            Some(b) => request = request.json(&b),
            // The admin API takes a JSON body on anything that changes something, `{}` when there is nothing to say.
            None if method != reqwest::Method::GET => {
                request = request.json(&serde_json::json!({}))
            }
            None => {}
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the hub at {}", self.base))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["message"].as_str().unwrap_or("no message");
            bail!("{status}: {message}");
        }
        Ok(value)
    }
}

/// A time argument in ms since the epoch: a date `YYYY-MM-DD` (its Beijing midnight) or an RFC 3339 time.
fn time_arg(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date
            .and_hms_opt(0, 0, 0)
            .context("midnight")?
            .and_utc()
            .timestamp_millis();
        return Ok(midnight - 8 * 3_600_000);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .with_context(|| format!("`{text}` is neither a date (2026-12-01) nor an RFC 3339 time"))
}

/// Reads a JSON or TOML file (by extension) as JSON.
pub(crate) fn read_document(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "toml") {
        let v: toml::Value = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        Ok(serde_json::to_value(v)?)
    } else {
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
    }
}

pub(crate) fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Runs `unsilo agency …`.
pub(crate) async fn agency(args: &HubArgs, command: AgencyCommand) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    let v = match command {
        AgencyCommand::Create {
            id,
            name,
            uscc,
            clearance,
            client_cert_sha256,
        } => {
            c.call(
                reqwest::Method::POST,
                "/admin/agencies",
                Some(json!({ "id": id, "name": name, "uscc": uscc, "clearance": clearance, "client_cert_sha256": client_cert_sha256 })),
            )
            .await?
        }
        AgencyCommand::List => {
            c.call(reqwest::Method::GET, "/admin/agencies", None)
                .await?
        }
        AgencyCommand::Token(TokenCommand::Issue {
            id,
            expires_in,
            reviewer,
        }) => {
            let expires_at_ms = match expires_in {
                Some(text) => {
                    let d = unsilo_connectors::transport::parse_duration(&text)
                        .map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
                    Some(unsilo_bus::now_ms() + i64::try_from(d.as_millis())?)
                }
                None => None,
            };
            c.call(
                reqwest::Method::POST,
                &format!("/admin/agencies/{id}/tokens"),
                Some(json!({ "expires_at_ms": expires_at_ms, "reviewer": reviewer })),
            )
            .await?
        }
        AgencyCommand::Suspend { id, reason } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/agencies/{id}/suspend"),
                Some(json!({ "reason": reason })),
            )
            .await?
        }
        AgencyCommand::LiftSuspension { id, reason } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/agencies/{id}/lift-suspension"),
                Some(json!({ "reason": reason })),
            )
            .await?
        }
        AgencyCommand::Token(TokenCommand::List { id }) => {
            c.call(
                reqwest::Method::GET,
                &format!("/admin/agencies/{id}/tokens"),
                None,
            )
            .await?
        }
        AgencyCommand::Token(TokenCommand::Revoke { id, token_id }) => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/agencies/{id}/tokens/{token_id}/revoke"),
                None,
            )
            .await?
        }
        AgencyCommand::BindCertificate {
            id,
            sha256,
            cert,
            none,
        } => {
            let fingerprint = match (sha256, cert, none) {
                (_, _, true) => None,
                (Some(f), _, _) => Some(f),
                (None, Some(path), _) => {
                    use rustls::pki_types::pem::PemObject;
                    let der = rustls::pki_types::CertificateDer::from_pem_file(&path)
                        .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
                    Some(unsilo_hub::auth::ClientCertificate::of_der(der.as_ref()).0)
                }
                (None, None, false) => bail!("give --sha256, --cert or --none"),
            };
            c.call(
                reqwest::Method::PUT,
                &format!("/admin/agencies/{id}/client-certificate"),
                Some(json!({ "client_cert_sha256": fingerprint })),
            )
            .await?
        }
    };
    print(&v);
    Ok(())
}

/// One line of a history progress bar: `[#####.....]  52 % read 1200 / 2300 · released 800`.
fn progress_line(history: &serde_json::Value) -> String {
    if history.is_null() {
        return "waiting for the router to place the subscription…".to_owned();
    }
    let read = history["read"].as_u64().unwrap_or(0);
    let remaining = history["remaining"].as_u64().unwrap_or(0);
    let released = history["released"].as_u64().unwrap_or(0);
    if history["live"].as_bool().unwrap_or(false) {
        return format!(
            "[{}] 100 % live · released from history {released}",
            "#".repeat(30)
        );
    }
    let total = (read + remaining).max(1);
    let filled = usize::try_from(read * 30 / total).unwrap_or(30).min(30);
    format!(
        "[{}{}] {:>3} % read {read} / {total} · released {released}",
        "#".repeat(filled),
        ".".repeat(30 - filled),
        read * 100 / total
    )
}

/// Runs `unsilo subscription …`.
pub(crate) async fn subscription(
    args: &HubArgs,
    command: SubscriptionCommand,
) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    let v = match command {
        SubscriptionCommand::Request { file, held_at } => {
            let path = match held_at {
                Some(hub) => format!("/admin/hubs/{hub}/subscriptions"),
                None => "/admin/subscriptions".to_owned(),
            };
            c.call(reqwest::Method::POST, &path, Some(read_document(&file)?))
                .await?
        }
        SubscriptionCommand::List { status } => {
            let path = match status {
                Some(s) => format!("/admin/subscriptions?status={s}"),
                None => "/admin/subscriptions".to_owned(),
            };
            c.call(reqwest::Method::GET, &path, None).await?
        }
        SubscriptionCommand::Show { id } => {
            c.call(
                reqwest::Method::GET,
                &format!("/admin/subscriptions/{id}"),
                None,
            )
            .await?
        }
        SubscriptionCommand::Approve {
            id,
            grant,
            approve_above_clearance,
            legal_basis,
        } => {
            let mut body = match grant {
                Some(path) => read_document(&path)?,
                None => json!({}),
            };
            if !approve_above_clearance.is_empty() {
                body["approve_above_clearance"] = json!(approve_above_clearance);
            }
            if let Some(basis) = legal_basis {
                body["legal_basis"] = json!(basis);
            }
            c.call(
                reqwest::Method::POST,
                &format!("/admin/subscriptions/{id}/approve"),
                Some(body),
            )
            .await?
        }
        SubscriptionCommand::Reject { id, reason } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/subscriptions/{id}/reject"),
                Some(json!({ "reason": reason })),
            )
            .await?
        }
        SubscriptionCommand::Revoke { id, reason } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/subscriptions/{id}/revoke"),
                Some(json!({ "reason": reason })),
            )
            .await?
        }
        SubscriptionCommand::Pause { id, reason } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/subscriptions/{id}/pause"),
                Some(json!({ "reason": reason })),
            )
            .await?
        }
        SubscriptionCommand::Resume { id, reason } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/subscriptions/{id}/resume"),
                Some(json!({ "reason": reason })),
            )
            .await?
        }
        SubscriptionCommand::Progress { id, wait } => {
            let path = format!("/admin/subscriptions/{id}/progress");
            loop {
                let v = c.call(reqwest::Method::GET, &path, None).await?;
                if wait {
                    eprint!("\r{}", progress_line(&v["history"]));
                    let live = v["history"]["live"].as_bool().unwrap_or(false);
                    if !live && v["status"] == "active" {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        continue;
                    }
                    eprintln!();
                }
                break v;
            }
        }
        SubscriptionCommand::Pull { id, max, ack } => {
            let batch = c
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/subscriptions/{id}/records?max={max}&wait_ms=2000"),
                    None,
                )
                .await?;
            for r in batch["records"].as_array().into_iter().flatten() {
                println!("{r}");
            }
            if ack {
                c.call(
                    reqwest::Method::POST,
                    &format!("/v1/subscriptions/{id}/ack"),
                    Some(json!({ "cursor": batch["cursor"] })),
                )
                .await?;
            }
            eprintln!("cursor: {}", batch["cursor"].as_str().unwrap_or_default());
            return Ok(());
        }
    };
    print(&v);
    Ok(())
}

/// Runs `unsilo dlq replay <subscription>`.
pub(crate) async fn dlq_replay(args: &HubArgs, subscription: &str) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    let v = c
        .call(
            reqwest::Method::POST,
            &format!("/admin/subscriptions/{subscription}/dlq/replay"),
            None,
        )
        .await?;
    print(&v);
    Ok(())
}

/// Runs `unsilo dlq replay --connector <name> [--code …] [--since …]`.
pub(crate) async fn source_dlq_replay(
    args: &HubArgs,
    connector: &str,
    code: Option<String>,
    since: Option<&str>,
) -> anyhow::Result<()> {
    let since_ms = since.map(since_to_ms).transpose()?;
    let c = Client::new(args)?;
    let v = c
        .call(
            reqwest::Method::POST,
            &format!("/admin/connectors/{connector}/dlq/replay"),
            Some(json!({ "code": code, "since_ms": since_ms })),
        )
        .await?;
    print(&v);
    Ok(())
}

/// Runs `unsilo connector renormalise <name> --from … [--to …]`.
pub(crate) async fn renormalise(
    args: &HubArgs,
    connector: &str,
    from: &str,
    to: Option<&str>,
) -> anyhow::Result<()> {
    let from_ms = since_to_ms(from)?;
    let to_ms = to.map(since_to_ms).transpose()?;
    let c = Client::new(args)?;
    let v = c
        .call(
            reqwest::Method::POST,
            &format!("/admin/connectors/{connector}/renormalise"),
            Some(json!({ "from_ms": from_ms, "to_ms": to_ms })),
        )
        .await?;
    print(&v);
    Ok(())
}

/// A `--since` value in ms since the epoch: a duration ago (`2h`, `1d`) or an RFC 3339 time.
fn since_to_ms(since: &str) -> anyhow::Result<i64> {
    if let Ok(ago) = humantime::parse_duration(since) {
        return Ok(unsilo_bus::now_ms() - ago.as_millis() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(since)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            anyhow::anyhow!(
                "--since {since:?} is neither a duration (2h, 1d) nor an RFC 3339 time (2026-12-01T08:00:00+08:00)"
            )
        })
}

/// Runs `unsilo audit …`. Returns an error (non-zero exit) when verification finds a break.
pub(crate) async fn audit(args: &HubArgs, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            config: Some(path),
            checkpoints,
        } => {
            use unsilo_hub::audit;
            let external = read_checkpoints(checkpoints.as_deref())?;
            let config = unsilo_hub::config::Config::load(&path)?;
            // Never create a key here: without the hub's key file, the pinned and published keys are used.
            let key = audit::SigningKey::load_existing(
                &config.signing_key_file(),
                config.security.crypto,
            )?;
            let keys = audit::TrustedKeys::new(
                key.as_ref().map(|k| (config.hub.id.as_str(), k)),
                &config.security.audit_public_keys,
            );
            let bus = unsilo_hub::server::open_bus(&config).await?;
            let report = audit::verify(
                bus.as_ref(),
                unsilo_schemas::names::AUDIT_TOPIC,
                &keys,
                &external,
            )
            .await?;
            bus.shutdown().await?;
            print(&json!({ "intact": report.is_intact(), "report": report }));
            if !report.is_intact() {
                bail!(
                    "the audit log is not intact: {} problem(s)",
                    report.problems.len()
                );
            }
            Ok(())
        }
        AuditCommand::Verify {
            config: None,
            checkpoints,
        } => {
            let c = Client::new(args)?;
            let v = match checkpoints {
                None => {
                    c.call(reqwest::Method::GET, "/admin/audit/verify", None)
                        .await?
                }
                Some(path) => {
                    let external = read_checkpoints(Some(&path))?;
                    c.call(
                        reqwest::Method::POST,
                        "/admin/audit/verify",
                        Some(json!({ "checkpoints": external })),
                    )
                    .await?
                }
            };
            print(&v);
            if v["intact"] != json!(true) {
                bail!("the audit log is not intact");
            }
            Ok(())
        }
        AuditCommand::Export { from, to, output } => {
            let from_ms = time_arg(&from).context("--from")?;
            let to_ms = time_arg(&to).context("--to")?;
            let c = Client::new(args)?;
            let bundle = c
                .text(&format!(
                    "/admin/audit/export?from_ms={from_ms}&to_ms={to_ms}"
                ))
                .await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &bundle)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "Audit log of {from} to {to} written to {} ({} lines); verify it with `unsilo audit verify-export {}`.",
                        path.display(),
                        bundle.lines().count(),
                        path.display()
                    );
                }
                None => print!("{bundle}"),
            }
            Ok(())
        }
        AuditCommand::VerifyExport { file, public_key } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let report = unsilo_hub::audit::export::verify_export(&text, public_key.as_deref())
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let intact = report.is_intact();
            print(
                &serde_json::json!({ "intact": intact, "pinned_key": public_key.is_some(), "report": report }),
            );
            if !intact {
                bail!("the bundle's evidence is not intact");
            }
            Ok(())
        }
        AuditCommand::Keys => {
            let c = Client::new(args)?;
            print(
                &c.call(reqwest::Method::GET, "/admin/audit/keys", None)
                    .await?,
            );
            Ok(())
        }
        AuditCommand::Checkpoints => {
            let c = Client::new(args)?;
            let v = c
                .call(reqwest::Method::GET, "/admin/audit/checkpoints", None)
                .await?;
            for cp in v["checkpoints"].as_array().into_iter().flatten() {
                println!("{cp}");
            }
            Ok(())
        }
        AuditCommand::Query {
            record_id,
            cert_no,
            person_key,
            subscription,
            agency,
        } => {
            let c = Client::new(args)?;
            // In the body, never in the URL: an ID number must not land in a proxy's log.
            let mut body = serde_json::Map::new();
            for (k, v) in [
                ("record_id", record_id),
                ("cert_no", cert_no),
                ("person_key", person_key),
                ("subscription", subscription),
                ("agency", agency),
            ] {
                if let Some(v) = v {
                    body.insert(k.to_owned(), Value::String(v));
                }
            }
            let v = c
                .call(
                    reqwest::Method::POST,
                    "/admin/audit/query",
                    Some(Value::Object(body)),
                )
                .await?;
            print(&v);
            Ok(())
        }
    }
}

/// Reads exported checkpoints (JSON lines), if a file is given.
fn read_checkpoints(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Vec<unsilo_hub::audit::Checkpoint>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    unsilo_hub::audit::Checkpoint::parse_lines(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
