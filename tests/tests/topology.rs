//! The national topology from outside, as separate processes on one machine: a hub (`unsilo serve`, TLS) and
//! two department edge nodes (`unsilo edge`), each on its own data directory, the edges reaching the hub only
//! through a TCP proxy the test can cut.
//!
//! - The civil-affairs edge polls its department's PostgreSQL table (`mz_dbdx`); the public-security edge
//!   watches a folder of GBK CSV rosters. Both enrol with one-time codes and run the definitions the hub's
//!   operator pushed (signed).
//! - A health-commission subscription on the hub receives every row of the department's table, once.
//! - The link is cut while the department's table keeps changing; the edge buffers; restored, it resumes from
//!   the hub's acknowledged position: every row arrives, none twice (record ids checked, and the hub wrote
//!   exactly as many originals as the edge read).
//! - The civil-affairs edge also delivers the department's own subscription (households the grid platform
//!   pushed to the hub) into a table of the department's database.
//! - The console's edge list and `GET /admin/edges` show both edges with their counts.
//!
//! The `unsilo` binary is the one cargo built beside this test (`target/<profile>/unsilo`).

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection;
use unsilo_hub::auth::token_digest;
use unsilo_tests::api::{grid_messages, Api, AUDITOR_TOKEN, OPERATOR_TOKEN, SYSTEM_TOKEN};
use unsilo_tests::rand_suffix;
use unsilo_tests::topology::{
    count, edge_config, eventually, hub_config, pull_all, pull_every_row, pull_request, tls_files,
    unsilo, wait_ready, LinkProxy, Proc, POSTGRES,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_forward_through_a_cut_link_losing_and_repeating_nothing_and_deliver_locally() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    tls_files(d);
    let hub_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    hub_config(d, hub_port, "");
    let mut hub = Proc::spawn("hub", d, &["serve", "--config", "hub.toml"]);
    let base = format!("https://127.0.0.1:{hub_port}");
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(d.join("ca.pem")).expect("ca"))
                .expect("pem"),
        )
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    wait_ready(&mut hub, &http, &base).await;
    let api = Api::with_client(&base, http.clone());
    let proxy = LinkProxy::start(hub_port).await;

    // --- The department's database: the 低保 roster the civil-affairs edge polls.
    let suffix = rand_suffix();
    let db = format!("edge_civil_{suffix}");
    {
        let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (tests/run.sh starts it)");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await
            .expect("create database");
    }
    let dept_url = format!("{POSTGRES}/{db}");
    unsilo(
        d,
        &[
            "simulate",
            "--rate",
            "400",
            "--limit",
            "60",
            "--malformed",
            "0",
            "--seed",
            "11",
            "dept-sql",
            "--postgres-url",
            &dept_url,
        ],
    );

    // --- The hub's operator registers both edges; a wrong code is refused, a used code cannot be used again.
    let (s, civil) = api
        .post(
            SYSTEM_TOKEN,
            "/admin/edges",
            json!({"id": "civil-edge", "organisation": "civil-affairs", "description": "民政局前置机"}),
        )
        .await;
    assert_eq!(s, 201, "{civil}");
    let civil_code = civil["enrolment_code"].as_str().expect("code").to_owned();
    let (s, police) = api
        .post(
            SYSTEM_TOKEN,
            "/admin/edges",
            json!({"id": "police-edge", "description": "公安局前置机"}),
        )
        .await;
    assert_eq!(s, 201, "{police}");
    let police_code = police["enrolment_code"].as_str().expect("code").to_owned();
    let (s, _) = api
        .post(OPERATOR_TOKEN, "/admin/edges", json!({"id": "nope"}))
        .await;
    assert_eq!(s, 403, "only the system administrator registers edges");
    let wrong = http
        .post(format!("{base}/link/v1/enrol"))
        .json(&json!({"edge": "civil-edge", "code": "AAAAA-AAAAA-AAAAA-AAAAA", "csr_pem": "x"}))
        .send()
        .await
        .expect("enrol");
    assert_eq!(wrong.status().as_u16(), 401, "a wrong code is refused");

    // --- The departments: their agencies, and the civil-affairs subscription delivered at its edge.
    let civil_token = api
        .agency("civil-affairs", "汉阴县民政局", "11610921016050037T", "S3")
        .await;
    let health_token = api
        .agency("health", "汉阴县卫生健康局", "116109210160500883", "S3")
        .await;
    std::fs::write(d.join("civil.token"), &civil_token).expect("token file");
    let police_token = api
        .agency(
            "public-security",
            "汉阴县公安局",
            "11610921016050046Q",
            "S3",
        )
        .await;
    std::fs::write(d.join("police.token"), &police_token).expect("token file");
    let (folder_sub, _) = api
        .subscribe_approved(
            &police_token,
            "public-security",
            pull_request(
                ("households-inbox", "household"),
                &[("care_level", "clear"), ("village_code", "clear")],
                ("重点户走访", "《人民警察法》"),
            ),
            json!({}),
        )
        .await;
    let (local_sub, _) = api
        .subscribe_approved(
            &civil_token,
            "civil-affairs",
            pull_request(
                ("households-back", "household"),
                &[
                    ("head_cert_no", "pseudonymise"),
                    ("care_level", "clear"),
                    ("village_code", "clear"),
                ],
                ("连心户走访帮扶", "《社会救助暂行办法》"),
            ),
            json!({"approve_above_clearance": ["head_cert_no"]}),
        )
        .await;
    let (roster_sub, _) = api
        .subscribe_approved(
            &health_token,
            "health",
            pull_request(
                ("dibao-roster", "dept_record"),
                &[
                    ("record_key", "clear"),
                    ("table_name", "clear"),
                    ("operation", "clear"),
                ],
                ("低保对象医疗救助衔接", "《社会救助暂行办法》"),
            ),
            json!({}),
        )
        .await;

    // --- Edge configurations, enrolment (their own keys, certificates from the hub's link CA), definitions.
    let drop_dir = d.join("police-drop");
    std::fs::create_dir_all(&drop_dir).expect("drop dir");
    edge_config(
        d,
        ("civil-edge", ""),
        proxy.port,
        "civil-dibao",
        &format!(
            r#"transport = "sql_poll"
[connectors.sql_poll]
url = "{dept_url}"
table = "mz_dbdx"
cursor_column = "gxsj"
id_column = "id"
poll_interval = "200ms"
[[deliveries]]
subscription = "{local_sub}"
token_file = "civil.token"
[deliveries.sql]
url = "{dept_url}"
table = "jh_household"
"#
        ),
    );
    let push_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let edge_push_token = "police-grid-push-token-at-the-edge-7c1d";
    edge_config(
        d,
        (
            "police-edge",
            &format!("listen = \"127.0.0.1:{push_port}\""),
        ),
        proxy.port,
        "police-rosters",
        &format!(
            r#"transport = "file_drop"
[connectors.file_drop]
dir = "{}"
encoding = "gbk"
poll_interval = "200ms"
[[connectors]]
name = "police-grid"
transport = "http_push"
[connectors.http_push]
token_sha256 = "{}"
[[deliveries]]
subscription = "{folder_sub}"
token_file = "police.token"
[deliveries.folder]
path = "police-inbox"
"#,
            drop_dir.display(),
            token_digest(edge_push_token)
        ),
    );
    unsilo(
        d,
        &[
            "edge",
            "--config",
            "civil-edge.toml",
            "enrol",
            "--code",
            &civil_code,
        ],
    );
    unsilo(
        d,
        &[
            "edge",
            "--config",
            "police-edge.toml",
            "enrol",
            "--code",
            &police_code,
        ],
    );
    let reuse = http
        .post(format!("{base}/link/v1/enrol"))
        .json(&json!({"edge": "civil-edge", "code": civil_code, "csr_pem": "x"}))
        .send()
        .await
        .expect("enrol");
    assert_eq!(reuse.status().as_u16(), 401, "a used code is refused");
    let hub_arg = [
        "--hub",
        base.as_str(),
        "--ca-file",
        "ca.pem",
        "--token",
        SYSTEM_TOKEN,
    ];
    let pushed: Value = serde_json::from_str(&unsilo(
        d,
        &[
            &["edges"][..],
            &hub_arg,
            &["push", "civil-edge", "civil-dibao", "builtin:dept-sql"],
        ]
        .concat(),
    ))
    .expect("json");
    assert_eq!(pushed["version"], 1, "{pushed}");
    assert!(
        pushed["signature"].as_str().is_some_and(|s| s.len() > 60),
        "{pushed}"
    );
    unsilo(
        d,
        &[
            &["edges"][..],
            &hub_arg,
            &["push", "police-edge", "police-rosters", "builtin:dept-file"],
        ]
        .concat(),
    );
    unsilo(
        d,
        &[
            &["edges"][..],
            &hub_arg,
            &["push", "police-edge", "police-grid", "builtin:grid"],
        ]
        .concat(),
    );
    let (s, clash) = api
        .call(
            reqwest::Method::PUT,
            SYSTEM_TOKEN,
            "/admin/edges/police-edge/connectors/civil-dibao",
            Some(json!({"files": {"connector.toml": "x"}})),
        )
        .await;
    assert_eq!(s, 422, "one connector name, one place: {clash}");

    let mut civil_edge = Proc::spawn("civil-edge", d, &["edge", "--config", "civil-edge.toml"]);
    let mut police_edge = Proc::spawn("police-edge", d, &["edge", "--config", "police-edge.toml"]);
    unsilo(
        d,
        &[
            "simulate",
            "--rate",
            "400",
            "--limit",
            "40",
            "--malformed",
            "0",
            "--seed",
            "12",
            "dept-file",
            "--dir",
            drop_dir.to_str().expect("path"),
        ],
    );

    // --- Every row of the department's table reaches the health commission through the hub.
    let rows = count(&dept_url, "SELECT count(*) FROM mz_dbdx").await;
    let mut received = Vec::new();
    pull_every_row(
        &api,
        &health_token,
        &roster_sub,
        rows,
        &mut received,
        &mut civil_edge,
    )
    .await;

    // --- The link is cut; the department's table keeps changing; the edge keeps reading into its buffer.
    proxy.cut();
    unsilo(
        d,
        &[
            "simulate",
            "--rate",
            "400",
            "--limit",
            "80",
            "--malformed",
            "0",
            "--seed",
            "13",
            "dept-sql",
            "--postgres-url",
            &dept_url,
        ],
    );
    let cut_at = Instant::now();
    while !civil_edge.log().contains("The link to the hub is down") {
        civil_edge.assert_running();
        assert!(
            cut_at.elapsed() < Duration::from_secs(60),
            "the edge never noticed the cut:\n{}",
            civil_edge.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The link stays down a while longer: the edge keeps reading into its buffer meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = pull_all(&api, &health_token, &roster_sub).await;
    proxy.restore();

    // --- Restored: every row arrives, and no record id arrives twice.
    let rows = count(&dept_url, "SELECT count(*) FROM mz_dbdx").await;
    received.extend(during);
    pull_every_row(
        &api,
        &health_token,
        &roster_sub,
        rows,
        &mut received,
        &mut civil_edge,
    )
    .await;
    let mut ids = HashSet::new();
    for r in &received {
        let id = r["record_id"].as_str().expect("record id");
        assert!(ids.insert(id.to_owned()), "record {id} delivered twice");
    }

    // --- The hub's view of the edges: enrolled, counts that add up, nothing written twice.
    let civil_view = eventually(
        "the civil edge's report catches up",
        Duration::from_secs(30),
        || {
            let api = &api;
            async move {
                let (_, v) = api.get(SYSTEM_TOKEN, "/admin/edges/civil-edge").await;
                let c = v["report"]["connectors"][0].clone();
                (c["waiting"] == 0
                    && c["read"].as_u64() > Some(0)
                    && c["read"] == c["forwarded"]
                    && c["read"] == v["acknowledged"]["civil-dibao"]["next_offset"])
                    .then_some(v)
            }
        },
    )
    .await;
    assert_eq!(civil_view["state"], "enrolled", "{civil_view}");
    let read = civil_view["report"]["connectors"][0]["read"]
        .as_u64()
        .expect("read");
    assert_eq!(
        civil_view["acknowledged"]["civil-dibao"]["next_offset"], read,
        "the hub acknowledged exactly what the edge read: {civil_view}"
    );
    assert_eq!(
        civil_view["report"]["connectors"][0]["definition_version"],
        1
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(SYSTEM_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let ingested: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("unsilo_ingest_records_total{connector=\"civil-dibao\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        ingested, read,
        "the hub normalised each original the edge read once"
    );
    assert!(
        metrics.contains("unsilo_edge_buffer_alarm{edge=\"civil-edge\"} 0"),
        "operators can alert on the edges' buffers"
    );
    let public = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        !public.contains("civil-edge"),
        "an anonymous caller does not learn the edges"
    );
    let police_view = eventually(
        "the police edge forwards its rosters",
        Duration::from_secs(60),
        || {
            let api = &api;
            async move {
                let (_, v) = api.get(SYSTEM_TOKEN, "/admin/edges/police-edge").await;
                let c = v["report"]["connectors"][0].clone();
                (c["read"].as_u64() >= Some(40) && c["waiting"] == 0).then_some(v)
            }
        },
    )
    .await;
    police_edge.assert_running();
    assert_eq!(police_view["state"], "enrolled", "{police_view}");

    // --- A department system pushes to its edge, inside its own network, with its token.
    let edge_push = format!("http://127.0.0.1:{push_port}/ingest/police-grid");
    let plain = reqwest::Client::new();
    let (_, _, event) = grid_messages((suffix % 10_000_000) * 10 + 9);
    let r = plain
        .post(&edge_push)
        .bearer_auth("wrong-token")
        .json(&json!([event]))
        .send()
        .await
        .expect("push");
    assert_eq!(
        r.status().as_u16(),
        401,
        "a wrong token is refused at the edge"
    );
    let r = plain
        .post(&edge_push)
        .bearer_auth(edge_push_token)
        .json(&json!([event]))
        .send()
        .await
        .expect("push");
    assert_eq!(
        r.status().as_u16(),
        202,
        "{}\n{}",
        r.text().await.unwrap_or_default(),
        police_edge.log()
    );
    eventually(
        "the pushed event reaches the hub",
        Duration::from_secs(30),
        || {
            let api = &api;
            async move {
                let (_, v) = api.get(SYSTEM_TOKEN, "/admin/edges/police-edge").await;
                let next = v["acknowledged"]["police-grid"]["next_offset"].as_u64();
                (next == Some(1)).then_some(())
            }
        },
    )
    .await;

    // --- Local delivery: the households the grid platform pushes reach the department's own table.
    let mut pushed = Vec::new();
    for i in 0..3 {
        let (red, green, _) = grid_messages((suffix % 10_000_000) * 10 + i);
        pushed.push(red);
        pushed.push(green);
    }
    api.push_grid(&pushed.iter().collect::<Vec<_>>()).await;
    let delivered = eventually(
        "households land in the department's table",
        Duration::from_secs(60),
        || {
            let url = dept_url.clone();
            async move {
                let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jh_household")
                    .fetch_one(&mut c)
                    .await
                    .ok()?;
                (n >= 6).then_some(n)
            }
        },
    )
    .await;
    assert_eq!(delivered, 6, "each household once");
    let cert: i64 = count(
        &dept_url,
        "SELECT count(*) FROM jh_household WHERE head_cert_no LIKE '61%'",
    )
    .await;
    assert_eq!(cert, 0, "ID numbers arrive pseudonymised, as granted");
    let inbox = d.join("police-inbox");
    let in_files = eventually(
        "households land in the police inbox",
        Duration::from_secs(60),
        || {
            let inbox = inbox.clone();
            async move {
                let mut ids = BTreeSet::new();
                for entry in std::fs::read_dir(&inbox).ok()? {
                    let path = entry.ok()?.path();
                    if path.extension().is_some_and(|e| e == "jsonl") {
                        for line in std::fs::read_to_string(&path).ok()?.lines() {
                            let v: Value = serde_json::from_str(line).ok()?;
                            assert!(
                                v["record"]["head_cert_no"].is_null(),
                                "only the granted fields: {v}"
                            );
                            ids.insert(v["record_id"].as_str()?.to_owned());
                        }
                    }
                }
                (ids.len() >= 6).then_some(ids)
            }
        },
    )
    .await;
    assert_eq!(
        in_files.len(),
        6,
        "each household once, in JSON-lines files"
    );

    // --- The link protocol, spoken directly as a third edge: a batch sent twice is written once, a gap is
    // refused naming the expected offset, a revoked edge's certificate is refused.
    let (s, probe) = api
        .post(SYSTEM_TOKEN, "/admin/edges", json!({"id": "probe-edge"}))
        .await;
    assert_eq!(s, 201, "{probe}");
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    let (s, enrolled) = api
        .post(
            "",
            "/link/v1/enrol",
            json!({"edge": "probe-edge", "code": probe["enrolment_code"], "csr_pem": csr}),
        )
        .await;
    assert_eq!(s, 200, "{enrolled}");
    assert!(enrolled["hub_public_key"]
        .as_str()
        .is_some_and(|k| !k.is_empty()));
    let identity = format!(
        "{}\n{}",
        enrolled["certificate_pem"].as_str().expect("certificate"),
        key.serialize_pem()
    );
    let as_probe = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(d.join("ca.pem")).expect("ca"))
                .expect("pem"),
        )
        .identity(reqwest::Identity::from_pem(identity.as_bytes()).expect("identity"))
        .build()
        .expect("client");
    unsilo(
        d,
        &[
            &["edges"][..],
            &hub_arg,
            &["push", "probe-edge", "probe-grid", "builtin:grid"],
        ]
        .concat(),
    );
    let (_, _, event) = grid_messages((suffix % 10_000_000) * 10 + 8);
    let record = |offset: u64| {
        json!({
            "offset": offset,
            "original_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, event.to_string()),
            "parsed": event,
            "origin": "probe",
            "read_at_ms": 0
        })
    };
    let send = |records: Vec<Value>| {
        let as_probe = as_probe.clone();
        let url = format!("{base}/link/v1/batches");
        async move {
            let body = serde_json::to_vec(
                &json!({"connector": "probe-grid", "buffer": "b1", "records": records}),
            )
            .expect("json");
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut gz, &body).expect("gzip");
            let r = as_probe
                .post(url)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(gz.finish().expect("gzip"))
                .send()
                .await
                .expect("batch");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, first) = send(vec![record(0), record(1)]).await;
    assert_eq!(
        (s, &first["written"], &first["next_offset"]),
        (200, &json!(2), &json!(2)),
        "{first}"
    );
    let (s, again) = send(vec![record(0), record(1)]).await;
    assert_eq!(
        (s, &again["written"], &again["next_offset"]),
        (200, &json!(0), &json!(2)),
        "sent twice, written once: {again}"
    );
    let (s, gap) = send(vec![record(5)]).await;
    assert_eq!(s, 409, "{gap}");
    assert!(
        gap["message"]
            .as_str()
            .is_some_and(|m| m.contains("send from 2")),
        "{gap}"
    );
    let r = as_probe
        .post(format!("{base}/link/v1/batches"))
        .header("content-encoding", "gzip")
        .body("not gzip")
        .send()
        .await
        .expect("batch");
    assert_eq!(
        r.status().as_u16(),
        422,
        "a body that does not decompress is refused"
    );
    let (s, _) = api.get(OPERATOR_TOKEN, "/link/v1/positions").await;
    assert_eq!(s, 403, "an operator is not an edge");
    let anonymous = http
        .get(format!("{base}/link/v1/positions"))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status().as_u16(), 401);
    let (s, _) = api
        .post(SYSTEM_TOKEN, "/admin/edges/probe-edge/revoke", json!({}))
        .await;
    assert_eq!(s, 200);
    let revoked = as_probe
        .get(format!("{base}/link/v1/positions"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        revoked.status().as_u16(),
        401,
        "a revoked edge's certificate is refused"
    );

    // --- Operators list every node (the revoked probe too); agencies do not.
    let (s, list) = api.get(AUDITOR_TOKEN, "/admin/edges").await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["edges"].as_array().map(Vec::len), Some(3), "{list}");
    let (s, _) = api.get(&civil_token, "/admin/edges").await;
    assert_eq!(s, 403, "agencies do not see the edges");

    drop(civil_edge);
    drop(police_edge);
    drop(hub);
    let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
        .await
        .expect("connect");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .ok();
}
