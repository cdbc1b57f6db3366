//! 三员分立 from outside: every route of the hub's live OpenAPI document, called over a real socket as every kind of
//! principal — anonymous, an agency, a push source, and an operator of each role — answers as the role matrix
//! (`unsilo_hub::roles::MATRIX`) says: 401 without credentials, 403 where the matrix says no, and anything but
//! 401/403 where it says yes (the call itself may then fail on its made-up ids or empty body: 400, 404, 422).

use reqwest::Method;
use serde_json::{json, Value};
use unsilo_hub::auth::{Principal, Role};
use unsilo_hub::roles::{self, Action};
use unsilo_tests::api::{
    with_generous_limits, with_grid_and_operator, Api, AUDITOR_TOKEN, OPERATOR_TOKEN, PUSH_TOKEN,
    SYSTEM_TOKEN,
};
use unsilo_tests::{embedded_config, RunningHub};

/// Routes that answer anyone by design — and an edge's enrolment, whose one-time code (in its body) is the
/// credential, as a sign-in's is.
const OPEN: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/link/v1/enrol"];

/// A concrete path for a templated one: ids nobody has (so an allowed call finds nothing and changes nothing),
/// but subjects each caller may read, and the push source's own connector.
fn concrete(path: &str, action: Action) -> String {
    let subject = if action == Action::WriteSchemas {
        "ops.role-probe-value"
    } else {
        "std.grid_event-value"
    };
    path.replace("{connector}", "grid")
        .replace("{subject}", subject)
        .replace("{version}", "1")
        .replace("{token_id}", "tok_00000000")
        .replace("{name}", "grid")
        .replace(
            "{id}",
            if path.starts_with("/schemas/ids") {
                "1"
            } else {
                "nobody.none"
            },
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_principal_as_the_role_matrix_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = with_grid_and_operator(embedded_config(dir.path()));
    // The grid platform may ask for person reports, so the push-source column is exercised where it says yes.
    for c in &mut config.connectors {
        if let Some(push) = &mut c.http_push {
            push.report = true;
        }
    }
    let running = RunningHub::start(&with_generous_limits(config)).await;
    let api = Api::new(&running.base);
    let agency_token = api
        .agency("civil-affairs", "民政局", "11610921016050037T", "S3")
        .await;

    let principals: Vec<(&str, Option<Principal>, Option<String>)> = vec![
        ("anonymous", None, None),
        (
            "agency",
            Some(Principal::Agency("civil-affairs".into())),
            Some(agency_token.clone()),
        ),
        (
            "push source",
            Some(Principal::PushSource("grid".into())),
            Some(PUSH_TOKEN.into()),
        ),
        (
            "system",
            Some(Principal::Operator {
                name: "sysadmin".into(),
                role: Role::System,
            }),
            Some(SYSTEM_TOKEN.into()),
        ),
        (
            "security",
            Some(Principal::Operator {
                name: "ops".into(),
                role: Role::Security,
            }),
            Some(OPERATOR_TOKEN.into()),
        ),
        (
            "audit",
            Some(Principal::Operator {
                name: "auditor".into(),
                role: Role::Audit,
            }),
            Some(AUDITOR_TOKEN.into()),
        ),
    ];

    let doc: Value = reqwest::Client::new()
        .get(format!("{}/openapi.json", running.base))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client");
    let mut checked = 0;
    let mut wrong = Vec::new();
    let mut described = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().expect("operations").keys() {
            let method: Method = method.to_ascii_uppercase().parse().expect("method");
            described.push((method.to_string(), path.clone()));
            if OPEN.contains(&path.as_str()) {
                continue;
            }
            let Some(action) = roles::route_action(&method, path) else {
                wrong.push(format!("{method} {path} is not in roles::ROUTES"));
                continue;
            };
            let url = format!("{}{}", running.base, concrete(path, action));
            for (kind, principal, token) in &principals {
                let mut request = http.request(method.clone(), &url);
                if let Some(t) = token {
                    request = request.bearer_auth(t);
                }
                if method != Method::GET && method != Method::DELETE {
                    request = request.json(&json!({}));
                }
                let status = request
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path} as {kind}: {e}"))
                    .status()
                    .as_u16();
                let expected = match principal {
                    None => "401",
                    Some(p) if roles::allows(p, action) => "allowed",
                    Some(_) => "403",
                };
                let ok = match expected {
                    "401" => status == 401,
                    "403" => status == 403,
                    _ => status != 401 && status != 403,
                };
                checked += 1;
                if !ok {
                    wrong.push(format!(
                        "{method} {path} ({action:?}) as {kind}: {status}, expected {expected}"
                    ));
                }
            }
        }
    }
    // The table and the document describe the same routes.
    for r in roles::ROUTES {
        if !described.iter().any(|(m, p)| m == r.method && p == r.path) {
            wrong.push(format!(
                "roles::ROUTES has {} {}, which the document does not describe",
                r.method, r.path
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} answers differ from the matrix:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked > 150, "only {checked} calls made");
    running.stop().await;
}

#[tokio::test]
async fn each_role_is_recorded_with_its_actions_and_the_auditors_reads_are_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = RunningHub::start(&with_grid_and_operator(embedded_config(dir.path()))).await;
    let api = Api::new(&running.base);
    api.agency("civil-affairs", "民政局", "11610921016050037T", "S3")
        .await;
    // The auditor reads; the security administrator may not.
    let (s, _) = api.get(OPERATOR_TOKEN, "/admin/audit?limit=10").await;
    assert_eq!(s, 403);
    let (s, body) = api.get(AUDITOR_TOKEN, "/admin/audit?limit=1000").await;
    assert_eq!(s, 200, "{body}");
    let (s, who) = api.get(AUDITOR_TOKEN, "/admin/whoami").await;
    assert_eq!((s, &who["role"]), (200, &json!("audit")), "{who}");
    // The second read finds the first one, with its role.
    let (_, body) = api.get(AUDITOR_TOKEN, "/admin/audit?limit=1000").await;
    let entries = body["entries"].as_array().expect("entries");
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e["event"]["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} entry: {body}"))
    };
    let created = find("agency.create");
    assert_eq!(created["event"]["actor"], "operator:ops");
    assert_eq!(created["event"]["role"], "security");
    let read = find("audit.query");
    assert_eq!(read["event"]["actor"], "operator:auditor");
    assert_eq!(read["event"]["role"], "audit");
    running.stop().await;
}
