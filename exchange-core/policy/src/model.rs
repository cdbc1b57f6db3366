//! The control-plane vocabulary: agencies, subscriptions, field rules, delivery channels and lifecycle states.
//!
//! These are the values kept (as JSON) on the compacted `_unsilo.config` topic and exchanged over the admin API.
//! Validation that needs nothing but the value itself lives here ([`Agency::validate`],
//! [`SubscriptionSpec::check_shape`]); validation against schemas and clearance lives in [`super::check`].
//!
//! Secrets never appear in these values: agency tokens are kept as SHA-256 digests, and the only secret a
//! subscription carries — the password inside a SQL channel's URL — is redacted by [`Channel::redacted`], which
//! every API response uses.

use serde::{Deserialize, Serialize};

use unsilo_schemas::names;
use unsilo_schemas::redact::redact_url;
use unsilo_schemas::Sensitivity;

/// How one released field is treated (GB/T 37964 de-identification techniques).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Treatment {
    /// Released as is.
    Clear,
    /// Masked: part of the value replaced by `*` (ID number keeps 6 + 4, mobile 3 + 4, name its first character).
    Mask,
    /// Replaced by a keyed pseudonym, stable per deployment, so agencies can join without seeing the value.
    Pseudonymise,
    /// Generalised: address → village code, birth date → year, coordinates → 3 decimals, time → day.
    Generalise,
    /// Suppressed: not released (the same as not asking for the field, but explicit).
    Drop,
}

impl Treatment {
    /// The name used in rules, view schemas and audit entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clear => "clear",
            Self::Mask => "mask",
            Self::Pseudonymise => "pseudonymise",
            Self::Generalise => "generalise",
            Self::Drop => "drop",
        }
    }

    /// How much a treatment reveals: `clear` most, `drop` nothing. An operator may narrow a request only to a
    /// treatment that reveals no more.
    pub fn disclosure(self) -> u8 {
        match self {
            Self::Clear => 3,
            Self::Mask | Self::Generalise | Self::Pseudonymise => 2,
            Self::Drop => 0,
        }
    }
}

/// One field a subscription wants, with its treatment. `field` is a dotted schema path, e.g.
/// `envelope.region_code`, `location.address` or `parties.cert_no` (arrays of records: applies to each element).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// Dotted path of the field in the shared schema.
    pub field: String,
    /// How it is released.
    pub treatment: Treatment,
}

/// A credential an agency presents: an API token, kept only as its SHA-256 digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenDigest {
    /// Short public id of the token (from its digest, not the token), to tell tokens apart when rotating.
    pub id: String,
    /// Hex SHA-256 of the whole token.
    pub sha256: String,
    /// When it was issued (ms since the epoch).
    pub issued_at_ms: i64,
    /// When it stops being accepted (ms since the epoch); `None` = until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// When it was revoked (ms since the epoch); a revoked token is refused at the next request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
    /// For a reviewer's token: the person (审核人) of the organisation who holds it. A reviewer decides the
    /// requests for the organisation's catalogue entries and answers corrections; a reviewer's token cannot
    /// request or pull data. `None`: the organisation's system credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
}

impl TokenDigest {
    /// Whether the token is accepted at `now_ms`: not revoked and not expired.
    pub fn is_usable(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|e| now_ms < e)
    }

    /// What may be shown of the token: its id and times, never the digest.
    pub fn view(&self, now_ms: i64) -> TokenView {
        TokenView {
            id: self.id.clone(),
            issued_at_ms: self.issued_at_ms,
            expires_at_ms: self.expires_at_ms,
            revoked_at_ms: self.revoked_at_ms,
            reviewer: self.reviewer.clone(),
            usable: self.is_usable(now_ms),
        }
    }
}

/// What may be shown of a token: its id, times and holder, never the digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    /// The token's short public id.
    pub id: String,
    /// When it was issued (ms since the epoch).
    pub issued_at_ms: i64,
    /// When it stops being accepted, if it expires.
    pub expires_at_ms: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
    /// For a reviewer's token, the person who holds it.
    pub reviewer: Option<String>,
    /// Whether it is accepted now.
    pub usable: bool,
}

