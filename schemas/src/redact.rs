//! The one URL redactor: what of a URL may appear in logs, errors and API responses.
//!
//! URLs of SQL channels, webhooks and polled sources can carry a password in their user-info and keys or
//! tokens in their query. Every place that shows such a URL shows [`redact_url`] of it: the password becomes
//! `***`, every query value becomes `***` (the parameter names stay, so an operator can still see what was
//! configured), and the fragment goes. Text that does not parse as a URL is replaced by a placeholder rather
//! than shown (it could be a secret pasted in the wrong place).
//!
//! ```
//! use unsilo_schemas::redact::redact_url;
//! assert_eq!(
//!     redact_url("postgres://app:s3cret@db.example:5432/x?sslmode=require&password=s3cret"),
//!     "postgres://app:***@db.example:5432/x?sslmode=***&password=***"
//! );
//! ```

use url::Url;

/// What a URL that does not parse is shown as.
pub const UNPARSEABLE_URL: &str = "<unparseable URL>";

/// `raw` fit for logs, errors and API responses: password and query values replaced by `***`, fragment
/// removed; [`UNPARSEABLE_URL`] when it is not a URL.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = Url::parse(raw.trim()) else {
        return UNPARSEABLE_URL.to_owned();
    };
    if url.password().is_some() {
        // Cannot fail for a URL that already has a password.
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let names: Vec<String> = url
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        url.set_query(None);
        if !names.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for name in &names {
                pairs.append_pair(name, "***");
            }
        }
    }
    url.set_fragment(None);
    // `append_pair` percent-encodes the stars; show them as typed.
    url.to_string().replace("%2A%2A%2A", "***")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_query_values_are_hidden() {
        assert_eq!(
            redact_url("postgres://postgres:pw@127.0.0.1:5432/test"),
            "postgres://postgres:***@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_url("mysql://u:p@ss:w@rd@h:3306/db?ssl-mode=required&password=x#f"),
            "mysql://u:***@h:3306/db?ssl-mode=***&password=***"
        );
        assert_eq!(
            redact_url("https://user:s3cret@hooks.example.gov.cn:8443/in/x?token=abc#frag"),
            "https://user:***@hooks.example.gov.cn:8443/in/x?token=***"
        );
        assert_eq!(redact_url("https://example.com"), "https://example.com/");
    }

    #[test]
    fn what_is_not_a_url_is_not_shown() {
        for raw in ["no scheme user:pw@host", "s3cret", ""] {
            assert_eq!(redact_url(raw), UNPARSEABLE_URL);
        }
    }

    #[test]
    fn no_secret_survives() {
        for raw in [
            "postgres://u:a%2Fb%40c@h/db?sslpassword=zz9",
            "https://k:Zq9xW@a.example/?api_key=Zq9xW&sig=Zq9xW",
            "mysql://root:Zq9xW@127.0.0.1/test?password=Zq9xW",
        ] {
            let shown = redact_url(raw);
            assert!(
                !shown.contains("Zq9xW") && !shown.contains("a%2Fb") && !shown.contains("zz9"),
                "{shown}"
            );
        }
    }
}
