//! The `unsilo` binary as a user runs it: `serve` with no configuration answers on HTTP, stops cleanly on
//! SIGTERM, and refuses a configuration file with a wrong key, naming it.

mod common;
use common::free_port;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // Operational logs in daily files kept six months (网络安全法 Art. 21), as well as on standard error.
    std::fs::write(
        dir.path().join("hub.toml"),
        "[log]\ndir = \"logs\"\nkeep_days = 180\n",
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_unsilo"))
        .args([
            "serve",
            "--config",
            "hub.toml",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unsilo");

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            let out = child.wait_with_output().expect("output");
            panic!(
                "unsilo exited early ({status}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "unsilo never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Default deny: with no configuration there is no credential, and the registry answers nobody.
    let anonymous = client
        .get(format!("{base}/subjects"))
        .send()
        .await
        .expect("subjects");
    assert_eq!(anonymous.status().as_u16(), 401);
    // The default data directory is ./data, relative to where unsilo runs.
    assert!(dir.path().join("data").is_dir(), "./data was not created");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "unsilo exited with {}: {log}",
        out.status
    );
    assert!(log.contains("Received SIGTERM"), "{log}");
    assert!(log.contains("unsilo stopped cleanly"), "{log}");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .expect("the log directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0]
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(
        name.starts_with("unsilo.")
            && name.ends_with(".log")
            && name.len() == "unsilo.2026-12-07.log".len(),
        "a daily file: {name}"
    );
    let written = std::fs::read_to_string(&files[0]).expect("log file");
    assert!(written.contains("unsilo stopped cleanly"), "{written}");
}

#[test]
fn a_wrong_configuration_key_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[bus]\nkind = \"embedded\"\npartitons = 4\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_unsilo"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run unsilo");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("partitons"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
}

/// A connector developer's path, as the guide walks it: scaffold, test the mapping, check conformance.
#[test]
fn connector_new_then_mapping_test_then_check_pass_out_of_the_box() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_unsilo"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run unsilo");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = run(&["connector", "new", "street-ratings", "--schema", "rating"]);
    assert!(ok, "{out}");
    assert!(out.contains("unsilo mapping test"), "{out}");
    let (ok, out) = run(&[
        "mapping",
        "test",
        "street-ratings/mappings/rating.toml",
        "street-ratings/fixtures/valid/example.json",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("1 normalised"), "{out}");
    let (ok, out) = run(&["connector", "check", "street-ratings"]);
    assert!(ok, "{out}");
    assert!(out.contains("conformance passed"), "{out}");

    // A broken mapping is refused with file and line.
    let mapping = dir.path().join("street-ratings/mappings/rating.toml");
    let text = std::fs::read_to_string(&mapping).expect("read")
        + "\n[fields.no_such_field]\npath = \"x\"\n";
    std::fs::write(&mapping, text).expect("write");
    let (ok, out) = run(&["connector", "check", "street-ratings"]);
    assert!(!ok, "{out}");
    assert!(out.contains("rating.toml:"), "{out}");
    assert!(out.contains("no_such_field"), "{out}");

    // Unknown schema: the error lists the known ones.
    let (ok, out) = run(&["connector", "new", "x", "--schema", "nope"]);
    assert!(!ok);
    assert!(out.contains("grid_event"), "{out}");
}

/// The README's main command: `unsilo demo` brings up the hub with every source system simulated, records of
/// all four default source systems are accepted (and some deliberately malformed ones rejected), and SIGTERM
/// stops it cleanly.
#[tokio::test]
async fn demo_flows_data_from_every_simulated_source_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_unsilo"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            "demo-data",
            "--rate",
            "50",
            "--malformed",
            "0.2",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unsilo demo");
    let client = reqwest::Client::new();
    let wanted = ["grid", "qinwuyuan", "hotline12345", "dept-file"];
    let started = Instant::now();
    let mut metrics = String::new();
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        {
            metrics = r.text().await.unwrap_or_default();
            let accepted_all = wanted.iter().all(|c| {
                metrics.contains(&format!(
                    "unsilo_ingest_records_total{{connector=\"{c}\",outcome=\"accepted\"}}"
                ))
            });
            if accepted_all && metrics.contains("outcome=\"rejected\"") {
                break;
            }
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            let out = child.wait_with_output().expect("output");
            panic!(
                "unsilo demo exited early ({status}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not every source system's records arrived:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(dir
        .path()
        .join("demo-data")
        .join("demo-dropbox")
        .join("done")
        .is_dir());

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "unsilo demo exited with {}: {log}",
        out.status
    );
    assert!(log.contains("unsilo demo stopped cleanly"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
