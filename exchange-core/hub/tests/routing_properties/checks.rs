//! The checks every release must pass (who gets it, what it holds, how it is treated, the classification
//! gates), and running one case through a table and its rebuilt successor.

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Checking releases
// ---------------------------------------------------------------------------------------------------------------

/// The record as the router sees it: converted, encoded and decoded with the shared schema.
pub(crate) fn decoded_record(schema: &str, json: &Json) -> Value {
    let avro = shared(schema).avro();
    let value = unsilo_schemas::json_to_avro(json, avro)
        .unwrap_or_else(|e| panic!("generated {schema} record does not convert: {e}\n{json:#}"));
    let bytes = apache_avro::to_avro_datum(avro, value).expect("encodes");
    apache_avro::from_avro_datum(avro, &mut bytes.as_slice(), None).expect("decodes")
}

/// The treatment a leaf path gets under `rules`: that of the most specific rule naming it or an ancestor.
pub(crate) fn effective(rules: &[FieldRule], path: &str) -> Option<Treatment> {
    rules
        .iter()
        .filter(|r| r.field == path || path.starts_with(&format!("{}.", r.field)))
        .max_by_key(|r| r.field.len())
        .map(|r| r.treatment)
}

/// Leaf field paths of the shared schema (tag paths no other path extends), with their PII kind.
pub(crate) fn leaf_tags(shared: &SharedSchema) -> Vec<(String, Option<PiiKind>)> {
    let tags = shared.field_tags();
    tags.iter()
        .filter(|t| {
            let prefix = format!("{}.", t.path);
            !tags.iter().any(|o| o.path.starts_with(&prefix))
        })
        .map(|t| (t.path.clone(), t.pii))
        .collect()
}

/// Leaf paths present in a value (arrays and unions transparent; an empty array or map counts as its own path).
pub(crate) fn value_leaves(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Record(fields) => {
            for (n, fv) in fields {
                value_leaves(fv, &join(prefix, n), out);
            }
        }
        Value::Union(_, inner) => value_leaves(inner, prefix, out),
        Value::Array(items) if !items.is_empty() => {
            items.iter().for_each(|i| value_leaves(i, prefix, out))
        }
        Value::Map(items) if !items.is_empty() => {
            items.values().for_each(|i| value_leaves(i, prefix, out))
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// Leaf paths of a view schema.
pub(crate) fn schema_leaves<'s>(
    s: &'s Schema,
    prefix: &str,
    records: &mut HashMap<String, &'s Schema>,
    out: &mut BTreeSet<String>,
) {
    match s {
        Schema::Record(r) => {
            records.insert(r.name.fullname(None), s);
            for f in &r.fields {
                schema_leaves(&f.schema, &join(prefix, &f.name), records, out);
            }
        }
        Schema::Array(a) => schema_leaves(&a.items, prefix, records, out),
        Schema::Map(m) => schema_leaves(&m.types, prefix, records, out),
        Schema::Union(u) => {
            for b in u.variants() {
                if *b != Schema::Null {
                    schema_leaves(b, prefix, records, out);
                }
            }
        }
        Schema::Ref { name } => match records.get(&name.fullname(None)).copied() {
            Some(r) => schema_leaves(r, prefix, records, out),
            None => {
                out.insert(prefix.to_string());
            }
        },
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// Pairs every leaf of a view value with the source value it came from.
pub(crate) fn pair_leaves<'a>(
    src: &'a Value,
    view: &'a Value,
    path: &str,
    out: &mut Vec<(String, &'a Value, &'a Value)>,
) -> Result<(), String> {
    match (src, view) {
        (Value::Record(s), Value::Record(v)) => {
            for (n, vv) in v {
                let fpath = join(path, n);
                let sv = s
                    .iter()
                    .find(|(sn, _)| sn == n)
                    .map(|(_, sv)| sv)
                    .ok_or_else(|| format!("view field {fpath} is not in the shared record"))?;
                pair_leaves(sv, vv, &fpath, out)?;
            }
            Ok(())
        }
        (Value::Array(s), Value::Array(v)) => {
            if s.len() != v.len() {
                return Err(format!(
                    "{path}: {} elements released of {}",
                    v.len(),
                    s.len()
                ));
            }
            for (si, vi) in s.iter().zip(v) {
                pair_leaves(si, vi, path, out)?;
            }
            Ok(())
        }
        (Value::Union(_, s), Value::Union(_, v)) => pair_leaves(s, v, path, out),
        (Value::Union(_, s), v) => pair_leaves(s, v, path, out),
        (s, Value::Union(_, v)) => pair_leaves(s, v, path, out),
        (s, v) => {
            out.push((path.to_string(), s, v));
            Ok(())
        }
    }
}

pub(crate) fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) | Value::Enum(_, s) => out.push(s),
        Value::Record(fields) => fields.iter().for_each(|(_, f)| strings(f, out)),
        Value::Union(_, inner) => strings(inner, out),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Map(items) => items.iter().for_each(|(k, i)| {
            out.push(k);
            strings(i, out);
        }),
        _ => {}
    }
}

