//! HTTP poll against a 12345-hotline-like work-order API served by axum over a real socket on 127.0.0.1.
//!
//! The fake API keeps its work orders in memory, answers `GET /api/v1/workorders?updated_since=…&page_size=…`
//! with the orders updated at or after that time (oldest first) and `GET /api/v1/workorders/pages?page_token=…`
//! with orders in the order they were created; it wants an `X-Api-Key` header, and can be told to misbehave
//! on its next requests.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinHandle;
use unsilo_connectors::sdk::{
    CheckpointStore, MemoryCheckpointStore, RecordingSink, RetryHint, Shutdown, ShutdownTrigger,
    Source, SourceContext, SourceError,
};
use unsilo_connectors::transport::http_poll::{HttpPollConfig, HttpPollSource};

const PATIENCE: Duration = Duration::from_secs(60);
const API_KEY: &str = "k-12345-0f9e8d7c";

// ---------------------------------------------------------------------------------------------------------------
// The fake 12345 work-order API
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
struct WorkOrder {
    ticket_no: String,
    title: String,
    district: String,
    status: String,
    updated_at: String,
}

fn order(n: u32, updated_at: &str) -> WorkOrder {
    WorkOrder {
        ticket_no: format!("GD20240501{n:04}"),
        title: format!("小区夜间施工噪音扰民（第{n}件）"),
        district: "雁塔区".into(),
        status: "已受理".into(),
        updated_at: format!("2024-05-01 {updated_at}"),
    }
}

/// What the API does on one request instead of answering normally.
#[derive(Clone, Debug)]
enum Trouble {
    Status(StatusCode),
    /// A `200` with an HTML page (a proxy's maintenance notice).
    Html,
    /// A `200` with JSON but no records (the API's own error envelope).
    Envelope,
}

#[derive(Default)]
struct Api {
    /// In creation order.
    orders: Mutex<Vec<WorkOrder>>,
    /// The next requests' behaviour, front first: `None` answers normally.
    trouble: Mutex<VecDeque<Option<Trouble>>>,
    /// Every request's query parameters.
    requests: Mutex<Vec<HashMap<String, String>>>,
}

impl Api {
    fn add(&self, order: WorkOrder) {
        self.orders.lock().unwrap().push(order);
    }

    /// A ticket changes: new status, new update time.
    fn update(&self, n: u32, status: &str, updated_at: &str) {
        let ticket = format!("GD20240501{n:04}");
        let mut orders = self.orders.lock().unwrap();
        let order = orders
            .iter_mut()
            .find(|o| o.ticket_no == ticket)
            .expect("the ticket exists");
        order.status = status.into();
        order.updated_at = format!("2024-05-01 {updated_at}");
    }

    fn requests(&self) -> Vec<HashMap<String, String>> {
        self.requests.lock().unwrap().clone()
    }

    fn sent(&self, param: &str) -> Vec<Option<String>> {
        self.requests()
            .iter()
            .map(|q| q.get(param).cloned())
            .collect()
    }

    /// Records the request; answers with an error or trouble if there is one.
    fn intercept(&self, headers: &HeaderMap, query: &HashMap<String, String>) -> Option<Response> {
        self.requests.lock().unwrap().push(query.clone());
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"code": 401, "msg": "无效的接口密钥"})),
                )
                    .into_response(),
            );
        }
        match self.trouble.lock().unwrap().pop_front().flatten()? {
            Trouble::Status(status) => Some((status, "upstream error").into_response()),
            Trouble::Html => Some(
                (
                    [("content-type", "text/html; charset=utf-8")],
                    "<html><body>系统维护中，请稍后再试</body></html>",
                )
                    .into_response(),
            ),
            Trouble::Envelope => {
                Some(Json(json!({"code": 5001, "msg": "系统维护中"})).into_response())
            }
        }
    }
}

