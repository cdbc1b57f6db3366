//! The simulated hotline's HTTP API: the tickets created so far, served page by page in update order, behind
//! its token ([`serve`], [`run`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tracing::info;
use unsilo_connectors::sdk::Shutdown;

use super::generator::{TicketVersion, WorkOrderGenerator};
use super::{check, to_ms, Error, Hotline12345Options, Stats, MAX_PAGE_SIZE};
use crate::clock::{beijing, floor_second, wall_clock_ms};

/// The simulated hotline: tickets created so far and what the API shows.
struct World {
    pub(super) generator: WorkOrderGenerator,
    pub(super) limit: Option<u64>,
    /// Versions not visible yet, by (time, ticket serial, version index).
    pending: BinaryHeap<Reverse<(i64, u64, usize)>>,
    /// The versions of each ticket not yet visible, by ticket serial.
    lives: HashMap<u64, Vec<TicketVersion>>,
    /// What the API shows: each ticket's current version, by (`gxsj`, `gdbh`).
    pub(super) visible: BTreeMap<(String, String), Value>,
    /// The key of each ticket's current version in `visible`.
    pub(super) current: HashMap<u64, (String, String)>,
    stats: Stats,
}

impl World {
    /// A world of tickets generated from `start` on, none visible yet.
    pub(super) fn new(options: &Hotline12345Options, start: DateTime<FixedOffset>) -> Self {
        World {
            generator: WorkOrderGenerator::new(options, start),
            limit: options.limit,
            pending: BinaryHeap::new(),
            lives: HashMap::new(),
            visible: BTreeMap::new(),
            current: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// Creates the tickets called in by `now` and makes visible every version whose time has come.
    fn advance(&mut self, now: i64) {
        while self.limit.is_none_or(|l| self.generator.created() < l)
            && self.generator.next_ticket_ms() <= now
        {
            let serial = self.generator.created() + 1;
            let ticket = self.generator.next_ticket();
            self.stats.tickets += 1;
            if ticket.malformed {
                self.stats.malformed_tickets += 1;
            }
            for (i, v) in ticket.versions.iter().enumerate() {
                self.pending.push(Reverse((v.updated_ms, serial, i)));
            }
            self.lives.insert(serial, ticket.versions);
        }
        while let Some(Reverse((at, serial, index))) = self.pending.peek().copied() {
            if at > now {
                break;
            }
            self.pending.pop();
            let Some(versions) = self.lives.get_mut(&serial) else {
                continue;
            };
            let Some(version) = versions.get_mut(index) else {
                continue;
            };
            let record = std::mem::take(&mut version.record);
            if index + 1 == versions.len() {
                self.lives.remove(&serial);
            }
            let key = (
                record
                    .get("gxsj")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                record
                    .get("gdbh")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            );
            if let Some(old) = self.current.insert(serial, key.clone()) {
                self.visible.remove(&old);
            }
            self.visible.insert(key, record);
            self.stats.versions += 1;
        }
    }

    fn page(&self, since: Option<&str>, size: usize) -> Vec<Value> {
        let from = match since {
            Some(s) => Bound::Included((s.to_owned(), String::new())),
            None => Bound::Unbounded,
        };
        self.visible
            .range((from, Bound::Unbounded))
            .take(size)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

pub(super) struct Api {
    world: Mutex<World>,
    started: Instant,
    pub(super) start_ms: i64,
    pub(super) time_scale: f64,
    pub(super) api_key: Option<String>,
}

impl Api {
    fn world(&self) -> MutexGuard<'_, World> {
        match self.world.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The simulated time now.
    fn now(&self) -> i64 {
        self.start_ms.saturating_add(
            (self.started.elapsed().as_secs_f64() * self.time_scale * 1000.0) as i64,
        )
    }
}

fn api_error(status: StatusCode, code: u16, msg: &str) -> Response {
    (status, Json(json!({ "code": code, "msg": msg }))).into_response()
}

async fn work_orders(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let now = api.now();
    let mut world = api.world();
    world.stats.requests += 1;
    if let Some(key) = &api.api_key {
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(key.as_str()) {
            return api_error(StatusCode::UNAUTHORIZED, 401, "接口密钥无效");
        }
    }
    let since = query.get("updatedSince").map(String::as_str);
    if since.is_some_and(|s| s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit())) {
        return api_error(
            StatusCode::BAD_REQUEST,
            400,
            "参数updatedSince格式应为yyyyMMddHHmmss",
        );
    }
    let size = match query.get("pageSize").map(|s| s.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n > 0 => n.min(MAX_PAGE_SIZE),
        Some(_) => {
            return api_error(StatusCode::BAD_REQUEST, 400, "参数pageSize应为正整数");
        }
    };
    world.advance(now);
    let items = world.page(since, size);
    drop(world);
    Json(json!({ "code": 0, "msg": "成功", "data": { "items": items } })).into_response()
}

/// Serves the work-order API on `options.addr` until `shutdown` fires; returns what was done.
pub async fn run(options: Hotline12345Options, shutdown: Shutdown) -> Result<Stats, Error> {
    check(&options)?;
    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|e| Error::Bind {
            addr: options.addr,
            reason: e.to_string(),
        })?;
    serve(listener, options, shutdown).await
}

/// Serves the work-order API on an already bound listener (tests bind `127.0.0.1:0`) until `shutdown` fires;
/// `options.addr` is not used.
pub async fn serve(
    listener: TcpListener,
    options: Hotline12345Options,
    mut shutdown: Shutdown,
) -> Result<Stats, Error> {
    check(&options)?;
    let start_ms = options
        .start
        .as_ref()
        .map_or_else(|| floor_second(wall_clock_ms()), to_ms);
    let start = DateTime::from_timestamp_millis(start_ms)
        .map(|t| t.with_timezone(&beijing()))
        .ok_or_else(|| Error::Options(format!("start {start_ms} ms is out of range")))?;
    let api = Arc::new(Api {
        world: Mutex::new(World::new(&options, start)),
        started: Instant::now(),
        start_ms: to_ms(&start),
        time_scale: options.time_scale,
        api_key: options.api_key.clone(),
    });
    let app = Router::new()
        .route("/api/workorders", get(work_orders))
        .with_state(api.clone());
    let local = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    info!(
        addr = %local,
        rate = options.rate,
        time_scale = options.time_scale,
        malformed_share = options.malformed_share,
        "12345 work-order API simulator listening."
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
        .map_err(|e| Error::Serve(e.to_string()))?;
    let stats = api.world().stats;
    info!(?stats, "12345 work-order API simulator stopped.");
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::test_start as start;
    use crate::clock::{DAY, HOUR};

    #[test]
    fn the_world_shows_each_ticket_once_in_update_order() {
        let options = Hotline12345Options {
            rate: 10.0,
            time_scale: 3600.0,
            limit: Some(50),
            ..Hotline12345Options::default()
        };
        let mut world = World::new(&options, start());
        let t0 = to_ms(&start());
        world.advance(t0 + 2 * HOUR);
        let early = world.page(None, 10_000);
        assert!(!early.is_empty());
        world.advance(t0 + 30 * DAY);
        let all = world.page(None, 10_000);
        assert_eq!(world.stats.tickets, 50);
        assert_eq!(all.len(), 50, "one current version per ticket");
        assert!(all.iter().all(|r| r["gdzt"] == "08"));
        let times: Vec<&str> = all.iter().filter_map(|r| r["gxsj"].as_str()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let since = times[25];
        let later = world.page(Some(since), 10_000);
        assert!(later.iter().all(|r| r["gxsj"].as_str() >= Some(since)));
        assert_eq!(
            later.len(),
            all.iter()
                .filter(|r| r["gxsj"].as_str() >= Some(since))
                .count()
        );
    }
}
