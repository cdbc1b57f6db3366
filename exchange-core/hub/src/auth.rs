//! Authentication: every HTTP surface of the hub turns a request into a [`Principal`] here, and nowhere else.
//!
//! A caller presents a token, either as `Authorization: Bearer <token>` or as HTTP Basic
//! `<name>:<token>` — the name being the operator's name, the agency's id or the push connector's name. Basic is
//! accepted because the official Confluent clients send `basic.auth.user.info` that way. The token is looked up
//! by its SHA-256 digest ([`token_digest`]) among
//!
//! - the operators of the configuration (`[[admin.operators]]`),
//! - the agencies' tokens on `_unsilo.config` (each with an id, an optional expiry and a revocation time),
//! - the push connectors' tokens (`[connectors.http_push] token_sha256`),
//!
//! comparing digests in constant time ([`digests_equal`]). Tokens are random 32-byte values, so a plain digest
//! (no salt, no slow hash) is the right tool: there is nothing to brute-force. The token itself is never stored
//! or logged.
//!
//! An agency whose record carries `client_cert_sha256` is accepted only on a TLS connection that presented
//! exactly that certificate (the server puts the connection's [`ClientCertificate`] into each request's
//! extensions); its token alone is refused.
//!
//! An enrolled edge node ([`crate::link`]) presents no token: a connection whose client certificate is one the
//! hub issued to a node, and which is not revoked, is that node ([`Principal::Edge`]).
//!
//! [`Authenticator::authenticate`] answers `Ok(None)` for a request with no credentials at all, so each surface
//! decides what an anonymous caller gets (only health, readiness and metrics answer one; the registry may open
//! reads with `[registry] anonymous_read`). A credential that is presented but wrong is always an error.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use crate::control::ControlPlane;
pub use crate::roles::Role;

/// An operator's credentials: a name, their one role (三员分立) and the SHA-256 of their token.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorCredential {
    /// The operator's name, recorded in the audit log.
    pub name: String,
    /// The operator's one role: `system`, `security` or `audit` ([`Role`]).
    pub role: Role,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    pub token_sha256: String,
    /// The enrolment of the operator's one-time-code secret (`[admin.sign_in] second_factor = "totp"`); raise
    /// it to re-enrol (`unsilo operator totp enrol <name>` shows the new secret). Default 0.
    #[serde(default)]
    pub totp_epoch: u32,
    /// The SHA-256 (hex) of the TLS client certificate the operator must connect with, on every surface
    /// (`[admin.sign_in] second_factor = "client_certificate"` requires one for each operator).
    #[serde(default)]
    pub client_cert_sha256: Option<String>,
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An operator of the big-data centre, by name, with their one role.
    Operator {
        /// The operator's name.
        name: String,
        /// Their role.
        role: Role,
    },
    /// A subscribing agency, by id.
    Agency(String),
    /// A reviewer (审核人) of an organisation, deciding the requests for its catalogue entries as their provider
    /// (政务数据共享条例 Art. 21) and answering corrections; signs in with a reviewer token of the organisation.
    Reviewer {
        /// The organisation's agency id.
        agency: String,
        /// The person.
        name: String,
    },
    /// A source system pushing records to a connector, by connector name.
    PushSource(String),
    /// An enrolled edge node (前置交换节点), by id: authenticated by its client certificate alone.
    Edge(String),
    /// The hub itself, acting on its own rules (automatic approval, expiry). Never authenticated.
    Hub,
}

impl Principal {
    /// The name a Basic credential must carry for this principal.
    pub fn name(&self) -> &str {
        match self {
            Self::Operator { name: n, .. }
            | Self::Agency(n)
            | Self::PushSource(n)
            | Self::Edge(n) => n,
            Self::Reviewer { agency, .. } => agency,
            Self::Hub => "hub",
        }
    }

    /// The operator's role; `None` for an agency or a push source.
    pub fn role(&self) -> Option<Role> {
        match self {
            Self::Operator { role, .. } => Some(*role),
            _ => None,
        }
    }

    /// Whether this is an operator (of any role).
    pub fn is_operator(&self) -> bool {
        matches!(self, Self::Operator { .. })
    }

