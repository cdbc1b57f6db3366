//! The schema registry over real HTTP on loopback, on the embedded bus in a temporary data directory: the
//! Confluent dialect (paths, JSON shapes, status and error codes, content type), deletes, restarts, and two
//! registries sharing one bus.

use std::path::Path;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use unsilo_bus::embedded::EmbeddedBus;
use unsilo_bus::Bus;
use unsilo_registry::{Compatibility, Registry, VersionSpec};

const CT: &str = "application/vnd.schemaregistry.v1+json";
const SUBJECT: &str = "dept.grid_event-value";

/// Version 1 of a grid event, with docs and sensitivity tags as the shared schemas carry them.
const V1: &str = r#"{
  "type": "record", "name": "GridEvent", "namespace": "cn.unsilo.grid",
  "doc": "网格事件 Grid event",
  "fields": [
    {"name": "event_id", "type": "string", "doc": "事件编号 Event id", "x-sensitivity": "S1"},
    {"name": "region_code", "type": "string", "doc": "区划代码 Region code", "x-sensitivity": "S1"}
  ]
}"#;

/// V1 written differently (no docs, other key order, compact): the same schema.
const V1_PLAIN: &str = r#"{"name":"cn.unsilo.grid.GridEvent","type":"record","fields":[{"name":"event_id","type":"string"},{"name":"region_code","type":"string"}]}"#;

/// V1 plus an optional field with a default: backward compatible.
const V2: &str = r#"{"type":"record","name":"GridEvent","namespace":"cn.unsilo.grid","fields":[
  {"name":"event_id","type":"string"},
  {"name":"region_code","type":"string"},
  {"name":"reporter_phone","type":["null","string"],"default":null,"x-pii":"phone"}]}"#;

/// V2 plus a required field without a default: not backward compatible.
const V3_BAD: &str = r#"{"type":"record","name":"GridEvent","namespace":"cn.unsilo.grid","fields":[
  {"name":"event_id","type":"string"},
  {"name":"region_code","type":"string"},
  {"name":"reporter_phone","type":["null","string"],"default":null},
  {"name":"priority","type":"int"}]}"#;

/// V2 without `region_code`: backward compatible, not forward compatible (V2 readers need `region_code`).
const DROPPED_REGION: &str = r#"{"type":"record","name":"GridEvent","namespace":"cn.unsilo.grid","fields":[
  {"name":"event_id","type":"string"},
  {"name":"reporter_phone","type":["null","string"],"default":null}]}"#;

struct Hub {
    bus: Arc<EmbeddedBus>,
    registry: Arc<Registry>,
    server: JoinHandle<()>,
    base: String,
    http: reqwest::Client,
}

impl Hub {
    async fn start(dir: &Path) -> Hub {
        let bus = Arc::new(EmbeddedBus::open(dir).expect("open the embedded bus"));
        let registry = Registry::open(bus.clone(), Compatibility::Backward)
            .await
            .expect("open the registry");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // The Confluent dialect as an operator sees it: who may do what is the hub's access layer's business,
        // tested over the whole hub in tests/tests/security.rs.
        let app = unsilo_registry::router(registry.clone(), None).layer(axum::Extension(
            unsilo_registry::api::RegistryCaller {
                name: "operator:test".into(),
                writer: true,
                readable: None,
                anonymous: false,
            },
        ));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Hub {
            bus,
            registry,
            server,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
        self.registry.shutdown().await;
        drop(self.registry);
        self.bus.shutdown().await.unwrap();
    }

    /// Sends a request; returns the status, the content type and the body (JSON, or a string if not JSON).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req
                .header("content-type", CT)
                .body(serde_json::to_vec(&body).unwrap());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, ct, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, ct, body) = self.call(Method::GET, path, None).await;
        assert_eq!(ct, CT, "GET {path}");
        (status, body)
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let (status, ct, body) = self.call(Method::DELETE, path, None).await;
        assert_eq!(ct, CT, "DELETE {path}");
        (status, body)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, ct, body) = self.call(Method::POST, path, Some(body)).await;
        assert_eq!(ct, CT, "POST {path}");
        (status, body)
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, ct, body) = self.call(Method::PUT, path, Some(body)).await;
        assert_eq!(ct, CT, "PUT {path}");
        (status, body)
    }

    async fn register(&self, subject: &str, schema: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": schema }),
        )
        .await
    }

    async fn register_ok(&self, subject: &str, schema: &str) -> i64 {
        let (status, body) = self.register(subject, schema).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["id"].as_i64().expect("an id")
    }
}

