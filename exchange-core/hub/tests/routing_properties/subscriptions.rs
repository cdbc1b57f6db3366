//! Subscriptions drawn for a case (granted rules, treatments, filters, status, expiry, changes between two
//! states), and the control states built from them.

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
pub(crate) enum Expiry {
    None,
    /// Long past.
    Past(i64),
    /// Exactly now: expired (delivery stops *at* the expiry).
    Now,
    /// One millisecond from now: still delivering.
    JustAfter,
    Future(i64),
}

impl Expiry {
    pub(crate) fn at(self, now: i64) -> Option<i64> {
        match self {
            Self::None => None,
            Self::Past(d) => Some(now - d),
            Self::Now => Some(now),
            Self::JustAfter => Some(now + 1),
            Self::Future(d) => Some(now + d),
        }
    }
}

pub(crate) fn expiry() -> impl Strategy<Value = Expiry> {
    prop_oneof![
        3 => Just(Expiry::None),
        2 => (1i64..10_000_000_000).prop_map(Expiry::Past),
        1 => Just(Expiry::Now),
        1 => Just(Expiry::JustAfter),
        2 => (2i64..10_000_000_000).prop_map(Expiry::Future),
    ]
}

pub(crate) fn status() -> impl Strategy<Value = SubscriptionStatus> {
    prop_oneof![
        2 => Just(SubscriptionStatus::Requested),
        2 => Just(SubscriptionStatus::Approved),
        6 => Just(SubscriptionStatus::Active),
        1 => Just(SubscriptionStatus::Rejected),
        2 => Just(SubscriptionStatus::Revoked),
        2 => Just(SubscriptionStatus::Expired),
    ]
}

/// How a subscription differs in the second state (the table is rebuilt with the first one as `previous`).
#[derive(Clone, Debug)]
pub(crate) enum Change {
    Same,
    Status(SubscriptionStatus),
    Filter(Expr),
    Expiry(Expiry),
    /// The operator narrowed the grant: its first rule is gone.
    Narrowed,
    /// Re-registered view schema.
    ViewId,
}

pub(crate) fn change(schema: &'static str) -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => Just(Change::Same),
        4 => status().prop_map(Change::Status),
        1 => filter(schema).prop_map(Change::Filter),
        1 => expiry().prop_map(Change::Expiry),
        1 => Just(Change::Narrowed),
        1 => Just(Change::ViewId),
    ]
}

/// One generated subscription: rules as (index into the schema's tag paths, treatment index).
#[derive(Clone, Debug)]
pub(crate) struct SubGen {
    pub(crate) rules: Vec<(usize, usize)>,
    /// Keep rules the view cannot honour instead of pruning them (the subscription must then never route).
    pub(crate) keep_invalid: bool,
    pub(crate) filter: Expr,
    pub(crate) status: SubscriptionStatus,
    pub(crate) expiry: Expiry,
    /// Whether a non-active subscription has a view schema id (an approved one that is activating, a revoked one).
    pub(crate) view_id: bool,
    pub(crate) change: Change,
}

pub(crate) fn sub_gen(schema: &'static str) -> impl Strategy<Value = SubGen> {
    (
        prop::collection::vec((0usize..1000, 0usize..TREATMENTS.len()), 1..10),
        prop::bool::weighted(0.05),
        filter(schema),
        status(),
        expiry(),
        any::<bool>(),
        change(schema),
    )
        .prop_map(
            |(rules, keep_invalid, filter, status, expiry, view_id, change)| SubGen {
                rules,
                keep_invalid,
                filter,
                status,
                expiry,
                view_id,
                change,
            },
        )
}

/// One generated case.
#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub(crate) schema: &'static str,
    pub(crate) record: Json,
    pub(crate) ids: Vec<String>,
    pub(crate) phones: Vec<String>,
    pub(crate) subs: Vec<SubGen>,
    pub(crate) now_ms: i64,
}

