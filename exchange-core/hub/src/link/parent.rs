//! A member hub's link to its parent (级联: county → city → province). It is the same kind of link as an edge's:
//! outbound HTTPS from the member, its own client certificate from the parent's link CA (enrolled with a one-time
//! code, `unsilo parent enrol`), the parent's signing key pinned.
//!
//! Over it the member reports its status and publishes its resource catalogue, every `[parent] report_every`, so
//! the parent's operators and agencies see the member's resources (`GET /admin/members/catalogue` there).
//! Requests for them decided at the member, and records flowing up and back down (回流), are not built yet.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tracing::{info, warn};

use crate::auth::Principal;
use crate::edge::client::LinkClient;
use crate::edge::Enrolment;
use crate::governance::Governance;
use crate::link::protocol::{EdgeReport, PublishedCatalogue};

/// `[parent]` in a hub's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ParentConfig {
    /// The parent hub, `https://host:port`.
    pub hub: String,
    /// The CA (PEM) of the parent's server certificate; default: the system's roots.
    #[serde(default)]
    pub hub_ca: Option<PathBuf>,
    /// This hub's node id at the parent (`unsilo edges add <id> --kind member-hub` there).
    pub id: String,
    /// How often this hub reports and publishes its catalogue (default 30 s).
    #[serde(
        default = "default_report_every",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub report_every: Duration,
}

fn default_report_every() -> Duration {
    Duration::from_secs(30)
}

impl ParentConfig {
    /// Checks what the types cannot.
    pub fn check(&self) -> Result<(), String> {
        if !self.hub.starts_with("https://") {
            return Err(format!(
                "[parent] hub `{}` must be an https:// address: the link is certificate-bound",
                self.hub
            ));
        }
        if !super::valid_node_id(&self.id) {
            return Err(format!(
                "[parent] id `{}` must be 1–64 characters of a-z, 0-9 and '-'",
                self.id
            ));
        }
        Ok(())
    }
}

/// Where a member hub keeps its enrolment with its parent: `parent/` beside its deployment secret.
pub fn enrolment_dir(link_ca_dir: &Path) -> PathBuf {
    link_ca_dir.join("parent")
}

/// Reports to the parent and publishes the catalogue until `stop` turns true.
pub async fn run(
    parent: ParentConfig,
    dir: PathBuf,
    governance: Arc<Governance>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (enrolment, key) = match Enrolment::load(&dir) {
        Ok(Some(e)) => e,
        Ok(None) => {
            warn!(parent = %parent.hub, "[parent] is configured but this hub has not enrolled with it: run `unsilo parent enrol --config <hub.toml> --code <one-time code>`.");
            return;
        }
        Err(e) => {
            warn!(error = %e, "The enrolment with the parent hub could not be read.");
            return;
        }
    };
    let identity = format!("{}\n{}", enrolment.certificate_pem, key);
    let client = match LinkClient::new(
        &parent.hub,
        parent.hub_ca.as_deref(),
        Some(identity.as_bytes()),
        true,
        None,
    ) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "The link to the parent hub cannot be made.");
            return;
        }
    };
    let mut linked = false;
    loop {
        let report = EdgeReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..EdgeReport::default()
        };
        let published = async {
            client.status(&report).await.map_err(|e| e.to_string())?;
            let entries = governance
                .catalogue(&Principal::Hub, None)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|v| v.entry)
                .collect();
            client
                .publish_catalogue(&PublishedCatalogue { entries })
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match published {
            Ok(receipt) if !linked => {
                info!(parent = %enrolment.hub, entries = receipt.entries, "Linked to the parent hub; the catalogue is published there.");
                linked = true;
            }
            Ok(_) => {}
            Err(e) => {
                if linked {
                    warn!(parent = %parent.hub, error = %e, "The link to the parent hub is down; it is tried again.");
                }
                linked = false;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(parent.report_every) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}
