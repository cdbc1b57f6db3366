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

/// The tokens of a test hub's two operators and its grid push source.
pub(crate) struct Tokens<'a> {
    /// The first operator, `ops`.
    pub(crate) operator: &'a str,
    /// The second operator, `reviewer` (双人复核).
    pub(crate) reviewer: &'a str,
    /// The grid platform's push credential.
    pub(crate) push: &'a str,
}

/// Writes `<dir>/hub.toml`: HTTP on `port`, the embedded bus in `<dir>/bus`, the two operators and the grid
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

[[admin.operators]]
name = "ops"
token_sha256 = "{op}"

[[admin.operators]]
name = "reviewer"
token_sha256 = "{reviewer}"

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
            push = sha256_hex(tokens.push),
        ),
    )
    .expect("write config");
    config
}