    /// Whether this principal may see the agency `id` and its subscriptions.
    pub fn may_see_agency(&self, id: &str) -> bool {
        match self {
            Self::Operator { .. } | Self::Hub => true,
            Self::Agency(own) | Self::Reviewer { agency: own, .. } => own == id,
            Self::PushSource(_) | Self::Edge(_) => false,
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Operator { name, .. } => write!(f, "operator:{name}"),
            Self::Agency(id) => write!(f, "agency:{id}"),
            Self::Reviewer { agency, name } => write!(f, "reviewer:{agency}/{name}"),
            Self::PushSource(connector) => write!(f, "push:{connector}"),
            Self::Edge(id) => write!(f, "edge:{id}"),
            Self::Hub => f.write_str("hub"),
        }
    }
}

/// Why a presented credential was refused. The messages say what to fix without saying which part of a wrong
/// credential matched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials where they are required.
    #[error(
        "credentials are required: send Authorization: Bearer <token> (or Basic <name>:<token>)"
    )]
    Missing,
    /// The `Authorization` header is not a form this hub reads.
    #[error("the Authorization header is malformed: {0}")]
    Malformed(&'static str),
    /// The token (or the name with it) is not known.
    #[error("the credentials are not valid")]
    Invalid,
    /// The agency's token has passed its expiry.
    #[error("token {0} has expired; ask an operator for a new one")]
    Expired(String),
    /// The agency's token was revoked.
    #[error("token {0} was revoked")]
    Revoked(String),
    /// An operator called the API without the second factor the deployment asks for.
    #[error("operator `{0}` must send the current one-time code in the X-Unsilo-OTP header (unsilo: --otp or UNSILO_OTP), or connect with the client certificate bound to them")]
    SecondFactorRequired(String),
    /// The agency or operator is bound to a client certificate this connection did not present.
    #[error("`{0}` must connect with its registered TLS client certificate")]
    CertificateRequired(String),
}

/// The SHA-256 fingerprint (lowercase hex) of the TLS client certificate a connection presented, put into each
/// request's extensions by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate(pub String);

impl ClientCertificate {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(der)))
    }
}

/// A new random token, `usk_` + 64 hex characters, and its digest.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("usk_{}", hex::encode(bytes));
    let digest = token_digest(&token);
    (token, digest)
}

/// Tokens someone might type instead of making one: the configuration refuses an operator or push token whose
/// digest is one of these ([`is_obvious_token_digest`]). Make tokens with `unsilo operator token new`.
pub const OBVIOUS_TOKENS: &[&str] = &[
    "",
    "admin",
    "administrator",
    "password",
    "passw0rd",
    "Password1",
    "P@ssw0rd",
    "123456",
    "1234567",
    "12345678",
    "123456789",
    "1234567890",
    "000000",
    "111111",
    "666666",
    "888888",
    "123123",
    "abc123",
    "qwerty",
    "qwerty123",
    "letmein",
    "welcome",
    "changeme",
    "secret",
    "token",
    "test",
    "test123",
    "demo",
    "root",
    "toor",
    "guest",
    "default",
    "operator",
    "unsilo",
    "admin123",
    "admin@123",
    "password123",
    "Aa123456",
    "a123456",
    "woaini",
    "iloveyou",
];

/// Whether `digest` (hex SHA-256) is the digest of one of [`OBVIOUS_TOKENS`], in any letter case of the digest.
pub fn is_obvious_token_digest(digest: &str) -> bool {
    let digest = digest.trim().to_ascii_lowercase();
    OBVIOUS_TOKENS.iter().any(|t| token_digest(t) == digest)
}

/// The public id of a token: `tok_` and the first 8 hex characters of its digest — nothing of the token itself.
pub fn token_id(digest: &str) -> String {
    format!("tok_{}", digest.get(..8).unwrap_or(digest))
}

/// The lowercase hex SHA-256 of a token: the only form in which the hub keeps a token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two digests (or any two byte strings) without an early exit, so timing says nothing about how much
/// matched.
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A presented credential: a token, and for Basic the name it was sent with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The name of a Basic credential.
    pub name: Option<String>,
    /// The token.
    pub token: String,
}