/// A pseudonym is 32 hex digits: a short all-hex original can sit in it by chance, so only longer or non-hex
/// originals are held to "never contained".
pub(crate) fn checkable(original: &str) -> bool {
    let n = original.chars().count();
    n >= 3
        && !(n < 12 && original.chars().all(|c| c.is_ascii_hexdigit()))
        && !original.chars().all(|c| c == '*')
}

pub(crate) fn is_pseudonym(s: &str) -> bool {
    s.len() == 35
        && s.starts_with("p1_")
        && s[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Coverage counters, printed at the end (and checked: the property must have been exercised).
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) cases: AtomicUsize,
    pub(crate) subscriptions: AtomicUsize,
    pub(crate) releases: AtomicUsize,
    pub(crate) withheld_by_status: AtomicUsize,
    pub(crate) withheld_by_expiry: AtomicUsize,
    pub(crate) withheld_by_filter: AtomicUsize,
    pub(crate) withheld_not_shared: AtomicUsize,
    pub(crate) withheld_core: AtomicUsize,
    pub(crate) broken: AtomicUsize,
    pub(crate) secrets_checked: AtomicUsize,
    pub(crate) masked_or_pseudonymised: AtomicUsize,
    pub(crate) cert_or_phone_clear: AtomicUsize,
    pub(crate) filter_errors: AtomicUsize,
}

pub(crate) fn bump(counter: &AtomicUsize, n: usize) {
    counter.fetch_add(n, AtomicOrdering::Relaxed);
}

/// An enum symbol of the record's envelope, read independently of the router.
pub(crate) fn envelope_symbol<'r>(record: &'r Value, name: &str) -> Option<&'r str> {
    let Value::Record(fields) = record else {
        return None;
    };
    let (_, Value::Record(envelope)) = fields.iter().find(|(n, _)| n == "envelope")? else {
        return None;
    };
    match envelope.iter().find(|(n, _)| n == name)? {
        (_, Value::Enum(_, symbol)) => Some(symbol.as_str()),
        _ => None,
    }
}