/// Asserts a Confluent error body.
fn assert_error(got: (StatusCode, Value), status: u16, code: u64) -> String {
    let (s, body) = got;
    assert_eq!(s.as_u16(), status, "{body}");
    assert_eq!(body["error_code"], json!(code), "{body}");
    body["message"].as_str().expect("a message").to_owned()
}

fn same_json(a: &str, b: &str) -> bool {
    serde_json::from_str::<Value>(a).unwrap() == serde_json::from_str::<Value>(b).unwrap()
}

#[tokio::test]
async fn register_reuses_ids_and_serves_lookups() {
    let dir = TempDir::new().unwrap();
    let hub = Hub::start(dir.path()).await;

    let id1 = hub.register_ok(SUBJECT, V1).await;
    assert!(id1 > 0);
    // The same schema again, and written differently: same id, no new version.
    assert_eq!(hub.register_ok(SUBJECT, V1).await, id1);
    assert_eq!(hub.register_ok(SUBJECT, V1_PLAIN).await, id1);
    assert_eq!(
        hub.get(&format!("/subjects/{SUBJECT}/versions")).await,
        (StatusCode::OK, json!([1]))
    );
    // The same schema under another subject: same id.
    assert_eq!(hub.register_ok("dept.grid_event-copy", V1).await, id1);

    let id2 = hub.register_ok(SUBJECT, V2).await;
    assert_ne!(id2, id1);
    assert_eq!(
        hub.get(&format!("/subjects/{SUBJECT}/versions")).await,
        (StatusCode::OK, json!([1, 2]))
    );

    // Lookup returns the text as registered, docs and tags included.
    let (status, found) = hub
        .post(
            &format!("/subjects/{SUBJECT}"),
            json!({ "schema": V1_PLAIN }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["subject"], json!(SUBJECT));
    assert_eq!(found["id"], json!(id1));
    assert_eq!(found["version"], json!(1));
    assert_eq!(found["schema"], json!(V1));

    let (status, by_id) = hub.get(&format!("/schemas/ids/{id1}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id, json!({ "schema": V1 }));
    assert_eq!(
        hub.get(&format!("/schemas/ids/{id1}/versions")).await.1,
        json!([{"subject": "dept.grid_event-copy", "version": 1}, {"subject": SUBJECT, "version": 1}])
    );
    assert_eq!(
        hub.get(&format!("/schemas/ids/{id1}/subjects")).await.1,
        json!(["dept.grid_event-copy", SUBJECT])
    );
    assert_eq!(hub.get("/schemas/types").await.1, json!(["AVRO"]));
    assert_eq!(
        hub.get("/subjects").await.1,
        json!(["dept.grid_event-copy", SUBJECT])
    );

    let (status, latest) = hub
        .get(&format!("/subjects/{SUBJECT}/versions/latest"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (latest["version"].clone(), latest["id"].clone()),
        (json!(2), json!(id2))
    );
    assert_eq!(latest["schema"], json!(V2));
    let (_, v1) = hub.get(&format!("/subjects/{SUBJECT}/versions/1")).await;
    assert_eq!(v1["id"], json!(id1));

    // The raw schema endpoint answers the schema itself.
    let (status, ct, raw) = hub
        .call(
            Method::GET,
            &format!("/subjects/{SUBJECT}/versions/2/schema"),
            None,
        )
        .await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, CT));
    assert_eq!(raw, serde_json::from_str::<Value>(V2).unwrap());

    // The library API agrees with the HTTP one.
    assert_eq!(hub.registry.latest(SUBJECT).unwrap().id, id2 as i32);
    assert!(same_json(
        &hub.registry.schema_by_id(id1 as i32).unwrap(),
        V1
    ));
    assert_eq!(
        hub.registry
            .version(SUBJECT, VersionSpec::Number(1), false)
            .unwrap()
            .version,
        1
    );
    hub.stop().await;
}

#[tokio::test]
async fn incompatible_changes_are_refused_with_the_field_named() {
    let dir = TempDir::new().unwrap();
    let hub = Hub::start(dir.path()).await;
    hub.register_ok(SUBJECT, V1).await;
    hub.register_ok(SUBJECT, V2).await;

    let message = assert_error(hub.register(SUBJECT, V3_BAD).await, 409, 409);
    assert!(
        message.contains(&format!("subject \"{SUBJECT}\"")),
        "{message}"
    );
    assert!(
        message.contains("reader field 'priority' (type int) has no default value and is missing from the writer schema"),
        "{message}"
    );
    assert!(message.contains("version 2"), "{message}");
    assert_eq!(
        hub.get(&format!("/subjects/{SUBJECT}/versions")).await.1,
        json!([1, 2])
    );

    // The compatibility endpoints say the same without registering.
    let path = format!("/compatibility/subjects/{SUBJECT}/versions/latest");
    assert_eq!(
        hub.post(&path, json!({ "schema": V3_BAD })).await,
        (StatusCode::OK, json!({ "is_compatible": false }))
    );
    let (_, verbose) = hub
        .post(&format!("{path}?verbose=true"), json!({ "schema": V3_BAD }))
        .await;
    assert_eq!(verbose["is_compatible"], json!(false));
    assert!(
        verbose["messages"][0]
            .as_str()
            .unwrap()
            .contains("'priority'"),
        "{verbose}"
    );
    assert_eq!(
        hub.post(&path, json!({ "schema": V2 })).await.1,
        json!({ "is_compatible": true })
    );
    let (_, verbose) = hub
        .post(&format!("{path}?verbose=true"), json!({ "schema": V2 }))
        .await;
    assert_eq!(verbose, json!({ "is_compatible": true, "messages": [] }));
    assert_eq!(
        hub.post(
            &format!("/compatibility/subjects/{SUBJECT}/versions"),
            json!({ "schema": V3_BAD })
        )
        .await
        .1,
        json!({ "is_compatible": false })
    );
    // Against version 1 only (which lacks reporter_phone, but V3 gives it a default) it still fails on priority.
    assert_eq!(
        hub.post(
            &format!("/compatibility/subjects/{SUBJECT}/versions/1"),
            json!({ "schema": V3_BAD })
        )
        .await
        .1,
        json!({ "is_compatible": false })
    );
    // A subject with nothing registered accepts anything.
    assert_eq!(
        hub.post(
            "/compatibility/subjects/new-value/versions",
            json!({ "schema": V3_BAD })
        )
        .await
        .1,
        json!({ "is_compatible": true })
    );

    // With NONE on the subject, the change goes through.
    assert_eq!(
        hub.put(
            &format!("/config/{SUBJECT}"),
            json!({ "compatibility": "NONE" })
        )
        .await,
        (StatusCode::OK, json!({ "compatibility": "NONE" }))
    );
    hub.register_ok(SUBJECT, V3_BAD).await;
    assert_eq!(
        hub.get(&format!("/subjects/{SUBJECT}/versions")).await.1,
        json!([1, 2, 3])
    );
    hub.stop().await;
}

#[tokio::test]
async fn global_and_subject_config() {
    let dir = TempDir::new().unwrap();
    let hub = Hub::start(dir.path()).await;
    assert_eq!(
        hub.get("/config").await,
        (StatusCode::OK, json!({ "compatibilityLevel": "BACKWARD" }))
    );
    assert_eq!(
        hub.put("/config", json!({ "compatibility": "FULL" })).await,
        (StatusCode::OK, json!({ "compatibility": "FULL" }))
    );
    assert_eq!(
        hub.get("/config").await.1,
        json!({ "compatibilityLevel": "FULL" })
    );
    assert!(assert_error(
        hub.put("/config", json!({ "compatibility": "SIDEWAYS" }))
            .await,
        422,
        42203
    )
    .contains("SIDEWAYS"));
    assert_error(hub.put("/config", json!({})).await, 422, 42203);

    let subject_path = format!("/config/{SUBJECT}");
    assert_error(hub.get(&subject_path).await, 404, 40408);
    assert_eq!(
        hub.get(&format!("{subject_path}?defaultToGlobal=true"))
            .await
            .1,
        json!({ "compatibilityLevel": "FULL" })
    );

    // Under FULL, dropping a field without a default fails (old readers need it).
    hub.register_ok(SUBJECT, V2).await;
    let message = assert_error(hub.register(SUBJECT, DROPPED_REGION).await, 409, 409);
    assert!(message.contains("reader field 'region_code'"), "{message}");
    assert!(
        message.contains("version 1 reading data written with the new schema"),
        "{message}"
    );
    // A subject-level BACKWARD overrides the global FULL: the removal is backward compatible.
    assert_eq!(
        hub.put(&subject_path, json!({ "compatibility": "BACKWARD" }))
            .await
            .1,
        json!({ "compatibility": "BACKWARD" })
    );
    assert_eq!(
        hub.get(&subject_path).await.1,
        json!({ "compatibilityLevel": "BACKWARD" })
    );
    hub.register_ok(SUBJECT, DROPPED_REGION).await;

    assert_eq!(
        hub.delete(&subject_path).await,
        (StatusCode::OK, json!({ "compatibilityLevel": "BACKWARD" }))
    );
    assert_error(hub.get(&subject_path).await, 404, 40408);
    assert_error(hub.delete(&subject_path).await, 404, 40401);
    assert_eq!(
        hub.registry.effective_compatibility(SUBJECT),
        Compatibility::Full
    );

    assert_eq!(
        hub.delete("/config").await.1,
        json!({ "compatibilityLevel": "FULL" })
    );
    assert_eq!(
        hub.get("/config").await.1,
        json!({ "compatibilityLevel": "BACKWARD" })
    );
    hub.stop().await;
}

#[tokio::test]
async fn soft_and_permanent_deletes() {
    let dir = TempDir::new().unwrap();
    let hub = Hub::start(dir.path()).await;
    let id1 = hub.register_ok(SUBJECT, V1).await;
    let id2 = hub.register_ok(SUBJECT, V2).await;
    let versions = format!("/subjects/{SUBJECT}/versions");

    // Permanent before soft: refused.
    assert_error(
        hub.delete(&format!("{versions}/1?permanent=true")).await,
        404,
        40407,
    );
    assert_error(
        hub.delete(&format!("/subjects/{SUBJECT}?permanent=true"))
            .await,
        404,
        40405,
    );

    // Soft delete of version 1: hidden unless asked for, its id still resolves.
    assert_eq!(
        hub.delete(&format!("{versions}/1")).await,
        (StatusCode::OK, json!(1))
    );
    assert_eq!(hub.get(&versions).await.1, json!([2]));
    assert_eq!(
        hub.get(&format!("{versions}?deleted=true")).await.1,
        json!([1, 2])
    );
    assert_error(hub.get(&format!("{versions}/1")).await, 404, 40402);
    assert_eq!(
        hub.get(&format!("{versions}/1?deleted=true")).await.1["id"],
        json!(id1)
    );
    assert_error(
        hub.post(&format!("/subjects/{SUBJECT}"), json!({ "schema": V1 }))
            .await,
        404,
        40403,
    );
    assert_eq!(
        hub.post(
            &format!("/subjects/{SUBJECT}?deleted=true"),
            json!({ "schema": V1 })
        )
        .await
        .1["version"],
        json!(1)
    );
    assert_eq!(
        hub.get(&format!("/schemas/ids/{id1}")).await.0,
        StatusCode::OK
    );
    assert_error(hub.delete(&format!("{versions}/1")).await, 404, 40406);

    // Then permanent: gone, and its id with it.
    assert_eq!(
        hub.delete(&format!("{versions}/1?permanent=true")).await.1,
        json!(1)
    );
    assert_eq!(
        hub.get(&format!("{versions}?deleted=true")).await.1,
        json!([2])
    );
    assert_error(hub.get(&format!("/schemas/ids/{id1}")).await, 404, 40403);
    assert_error(
        hub.delete(&format!("{versions}/1?permanent=true")).await,
        404,
        40402,
    );

    // Soft delete of the subject.
    assert_eq!(
        hub.delete(&format!("/subjects/{SUBJECT}")).await.1,
        json!([2])
    );
    assert_eq!(hub.get("/subjects").await.1, json!([]));
    assert_eq!(hub.get("/subjects?deleted=true").await.1, json!([SUBJECT]));
    assert_error(hub.get(&versions).await, 404, 40401);
    assert_error(
        hub.delete(&format!("/subjects/{SUBJECT}")).await,
        404,
        40404,
    );

    // A soft-deleted subject can be registered again: the same schema keeps its id, in a new version.
    assert_eq!(hub.register_ok(SUBJECT, V2).await, id2);
    assert_eq!(hub.get(&versions).await.1, json!([3]));
    assert_error(
        hub.delete(&format!("/subjects/{SUBJECT}?permanent=true"))
            .await,
        404,
        40405,
    );

    // Soft, then permanent delete of the whole subject.
    assert_eq!(
        hub.delete(&format!("/subjects/{SUBJECT}")).await.1,
        json!([3])
    );
    assert_eq!(
        hub.delete(&format!("/subjects/{SUBJECT}?permanent=true"))
            .await,
        (StatusCode::OK, json!([2, 3]))
    );
    assert_eq!(hub.get("/subjects?deleted=true").await.1, json!([]));
    assert_error(
        hub.get(&format!("{versions}?deleted=true")).await,
        404,
        40401,
    );
    assert_error(
        hub.delete(&format!("/subjects/{SUBJECT}")).await,
        404,
        40401,
    );

    // Ids are never handed out again after a permanent delete.
    let id3 = hub.register_ok(SUBJECT, V1).await;
    assert!(id3 > id2, "{id3} should be above {id2}");
    hub.stop().await;
}

#[tokio::test]
async fn error_paths_answer_confluent_codes() {
    let dir = TempDir::new().unwrap();
    let hub = Hub::start(dir.path()).await;
    let id = hub.register_ok(SUBJECT, V1).await;

    let m = assert_error(hub.get("/subjects/nope/versions").await, 404, 40401);
    assert_eq!(m, "Subject 'nope' not found.");
    assert_error(hub.get("/subjects/nope/versions/1").await, 404, 40401);
    assert_error(
        hub.post("/subjects/nope", json!({ "schema": V1 })).await,
        404,
        40401,
    );
    let m = assert_error(
        hub.get(&format!("/subjects/{SUBJECT}/versions/9")).await,
        404,
        40402,
    );
    assert_eq!(m, "Version 9 not found.");
    for bad in ["0", "-2", "abc", "2147483648", "1.5"] {
        let m = assert_error(
            hub.get(&format!("/subjects/{SUBJECT}/versions/{bad}"))
                .await,
            422,
            42202,
        );
        assert!(m.contains(&format!("'{bad}'")), "{m}");
    }
    assert_eq!(
        hub.get(&format!("/subjects/{SUBJECT}/versions/-1")).await.1["id"],
        json!(id)
    );
    let m = assert_error(hub.get("/schemas/ids/999").await, 404, 40403);
    assert_eq!(m, "Schema 999 not found.");
    assert_error(hub.get("/schemas/ids/abc").await, 404, 404);
    assert_error(
        hub.post(&format!("/subjects/{SUBJECT}"), json!({ "schema": V2 }))
            .await,
        404,
        40403,
    );

    // Invalid Avro: 42201 with the parser's reason.
    let m = assert_error(
        hub.register(SUBJECT, r#"{"type":"record","name":"R"}"#)
            .await,
        422,
        42201,
    );
    assert!(
        m.starts_with("Invalid schema: ") && m.len() > "Invalid schema: ".len(),
        "{m}"
    );
    let m = assert_error(
        hub.register(SUBJECT, r#"{"type":"record","name":"1R","fields":[]}"#)
            .await,
        422,
        42201,
    );
    assert!(m.contains("'1R'"), "{m}");
    assert_error(hub.register(SUBJECT, "not json").await, 422, 42201);
    let m = assert_error(
        hub.post(
            &format!("/subjects/{SUBJECT}/versions"),
            json!({ "schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF" }),
        )
        .await,
        422,
        42201,
    );
    assert!(m.contains("PROTOBUF"), "{m}");
    assert_error(
        hub.post(
            &format!("/subjects/{SUBJECT}/versions"),
            json!({ "schema": V1, "references": [{"name": "x", "subject": "y", "version": 1}] }),
        )
        .await,
        422,
        42201,
    );
    // Explicit AVRO is fine.
    let (status, body) = hub
        .post(
            &format!("/subjects/{SUBJECT}/versions"),
            json!({ "schema": V1, "schemaType": "AVRO" }),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "id": id })));

    // Malformed bodies: 422 with what was wrong, in JSON.
    let m = assert_error(
        hub.post(
            &format!("/subjects/{SUBJECT}/versions"),
            json!({ "schema": 5 }),
        )
        .await,
        422,
        422,
    );
    assert!(m.contains("invalid type"), "{m}");
    let m = assert_error(
        hub.post(
            &format!("/subjects/{SUBJECT}/versions"),
            json!({ "schemma": V1 }),
        )
        .await,
        422,
        422,
    );
    assert!(m.contains("missing field `schema`"), "{m}");
    for ct in [
        "application/json",
        "application/vnd.schemaregistry+json",
        CT,
    ] {
        let resp = hub
            .http
            .post(format!("{}/subjects/{SUBJECT}/versions", hub.base))
            .header("content-type", ct)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{ct}");
        assert_eq!(resp.headers()["content-type"], CT);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error_code"], json!(422));
    }
    let resp = hub
        .http
        .post(format!("{}/subjects/{SUBJECT}/versions", hub.base))
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({ "schema": V1 }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = hub
        .http
        .post(format!("{}/subjects/{SUBJECT}/versions", hub.base))
        .header("content-type", "text/plain")
        .body(json!({ "schema": V1 }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], json!(415));

    // Unknown paths and methods answer JSON too.
    assert_error(hub.get("/nope").await, 404, 404);
    assert_error(hub.delete("/schemas/types").await, 405, 405);
    hub.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let hub = Hub::start(dir.path()).await;
    let id1 = hub.register_ok(SUBJECT, V1).await;
    let id2 = hub.register_ok(SUBJECT, V2).await;
    hub.register_ok("other-value", V1).await;
    hub.register_ok("gone-value", r#""string""#).await;
    hub.delete("/subjects/gone-value").await;
    hub.delete("/subjects/gone-value?permanent=true").await;
    hub.delete(&format!("/subjects/{SUBJECT}/versions/1")).await;
    hub.put("/config", json!({ "compatibility": "FULL_TRANSITIVE" }))
        .await;
    hub.put("/config/other-value", json!({ "compatibility": "NONE" }))
        .await;
    let before: Vec<Value> = vec![
        hub.get("/subjects?deleted=true").await.1,
        hub.get(&format!("/subjects/{SUBJECT}/versions?deleted=true"))
            .await
            .1,
        hub.get(&format!("/subjects/{SUBJECT}/versions")).await.1,
        hub.get(&format!("/subjects/{SUBJECT}/versions/1?deleted=true"))
            .await
            .1,
        hub.get(&format!("/subjects/{SUBJECT}/versions/latest"))
            .await
            .1,
        hub.get("/subjects/other-value/versions/1").await.1,
        hub.get(&format!("/schemas/ids/{id1}")).await.1,
        hub.get(&format!("/schemas/ids/{id2}")).await.1,
        hub.get("/config").await.1,
        hub.get("/config/other-value").await.1,
    ];
    hub.stop().await;

    let hub = Hub::start(dir.path()).await;
    let after: Vec<Value> = vec![
        hub.get("/subjects?deleted=true").await.1,
        hub.get(&format!("/subjects/{SUBJECT}/versions?deleted=true"))
            .await
            .1,
        hub.get(&format!("/subjects/{SUBJECT}/versions")).await.1,
        hub.get(&format!("/subjects/{SUBJECT}/versions/1?deleted=true"))
            .await
            .1,
        hub.get(&format!("/subjects/{SUBJECT}/versions/latest"))
            .await
            .1,
        hub.get("/subjects/other-value/versions/1").await.1,
        hub.get(&format!("/schemas/ids/{id1}")).await.1,
        hub.get(&format!("/schemas/ids/{id2}")).await.1,
        hub.get("/config").await.1,
        hub.get("/config/other-value").await.1,
    ];
    assert_eq!(before, after);
    assert_eq!(after[0], json!([SUBJECT, "other-value"]));
    assert_eq!(after[8], json!({ "compatibilityLevel": "FULL_TRANSITIVE" }));
    // New ids continue after every id ever handed out, the permanently deleted one included.
    let id4 = hub.register_ok("new-value", r#""long""#).await;
    assert_eq!(id4, 4);
    hub.stop().await;
}

/// Record `Load` with a field `f<i>` that has a default: any two are compatible both ways.
fn numbered_schema(i: usize) -> String {
    format!(
        r#"{{"type":"record","name":"Load","fields":[{{"name":"id","type":"string"}},{{"name":"f{i}","type":"int","default":0}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registries_on_one_bus_agree() {
    let dir = TempDir::new().unwrap();
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(dir.path()).unwrap());
    let a = Registry::open(bus.clone(), Compatibility::Backward)
        .await
        .unwrap();
    let b = Registry::open(bus.clone(), Compatibility::Backward)
        .await
        .unwrap();

    // Both register distinct schemas into the same subject at the same time, plus one schema in common.
    const PER_REGISTRY: usize = 12;
    let mut tasks = Vec::new();
    for (n, registry) in [a.clone(), b.clone()].into_iter().enumerate() {
        for i in 0..PER_REGISTRY {
            let registry = registry.clone();
            let schema = numbered_schema(n * PER_REGISTRY + i);
            tasks.push(tokio::spawn(async move {
                let id = registry.register("load-value", &schema).await.unwrap();
                (schema, id)
            }));
        }
        let registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            let schema = numbered_schema(999);
            let id = registry.register("load-value", &schema).await.unwrap();
            (schema, id)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    eprintln!("lost races: a={} b={}", a.lost_races(), b.lost_races());

    // One id per distinct schema, distinct schemas distinct ids.
    let mut by_schema = std::collections::HashMap::new();
    for (schema, id) in &results {
        if let Some(prev) = by_schema.insert(schema.clone(), *id) {
            assert_eq!(prev, *id, "one schema, two ids");
        }
    }
    let distinct = 2 * PER_REGISTRY + 1;
    assert_eq!(by_schema.len(), distinct);
    let mut ids: Vec<i32> = by_schema.values().copied().collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), distinct, "distinct schemas share an id");

    // Both views converge: versions 1..n without gaps, the same everywhere.
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    let versions = a.versions("load-value", false).unwrap();
    assert_eq!(versions, (1..=distinct as u32).collect::<Vec<_>>());
    assert_eq!(b.versions("load-value", false).unwrap(), versions);
    for v in versions {
        let va = a
            .version("load-value", VersionSpec::Number(v), false)
            .unwrap();
        let vb = b
            .version("load-value", VersionSpec::Number(v), false)
            .unwrap();
        assert_eq!(va, vb);
        assert_eq!(by_schema[&va.schema], va.id);
        assert_eq!(
            a.schema_by_id(va.id).unwrap(),
            b.schema_by_id(va.id).unwrap()
        );
    }
    a.shutdown().await;
    b.shutdown().await;
    assert!(!a.is_ready());
    assert!(matches!(
        a.subjects(false),
        Err(unsilo_registry::Error::NotReady)
    ));
    bus.shutdown().await.unwrap();
}

/// The prepared decoder gives what apache-avro's own `from_avro_datum` gives: with no reader, with the writer's
/// own schema as reader, and resolved from V1 to V2 (the new optional field filled with its default) — again on
/// a second record, from the prepared schema.
#[tokio::test]
async fn frames_decode_as_apache_avro_decodes_them() {
    use apache_avro::types::Value as Avro;
    use std::sync::LazyLock;
    use unsilo_registry::decode::FrameDecoder;

    static V2_SCHEMA: LazyLock<apache_avro::Schema> =
        LazyLock::new(|| apache_avro::Schema::parse_str(V2).expect("V2 parses"));
    let dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(dir.path()).unwrap());
    let registry = Registry::open(bus.clone(), Compatibility::Backward)
        .await
        .unwrap();
    let id = registry.register("decode-value", V1).await.unwrap();
    let v1 = apache_avro::Schema::parse_str(V1).unwrap();
    let decoder = FrameDecoder::new(registry.clone());
    for (event, region) in [("e-1", "610921107200"), ("e-2", "610114001002")] {
        let mut record = apache_avro::types::Record::new(&v1).unwrap();
        record.put("event_id", event);
        record.put("region_code", region);
        let body = apache_avro::to_avro_datum(&v1, record).unwrap();
        let framed = unsilo_bus::wire::encode(id as u32, &body);
        let expected = apache_avro::from_avro_datum(&v1, &mut body.as_slice(), None).unwrap();
        assert_eq!(
            decoder.decode(&framed, None).unwrap(),
            (id as u32, expected.clone())
        );
        assert_eq!(decoder.decode(&framed, Some(&v1)).unwrap().1, expected);
        let resolved =
            apache_avro::from_avro_datum(&v1, &mut body.as_slice(), Some(&*V2_SCHEMA)).unwrap();
        assert_eq!(decoder.decode_to(&framed, &V2_SCHEMA).unwrap().1, resolved);
        let Avro::Record(fields) = &resolved else {
            panic!("a record: {resolved:?}")
        };
        assert_eq!(fields.len(), 3, "resolved to V2: {fields:?}");
        // A cut record decodes (or fails) exactly as apache-avro decodes it.
        let cut = &framed[..framed.len() - 3];
        assert_eq!(
            decoder.decode(cut, None).ok().map(|(_, v)| v),
            apache_avro::from_avro_datum(&v1, &mut &body[..body.len() - 3], None).ok()
        );
    }
    assert!(decoder
        .decode(&unsilo_bus::wire::encode(9_999, b"x"), None)
        .is_err());
    bus.shutdown().await.unwrap();
}

/// With the deployment's seal, the registry applies only what a hub of the deployment wrote: a client writing the
/// topic without the seal (here, a registry opened without one) changes nothing a sealed registry serves.
#[tokio::test]
async fn a_sealed_registry_ignores_records_written_without_the_seal() {
    use unsilo_registry::{RecordSeal, RegistryOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(dir.path()).expect("bus"));
    let sealed = Registry::open_with(
        bus.clone(),
        RegistryOptions {
            seal: Some(RecordSeal::new("hub-a", [3; 32])),
            ..RegistryOptions::default()
        },
    )
    .await
    .expect("sealed registry");
    sealed
        .set_global_compatibility(Compatibility::Full)
        .await
        .expect("set");
    let outsider = Registry::open(bus.clone(), Compatibility::Backward)
        .await
        .expect("unsealed writer");
    outsider
        .set_global_compatibility(Compatibility::None)
        .await
        .expect("written");
    sealed.sync().await.expect("sync");
    assert_eq!(sealed.global_compatibility(), Compatibility::Full);
    assert_eq!(sealed.refused_records(), 1);
    // A restart replays the topic and refuses it again.
    let again = Registry::open_with(
        bus.clone(),
        RegistryOptions {
            seal: Some(RecordSeal::new("hub-b", [3; 32])),
            ..RegistryOptions::default()
        },
    )
    .await
    .expect("reopened");
    assert_eq!(again.global_compatibility(), Compatibility::Full);
    assert_eq!(again.refused_records(), 1);
}
