//! The admin API's answers as types: every 2xx body a route returns is one of these (or a model type such as
//! [`Subscription`]), so the OpenAPI document describes each field and a client generated from it (OpenAPI
//! Generator, for departments' Java or Python systems) reads the answers into classes. A handler builds the
//! value and serialises it; the document and the bytes cannot drift apart.

use serde::Serialize;
use unsilo_policy::model::{AgencyView, Subscription, SubscriptionStatus, TokenView};
use unsilo_policy::usage::UsageRecord;
use utoipa::ToSchema;

use crate::audit::{Checkpoint, VerifyReport};
use crate::control::{Renormalisation, SourceReplay};
use crate::flows::HistoryProgress;
use crate::governance::{CatalogueView, DisposalView, OverdueRequest};

/// `GET /admin/whoami`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// The principal: `operator:<name>`, `agency:<id>`, `reviewer:<org>/<name>`, `source:<connector>`.
    pub principal: String,
    /// An operator's role (`system`, `security`, `audit`); absent for everyone else.
    pub role: Option<String>,
}

/// A new agency and its first token.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyCreated {
    /// The agency.
    pub agency: AgencyView,
    /// Its first token, shown only now.
    pub token: String,
    /// The token's id.
    pub token_id: Option<String>,
    /// Store the token: it is shown only now.
    pub note: String,
}

/// The agencies the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyList {
    /// The agencies.
    pub agencies: Vec<AgencyView>,
}

/// An agency's tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// The agency.
    pub agency: String,
    /// Its tokens: ids and times, never digests.
    pub tokens: Vec<TokenView>,
}

/// A token just issued.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenIssued {
    /// The agency.
    pub agency: String,
    /// The token, shown only now.
    pub token: String,
    /// Its id.
    pub token_id: String,
    /// When it stops being accepted, if it expires.
    pub expires_at_ms: Option<i64>,
    /// Store the token: it is shown only now.
    pub note: String,
}

/// A token just revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRevoked {
    /// The agency.
    pub agency: String,
    /// The token.
    pub token: TokenView,
}

/// A request just filed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionRequested {
    /// The requested subscription.
    pub subscription: Subscription,
    /// For a webhook channel: the key (hex) that signs its deliveries, shown only now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_signing_key: Option<String>,
    /// What to do with the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Subscriptions the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    /// The subscriptions (secrets redacted).
    pub subscriptions: Vec<Subscription>,
}

/// An approval recorded while the grant waits for another decision (the provider's, or 双人复核).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalRecorded {
    /// The subscription, still `requested`.
    pub subscription: Subscription,
    /// What it waits for.
    pub note: String,
}

/// Where a subscription's history stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressAnswer {
    /// The subscription.
    pub subscription: String,
    /// Its status.
    pub status: SubscriptionStatus,
    /// Its history's progress; null before the router has placed it.
    pub history: Option<HistoryProgress>,
}

/// Delivery dead letters put back.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLettersReplayed {
    /// The subscription.
    pub subscription: String,
    /// How many were put back on its topic.
    pub replayed: u64,
}

/// The audit log's verification.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyAnswer {
    /// No problem found.
    pub intact: bool,
    /// What was checked and found.
    pub report: VerifyReport,
}

/// The hub's audit key and the keys it trusts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditKeys {
    /// This hub's id (its chain).
    pub hub: String,
    /// Its public key, hex (SM2: `04‖x‖y`).
    pub public_key: String,
    /// Its public key as SPKI PEM, where the suite has one.
    pub public_key_pem: Option<String>,
    /// The signature algorithm (`sm2-sm3` or `ed25519`).
    pub algorithm: String,
    /// SM2's signer id (GM/T 0009 default), under the gm suite.
    pub signer_id: Option<String>,
    /// The chain's hash (`sm3` or `sha256`).
    pub hash: String,
    /// Hub id → hex public key, every key entries are verified against.
    pub trusted: std::collections::BTreeMap<String, String>,
}

/// The audit checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointList {
    /// Signed statements of each chain's head, oldest first.
    pub checkpoints: Vec<Checkpoint>,
}

/// A source dead-letter replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceReplayAnswer {
    /// The connector.
    pub connector: String,
    /// What the replay took, accepted, rejected again and passed over.
    pub replay: SourceReplay,
}

/// A re-normalisation from `raw.`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenormaliseAnswer {
    /// The connector.
    pub connector: String,
    /// What was run again and published.
    pub renormalise: Renormalisation,
}

/// The catalogue's entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogueList {
    /// The entries (those matching the search).
    pub entries: Vec<CatalogueView>,
}

/// The whole catalogue, exported.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogueExport {
    /// When (ms since the epoch).
    pub exported_at_ms: i64,
    /// Every entry.
    pub entries: Vec<CatalogueView>,
}

/// Requests past a deadline.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverdueList {
    /// The time the list was made at.
    pub now_ms: i64,
    /// The requests, each with the deadline passed.
    pub overdue: Vec<OverdueRequest>,
}

/// Corrections the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionList {
    /// The corrections, newest first.
    pub corrections: Vec<unsilo_policy::correction::Correction>,
}

/// An agency just suspended.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionAnswer {
    /// The agency.
    pub agency: String,
    /// The subscriptions the suspension paused.
    pub paused: Vec<String>,
}

/// The usage register's entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageList {
    /// The entries, newest first.
    pub entries: Vec<UsageRecord>,
}

/// Disposals of ended grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct DisposalList {
    /// Earliest due first.
    pub disposals: Vec<DisposalView>,
}
