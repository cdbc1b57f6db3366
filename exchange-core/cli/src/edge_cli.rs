//! `unsilo edge …` (the department's exchange node: run it, enrol it) and `unsilo edges …` (the hub's
//! operators: register, list, revoke edges, push connector definitions to them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::admin_cli::{print, Client, HubArgs};

/// `unsilo edge --config edge.toml [enrol --code …]`
#[derive(Debug, Args)]
pub(crate) struct EdgeArgs {
    /// The edge's configuration (see deploy/edge.example.toml); before or after `enrol`.
    #[arg(long, default_value = "edge.toml", global = true)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<EdgeCommand>,
}

/// What `unsilo edge` does besides running.
#[derive(Debug, Subcommand)]
pub(crate) enum EdgeCommand {
    /// Enrols the edge with its hub using the one-time code the hub's operator gave (`unsilo edges add`).
    Enrol {
        /// The one-time enrolment code.
        #[arg(long)]
        code: String,
    },
}

/// Runs `unsilo edge …`.
pub(crate) async fn edge(args: EdgeArgs) -> anyhow::Result<()> {
    let config = unsilo_hub::edge::EdgeConfig::load(&args.config)?;
    match args.command {
        Some(EdgeCommand::Enrol { code }) => {
            let e = unsilo_hub::edge::enrol(&config, &code).await?;
            println!(
                "Edge `{}` enrolled with hub `{}`; its key and certificate are in {}.\nStart it with: unsilo edge --config {}",
                e.edge,
                e.hub,
                config.link_dir().display(),
                args.config.display()
            );
            Ok(())
        }
        None => {
            let (trigger, shutdown) = unsilo_connectors::sdk::Shutdown::new();
            tokio::spawn(async move {
                unsilo_hub::server::shutdown_signal().await;
                trigger.trigger();
            });
            unsilo_hub::edge::run(config, shutdown).await?;
            Ok(())
        }
    }
}

/// `unsilo edges …`
#[derive(Debug, Subcommand)]
pub(crate) enum EdgesCommand {
    /// Every edge: state, last contact, version, buffer, lag, per-connector counts.
    List,
    /// One edge.
    Show {
        /// The edge's id.
        id: String,
    },
    /// Registers an edge (or opens a new enrolment for one) and prints its one-time enrolment code.
    Add {
        /// The edge's id: 1–64 of a-z, 0-9 and '-'.
        id: String,
        /// The organisation (agency id) it runs for.
        #[arg(long)]
        organisation: Option<String>,
        /// What it is.
        #[arg(long, default_value = "")]
        description: String,
        /// `edge` (a department's node) or `member-hub` (a lower-level hub linking to this one: 级联).
        #[arg(long, default_value = "edge")]
        kind: String,
    },
    /// Revokes an edge: its certificate is refused from now on.
    Revoke {
        /// The edge's id.
        id: String,
    },
    /// Pushes a connector definition to an edge, signed, as its next version.
    Push {
        /// The edge's id.
        edge: String,
        /// The connector's name (its connector.toml must name the same).
        connector: String,
        /// A definition folder, or `builtin:<name>`.
        definition: String,
    },
}

/// The files of a definition folder (`connector.toml`, its contract and mappings) or of a built-in.
pub(crate) fn definition_files(spec: &str) -> anyhow::Result<BTreeMap<String, String>> {
    use unsilo_connectors::definition::{definition_files, folder_reader};
    Ok(match spec.strip_prefix("builtin:") {
        Some(name) => definition_files(
            unsilo_connectors::builtin::builtin(name)
                .with_context(|| format!("no built-in connector `{name}`"))?
                .reader(),
        )?,
        None => definition_files(folder_reader(Path::new(spec)))?,
    })
}

/// Runs `unsilo edges …`.
pub(crate) async fn edges(args: &HubArgs, command: EdgesCommand) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    let v = match command {
        EdgesCommand::List => c.call(reqwest::Method::GET, "/admin/edges", None).await?,
        EdgesCommand::Show { id } => {
            c.call(reqwest::Method::GET, &format!("/admin/edges/{id}"), None)
                .await?
        }
        EdgesCommand::Add {
            id,
            organisation,
            description,
            kind,
        } => {
            let kind = match kind.as_str() {
                "edge" => "edge",
                "member-hub" | "member_hub" => "member_hub",
                other => anyhow::bail!("--kind `{other}` is not `edge` or `member-hub`"),
            };
            c.call(
                reqwest::Method::POST,
                "/admin/edges",
                Some(json!({"id": id, "kind": kind, "organisation": organisation, "description": description})),
            )
            .await?
        }
        EdgesCommand::Revoke { id } => {
            c.call(
                reqwest::Method::POST,
                &format!("/admin/edges/{id}/revoke"),
                None,
            )
            .await?
        }
        EdgesCommand::Push {
            edge,
            connector,
            definition,
        } => {
            let files = definition_files(&definition)?;
            c.call(
                reqwest::Method::PUT,
                &format!("/admin/edges/{edge}/connectors/{connector}"),
                Some(json!({ "files": files })),
            )
            .await?
        }
    };
    print(&v);
    Ok(())
}

/// `unsilo parent …`: this hub's link to the hub above it (级联).
#[derive(Debug, Subcommand)]
pub(crate) enum ParentCommand {
    /// Enrols this hub with its parent (`[parent]` in its configuration) using the one-time code the parent's
    /// operator gave (`unsilo edges add <id> --kind member-hub` there).
    Enrol {
        /// This hub's configuration.
        #[arg(long, default_value = "unsilo.toml")]
        config: PathBuf,
        /// The one-time enrolment code.
        #[arg(long)]
        code: String,
    },
}

/// Runs `unsilo parent …`.
pub(crate) async fn parent(command: ParentCommand) -> anyhow::Result<()> {
    let ParentCommand::Enrol { config, code } = command;
    let hub = unsilo_hub::config::Config::load(&config)?;
    hub.check()?;
    let parent = hub
        .parent
        .as_ref()
        .with_context(|| format!("{} has no [parent] section", config.display()))?;
    let dir = unsilo_hub::link::parent::enrolment_dir(&hub.link_ca_dir());
    let e = unsilo_hub::edge::enrol_node(
        &dir,
        &parent.id,
        &parent.hub,
        parent.hub_ca.as_deref(),
        &code,
    )
    .await?;
    println!(
        "This hub is enrolled with its parent `{}` as `{}`; its key and certificate are in {}. It publishes its catalogue there once it runs.",
        e.hub,
        e.edge,
        dir.display()
    );
    Ok(())
}