/// A subscribing agency (a departmental system).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    /// Stable id, `[a-z0-9-]`, 2–40 characters, e.g. `civil-affairs`. Part of topic names.
    pub id: String,
    /// Display name, e.g. `佳县民政局`.
    pub name: String,
    /// Unified social credit code (GB 32100), validated.
    pub uscc: String,
    /// The highest sensitivity level the agency may receive without explicit operator approval per field.
    #[serde(with = "sensitivity_serde")]
    pub clearance: Sensitivity,
    /// API tokens, as digests only.
    #[serde(default)]
    pub tokens: Vec<TokenDigest>,
    /// SHA-256 fingerprint (hex) of the agency's TLS client certificate, if it authenticates with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_sha256: Option<String>,
    /// When the agency was created (ms since the epoch) and by whom.
    pub created_at_ms: i64,
    /// The operator who created it.
    pub created_by: String,
    /// Set while a security administrator has suspended the agency's sharing for misuse (政务数据共享条例
    /// Art. 27): its subscriptions are paused and it may file no request until the suspension is lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Suspension>,
    /// Set when the agency is one of a linked hub's (级联: the parent's, or a member's), represented here so
    /// that its requests are decided by this hub's rules and gates. Such an agency holds no credentials: its
    /// records leave only over the link to its hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked: Option<LinkedAgency>,
    /// Bumped on every change (the control plane sets it): a record of the agency older than the one applied is
    /// never applied again.
    #[serde(default)]
    pub revision: u64,
}

/// Which linked hub's agency an [`Agency`] represents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkedAgency {
    /// The linked hub as this hub names it: a member hub's node id, or `parent`.
    pub hub: String,
    /// The agency's id at that hub.
    pub agency: String,
}

/// A suspension of an agency's sharing (Art. 27), with its reason on record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Suspension {
    /// Why (the misuse found).
    pub reason: String,
    /// The security administrator who suspended it.
    pub by: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

/// What an agency sees of itself, and what operators list: everything but the token digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgencyView {
    /// Agency id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unified social credit code.
    pub uscc: String,
    /// Clearance level, `S1`..`S4`.
    pub clearance: String,
    /// Ids of its tokens (not the tokens, not their digests).
    pub token_ids: Vec<String>,
    /// Whether a client certificate is registered.
    pub client_certificate: bool,
    /// Creation time (ms since the epoch).
    pub created_at_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// Its suspension, while one is in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Suspension>,
    /// The linked hub whose agency it represents (级联), if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked: Option<LinkedAgency>,
}

impl Agency {
    /// Checks the id, name and unified social credit code.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        self.problem().map_err(InvalidValue)
    }

    fn problem(&self) -> Result<(), String> {
        slug_problem("agency id", &self.id, 40)?;
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err("agency name must be 1–200 characters".into());
        }
        unsilo_schemas::validate::validate_uscc(&self.uscc)
            .map_err(|e| format!("uscc `{}`: {e}", self.uscc))?;
        if let Some(fp) = &self.client_cert_sha256 {
            if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("client_cert_sha256 must be 64 hex characters".into());
            }
        }
        Ok(())
    }

    /// The public view (no digests).
    pub fn view(&self) -> AgencyView {
        AgencyView {
            id: self.id.clone(),
            name: self.name.clone(),
            uscc: self.uscc.clone(),
            clearance: self.clearance.as_str().to_owned(),
            token_ids: self.tokens.iter().map(|t| t.id.clone()).collect(),
            client_certificate: self.client_cert_sha256.is_some(),
            created_at_ms: self.created_at_ms,
            created_by: self.created_by.clone(),
            suspended: self.suspended.clone(),
            linked: self.linked.clone(),
        }
    }
}

