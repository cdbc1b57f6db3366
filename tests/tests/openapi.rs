//! The OpenAPI document: generated from the handlers themselves (utoipa), served at `/openapi.json` to
//! authenticated callers, and tried against a live hub by schemathesis (from PyPI; `tests/run.sh` installs
//! it): property-based requests for every operation, bounded in number, that must find no 5xx and no answer
//! the document does not describe (status, content type, body schema).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use unsilo_tests::api::{with_generous_limits, with_grid_and_operator, Api, OPERATOR_TOKEN};
use unsilo_tests::{embedded_config, RunningHub};

/// A hub whose rate limits do not get in the way of a property-based run.
async fn hub() -> (tempfile::TempDir, RunningHub) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = with_generous_limits(with_grid_and_operator(embedded_config(dir.path())));
    let running = RunningHub::start(&config).await;
    (dir, running)
}

async fn document(base: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/openapi.json"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn the_document_describes_every_surface_and_needs_credentials() {
    let (_dir, running) = hub().await;
    let anonymous = reqwest::get(format!("{}/openapi.json", running.base))
        .await
        .expect("request");
    assert_eq!(anonymous.status().as_u16(), 401, "default deny");
    let doc = document(&running.base).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/ingest/{connector}", "post"),
        ("/subjects/{subject}/versions", "post"),
        ("/config/{subject}", "put"),
        ("/admin/agencies", "post"),
        ("/admin/subscriptions/{id}/approve", "post"),
        ("/admin/audit/verify", "get"),
        ("/v1/subscriptions/{id}/records", "get"),
        ("/v1/subscriptions/{id}/events", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is described"
        );
    }
    // Every path parameter of every operation is declared.
    for (path, item) in paths {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().expect("operations") {
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for name in &names {
                assert!(declared.contains(name), "{method} {path} declares `{name}`");
            }
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_describe() {
    let (_dir, running) = hub().await;
    // Something to find: an agency and one active subscription.
    let api = Api::new(&running.base);
    let agency_token = api
        .agency("civil-affairs", "民政局", "11610921016050037T", "S3")
        .await;
    assert!(!agency_token.is_empty());
    let base = running.base.clone();
    let report = tempfile::tempdir().expect("tempdir");
    let run = tokio::task::spawn_blocking(move || {
        Command::new("schemathesis")
            .args([
                "run",
                &format!("{base}/openapi.json"),
                "--header",
                &format!("Authorization: Bearer {OPERATOR_TOKEN}"),
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--max-examples",
                "15",
                "--phases",
                "examples,coverage,fuzzing",
                "--seed",
                "20261202",
                "--request-timeout",
                "30",
                "--no-color",
            ])
            // Its caches and reports go to a scratch folder, not into the checkout.
            .current_dir(report.path())
            .output()
    });
    let output = tokio::time::timeout(Duration::from_secs(900), run)
        .await
        .expect("schemathesis finishes within 15 minutes")
        .expect("join")
        .expect("schemathesis runs: tests/run.sh installs it (pip install schemathesis)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{text}"
    );
    assert!(
        text.contains("generated"),
        "schemathesis ran cases:\n{text}"
    );
    running.stop().await;
}

/// Whether `schema` (after following `$ref`s into `components`) says nothing of its shape.
fn free_form(doc: &Value, schema: &Value) -> bool {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return free_form(doc, &doc["components"]["schemas"][name]);
    }
    let Some(o) = schema.as_object() else {
        return true;
    };
    let keys: Vec<&str> = o
        .keys()
        .map(String::as_str)
        .filter(|k| {
            !matches!(
                *k,
                "description" | "title" | "default" | "example" | "examples"
            )
        })
        .collect();
    keys.is_empty() || (keys == ["type"] && o["type"] == "object")
}

#[tokio::test]
async fn every_json_answer_has_a_typed_schema() {
    let (_dir, running) = hub().await;
    let doc = document(&running.base).await;
    // Answers whose shape is somebody else's: the OpenAPI document itself, a registered Avro schema, and the
    // registry's root, which answers `{}` as Confluent's does.
    let exceptions = [
        ("get", "/openapi.json"),
        ("get", "/"),
        ("get", "/schemas/ids/{id}/schema"),
        ("get", "/subjects/{subject}/versions/{version}/schema"),
    ];
    let mut untyped = Vec::new();
    let mut typed = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            if exceptions.contains(&(method.as_str(), path.as_str())) {
                continue;
            }
            for (status, response) in op["responses"].as_object().expect("responses") {
                let Some(content) = response["content"].as_object() else {
                    continue;
                };
                for (media, body) in content {
                    if !media.contains("json") {
                        continue;
                    }
                    if free_form(&doc, &body["schema"]) {
                        untyped.push(format!("{method} {path} {status} {media}"));
                    } else {
                        typed += 1;
                    }
                }
            }
        }
    }
    assert!(
        untyped.is_empty(),
        "answers without a typed schema:\n{}",
        untyped.join("\n")
    );
    assert!(typed > 100, "{typed} typed answers");
    running.stop().await;
}