/// The credential of a request, Bearer or Basic: `Ok(None)` without an `Authorization` header.
pub fn credential(headers: &HeaderMap) -> Result<Option<Credential>, AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| AuthError::Malformed("it is not ASCII"))?
        .trim();
    let (scheme, rest) = text.split_once(' ').ok_or(AuthError::Malformed(
        "expected `Bearer <token>` or `Basic <base64>`",
    ))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(AuthError::Malformed("the bearer token is empty"));
        }
        return Ok(Some(Credential {
            name: None,
            token: rest.to_owned(),
        }));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| AuthError::Malformed("Basic is not base64"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| AuthError::Malformed("Basic is not UTF-8"))?;
        let (name, token) = decoded
            .split_once(':')
            .ok_or(AuthError::Malformed("Basic must be <name>:<token>"))?;
        if token.is_empty() {
            return Err(AuthError::Malformed("the Basic token is empty"));
        }
        return Ok(Some(Credential {
            name: Some(name.to_owned()),
            token: token.to_owned(),
        }));
    }
    Err(AuthError::Malformed("the scheme must be Bearer or Basic"))
}

/// Turns requests into principals, for every surface of one hub.
pub struct Authenticator {
    /// `(name, role, digest, bound client certificate)` of each configured operator.
    operators: Vec<(String, Role, String, Option<String>)>,
    /// `(connector, digest)` of each push connector.
    push_sources: Vec<(String, String)>,
    /// Agencies and their tokens.
    control: Arc<ControlPlane>,
    /// The client certificates of enrolled edge nodes.
    nodes: Arc<crate::link::NodeCertificates>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the digests: they are credential verifiers.
        f.debug_struct("Authenticator")
            .field("operators", &self.operators.len())
            .field("push_sources", &self.push_sources.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over the configured operators, the push connectors `(connector, hex digest)` and the
    /// agencies of `control`.
    pub fn new<'a>(
        operators: impl IntoIterator<Item = &'a OperatorCredential>,
        push_sources: impl IntoIterator<Item = (String, String)>,
        control: Arc<ControlPlane>,
    ) -> Self {
        let lower = |(n, d): (String, String)| (n, d.trim().to_ascii_lowercase());
        Self {
            operators: operators
                .into_iter()
                .map(|o| {
                    (
                        o.name.clone(),
                        o.role,
                        o.token_sha256.trim().to_ascii_lowercase(),
                        o.client_cert_sha256
                            .as_ref()
                            .map(|c| c.trim().to_ascii_lowercase()),
                    )
                })
                .collect(),
            push_sources: push_sources.into_iter().map(lower).collect(),
            control,
            nodes: Arc::default(),
        }
    }

    /// The same authenticator, also knowing the edge nodes enrolled with these certificates: a connection that
    /// presents one and no token is that node ([`Principal::Edge`]).
    #[must_use]
    pub fn with_nodes(mut self, nodes: Arc<crate::link::NodeCertificates>) -> Self {
        self.nodes = nodes;
        self
    }

    /// Whether the operator called `name` is bound to a client certificate (checked on every request).
    pub fn operator_bound_to_certificate(&self, name: &str) -> bool {
        self.operators
            .iter()
            .any(|(n, _, _, cert)| n == name && cert.is_some())
    }

