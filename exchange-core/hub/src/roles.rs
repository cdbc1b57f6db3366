//! 三员分立 — the three administrator roles, and the one table of who may do what (等保 2.0 level 3, GB/T
//! 22239-2019 8.1.4.2 and 8.1.5.1–8.1.5.4).
//!
//! Every operator holds exactly one [`Role`]: **system** (系统管理员) runs the machinery — connectors,
//! re-normalisation and replay, registry subjects, delivery dead letters, operational metrics; **security**
//! (安全管理员) decides who gets what — agencies, their credentials, requests, grants, pauses; **audit**
//! (审计管理员) reads the evidence — the audit log, its verification, keys and checkpoints, person reports. No role
//! does another's work, and none is a superuser.
//!
//! [`MATRIX`] says, for each [`Action`], which roles may perform it and whether an agency (for its own
//! subscriptions and record) or a push source may. [`ROUTES`] maps every HTTP route of the OpenAPI document to
//! its action. Both are data, read by the code that enforces them ([`allows`], [`authorize_route`] on every
//! API surface, the governance operations and the console's pages), by `docs/compliance.md` (which carries
//! [`markdown_matrix`] verbatim, checked by a test) and by the test that calls every route as every kind of
//! principal. A route missing from [`ROUTES`] is refused to everyone.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::access::{Caller, Surface};
use crate::auth::Principal;

/// An operator's one role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// 系统管理员: connectors, replay, registry subjects, configuration, backup, operational metrics.
    System,
    /// 安全管理员: agencies, credentials, requests and grants, labels, the egress allowlist.
    Security,
    /// 审计管理员: the audit log, verification, keys and checkpoints, person reports, exports. Read-only.
    Audit,
}

impl Role {
    /// Every role, in the order the docs list them.
    pub const ALL: [Role; 3] = [Role::System, Role::Security, Role::Audit];

    /// The name used in configuration, audit entries and the API (`system`, `security`, `audit`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Security => "security",
            Self::Audit => "audit",
        }
    }

    /// The Chinese title of the role.
    pub fn title_zh(self) -> &'static str {
        match self {
            Self::System => "系统管理员",
            Self::Security => "安全管理员",
            Self::Audit => "审计管理员",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an agency may perform an action, besides the roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgencyAccess {
    /// No agency may.
    No,
    /// An agency may, on its own record and subscriptions only (the operation checks ownership).
    Own,
}

/// Something a principal asks the hub to do. Each HTTP route and console page performs one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Who am I; the OpenAPI document; the console's home page.
    ViewSelf,
    /// List and read agencies and their token ids.
    ViewAgencies,
    /// List and read subscriptions and their progress.
    ViewSubscriptions,
    /// Read schemas and subjects in the registry.
    ViewSchemas,
    /// Every series of `/metrics` (anyone gets the ones naming no agency, subscription or topic).
    ViewOperationalMetrics,
    /// Create an agency.
    ManageAgencies,
    /// Issue an agency token, bind an agency's client certificate.
    IssueAgencyCredentials,
    /// Revoke an agency token.
    RevokeAgencyCredentials,
    /// Suspend an agency's sharing for misuse (Art. 27), or lift the suspension.
    SuspendAgency,
    /// File a subscription request.
    RequestSubscription,
    /// Approve (whole or narrowed) or reject a request.
    DecideRequest,
    /// Extend a request's answer deadline (once, ≤ 10 working days, with a reason).
    ExtendDeadline,
    /// Browse, search and export the resource catalogue.
    ViewCatalogue,
    /// Edit a catalogue entry.
    EditCatalogue,
    /// Record a use of a subscription's data in the usage register (使用登记).
    RecordUsage,
    /// Read the usage register.
    ViewUsage,
    /// File a correction on a record received (校核纠错).
    FileCorrection,
    /// List and read corrections.
    ViewCorrections,
    /// Answer a correction: corrected (a new version) or refused with reasons.
    AnswerCorrection,
    /// Declare a subscription's purpose fulfilled, ending its grant.
    DeclareFulfilled,
    /// Confirm the destruction of what a subscription delivered, once its grant has ended (Art. 27).
    ConfirmDisposal,
    /// List the disposals of ended grants: due, overdue, confirmed, confirmed late.
    ViewDisposals,
    /// Read the supervisor's monthly report (Art. 38).
    ViewReports,
    /// Revoke a subscription.
    RevokeSubscription,
    /// Pause or resume a subscription's deliveries.
    PauseSubscription,
    /// Send a subscription's delivery dead letters again.
    ReplayDeliveryDeadLetters,
    /// Source dead-letter replay, re-normalisation from `raw.`, source replay.
    OperateConnectors,
    /// Register schemas and change compatibility in the registry (hub-owned subjects stay the hub's).
    WriteSchemas,
    /// Query and read the audit log.
    ReadAuditLog,
    /// Verify the audit chains; read the signing keys and the checkpoints.
    VerifyAuditLog,
    /// Export the audit log of a period as a signed bundle.
    ExportAuditLog,
    /// A person's release report (个人信息查询).
    PersonReport,
    /// Push records into a connector.
    PushRecords,
    /// Pull a subscription's records or follow its event stream.
    PullRecords,
    /// List edge nodes and how they stand.
    ViewEdges,
    /// Register, re-enrol and revoke edge nodes; push connector definitions to them.
    ManageEdges,
    /// An enrolled edge node's side of the link: positions, batches, status, definitions.
    LinkExchange,
}