/// Where a subscription's records go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Channel {
    /// A Kafka topic per subscription, Confluent wire format with the view schema's id. Without
    /// `bootstrap_servers` the topic is `sub.<agency>.<subscription>` on the hub's own (Kafka) bus; with it,
    /// records are copied to that cluster.
    Kafka {
        /// The subscriber's cluster, `host:port,…`; `None` = the hub's bus (which must then be Kafka).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bootstrap_servers: Option<String>,
        /// Topic on that cluster; default `sub.<agency>.<subscription>`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
    /// HTTPS POST per record, signed with HMAC-SHA256 (`X-Unsilo-Signature`), idempotency key = record id.
    Webhook {
        /// The subscriber's endpoint, `https://…`.
        url: String,
    },
    /// The agency pulls: cursor batches, server-sent events, acknowledgements.
    Pull,
    /// Upsert by record id into the subscriber's own PostgreSQL or MySQL table.
    Sql {
        /// `postgres://…` or `mysql://…` (the password is a secret: never returned or logged).
        url: String,
        /// Table name (`name` or `schema.name`); created if missing.
        table: String,
    },
}

impl Channel {
    /// The channel's kind, for logs, metrics and audit entries.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kafka { .. } => "kafka",
            Self::Webhook { .. } => "webhook",
            Self::Pull => "pull",
            Self::Sql { .. } => "sql",
        }
    }

    /// Where the channel delivers, in full but with any password redacted — what an approver must see before
    /// deciding: `sql postgres://user:***@db.example:5432/agency table care`, `kafka kafka.example:9092 topic
    /// sub.a.b`, `webhook https://…`, `pull`.
    pub fn target(&self) -> String {
        match self.redacted() {
            Self::Sql { url, table } => format!("sql {url} table {table}"),
            Self::Webhook { url } => format!("webhook {url}"),
            Self::Kafka {
                bootstrap_servers,
                topic,
            } => format!(
                "kafka {} topic {}",
                bootstrap_servers
                    .as_deref()
                    .unwrap_or("(the hub's own cluster)"),
                topic.as_deref().unwrap_or("sub.<agency>.<subscription>")
            ),
            Self::Pull => "pull".to_owned(),
        }
    }

    /// The channel with any password in a URL replaced by `***`: what APIs return and logs show.
    pub fn redacted(&self) -> Self {
        match self {
            Self::Sql { url, table } => Self::Sql {
                url: redact_url(url),
                table: table.clone(),
            },
            Self::Webhook { url } => Self::Webhook {
                url: redact_url(url),
            },
            other => other.clone(),
        }
    }
}

/// What a subscription asks for (and, once approved, what it is granted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// The shared schema, e.g. `grid_event`.
    pub schema: String,
    /// A CEL filter over the record; records it does not match are never delivered. Default `true`.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// The fields wanted, each with its treatment. Anything not listed is never delivered.
    pub fields: Vec<FieldRule>,
    /// Why the data is needed (recorded with every release).
    pub purpose: String,
    /// 应用场景 (政务数据共享条例 Art. 20): the duty and the business process the data serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// 共享范围 (Art. 20): which records and whose, in words (the filter states it for the machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The legal basis (law, regulation or agreement); required for any S4 field released in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    /// When the subscription ends (ms since the epoch; `expires_at` with an RFC 3339 time is accepted too) —
    /// the time limit a request states (使用时限, 政务数据共享条例 Art. 20).
    #[serde(
        default,
        alias = "expires_at",
        deserialize_with = "time_ms::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<i64>)]
    pub expires_at_ms: Option<i64>,
    /// History asked for: on activation the subscription first receives the matching records of
    /// `std.<schema>` stamped at or after this time (ms since the epoch; `backfill_from` with an RFC 3339 time is
    /// accepted too), then continues live. `None` = only records that arrive after activation.
    #[serde(
        default,
        alias = "backfill_from",
        deserialize_with = "time_ms::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<i64>)]
    pub backfill_from_ms: Option<i64>,
    /// How many days the agency may keep each record it receives (data life); sent with every record on every
    /// channel and recorded with every release. `None` = not limited by the grant (the agency's own rules apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_days: Option<u32>,
    /// Where records go.
    pub channel: Channel,
}