pub(crate) fn case_of(
    schema: &'static str,
    record: impl Strategy<Value = Json> + 'static,
) -> BoxedStrategy<Case> {
    (
        record,
        prop::collection::vec(id_number(), 1..4),
        prop::collection::vec(mobile(), 1..4),
        prop::collection::vec(sub_gen(schema), 1..6),
        0i64..1_000,
    )
        .prop_map(move |(mut record, ids, phones, subs, jitter)| {
            resolve(&mut record, &ids, &phones);
            Case {
                schema,
                record,
                ids,
                phones,
                subs,
                now_ms: NOW_MS + jitter,
            }
        })
        .boxed()
}

pub(crate) fn any_case() -> impl Strategy<Value = Case> {
    prop_oneof![
        case_of("grid_event", grid_event_record()),
        case_of("household", household_record()),
        case_of("resident", resident_record()),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// Building the control state
// ---------------------------------------------------------------------------------------------------------------

/// What the test knows of a subscription it put into the state.
#[derive(Clone, Debug)]
pub(crate) struct Built {
    pub(crate) subscription: Subscription,
    /// The granted rules (what the router must apply).
    pub(crate) rules: Vec<FieldRule>,
    pub(crate) filter: Expr,
    /// The rules build a view and the filter compiles: the subscription is routable at all.
    pub(crate) compiles: bool,
}

pub(crate) fn spec(
    schema: &str,
    fields: Vec<FieldRule>,
    filter: String,
    expires_at_ms: Option<i64>,
) -> SubscriptionSpec {
    SubscriptionSpec {
        schema: schema.to_owned(),
        filter,
        fields,
        purpose: "property test".into(),
        legal_basis: Some("test".into()),
        scenario: None,
        scope: None,
        expires_at_ms,
        backfill_from_ms: None,
        retain_days: None,
        channel: Channel::Pull,
    }
}

/// Every top-level field in clear: what the requests ask for, so that a router that used the request instead of
/// the grant would release far more than granted.
pub(crate) fn everything(shared: &SharedSchema) -> Vec<FieldRule> {
    shared
        .field_tags()
        .iter()
        .filter(|t| !t.path.contains('.'))
        .map(|t| FieldRule {
            field: t.path.clone(),
            treatment: Treatment::Clear,
        })
        .collect()
}

/// The rules of `gen` over `shared`, without the ones the view cannot honour (unless `keep_invalid`); `None` if
/// nothing is left.
pub(crate) fn rules_of(
    shared: &SharedSchema,
    gen: &SubGen,
    view_name: &str,
) -> Option<(Vec<FieldRule>, bool)> {
    let paths: Vec<&str> = shared
        .field_tags()
        .iter()
        .map(|t| t.path.as_str())
        .collect();
    let mut rules: Vec<FieldRule> = Vec::new();
    for &(p, t) in &gen.rules {
        let field = paths[p % paths.len()];
        if rules.iter().any(|r| r.field == field) {
            continue;
        }
        rules.push(FieldRule {
            field: field.to_owned(),
            treatment: TREATMENTS[t],
        });
    }
    loop {
        match ViewPlan::build(shared, &rules, view_name) {
            Ok(_) => return Some((rules, true)),
            Err(_) if gen.keep_invalid => return Some((rules, false)),
            Err(
                ViewError::NotApplicable { path, .. }
                | ViewError::NoGeneralisation { path }
                | ViewError::ConflictingRules { path, .. },
            ) => rules.retain(|r| r.field != path),
            Err(ViewError::EmptyRules) => return None,
            Err(e) => panic!("unexpected view error for {rules:?}: {e}"),
        }
    }
}

pub(crate) fn subscription(
    schema: &str,
    i: usize,
    rules: &[FieldRule],
    filter: &Expr,
    status: SubscriptionStatus,
    expiry: Option<i64>,
    view_id: Option<i32>,
) -> Subscription {
    let granted = spec(schema, rules.to_vec(), filter.render(), expiry);
    let has_grant = !matches!(
        status,
        SubscriptionStatus::Requested | SubscriptionStatus::Rejected
    );
    let (requested, granted) = if has_grant {
        (
            spec(schema, everything(shared(schema)), "true".into(), None),
            Some(granted),
        )
    } else {
        (granted, None)
    };
    let agency = format!("agency-{i}");
    let name = format!("sub-{i}");
    Subscription {
        id: Subscription::id_of(&agency, &name),
        agency,
        name,
        status,
        requested,
        granted,
        approved_above_clearance: Vec::new(),
        view_schema_id: view_id,
        requested_at_ms: NOW_MS - 86_400_000,
        decided_by: None,
        decided_at_ms: None,
        reason: None,
        // Every other subscription was approved by two different operators, so CORE-grade records can reach it.
        approvals: (0..if i.is_multiple_of(2) { 2 } else { 1 })
            .map(|n| Approval {
                operator: format!("operator-{n}"),
                at_ms: NOW_MS - 3_600_000,
                provider: None,
            })
            .collect(),
        auto_approved: false,
        deadlines: None,
        disposal: None,
        held_at: None,
        revision: 1,
    }
}

/// The two control states of a case: as generated, and after each subscription's [`Change`].
pub(crate) fn states(case: &Case) -> (Vec<Built>, Vec<Built>) {
    let shared = shared(case.schema);
    let mut first = Vec::new();
    let mut second = Vec::new();
    for (i, gen) in case.subs.iter().enumerate() {
        let view_name = format!("agency-{i}.sub-{i}");
        let Some((rules, rules_ok)) = rules_of(shared, gen, &view_name) else {
            continue;
        };
        let filter_ok = Filter::compile(&gen.filter.render(), shared.avro()).is_ok();
        let view_id = 1000 + i as i32;
        let has_view_id = gen.status == SubscriptionStatus::Active || gen.view_id;
        let sub = subscription(
            case.schema,
            i,
            &rules,
            &gen.filter,
            gen.status,
            gen.expiry.at(case.now_ms),
            has_view_id.then_some(view_id),
        );
        first.push(Built {
            subscription: sub.clone(),
            rules: rules.clone(),
            filter: gen.filter.clone(),
            compiles: rules_ok && filter_ok,
        });
        let mut status = gen.status;
        let mut filter = gen.filter.clone();
        let mut expiry = gen.expiry.at(case.now_ms);
        let mut later_rules = rules.clone();
        let mut later_view_id = has_view_id.then_some(view_id);
        match &gen.change {
            Change::Same => {}
            Change::Status(s) => {
                status = *s;
                if status == SubscriptionStatus::Active {
                    later_view_id = Some(view_id);
                }
            }
            Change::Filter(f) => filter = f.clone(),
            Change::Expiry(e) => expiry = e.at(case.now_ms),
            Change::Narrowed => {
                if later_rules.len() > 1 {
                    later_rules.remove(0);
                }
            }
            Change::ViewId => later_view_id = later_view_id.map(|v| v + 500),
        }
        let later_rules_ok = ViewPlan::build(shared, &later_rules, &view_name).is_ok();
        let later_filter_ok = Filter::compile(&filter.render(), shared.avro()).is_ok();
        let mut later = subscription(
            case.schema,
            i,
            &later_rules,
            &filter,
            status,
            expiry,
            later_view_id,
        );
        later.revision = 2;
        second.push(Built {
            subscription: later,
            rules: later_rules,
            filter,
            compiles: later_rules_ok && later_filter_ok,
        });
    }
    (first, second)
}

/// A subscription of another schema in the same state: active, everything in clear, `true`; it must never get a
/// record of this schema.
pub(crate) fn foreign(schema: &str) -> Subscription {
    let other = SCHEMAS
        .iter()
        .find(|s| **s != schema)
        .expect("another schema");
    let mut s = subscription(
        other,
        99,
        &everything(shared(other)),
        &Expr::Atom(Atom::Const(true)),
        SubscriptionStatus::Active,
        None,
        Some(9999),
    );
    s.id = "foreign.everything".into();
    s.agency = "foreign".into();
    s.name = "everything".into();
    s
}

pub(crate) fn control_state(schema: &str, built: &[Built]) -> ControlState {
    let mut state = ControlState::default();
    for b in built {
        state
            .subscriptions
            .insert(b.subscription.id.clone(), b.subscription.clone());
    }
    let f = foreign(schema);
    state.subscriptions.insert(f.id.clone(), f);
    state
}
