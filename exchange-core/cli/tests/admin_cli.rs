//! The `unsilo` admin commands as an operator and an agency use them, against a real `unsilo serve` over
//! loopback: create an agency, request subscriptions (JSON and TOML), approve one (refused until the
//! above-clearance field is approved), push a red household through the grid connector, pull it pseudonymised,
//! find the release in the audit log, verify the log's hash chain (through the hub and, with the hub stopped,
//! directly on the bus), revoke, and see that nothing more is delivered.

mod common;
use common::{free_port, sha256_hex};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The ID number of the head of the RED household fixture.
const CERT_NO: &str = "610921196105170316";
/// The household fixture's community code, mapped to `village_code`.
const VILLAGE_CODE: &str = "610921107200";
/// How long one CLI command may take before the test calls it hung.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

const OPERATOR_TOKEN: &str = "op_test_4c1f0e7d9b2a4f6e8d3c5b7a9e1f2d4c";
/// A second operator, for grants that need two (双人复核).
const REVIEWER_TOKEN: &str = "op_test_reviewer_0b9a8c7d6e5f4a3b2c1d0e9f";
const PUSH_TOKEN: &str = "push_test_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";

/// The outcome of one `unsilo` command.
struct Run {
    args: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.status.success()
    }

    /// Panics with the whole output unless the command succeeded.
    fn expect_ok(self) -> Self {
        assert!(self.ok(), "`unsilo {}` failed: {self}", self.args);
        self
    }

    /// Panics with the whole output unless the command failed.
    fn expect_fail(self) -> Self {
        assert!(
            !self.ok(),
            "`unsilo {}` should have failed: {self}",
            self.args
        );
        self
    }

    /// Stdout as one JSON document.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("`unsilo {}` did not print JSON ({e}): {self}", self.args))
    }

    /// Stdout as JSON lines (one record each).
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!(
                        "`unsilo {}` printed a non-JSON line ({e}): {l}\n{self}",
                        self.args
                    )
                })
            })
            .collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Who runs a command, and how it reaches the hub.
#[derive(Clone, Copy)]
enum As<'a> {
    /// `--hub … --token …` on the command line.
    Flags { hub: &'a str, token: &'a str },
    /// `UNSILO_HUB` / `UNSILO_TOKEN` in the environment.
    Env { hub: &'a str, token: &'a str },
    /// Neither (for commands that need no hub).
    Nobody,
}

