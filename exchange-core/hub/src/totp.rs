//! The administrators' second sign-in factor: one-time codes after RFC 6238 (TOTP: HMAC-SHA-1, 6 digits,
//! 30-second steps — what every authenticator app reads), computed by the `totp-rs` crate.
//!
//! Each operator's secret is derived from the deployment secret ([`HubSecret::totp_secret`]) under their name
//! and an enrolment epoch (`totp_epoch` in `[[admin.operators]]`), so the hub stores no second secret and a
//! re-enrolment is one number raised in the configuration. `unsilo operator totp enrol <name>` shows it as an
//! `otpauth://` URI and a QR code.
//!
//! [`TotpVerifier`] accepts the code of the current step or of one step either side (clock drift), and never
//! the same step twice for one operator: a code seen over a shoulder or in a proxy log cannot be replayed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::auth::digests_equal;
use crate::secrets::HubSecret;

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "unsilo";

fn totp(secret: &[u8; 20]) -> Option<Totp> {
    // The parameters are constants the crate accepts (a 20-byte secret, 6 digits, one step of skew, 30 s); the
    // `Option` only keeps a crate refusal from ever becoming a panic.
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(Secret::new_stack(*secret))
        .build()
        .ok()
}

/// The code of `secret` at `unix_seconds`.
pub fn code_at(secret: &[u8; 20], unix_seconds: u64) -> String {
    totp(secret)
        .map(|t| t.generate(unix_seconds).to_string())
        .unwrap_or_default()
}

/// The base32 form of a secret (what an app's manual entry takes).
pub fn secret_base32(secret: &[u8; 20]) -> String {
    Secret::new_stack(*secret)
        .to_base32()
        .trim_end_matches('=')
        .to_owned()
}

/// The `otpauth://totp/…` URI an authenticator app enrols from.
pub fn otpauth_uri(operator: &str, secret: &[u8; 20]) -> String {
    let label: String =
        url::form_urlencoded::byte_serialize(format!("{ISSUER}:{operator}").as_bytes()).collect();
    format!(
        "otpauth://totp/{label}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        secret_base32(secret)
    )
}

/// The secret of an `otpauth://` URI (its `secret=` parameter, base32), as an app would read it.
pub fn secret_of_uri(uri: &str) -> Option<[u8; 20]> {
    let query = url::Url::parse(uri.trim()).ok()?;
    let encoded = query
        .query_pairs()
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.into_owned())?;
    let secret = Secret::try_from_base32(encoded).ok()?;
    secret.as_bytes().try_into().ok()
}

/// The step (current, or one either side) whose code `code` is, for `operator`'s secret at `unix_seconds`.
fn matching_step(
    secret: &HubSecret,
    operator: &str,
    epoch: u32,
    code: &str,
    unix_seconds: i64,
) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let key = secret.totp_secret(operator, epoch);
    let now_step = u64::try_from(unix_seconds).unwrap_or(0) / STEP_SECONDS;
    let mut matched = None;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        let expected = code_at(&key, step * STEP_SECONDS);
        if digests_equal(expected.as_bytes(), code.as_bytes()) && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// Whether `code` is `operator`'s code now, or one step either side — for the admin API's `X-Unsilo-OTP`, where
/// one code serves the calls of its 30 seconds (a CLI session runs several commands), unlike a console sign-in.
fn code_is_current(secret: &HubSecret, operator: &str, epoch: u32, code: &str) -> bool {
    matching_step(secret, operator, epoch, code, unsilo_bus::now_ms() / 1000).is_some()
}

/// The one-time codes of a deployment's operators: the secret they derive from, each operator's enrolment
/// epoch, and the steps already used to sign in. One value serves the console's sign-in and the API.
#[derive(Debug)]
pub struct OperatorCodes {
    secret: Arc<HubSecret>,
    epochs: HashMap<String, u32>,
    used: TotpVerifier,
}

impl OperatorCodes {
    /// The codes of `operators` under `secret`.
    pub fn new(secret: Arc<HubSecret>, operators: &[crate::auth::OperatorCredential]) -> Self {
        Self {
            secret,
            epochs: operators
                .iter()
                .map(|o| (o.name.clone(), o.totp_epoch))
                .collect(),
            used: TotpVerifier::default(),
        }
    }

    fn epoch(&self, operator: &str) -> u32 {
        self.epochs.get(operator).copied().unwrap_or(0)
    }

    /// A console sign-in's code: current (or one step either side), and its step never used before.
    pub fn sign_in(&self, operator: &str, code: &str) -> bool {
        self.used
            .verify(&self.secret, operator, self.epoch(operator), code)
    }

    /// An API call's code: current (or one step either side); it serves every call of its step.
    pub fn is_current(&self, operator: &str, code: &str) -> bool {
        code_is_current(&self.secret, operator, self.epoch(operator), code)
    }
}

/// Checks codes, refusing a step already used by the same operator.
#[derive(Debug, Default)]
pub struct TotpVerifier {
    last_step: Mutex<HashMap<String, u64>>,
}

impl TotpVerifier {
    /// Whether `code` is `operator`'s code now (or one step either side) and its step is newer than the last
    /// accepted one. A match records the step.
    pub fn verify(&self, secret: &HubSecret, operator: &str, epoch: u32, code: &str) -> bool {
        self.verify_at(secret, operator, epoch, code, unsilo_bus::now_ms() / 1000)
    }

    /// [`Self::verify`] at a given time (seconds since the epoch).
    pub fn verify_at(
        &self,
        secret: &HubSecret,
        operator: &str,
        epoch: u32,
        code: &str,
        unix_seconds: i64,
    ) -> bool {
        let Some(step) = matching_step(secret, operator, epoch, code, unix_seconds) else {
            return false;
        };
        let mut last = self
            .last_step
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let seen = format!("{epoch}/{operator}");
        if last.get(&seen).is_some_and(|l| *l >= step) {
            return false;
        }
        last.insert(seen, step);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_vectors_hold() {
        // RFC 6238 Appendix B, SHA-1, secret "12345678901234567890" (8-digit codes there; the last 6 digits
        // are the 6-digit code).
        let secret: [u8; 20] = *b"12345678901234567890";
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(&secret, t), eight[2..], "t = {t}");
        }
        assert_eq!(secret_base32(&secret), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn a_code_is_accepted_once_within_the_window() {
        let hub = HubSecret::from_bytes([7; 32]);
        let verifier = TotpVerifier::default();
        let key = hub.totp_secret("li", 0);
        let t = 1_800_000_000i64;
        let code = code_at(&key, t as u64);
        assert!(!verifier.verify_at(&hub, "li", 0, "000000x", t));
        assert!(
            !verifier.verify_at(&hub, "wang", 0, &code, t),
            "another operator's code"
        );
        assert!(
            !verifier.verify_at(&hub, "li", 1, &code, t),
            "an old enrolment's code"
        );
        assert!(verifier.verify_at(&hub, "li", 0, &code, t + 20));
        assert!(
            !verifier.verify_at(&hub, "li", 0, &code, t + 25),
            "replayed"
        );
        let later = code_at(&key, t as u64 + 300);
        assert!(
            !verifier.verify_at(&hub, "li", 0, &later, t),
            "too far ahead"
        );
        assert!(verifier.verify_at(&hub, "li", 0, &later, t + 300));
        let uri = otpauth_uri("li", &key);
        assert!(
            uri.starts_with("otpauth://totp/unsilo%3Ali?secret="),
            "{uri}"
        );
        assert_eq!(secret_of_uri(&uri), Some(key), "the URI carries the secret");
    }
}
