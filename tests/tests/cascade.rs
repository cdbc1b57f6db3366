//! The cascade (级联) and flow back (回流) from outside: three hubs — a province and two counties — and two
//! department edges, each a separate `unsilo` process on its own data directory, linked over TLS with
//! certificates from their parents' link CAs.
//!
//! - Up: the civil-affairs edge under the 汉阴 county hub polls its department's PostgreSQL table; the
//!   province's health commission requests the county's resource through the province; the county's operators
//!   decide it under the county's gates (the province's operators cannot); every row reaches the province's
//!   subscriber once, through a link to the province the test cuts and restores.
//! - Back down (回流): the 石泉 county's grid platform requests the province's grid households through its own
//!   hub; the province decides; what the province's grid platform pushes lands in the county grid platform's
//!   table.
//! - Evidence: each receipt on the receiving hub's chain names the sender's `link.send` entry (chain, position,
//!   hash), and the sender's `link.acknowledged` entry names the receipt.
//! - The parent link's state (`GET /admin/parent`, as the console shows it) and the catalogues each way.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection;
use unsilo_hub::auth::token_digest;
use unsilo_tests::api::{grid_messages, Api, AUDITOR_TOKEN, OPERATOR_TOKEN, SYSTEM_TOKEN};
use unsilo_tests::rand_suffix;
use unsilo_tests::topology::{
    count, edge_config, eventually, hub_config, pull_all, pull_every_row, pull_request, tls_files,
    trusting_client, unsilo, wait_ready, LinkProxy, Proc, POSTGRES,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// A county hub's extra configuration: its own chain id, and its parent reached at `parent_port`.
fn member_extra(hub_id: &str, parent_port: u16, province_dir: &Path, member_id: &str) -> String {
    format!(
        r#"[hub]
id = "{hub_id}"
[policy]
linked_hub_clearance = "S3"
[parent]
hub = "https://127.0.0.1:{parent_port}"
hub_ca = "{ca}"
id = "{member_id}"
report_every = "1s"
"#,
        ca = province_dir.join("ca.pem").display()
    )
}

/// Creates a PostgreSQL database for the test and returns its URL.
async fn database(name: &str) -> String {
    let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (tests/run.sh starts it)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    format!("{POSTGRES}/{name}")
}

/// A hub process started from `<dir>/hub.toml`, ready, and a client for it.
async fn start_hub(name: &str, dir: &Path, port: u16) -> (Proc, Api) {
    let mut hub = Proc::spawn(name, dir, &["serve", "--config", "hub.toml"]);
    let base = format!("https://127.0.0.1:{port}");
    let http = trusting_client(dir);
    wait_ready(&mut hub, &http, &base).await;
    (hub, Api::with_client(&base, http))
}

/// Registers `id` as a member hub at the province and returns its one-time code.
async fn register_member(province: &Api, id: &str, description: &str) -> String {
    let (s, member) = province
        .post(
            SYSTEM_TOKEN,
            "/admin/edges",
            json!({"id": id, "kind": "member_hub", "description": description}),
        )
        .await;
    assert_eq!(s, 201, "{member}");
    member["enrolment_code"].as_str().expect("code").to_owned()
}

/// The subscription `name` a linked hub's request became at the hub `api` serves, once it is filed there.
async fn filed_for_linked_hub(api: &Api, name: &str, hub: &mut Proc) -> Value {
    eventually(
        "the linked hub's request is filed at the hub that holds the data",
        Duration::from_secs(60),
        || {
            hub.assert_running();
            async move {
                let (s, v) = api.get(OPERATOR_TOKEN, "/admin/subscriptions").await;
                assert_eq!(s, 200, "{v}");
                v["subscriptions"]
                    .as_array()?
                    .iter()
                    .find(|s| s["name"] == name)
                    .cloned()
            }
        },
    )
    .await
}

/// The Control entries `action` about `subscription` on the hub `api` serves, read by its auditor.
async fn entries(api: &Api, subscription: &str, action: &str) -> Vec<Value> {
    let (s, v) = api
        .get(
            AUDITOR_TOKEN,
            &format!("/admin/audit?subscription={subscription}&limit=100000"),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["unverified_matches"], 0, "{v}");
    v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["event"]["action"] == action)
        .cloned()
        .collect()
}