/// Reading a time given as milliseconds since the epoch or as an RFC 3339 text.
pub mod time_ms {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Millis(i64),
        Text(String),
    }

    /// An optional time: a number of milliseconds, an RFC 3339 text (`2026-01-01T00:00:00+08:00`), or null.
    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<Given>::deserialize(d)? {
            None => Ok(None),
            Some(Given::Millis(ms)) => Ok(Some(ms)),
            Some(Given::Text(text)) => parse(&text).map(Some).map_err(serde::de::Error::custom),
        }
    }

    /// Parses an RFC 3339 time into milliseconds since the epoch.
    pub fn parse(text: &str) -> Result<i64, String> {
        chrono::DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.timestamp_millis())
            .map_err(|e| {
                format!("`{text}` is not an RFC 3339 time (e.g. 2026-01-01T00:00:00+08:00): {e}")
            })
    }
}

/// The longest retention a grant may state (100 years).
pub const MAX_RETAIN_DAYS: u32 = 36_500;

fn default_filter() -> String {
    "true".to_owned()
}

impl SubscriptionSpec {
    /// Checks what needs no schema: purpose, expiry, field list and channel settings.
    pub fn check_shape(&self, now_ms: i64) -> Result<(), InvalidValue> {
        self.shape_problem(now_ms).map_err(InvalidValue)
    }

    fn shape_problem(&self, now_ms: i64) -> Result<(), String> {
        if self.purpose.trim().is_empty() {
            return Err("purpose is required: say why the data is needed".into());
        }
        if self.purpose.chars().count() > 1000 {
            return Err("purpose is longer than 1000 characters".into());
        }
        if let Some(basis) = &self.legal_basis {
            if basis.trim().is_empty() {
                return Err("legal_basis, when given, must not be empty".into());
            }
        }
        if let Some(expiry) = self.expires_at_ms {
            if expiry <= now_ms {
                return Err("expires_at is in the past".into());
            }
        }
        if let Some(from) = self.backfill_from_ms {
            if from > now_ms {
                return Err("backfill_from is in the future: history starts at a past time".into());
            }
            if from < 0 {
                return Err("backfill_from is before 1970".into());
            }
        }
        if let Some(days) = self.retain_days {
            if days == 0 || days > MAX_RETAIN_DAYS {
                return Err(format!(
                    "retain_days must be between 1 and {MAX_RETAIN_DAYS}, got {days}"
                ));
            }
        }
        if self.fields.is_empty() {
            return Err("fields is empty: list each wanted field with its treatment".into());
        }
        match &self.channel {
            Channel::Webhook { url } => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!(
                        "webhook url `{}` must start with https://",
                        redact_url(url)
                    ));
                }
            }
            Channel::Sql { url, table } => {
                if !(url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.starts_with("mysql://"))
                {
                    return Err(format!(
                        "sql url `{}` must start with postgres:// or mysql://",
                        redact_url(url)
                    ));
                }
                let ok = table.split('.').count() <= 2
                    && table.split('.').all(|part| {
                        let mut chars = part.chars();
                        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                            && part.len() <= 63
                            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                if !ok {
                    return Err(format!(
                        "sql table `{table}` must be `name` or `schema.name` of letters, digits and _"
                    ));
                }
            }
            Channel::Kafka {
                bootstrap_servers,
                topic,
            } => {
                if let Some(b) = bootstrap_servers {
                    if b.trim().is_empty() {
                        return Err("kafka bootstrap_servers, when given, must not be empty".into());
                    }
                }
                if let Some(t) = topic {
                    names::check_topic_name(t).map_err(|e| e.to_string())?;
                }
            }
            Channel::Pull => {}
        }
        Ok(())
    }

    /// The spec with secrets redacted, for API responses.
    pub fn redacted(&self) -> Self {
        Self {
            channel: self.channel.redacted(),
            ..self.clone()
        }
    }
}

/// Where a subscription is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Asked for by the agency, waiting for an operator.
    Requested,
    /// Approved by an operator; activating (view schema registered, topic created).
    Approved,
    /// Refused by an operator.
    Rejected,
    /// Delivering.
    Active,
    /// Paused by an operator or the owning agency: nothing is released or delivered; on resume it continues
    /// from where it stopped.
    Paused,
    /// Past its expiry; nothing is delivered.
    Expired,
    /// Revoked by an operator; nothing is delivered.
    Revoked,
    /// Ended because its purpose is fulfilled (declared by the agency or an operator); nothing is delivered.
    Fulfilled,
}