/// One row of the matrix: who may perform an action.
#[derive(Clone, Copy, Debug)]
pub struct Permission {
    /// The action.
    pub action: Action,
    /// What it is, for the docs.
    pub what: &'static str,
    /// The operator roles that may.
    pub roles: &'static [Role],
    /// Whether an agency may (its own things only).
    pub agency: AgencyAccess,
    /// Whether a push source may (the person report: only one whose connector has `report = true`, which
    /// the operation checks).
    pub push_source: bool,
    /// Whether a providing organisation's reviewer may (on requests for the organisation's own catalogue
    /// entries, which the operation checks).
    pub reviewer: bool,
    /// Whether an enrolled edge node may (its own link only).
    pub edge: bool,
}

use Role::{Audit, Security, System};

/// The role × action matrix: the one statement of who may do what.
pub const MATRIX: &[Permission] = &[
    Permission {
        action: Action::ViewSelf,
        what: "who am I, the OpenAPI document, the console's home",
        roles: &[System, Security, Audit],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: true,
        edge: false,
    },
    Permission {
        action: Action::ViewAgencies,
        what: "list and read agencies and their token ids",
        roles: &[System, Security, Audit],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ViewSubscriptions,
        what: "list and read subscriptions and their progress",
        roles: &[System, Security, Audit],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: true,
        edge: false,
    },
    Permission {
        action: Action::ViewSchemas,
        what: "read registry subjects and schemas",
        roles: &[System, Security, Audit],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: true,
        edge: false,
    },
    Permission {
        action: Action::ViewOperationalMetrics,
        what: "every series of /metrics",
        roles: &[System, Audit],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ManageAgencies,
        what: "create an agency",
        roles: &[Security],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::IssueAgencyCredentials,
        what: "issue an agency token, bind a client certificate",
        roles: &[Security],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::RevokeAgencyCredentials,
        what: "revoke an agency token",
        roles: &[Security],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::SuspendAgency,
        what: "suspend an agency's sharing for misuse (政务数据共享条例 Art. 27), or lift it",
        roles: &[Security],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::RequestSubscription,
        what: "file a subscription request",
        roles: &[Security],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::DecideRequest,
        what: "approve, narrow or reject a request (双人复核: two security administrators)",
        roles: &[Security],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: true,
        edge: false,
    },
    Permission {
        action: Action::ExtendDeadline,
        what: "extend a request's answer deadline once, by up to 10 working days, with a reason",
        roles: &[Security],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: true,
        edge: false,
    },
    Permission {
        action: Action::ViewCatalogue,
        what: "browse, search and export the resource catalogue",
        roles: &[System, Security, Audit],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: true,
        edge: false,
    },
    Permission {
        action: Action::EditCatalogue,
        what: "edit a catalogue entry (a new version, audited)",
        roles: &[Security],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::RecordUsage,
        what: "record a use of a subscription's data in the usage register (使用登记)",
        roles: &[],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ViewUsage,
        what: "read the usage register (an agency its own, a reviewer its organisation's resources')",
        roles: &[System, Security, Audit],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: true,
        edge: false,
    },
    Permission {
        action: Action::FileCorrection,
        what: "file a correction on a record received (校核纠错)",
        roles: &[],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ViewCorrections,
        what: "list and read corrections (an agency its own, a reviewer its organisation's)",
        roles: &[System, Security, Audit],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: true,
        edge: false,
    },
    Permission {
        action: Action::AnswerCorrection,
        what: "answer a correction: corrected (a new version to every subscriber) or refused with reasons",
        roles: &[Security],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: true,
        edge: false,
    },
    Permission {
        action: Action::DeclareFulfilled,
        what: "declare a subscription's purpose fulfilled, ending its grant (its disposal falls due)",
        roles: &[Security],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ConfirmDisposal,
        what: "confirm the destruction of what an ended grant delivered (Art. 27)",
        roles: &[],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ViewDisposals,
        what: "list the disposals of ended grants (an agency its own, a reviewer its organisation's resources')",
        roles: &[System, Security, Audit],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: true,
        edge: false,
    },
    Permission {
        action: Action::ViewReports,
        what: "read and export the supervisor's monthly report (Art. 38)",
        roles: &[System, Security, Audit],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::RevokeSubscription,
        what: "revoke a subscription",
        roles: &[Security],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::PauseSubscription,
        what: "pause or resume a subscription",
        roles: &[Security],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ReplayDeliveryDeadLetters,
        what: "send a subscription's delivery dead letters again",
        roles: &[System],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::OperateConnectors,
        what: "source dead-letter replay, re-normalisation, source replay",
        roles: &[System],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::WriteSchemas,
        what: "register schemas, set compatibility (not hub-owned subjects)",
        roles: &[System],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ReadAuditLog,
        what: "query and read the audit log (each read is itself audited)",
        roles: &[Audit],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::VerifyAuditLog,
        what: "verify the chains; signing keys and checkpoints",
        roles: &[Audit],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ExportAuditLog,
        what: "export the audit log of a period, signed, for offline verification",
        roles: &[Audit],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::PersonReport,
        what: "a person's release report",
        roles: &[Audit],
        agency: AgencyAccess::No,
        push_source: true,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::PushRecords,
        what: "push records into a connector",
        roles: &[],
        agency: AgencyAccess::No,
        push_source: true,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::PullRecords,
        what: "pull a subscription's records, follow its events",
        roles: &[],
        agency: AgencyAccess::Own,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ViewEdges,
        what: "list edge nodes: version, last contact, buffer, lag, per-connector counts",
        roles: &[System, Security, Audit],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::ManageEdges,
        what: "register, re-enrol and revoke edge nodes; push connector definitions to them",
        roles: &[System],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: false,
    },
    Permission {
        action: Action::LinkExchange,
        what: "an edge node's or member hub's link: positions, batches, status, definitions (its own); a member hub's requests and records across hubs (级联, 回流)",
        roles: &[],
        agency: AgencyAccess::No,
        push_source: false,
        reviewer: false,
        edge: true,
    },
];

