//! The bodies the governance operations take, as the admin API reads them (and the console builds them).

#[allow(unused_imports)]
use super::*;

/// Body of `POST /admin/agencies`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgency {
    /// Agency id (`[a-z0-9-]`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unified social credit code.
    pub uscc: String,
    /// Clearance, `S1`..`S4`.
    pub clearance: String,
    /// SHA-256 fingerprint of a TLS client certificate, optional: when set, the agency is accepted only on a
    /// connection that presents exactly that certificate.
    #[serde(default)]
    pub client_cert_sha256: Option<String>,
    /// Expiry of the first token (ms since the epoch); none = until revoked.
    #[serde(default)]
    pub token_expires_at_ms: Option<i64>,
}

/// Body of `POST /admin/agencies/{id}/tokens` (optional).
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// When the token stops being accepted (ms since the epoch); none = until revoked.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// Issue it to a named reviewer (审核人) of the organisation instead of its system: the token then decides
    /// the requests for the organisation's catalogue entries and answers corrections, and cannot request or
    /// pull data.
    #[serde(default)]
    pub reviewer: Option<String>,
}

/// Body of `PUT /admin/agencies/{id}/client-certificate`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificateBinding {
    /// SHA-256 fingerprint (hex) of the agency's TLS client certificate; `null` removes the binding.
    pub client_cert_sha256: Option<String>,
}

/// Body of `POST /admin/subscriptions`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// The requesting agency; required when an operator files the request, must be the caller's own otherwise.
    #[serde(default)]
    pub agency: Option<String>,
    /// The agency's name for the subscription (`[a-z0-9-]`).
    pub name: String,
    /// What is asked for.
    #[serde(flatten)]
    pub spec: SubscriptionSpec,
}

/// Body of `POST /admin/subscriptions/{id}/approve`: optional narrowing and explicit approvals.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Grant only these fields, with treatments revealing no more than requested.
    #[serde(default)]
    pub fields: Option<Vec<FieldRule>>,
    /// Additional filter conditions, AND-ed with the requested filter.
    #[serde(default)]
    pub and_filter: Option<String>,
    /// An earlier expiry (ms since the epoch).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// The legal basis on record (required for S4 fields in clear).
    #[serde(default)]
    pub legal_basis: Option<String>,
    /// Fields above the agency's clearance the operator explicitly approves.
    #[serde(default)]
    pub approve_above_clearance: Vec<String>,
    /// A later start of the requested history (ms since the epoch, or `backfill_from` as RFC 3339 text).
    #[serde(
        default,
        alias = "backfill_from",
        deserialize_with = "unsilo_policy::model::time_ms::optional"
    )]
    #[schema(value_type = Option<i64>)]
    pub backfill_from_ms: Option<i64>,
    /// Refuse the requested history: the subscription receives only records that arrive after activation.
    #[serde(default)]
    pub no_backfill: bool,
    /// A shorter retention than requested (days the agency may keep each record).
    #[serde(default)]
    pub retain_days: Option<u32>,
}

impl ApproveRequest {
    /// Whether the approval changes nothing of the grant (a second operator's confirmation).
    pub fn narrows_nothing(&self) -> bool {
        self.fields.is_none()
            && self.and_filter.is_none()
            && self.expires_at_ms.is_none()
            && self.legal_basis.is_none()
            && self.approve_above_clearance.is_empty()
            && self.backfill_from_ms.is_none()
            && !self.no_backfill
            && self.retain_days.is_none()
    }
}

/// Body of reject and revoke.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why; recorded with the subscription and in the audit log.
    pub reason: String,
}
