//! The policy checks of the subscription lifecycle: what a request may ask for, and what an operator may grant.
//!
//! - On request ([`compile`]): the schema exists, the CEL filter compiles and type-checks against it, every field
//!   rule names a field and a treatment that applies to it (the view plan builds), the channel is well-formed.
//! - On approval ([`check_grant`]): the grant is the request or narrower (a subset of its fields, treatments that
//!   reveal no more, the request's filter AND-ed with more, an expiry no later); every field above the agency's
//!   clearance is approved explicitly by the operator; every S4 field released in clear has a legal basis.
//!
//! Default deny is the shape of the data model itself: a view holds only the fields its rules name.

use std::sync::Arc;

use unsilo_schemas::{Sensitivity, SharedSchema};

use super::filter::Filter;
use super::model::{Agency, SubscriptionSpec, Treatment};
use super::view::ViewPlan;

/// Why a subscription cannot be requested or granted as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The schema is not a shared schema.
    #[error("unknown schema `{0}`; see GET /subjects for the shared schemas")]
    UnknownSchema(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The filter does not compile or type-check.
    #[error("filter: {0}")]
    Filter(String),
    /// A field rule is wrong.
    #[error("fields: {0}")]
    Fields(String),
    /// The grant reveals more than the request.
    #[error("the grant must be the request or narrower: {0}")]
    NotNarrower(String),
    /// Fields above the agency's clearance are released without the operator's explicit approval.
    #[error("fields above the agency's clearance {clearance} need explicit approval (approve_above_clearance): {fields}")]
    AboveClearance {
        /// The agency's clearance.
        clearance: String,
        /// The fields, with their levels.
        fields: String,
    },
    /// S4 fields in clear without a legal basis.
    #[error("S4 fields released in clear need a legal basis: {0}")]
    NoLegalBasis(String),
}

/// A subscription spec compiled against its schema: what the router runs.
#[derive(Clone, Debug)]
pub struct CompiledSpec {
    /// The shared schema.
    pub shared: &'static SharedSchema,
    /// The compiled filter.
    pub filter: Filter,
    /// The view: schema and field treatments.
    pub plan: Arc<ViewPlan>,
}

/// Compiles a spec: schema, filter and view. `view_name` names the view's types (the subscription id).
pub fn compile(spec: &SubscriptionSpec, view_name: &str) -> Result<CompiledSpec, PolicyError> {
    let shared = unsilo_schemas::shared_schema(&spec.schema)
        .ok_or_else(|| PolicyError::UnknownSchema(spec.schema.clone()))?;
    let filter = Filter::compile(&spec.filter, shared.avro())
        .map_err(|e| PolicyError::Filter(e.to_string()))?;
    let plan = ViewPlan::build(shared, &spec.fields, view_name)
        .map_err(|e| PolicyError::Fields(e.to_string()))?;
    Ok(CompiledSpec {
        shared,
        filter,
        plan: Arc::new(plan),
    })
}

/// The highest sensitivity of a rule's field, including everything under it when it names a record.
pub fn sensitivity_of(shared: &SharedSchema, field: &str) -> Sensitivity {
    let prefix = format!("{field}.");
    shared
        .field_tags()
        .iter()
        .filter(|t| t.path == field || t.path.starts_with(&prefix))
        .map(|t| t.sensitivity)
        .max()
        .unwrap_or(Sensitivity::S4)
}

/// Released fields (any treatment but drop) above `clearance`, with their level.
pub fn above_clearance(
    spec: &SubscriptionSpec,
    shared: &SharedSchema,
    clearance: Sensitivity,
) -> Vec<(String, Sensitivity)> {
    spec.fields
        .iter()
        .filter(|r| r.treatment != Treatment::Drop)
        .map(|r| (r.field.clone(), sensitivity_of(shared, &r.field)))
        .filter(|(_, s)| *s > clearance)
        .collect()
}

/// Fields released in clear whose data includes S4 content.
pub fn s4_in_clear(spec: &SubscriptionSpec, shared: &SharedSchema) -> Vec<String> {
    spec.fields
        .iter()
        .filter(|r| r.treatment == Treatment::Clear)
        .filter(|r| sensitivity_of(shared, &r.field) == Sensitivity::S4)
        .map(|r| r.field.clone())
        .collect()
}