/// The row of an action (every action has one: `every_action_has_one_row…` checks it; one without would be
/// allowed to nobody).
pub fn permission(action: Action) -> Option<&'static Permission> {
    MATRIX.iter().find(|p| p.action == action)
}

/// Whether `principal` may perform `action` at all (ownership of the thing is the operation's to check).
pub fn allows(principal: &Principal, action: Action) -> bool {
    let Some(p) = permission(action) else {
        return false;
    };
    match principal {
        Principal::Operator { role, .. } => p.roles.contains(role),
        Principal::Agency(_) => p.agency == AgencyAccess::Own,
        Principal::PushSource(_) => p.push_source,
        Principal::Reviewer { .. } => p.reviewer,
        Principal::Edge(_) => p.edge,
        // The hub acts only by its own rules: automatic approval and expiry, and reading its own catalogue to
        // publish it to its parent hub (级联).
        // It also files a linked hub's request as that hub's agency's (级联), decided here by the provider.
        Principal::Hub => matches!(
            action,
            Action::DecideRequest
                | Action::RevokeSubscription
                | Action::ViewCatalogue
                | Action::RequestSubscription
        ),
    }
}

/// Who may perform an action, as an English sentence for a 403.
pub fn who_may(action: Action) -> String {
    let Some(p) = permission(action) else {
        return "nobody".into();
    };
    let mut who: Vec<String> = p
        .roles
        .iter()
        .map(|r| format!("the {r} administrator"))
        .collect();
    if p.agency == AgencyAccess::Own {
        who.push("the agency itself".into());
    }
    if p.push_source {
        who.push("a push source".into());
    }
    if p.reviewer {
        who.push("the providing organisation's reviewer".into());
    }
    if p.edge {
        who.push("an enrolled edge node".into());
    }
    match who.len() {
        0 => "nobody".into(),
        _ => who.join(" or "),
    }
}

