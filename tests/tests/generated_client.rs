//! Departments integrate from their own systems: a client generated from the hub's `/openapi.json` by OpenAPI
//! Generator (the standard generator, here its `python` target: the machine has no Maven repository to build
//! its Java client's dependencies from, so the Java client is generated and its models checked, not compiled)
//! runs a whole exchange against a live hub over 127.0.0.1 —
//! an agency is created, requests data, a security administrator approves, the grid pushes records, the agency
//! pulls them and files a correction on one — reading every answer into the generated, typed models (which
//! refuse an answer that does not match its schema). `tests/run.sh` installs the generator and a Java runtime.

use std::process::Command;

use unsilo_tests::api::{with_grid_and_operator, OPERATOR_TOKEN, PUSH_TOKEN};
use unsilo_tests::{embedded_config, rand_suffix, RunningHub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_openapi_document_runs_request_approve_pull_correct() {
    let dir = tempfile::tempdir().unwrap();
    let running = RunningHub::start(&with_grid_and_operator(embedded_config(
        &dir.path().join("hub"),
    )))
    .await;
    let doc = reqwest::Client::new()
        .get(format!("{}/openapi.json", running.base))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("GET /openapi.json")
        .text()
        .await
        .expect("the document");
    let spec = dir.path().join("openapi.json");
    std::fs::write(&spec, doc).unwrap();
    let out = dir.path().join("client");
    let generated = Command::new("openapi-generator-cli")
        .args(["generate", "-g", "python", "--package-name", "unsilo_client", "-i"])
        .arg(&spec)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("openapi-generator-cli runs: tests/run.sh installs it (pip install openapi-generator-cli) and Java");
    assert!(
        generated.status.success(),
        "OpenAPI Generator refused the document:\n{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    // The Java client generates too (building it needs Maven Central, which this machine cannot reach).
    let java = dir.path().join("java");
    let generated = Command::new("openapi-generator-cli")
        .args([
            "generate",
            "-g",
            "java",
            "--additional-properties=library=native",
            "-i",
        ])
        .arg(&spec)
        .arg("-o")
        .arg(&java)
        .output()
        .expect("openapi-generator-cli runs");
    assert!(
        generated.status.success(),
        "the Java client: {}",
        String::from_utf8_lossy(&generated.stdout)
    );
    let models = java.join("src/main/java/org/openapitools/client/model");
    for model in [
        "Subscription.java",
        "RecordBatch.java",
        "Correction.java",
        "MonthlyReport.java",
    ] {
        assert!(models.join(model).exists(), "{model} is generated");
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/generated_client_scenario.py");
    let base = running.base.clone();
    let sfx = rand_suffix();
    let (red, green, _) = unsilo_tests::api::grid_messages(sfx);
    let messages = serde_json::json!([red, green]).to_string();
    let sfx = sfx.to_string();
    let run = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .env("PYTHONPATH", &out)
            .env("UNSILO_BASE", base)
            .env("UNSILO_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("UNSILO_PUSH_TOKEN", PUSH_TOKEN)
            .env("UNSILO_SUFFIX", sfx)
            .env("UNSILO_GRID_MESSAGES", messages)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success(),
        "the generated client's scenario failed:\n{text}"
    );
    for step in [
        "agency created",
        "requested",
        "approved: active",
        "pulled",
        "correction filed",
    ] {
        assert!(text.contains(step), "{step}:\n{text}");
    }
    running.stop().await;
}
