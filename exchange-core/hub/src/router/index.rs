//! The index of a schema's routes by their filters' guards, so a record is evaluated only against the
//! subscriptions it can match.
//!
//! Each route is filed under one [`Guard`] of its filter — a value set (`event_type_code in [...]`,
//! `household_id == "…"`) before a prefix (`region_code.startsWith("610921")`), the longer prefix first — or,
//! without any, among the routes every record is a candidate for. For a record, the candidates are those, plus
//! the routes filed under the record's value of each indexed field and under each indexed prefix of it. The full
//! filter still decides: the index only leaves out routes whose guard the record fails, which their filter
//! would fail too.

use std::collections::{BTreeSet, HashMap};

use apache_avro::types::Value;
use unsilo_policy::filter::Guard;

use super::ActiveSubscription;

/// Routes by guard.
#[derive(Clone, Debug, Default)]
pub(super) struct RouteIndex {
    /// Routes without a guard: candidates for every record.
    unguarded: Vec<usize>,
    /// By field path, then value: routes whose filter needs the field to be that value.
    by_value: HashMap<String, HashMap<String, Vec<usize>>>,
    /// By field path: the prefix lengths in use, and routes by prefix.
    by_prefix: HashMap<String, Prefixes>,
}

/// The prefixes routes are filed under on one field: the lengths in use (in bytes), and the routes by prefix.
type Prefixes = (BTreeSet<usize>, HashMap<String, Vec<usize>>);

/// A guard's index keys: `(path, value)` for each value of a set, `(path, prefix)` for a prefix.
fn keys(guard: &Guard) -> Vec<(bool, &str, &str)> {
    match guard {
        Guard::OneOf { path, values } => values
            .iter()
            .map(|v| (true, path.as_str(), v.as_str()))
            .collect(),
        Guard::Prefix { path, prefix } => vec![(false, path.as_str(), prefix.as_str())],
    }
}

impl RouteIndex {
    /// Files every route under the guard of its filter that the fewest other routes share (the most selective
    /// among them, as far as the routes themselves tell): a county's prefix shared by one route beats an event
    /// type every route names.
    pub(super) fn build(routes: &[ActiveSubscription]) -> Self {
        let guards: Vec<Vec<Guard>> = routes.iter().map(|r| r.compiled.filter.guards()).collect();
        let mut shared: HashMap<(bool, &str, &str), usize> = HashMap::new();
        for g in guards.iter().flatten() {
            for k in keys(g) {
                *shared.entry(k).or_default() += 1;
            }
        }
        let cost = |g: &Guard| keys(g).iter().map(|k| shared[k]).sum::<usize>();
        let mut index = RouteIndex::default();
        for (i, route_guards) in guards.iter().enumerate() {
            match route_guards.iter().min_by_key(|g| cost(g)) {
                None => index.unguarded.push(i),
                Some(Guard::OneOf { path, values }) => {
                    let by = index.by_value.entry(path.clone()).or_default();
                    for v in values {
                        by.entry(v.clone()).or_default().push(i);
                    }
                }
                Some(Guard::Prefix { path, prefix }) => {
                    let (lengths, by) = index.by_prefix.entry(path.clone()).or_default();
                    lengths.insert(prefix.len());
                    by.entry(prefix.clone()).or_default().push(i);
                }
            }
        }
        index
    }