/// One HTTP route and the action it performs.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// The method, upper case.
    pub method: &'static str,
    /// The path as the router (and the OpenAPI document) writes it.
    pub path: &'static str,
    /// What it does.
    pub action: Action,
}

const fn route(method: &'static str, path: &'static str, action: Action) -> Route {
    Route {
        method,
        path,
        action,
    }
}

/// Every route of the authenticated API surfaces (the OpenAPI document's, less `/healthz`, `/readyz` and
/// `/metrics`, which answer anyone, and `/link/v1/enrol`, whose one-time code is its credential) and its action.
pub const ROUTES: &[Route] = &[
    route("GET", "/openapi.json", Action::ViewSelf),
    route("GET", "/admin/whoami", Action::ViewSelf),
    route("POST", "/admin/agencies", Action::ManageAgencies),
    route("GET", "/admin/agencies", Action::ViewAgencies),
    route("GET", "/admin/agencies/{id}", Action::ViewAgencies),
    route("GET", "/admin/agencies/{id}/tokens", Action::ViewAgencies),
    route(
        "POST",
        "/admin/agencies/{id}/tokens",
        Action::IssueAgencyCredentials,
    ),
    route(
        "POST",
        "/admin/agencies/{id}/tokens/{token_id}/revoke",
        Action::RevokeAgencyCredentials,
    ),
    route(
        "PUT",
        "/admin/agencies/{id}/client-certificate",
        Action::IssueAgencyCredentials,
    ),
    route("POST", "/admin/subscriptions", Action::RequestSubscription),
    route(
        "POST",
        "/admin/agencies/{id}/suspend",
        Action::SuspendAgency,
    ),
    route(
        "POST",
        "/admin/agencies/{id}/lift-suspension",
        Action::SuspendAgency,
    ),
    route("GET", "/admin/catalogue", Action::ViewCatalogue),
    route("GET", "/admin/catalogue/export", Action::ViewCatalogue),
    route("GET", "/admin/catalogue/{id}", Action::ViewCatalogue),
    route("PUT", "/admin/catalogue/{id}", Action::EditCatalogue),
    route("GET", "/admin/requests/overdue", Action::ViewSubscriptions),
    route("POST", "/admin/corrections", Action::FileCorrection),
    route(
        "POST",
        "/admin/subscriptions/{id}/usage",
        Action::RecordUsage,
    ),
    route("GET", "/admin/usage", Action::ViewUsage),
    route("GET", "/admin/corrections", Action::ViewCorrections),
    route("GET", "/admin/corrections/{id}", Action::ViewCorrections),
    route(
        "POST",
        "/admin/corrections/{id}/answer",
        Action::AnswerCorrection,
    ),
    route(
        "POST",
        "/admin/subscriptions/{id}/extend",
        Action::ExtendDeadline,
    ),
    route(
        "POST",
        "/admin/subscriptions/{id}/fulfilled",
        Action::DeclareFulfilled,
    ),
    route(
        "POST",
        "/admin/subscriptions/{id}/disposal",
        Action::ConfirmDisposal,
    ),
    route("GET", "/admin/disposals", Action::ViewDisposals),
    route("GET", "/admin/reports/monthly", Action::ViewReports),
    route("GET", "/admin/edges", Action::ViewEdges),
    route("POST", "/admin/edges", Action::ManageEdges),
    route("GET", "/admin/edges/{id}", Action::ViewEdges),
    route("POST", "/admin/edges/{id}/revoke", Action::ManageEdges),
    route(
        "PUT",
        "/admin/edges/{id}/connectors/{connector}",
        Action::ManageEdges,
    ),
    route("GET", "/link/v1/positions", Action::LinkExchange),
    route("POST", "/link/v1/batches", Action::LinkExchange),
    route("POST", "/link/v1/status", Action::LinkExchange),
    route("GET", "/link/v1/definitions", Action::LinkExchange),
    route("POST", "/link/v1/catalogue", Action::LinkExchange),
    route("GET", "/link/v1/catalogue", Action::LinkExchange),
    route("GET", "/link/v1/requests", Action::LinkExchange),
    route("POST", "/link/v1/requests", Action::LinkExchange),
    route("POST", "/link/v1/requests/state", Action::LinkExchange),
    route("POST", "/link/v1/deliveries", Action::LinkExchange),
    route(
        "GET",
        "/link/v1/deliveries/{subscription}",
        Action::LinkExchange,
    ),
    route("POST", "/link/v1/deliveries/ack", Action::LinkExchange),
    route("GET", "/admin/hubs/catalogue", Action::ViewCatalogue),
    route(
        "POST",
        "/admin/hubs/{hub}/subscriptions",
        Action::RequestSubscription,
    ),
    route("GET", "/admin/parent", Action::ViewEdges),
    route("GET", "/admin/subscriptions", Action::ViewSubscriptions),
    route(
        "GET",
        "/admin/subscriptions/{id}",
        Action::ViewSubscriptions,
    ),
    route(
        "GET",
        "/admin/subscriptions/{id}/progress",
        Action::ViewSubscriptions,
    ),
    route(
        "POST",
        "/admin/subscriptions/{id}/approve",
        Action::DecideRequest,
    ),
    route(
        "POST",
        "/admin/subscriptions/{id}/reject",
        Action::DecideRequest,
    ),
    route(
        "POST",
        "/admin/subscriptions/{id}/revoke",
        Action::RevokeSubscription,
    ),
    route(
        "POST",
        "/admin/subscriptions/{id}/pause",
        Action::PauseSubscription,
    ),
    route(
        "POST",
        "/admin/subscriptions/{id}/resume",
        Action::PauseSubscription,
    ),
    route(
        "POST",
        "/admin/subscriptions/{id}/dlq/replay",
        Action::ReplayDeliveryDeadLetters,
    ),
    route(
        "POST",
        "/admin/connectors/{name}/dlq/replay",
        Action::OperateConnectors,
    ),
    route(
        "POST",
        "/admin/connectors/{name}/renormalise",
        Action::OperateConnectors,
    ),
    route("GET", "/admin/audit", Action::ReadAuditLog),
    route("POST", "/admin/audit/query", Action::ReadAuditLog),
    route("GET", "/admin/audit/verify", Action::VerifyAuditLog),
    route("POST", "/admin/audit/verify", Action::VerifyAuditLog),
    route("GET", "/admin/audit/keys", Action::VerifyAuditLog),
    route("GET", "/admin/audit/checkpoints", Action::VerifyAuditLog),
    route("GET", "/admin/audit/export", Action::ExportAuditLog),
    route("GET", "/admin/reports/person", Action::PersonReport),
    route("POST", "/admin/reports/person", Action::PersonReport),
    route("POST", "/ingest/{connector}", Action::PushRecords),
    route("GET", "/v1/subscriptions/{id}/records", Action::PullRecords),
    route("POST", "/v1/subscriptions/{id}/ack", Action::PullRecords),
    route("GET", "/v1/subscriptions/{id}/events", Action::PullRecords),
    // The schema registry (Confluent dialect). A lookup or a compatibility test changes nothing: a read.
    route("GET", "/", Action::ViewSchemas),
    route("GET", "/schemas/types", Action::ViewSchemas),
    route("GET", "/schemas/ids/{id}", Action::ViewSchemas),
    route("GET", "/schemas/ids/{id}/schema", Action::ViewSchemas),
    route("GET", "/schemas/ids/{id}/versions", Action::ViewSchemas),
    route("GET", "/schemas/ids/{id}/subjects", Action::ViewSchemas),
    route("GET", "/subjects", Action::ViewSchemas),
    route("POST", "/subjects/{subject}", Action::ViewSchemas),
    route("DELETE", "/subjects/{subject}", Action::WriteSchemas),
    route("GET", "/subjects/{subject}/versions", Action::ViewSchemas),
    route("POST", "/subjects/{subject}/versions", Action::WriteSchemas),
    route(
        "GET",
        "/subjects/{subject}/versions/{version}",
        Action::ViewSchemas,
    ),
    route(
        "GET",
        "/subjects/{subject}/versions/{version}/schema",
        Action::ViewSchemas,
    ),
    route(
        "GET",
        "/subjects/{subject}/versions/{version}/referencedby",
        Action::ViewSchemas,
    ),
    route(
        "DELETE",
        "/subjects/{subject}/versions/{version}",
        Action::WriteSchemas,
    ),
    route(
        "POST",
        "/compatibility/subjects/{subject}/versions",
        Action::ViewSchemas,
    ),
    route(
        "POST",
        "/compatibility/subjects/{subject}/versions/{version}",
        Action::ViewSchemas,
    ),
    route("GET", "/config", Action::ViewSchemas),
    route("PUT", "/config", Action::WriteSchemas),
    route("DELETE", "/config", Action::WriteSchemas),
    route("GET", "/config/{subject}", Action::ViewSchemas),
    route("PUT", "/config/{subject}", Action::WriteSchemas),
    route("DELETE", "/config/{subject}", Action::WriteSchemas),
];