/// The envelope field holding a record's data grade (GB/T 43697).
pub const DATA_GRADE_FIELD: &str = "envelope.data_grade";

/// Why a grant needs two different operators to approve it (双人复核), empty when one suffices: it can release
/// CORE-grade records (its filter does not rule `data_grade == "CORE"` out), or it releases S4 fields in clear.
/// `compiled` is `granted` compiled by [`compile`].
pub fn four_eyes_reasons(granted: &SubscriptionSpec, compiled: &CompiledSpec) -> Vec<String> {
    let mut reasons = Vec::new();
    if !compiled.filter.rules_out(DATA_GRADE_FIELD, "CORE") {
        reasons.push(
            "it can release CORE-grade records (add `data_grade != \"CORE\"` to the filter to avoid this)"
                .to_owned(),
        );
    }
    let s4 = s4_in_clear(granted, compiled.shared);
    if !s4.is_empty() {
        reasons.push(format!("it releases S4 fields in clear: {}", s4.join(", ")));
    }
    reasons
}

/// The grant an automatic approval gives (UNCONDITIONAL, non-CORE records only), if `requested` qualifies: every
/// released field within the agency's clearance, no S4 field in clear. `None` means an operator must decide.
pub fn auto_grant(agency: &Agency, requested: &SubscriptionSpec) -> Option<SubscriptionSpec> {
    let shared = unsilo_schemas::shared_schema(&requested.schema)?;
    if !above_clearance(requested, shared, agency.clearance).is_empty()
        || !s4_in_clear(requested, shared).is_empty()
    {
        return None;
    }
    let mut granted = requested.clone();
    granted.filter = narrow_filter(
        requested,
        "share_attribute == \"UNCONDITIONAL\" && data_grade != \"CORE\"",
    )
    .ok()?;
    check_grant(agency, requested, &granted, &[]).ok()?;
    let compiled = compile(&granted, "auto-approval").ok()?;
    four_eyes_reasons(&granted, &compiled)
        .is_empty()
        .then_some(granted)
}

/// The filter of a grant narrowed by an operator's `extra` condition: `(requested) && (extra)`, built only when
/// `extra` is, by itself, a complete bool filter of the request's schema. It is never spliced in as text: an
/// `extra` such as `true) || (true` does not parse by itself and is refused, so it cannot close the requested
/// filter's parentheses and widen the grant.
pub fn narrow_filter(requested: &SubscriptionSpec, extra: &str) -> Result<String, PolicyError> {
    let shared = unsilo_schemas::shared_schema(&requested.schema)
        .ok_or_else(|| PolicyError::UnknownSchema(requested.schema.clone()))?;
    Filter::compile(extra, shared.avro())
        .map_err(|e| PolicyError::Filter(format!("the additional condition: {e}")))?;
    Ok(format!("({}) && ({extra})", requested.filter))
}

/// The operator's extra condition in `granted`'s filter, when it is `(requested) && (extra)` with `extra` a
/// complete filter by itself (see [`narrow_filter`]); `None` for any other shape.
fn extra_condition<'g>(
    requested: &SubscriptionSpec,
    granted: &'g SubscriptionSpec,
) -> Option<&'g str> {
    let extra = granted
        .filter
        .strip_prefix(&format!("({}) && (", requested.filter))?
        .strip_suffix(')')?;
    let shared = unsilo_schemas::shared_schema(&requested.schema)?;
    // Both halves complete expressions on their own: the whole can only parse as their conjunction.
    Filter::compile(&requested.filter, shared.avro()).ok()?;
    Filter::compile(extra, shared.avro()).ok()?;
    Some(extra)
}