    /// The role of the operator called `name`, if one is configured.
    pub fn operator_role(&self, name: &str) -> Option<Role> {
        self.operators
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, role, ..)| *role)
    }

    /// Who presents the request's credentials: `Ok(None)` when it presents none.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        client_certificate: Option<&ClientCertificate>,
    ) -> Result<Option<Principal>, AuthError> {
        let Some(credential) = credential(headers)? else {
            // An edge node presents its certificate and nothing else.
            return Ok(client_certificate
                .and_then(|c| self.nodes.node_of(&c.0))
                .map(Principal::Edge));
        };
        self.principal_of(&credential, client_certificate, unsilo_bus::now_ms())
            .map(Some)
    }

    /// Like [`Authenticator::authenticate`], but credentials are required.
    pub fn require(
        &self,
        headers: &HeaderMap,
        client_certificate: Option<&ClientCertificate>,
    ) -> Result<Principal, AuthError> {
        self.authenticate(headers, client_certificate)?
            .ok_or(AuthError::Missing)
    }

    /// The principal holding `credential` at `now_ms`.
    pub fn principal_of(
        &self,
        credential: &Credential,
        client_certificate: Option<&ClientCertificate>,
        now_ms: i64,
    ) -> Result<Principal, AuthError> {
        let digest = token_digest(&credential.token);
        let principal = self.find(&digest, client_certificate, now_ms)?;
        match &credential.name {
            Some(name) if name != principal.name() => Err(AuthError::Invalid),
            _ => Ok(principal),
        }
    }

    /// The principal holding the token whose SHA-256 digest (hex) is `digest` at `now_ms` — for a console
    /// session, which keeps the digest, never the token, and checks it again on every request (so a revoked or
    /// expired token ends the session at once).
    pub fn principal_of_digest(
        &self,
        digest: &str,
        client_certificate: Option<&ClientCertificate>,
        now_ms: i64,
    ) -> Result<Principal, AuthError> {
        self.find(digest, client_certificate, now_ms)
    }

    fn find(
        &self,
        digest: &str,
        client_certificate: Option<&ClientCertificate>,
        now_ms: i64,
    ) -> Result<Principal, AuthError> {
        // Every configured digest is compared, so timing does not tell which list held a match.
        let mut found = None;
        let mut operator_cert = None;
        for (name, role, d, cert) in &self.operators {
            if digests_equal(d.as_bytes(), digest.as_bytes()) && found.is_none() {
                found = Some(Principal::Operator {
                    name: name.clone(),
                    role: *role,
                });
                operator_cert = cert.as_ref();
            }
        }
        if let (Some(p), Some(bound)) = (&found, operator_cert) {
            // An operator bound to a client certificate is refused without it, on every surface.
            let presented = client_certificate.map(|c| c.0.as_bytes());
            if !presented.is_some_and(|c| digests_equal(c, bound.as_bytes())) {
                return Err(AuthError::CertificateRequired(p.name().to_owned()));
            }
        }
        for (name, d) in &self.push_sources {
            if digests_equal(d.as_bytes(), digest.as_bytes()) && found.is_none() {
                found = Some(Principal::PushSource(name.clone()));
            }
        }
        if let Some(p) = found {
            return Ok(p);
        }
        let state = self.control.read();
        let (agency, token) = state.agency_token(digest).ok_or(AuthError::Invalid)?;
        if token.revoked_at_ms.is_some() {
            return Err(AuthError::Revoked(token.id.clone()));
        }
        if token.expires_at_ms.is_some_and(|e| now_ms >= e) {
            return Err(AuthError::Expired(token.id.clone()));
        }
        if let Some(bound) = &agency.client_cert_sha256 {
            let presented = client_certificate.map(|c| c.0.as_bytes());
            if !presented.is_some_and(|p| digests_equal(p, bound.to_ascii_lowercase().as_bytes())) {
                return Err(AuthError::CertificateRequired(agency.id.clone()));
            }
        }
        Ok(match &token.reviewer {
            Some(name) => Principal::Reviewer {
                agency: agency.id.clone(),
                name: name.clone(),
            },
            None => Principal::Agency(agency.id.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn tokens_are_random_and_digested() {
        let (a, da) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with("usk_") && a.len() == 68);
        assert!(!is_obvious_token_digest(&token_digest(&a)));
        assert!(is_obvious_token_digest(&token_digest("changeme")));
        assert!(is_obvious_token_digest(
            &token_digest("123456").to_ascii_uppercase()
        ));
        assert_eq!(token_digest(&a), da);
        assert!(!da.contains(&a[4..]));
        assert_eq!(token_id(&da).len(), 12);
    }

    #[test]
    fn digests_compare_equal_only_when_equal() {
        let a = token_digest("s3cret");
        assert!(digests_equal(
            a.as_bytes(),
            token_digest("s3cret").as_bytes()
        ));
        assert!(!digests_equal(
            a.as_bytes(),
            token_digest("s3cres").as_bytes()
        ));
        assert!(!digests_equal(b"ab", b"abc"));
    }

    #[test]
    fn bearer_and_basic_credentials_are_read() {
        assert_eq!(credential(&HeaderMap::new()), Ok(None));
        assert_eq!(
            credential(&headers("Bearer usk_x")),
            Ok(Some(Credential {
                name: None,
                token: "usk_x".into()
            }))
        );
        // `ops:usk_y` in base64.
        assert_eq!(
            credential(&headers("Basic b3BzOnVza195")),
            Ok(Some(Credential {
                name: Some("ops".into()),
                token: "usk_y".into()
            }))
        );
        assert!(matches!(
            credential(&headers("Basic !!!")),
            Err(AuthError::Malformed(_))
        ));
        // `ops` without a colon.
        assert!(matches!(
            credential(&headers("Basic b3Bz")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            credential(&headers("Digest x")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            credential(&headers("Bearer ")),
            Err(AuthError::Malformed(_))
        ));
    }
}
