//! The sharing workflow's commands (政务数据共享条例): `unsilo catalogue list|show|export|edit`,
//! `unsilo request overdue|extend`, `unsilo correction file|list|show|answer` and `unsilo usage record|list`. Like the other admin commands they are clients of a running hub's admin API,
//! so they go through its authentication, role checks and audit.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::admin_cli::{print, read_document, Client, HubArgs};

/// `unsilo catalogue …`
#[derive(Debug, Subcommand)]
pub(crate) enum CatalogueCommand {
    /// Lists the catalogue's entries: id, title, sharing class, grade, provider and version, a line each.
    List {
        /// Only entries with all these words (in the title, classification, provider, conditions or a data item).
        #[arg(long)]
        search: Option<String>,
        /// Print the JSON answer instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// The linked hubs' catalogues (级联): the member hubs' as they published them, the parent's as `parent`.
    Linked,
    /// Shows one entry whole: terms, data items with their sensitivity, provider, earlier versions.
    Show {
        /// The entry id (the shared schema's name, e.g. `household`).
        id: String,
    },
    /// Exports the whole catalogue: JSON, or the `.xlsx` workbook a provincial catalogue system imports.
    Export {
        /// `json` or `xlsx`.
        #[arg(long, default_value = "json")]
        format: String,
        /// Where to write it; JSON goes to standard output without it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Edits an entry (security administrators): a JSON or TOML file with `version` (the one read), `note`
    /// (why) and `terms` (whole); the hub keeps the version it replaces.
    Edit {
        /// The entry id.
        id: String,
        /// The edit file.
        file: PathBuf,
    },
}

/// `unsilo request …`
#[derive(Debug, Subcommand)]
pub(crate) enum RequestCommand {
    /// Lists the requests past their answer or delivery deadline that the token may see, longest overdue first.
    Overdue {
        /// Print the JSON answer instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Extends a request's answer deadline once, by 1–10 working days (the provider's reviewer, or security).
    Extend {
        /// `<agency>.<name>`
        id: String,
        /// Working days to add.
        #[arg(long)]
        days: u32,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

/// `unsilo correction …`
#[derive(Debug, Subcommand)]
pub(crate) enum CorrectionCommand {
    /// Files a correction on a record the agency received (its own token).
    File {
        /// The subscription it was received under, `<agency>.<name>`.
        #[arg(long)]
        subscription: String,
        /// The record's id (`envelope.record_id`).
        #[arg(long)]
        record_id: String,
        /// The field that is wrong.
        #[arg(long)]
        field: String,
        /// What is wrong.
        #[arg(long)]
        problem: String,
        /// The evidence.
        #[arg(long)]
        evidence: String,
        /// The value believed right, as JSON (`'"610921…"'`, `3`).
        #[arg(long)]
        proposed: Option<String>,
    },
    /// Lists the corrections the token may see: an agency its own, a reviewer its organisation's.
    List,
    /// Shows one correction.
    Show {
        /// The correction's id.
        id: String,
    },
    /// Answers a correction (the provider's reviewer): `--value JSON` corrects it (a new version of the record
    /// goes to every subscriber), `--refuse` refuses it; `--reason` either way.
    Answer {
        /// The correction's id.
        id: String,
        /// The corrected value, as JSON.
        #[arg(long, conflicts_with = "refuse", required_unless_present = "refuse")]
        value: Option<String>,
        /// Refuse it.
        #[arg(long)]
        refuse: bool,
        /// The reasons (required for a refusal) or a note.
        #[arg(long)]
        reason: String,
    },
}

/// `unsilo usage …`
#[derive(Debug, Subcommand)]
pub(crate) enum UsageCommand {
    /// Records a use of a subscription's data in the usage register (使用登记; the agency's own token).
    Record {
        /// `<agency>.<name>`
        id: String,
        /// 使用场景.
        #[arg(long)]
        scenario: String,
        /// 使用过程.
        #[arg(long)]
        process: String,
        /// 使用结果.
        #[arg(long)]
        outcome: String,
        /// 存储: where and how the data is kept.
        #[arg(long)]
        storage: String,
        /// 销毁: how and when it was destroyed.
        #[arg(long)]
        destruction: Option<String>,
    },
    /// Lists the usage register's entries the token may read.
    List {
        /// Only this subscription's.
        #[arg(long)]
        subscription: Option<String>,
    },
}

/// `unsilo disposal …`
#[derive(Debug, Subcommand)]
pub(crate) enum DisposalCommand {
    /// Ends a grant whose purpose is fulfilled (the agency's own token, or security): its disposal falls due.
    Fulfilled {
        /// `<agency>.<name>`
        id: String,
        /// How the purpose was fulfilled.
        #[arg(long)]
        reason: String,
    },
    /// Confirms the destruction of what an ended grant delivered (the agency's own token; Art. 27).
    Confirm {
        /// `<agency>.<name>`
        id: String,
        /// How it was destroyed.
        #[arg(long)]
        method: String,
        /// What was destroyed: the systems, tables, files and copies.
        #[arg(long)]
        scope: String,
    },
    /// Lists the disposals of ended grants the token may see, earliest due first.
    List {
        /// Only `pending`, `overdue`, `confirmed` or `confirmed_late`.
        #[arg(long)]
        state: Option<String>,
    },
}

/// Runs `unsilo disposal …`.
pub(crate) async fn disposal(args: &HubArgs, command: DisposalCommand) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    let v = match command {
        DisposalCommand::Fulfilled { id, reason } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/subscriptions/{id}/fulfilled"),
                Some(json!({ "reason": reason })),
            )
            .await?
        }
        DisposalCommand::Confirm { id, method, scope } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/subscriptions/{id}/disposal"),
                Some(json!({ "method": method, "scope": scope })),
            )
            .await?
        }
        DisposalCommand::List { state } => {
            let path = match state {
                Some(s) => format!("/admin/disposals?state={}", urlencoding(&s)),
                None => "/admin/disposals".to_owned(),
            };
            c.call(reqwest::Method::GET, &path, None).await?
        }
    };
    print(&v);
    Ok(())
}