/// Checks that `granted` may be granted to `agency` for a request of `requested`, with the operator's explicit
/// approval of `approved_above_clearance`.
pub fn check_grant(
    agency: &Agency,
    requested: &SubscriptionSpec,
    granted: &SubscriptionSpec,
    approved_above_clearance: &[String],
) -> Result<(), PolicyError> {
    if granted.schema != requested.schema {
        return Err(PolicyError::NotNarrower("the schema cannot change".into()));
    }
    if granted.channel != requested.channel {
        return Err(PolicyError::NotNarrower(
            "the channel cannot change; reject and let the agency request again".into(),
        ));
    }
    if granted.purpose != requested.purpose {
        return Err(PolicyError::NotNarrower("the purpose cannot change".into()));
    }
    if granted.filter != requested.filter && extra_condition(requested, granted).is_none() {
        return Err(PolicyError::NotNarrower(format!(
            "the filter must be the requested one or `({}) && (<a filter of its own>)`",
            requested.filter
        )));
    }
    for g in &granted.fields {
        let Some(r) = requested.fields.iter().find(|r| r.field == g.field) else {
            return Err(PolicyError::NotNarrower(format!(
                "field `{}` was not requested",
                g.field
            )));
        };
        if g.treatment.disclosure() > r.treatment.disclosure() {
            return Err(PolicyError::NotNarrower(format!(
                "field `{}`: `{}` reveals more than the requested `{}`",
                g.field,
                g.treatment.as_str(),
                r.treatment.as_str()
            )));
        }
    }
    if let Some(requested_expiry) = requested.expires_at_ms {
        if granted.expires_at_ms.is_none_or(|g| g > requested_expiry) {
            return Err(PolicyError::NotNarrower(
                "the expiry cannot be later than requested".into(),
            ));
        }
    }
    match (requested.backfill_from_ms, granted.backfill_from_ms) {
        (None, Some(_)) => {
            return Err(PolicyError::NotNarrower(
                "history (backfill_from) was not requested".into(),
            ))
        }
        (Some(asked), Some(given)) if given < asked => {
            return Err(PolicyError::NotNarrower(
                "history can start later than requested (backfill_from), not earlier".into(),
            ))
        }
        _ => {}
    }
    if let Some(asked) = requested.retain_days {
        if granted.retain_days.is_none_or(|g| g > asked) {
            return Err(PolicyError::NotNarrower(format!(
                "retain_days can be shorter than the requested {asked} days, not longer"
            )));
        }
    }
    let shared = unsilo_schemas::shared_schema(&granted.schema)
        .ok_or_else(|| PolicyError::UnknownSchema(granted.schema.clone()))?;
    let unapproved: Vec<String> = above_clearance(granted, shared, agency.clearance)
        .into_iter()
        .filter(|(f, _)| !approved_above_clearance.contains(f))
        .map(|(f, s)| format!("{f} ({s})"))
        .collect();
    if !unapproved.is_empty() {
        return Err(PolicyError::AboveClearance {
            clearance: agency.clearance.as_str().to_owned(),
            fields: unapproved.join(", "),
        });
    }
    let s4 = s4_in_clear(granted, shared);
    if !s4.is_empty() && granted.legal_basis.is_none() {
        return Err(PolicyError::NoLegalBasis(s4.join(", ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Channel, FieldRule};

    fn agency(clearance: Sensitivity) -> Agency {
        Agency {
            revision: 0,
            suspended: None,
            linked: None,
            id: "civil-affairs".into(),
            name: "民政局".into(),
            uscc: "11610921016050037T".into(),
            clearance,
            tokens: vec![],
            client_cert_sha256: None,
            created_at_ms: 0,
            created_by: "ops".into(),
        }
    }

    fn rule(field: &str, treatment: Treatment) -> FieldRule {
        FieldRule {
            field: field.into(),
            treatment,
        }
    }

    fn request() -> SubscriptionSpec {
        SubscriptionSpec {
            schema: "household".into(),
            filter: "care_level == \"RED\"".into(),
            fields: vec![
                rule("head_cert_no", Treatment::Clear),
                rule("head_name", Treatment::Mask),
                rule("care_level", Treatment::Clear),
            ],
            purpose: "帮扶".into(),
            legal_basis: None,
            scenario: None,
            scope: None,
            expires_at_ms: Some(2_000_000_000_000),
            backfill_from_ms: None,
            retain_days: None,
            channel: Channel::Pull,
        }
    }

    #[test]
    fn requests_compile_against_their_schema() {
        assert!(compile(&request(), "a.b").is_ok());
        let mut bad = request();
        bad.schema = "nope".into();
        assert!(matches!(
            compile(&bad, "a.b"),
            Err(PolicyError::UnknownSchema(_))
        ));
        let mut bad = request();
        bad.filter = "care_level == \"PURPLE\"".into();
        let err = compile(&bad, "a.b").unwrap_err().to_string();
        assert!(err.contains("PURPLE") && err.contains("RED"), "{err}");
        let mut bad = request();
        bad.fields.push(rule("no_such_field", Treatment::Clear));
        assert!(compile(&bad, "a.b")
            .unwrap_err()
            .to_string()
            .contains("no_such_field"));
    }

    #[test]
    fn clearance_and_legal_basis_are_enforced_on_grants() {
        let req = request();
        let s3 = agency(Sensitivity::S3);
        // head_cert_no is S4: above S3, and in clear.
        let err = check_grant(&s3, &req, &req, &[]).unwrap_err();
        assert!(matches!(err, PolicyError::AboveClearance { .. }), "{err}");
        assert!(err.to_string().contains("head_cert_no (S4)"));
        let err = check_grant(&s3, &req, &req, &["head_cert_no".into()]).unwrap_err();
        assert!(matches!(err, PolicyError::NoLegalBasis(_)), "{err}");
        let mut with_basis = req.clone();
        with_basis.legal_basis = Some("《社会救助暂行办法》".into());
        assert!(check_grant(&s3, &req, &with_basis, &["head_cert_no".into()]).is_ok());
        // Pseudonymised, an S4 field needs no legal basis (but still the clearance approval).
        let mut pseudo = req.clone();
        pseudo.fields[0].treatment = Treatment::Pseudonymise;
        assert!(check_grant(&s3, &req, &pseudo, &["head_cert_no".into()]).is_ok());
        assert!(check_grant(&agency(Sensitivity::S4), &req, &pseudo, &[]).is_ok());
    }

    #[test]
    fn grants_may_only_narrow() {
        let req = request();
        let s4 = agency(Sensitivity::S4);
        let basis = |mut s: SubscriptionSpec| {
            s.legal_basis = Some("basis".into());
            s
        };
        let mut more = basis(req.clone());
        more.fields.push(rule("address", Treatment::Clear));
        assert!(matches!(
            check_grant(&s4, &req, &more, &[]),
            Err(PolicyError::NotNarrower(_))
        ));
        let mut revealing = basis(req.clone());
        revealing.fields[1].treatment = Treatment::Clear;
        let err = check_grant(&s4, &req, &revealing, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("head_name"), "{err}");
        let mut fewer = basis(req.clone());
        fewer.fields.remove(1);
        fewer.fields[0].treatment = Treatment::Drop;
        assert!(check_grant(&s4, &req, &fewer, &[]).is_ok());
        let mut narrower_filter = basis(req.clone());
        narrower_filter.filter = format!("({}) && (member_count > 2)", req.filter);
        assert!(check_grant(&s4, &req, &narrower_filter, &[]).is_ok());
        let mut other_filter = basis(req.clone());
        other_filter.filter = "true".into();
        assert!(check_grant(&s4, &req, &other_filter, &[]).is_err());
        // An extra condition that closes the requested filter's parentheses is refused, built or checked.
        let widening = "true) || (true";
        assert!(matches!(
            narrow_filter(&req, widening),
            Err(PolicyError::Filter(_))
        ));
        let mut spliced = basis(req.clone());
        spliced.filter = format!("({}) && ({widening})", req.filter);
        assert!(check_grant(&s4, &req, &spliced, &[]).is_err());
        let mut built = basis(req.clone());
        built.filter = narrow_filter(&req, "member_count > 2").expect("a filter");
        assert!(check_grant(&s4, &req, &built, &[]).is_ok());
        let mut later = basis(req.clone());
        later.expires_at_ms = None;
        assert!(check_grant(&s4, &req, &later, &[]).is_err());
        let mut channel = basis(req.clone());
        channel.channel = Channel::Webhook {
            url: "https://x.example/h".into(),
        };
        assert!(check_grant(&s4, &req, &channel, &[]).is_err());
    }
}