/// Runs `unsilo <args>` to completion, killing it (and failing the test) if it takes longer than
/// [`COMMAND_TIMEOUT`].
fn unsilo(who: As<'_>, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_unsilo"));
    command
        .args(args)
        .env_remove("UNSILO_HUB")
        .env_remove("UNSILO_TOKEN")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match who {
        As::Flags { hub, token } => {
            command.args(["--hub", hub, "--token", token]);
        }
        As::Env { hub, token } => {
            command.env("UNSILO_HUB", hub).env("UNSILO_TOKEN", token);
        }
        As::Nobody => {}
    }
    let shown = args.join(" ");
    let mut child = command.spawn().expect("spawn unsilo");
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`unsilo {shown}` hung for more than {COMMAND_TIMEOUT:?}; stderr so far: {}",
                err_reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        args: shown,
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// A running `unsilo serve`, its output going to a log file. Killed if the test fails before stopping it.
struct Server {
    child: Option<Child>,
    log: PathBuf,
    base: String,
}

impl Server {
    fn start(config: &Path, dir: &Path, base: String) -> Self {
        let log = dir.join("serve.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_unsilo"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("clone log file")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn unsilo serve");
        Self {
            child: Some(child),
            log,
            base,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("unsilo serve exited early ({status}):\n{}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "unsilo serve never became ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and waits (at most 60 s) for the process to end; returns its status and log.
    fn stop(&mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "unsilo serve did not stop within 60 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The subscription request of the guide, reduced to the fields the test releases.
fn request_json(name: &str) -> Value {
    json!({
        "name": name,
        "schema": "household",
        "filter": "care_level == \"RED\"",
        "fields": [
            { "field": "head_cert_no", "treatment": "pseudonymise" },
            { "field": "care_level",   "treatment": "clear" },
            { "field": "village_code", "treatment": "clear" }
        ],
        "purpose": "连心户走访帮扶", "scenario": "test scenario", "scope": "test scope", "expires_at": "2030-12-31T23:59:59+08:00",
        "legal_basis": "《社会救助暂行办法》",
        "channel": { "kind": "pull" }
    })
}

/// The same request in the TOML form.
fn request_toml(name: &str) -> String {
    format!(
        r#"name = "{name}"
schema = "household"
filter = 'care_level == "RED"'
purpose = "连心户走访帮扶"
legal_basis = "《社会救助暂行办法》"
scenario = "连心户走访帮扶台账"
scope = "红色关爱等级的户"
expires_at = "2030-12-31T23:59:59+08:00"

[[fields]]
field = "head_cert_no"
treatment = "pseudonymise"

[[fields]]
field = "care_level"
treatment = "clear"

[[fields]]
field = "village_code"
treatment = "clear"

[channel]
kind = "pull"
"#
    )
}

/// The subscription `id` in a `subscription list` answer.
fn listed<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["subscriptions"]
        .as_array()
        .expect("subscriptions array")
        .iter()
        .find(|s| s["id"] == id)
}

/// The RED household fixture of the grid connector, with its update time replaced by `gxsj` (a new version of
/// the same household is a new record).
fn red_household(gxsj: &str) -> Value {
    let mut fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../connectors/builtin/grid/fixtures/valid/household_red.json"),
        )
        .expect("read fixture"),
    )
    .expect("fixture JSON");
    assert_eq!(fixture["hzsfzh"], CERT_NO, "the fixture changed");
    fixture["gxsj"] = json!(gxsj);
    fixture
}

/// Pushes messages to `POST /ingest/grid` as the grid platform does; returns the accepted record ids.
async fn push_grid(client: &reqwest::Client, hub: &str, messages: &[Value]) -> Vec<String> {
    let response = client
        .post(format!("{hub}/ingest/grid"))
        .bearer_auth(PUSH_TOKEN)
        .json(messages)
        .send()
        .await
        .expect("push");
    let status = response.status();
    let answer: Value = response.json().await.expect("push answer");
    assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], messages.len(), "{answer}");
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            assert_eq!(r["schema"], "household", "{answer}");
            r["record_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no record id: {answer}"))
                .to_owned()
        })
        .collect()
}

/// Runs `unsilo subscription pull <id> --max 10 --ack` as `agency` until a record with id `record_id` has been
/// printed (at most 60 s); returns every record line printed on the way.
fn pull_until(agency: As<'_>, id: &str, record_id: &str, server: &Server) -> Vec<Value> {
    let started = Instant::now();
    let mut lines = Vec::new();
    loop {
        let run = unsilo(
            agency,
            &["subscription", "pull", id, "--max", "10", "--ack"],
        )
        .expect_ok();
        assert!(
            !run.stdout.contains(CERT_NO),
            "the raw ID number was delivered: {run}"
        );
        assert!(run.stderr.contains("cursor:"), "{run}");
        lines.extend(run.json_lines());
        if lines.iter().any(|l| l["record_id"] == record_id) {
            return lines;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "record {record_id} did not reach {id} within 60 s; last pull: {run}\nhub log:\n{}",
            server.log()
        );
    }
}