/// `(chain, seq, hash)` of an entry, or of an entry reference in a detail.
fn entry_name(e: &Value) -> (String, u64, String) {
    (
        e["hub"].as_str().expect("hub").to_owned(),
        e["seq"].as_u64().expect("seq"),
        e["hash"].as_str().expect("hash").to_owned(),
    )
}

/// Checks the evidence of records `sender` released to `receiver` for one request: every receipt names one of
/// the sender's `link.send` entries, every record id the receiver took is in one, and the sender acknowledged
/// each receipt by name.
async fn evidence_cross_references(
    (sender, held_as): (&Api, &str),
    (receiver, subscription): (&Api, &str),
    taken: &HashSet<String>,
) {
    let sends: HashMap<(String, u64, String), Value> = entries(sender, held_as, "link.send")
        .await
        .into_iter()
        .map(|e| (entry_name(&e), e))
        .collect();
    let receipts = entries(receiver, subscription, "link.receive").await;
    assert!(!receipts.is_empty(), "no receipt for {subscription}");
    let mut received_ids = HashSet::new();
    for r in &receipts {
        let release = entry_name(&r["event"]["detail"]["release"]);
        let send = sends.get(&release).unwrap_or_else(|| {
            panic!("receipt {r} names {release:?}, which is no send entry of the sender")
        });
        let sent_ids: HashSet<&str> = send["event"]["detail"]["record_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for id in r["event"]["detail"]["record_ids"].as_array().expect("ids") {
            let id = id.as_str().expect("id");
            assert!(sent_ids.contains(id), "{id} received but not in {send}");
            assert!(received_ids.insert(id.to_owned()), "{id} received twice");
        }
    }
    assert!(
        taken.is_subset(&received_ids),
        "every record the subscriber got has a receipt"
    );
    let acknowledged: HashSet<(String, u64, String)> =
        entries(sender, held_as, "link.acknowledged")
            .await
            .iter()
            .map(|a| entry_name(&a["event"]["detail"]["receipt"]))
            .collect();
    for r in &receipts {
        assert!(
            acknowledged.contains(&entry_name(r)),
            "the sender's chain names receipt {r}"
        );
    }
}

/// Waits until the catalogue of linked hub `hub`, as `token`'s hub shows it, has an entry for `schema`.
async fn until_catalogued(api: &Api, token: &str, hub: &str, schema: &str) {
    eventually(
        &format!("{hub}'s catalogue with {schema} is shown"),
        Duration::from_secs(60),
        || async move {
            let (s, v) = api.get(token, "/admin/hubs/catalogue").await;
            assert_eq!(s, 200, "{v}");
            v["hubs"].as_array()?.iter().find(|c| c["hub"] == hub)?["entries"]
                .as_array()?
                .iter()
                .any(|e| e["schema"] == schema)
                .then_some(())
        },
    )
    .await;
}

