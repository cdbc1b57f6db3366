//! Signing in to the console from tests: one-time codes that never repeat a step for one operator (the hub
//! refuses a replayed code), and a plain-HTTP sign-in as a browser's form would send it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use unsilo_hub::config::Config;
use unsilo_hub::totp::{code_at, STEP_SECONDS};

/// The last step each operator's code was taken for, in this test process.
fn used_steps() -> &'static Mutex<HashMap<String, u64>> {
    static USED: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    USED.get_or_init(Mutex::default)
}

/// A code for `operator` whose step no earlier call used: now, or the one after (both of which the hub
/// accepts), waiting for time to move on when those are spent.
pub async fn fresh_code(operator: &str, secret: &[u8; 20]) -> String {
    loop {
        let now = unsilo_bus::now_ms() / 1000;
        let now_step = u64::try_from(now).unwrap_or(0) / STEP_SECONDS;
        let step = {
            let mut used = used_steps().lock().unwrap_or_else(|e| e.into_inner());
            let last = used.get(operator).copied();
            // The current step first: its code stays accepted through the next step too, so a slow browser
            // does not see it expire (the step before now would, at the next boundary).
            let step = last.map_or(now_step, |l| (l + 1).max(now_step));
            if step <= now_step + 1 {
                used.insert(operator.to_owned(), step);
                Some(step)
            } else {
                None
            }
        };
        match step {
            Some(step) => return code_at(secret, step * STEP_SECONDS),
            None => tokio::time::sleep(Duration::from_secs(5)).await,
        }
    }
}

/// A fresh code for the operator `name` of a hub started with `config` (its secret derives from the hub's).
pub async fn operator_code(config: &Config, name: &str) -> String {
    let secret = config.load_secret().expect("the hub's secret");
    let epoch = config
        .admin
        .operators
        .iter()
        .find(|o| o.name == name)
        .map_or(0, |o| o.totp_epoch);
    fresh_code(name, &secret.totp_secret(name, epoch)).await
}

/// A `Set-Cookie` value of a response.
pub fn set_cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// Posts the sign-in form (name, token, code) over plain HTTP, as a browser would; returns the response
/// (a redirect with the session cookie when it worked).
pub async fn post_sign_in(base: &str, name: &str, token: &str, code: &str) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = http
        .get(format!("{base}/console/login"))
        .send()
        .await
        .expect("form");
    let csrf = set_cookie_value(&form, "unsilo_login_csrf").expect("login csrf cookie");
    http.post(format!("{base}/console/login"))
        .header("cookie", format!("unsilo_login_csrf={csrf}"))
        .form(&[
            ("name", name),
            ("token", token),
            ("code", code),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .expect("sign in")
}

/// Signs in as the operator `name` of a hub started with `config` (token and a fresh one-time code); returns
/// the session cookie.
pub async fn operator_session(base: &str, config: &Config, name: &str, token: &str) -> String {
    let code = operator_code(config, name).await;
    let response = post_sign_in(base, name, token, &code).await;
    set_cookie_value(&response, "unsilo_session")
        .unwrap_or_else(|| panic!("{name} could not sign in: {}", response.status()))
}
