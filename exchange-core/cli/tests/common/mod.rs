//! What the `unsilo` command tests share: a free loopback port, token digests, and the configuration of a hub
//! with two operators and the grid connector over HTTP push.
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;

use sha2::{Digest, Sha256};

/// SHA-256 of a token, hex: what the configuration holds instead of the token.
pub(crate) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The system administrator's token in every CLI test hub (`sysadmin`).
pub(crate) const SYSTEM_TOKEN: &str = "op_test_system_7e6d5c4b3a29181706f5e4d3";
/// The audit administrator's token in every CLI test hub (`auditor`).
pub(crate) const AUDITOR_TOKEN: &str = "op_test_auditor_1a2b3c4d5e6f708192a3b4c5";

/// The tokens of a test hub's two security administrators and its grid push source (the system and audit
/// administrators hold [`SYSTEM_TOKEN`] and [`AUDITOR_TOKEN`]).
pub(crate) struct Tokens<'a> {
    /// The first security administrator, `ops`.
    pub(crate) operator: &'a str,
    /// The second security administrator, `reviewer` (双人复核).
    pub(crate) reviewer: &'a str,
    /// The grid platform's push credential.
    pub(crate) push: &'a str,
}

/// Writes `<dir>/hub.toml`: HTTP on `port`, the embedded bus in `<dir>/bus`, the four operators and the grid
/// connector over HTTP push. Returns the file's path.
pub(crate) fn write_grid_hub_config(
    dir: &Path,
    port: u16,
    tokens: &Tokens<'_>,
) -> std::path::PathBuf {
    let config = dir.join("hub.toml");
    std::fs::write(
        &config,
        format!(
            r#"[http]
listen = "127.0.0.1:{port}"

[bus]
kind = "embedded"

[bus.embedded]
data_dir = "{data_dir}"

# The CLI tests call the API with operators' tokens alone (the production default asks for a one-time code too).
[admin.sign_in]
api_second_factor = false

[[admin.operators]]
name = "ops"
role = "security"
token_sha256 = "{op}"

[[admin.operators]]
name = "reviewer"
role = "security"
token_sha256 = "{reviewer}"

[[admin.operators]]
name = "sysadmin"
role = "system"
token_sha256 = "{system}"

[[admin.operators]]
name = "auditor"
role = "audit"
token_sha256 = "{auditor}"

[[connectors]]
name = "grid"
definition = "builtin:grid"
transport = "http_push"

[connectors.http_push]
token_sha256 = "{push}"
"#,
            data_dir = dir.join("bus").display(),
            op = sha256_hex(tokens.operator),
            reviewer = sha256_hex(tokens.reviewer),
            system = sha256_hex(SYSTEM_TOKEN),
            auditor = sha256_hex(AUDITOR_TOKEN),
            push = sha256_hex(tokens.push),
        ),
    )
    .expect("write config");
    config
}