/// The action of a route, if the table has it.
pub fn route_action(method: &Method, path: &str) -> Option<Action> {
    ROUTES
        .iter()
        .find(|r| r.path == path && r.method == method.as_str())
        .map(|r| r.action)
}

/// Middleware (a `route_layer`, so the matched path is known) for the admin, pull and ingest surfaces and the
/// OpenAPI document: the caller must be allowed the route's action by [`MATRIX`]; a route [`ROUTES`] does not
/// list is refused to everyone. Runs after [`crate::access::Access::layer`] has put the [`Caller`] there.
/// Use with `axum::middleware::from_fn_with_state(surface, authorize_route)` (errors speak that surface's dialect).
pub async fn authorize_route(
    State(surface): State<Surface>,
    request: Request,
    next: Next,
) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let caller = request.extensions().get::<Caller>().cloned();
    let action = path
        .as_deref()
        .and_then(|p| route_action(request.method(), p));
    match (caller, action) {
        (Some(Caller(Some(principal))), Some(action)) if allows(&principal, action) => {
            next.run(request).await
        }
        // Only the registry lets an anonymous caller through the access layer (`[registry] anonymous_read`),
        // and only to read.
        (Some(Caller(None)), Some(Action::ViewSchemas)) => next.run(request).await,
        (Some(Caller(Some(_))), Some(action)) => surface.error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("this is for {}", who_may(action)),
        ),
        (Some(Caller(Some(_))), None) => surface.error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route is not in the hub's role matrix",
        ),
        _ => surface.error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            &crate::auth::AuthError::Missing.to_string(),
        ),
    }
}

