//! Micro-benchmark of the mapping engine on one core.
//!
//! ```text
//! cargo run --release -p unsilo-connectors --example mapping_bench [seconds per case, default 2] [encode]
//! ```
//!
//! With a second argument `encode`, only the `encode` column is measured (for profiling the hot path alone).
//!
//! For grid_event, hotline_ticket (the raw dialects of `tests/fixtures/mapping/`) and a small rating record it
//! reports records per second of
//!
//! - `encode`: raw JSON → Avro binary with the compiled mapping (the hot path);
//! - `generic`: `unsilo_schemas::json_to_avro` + `apache_avro::to_avro_datum` on the *already normalised* JSON
//!   (apache-avro's `Value` path alone, without doing any mapping);
//! - `to_json + generic`: what a mapping engine built on the generic path would cost.
//!
//! Input parsing (bytes → `serde_json::Value`) is outside all three, as it is the same for every approach.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use unsilo_connectors::mapping::{CompiledMapping, Mapping};
use unsilo_schemas::json_to_avro;

const GRID_EVENT: &str = include_str!("../tests/fixtures/mapping/grid_event.toml");
const GRID_EVENT_RAW: &str = include_str!("../tests/fixtures/mapping/grid_event.raw.json");
const HOTLINE: &str = include_str!("../tests/fixtures/mapping/hotline_ticket.toml");
const HOTLINE_RAW: &str = include_str!("../tests/fixtures/mapping/hotline_ticket.raw.json");

const RATING: &str = r#"
target = "rating"
source_system = "qinwuyuan"

[record_id]
source_record_id = "pjbh"
source_version = { const = "1" }

[fields]
"envelope.event_time" = { path = "pjsj", datetime = "auto" }
"envelope.region_code" = "xzqh"
"envelope.provider_org_code" = { const = "12610000MB2960F19E" }
rating_id = "pjbh"
case_no = "bjbh"
item_code = "sxbm"
item_name = "sxmc"
org_name = "bldw"
org_code = "bldwdm"
score = "pf"
level = { path = "pj", codes = { "1" = "VERY_DISSATISFIED", "2" = "DISSATISFIED", "3" = "BASICALLY_SATISFIED", "4" = "SATISFIED", "5" = "VERY_SATISFIED" }, default = "UNKNOWN" }
rated_time = { path = "pjsj", datetime = "auto" }
"#;

/// Runs `f` repeatedly for about `budget` and returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up caches and branch predictors.
    for _ in 0..1_000 {
        f();
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..1_000 {
            f();
        }
        n += 1_000;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn bench(name: &str, mapping: &CompiledMapping, raw: &Json, budget: Duration, encode_only: bool) {
    let schema = mapping.target().avro();
    let mut out = Vec::with_capacity(4096);
    let ingest = 1_718_674_337_000;
    mapping
        .encode_at(raw, ingest, &mut out)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let size = out.len();
    let normalised = mapping
        .to_json_at(raw, ingest)
        .unwrap_or_else(|e| panic!("{name}: {e}"));

    let encode = rate(budget, || {
        out.clear();
        let n = mapping.encode_at(black_box(raw), ingest, &mut out);
        black_box(n.is_ok());
    });
    if encode_only {
        println!("{name:<16} {size:>5} B   encode {encode:>10.0}/s");
        return;
    }
    let generic = rate(budget, || {
        let value =
            json_to_avro(black_box(&normalised), schema).unwrap_or(apache_avro::types::Value::Null);
        black_box(
            apache_avro::to_avro_datum(schema, value)
                .map(|b| b.len())
                .ok(),
        );
    });
    let mapped_generic = rate(budget, || {
        let Ok(json) = mapping.to_json_at(black_box(raw), ingest) else {
            return;
        };
        let value = json_to_avro(&json, schema).unwrap_or(apache_avro::types::Value::Null);
        black_box(
            apache_avro::to_avro_datum(schema, value)
                .map(|b| b.len())
                .ok(),
        );
    });
    println!(
        "{name:<16} {size:>5} B   encode {:>10.0}/s   generic {:>9.0}/s   to_json+generic {:>9.0}/s   encode/generic {:>5.1}x",
        encode,
        generic,
        mapped_generic,
        encode / generic
    );
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2.0);
    let budget = Duration::from_secs_f64(seconds);
    let encode_only = std::env::args().nth(2).as_deref() == Some("encode");
    let load = |text: &str, origin: &str| {
        Mapping::from_str(text, origin).unwrap_or_else(|e| panic!("{e}"))
    };
    let parse =
        |text: &str| -> Json { serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}")) };

    println!("one core, {seconds} s per measurement, records/s (higher is better)");
    bench(
        "grid_event",
        &load(GRID_EVENT, "grid_event.toml"),
        &parse(GRID_EVENT_RAW),
        budget,
        encode_only,
    );
    bench(
        "hotline_ticket",
        &load(HOTLINE, "hotline_ticket.toml"),
        &parse(HOTLINE_RAW),
        budget,
        encode_only,
    );
    let rating = json!({
        "pjbh": "PJ20240513000456", "bjbh": "6109021240506000123", "sxbm": "11610902MB2975X39A4000117004000",
        "sxmc": "食品经营许可（新办）", "bldw": "安康市汉滨区行政审批服务局", "bldwdm": "11610902MB2975X39A",
        "pf": 2, "pj": "2", "pjsj": "2024-05-13 19:21:33", "xzqh": "610902001003"
    });
    bench(
        "rating (small)",
        &load(RATING, "rating.toml"),
        &rating,
        budget,
        encode_only,
    );
}
