//! Fault injection for crash tests: named points in the hub's write paths where a test can make the process die
//! as a `kill -9` would, at exactly the worst moment, instead of hoping a random kill lands there.
//!
//! A point fires only when the environment variable [`FAULT_ENV`] names it when the process starts, as
//! `<point>` (the first time it is reached) or `<point>@<n>` (the `n`-th time). Unset — as in every real
//! deployment — a point costs one relaxed atomic load. When a point fires, the hub logs it to standard error and
//! aborts: no destructor, flush or offset commit runs after it.
//!
//! The points:
//! - [`ROUTER_AFTER_RELEASES`]: a router write over Kafka has made its evidence and every release durable, but
//!   not its standings or its consumer offsets;
//! - [`ROUTER_BETWEEN_RELEASES`]: the same write has made its evidence and its first destination topic's
//!   releases durable, not the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the fault to inject (`<point>` or `<point>@<n>`).
pub const FAULT_ENV: &str = "UNSILO_FAULT";

/// After a router write's releases, before its standings and offsets (Kafka only).
pub const ROUTER_AFTER_RELEASES: &str = "router.after-releases";

/// Between the first and the second destination topic of a router write (Kafka only).
pub const ROUTER_BETWEEN_RELEASES: &str = "router.between-releases";

/// The configured fault: its point and on which arrival it fires.
struct Armed {
    point: String,
    nth: u64,
    arrivals: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(FAULT_ENV).ok()?;
            let (point, nth) = match spec.split_once('@') {
                Some((point, n)) => (point.to_owned(), n.trim().parse().ok()?),
                None => (spec, 1),
            };
            Some(Armed {
                point,
                nth,
                arrivals: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Marks that the process reached `point`: aborts it if [`FAULT_ENV`] armed this point for this arrival.
pub fn reached(point: &str) {
    let Some(armed) = armed() else {
        return;
    };
    if armed.point != point {
        return;
    }
    let arrival = armed.arrivals.fetch_add(1, Ordering::Relaxed) + 1;
    if arrival == armed.nth {
        eprintln!("unsilo: injected fault `{point}` (arrival {arrival}): aborting the process");
        std::process::abort();
    }
}
