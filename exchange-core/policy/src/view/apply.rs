//! Applying a plan to one shared record: the view record encoded as Avro binary, field by field, straight from
//! the decoded shared record (no view value is built in between).

#[allow(unused_imports)]
use super::*;
use unsilo_schemas::avro::{encode_value, write_long, write_str};

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

/// Encodes the view of one record (a record plan over `fields`) as Avro binary, in the view schema's field order.
pub(super) fn encode_record(
    plan: &RecordPlan,
    fields: &[(String, Value)],
    ctx: &Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<(), ViewError> {
    for f in &plan.fields {
        let v = field_value(fields, f.src, &f.name, &f.path)?;
        encode_action(&f.action, v, fields, &f.path, ctx, out)?;
    }
    Ok(())
}

/// Encodes what `action` makes of `v` (a value whose record is `parent`).
pub(super) fn encode_action(
    action: &Action,
    v: &Value,
    parent: &[(String, Value)],
    path: &str,
    ctx: &Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<(), ViewError> {
    match action {
        Action::Leaf(leaf) => encode_leaf(leaf, v, parent, path, ctx, out),
        Action::Record(plan) => match v {
            Value::Record(fields) => encode_record(plan, fields, ctx, out),
            other => Err(shape(path, "a record", other)),
        },
        // Arrays and maps as one block (count, items), then the empty block that ends them.
        Action::Array(inner) => match v {
            Value::Array(items) => {
                if !items.is_empty() {
                    write_long(out, items.len() as i64);
                    for item in items {
                        encode_action(inner, item, parent, path, ctx, out)?;
                    }
                }
                out.push(0);
                Ok(())
            }
            other => Err(shape(path, "an array", other)),
        },
        Action::Map(inner) => match v {
            Value::Map(items) => {
                if !items.is_empty() {
                    write_long(out, items.len() as i64);
                    for (k, item) in items {
                        write_str(out, k);
                        encode_action(inner, item, parent, path, ctx, out)?;
                    }
                }
                out.push(0);
                Ok(())
            }
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
                Some(Some((branch, action))) => {
                    write_long(out, i64::from(*branch));
                    encode_action(action, inner, parent, path, ctx, out)
                }
                // A withheld branch becomes null (which encodes as nothing after its index).
                Some(None) => {
                    write_long(out, i64::from(*null_out));
                    Ok(())
                }
                None => Err(ViewError::RecordShape {
                    path: path.to_string(),
                    reason: format!("union branch {index} does not exist"),
                }),
            }
        }
    }
}

/// Encodes what a leaf treatment makes of `v`.
pub(super) fn encode_leaf(
    leaf: &Leaf,
    v: &Value,
    parent: &[(String, Value)],
    path: &str,
    ctx: &Ctx<'_>,
    out: &mut Vec<u8>,
) -> Result<(), ViewError> {
    fn text<'v>(v: &'v Value, path: &str) -> Result<&'v str, ViewError> {
        match v {
            Value::String(s) => Ok(s.as_str()),
            other => Err(shape(path, "a string", other)),
        }
    }
    match leaf {
        Leaf::Clone => encode_value(v, out).map_err(|e| ViewError::RecordShape {
            path: path.to_string(),
            reason: e.to_string(),
        })?,
        Leaf::Redact => write_str(out, &treat::redact_free_text(text(v, path)?, ctx.redaction)),
        Leaf::Mask(style) => write_str(out, &mask::mask(*style, text(v, path)?)),
        Leaf::Pseudonymise(domain) => {
            write_str(out, &treat::pseudonym(ctx.key, domain, text(v, path)?))
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
                Some(Value::String(code)) => write_str(out, code),
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
            Value::Date(d) | Value::Int(d) => write_long(out, i64::from(treat::birth_year(*d))),
            other => return Err(shape(path, "a date", other)),
        },
        Leaf::Coordinate => match v {
            Value::Double(x) => out.extend_from_slice(&treat::round_coordinate(*x).to_le_bytes()),
            Value::Float(x) => out
                .extend_from_slice(&(treat::round_coordinate(f64::from(*x)) as f32).to_le_bytes()),
            other => return Err(shape(path, "a coordinate", other)),
        },
        Leaf::Day => match v {
            Value::TimestampMillis(t) | Value::Long(t) => {
                write_long(out, treat::day_start_beijing(*t))
            }
            other => return Err(shape(path, "a timestamp-millis", other)),
        },
        Leaf::County => write_str(out, &treat::county_of(text(v, path)?)),
    }
    Ok(())
}