/// Checks a pulled line is the RED household as granted: exactly the three fields, the ID number as a `p2_`
/// pseudonym (HMAC-SM3: the hub runs on 国密 by default). Returns the pseudonym.
fn assert_granted_view(line: &Value) -> String {
    let record = line["record"]
        .as_object()
        .unwrap_or_else(|| panic!("no record object: {line}"));
    let mut keys: Vec<&str> = record.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["care_level", "head_cert_no", "village_code"],
        "default deny: only the granted fields: {line}"
    );
    assert_eq!(record["care_level"], "RED", "{line}");
    assert_eq!(record["village_code"], VILLAGE_CODE, "{line}");
    let pseudonym = record["head_cert_no"].as_str().expect("pseudonym string");
    assert!(
        pseudonym.starts_with("p2_")
            && pseudonym.len() == 3 + 32
            && pseudonym[3..].bytes().all(|b| b.is_ascii_hexdigit()),
        "not a p2_ pseudonym: {line}"
    );
    pseudonym.to_owned()
}

/// The audit entries an `unsilo audit query` printed.
fn entries(run: &Run) -> Vec<Value> {
    run.json()["entries"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no entries array: {run}"))
}

#[tokio::test]
async fn operator_and_agency_run_a_subscription_end_to_end_with_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let hub = format!("http://127.0.0.1:{port}");
    let config = common::write_grid_hub_config(
        dir.path(),
        port,
        &common::Tokens {
            operator: OPERATOR_TOKEN,
            reviewer: REVIEWER_TOKEN,
            push: PUSH_TOKEN,
        },
    );

    let client = reqwest::Client::new();
    let mut server = Server::start(&config, dir.path(), hub.clone());
    server.wait_ready(&client).await;
    let operator = As::Flags {
        hub: &hub,
        token: OPERATOR_TOKEN,
    };
    let reviewer = As::Flags {
        hub: &hub,
        token: REVIEWER_TOKEN,
    };
    let auditor = As::Flags {
        hub: &hub,
        token: common::AUDITOR_TOKEN,
    };

    // A wrong token is refused with a message that says what is wrong.
    let run = unsilo(
        As::Flags {
            hub: &hub,
            token: "not-a-token",
        },
        &["agency", "list"],
    )
    .expect_fail();
    assert!(
        run.stderr.contains("401") && run.stderr.contains("credentials"),
        "{run}"
    );
    // No token at all: the CLI says how to give one.
    let run = unsilo(As::Nobody, &["agency", "list", "--hub", &hub]).expect_fail();
    assert!(run.stderr.contains("--token"), "{run}");

    // --- The operator creates the agency. A wrong check character in the USCC is refused, naming it.
    let run = unsilo(
        operator,
        &[
            "agency",
            "create",
            "--id",
            "civil-affairs",
            "--name",
            "汉阴县民政局",
            "--uscc",
            "11610921016050037X",
            "--clearance",
            "S3",
        ],
    )
    .expect_fail();
    assert!(
        run.stderr.contains("uscc") && run.stderr.contains("11610921016050037X"),
        "{run}"
    );
    let created = unsilo(
        operator,
        &[
            "agency",
            "create",
            "--id",
            "civil-affairs",
            "--name",
            "汉阴县民政局",
            "--uscc",
            "11610921016050037T",
            "--clearance",
            "S3",
        ],
    )
    .expect_ok();
    let created_json = created.json();
    let agency_token = created_json["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in the answer: {created}"))
        .to_owned();
    assert!(agency_token.starts_with("usk_"), "{created}");
    assert_eq!(created_json["agency"]["id"], "civil-affairs", "{created}");
    assert_eq!(created_json["agency"]["name"], "汉阴县民政局", "{created}");
    assert_eq!(
        created_json["agency"]["uscc"], "11610921016050037T",
        "{created}"
    );
    assert_eq!(created_json["agency"]["clearance"], "S3", "{created}");
    assert!(
        !created.stdout.contains(&sha256_hex(&agency_token)),
        "the token's digest must not be shown: {created}"
    );

    // Tokens rotate: another is issued (shown once, with an expiry), listed by id only, and revoked.
    let issued = unsilo(
        operator,
        &[
            "agency",
            "token",
            "issue",
            "civil-affairs",
            "--expires-in",
            "1h",
        ],
    )
    .expect_ok()
    .json();
    let spare = issued["token"].as_str().expect("token").to_owned();
    let spare_id = issued["token_id"].as_str().expect("token id").to_owned();
    assert!(issued["expires_at_ms"].is_i64(), "{issued}");
    let tokens = unsilo(operator, &["agency", "token", "list", "civil-affairs"]).expect_ok();
    assert!(tokens.stdout.contains(&spare_id), "{tokens}");
    assert!(!tokens.stdout.contains(&spare), "{tokens}");
    let spare_agency = As::Flags {
        hub: &hub,
        token: &spare,
    };
    unsilo(spare_agency, &["subscription", "list"]).expect_ok();
    let revoked = unsilo(
        operator,
        &["agency", "token", "revoke", "civil-affairs", &spare_id],
    )
    .expect_ok()
    .json();
    assert_eq!(revoked["token"]["usable"], false, "{revoked}");
    let run = unsilo(spare_agency, &["subscription", "list"]).expect_fail();
    assert!(
        run.stderr.contains("401") && run.stderr.contains("revoked"),
        "{run}"
    );
    let agency = As::Env {
        hub: &hub,
        token: &agency_token,
    };

    // The agency sees itself.
    let me = unsilo(agency, &["agency", "list"]).expect_ok().json();
    let ids: Vec<&Value> = me["agencies"]
        .as_array()
        .expect("agencies")
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&json!("civil-affairs")], "{me}");

    // --- The agency requests subscriptions: two described in JSON, one in TOML.
    let write_json = |name: &str| {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&request_json(name)).expect("json"),
        )
        .expect("write request");
        path
    };
    let json_file = write_json("red-households");
    let extra_file = write_json("red-households-extra");
    let toml_file = dir.path().join("red-households-toml.toml");
    std::fs::write(&toml_file, request_toml("red-households-toml")).expect("write request");
    let sub = "civil-affairs.red-households";
    let sub_toml = "civil-affairs.red-households-toml";
    let sub_extra = "civil-affairs.red-households-extra";

    for (file, id) in [
        (&json_file, sub),
        (&toml_file, sub_toml),
        (&extra_file, sub_extra),
    ] {
        let asked = unsilo(
            agency,
            &["subscription", "request", file.to_str().expect("path")],
        )
        .expect_ok()
        .json();
        assert_eq!(asked["subscription"]["id"], id, "{asked}");
        assert_eq!(asked["subscription"]["status"], "requested", "{asked}");
        assert_eq!(
            asked["subscription"]["requested"]["fields"],
            request_json("x")["fields"],
            "{asked}"
        );
        assert_eq!(
            asked["subscription"]["requested"]["filter"], "care_level == \"RED\"",
            "{asked}"
        );
        assert_eq!(
            asked["subscription"]["requested"]["channel"],
            json!({ "kind": "pull" }),
            "{asked}"
        );
    }
    // The same name again is refused, naming the subscription.
    let run = unsilo(
        agency,
        &["subscription", "request", json_file.to_str().expect("path")],
    )
    .expect_fail();
    assert!(
        run.stderr.contains("409") && run.stderr.contains(sub),
        "{run}"
    );

    let list = unsilo(agency, &["subscription", "list"]).expect_ok().json();
    for id in [sub, sub_toml, sub_extra] {
        let s = listed(&list, id).unwrap_or_else(|| panic!("{id} not listed: {list}"));
        assert_eq!(s["status"], "requested", "{list}");
        assert_eq!(s["agency"], "civil-affairs", "{list}");
    }
    let pending = unsilo(operator, &["subscription", "list", "--status", "requested"])
        .expect_ok()
        .json();
    for id in [sub, sub_toml, sub_extra] {
        assert!(listed(&pending, id).is_some(), "{id}: {pending}");
    }

    // An agency cannot approve its own request.
    let run = unsilo(agency, &["subscription", "approve", sub]).expect_fail();
    assert!(
        run.stderr.contains("403") && run.stderr.contains("security administrator"),
        "{run}"
    );

    // --- The operator decides. head_cert_no is S4, above the agency's S3 clearance: approval is refused until
    // the operator approves that field by name, and a refused approval changes nothing.
    let run = unsilo(operator, &["subscription", "approve", sub]).expect_fail();
    assert!(run.stderr.contains("head_cert_no"), "{run}");
    assert!(run.stderr.contains("clearance"), "{run}");
    let still = unsilo(operator, &["subscription", "show", sub])
        .expect_ok()
        .json();
    assert_eq!(
        still["status"], "requested",
        "a refused approval must change nothing: {still}"
    );

    let mut view_schema_ids = Vec::new();
    for id in [sub, sub_toml] {
        let first = unsilo(
            operator,
            &[
                "subscription",
                "approve",
                id,
                "--approve-above-clearance",
                "head_cert_no",
            ],
        )
        .expect_ok()
        .json();
        // The filter does not rule CORE-grade records out: a second operator must confirm (双人复核), and the
        // first may not confirm its own approval.
        assert_eq!(first["subscription"]["status"], "requested", "{first}");
        let run = unsilo(operator, &["subscription", "approve", id]).expect_fail();
        assert!(run.stderr.contains("双人复核"), "{run}");
        let approved = unsilo(reviewer, &["subscription", "approve", id])
            .expect_ok()
            .json();
        assert_eq!(approved["status"], "active", "{approved}");
        assert_eq!(
            approved["approvals"].as_array().map(Vec::len),
            Some(2),
            "{approved}"
        );
        assert_eq!(
            approved["approved_above_clearance"],
            json!(["head_cert_no"]),
            "{approved}"
        );
        assert!(approved["view_schema_id"].is_i64(), "{approved}");
        view_schema_ids.push(approved["view_schema_id"].clone());
    }
    let rejected = unsilo(
        operator,
        &[
            "subscription",
            "reject",
            sub_extra,
            "--reason",
            "duplicate of red-households",
        ],
    )
    .expect_ok()
    .json();
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert_eq!(
        rejected["reason"], "duplicate of red-households",
        "{rejected}"
    );
    let list = unsilo(agency, &["subscription", "list"]).expect_ok().json();
    assert_eq!(listed(&list, sub).expect("listed")["status"], "active");
    assert_eq!(listed(&list, sub_toml).expect("listed")["status"], "active");
    assert_eq!(
        listed(&list, sub_extra).expect("listed")["status"],
        "rejected"
    );
    // A rejected subscription delivers nothing.
    let run = unsilo(agency, &["subscription", "pull", sub_extra]).expect_fail();
    assert!(run.stderr.contains("rejected"), "{run}");

    // --- The grid platform pushes the RED household; the agency pulls it (routing is asynchronous).
    let record_id = push_grid(&client, &hub, &[red_household("20240709110230")])
        .await
        .remove(0);
    let lines = pull_until(agency, sub, &record_id, &server);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert_eq!(line["subscription"], sub, "{line}");
    assert_eq!(line["record_id"], record_id.as_str(), "{line}");
    assert_eq!(line["schema_id"], view_schema_ids[0], "{line}");
    let pseudonym = assert_granted_view(line);

    // The batch was acknowledged: the next pull starts after it.
    let run = unsilo(agency, &["subscription", "pull", sub, "--max", "10"]).expect_ok();
    assert!(
        run.json_lines().is_empty(),
        "an acknowledged record was delivered again: {run}"
    );
    // Only the agency pulls.
    let run = unsilo(operator, &["subscription", "pull", sub]).expect_fail();
    assert!(run.stderr.contains("403"), "{run}");

    // --- Evidence: the operator finds the release by the person's ID number and by the record id.
    let found = unsilo(auditor, &["audit", "query", "--cert-no", CERT_NO]).expect_ok();
    assert!(
        !found.stdout.contains(CERT_NO),
        "the audit log must not hold ID numbers: {found}"
    );
    let releases: Vec<Value> = entries(&found)
        .into_iter()
        .filter(|e| e["event"]["kind"] == "release" && e["event"]["subscription"] == sub)
        .collect();
    assert_eq!(releases.len(), 1, "one release to {sub} expected: {found}");
    let release = &releases[0]["event"];
    assert_eq!(release["agency"], "civil-affairs", "{release}");
    assert_eq!(release["record_id"], record_id.as_str(), "{release}");
    assert_eq!(release["schema"], "household", "{release}");
    assert_eq!(release["channel"], "pull", "{release}");
    assert_eq!(release["purpose"], "连心户走访帮扶", "{release}");
    assert_eq!(release["view_schema_id"], view_schema_ids[0], "{release}");
    assert_eq!(
        release["person_keys"],
        json!([pseudonym]),
        "the audit's person key is the pseudonym the agency received: {release}"
    );
    let by_record = unsilo(auditor, &["audit", "query", "--record-id", &record_id]).expect_ok();
    assert!(
        entries(&by_record)
            .iter()
            .any(|e| e["event"]["kind"] == "release"
                && e["event"]["subscription"] == sub
                && e["event"]["agency"] == "civil-affairs"),
        "{by_record}"
    );
    // Another person's ID number finds nothing.
    let nobody = unsilo(
        auditor,
        &["audit", "query", "--cert-no", "610921198001010018"],
    )
    .expect_ok();
    assert!(entries(&nobody).is_empty(), "{nobody}");
    // The audit log is for operators.
    let run = unsilo(agency, &["audit", "query", "--cert-no", CERT_NO]).expect_fail();
    assert!(run.stderr.contains("403"), "{run}");

    let verified = unsilo(auditor, &["audit", "verify"]).expect_ok();
    assert!(verified.stdout.contains("\"intact\": true"), "{verified}");
    let online_report = verified.json();
    assert_eq!(online_report["report"]["problems"], json!([]), "{verified}");
    let online_entries = online_report["report"]["entries"]
        .as_u64()
        .expect("entries");
    let keys = unsilo(auditor, &["audit", "keys"]).expect_ok().json();
    assert_eq!(
        keys["public_key"].as_str().map(str::len),
        Some(130),
        "an SM2 point, 04‖x‖y: {keys}"
    );
    assert_eq!(keys["algorithm"], "SM2", "{keys}");
    let exported = unsilo(auditor, &["audit", "checkpoints"]).expect_ok();
    for line in exported.stdout.lines() {
        let cp: Value = serde_json::from_str(line).expect("a checkpoint per line");
        assert!(cp["signature"].is_string(), "{line}");
    }
    // A signed export of the period, verified offline against the key the auditor holds; a changed line fails.
    let bundle = dir.path().join("audit-export.jsonl");
    let bundle_arg = bundle.to_str().expect("utf-8").to_owned();
    let period_from = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let period_to = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    unsilo(
        auditor,
        &[
            "audit",
            "export",
            "--from",
            &period_from,
            "--to",
            &period_to,
            "-o",
            &bundle_arg,
        ],
    )
    .expect_ok();
    let public_key = keys["public_key"].as_str().expect("key").to_owned();
    let offline = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_unsilo"))
            .args(["audit", "verify-export", file, "--public-key", &public_key])
            .output()
            .expect("run")
    };
    let out = offline(&bundle_arg);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert!(
        verdict["report"]["entries"].as_u64().is_some_and(|n| n > 5),
        "{verdict}"
    );
    let text = std::fs::read_to_string(&bundle).expect("bundle");
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(
        &tampered,
        text.replacen("civil-affairs", "civil-affairz", 1),
    )
    .expect("write");
    let out = offline(tampered.to_str().expect("utf-8"));
    assert!(!out.status.success(), "a changed bundle must fail");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("digest"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another key than the hub's is refused too.
    let out = Command::new(env!("CARGO_BIN_EXE_unsilo"))
        .args([
            "audit",
            "verify-export",
            &bundle_arg,
            "--public-key",
            &unsilo_hub::audit::SigningKey::generate(unsilo_schemas::crypto::Suite::Gm)
                .public_hex(),
        ])
        .output()
        .expect("run");
    assert!(
        !out.status.success(),
        "another hub's key must not verify it"
    );

    // --- Revocation: from when the command returns, nothing more is released or delivered.
    let revoked = unsilo(
        operator,
        &["subscription", "revoke", sub, "--reason", "done"],
    )
    .expect_ok()
    .json();
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert_eq!(revoked["reason"], "done", "{revoked}");
    let run = unsilo(agency, &["subscription", "pull", sub, "--max", "10"]).expect_fail();
    assert!(run.stderr.contains("revoked"), "{run}");
    assert!(run.stdout.trim().is_empty(), "{run}");
    let run = unsilo(
        operator,
        &["subscription", "revoke", sub, "--reason", "again"],
    )
    .expect_fail();
    assert!(run.stderr.contains("already revoked"), "{run}");

    // A newer version of the household, pushed after the revocation, reaches the subscription that is still
    // active (so the router has handled it) — with the same pseudonym — and is not released to the revoked one.
    let newer_id = push_grid(&client, &hub, &[red_household("20240710090000")])
        .await
        .remove(0);
    assert_ne!(newer_id, record_id, "a new version must be a new record");
    let lines = pull_until(agency, sub_toml, &newer_id, &server);
    for line in &lines {
        assert_eq!(line["subscription"], sub_toml, "{line}");
        assert_eq!(line["schema_id"], view_schema_ids[1], "{line}");
        assert_eq!(
            assert_granted_view(line),
            pseudonym,
            "the same ID number must give the same pseudonym in every subscription: {line}"
        );
    }
    let newer = unsilo(auditor, &["audit", "query", "--record-id", &newer_id]).expect_ok();
    let newer_releases: Vec<Value> = entries(&newer)
        .iter()
        .filter(|e| e["event"]["kind"] == "release")
        .map(|e| e["event"]["subscription"].clone())
        .collect();
    assert_eq!(
        newer_releases,
        [json!(sub_toml)],
        "released after revocation to the revoked subscription: {newer}"
    );

    // --- The hub stops cleanly; an auditor verifies the log directly on the bus.
    let (status, log) = server.stop();
    assert!(
        status.success(),
        "unsilo serve exited with {status}:\n{log}"
    );
    assert!(log.contains("unsilo stopped cleanly"), "{log}");
    for (what, secret) in [
        ("the operator token", OPERATOR_TOKEN),
        ("the push token", PUSH_TOKEN),
        ("the agency token", agency_token.as_str()),
        ("the ID number", CERT_NO),
    ] {
        assert!(!log.contains(secret), "the hub logged {what}:\n{log}");
    }

    let offline = unsilo(
        As::Nobody,
        &[
            "audit",
            "verify",
            "--config",
            config.to_str().expect("path"),
        ],
    )
    .expect_ok();
    let offline_report = offline.json();
    assert_eq!(offline_report["intact"], true, "{offline}");
    assert_eq!(offline_report["report"]["problems"], json!([]), "{offline}");
    assert!(
        offline_report["report"]["entries"]
            .as_u64()
            .expect("entries")
            > online_entries,
        "the revocation must be on the log after the online verification: {offline}"
    );
    assert!(
        offline_report["report"]["checkpoints"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "the hub signs a checkpoint at the latest when it stops: {offline}"
    );
    let head = &offline_report["report"]["chains"]["hub"];
    assert!(
        head["seq"].as_u64().is_some_and(|s| s > 0) && head["hash"].as_str().is_some(),
        "the chain head must be printed: {offline}"
    );
}

#[test]
fn operator_token_new_prints_a_token_once_and_the_lines_that_admit_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_unsilo"))
        .args([
            "operator",
            "token",
            "new",
            "--name",
            "auditor-li",
            "--role",
            "audit",
        ])
        .output()
        .expect("run");
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).expect("utf-8");
    let token = token.trim();
    assert!(token.starts_with("usk_") && token.len() == 68, "{token}");
    let lines = String::from_utf8(out.stderr).expect("utf-8");
    let digest = unsilo_hub::auth::token_digest(token);
    assert!(
        lines.contains("name = \"auditor-li\"")
            && lines.contains("role = \"audit\"")
            && lines.contains(&format!("token_sha256 = \"{digest}\"")),
        "{lines}"
    );
    assert!(
        !lines.contains(token),
        "the token is printed once, on standard output"
    );
    // The lines make a configuration the hub accepts.
    let snippet = lines.split_once("[[admin.operators]]").expect("snippet").1;
    unsilo_hub::config::Config::parse(&format!("[[admin.operators]]{snippet}")).expect("accepted");
}