impl SubscriptionStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Fulfilled => "fulfilled",
        }
    }

    /// Whether no further change is possible.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::Expired | Self::Revoked | Self::Fulfilled
        )
    }
}

/// A subscription and its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Global id, `<agency>.<name>`.
    pub id: String,
    /// The subscribing agency's id.
    pub agency: String,
    /// The agency's name for it, `[a-z0-9-]`, 1–40 characters.
    pub name: String,
    /// Lifecycle state.
    pub status: SubscriptionStatus,
    /// What the agency asked for.
    pub requested: SubscriptionSpec,
    /// What an operator granted (equal to or narrower than `requested`); set on approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<SubscriptionSpec>,
    /// Fields above the agency's clearance that the operator explicitly approved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_above_clearance: Vec<String>,
    /// The registered view schema's global id, once active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_schema_id: Option<i32>,
    /// When it was requested (ms since the epoch).
    pub requested_at_ms: i64,
    /// Who decided (approved, rejected, revoked) last, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When the last decision was made (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at_ms: Option<i64>,
    /// The reason given for a rejection or revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The operators who approved the grant (two different ones where 双人复核 applies); for an automatic
    /// approval, `hub`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// Approved automatically: UNCONDITIONAL (无条件共享) data within the agency's clearance.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_approved: bool,
    /// The regulation's deadlines (Art. 21–22) on a working-day calendar; set when the request is filed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadlines: Option<Deadlines>,
    /// Disposal after the grant ended (Art. 27): set when a granted subscription expires, is revoked or its
    /// purpose is fulfilled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposal: Option<crate::disposal::Disposal>,
    /// Set when the data is held at a linked hub (级联): the request is decided there, by its provider under its
    /// gates, and the records it releases arrive over the link. This hub's router never routes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_at: Option<HeldAt>,
    /// Bumped on every change; writes check it (optimistic concurrency).
    pub revision: u64,
}

/// Where a subscription's data is held when another hub holds it (see [`Subscription::held_at`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeldAt {
    /// The hub as this hub names it: a member hub's node id, or `parent`.
    pub hub: String,
    /// The subscription's id at that hub, once the hub has filed the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
}

/// One operator's approval of a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The operator (`hub` for an automatic approval), or for a provider's decision the reviewer.
    pub operator: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// For a providing organisation's decision (Art. 21): the organisation's id. Such an approval does not count
    /// toward 双人复核, which stays with the platform's security administrators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// A request's deadlines under the 政务数据共享条例: the provider answers within 1 working day (无条件) or 10
/// (有条件), extendable once by up to 10 with a recorded reason (Art. 21); delivery follows within 20 working days
/// of approval (Art. 22). Times are the last millisecond of the due working day, Beijing time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deadlines {
    /// Working days allowed for the answer (1 or 10), before any extension.
    pub answer_days: u32,
    /// When the answer is due (ms since the epoch), extension included.
    pub answer_due_ms: i64,
    /// The one extension, if granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
    /// When the request was answered (approved or refused by whoever decides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at_ms: Option<i64>,
    /// When delivery is due (ms since the epoch): 20 working days after approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_due_ms: Option<i64>,
    /// When delivery began (the subscription became active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at_ms: Option<i64>,
    /// Set when a day counted lies in a year the working-day calendar does not cover: weekdays were counted
    /// there instead, and this says which year to add. The deadline is shown as provisional until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisional: Option<String>,
}

/// The one extension of an answer deadline (Art. 21).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// Working days added (1–10).
    pub days: u32,
    /// Why.
    pub reason: String,
    /// Who extended it.
    pub by: String,
    /// When.
    pub at_ms: i64,
    /// The due time before the extension.
    pub previous_due_ms: i64,
}

/// Where a request stands against its deadlines at some moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineState {
    /// Waiting for an answer, within time.
    Answering,
    /// Waiting for an answer past its due time.
    AnswerOverdue,
    /// Approved, waiting for delivery within time.
    Delivering,
    /// Approved, not delivering, past the delivery due time.
    DeliveryOverdue,
    /// Answered (and, if approved, delivered) within time.
    Met,
    /// Answered or delivered, but late.
    MetLate,
}