fn page_size(query: &HashMap<String, String>) -> usize {
    query
        .get("page_size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

async fn by_update_time(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = api.intercept(&headers, &query) {
        return response;
    }
    let mut orders: Vec<WorkOrder> = api.orders.lock().unwrap().clone();
    // Times are all `YYYY-MM-DD HH:MM:SS`, so text order is time order.
    if let Some(since) = query.get("updated_since") {
        orders.retain(|o| &o.updated_at >= since);
    }
    orders.sort_by(|a, b| (&a.updated_at, &a.ticket_no).cmp(&(&b.updated_at, &b.ticket_no)));
    orders.truncate(page_size(&query));
    Json(json!({"code": 0, "msg": "ok", "data": {"items": orders}})).into_response()
}

async fn by_page_token(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = api.intercept(&headers, &query) {
        return response;
    }
    let orders = api.orders.lock().unwrap().clone();
    let offset: usize = query
        .get("page_token")
        .and_then(|t| t.strip_prefix('p'))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let end = (offset + page_size(&query)).min(orders.len());
    let items = orders.get(offset..end).unwrap_or_default();
    let next = (end < orders.len()).then(|| format!("p{end}"));
    Json(json!({"code": 0, "data": {"items": items, "next_page_token": next}})).into_response()
}

async fn serve(api: Arc<Api>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/api/v1/workorders", get(by_update_time))
        .route("/api/v1/workorders/pages", get(by_page_token))
        .with_state(api);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The API with work orders 1..=7: two at 08:00, two at 08:01, one at 08:02, two at 08:03.
async fn hotline() -> (Arc<Api>, SocketAddr) {
    let api = Arc::new(Api::default());
    for (n, time) in [
        (1, "08:00:00"),
        (2, "08:00:00"),
        (3, "08:01:00"),
        (4, "08:01:00"),
        (5, "08:02:00"),
        (6, "08:03:00"),
        (7, "08:03:00"),
    ] {
        api.add(order(n, time));
    }
    let addr = serve(api.clone()).await;
    (api, addr)
}

fn updated_since_config(addr: SocketAddr, page_size: u32) -> HttpPollConfig {
    serde_json::from_value(json!({
        "url": format!("http://{addr}/api/v1/workorders"),
        "headers": {"X-Api-Key": API_KEY},
        "cursor": {"kind": "updated_since", "param": "updated_since", "time_format": "%Y-%m-%d %H:%M:%S"},
        "records_pointer": "/data/items",
        "record_id_pointer": "/ticket_no",
        "updated_pointer": "/updated_at",
        "page_size": page_size,
        "poll_interval": "100ms",
        "timeout": "10s",
    }))
    .expect("a valid config")
}

fn page_token_config(addr: SocketAddr, page_size: u32) -> HttpPollConfig {
    serde_json::from_value(json!({
        "url": format!("http://{addr}/api/v1/workorders/pages"),
        "headers": {"X-Api-Key": API_KEY},
        "cursor": {"kind": "page_token", "next_pointer": "/data/next_page_token"},
        "records_pointer": "/data/items",
        "record_id_pointer": "/ticket_no",
        "page_size": page_size,
        "poll_interval": "100ms",
    }))
    .expect("a valid config")
}

// ---------------------------------------------------------------------------------------------------------------
// A sink that records what it got
// ---------------------------------------------------------------------------------------------------------------

/// Ticket numbers without the common prefix, in arrival order: `GD202405010003` → 3.
fn tickets(sink: &RecordingSink) -> Vec<u32> {
    sink.records()
        .iter()
        .map(|r| {
            r["ticket_no"].as_str().expect("a ticket number")["GD20240501".len()..]
                .parse()
                .expect("a numbered ticket")
        })
        .collect()
}

struct Running {
    trigger: ShutdownTrigger,
    handle: JoinHandle<Result<(), SourceError>>,
}

impl Running {
    async fn stop(self) {
        self.trigger.trigger();
        let outcome = tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("the source stops on shutdown")
            .expect("the source task does not panic");
        assert!(outcome.is_ok(), "the source failed: {outcome:?}");
    }
}

fn start(
    mut source: HttpPollSource,
    sink: Arc<RecordingSink>,
    checkpoints: Arc<MemoryCheckpointStore>,
) -> Running {
    let (trigger, shutdown) = Shutdown::new();
    let ctx = SourceContext {
        connector: "hotline-test".into(),
        sink,
        checkpoints,
        shutdown,
    };
    let handle = tokio::spawn(async move { source.run(ctx).await });
    Running { trigger, handle }
}

async fn run_to_end(
    mut source: HttpPollSource,
    sink: Arc<RecordingSink>,
    checkpoints: Arc<MemoryCheckpointStore>,
) -> Result<(), SourceError> {
    let ctx = SourceContext {
        connector: "hotline-test".into(),
        sink,
        checkpoints,
        shutdown: Shutdown::never(),
    };
    tokio::time::timeout(PATIENCE, source.run(ctx))
        .await
        .expect("the source gives up within the test's patience")
}

// ---------------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------------

/// Pages of three through orders whose update times tie across page boundaries: each order arrives once, the
/// cursor advances page by page, and a ticket updated later (new status, new time) arrives again.
#[tokio::test]
async fn updated_since_pages_through_ties_and_rereads_changed_tickets() {
    let (api, addr) = hotline().await;
    let checkpoints = Arc::new(MemoryCheckpointStore::default());
    let sink = Arc::new(RecordingSink::new());
    let running = start(
        updated_since_config(addr, 3).build().unwrap(),
        sink.clone(),
        checkpoints.clone(),
    );
    sink.wait_for(7, PATIENCE).await;
    assert_eq!(tickets(&sink), vec![1, 2, 3, 4, 5, 6, 7]);
    let sent = api.sent("updated_since");
    assert_eq!(
        sent[..4],
        [
            None,
            Some("2024-05-01 08:01:00".into()),
            Some("2024-05-01 08:02:00".into()),
            Some("2024-05-01 08:03:00".into()),
        ],
        "the cursor advances page by page"
    );
    assert!(api
        .sent("page_size")
        .iter()
        .all(|p| p.as_deref() == Some("3")));

    let first = &sink.inputs()[0];
    let expected = serde_json::to_vec(&order(1, "08:00:00")).unwrap();
    assert_eq!(
        first.original, expected,
        "the record's bytes as the API sent them"
    );
    assert_eq!(
        first.origin,
        format!("http://{addr}/api/v1/workorders page 1 item 0")
    );

    api.update(3, "已办结", "08:10:00");
    sink.wait_for(8, PATIENCE).await;
    running.stop().await;
    let changed = &sink.records()[7];
    assert_eq!(changed["ticket_no"], json!("GD202405010003"));
    assert_eq!(changed["status"], json!("已办结"));
    assert_eq!(tickets(&sink).len(), 8, "nothing else came again");
    assert_eq!(
        checkpoints.load().await.unwrap(),
        Some(json!({"updated_since": "2024-05-01 08:10:00", "seen_ids": ["GD202405010003"]}))
    );
}

/// A whole page sharing one update time cannot be paged past by time: the page grows until it gets past them.
#[tokio::test]
async fn a_full_page_of_one_update_time_grows_the_page() {
    let api = Arc::new(Api::default());
    for n in 1..=5 {
        api.add(order(n, "09:00:00"));
    }
    api.add(order(6, "09:30:00"));
    let addr = serve(api.clone()).await;
    let sink = Arc::new(RecordingSink::new());
    let running = start(
        updated_since_config(addr, 2).build().unwrap(),
        sink.clone(),
        Arc::new(MemoryCheckpointStore::default()),
    );
    sink.wait_for(6, PATIENCE).await;
    running.stop().await;
    assert_eq!(tickets(&sink), vec![1, 2, 3, 4, 5, 6]);
    assert!(
        api.sent("page_size").contains(&Some("8".into())),
        "{:?}",
        api.requests()
    );
}

/// A restart with the same checkpoint store asks from the checkpointed time, and gets only what is new or
/// changed since.
#[tokio::test]
async fn restart_resumes_from_the_checkpoint() {
    let (api, addr) = hotline().await;
    let checkpoints = Arc::new(MemoryCheckpointStore::default());
    let first = Arc::new(RecordingSink::new());
    let running = start(
        updated_since_config(addr, 3).build().unwrap(),
        first.clone(),
        checkpoints.clone(),
    );
    first.wait_for(7, PATIENCE).await;
    running.stop().await;

    api.add(order(8, "08:05:00"));
    api.update(2, "已回访", "08:06:00");
    let requests_before = api.requests().len();
    let second = Arc::new(RecordingSink::new());
    let running = start(
        updated_since_config(addr, 3).build().unwrap(),
        second.clone(),
        checkpoints.clone(),
    );
    second.wait_for(2, PATIENCE).await;
    running.stop().await;
    assert_eq!(tickets(&second), vec![8, 2]);
    assert_eq!(second.records()[1]["status"], json!("已回访"));
    assert_eq!(
        api.sent("updated_since")[requests_before],
        Some("2024-05-01 08:03:00".into()),
        "the new run starts at the checkpoint"
    );
}

/// A 500 on the second page ends the run with a transient error after the first page was acknowledged and
/// checkpointed; the next run goes on from there, so every order arrives exactly once.
#[tokio::test]
async fn server_error_is_transient_and_the_next_run_recovers() {
    let (api, addr) = hotline().await;
    api.trouble.lock().unwrap().extend([
        None,
        Some(Trouble::Status(StatusCode::INTERNAL_SERVER_ERROR)),
    ]);
    let checkpoints = Arc::new(MemoryCheckpointStore::default());
    let failing = Arc::new(RecordingSink::new());
    let error = run_to_end(
        updated_since_config(addr, 3).build().unwrap(),
        failing.clone(),
        checkpoints.clone(),
    )
    .await
    .expect_err("a 500 ends the run");
    assert_eq!(error.hint, RetryHint::WithBackoff, "{error}");
    assert!(error.message.contains("500"), "{error}");
    assert_eq!(tickets(&failing), vec![1, 2, 3]);
    assert_eq!(
        checkpoints.load().await.unwrap(),
        Some(json!({"updated_since": "2024-05-01 08:01:00", "seen_ids": ["GD202405010003"]}))
    );

    let recovered = Arc::new(RecordingSink::new());
    let running = start(
        updated_since_config(addr, 3).build().unwrap(),
        recovered.clone(),
        checkpoints.clone(),
    );
    recovered.wait_for(4, PATIENCE).await;
    running.stop().await;
    assert_eq!(tickets(&recovered), vec![4, 5, 6, 7]);
}

/// A wrong API key is fatal (retrying cannot help), names the status, and does not repeat the key.
#[tokio::test]
async fn unauthorized_is_fatal() {
    let (_api, addr) = hotline().await;
    let mut config = updated_since_config(addr, 3);
    config
        .headers
        .insert("X-Api-Key".into(), "k-wrong-key-424242".into());
    let sink = Arc::new(RecordingSink::new());
    let checkpoints = Arc::new(MemoryCheckpointStore::default());
    let error = run_to_end(config.build().unwrap(), sink.clone(), checkpoints.clone())
        .await
        .expect_err("401 ends the run");
    assert_eq!(error.hint, RetryHint::NoRetry, "{error}");
    assert!(error.message.contains("401"), "{error}");
    assert!(!error.message.contains("k-wrong-key-424242"), "{error}");
    assert!(sink.inputs().is_empty());
    assert_eq!(checkpoints.load().await.unwrap(), None);

    let mut config = updated_since_config(addr, 3);
    config.url = format!("http://{addr}/api/v1/no-such-endpoint");
    let error = run_to_end(config.build().unwrap(), sink, checkpoints)
        .await
        .expect_err("404 ends the run");
    assert_eq!(error.hint, RetryHint::NoRetry, "{error}");
    assert!(error.message.contains("404"), "{error}");
}

/// A `200` that is not JSON, or JSON without the records: transient, and the body is on the dead-letter
/// topic (submitted as one rejected input), without moving the cursor.
#[tokio::test]
async fn a_body_without_records_goes_to_the_dead_letter_topic() {
    let (api, addr) = hotline().await;
    for (trouble, reason) in [
        (Trouble::Html, "not JSON"),
        (Trouble::Envelope, "no array of records at \"/data/items\""),
    ] {
        api.trouble.lock().unwrap().push_back(Some(trouble.clone()));
        let sink = Arc::new(RecordingSink::new());
        let checkpoints = Arc::new(MemoryCheckpointStore::default());
        let error = run_to_end(
            updated_since_config(addr, 3).build().unwrap(),
            sink.clone(),
            checkpoints.clone(),
        )
        .await
        .expect_err("a body without records ends the run");
        assert_eq!(error.hint, RetryHint::WithBackoff, "{trouble:?}: {error}");
        assert!(error.message.contains(reason), "{trouble:?}: {error}");
        let inputs = sink.inputs();
        assert_eq!(inputs.len(), 1, "{trouble:?}");
        assert!(
            matches!(&inputs[0].parsed, Err(why) if why.contains(reason)),
            "{:?}",
            inputs[0]
        );
        let body = String::from_utf8(inputs[0].original.clone()).unwrap();
        assert!(body.contains("系统维护中"), "the body as sent: {body}");
        assert_eq!(
            inputs[0].origin,
            format!("http://{addr}/api/v1/workorders page 1")
        );
        assert_eq!(checkpoints.load().await.unwrap(), None);
    }
}

/// Nothing listening: transient.
#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = run_to_end(
        updated_since_config(addr, 3).build().unwrap(),
        Arc::new(RecordingSink::new()),
        Arc::new(MemoryCheckpointStore::default()),
    )
    .await
    .expect_err("nothing listens");
    assert_eq!(error.hint, RetryHint::WithBackoff, "{error}");
    assert!(error.message.contains("could not connect"), "{error}");
}

/// Page tokens: pages follow the tokens; at the end the last page is asked again and only the orders
/// appended since arrive; a restart resumes from the checkpointed token.
#[tokio::test]
async fn page_token_follows_tokens_and_resumes() {
    let (api, addr) = hotline().await;
    let checkpoints = Arc::new(MemoryCheckpointStore::default());
    let first = Arc::new(RecordingSink::new());
    let running = start(
        page_token_config(addr, 3).build().unwrap(),
        first.clone(),
        checkpoints.clone(),
    );
    first.wait_for(7, PATIENCE).await;
    api.add(order(8, "07:00:00"));
    first.wait_for(8, PATIENCE).await;
    running.stop().await;
    assert_eq!(tickets(&first), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        api.sent("page_token")[..3],
        [None, Some("p3".into()), Some("p6".into())]
    );
    assert_eq!(
        checkpoints.load().await.unwrap(),
        Some(json!({"page_token": "p6", "seen_ids": ["GD202405010007", "GD202405010008"]}))
    );

    for n in 9..=10 {
        api.add(order(n, "07:00:00"));
    }
    let second = Arc::new(RecordingSink::new());
    let running = start(
        page_token_config(addr, 3).build().unwrap(),
        second.clone(),
        checkpoints.clone(),
    );
    second.wait_for(2, PATIENCE).await;
    running.stop().await;
    assert_eq!(tickets(&second), vec![9, 10]);
}
