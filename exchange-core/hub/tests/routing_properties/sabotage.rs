//! Routers broken on purpose, each of which the checks must catch.

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Sabotage: broken routers the checks above must reject
// ---------------------------------------------------------------------------------------------------------------

/// A deliberately broken router, to show that the property fails when routing leaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sabotage {
    /// The real router.
    None,
    /// Each route's view releases one more field, in clear, than granted.
    WidenView,
    /// The table is built as if every subscription were active.
    IgnoreStatus,
    /// Routes forget their expiry.
    IgnoreExpiry,
    /// Routes match every record.
    IgnoreFilter,
    /// Masked, pseudonymised and generalised fields are released in clear.
    UntreatedValues,
    /// Free text is released without redaction.
    UnredactedText,
    /// Every route may receive CORE-grade records, as if two operators had approved each.
    CoreToEveryone,
}

pub(crate) fn sabotaged(
    schema: &str,
    built: &[Built],
    mut table: RoutingTable,
    sabotage: Sabotage,
) -> RoutingTable {
    let shared = shared(schema);
    let rules_of_route = |id: &str| {
        built
            .iter()
            .find(|b| b.subscription.id == id)
            .map(|b| b.rules.clone())
            .unwrap_or_default()
    };
    match sabotage {
        Sabotage::None | Sabotage::UnredactedText => {}
        Sabotage::IgnoreStatus => {
            let all_active: Vec<Built> = built
                .iter()
                .cloned()
                .map(|mut b| {
                    b.subscription.status = SubscriptionStatus::Active;
                    b.subscription.view_schema_id.get_or_insert(4242);
                    if b.subscription.granted.is_none() {
                        b.subscription.granted = Some(b.subscription.requested.clone());
                    }
                    b
                })
                .collect();
            table = RoutingTable::build(
                &control_state(schema, &all_active),
                schema,
                &RoutingTable::default(),
            );
            // Keep the real view schema ids so that only the status is wrong.
            for r in &mut table.subscriptions {
                if let Some(b) = built.iter().find(|b| b.subscription.id == r.subscription) {
                    r.view_schema_id = b.subscription.view_schema_id.unwrap_or(4242);
                }
            }
        }
        Sabotage::IgnoreExpiry => table
            .subscriptions
            .iter_mut()
            .for_each(|r| r.expires_at_ms = None),
        Sabotage::CoreToEveryone => table
            .subscriptions
            .iter_mut()
            .for_each(|r| r.core_allowed = true),
        Sabotage::IgnoreFilter => table
            .subscriptions
            .iter_mut()
            .for_each(|r| r.compiled.filter = Filter::match_all(shared.avro())),
        Sabotage::WidenView => {
            for r in &mut table.subscriptions {
                let rules = rules_of_route(&r.subscription);
                let extra = leaf_tags(shared).into_iter().find_map(|(leaf, _)| {
                    if effective(&rules, &leaf).is_some_and(|t| t != Treatment::Drop) {
                        return None;
                    }
                    let mut wider = rules.clone();
                    wider.retain(|x| x.field != leaf);
                    wider.push(FieldRule {
                        field: leaf,
                        treatment: Treatment::Clear,
                    });
                    ViewPlan::build(shared, &wider, &r.subscription).ok()
                });
                if let Some(plan) = extra {
                    r.compiled.plan = std::sync::Arc::new(plan);
                }
            }
        }
        Sabotage::UntreatedValues => {
            for r in &mut table.subscriptions {
                let clear: Vec<FieldRule> = rules_of_route(&r.subscription)
                    .into_iter()
                    .map(|mut x| {
                        if x.treatment != Treatment::Drop {
                            x.treatment = Treatment::Clear;
                        }
                        x
                    })
                    .collect();
                if let Ok(plan) = ViewPlan::build(shared, &clear, &r.subscription) {
                    r.compiled.plan = std::sync::Arc::new(plan);
                }
            }
        }
    }
    table
}

/// Puts the source's free text back where it is released in clear, as a router that forgot to redact would.
pub(crate) fn unredact(
    schema: &str,
    record: &Value,
    built: &[Built],
    table: &RoutingTable,
    releases: &mut [Release],
) {
    pub(crate) fn restore(src: &Value, view: &mut Value, path: &str, free_text: &[String]) {
        match (src, view) {
            (Value::Record(s), Value::Record(v)) => {
                for (n, vv) in v.iter_mut() {
                    if let Some((_, sv)) = s.iter().find(|(sn, _)| sn == n) {
                        restore(sv, vv, &join(path, n), free_text);
                    }
                }
            }
            (Value::Array(s), Value::Array(v)) => {
                for (si, vi) in s.iter().zip(v.iter_mut()) {
                    restore(si, vi, path, free_text);
                }
            }
            (Value::Union(_, s), Value::Union(_, v)) => restore(s, v, path, free_text),
            (Value::String(s), v @ Value::String(_)) if free_text.iter().any(|f| f == path) => {
                *v = Value::String(s.clone());
            }
            _ => {}
        }
    }
    for release in releases {
        let route = &table.subscriptions[release.route];
        let rules = built
            .iter()
            .find(|b| b.subscription.id == route.subscription)
            .map(|b| b.rules.clone())
            .unwrap_or_default();
        let free_text: Vec<String> = shared(schema)
            .field_tags()
            .iter()
            .filter(|t| t.pii == Some(PiiKind::FreeText))
            .filter(|t| effective(&rules, &t.path) == Some(Treatment::Clear))
            .map(|t| t.path.clone())
            .collect();
        let (id, mut body) = wire::decode(&release.value).expect("framed");
        let schema = route.compiled.plan.schema();
        let mut view = apache_avro::from_avro_datum(schema, &mut body, None).expect("decodes");
        restore(record, &mut view, "", &free_text);
        let body = apache_avro::to_avro_datum(schema, view).expect("encodes");
        release.value = wire::encode(id, &body);
    }
}
