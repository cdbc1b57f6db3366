//! The official Confluent Python client (`confluent-kafka`, installed by tests/run.sh) registers, looks up and
//! round-trips records against the hub's schema registry as an operator, with `basic.auth.user.info` — unchanged
//! client code keeps working behind the hub's authentication. Fails, never skips, when the client is missing.

use std::process::Command;

use unsilo_tests::api::{with_grid_and_operator, SYSTEM_TOKEN};
use unsilo_tests::{embedded_config, RunningHub as Running};

#[tokio::test]
async fn the_confluent_python_client_works_with_basic_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Running::start(&with_grid_and_operator(embedded_config(dir.path()))).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("confluent/registry_client.py");
    let base = running.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([base.as_str(), "sysadmin", SYSTEM_TOKEN])
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Confluent client failed (tests/run.sh installs confluent-kafka and fastavro):\n{stdout}\n{stderr}"
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(seen["round_trip"]["stars"], 5, "{seen}");
    assert_eq!(seen["shared_version"], 1, "{seen}");
    running.stop().await;
}