impl DeadlineState {
    /// Whether the request is overdue now.
    pub fn is_overdue(self) -> bool {
        matches!(self, Self::AnswerOverdue | Self::DeliveryOverdue)
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answering => "answering",
            Self::AnswerOverdue => "answer_overdue",
            Self::Delivering => "delivering",
            Self::DeliveryOverdue => "delivery_overdue",
            Self::Met => "met",
            Self::MetLate => "met_late",
        }
    }
}

impl Deadlines {
    /// Where the request stands at `now_ms`.
    pub fn state(&self, now_ms: i64) -> DeadlineState {
        let Some(answered) = self.answered_at_ms else {
            return if now_ms > self.answer_due_ms {
                DeadlineState::AnswerOverdue
            } else {
                DeadlineState::Answering
            };
        };
        let answered_late = answered > self.answer_due_ms;
        let delivered_late = match (self.delivery_due_ms, self.delivered_at_ms) {
            (Some(due), None) if now_ms > due => return DeadlineState::DeliveryOverdue,
            (Some(_), None) => return DeadlineState::Delivering,
            (Some(due), Some(at)) => at > due,
            (None, _) => false,
        };
        if answered_late || delivered_late {
            DeadlineState::MetLate
        } else {
            DeadlineState::Met
        }
    }

    /// Whether the answer was given in time (`None` while unanswered).
    pub fn answered_on_time(&self) -> Option<bool> {
        self.answered_at_ms.map(|at| at <= self.answer_due_ms)
    }
}

impl Subscription {
    /// A new request: `requested`, revision 1, nothing decided yet.
    pub fn new_request(
        agency: &str,
        name: &str,
        spec: SubscriptionSpec,
        requested_at_ms: i64,
    ) -> Self {
        Self {
            id: Self::id_of(agency, name),
            agency: agency.to_owned(),
            name: name.to_owned(),
            status: SubscriptionStatus::Requested,
            requested: spec,
            granted: None,
            approved_above_clearance: Vec::new(),
            view_schema_id: None,
            requested_at_ms,
            decided_by: None,
            decided_at_ms: None,
            reason: None,
            approvals: Vec::new(),
            auto_approved: false,
            deadlines: None,
            disposal: None,
            held_at: None,
            revision: 1,
        }
    }

    /// The global id of `name` under `agency`.
    pub fn id_of(agency: &str, name: &str) -> String {
        format!("{agency}.{name}")
    }

    /// The bus topic holding records released to this subscription.
    pub fn topic(&self) -> String {
        names::subscription_topic(&self.agency, &self.name)
    }

    /// The topic holding deliveries that failed for good (webhook, SQL), for replay.
    pub fn dlq_topic(&self) -> String {
        names::subscription_dlq_topic(&self.agency, &self.name)
    }

    /// The registry subject of its view schema.
    pub fn view_subject(&self) -> String {
        names::value_subject(&self.topic())
    }

    /// The spec in force: the granted one once approved, else the requested one.
    pub fn spec(&self) -> &SubscriptionSpec {
        self.granted.as_ref().unwrap_or(&self.requested)
    }

    /// Whether two different operators approved the grant (双人复核): only then may CORE-grade records
    /// (GB/T 43697 核心数据) be released to it.
    pub fn four_eyes_approved(&self) -> bool {
        let mut operators: Vec<&str> = self
            .approvals
            .iter()
            .filter(|a| a.provider.is_none())
            .map(|a| a.operator.as_str())
            .filter(|o| *o != "hub")
            .collect();
        operators.sort_unstable();
        operators.dedup();
        operators.len() >= 2
    }

    /// Whether records may be delivered at `now_ms`: active and not past its expiry.
    pub fn is_delivering(&self, now_ms: i64) -> bool {
        self.status == SubscriptionStatus::Active
            && self.spec().expires_at_ms.is_none_or(|e| now_ms < e)
    }

    /// The subscription with secrets redacted, for API responses.
    pub fn redacted(&self) -> Self {
        Self {
            requested: self.requested.redacted(),
            granted: self.granted.as_ref().map(SubscriptionSpec::redacted),
            ..self.clone()
        }
    }
}