/// How many different operators approved the subscription.
pub(crate) fn distinct_approvers(s: &Subscription) -> usize {
    s.approvals
        .iter()
        .map(|a| a.operator.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}

/// Routes `record` through a table built from `built` and checks every release. `label` says which table.
pub(crate) fn check_table(
    case: &Case,
    record: &Value,
    built: &[Built],
    table: &RoutingTable,
    label: &str,
    stats: &Stats,
    sabotage: Sabotage,
) -> Result<(), TestCaseError> {
    let shared = shared(case.schema);
    let leaves = leaf_tags(shared);
    let mut releases: Vec<Release> = Vec::new();
    table
        .route(record, case.now_ms, &key(), &mut releases)
        .map_err(|e| TestCaseError::fail(format!("{label}: route failed: {e}")))?;
    if sabotage == Sabotage::UnredactedText {
        unredact(case.schema, record, built, table, &mut releases);
    }

    // Property 1: exactly the delivering subscriptions whose filter matches.
    let mut released: BTreeMap<String, &Release> = BTreeMap::new();
    for r in &releases {
        let route = table.subscriptions.get(r.route).ok_or_else(|| {
            TestCaseError::fail(format!(
                "{label}: release of route {} of {}",
                r.route,
                table.subscriptions.len()
            ))
        })?;
        if released.insert(route.subscription.clone(), r).is_some() {
            return Err(TestCaseError::fail(format!(
                "{label}: {} got the record twice",
                route.subscription
            )));
        }
    }
    if released.contains_key("foreign.everything") {
        return Err(TestCaseError::fail(format!(
            "{label}: a {} record went to a subscription of another schema",
            case.schema
        )));
    }
    for b in built {
        let s = &b.subscription;
        let spec = s.spec();
        let filter = Filter::compile(&spec.filter, shared.avro());
        if let Ok(f) = &filter {
            // The reference evaluator must agree with the product's filter.
            let reference = eval(&b.filter, &case.record);
            prop_assert_eq!(
                f.matches(record),
                reference == Ok(true),
                "{}: filter `{}` disagrees with the reference evaluation ({:?})",
                label,
                spec.filter,
                reference
            );
            if reference.is_err() {
                bump(&stats.filter_errors, 1);
            }
        } else {
            prop_assert!(
                b.filter.broken(),
                "{}: filter `{}` of the supported grammar does not compile: {}",
                label,
                spec.filter,
                filter
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
        }
        if b.filter.broken() {
            prop_assert!(
                filter.is_err(),
                "{}: broken filter `{}` compiled",
                label,
                spec.filter
            );
        }
        let active = s.status == SubscriptionStatus::Active && s.view_schema_id.is_some();
        let live = spec.expires_at_ms.is_none_or(|e| case.now_ms < e);
        let matches = filter.as_ref().is_ok_and(|f| f.matches(record));
        let share = envelope_symbol(record, "share_attribute");
        let grade = envelope_symbol(record, "data_grade");
        // Fail closed: only GENERAL and IMPORTANT are below CORE; UNKNOWN or a missing grade is gated as CORE.
        let below_core = matches!(grade, Some("GENERAL" | "IMPORTANT"));
        let gates_pass = share != Some("NOT_SHARED") && (below_core || distinct_approvers(s) >= 2);
        let expected = active && live && b.compiles && matches && gates_pass;
        let got = released.contains_key(&s.id);
        if active && live && b.compiles && matches && !gates_pass {
            if share == Some("NOT_SHARED") {
                bump(&stats.withheld_not_shared, 1);
            } else {
                bump(&stats.withheld_core, 1);
            }
        }
        if !b.compiles {
            bump(&stats.broken, 1);
        } else if !active && matches {
            bump(&stats.withheld_by_status, 1);
        } else if active && !live && matches {
            bump(&stats.withheld_by_expiry, 1);
        } else if active && live && !matches {
            bump(&stats.withheld_by_filter, 1);
        }
        prop_assert!(
            got == expected,
            "{}: subscription {} (status {}, expires {:?}, now {}, view id {:?}, compiles {}, filter `{}` matches \
             {}, share {:?}, grade {:?}, approvers {}) {}",
            label,
            s.id,
            s.status.as_str(),
            spec.expires_at_ms,
            case.now_ms,
            s.view_schema_id,
            b.compiles,
            spec.filter,
            matches,
            share,
            grade,
            distinct_approvers(s),
            if got {
                "got a release it must not have"
            } else {
                "got no release"
            }
        );
    }
    bump(&stats.subscriptions, built.len());
    bump(&stats.releases, releases.len());

    // Properties 2 and 3, per release.
    for b in built {
        let Some(release) = released.get(&b.subscription.id) else {
            continue;
        };
        let s = &b.subscription;
        let route = &table.subscriptions[release.route];
        prop_assert_eq!(route.view_schema_id, s.view_schema_id.unwrap_or(-1));
        prop_assert_eq!(&route.topic, &s.topic());
        let mut sorted = b.rules.clone();
        sorted.sort_by(|x, y| x.field.cmp(&y.field));
        prop_assert_eq!(
            &route.fields,
            &sorted,
            "{}: route of {} audits other fields",
            label,
            s.id
        );

        let (id, mut body) = wire::decode(&release.value)
            .map_err(|e| TestCaseError::fail(format!("{label}: {}: bad frame: {e}", s.id)))?;
        prop_assert_eq!(i64::from(id), i64::from(s.view_schema_id.unwrap_or(-1)));
        let raw = body;
        let view_schema = route.compiled.plan.schema();
        let view = apache_avro::from_avro_datum(view_schema, &mut body, None).map_err(|e| {
            TestCaseError::fail(format!("{label}: {}: release does not decode: {e}", s.id))
        })?;
        prop_assert!(
            body.is_empty(),
            "{}: {} trailing bytes after the view record",
            label,
            body.len()
        );

        let granted = |path: &str| effective(&b.rules, path).is_some_and(|t| t != Treatment::Drop);
        let granted_leaves: Vec<&str> = leaves
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| granted(p))
            .collect();
        let allowed = |p: &str| {
            granted_leaves.contains(&p)
                || granted_leaves
                    .iter()
                    .any(|g| g.starts_with(&format!("{p}.")))
        };
        let mut present = BTreeSet::new();
        value_leaves(&view, "", &mut present);
        let mut in_schema = BTreeSet::new();
        schema_leaves(view_schema, "", &mut HashMap::new(), &mut in_schema);
        for p in present.iter().chain(&in_schema) {
            prop_assert!(
                allowed(p),
                "{}: {} released `{}`, not granted by {:?}\nview: {:?}",
                label,
                s.id,
                p,
                b.rules,
                view
            );
        }

        // Treatments, leaf by leaf.
        let mut pairs = Vec::new();
        pair_leaves(record, &view, "", &mut pairs)
            .map_err(|e| TestCaseError::fail(format!("{label}: {}: {e}", s.id)))?;
        let pii = |p: &str| leaves.iter().find(|(l, _)| l == p).and_then(|(_, k)| *k);
        let cert_clear = leaves.iter().any(|(p, k)| {
            *k == Some(PiiKind::CertNo) && effective(&b.rules, p) == Some(Treatment::Clear)
        });
        let phone_clear = leaves.iter().any(|(p, k)| {
            *k == Some(PiiKind::Phone) && effective(&b.rules, p) == Some(Treatment::Clear)
        });
        if cert_clear || phone_clear {
            bump(&stats.cert_or_phone_clear, 1);
        }
        for (path, src, out) in &pairs {
            let treatment = effective(&b.rules, path);
            if matches!(src, Value::Null) {
                prop_assert_eq!(
                    *out,
                    &Value::Null,
                    "{}: {}: null released as a value",
                    label,
                    path
                );
                continue;
            }
            match treatment {
                Some(Treatment::Clear) => {
                    if pii(path) != Some(PiiKind::FreeText) || (cert_clear && phone_clear) {
                        prop_assert_eq!(*out, *src, "{}: {}: clear value changed", label, path);
                    }
                }
                Some(Treatment::Mask) => {
                    bump(&stats.masked_or_pseudonymised, 1);
                    let (Value::String(original), Value::String(masked)) = (src, out) else {
                        return Err(TestCaseError::fail(format!(
                            "{label}: {path}: masked non-string {out:?}"
                        )));
                    };
                    let original = original.trim();
                    prop_assert_eq!(masked.chars().count(), original.chars().count());
                    if original.chars().count() >= 3 && !original.chars().all(|c| c == '*') {
                        prop_assert!(
                            !masked.contains(original),
                            "{}: {}: masked {:?} contains the original {:?}",
                            label,
                            path,
                            masked,
                            original
                        );
                    }
                }
                Some(Treatment::Pseudonymise) => {
                    bump(&stats.masked_or_pseudonymised, 1);
                    let (Value::String(original), Value::String(p)) = (src, out) else {
                        return Err(TestCaseError::fail(format!(
                            "{label}: {path}: pseudonymised non-string {out:?}"
                        )));
                    };
                    prop_assert!(
                        is_pseudonym(p),
                        "{}: {}: {:?} is no pseudonym",
                        label,
                        path,
                        p
                    );
                    let original = original.trim();
                    if checkable(original) {
                        prop_assert!(
                            !p.contains(original),
                            "{}: {}: pseudonym {:?} contains the original {:?}",
                            label,
                            path,
                            p,
                            original
                        );
                    }
                }
                Some(Treatment::Generalise) => {
                    if let (Value::String(original), Value::String(g)) = (src, out) {
                        if pii(path) == Some(PiiKind::Address) {
                            prop_assert!(
                                !g.contains(original.trim()),
                                "{}: {}: generalised {:?} contains the address",
                                label,
                                path,
                                g
                            );
                        }
                    }
                }
                other => {
                    return Err(TestCaseError::fail(format!(
                        "{label}: {}: {path} released with treatment {other:?}",
                        s.id
                    )))
                }
            }
        }

        // No ID number or mobile anywhere, unless released in clear.
        let mut texts = Vec::new();
        strings(&view, &mut texts);
        let raw_text = String::from_utf8_lossy(raw).to_ascii_uppercase();
        for id in &case.ids {
            if cert_clear {
                continue;
            }
            bump(&stats.secrets_checked, 1);
            let upper = id.to_ascii_uppercase();
            for t in &texts {
                prop_assert!(
                    !t.to_ascii_uppercase().contains(&upper),
                    "{}: {} received ID number {} without an ID-number field in clear: {:?}",
                    label,
                    s.id,
                    id,
                    t
                );
            }
            prop_assert!(
                !raw_text.contains(&upper),
                "{}: {}: ID number {} in the release bytes",
                label,
                s.id,
                id
            );
        }
        for phone in &case.phones {
            if phone_clear {
                continue;
            }
            bump(&stats.secrets_checked, 1);
            for t in &texts {
                prop_assert!(
                    !t.contains(phone.as_str()),
                    "{}: {} received mobile {} without a phone field in clear: {:?}",
                    label,
                    s.id,
                    phone,
                    t
                );
            }
            prop_assert!(
                !raw_text.contains(phone.as_str()),
                "{}: {}: mobile {} in the release bytes",
                label,
                s.id,
                phone
            );
        }
    }
    Ok(())
}

pub(crate) fn describe(built: &[Built]) -> String {
    let mut out = String::new();
    for b in built {
        let s = &b.subscription;
        let _ = writeln!(
            out,
            "  {} status={} view_id={:?} expires={:?} compiles={} filter=`{}` rules={:?}",
            s.id,
            s.status.as_str(),
            s.view_schema_id,
            s.spec().expires_at_ms,
            b.compiles,
            s.spec().filter,
            b.rules
                .iter()
                .map(|r| format!("{}:{}", r.field, r.treatment.as_str()))
                .collect::<Vec<_>>()
        );
    }
    out
}

pub(crate) fn message(e: &TestCaseError) -> String {
    match e {
        TestCaseError::Fail(r) | TestCaseError::Reject(r) => r.message().to_owned(),
    }
}

pub(crate) fn run_case(
    case: &Case,
    stats: &Stats,
    sabotage: Sabotage,
) -> Result<(), TestCaseError> {
    let record = decoded_record(case.schema, &case.record);
    let (first, second) = states(case);
    let context = |label: &str, built: &[Built]| {
        format!(
            "{label} table, {} record, now {}:\nrecord: {:#}\nsubscriptions:\n{}",
            case.schema,
            case.now_ms,
            case.record,
            describe(built)
        )
    };
    let mut t1 = RoutingTable::build(
        &control_state(case.schema, &first),
        case.schema,
        &RoutingTable::default(),
    );
    if sabotage != Sabotage::None {
        t1 = sabotaged(case.schema, &first, t1, sabotage);
    }
    check_table(case, &record, &first, &t1, "first", stats, sabotage).map_err(|e| {
        TestCaseError::fail(format!("{}\n{}", message(&e), context("first", &first)))
    })?;
    if sabotage != Sabotage::None {
        return Ok(());
    }
    // The same state rebuilt on itself: reuse must not change anything.
    let again = RoutingTable::build(&control_state(case.schema, &first), case.schema, &t1);
    check_table(case, &record, &first, &again, "rebuilt", stats, sabotage).map_err(|e| {
        TestCaseError::fail(format!("{}\n{}", message(&e), context("rebuilt", &first)))
    })?;
    // The changed state, built on the first table.
    let t2 = RoutingTable::build(&control_state(case.schema, &second), case.schema, &t1);
    check_table(case, &record, &second, &t2, "changed", stats, sabotage).map_err(|e| {
        TestCaseError::fail(format!("{}\n{}", message(&e), context("changed", &second)))
    })?;
    bump(&stats.cases, 1);
    Ok(())
}
