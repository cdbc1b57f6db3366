//! Property test of the router's pure core, [`RoutingTable::route`]: no record leaks to a subscription that may
//! not have it, and what is released is only what the subscription was granted, treated as granted.
//!
//! Each case draws one shared record (`grid_event`, `household` or `resident`: the shipped example with every
//! field randomised, resident ID numbers and mobiles in the ID/phone fields and written into the free text) and a
//! handful of subscriptions over its schema (random granted field rules and treatments, random CEL filters from a
//! small grammar, random lifecycle status, expiry and view schema id). They go into a [`ControlState`]; the table
//! is built from it, the record routed, and every release checked:
//!
//! 1. releases go exactly to the subscriptions that are `active`, have a view schema id, compile, are not past
//!    their expiry at `now_ms`, and whose filter matches the record (`Filter::matches`) — never to a requested,
//!    approved, rejected, revoked or expired one, nor to one of another schema;
//! 2. each release is a Confluent frame with the subscription's view schema id and decodes, completely, with the
//!    route's view schema; every leaf path in it (and in the view schema) is granted by the subscription's rules
//!    (a rule naming a record releases its subtree, a more specific rule overrides, `drop` withholds);
//! 3. masked and pseudonymised values never contain their original (clear ones other than free text are the
//!    original, pseudonyms are `p1_` + 32 hex, generalised addresses do not contain the address); and no input
//!    ID number or mobile number appears anywhere in a release — decoded strings or raw bytes — unless the
//!    subscription releases an ID-number (resp. phone) field in clear;
//! 4. building and routing never panic and `route` returns `Ok`;
//! 5. the classification gates hold whatever the subscriptions say: a `NOT_SHARED` (不予共享) record is released
//!    to no one, and a `CORE`-grade record only to subscriptions approved by two different operators (双人复核).
//!
//! The table is then rebuilt, with the first table as `previous`, from a second state in which some of the
//! subscriptions changed (revoked, expired, re-filtered, narrowed, re-activated…), and the same checks run on it:
//! a route reused from an older table must never outlive a revocation.
//!
//! Filters are also evaluated by a small reference evaluator of the grammar (CEL semantics as documented in
//! `policy::filter`: a null ordered or called on is an error, a null is unequal to any value, commutative
//! `&&`/`||`, `exists`/`all`), which must agree with `Filter::matches`; deliberately broken filters must not
//! compile (and those subscriptions must release nothing).
//!
//! `the_property_catches_broken_routers` keeps the property honest: it runs the same checks against routers
//! broken on purpose (a view wider than granted, status, expiry or filter ignored, treatments skipped, free text
//! not redacted) and requires each to be caught by the check meant for it.
//!
//! `PROPTEST_CASES=<n>` runs more cases than the default 200.
//!
//! The parts: `records.rs` draws the records, `filters.rs` the filters and their reference evaluator,
//! `subscriptions.rs` the subscriptions and control states, `checks.rs` checks a case's releases, `sabotage.rs`
//! breaks routers on purpose; the tests themselves are here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Instant;

use apache_avro::schema::Schema;
use apache_avro::types::Value;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{json, Value as Json};
use unsilo_bus::wire;
use unsilo_hub::control::ControlState;
use unsilo_hub::router::{Release, RoutingTable};
use unsilo_policy::filter::Filter;
use unsilo_policy::model::{
    Approval, Channel, FieldRule, Subscription, SubscriptionSpec, SubscriptionStatus, Treatment,
};
use unsilo_policy::treat::PseudonymKey;
use unsilo_policy::view::{ViewError, ViewPlan};
use unsilo_schemas::{PiiKind, SharedSchema};

mod checks;
mod filters;
mod records;
mod sabotage;
mod subscriptions;

use checks::*;
use filters::*;
use records::*;
use sabotage::*;
use subscriptions::*;

const CASES: u32 = 200;