#[test]
fn keys_rotate_re_wraps_every_data_key_under_a_new_kek() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8");
    let rotate = || {
        Command::new(env!("CARGO_BIN_EXE_unsilo"))
            .args(["keys", "rotate", "--data-dir", data_dir])
            .output()
            .expect("run")
    };
    // Before the hub ever ran there is nothing to rotate, and it says so.
    let out = rotate();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key-encryption key"));
    // The keys a hub makes at start, and a sealed record.
    let mut config = unsilo_hub::config::Config::default();
    config.bus.embedded.data_dir = dir.path().to_owned();
    let cipher = unsilo_hub::at_rest::RecordCipher::open(
        &config.security.keys,
        &config.secret_file(),
        config.security.crypto,
        config.bus.retention.clone(),
    )
    .expect("keys");
    let sealed = cipher
        .seal(
            "raw.grid",
            unsilo_bus::Record::new(b"k".to_vec(), b"610921196105170316".to_vec()),
        )
        .expect("seal");
    let out = rotate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotation: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rotation["rewrapped"], 1, "{rotation}");
    // A fresh reader (the KEK file now holds only the new KEK) still opens the record.
    let after = unsilo_hub::at_rest::RecordCipher::open(
        &config.security.keys,
        &config.secret_file(),
        config.security.crypto,
        config.bus.retention.clone(),
    )
    .expect("keys");
    let opened = after.open_record("raw.grid", sealed);
    assert_eq!(
        opened.value.as_deref(),
        Some(b"610921196105170316".as_slice())
    );
}

