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
    /// Extra CA certificate (PEM) to trust for an HTTPS hub.
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
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
    },
    /// Lists agencies (an agency sees only itself).
    List,
    /// Issues an additional token to an agency (shown once).
    Token {
        /// The agency.
        id: String,
    },
}

/// `unsilo subscription …`
#[derive(Debug, Subcommand)]
pub(crate) enum SubscriptionCommand {
    /// Requests a subscription described by a JSON or TOML file (see docs/subscriptions.md).
    Request {
        /// The request file.
        file: PathBuf,
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
    /// Verifies the hash chains of the audit log; exits non-zero if any entry was edited, removed or reordered.
    Verify {
        /// Open the bus of this configuration directly (hub stopped) instead of asking a running hub.
        #[arg(long)]
        config: Option<PathBuf>,
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

struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    fn new(args: &HubArgs) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(ca) = &args.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(&pem)
                    .context("the CA file is not a PEM certificate")?,
            );
        }
        Ok(Self {
            base: args.hub.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
            http: builder.build()?,
        })
    }

    async fn call(
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
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            request = request.json(&b);
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

/// Reads a JSON or TOML file (by extension) as JSON.
fn read_document(path: &std::path::Path) -> anyhow::Result<Value> {
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

fn print(value: &Value) {
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
        } => {
            c.call(
                reqwest::Method::POST,
                "/admin/agencies",
                Some(json!({ "id": id, "name": name, "uscc": uscc, "clearance": clearance })),
            )
            .await?
        }
        AgencyCommand::List => {
            c.call(reqwest::Method::GET, "/admin/agencies", None)
                .await?
        }
        AgencyCommand::Token { id } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/agencies/{id}/tokens"),
                None,
            )
            .await?
        }
    };
    print(&v);
    Ok(())
}

/// Runs `unsilo subscription …`.
pub(crate) async fn subscription(
    args: &HubArgs,
    command: SubscriptionCommand,
) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    let v = match command {
        SubscriptionCommand::Request { file } => {
            c.call(
                reqwest::Method::POST,
                "/admin/subscriptions",
                Some(read_document(&file)?),
            )
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

/// Runs `unsilo audit …`. Returns an error (non-zero exit) when verification finds a break.
pub(crate) async fn audit(args: &HubArgs, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { config: Some(path) } => {
            let config = unsilo_exchange_core::config::Config::load(&path)?;
            let bus = unsilo_exchange_core::server::open_bus(&config).await?;
            let report = unsilo_exchange_core::audit::verify(
                bus.as_ref(),
                unsilo_exchange_core::audit::AUDIT_TOPIC,
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
        AuditCommand::Verify { config: None } => {
            let c = Client::new(args)?;
            let v = c
                .call(reqwest::Method::GET, "/admin/audit/verify", None)
                .await?;
            print(&v);
            if v["intact"] != json!(true) {
                bail!("the audit log is not intact");
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
            let mut url = reqwest::Url::parse(&format!("{}/admin/audit", c.base))?;
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in [
                    ("record_id", record_id),
                    ("cert_no", cert_no),
                    ("person_key", person_key),
                    ("subscription", subscription),
                    ("agency", agency),
                ] {
                    if let Some(v) = v {
                        q.append_pair(k, &v);
                    }
                }
            }
            let path = format!("/admin/audit?{}", url.query().unwrap_or(""));
            let v = c.call(reqwest::Method::GET, &path, None).await?;
            print(&v);
            Ok(())
        }
    }
}