/// Waits until subscription `id`, as `token` sees it, is active (the requesting hub followed the decision).
async fn until_active(api: &Api, token: &str, id: &str) {
    eventually(
        &format!("{id} follows the holder's decision"),
        Duration::from_secs(60),
        || async move {
            let (_, v) = api.get(token, &format!("/admin/subscriptions/{id}")).await;
            (v["status"] == "active").then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_flow_up_and_back_down_a_cascade_once_with_evidence_naming_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [province_dir, hanyin_dir, shiquan_dir] =
        ["province", "hanyin", "shiquan"].map(|n| dir.path().join(n));
    for d in [&province_dir, &hanyin_dir, &shiquan_dir] {
        std::fs::create_dir_all(d).expect("dir");
        tls_files(d);
    }
    let (province_port, hanyin_port, shiquan_port) = (free_port(), free_port(), free_port());

    // --- The province, its members registered; 汉阴 reaches it through a proxy the test can cut.
    hub_config(
        &province_dir,
        province_port,
        "[hub]\nid = \"shaanxi\"\n[policy]\nlinked_hub_clearance = \"S3\"\n",
    );
    let (mut province, province_api) = start_hub("province", &province_dir, province_port).await;
    let hanyin_code = register_member(&province_api, "county-hanyin", "汉阴县平台").await;
    let shiquan_code = register_member(&province_api, "county-shiquan", "石泉县平台").await;
    let proxy = LinkProxy::start(province_port).await;
    hub_config(
        &hanyin_dir,
        hanyin_port,
        &member_extra("hanyin", proxy.port, &province_dir, "county-hanyin"),
    );
    hub_config(
        &shiquan_dir,
        shiquan_port,
        &member_extra("shiquan", province_port, &province_dir, "county-shiquan"),
    );
    for (d, code) in [(&hanyin_dir, &hanyin_code), (&shiquan_dir, &shiquan_code)] {
        unsilo(
            d,
            &["parent", "enrol", "--config", "hub.toml", "--code", code],
        );
    }
    let (mut hanyin, hanyin_api) = start_hub("hanyin", &hanyin_dir, hanyin_port).await;
    let (mut shiquan, shiquan_api) = start_hub("shiquan", &shiquan_dir, shiquan_port).await;

    // --- Two department edges: civil affairs under 汉阴 (its 低保 table), the service centre under 石泉 (pushes).
    let suffix = rand_suffix();
    let dept_url = database(&format!("cascade_civil_{suffix}")).await;
    let simulate = |seed: &str, limit: &str| {
        unsilo(
            &hanyin_dir,
            &[
                "simulate",
                "--rate",
                "400",
                "--limit",
                limit,
                "--malformed",
                "0",
                "--seed",
                seed,
                "dept-sql",
                "--postgres-url",
                &dept_url,
            ],
        );
    };
    simulate("21", "40");
    let edge_push_port = free_port();
    let edge_push_token = "shiquan-service-centre-push-token-3f9a";
    let edges = [
        (
            &hanyin_dir,
            &hanyin_api,
            hanyin_port,
            ("civil-edge", String::new()),
            "civil-dibao",
            "builtin:dept-sql",
            format!(
                "transport = \"sql_poll\"\n[connectors.sql_poll]\nurl = \"{dept_url}\"\ntable = \"mz_dbdx\"\ncursor_column = \"gxsj\"\nid_column = \"id\"\npoll_interval = \"200ms\"\n"
            ),
        ),
        (
            &shiquan_dir,
            &shiquan_api,
            shiquan_port,
            ("service-edge", format!("listen = \"127.0.0.1:{edge_push_port}\"")),
            "qinwuyuan",
            "builtin:qinwuyuan",
            format!(
                "transport = \"http_push\"\n[connectors.http_push]\ntoken_sha256 = \"{}\"\n",
                token_digest(edge_push_token)
            ),
        ),
    ];
    let mut edge_procs = Vec::new();
    for (d, api, port, (id, extra), connector, definition, body) in edges {
        let (s, node) = api
            .post(
                SYSTEM_TOKEN,
                "/admin/edges",
                json!({"id": id, "description": "部门前置机"}),
            )
            .await;
        assert_eq!(s, 201, "{node}");
        edge_config(d, (id, &extra), port, connector, &body);
        let config = format!("{id}.toml");
        unsilo(
            d,
            &[
                "edge",
                "--config",
                &config,
                "enrol",
                "--code",
                node["enrolment_code"].as_str().expect("code"),
            ],
        );
        let base = format!("https://127.0.0.1:{port}");
        unsilo(
            d,
            &[
                "edges",
                "--hub",
                &base,
                "--ca-file",
                "ca.pem",
                "--token",
                SYSTEM_TOKEN,
                "push",
                id,
                connector,
                definition,
            ],
        );
        edge_procs.push(Proc::spawn(id, d, &["edge", "--config", &config]));
    }
    let mut civil_edge = edge_procs.remove(0);

    // --- The province sees 汉阴's catalogue; its health commission asks for the 低保 roster there.
    let health = province_api
        .agency("health", "陕西省卫生健康委员会", "116109210160500883", "S3")
        .await;
    until_catalogued(&province_api, &health, "county-hanyin", "dept_record").await;
    let (s, member) = province_api
        .get(SYSTEM_TOKEN, "/admin/edges/county-hanyin")
        .await;
    assert_eq!(s, 200, "{member}");
    assert_eq!(
        (&member["kind"], &member["state"]),
        (&json!("member_hub"), &json!("enrolled")),
        "{member}"
    );
    assert!(member["catalogue_entries"].as_u64() > Some(0), "{member}");
    let mut roster = pull_request(
        ("dibao-roster", "dept_record"),
        &[
            ("record_key", "clear"),
            ("table_name", "clear"),
            ("operation", "clear"),
        ],
        ("低保对象医疗救助衔接", "《社会救助暂行办法》"),
    );
    // The rows the edge read before the decision are history: asked for too.
    roster["backfill_from"] = json!("2020-01-01T00:00:00+08:00");
    let (s, refused) = province_api
        .post(
            &health,
            "/admin/hubs/county-nowhere/subscriptions",
            roster.clone(),
        )
        .await;
    assert_eq!(s, 404, "an unknown hub is named: {refused}");
    let (s, filed) = province_api
        .post(&health, "/admin/hubs/county-hanyin/subscriptions", roster)
        .await;
    assert_eq!(s, 201, "{filed}");
    assert_eq!(filed["subscription"]["status"], "requested", "{filed}");
    assert_eq!(filed["subscription"]["held_at"]["hub"], "county-hanyin");
    let (s, not_here) = province_api
        .post(
            OPERATOR_TOKEN,
            "/admin/subscriptions/health.dibao-roster/approve",
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "decided where the data is held: {not_here}");

    // --- 汉阴 decides it, under its own gates; the province's agency is represented there, without credentials.
    let held = filed_for_linked_hub(&hanyin_api, "dibao-roster", &mut hanyin).await;
    let held_id = held["id"].as_str().expect("id").to_owned();
    let proxy_agency = held["agency"].as_str().expect("agency").to_owned();
    let (s, agency) = hanyin_api
        .get(OPERATOR_TOKEN, &format!("/admin/agencies/{proxy_agency}"))
        .await;
    assert_eq!(s, 200, "{agency}");
    assert_eq!(
        agency["linked"],
        json!({"hub": "parent", "agency": "health"}),
        "{agency}"
    );
    let (s, no_token) = hanyin_api
        .post(
            SYSTEM_TOKEN,
            &format!("/admin/agencies/{proxy_agency}/tokens"),
            json!({}),
        )
        .await;
    assert!(
        s == 409 || s == 403,
        "a linked agency gets no credentials: {s} {no_token}"
    );
    let (s, approved) = hanyin_api.approve(&held_id, json!({})).await;
    assert_eq!(s, 200, "{approved}");
    until_active(&province_api, &health, "health.dibao-roster").await;

    // --- Every row of the department's table reaches the province's subscriber.
    let mut received = Vec::new();
    let rows = count(&dept_url, "SELECT count(*) FROM mz_dbdx").await;
    pull_every_row(
        &province_api,
        &health,
        "health.dibao-roster",
        rows,
        &mut received,
        &mut hanyin,
    )
    .await;

    // --- The county's link to the province is cut while the department keeps changing; then restored.
    proxy.cut();
    simulate("22", "60");
    let cut_at = Instant::now();
    while !hanyin.log().contains("is down") && !hanyin.log().contains("failed; it is tried again") {
        hanyin.assert_running();
        assert!(
            cut_at.elapsed() < Duration::from_secs(60),
            "汉阴 never noticed the cut:\n{}",
            hanyin.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    received.extend(pull_all(&province_api, &health, "health.dibao-roster").await);
    proxy.restore();
    let rows = count(&dept_url, "SELECT count(*) FROM mz_dbdx").await;
    pull_every_row(
        &province_api,
        &health,
        "health.dibao-roster",
        rows,
        &mut received,
        &mut civil_edge,
    )
    .await;
    let mut taken_up = HashSet::new();
    for r in &received {
        let id = r["record_id"].as_str().expect("record id");
        assert!(
            taken_up.insert(id.to_owned()),
            "record {id} reached the province twice"
        );
    }
    let keys: BTreeSet<&str> = received
        .iter()
        .filter_map(|r| r["record"]["record_key"].as_str())
        .collect();
    assert_eq!(keys.len() as i64, rows, "every row, once");
    let parent = eventually(
        "汉阴's parent link is up again",
        Duration::from_secs(30),
        || {
            let api = &hanyin_api;
            async move {
                let (s, v) = api.get(SYSTEM_TOKEN, "/admin/parent").await;
                assert_eq!(s, 200, "{v}");
                (v["state"] == "linked" && v["records_up"].as_u64() >= Some(1)).then_some(v)
            }
        },
    )
    .await;
    assert_eq!(parent["parent_id"], "shaanxi", "{parent}");
    assert_eq!(parent["requests_from_parent"], 1, "{parent}");
    evidence_cross_references(
        (&hanyin_api, &held_id),
        (&province_api, "health.dibao-roster"),
        &taken_up,
    )
    .await;

    // --- 回流: 石泉's grid platform asks for the province's grid households; the province decides.
    let grid_db = database(&format!("cascade_grid_{suffix}")).await;
    let grid = shiquan_api
        .agency(
            "grid-platform",
            "石泉县网格化服务管理中心",
            "11610921016050046Q",
            "S3",
        )
        .await;
    until_catalogued(&shiquan_api, &grid, "parent", "household").await;
    let mut back = pull_request(
        ("province-households", "household"),
        &[("care_level", "clear"), ("village_code", "clear")],
        ("网格员入户走访", "《陕西省网格化服务管理办法》"),
    );
    back["channel"] = json!({"kind": "sql", "url": grid_db, "table": "shengji_household"});
    // Filed with the CLI, as an agency's operator would.
    std::fs::write(shiquan_dir.join("back.json"), back.to_string()).expect("request file");
    let filed: Value = serde_json::from_str(&unsilo(
        &shiquan_dir,
        &[
            "subscription",
            "--hub",
            &format!("https://127.0.0.1:{shiquan_port}"),
            "--ca-file",
            "ca.pem",
            "--token",
            &grid,
            "request",
            "--held-at",
            "parent",
            "back.json",
        ],
    ))
    .expect("json");
    assert_eq!(filed["subscription"]["held_at"]["hub"], "parent", "{filed}");
    let at_province =
        filed_for_linked_hub(&province_api, "province-households", &mut province).await;
    let at_province_id = at_province["id"].as_str().expect("id").to_owned();
    assert_eq!(at_province["agency"], "county-shiquan-grid-platform");
    let (s, approved) = province_api.approve(&at_province_id, json!({})).await;
    assert_eq!(s, 200, "{approved}");
    until_active(&shiquan_api, &grid, "grid-platform.province-households").await;
    let mut pushed = Vec::new();
    for i in 0..5 {
        let (red, green, _) = grid_messages((suffix % 10_000_000) * 10 + i);
        pushed.push(red);
        pushed.push(green);
    }
    province_api
        .push_grid(&pushed.iter().collect::<Vec<_>>())
        .await;
    let want = pushed.len();
    let landed = eventually(
        "the province's households land in 石泉's grid table",
        Duration::from_secs(90),
        || {
            shiquan.assert_running();
            let url = grid_db.clone();
            async move {
                let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT record_id FROM shengji_household")
                        .fetch_all(&mut c)
                        .await
                        .ok()?;
                (rows.len() >= want).then_some(rows)
            }
        },
    )
    .await;
    let taken_down: HashSet<String> = landed.into_iter().map(|(id,)| id).collect();
    assert_eq!(taken_down.len(), want, "each household once");
    evidence_cross_references(
        (&province_api, &at_province_id),
        (&shiquan_api, "grid-platform.province-households"),
        &taken_down,
    )
    .await;

    // --- The second edge, under 石泉, takes its service centre's pushes and forwards them to its hub.
    let mut service_edge = edge_procs.remove(0);
    // The county's 秦务员 service centre (the simulator) pushes to its edge and takes its 202 (durable at the
    // edge) as accepted.
    unsilo(
        &shiquan_dir,
        &[
            "simulate",
            "--rate",
            "50",
            "--limit",
            "5",
            "--malformed",
            "0",
            "qinwuyuan",
            "--hub",
            &format!("http://127.0.0.1:{edge_push_port}"),
            "--token",
            edge_push_token,
        ],
    );
    eventually(
        "石泉's edge forwards what its department pushed",
        Duration::from_secs(60),
        || {
            service_edge.assert_running();
            let api = &shiquan_api;
            async move {
                let (_, v) = api.get(SYSTEM_TOKEN, "/admin/edges/service-edge").await;
                let c = v["report"]["connectors"][0].clone();
                (c["forwarded"].as_u64() >= Some(5) && c["waiting"] == 0).then_some(())
            }
        },
    )
    .await;
    for p in [&mut province, &mut hanyin, &mut shiquan, &mut civil_edge] {
        p.assert_running();
    }
}