/// Fetches an export at `path` in `format` and writes it to `out`, or prints it when it is JSON and no file is
/// given; `what` names it in messages.
async fn export(
    c: &Client,
    path: &str,
    format: &str,
    out: Option<PathBuf>,
    what: &str,
) -> anyhow::Result<()> {
    let bytes = c.bytes(path).await?;
    match out {
        Some(file) => {
            std::fs::write(&file, &bytes).with_context(|| format!("writing {}", file.display()))?;
            eprintln!(
                "{what} written to {} ({} bytes)",
                file.display(),
                bytes.len()
            );
        }
        None if format == "json" => {
            let v: Value = serde_json::from_slice(&bytes)?;
            print(&v);
        }
        None => anyhow::bail!("an {format} export needs --out FILE"),
    }
    Ok(())
}

/// `unsilo report …`
#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// The supervisor's monthly report (Art. 38): per organisation as provider and requester, per source.
    Monthly {
        /// The month, `YYYY-MM` (Beijing time); the current month when left out.
        #[arg(long)]
        month: Option<String>,
        /// `json` or `xlsx`.
        #[arg(long, default_value = "json")]
        format: String,
        /// Where to write it; JSON goes to standard output without it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `unsilo report …`.
pub(crate) async fn report(args: &HubArgs, command: ReportCommand) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    match command {
        ReportCommand::Monthly { month, format, out } => {
            let mut path = format!("/admin/reports/monthly?format={}", urlencoding(&format));
            if let Some(m) = month {
                path.push_str(&format!("&month={}", urlencoding(&m)));
            }
            export(&c, &path, &format, out, "monthly report").await
        }
    }
}

/// Runs `unsilo usage …`.
pub(crate) async fn usage(args: &HubArgs, command: UsageCommand) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    let v = match command {
        UsageCommand::Record {
            id,
            scenario,
            process,
            outcome,
            storage,
            destruction,
        } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/subscriptions/{id}/usage"),
                Some(json!({
                    "scenario": scenario, "process": process, "outcome": outcome,
                    "storage": storage, "destruction": destruction,
                })),
            )
            .await?
        }
        UsageCommand::List { subscription } => {
            let path = match subscription {
                Some(s) => format!("/admin/usage?subscription={}", urlencoding(&s)),
                None => "/admin/usage".to_owned(),
            };
            c.call(reqwest::Method::GET, &path, None).await?
        }
    };
    print(&v);
    Ok(())
}

