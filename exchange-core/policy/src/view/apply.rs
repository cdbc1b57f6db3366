//! Applying a plan to one shared record: the view record, field by field.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------------------------------

pub(super) struct Ctx<'a> {
    pub(super) root: &'a [(String, Value)],
    pub(super) key: &'a PseudonymKey,
    pub(super) redaction: Redaction,
}

pub(super) fn shape(path: &str, expected: &str, found: &Value) -> ViewError {
    ViewError::RecordShape {
        path: path.to_string(),
        reason: format!(
            "expected {expected}, found {}",
            unsilo_schemas::avro::value_kind(found)
        ),
    }
}

pub(super) fn field_value<'v>(
    fields: &'v [(String, Value)],
    index: usize,
    name: &str,
    path: &str,
) -> Result<&'v Value, ViewError> {
    match fields.get(index) {
        Some((n, v)) if n == name => Ok(v),
        _ => fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| ViewError::RecordShape {
                path: path.to_string(),
                reason: "field is missing".into(),
            }),
    }
}

pub(super) fn apply_record(
    plan: &RecordPlan,
    fields: &[(String, Value)],
    ctx: &Ctx<'_>,
) -> Result<Value, ViewError> {
    let mut out = Vec::with_capacity(plan.fields.len());
    for f in &plan.fields {
        let v = field_value(fields, f.src, &f.name, &f.path)?;
        out.push((
            f.name.clone(),
            apply_action(&f.action, v, fields, &f.path, ctx)?,
        ));
    }
    Ok(Value::Record(out))
}

pub(super) fn apply_action(
    action: &Action,
    v: &Value,
    parent: &[(String, Value)],
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<Value, ViewError> {
    match action {
        Action::Leaf(leaf) => apply_leaf(leaf, v, parent, path, ctx),
        Action::Record(plan) => match v {
            Value::Record(fields) => apply_record(plan, fields, ctx),
            other => Err(shape(path, "a record", other)),
        },
        Action::Array(inner) => match v {
            Value::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|item| apply_action(inner, item, parent, path, ctx))
                    .collect::<Result<_, _>>()?,
            )),
            other => Err(shape(path, "an array", other)),
        },
        Action::Map(inner) => match v {
            Value::Map(items) => Ok(Value::Map(
                items
                    .iter()
                    .map(|(k, item)| Ok((k.clone(), apply_action(inner, item, parent, path, ctx)?)))
                    .collect::<Result<_, ViewError>>()?,
            )),
            other => Err(shape(path, "a map", other)),
        },
        Action::Union { branches, null_out } => {
            let (index, inner) = match v {
                Value::Union(i, inner) => (*i as usize, inner.as_ref()),
                // An unwrapped value (e.g. built by hand): null goes to the null branch, anything else to the
                // only non-null branch of an optional.
                Value::Null => (
                    branches
                        .iter()
                        .position(|b| b.as_ref().is_some_and(|(o, _)| o == null_out))
                        .unwrap_or(usize::MAX),
                    v,
                ),
                other => (
                    branches
                        .iter()
                        .position(|b| b.as_ref().is_some_and(|(o, _)| o != null_out))
                        .filter(|_| branches.len() == 2)
                        .ok_or_else(|| shape(path, "a union value", other))?,
                    v,
                ),
            };
            match branches.get(index) {
                Some(Some((out, action))) => Ok(Value::Union(
                    *out,
                    Box::new(apply_action(action, inner, parent, path, ctx)?),
                )),
                Some(None) => Ok(Value::Union(*null_out, Box::new(Value::Null))),
                None => Err(ViewError::RecordShape {
                    path: path.to_string(),
                    reason: format!("union branch {index} does not exist"),
                }),
            }
        }
    }
}

pub(super) fn apply_leaf(
    leaf: &Leaf,
    v: &Value,
    parent: &[(String, Value)],
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<Value, ViewError> {
    pub(super) fn text<'v>(v: &'v Value, path: &str) -> Result<&'v str, ViewError> {
        match v {
            Value::String(s) => Ok(s.as_str()),
            other => Err(shape(path, "a string", other)),
        }
    }
    Ok(match leaf {
        Leaf::Clone => v.clone(),
        Leaf::Redact => {
            Value::String(treat::redact_free_text(text(v, path)?, ctx.redaction).into_owned())
        }
        Leaf::Mask(style) => Value::String(mask::mask(*style, text(v, path)?)),
        Leaf::Pseudonymise(domain) => {
            Value::String(treat::pseudonym(ctx.key, domain, text(v, path)?))
        }
        Leaf::Address(source) => {
            let code = match source {
                AddressSource::Sibling(i) => parent.get(*i).map(|(_, v)| v),
                AddressSource::Envelope { envelope, region } => match ctx.root.get(*envelope) {
                    Some((_, Value::Record(env))) => env.get(*region).map(|(_, v)| v),
                    _ => None,
                },
            };
            match code {
                Some(Value::String(code)) => Value::String(code.clone()),
                Some(other) => {
                    return Err(shape(
                        path,
                        "a string village/region code next to it",
                        other,
                    ))
                }
                None => {
                    return Err(ViewError::RecordShape {
                        path: path.to_string(),
                        reason: "the village/region code the address generalises to is missing"
                            .into(),
                    })
                }
            }
        }
        Leaf::Year => match v {
            Value::Date(d) | Value::Int(d) => Value::Int(treat::birth_year(*d)),
            other => return Err(shape(path, "a date", other)),
        },
        Leaf::Coordinate => match v {
            Value::Double(x) => Value::Double(treat::round_coordinate(*x)),
            Value::Float(x) => Value::Float(treat::round_coordinate(f64::from(*x)) as f32),
            other => return Err(shape(path, "a coordinate", other)),
        },
        Leaf::Day => match v {
            Value::TimestampMillis(t) | Value::Long(t) => {
                Value::TimestampMillis(treat::day_start_beijing(*t))
            }
            other => return Err(shape(path, "a timestamp-millis", other)),
        },
        Leaf::County => Value::String(treat::county_of(text(v, path)?)),
    })
}