#[test]
fn routing_never_leaks() {
    let stats = Stats::default();
    let started = Instant::now();
    let mut runner = TestRunner::new(Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CASES),
        // Nothing is written next to the sources; a failure prints the minimal input instead.
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&any_case(), |case| run_case(&case, &stats, Sabotage::None));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => panic!(
            "routing property failed: {}\nminimal case: {case:#?}",
            reason.message()
        ),
        Err(e) => panic!("{e}"),
    }
    let n = |c: &AtomicUsize| c.load(AtomicOrdering::Relaxed);
    eprintln!(
        "routing_never_leaks: {} cases in {:.1?}; {} subscription checks, {} releases; withheld by status {}, \
         by expiry {}, by filter {}, by the NOT_SHARED gate {}, by the CORE gate {}; not compiling {}; filters \
         erring at run time {}; masked/pseudonymised values {}; ID/mobile absence checks {}; releases with an \
         ID/phone field in clear {}",
        n(&stats.cases),
        started.elapsed(),
        n(&stats.subscriptions),
        n(&stats.releases),
        n(&stats.withheld_by_status),
        n(&stats.withheld_by_expiry),
        n(&stats.withheld_by_filter),
        n(&stats.withheld_not_shared),
        n(&stats.withheld_core),
        n(&stats.broken),
        n(&stats.filter_errors),
        n(&stats.masked_or_pseudonymised),
        n(&stats.secrets_checked),
        n(&stats.cert_or_phone_clear),
    );
    // The properties were exercised, not vacuously true.
    assert!(
        n(&stats.releases) >= 50,
        "too few releases to mean anything"
    );
    assert!(
        n(&stats.withheld_by_status) >= 20,
        "too few non-active matching subscriptions"
    );
    assert!(
        n(&stats.withheld_by_expiry) >= 5,
        "too few expired active subscriptions"
    );
    assert!(
        n(&stats.withheld_by_filter) >= 20,
        "too few filtered-out records"
    );
    assert!(
        n(&stats.withheld_not_shared) >= 5 && n(&stats.withheld_core) >= 5,
        "too few records held back by the classification gates"
    );
    assert!(n(&stats.secrets_checked) >= 100, "too few ID/mobile checks");
    assert!(
        n(&stats.masked_or_pseudonymised) >= 50,
        "too few treated values"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Hand-built lifecycle cases
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn revoked_and_expired_subscriptions_get_nothing_an_identical_active_one_does() {
    let schema = "grid_event";
    let record = decoded_record(
        schema,
        &unsilo_schemas::example_record(schema).expect("example"),
    );
    let rules = vec![
        FieldRule {
            field: "event_no".into(),
            treatment: Treatment::Clear,
        },
        FieldRule {
            field: "parties.cert_no".into(),
            treatment: Treatment::Pseudonymise,
        },
        FieldRule {
            field: "description".into(),
            treatment: Treatment::Clear,
        },
    ];
    let filter = Expr::Atom(Atom::Const(true));
    let now = NOW_MS;
    let cases = [
        ("revoked", SubscriptionStatus::Revoked, None),
        ("expired", SubscriptionStatus::Expired, Some(now - 60_000)),
        // Past its expiry but not yet marked expired by the lifecycle: the router must stop by itself.
        ("lapsed", SubscriptionStatus::Active, Some(now - 1)),
        ("at-expiry", SubscriptionStatus::Active, Some(now)),
        ("active", SubscriptionStatus::Active, Some(now + 60_000)),
    ];
    let mut state = ControlState::default();
    for (i, (name, status, expiry)) in cases.iter().enumerate() {
        let mut s = subscription(
            schema,
            i,
            &rules,
            &filter,
            *status,
            *expiry,
            Some(100 + i as i32),
        );
        s.agency = "civil-affairs".into();
        s.name = (*name).into();
        s.id = Subscription::id_of(&s.agency, &s.name);
        state.subscriptions.insert(s.id.clone(), s);
    }
    let table = RoutingTable::build(&state, schema, &RoutingTable::default());
    let mut out = Vec::new();
    table.route(&record, now, &key(), &mut out).expect("routes");
    let got: Vec<&str> = out
        .iter()
        .map(|r| table.subscriptions[r.route].subscription.as_str())
        .collect();
    assert_eq!(got, ["civil-affairs.active"]);
    let (id, mut body) = wire::decode(&out[0].value).expect("framed");
    assert_eq!(id, 104);
    let route = &table.subscriptions[out[0].route];
    let view = apache_avro::from_avro_datum(route.compiled.plan.schema(), &mut body, None)
        .expect("decodes");
    let text = format!("{view:?}");
    assert!(text.contains("SJ20240618000173"), "{text}");
    assert!(!text.contains("610921196803124579"), "{text}");

    // Revoking the active one (table rebuilt on the previous one, as the router does) stops it too.
    let mut revoked = state.clone();
    let s = revoked
        .subscriptions
        .get_mut("civil-affairs.active")
        .expect("active");
    s.status = SubscriptionStatus::Revoked;
    s.revision += 1;
    let table = RoutingTable::build(&revoked, schema, &table);
    let mut out = Vec::new();
    table.route(&record, now, &key(), &mut out).expect("routes");
    assert!(out.is_empty(), "{} releases after revocation", out.len());
    // And the active one, routed later than its expiry, gets nothing.
    let table = RoutingTable::build(&state, schema, &table);
    let mut out = Vec::new();
    table
        .route(&record, now + 60_000, &key(), &mut out)
        .expect("routes");
    assert!(out.is_empty(), "{} releases at expiry", out.len());
}

/// The property can fail: each broken router is caught within a few hundred cases (deterministic seed).
#[test]
fn the_property_catches_broken_routers() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{RngAlgorithm, TestRng};

    let must_release_nothing: &[&str] = &["got a release it must not have"];
    for (sabotage, caught_by) in [
        (Sabotage::WidenView, &["not granted by"][..]),
        (Sabotage::IgnoreStatus, must_release_nothing),
        (Sabotage::IgnoreExpiry, must_release_nothing),
        (Sabotage::IgnoreFilter, must_release_nothing),
        (Sabotage::CoreToEveryone, must_release_nothing),
        (
            Sabotage::UntreatedValues,
            &[
                "is no pseudonym",
                "contains the original",
                "non-string",
                "contains the address",
            ][..],
        ),
        (
            Sabotage::UnredactedText,
            &["received ID number", "received mobile"][..],
        ),
    ] {
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        let stats = Stats::default();
        let strategy = any_case();
        let caught = (0..300).find_map(|_| {
            let case = strategy.new_tree(&mut runner).expect("case").current();
            run_case(&case, &stats, sabotage).err()
        });
        let Some(reason) = caught else {
            panic!("{sabotage:?}: 300 cases and the property never failed");
        };
        let reason = message(&reason);
        let first_line = reason.lines().next().unwrap_or_default();
        assert!(
            caught_by.iter().any(|c| first_line.contains(c)),
            "{sabotage:?} caught by the wrong check: {first_line}"
        );
        eprintln!("{sabotage:?} caught: {first_line}");
    }
}