/// Runs `unsilo correction …`.
pub(crate) async fn correction(args: &HubArgs, command: CorrectionCommand) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    let json_arg = |what: &str, text: &str| -> anyhow::Result<Value> {
        serde_json::from_str(text)
            .with_context(|| format!("--{what} is not JSON (a text is written '\"…\"')"))
    };
    let v = match command {
        CorrectionCommand::File {
            subscription,
            record_id,
            field,
            problem,
            evidence,
            proposed,
        } => {
            let proposed = proposed.map(|p| json_arg("proposed", &p)).transpose()?;
            c.call(
                reqwest::Method::POST,
                "/admin/corrections",
                Some(json!({
                    "subscription": subscription, "record_id": record_id, "field": field,
                    "problem": problem, "evidence": evidence, "proposed_value": proposed,
                })),
            )
            .await?
        }
        CorrectionCommand::List => {
            c.call(reqwest::Method::GET, "/admin/corrections", None)
                .await?
        }
        CorrectionCommand::Show { id } => {
            c.call(
                reqwest::Method::GET,
                &format!("/admin/corrections/{id}"),
                None,
            )
            .await?
        }
        CorrectionCommand::Answer {
            id,
            value,
            refuse,
            reason,
        } => {
            let body = if refuse {
                json!({ "outcome": "refused", "reason": reason })
            } else {
                let value = json_arg("value", value.as_deref().unwrap_or_default())?;
                json!({ "outcome": "corrected", "reason": reason, "value": value })
            };
            c.call(
                reqwest::Method::POST,
                &format!("/admin/corrections/{id}/answer"),
                Some(body),
            )
            .await?
        }
    };
    print(&v);
    Ok(())
}

/// Runs `unsilo catalogue …`.
pub(crate) async fn catalogue(args: &HubArgs, command: CatalogueCommand) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    match command {
        CatalogueCommand::List { search, json } => {
            let path = match search {
                Some(q) => format!("/admin/catalogue?q={}", urlencoding(&q)),
                None => "/admin/catalogue".to_owned(),
            };
            let v = c.call(reqwest::Method::GET, &path, None).await?;
            if json {
                print(&v);
                return Ok(());
            }
            let entries = v["entries"].as_array().cloned().unwrap_or_default();
            println!(
                "{:<16} {:<6} {:<13} {:<10} {:<24} title",
                "id", "ver", "sharing", "grade", "provider"
            );
            for e in &entries {
                let t = &e["terms"];
                println!(
                    "{:<16} {:<6} {:<13} {:<10} {:<24} {}",
                    e["id"].as_str().unwrap_or_default(),
                    e["version"],
                    t["share_attribute"].as_str().unwrap_or_default(),
                    t["grade"].as_str().unwrap_or_default(),
                    e["provider_name"]
                        .as_str()
                        .or(t["provider"].as_str())
                        .unwrap_or("(none)"),
                    t["title"].as_str().unwrap_or_default(),
                );
            }
            eprintln!("{} entries", entries.len());
        }
        CatalogueCommand::Linked => {
            print(
                &c.call(reqwest::Method::GET, "/admin/hubs/catalogue", None)
                    .await?,
            );
        }
        CatalogueCommand::Show { id } => {
            print(
                &c.call(
                    reqwest::Method::GET,
                    &format!("/admin/catalogue/{id}"),
                    None,
                )
                .await?,
            );
        }
        CatalogueCommand::Export { format, out } => {
            let path = format!("/admin/catalogue/export?format={}", urlencoding(&format));
            export(&c, &path, &format, out, "catalogue").await?;
        }
        CatalogueCommand::Edit { id, file } => {
            let body = read_document(&file)?;
            print(
                &c.call(
                    reqwest::Method::PUT,
                    &format!("/admin/catalogue/{id}"),
                    Some(body),
                )
                .await?,
            );
        }
    }
    Ok(())
}

/// Runs `unsilo request …`.
pub(crate) async fn request(args: &HubArgs, command: RequestCommand) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    match command {
        RequestCommand::Overdue { json } => {
            let v = c
                .call(reqwest::Method::GET, "/admin/requests/overdue", None)
                .await?;
            if json {
                print(&v);
                return Ok(());
            }
            let overdue = v["overdue"].as_array().cloned().unwrap_or_default();
            if overdue.is_empty() {
                println!("No request is past its deadline.");
                return Ok(());
            }
            println!(
                "{:<36} {:<17} {:<17} {:<16} provider",
                "subscription", "state", "due (Beijing)", "schema"
            );
            for o in &overdue {
                println!(
                    "{:<36} {:<17} {:<20} {:<16} {}{}",
                    o["subscription"].as_str().unwrap_or_default(),
                    o["state"].as_str().unwrap_or_default(),
                    unsilo_hub::calendar::beijing_time(o["due_ms"].as_i64().unwrap_or_default()),
                    o["schema"].as_str().unwrap_or_default(),
                    o["provider"].as_str().unwrap_or("(platform)"),
                    if o["provisional"].is_string() {
                        "  [provisional]"
                    } else {
                        ""
                    },
                );
            }
            eprintln!("{} overdue", overdue.len());
        }
        RequestCommand::Extend { id, days, reason } => {
            print(
                &c.call(
                    reqwest::Method::POST,
                    &format!("/admin/subscriptions/{id}/extend"),
                    Some(json!({ "days": days, "reason": reason })),
                )
                .await?,
            );
        }
    }
    Ok(())
}

/// Percent-encodes a query value.
fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