/// The matrix as a Markdown table: one row per action, one column per role and for agencies and push
/// sources. `docs/compliance.md` carries it verbatim (a test compares them); `unsilo roles` prints it.
pub fn markdown_matrix() -> String {
    let mark = |yes: bool| if yes { "✔" } else { "—" };
    let mut out = String::from(
        "| action | system 系统管理员 | security 安全管理员 | audit 审计管理员 | agency (own) | push source | provider's reviewer (own entries) | edge node (own link) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for p in MATRIX {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p.what,
            mark(p.roles.contains(&System)),
            mark(p.roles.contains(&Security)),
            mark(p.roles.contains(&Audit)),
            mark(p.agency == AgencyAccess::Own),
            mark(p.push_source),
            mark(p.reviewer),
            mark(p.edge),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_one_row_and_every_route_one_action() {
        for p in MATRIX {
            assert_eq!(
                MATRIX.iter().filter(|q| q.action == p.action).count(),
                1,
                "{:?}",
                p.action
            );
            assert_eq!(permission(p.action).map(|q| q.action), Some(p.action));
        }
        for r in ROUTES {
            assert_eq!(
                ROUTES
                    .iter()
                    .filter(|q| q.path == r.path && q.method == r.method)
                    .count(),
                1,
                "{} {}",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn no_role_is_a_superuser_and_audit_changes_nothing() {
        for role in Role::ALL {
            assert!(
                MATRIX.iter().any(|p| !p.roles.contains(&role)),
                "{role} may do everything"
            );
        }
        let audit_may: Vec<Action> = MATRIX
            .iter()
            .filter(|p| p.roles.contains(&Audit))
            .map(|p| p.action)
            .collect();
        for a in audit_may {
            assert!(
                matches!(
                    a,
                    Action::ViewSelf
                        | Action::ViewAgencies
                        | Action::ViewSubscriptions
                        | Action::ViewSchemas
                        | Action::ViewOperationalMetrics
                        | Action::ReadAuditLog
                        | Action::VerifyAuditLog
                        | Action::ExportAuditLog
                        | Action::PersonReport
                        | Action::ViewCatalogue
                        | Action::ViewCorrections
                        | Action::ViewUsage
                        | Action::ViewDisposals
                        | Action::ViewReports
                        | Action::ViewEdges
                ),
                "audit may {a:?}"
            );
        }
        // Only audit reads the evidence; only security grants; only system runs connectors.
        let roles = |a| permission(a).map(|p| p.roles);
        assert_eq!(roles(Action::ReadAuditLog), Some(&[Audit][..]));
        assert_eq!(roles(Action::DecideRequest), Some(&[Security][..]));
        assert_eq!(roles(Action::OperateConnectors), Some(&[System][..]));
    }

    #[test]
    fn principals_are_checked_against_their_row() {
        let op = |role| Principal::Operator {
            name: "x".into(),
            role,
        };
        assert!(allows(&op(Security), Action::DecideRequest));
        assert!(!allows(&op(System), Action::DecideRequest));
        assert!(!allows(&op(Audit), Action::DecideRequest));
        assert!(allows(&op(Audit), Action::ReadAuditLog));
        assert!(!allows(&op(Security), Action::ReadAuditLog));
        assert!(allows(
            &Principal::Agency("a".into()),
            Action::RequestSubscription
        ));
        assert!(!allows(
            &Principal::Agency("a".into()),
            Action::DecideRequest
        ));
        assert!(allows(
            &Principal::PushSource("p".into()),
            Action::PushRecords
        ));
        assert!(!allows(
            &Principal::PushSource("p".into()),
            Action::ViewSelf
        ));
        assert_eq!(
            who_may(Action::DecideRequest),
            "the security administrator or the providing organisation's reviewer"
        );
        let reviewer = Principal::Reviewer {
            agency: "a".into(),
            name: "r".into(),
        };
        assert!(allows(&reviewer, Action::DecideRequest));
        assert!(!allows(&reviewer, Action::RequestSubscription));
        assert!(!allows(&reviewer, Action::PullRecords));
        assert!(!allows(&reviewer, Action::EditCatalogue));
        assert_eq!(
            route_action(&Method::POST, "/admin/subscriptions/{id}/approve"),
            Some(Action::DecideRequest)
        );
        assert_eq!(route_action(&Method::DELETE, "/admin/agencies"), None);
    }

    #[test]
    fn the_compliance_document_carries_the_matrix() {
        let doc = include_str!("../../../docs/compliance.md");
        assert!(
            doc.contains(&markdown_matrix()),
            "docs/compliance.md must carry `unsilo roles` verbatim:\n{}",
            markdown_matrix()
        );
    }
}