#[test]
fn operator_totp_code_reads_an_enrolment_as_an_authenticator_app_would() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = unsilo_hub::secrets::HubSecret::from_bytes([9; 32]).totp_secret("li-wei", 0);
    let file = dir.path().join("li-wei.totp");
    unsilo_hub::secrets::write_private(
        &file,
        unsilo_hub::totp::otpauth_uri("li-wei", &secret).as_bytes(),
    )
    .expect("write");
    let before = unsilo_bus::now_ms() / 1000;
    let out = Command::new(env!("CARGO_BIN_EXE_unsilo"))
        .args(["operator", "totp", "code", file.to_str().expect("utf-8")])
        .output()
        .expect("run");
    let after = unsilo_bus::now_ms() / 1000;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8(out.stdout).expect("utf-8");
    let expected: Vec<String> = [before, after]
        .iter()
        .map(|t| unsilo_hub::totp::code_at(&secret, *t as u64))
        .collect();
    assert!(
        expected.contains(&code.trim().to_owned()),
        "{code} not in {expected:?}"
    );
    // A file without a URI says so.
    std::fs::write(dir.path().join("bad.totp"), "hello").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_unsilo"))
        .args([
            "operator",
            "totp",
            "code",
            dir.path().join("bad.totp").to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
}

#[test]
fn calendar_due_counts_working_days_and_names_a_missing_year() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_unsilo"))
            .args(args)
            .output()
            .expect("run")
    };
    // 10 working days from 24 September 2026 cross 中秋 and 国庆, counting the worked Saturday 10 October.
    let out = run(&["calendar", "due", "2026-09-24", "--days", "10"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2026-10-15");
    let out = run(&["calendar", "due", "2026-12-28", "--days", "10"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2027"));
    let out = run(&["calendar", "years"]);
    let years = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        years.contains("2025:") && years.contains("2026:"),
        "{years}"
    );
}