/// A value the control plane refuses; the message names the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// Checks a slug: `[a-z0-9-]`, starting with a letter or digit, 1..=`max` characters.
pub fn check_slug(what: &str, value: &str, max: usize) -> Result<(), InvalidValue> {
    slug_problem(what, value, max).map_err(InvalidValue)
}

fn slug_problem(what: &str, value: &str, max: usize) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{value}` must be 1–{max} characters of a-z, 0-9 and '-', not starting with '-'"
        ))
    }
}

/// Serialises [`Sensitivity`] as `"S1"`..`"S4"`.
pub mod sensitivity_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use unsilo_schemas::Sensitivity;

    /// Writes `S1`..`S4`.
    pub fn serialize<S: Serializer>(value: &Sensitivity, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.as_str())
    }

    /// Reads `S1`..`S4`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Sensitivity, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|_| {
            serde::de::Error::custom(format!("clearance `{text}` is not one of S1, S2, S3, S4"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approver_sees_the_whole_target_without_its_password() {
        let sql = Channel::Sql {
            url: "postgres://u:hunter2@db.example:5432/agency".into(),
            table: "care".into(),
        };
        let shown = sql.target();
        assert!(
            shown.contains("db.example:5432/agency") && shown.contains("table care"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        let kafka = Channel::Kafka {
            bootstrap_servers: Some("kafka.example:9092".into()),
            topic: Some("sub.a.b".into()),
        };
        assert_eq!(kafka.target(), "kafka kafka.example:9092 topic sub.a.b");
    }

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.example:5432/x"),
            "postgres://app:***@db.example:5432/x"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1/test"),
            "mysql://root@127.0.0.1/test"
        );
        assert_eq!(
            redact_url("https://a.example/hook"),
            "https://a.example/hook"
        );
        let c = Channel::Sql {
            url: "postgres://u:pw@h/db".into(),
            table: "t".into(),
        };
        assert!(!format!("{:?}", c.redacted()).contains("pw"));
    }

    #[test]
    fn slugs_and_agencies_are_checked() {
        assert!(check_slug("agency id", "civil-affairs", 40).is_ok());
        assert!(check_slug("agency id", "Civil", 40).is_err());
        assert!(check_slug("agency id", "-x", 40).is_err());
        let mut a = Agency {
            revision: 0,
            suspended: None,
            linked: None,
            id: "civil-affairs".into(),
            name: "佳县民政局".into(),
            uscc: "91350100M000100Y43".into(),
            clearance: Sensitivity::S3,
            tokens: vec![],
            client_cert_sha256: None,
            created_at_ms: 0,
            created_by: "op".into(),
        };
        assert!(a.validate().is_ok(), "{:?}", a.validate());
        a.uscc = "91350100M000100Y44".into();
        let err = a.validate().unwrap_err().to_string();
        assert!(err.contains("uscc"), "{err}");
    }

    #[test]
    fn narrowing_order_of_treatments() {
        assert!(Treatment::Clear.disclosure() > Treatment::Mask.disclosure());
        assert!(Treatment::Pseudonymise.disclosure() > Treatment::Drop.disclosure());
    }

    #[test]
    fn specs_name_what_is_wrong() {
        let spec = SubscriptionSpec {
            schema: "grid_event".into(),
            filter: "true".into(),
            fields: vec![],
            purpose: "p".into(),
            legal_basis: None,
            scenario: None,
            scope: None,
            expires_at_ms: None,
            backfill_from_ms: None,
            retain_days: None,
            channel: Channel::Pull,
        };
        assert!(spec.check_shape(0).unwrap_err().0.contains("fields"));
        let spec = SubscriptionSpec {
            fields: vec![FieldRule {
                field: "event_type_code".into(),
                treatment: Treatment::Clear,
            }],
            channel: Channel::Sql {
                url: "postgres://u:pw@h/db".into(),
                table: "x; drop table y".into(),
            },
            ..spec
        };
        let err = spec.check_shape(0).unwrap_err().to_string();
        assert!(err.contains("table"), "{err}");
        assert!(!err.contains("pw"));
    }
}
