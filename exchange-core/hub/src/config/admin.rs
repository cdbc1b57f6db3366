//! `[admin]`: the operators (三员分立: one role each) and how administrators sign in — the second factor,
//! lockout and session limits (`[admin.sign_in]`).

use serde::Deserialize;

use super::ConfigError;

/// The admin API.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Operators, their one role and the SHA-256 of their tokens (`[[admin.operators]] name = "…", role =
    /// "system" | "security" | "audit", token_sha256 = "…"`: 三员分立). Without any, only agencies can call the
    /// admin API (and nothing can be approved). One name, or one token, with two roles is refused.
    #[serde(default)]
    pub operators: Vec<crate::auth::OperatorCredential>,
    /// How administrators sign in to the console (等保 8.1.4.1).
    #[serde(default)]
    pub sign_in: SignInConfig,
}

/// The administrators' second sign-in factor, besides their token.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactor {
    /// A one-time code (RFC 6238) from an authenticator app: `unsilo operator totp enrol <name>`. The default.
    #[default]
    Totp,
    /// The TLS client certificate bound to the operator (`client_cert_sha256`), under mutual TLS.
    ClientCertificate,
    /// None: the token alone. For a laboratory, never for production — the hub warns at every start.
    None,
}

/// `[admin.sign_in]`: the console's sign-in for administrators — second factor, lockout, session limits.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignInConfig {
    /// The second factor operators give with their token (default `"totp"`). Agencies sign in to the portal
    /// with their token (and their client certificate when bound to one).
    #[serde(default)]
    pub second_factor: SecondFactor,
    /// Failed sign-ins that lock a name (default 5).
    #[serde(default = "default_lockout_failures")]
    pub lockout_failures: u32,
    /// How long a locked name stays locked (default `"30m"`); the right credentials are refused meanwhile.
    #[serde(
        default = "default_lockout_duration",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub lockout_duration: std::time::Duration,
    /// A session unused this long ends (default `"15m"`).
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub idle_timeout: std::time::Duration,
    /// A session ends this long after sign-in, however busy (default `"8h"`).
    #[serde(
        default = "default_session_lifetime",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub session_lifetime: std::time::Duration,
    /// Sessions one person may hold at once (default 3); signing in past it ends their oldest session.
    #[serde(default = "default_max_sessions")]
    pub max_sessions_per_person: usize,
    /// Ask operators for the second factor on the API as well (default true): with `second_factor = "totp"`,
    /// an operator's API call carries the current one-time code in `X-Unsilo-OTP` (`unsilo … --otp`); an
    /// operator bound to a client certificate presents it instead. Only a laboratory turns it off.
    #[serde(default = "super::default_true")]
    pub api_second_factor: bool,
}

fn default_lockout_failures() -> u32 {
    5
}
fn default_lockout_duration() -> std::time::Duration {
    std::time::Duration::from_secs(30 * 60)
}
fn default_idle_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(15 * 60)
}
fn default_session_lifetime() -> std::time::Duration {
    std::time::Duration::from_secs(8 * 3600)
}
fn default_max_sessions() -> usize {
    3
}

impl Default for SignInConfig {
    fn default() -> Self {
        Self {
            second_factor: SecondFactor::default(),
            lockout_failures: default_lockout_failures(),
            lockout_duration: default_lockout_duration(),
            idle_timeout: default_idle_timeout(),
            session_lifetime: default_session_lifetime(),
            max_sessions_per_person: default_max_sessions(),
            api_second_factor: true,
        }
    }
}

impl AdminConfig {
    /// Refuses sign-in limits that cannot hold, a client-certificate factor without every operator's
    /// certificate, and operators without their own name, their one role and a real token digest.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let sign_in = &self.sign_in;
        if sign_in.lockout_failures == 0
            || sign_in.lockout_duration.is_zero()
            || sign_in.idle_timeout.is_zero()
            || sign_in.session_lifetime < sign_in.idle_timeout
            || sign_in.max_sessions_per_person == 0
        {
            return Err(ConfigError::Invalid(
                "admin.sign_in: lockout_failures, lockout_duration, idle_timeout and max_sessions_per_person must be greater than zero, and session_lifetime at least idle_timeout".into(),
            ));
        }
        if sign_in.second_factor == SecondFactor::ClientCertificate {
            if let Some(o) = self
                .operators
                .iter()
                .find(|o| o.client_cert_sha256.is_none())
            {
                return Err(ConfigError::Invalid(format!(
                    "admin.sign_in.second_factor is \"client_certificate\" but operator `{}` has no client_cert_sha256",
                    o.name
                )));
            }
        }
        let mut operator_names = std::collections::HashMap::new();
        for o in &self.operators {
            // 三员分立: one name holds one role. The same name twice — with two roles or one — is refused.
            if o.name.trim().is_empty() || o.name == "hub" {
                return Err(ConfigError::Invalid(format!(
                    "admin operator name `{}` is reserved or empty; give each operator their own name",
                    o.name
                )));
            }
            if let Some(first) = operator_names.insert(o.name.as_str(), o.role) {
                return Err(ConfigError::Invalid(format!(
                    "admin operator `{}` is configured twice (as {first} and as {}); one person holds one role (三员分立)",
                    o.name, o.role
                )));
            }
            if o.token_sha256.len() != 64 || !o.token_sha256.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(ConfigError::Invalid(format!(
                    "admin operator `{}`: token_sha256 must be 64 hex characters",
                    o.name
                )));
            }
            if crate::auth::is_obvious_token_digest(&o.token_sha256) {
                return Err(ConfigError::Invalid(format!(
                    "admin operator `{}`: token_sha256 is the digest of an obvious token anyone would try; make a real one with `unsilo operator token new --name {}`",
                    o.name, o.name
                )));
            }
        }
        Ok(())
    }
}