    /// The routes `record` may match, in route order, into `out` (cleared first).
    pub(super) fn candidates(&self, record: &Value, out: &mut Vec<usize>) {
        out.clear();
        out.extend_from_slice(&self.unguarded);
        for (path, by) in &self.by_value {
            if let Some(routes) = string_at(record, path).and_then(|v| by.get(v)) {
                out.extend_from_slice(routes);
            }
        }
        for (path, (lengths, by)) in &self.by_prefix {
            let Some(value) = string_at(record, path) else {
                continue;
            };
            for &n in lengths {
                if let Some(routes) = value.get(..n).and_then(|p| by.get(p)) {
                    out.extend_from_slice(routes);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

/// The string (or enum symbol) at a dotted path of a decoded record; `None` if absent, null or not text.
pub(super) fn string_at<'v>(record: &'v Value, path: &str) -> Option<&'v str> {
    let mut value = record;
    for step in path.split('.') {
        if let Value::Union(_, inner) = value {
            value = inner;
        }
        let Value::Record(fields) = value else {
            return None;
        };
        value = &fields.iter().find(|(name, _)| name == step)?.1;
    }
    if let Value::Union(_, inner) = value {
        value = inner;
    }
    match value {
        Value::String(s) | Value::Enum(_, s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(region: &str, kind: &str) -> Value {
        Value::Record(vec![
            (
                "envelope".into(),
                Value::Record(vec![("region_code".into(), Value::String(region.into()))]),
            ),
            (
                "event_type_code".into(),
                Value::Union(1, Box::new(Value::String(kind.into()))),
            ),
            ("severity".into(), Value::Enum(2, "HIGH".into())),
        ])
    }

    #[test]
    fn strings_and_symbols_are_found_through_records_and_unions() {
        let r = record("610921107200", "0302");
        assert_eq!(string_at(&r, "envelope.region_code"), Some("610921107200"));
        assert_eq!(string_at(&r, "event_type_code"), Some("0302"));
        assert_eq!(string_at(&r, "severity"), Some("HIGH"));
        assert_eq!(string_at(&r, "envelope.missing"), None);
        assert_eq!(string_at(&r, "event_type_code.deeper"), None);
    }

    fn route(i: usize, filter: &str) -> ActiveSubscription {
        use unsilo_policy::model::*;
        let spec = SubscriptionSpec {
            schema: "grid_event".into(),
            filter: filter.into(),
            fields: vec![FieldRule {
                field: "event_no".into(),
                treatment: Treatment::Clear,
            }],
            purpose: "test".into(),
            legal_basis: None,
            scenario: None,
            scope: None,
            expires_at_ms: None,
            backfill_from_ms: None,
            retain_days: None,
            channel: Channel::Pull,
        };
        let mut s = Subscription::new_request("a", &format!("s{i}"), spec.clone(), 0);
        s.status = SubscriptionStatus::Active;
        s.granted = Some(spec);
        s.view_schema_id = Some(1);
        ActiveSubscription::of(&s).expect("compiles")
    }

    fn event(region: &str, kind: &str) -> Value {
        let shared = unsilo_schemas::shared_schema("grid_event").expect("schema");
        let mut json = unsilo_schemas::example_record("grid_event").expect("example");
        json["envelope"]["region_code"] = serde_json::json!(region);
        json["event_type_code"] = serde_json::json!(kind);
        unsilo_schemas::json_to_avro(&json, shared.avro()).expect("record")
    }

    #[test]
    fn a_record_is_a_candidate_of_the_routes_it_can_match_and_only_those() {
        let routes = vec![
            route(
                0,
                "region_code.startsWith(\"610921\") && event_type_code in [\"0302\", \"0101\"]",
            ),
            route(
                1,
                "region_code.startsWith(\"610114\") && event_type_code in [\"0302\", \"0101\"]",
            ),
            route(2, "urgency != \"NORMAL\" || attachment_count > 2"),
            route(3, "event_type_code == \"0401\""),
            route(4, "region_code.startsWith(\"6109\")"),
        ];
        let index = RouteIndex::build(&routes);
        // The county prefixes (one route each) are chosen over the event types both routes name.
        assert_eq!(
            index.by_prefix["envelope.region_code"].0,
            BTreeSet::from([4, 6])
        );
        let mut out = Vec::new();
        index.candidates(&event("610921107200", "0302"), &mut out);
        assert_eq!(out, [0, 2, 4]);
        index.candidates(&event("610114001002", "0401"), &mut out);
        assert_eq!(out, [1, 2, 3]);
        // Sound: every route whose filter matches is a candidate.
        for region in [
            "610921107200",
            "610114001002",
            "620101001001",
            "610902001001",
        ] {
            for kind in ["0302", "0101", "0401", "9999"] {
                let r = event(region, kind);
                index.candidates(&r, &mut out);
                for (i, route) in routes.iter().enumerate() {
                    if route.compiled.filter.matches(&r) {
                        assert!(
                            out.contains(&i),
                            "route {i} matches {region}/{kind} but is no candidate"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn routes_releasing_the_same_view_share_one_encoding_each_under_its_own_schema_id() {
        let mut shared_a = route(0, "true");
        let mut shared_b = route(1, "region_code.startsWith(\"6109\")");
        shared_a.view_schema_id = 11;
        shared_b.view_schema_id = 12;
        let alone = route(2, "true");
        let table = crate::router::RoutingTable::of(vec![shared_a, shared_b, alone.clone()]);
        let record = event("610921107200", "0302");
        let key = unsilo_policy::treat::PseudonymKey::from_bytes([3; 32]);
        let mut out = Vec::new();
        table.route(&record, 0, &key, &mut out).expect("routes");
        assert_eq!(out.len(), 3);
        let mut fresh = Vec::new();
        alone
            .compiled
            .plan
            .encode(&record, &key, &mut fresh)
            .expect("encodes");
        for (release, id) in out.iter().zip([11u32, 12, 1]) {
            assert_eq!(release.value[0], 0, "magic byte");
            assert_eq!(release.value[1..5], id.to_be_bytes(), "its own schema id");
            assert_eq!(
                release.value[5..],
                fresh[..],
                "the same view, encoded once and copied"
            );
        }
    }
}
