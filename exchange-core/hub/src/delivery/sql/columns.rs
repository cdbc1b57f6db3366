//! The SQL channel's table shape and cells: columns derived from the view schema, and each released record turned into the cells one upsert binds.

use super::*;
use serde_json::Value as Json;
use unsilo_schemas::model::{Base, SchemaRecord, SchemaType};

// ---------------------------------------------------------------------------------------------
// View schema → columns
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TsUnit {
    Millis,
    Micros,
    Nanos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColKind {
    /// string, enum, uuid; bytes/fixed as lowercase hex.
    Text,
    /// int, long.
    BigInt,
    /// float, double.
    Double,
    Bool,
    /// timestamp-*; a plain long in the value is read in this unit.
    Timestamp(TsUnit),
    /// date; a plain int in the value is read as days since the epoch.
    Date,
    /// records, arrays, maps, multi-type unions.
    Json,
}

impl ColKind {
    /// The Avro values a column of this kind accepts, for error messages.
    pub(super) fn describe(self) -> &'static str {
        match self {
            ColKind::Text => "a string or enum",
            ColKind::BigInt => "an int or long",
            ColKind::Double => "a float or double",
            ColKind::Bool => "a boolean",
            ColKind::Timestamp(_) => "a timestamp",
            ColKind::Date => "a date",
            ColKind::Json => "a record, array or map",
        }
    }

    pub(super) fn sql_type(self, dialect: Dialect) -> &'static str {
        match (self, dialect) {
            (ColKind::Text, Dialect::Postgres) => "TEXT",
            // Plain TEXT caps at 64 KiB, which long Chinese text can exceed.
            (ColKind::Text, Dialect::MySql) => "LONGTEXT",
            (ColKind::BigInt, _) => "BIGINT",
            (ColKind::Double, Dialect::Postgres) => "DOUBLE PRECISION",
            (ColKind::Double, Dialect::MySql) => "DOUBLE",
            (ColKind::Bool, _) => "BOOLEAN",
            (ColKind::Timestamp(_), Dialect::Postgres) => "TIMESTAMPTZ",
            (ColKind::Timestamp(TsUnit::Millis), Dialect::MySql) => "DATETIME(3)",
            (ColKind::Timestamp(_), Dialect::MySql) => "DATETIME(6)",
            (ColKind::Date, _) => "DATE",
            (ColKind::Json, Dialect::Postgres) => "JSONB",
            (ColKind::Json, Dialect::MySql) => "JSON",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Column {
    pub(super) name: String,
    pub(super) kind: ColKind,
    pub(super) nullable: bool,
}

/// The table's columns for a view schema, walked as the shared schema model reads it.
pub(super) fn columns_for(view_schema: &Schema) -> Result<Vec<Column>, SqlError> {
    let unsupported = |reason: String| SqlError::UnsupportedSchema { reason };
    if !matches!(view_schema, Schema::Record(_)) {
        return Err(unsupported("the view schema must be an Avro record".into()));
    }
    let json = serde_json::to_value(view_schema)
        .map_err(|e| unsupported(format!("cannot write the view schema as JSON: {e}")))?;
    let record = SchemaRecord::parse(&json)
        .map_err(|e| unsupported(format!("cannot read the view schema: {e}")))?;
    let mut columns: Vec<Column> = Vec::with_capacity(record.fields.len());
    for field in &record.fields {
        check_ident(&field.name)
            .map_err(|r| unsupported(format!("field name {:?} {r}", field.name)))?;
        if field.name.eq_ignore_ascii_case(RECORD_ID_COLUMN)
            || field.name.eq_ignore_ascii_case(DELIVERED_AT_COLUMN)
        {
            return Err(unsupported(format!(
                "field {:?} collides with the reserved column of the same name",
                field.name
            )));
        }
        if columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(&field.name))
        {
            return Err(unsupported(format!(
                "field {:?} differs from another field only in letter case",
                field.name
            )));
        }
        let (kind, nullable) = column_kind(&field.ty)
            .map_err(|r| unsupported(format!("field {:?}: {r}", field.name)))?;
        columns.push(Column {
            name: field.name.clone(),
            kind,
            nullable,
        });
    }
    Ok(columns)
}

/// A field's column kind, and whether it may be NULL (a union with `null`).
fn column_kind(ty: &SchemaType) -> Result<(ColKind, bool), String> {
    let SchemaType::Union(branches) = ty else {
        return Ok((scalar_kind(ty)?, false));
    };
    let nullable = branches.iter().any(SchemaType::is_null);
    match ty.non_null_branches().as_slice() {
        [] => Err("a union of only null has no values to store".into()),
        [one] => Ok((scalar_kind(one)?, nullable)),
        _ => Ok((ColKind::Json, nullable)),
    }
}

/// The column kind of one (non-union) type: records, arrays and maps are stored as JSON.
fn scalar_kind(ty: &SchemaType) -> Result<ColKind, String> {
    let unsupported = |what: &str| Err(format!("type {what} is not supported by SQL delivery"));
    let logical_of = |def: &serde_json::Map<String, Json>| {
        def.get("logicalType")
            .and_then(Json::as_str)
            .map(str::to_owned)
    };
    match ty {
        SchemaType::Record(_)
        | SchemaType::Array(_)
        | SchemaType::Map(_)
        | SchemaType::Union(_) => Ok(ColKind::Json),
        // Enums and fixed (as lowercase hex); a fixed-size decimal or duration has no faithful text.
        SchemaType::Named { def, .. } => match logical_of(def).as_deref() {
            Some(l @ ("decimal" | "duration")) => unsupported(l),
            _ => Ok(ColKind::Text),
        },
        SchemaType::Prim { base, logical, .. } => match (logical.as_deref(), base) {
            (Some("timestamp-millis"), Base::Long) => Ok(ColKind::Timestamp(TsUnit::Millis)),
            (Some("timestamp-micros"), Base::Long) => Ok(ColKind::Timestamp(TsUnit::Micros)),
            (Some("timestamp-nanos"), Base::Long) => Ok(ColKind::Timestamp(TsUnit::Nanos)),
            (Some("date"), Base::Int) => Ok(ColKind::Date),
            (
                Some(
                    l @ ("decimal"
                    | "big-decimal"
                    | "time-millis"
                    | "time-micros"
                    | "local-timestamp-millis"
                    | "local-timestamp-micros"
                    | "local-timestamp-nanos"),
                ),
                _,
            ) => unsupported(l),
            // `uuid` and unknown logical types are stored as their base type.
            (_, Base::String | Base::Bytes) => Ok(ColKind::Text),
            (_, Base::Int | Base::Long) => Ok(ColKind::BigInt),
            (_, Base::Float | Base::Double) => Ok(ColKind::Double),
            (_, Base::Boolean) => Ok(ColKind::Bool),
            (_, Base::Null) => unsupported("null"),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Records → bound cells
// ---------------------------------------------------------------------------------------------

/// One bound parameter, typed so that a NULL still carries its column's SQL type.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Double(Option<f64>),
    Bool(Option<bool>),
    Timestamp(Option<DateTime<Utc>>),
    Date(Option<NaiveDate>),
    Json(Option<serde_json::Value>),
}

/// Rows with duplicate ids reduced to the last occurrence (PostgreSQL refuses to touch one row
/// twice in a statement, and "last write wins" is what sequential upserts would give).
pub(super) fn last_wins(rows: &[(String, Value)]) -> Vec<(&str, &Value)> {
    let mut out: Vec<(&str, &Value)> = Vec::with_capacity(rows.len());
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (id, value) in rows {
        match index.get(id.as_str()) {
            Some(&i) => out[i].1 = value,
            None => {
                index.insert(id.as_str(), out.len());
                out.push((id.as_str(), value));
            }
        }
    }
    out
}

pub(super) fn row_cells(
    id: &str,
    value: &Value,
    columns: &[Column],
    dialect: Dialect,
) -> Result<Vec<Cell>, SqlError> {
    let invalid = |reason: String| SqlError::InvalidRecord {
        record_id: shorten(id),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("record id is empty".into()));
    }
    if id.chars().count() > MAX_RECORD_ID_CHARS {
        return Err(invalid(format!(
            "record id is longer than {MAX_RECORD_ID_CHARS} characters"
        )));
    }
    if dialect == Dialect::Postgres && id.contains('\0') {
        return Err(invalid("record id contains a NUL character".into()));
    }
    let Value::Record(fields) = unwrap_union(value) else {
        return Err(invalid("value is not an Avro record".into()));
    };
    if let Some((extra, _)) = fields
        .iter()
        .find(|(name, _)| !columns.iter().any(|c| &c.name == name))
    {
        return Err(invalid(format!(
            "field {extra:?} is not in the view schema"
        )));
    }
    let mut cells = Vec::with_capacity(columns.len() + 1);
    cells.push(Cell::Text(Some(id.to_owned())));
    for (i, col) in columns.iter().enumerate() {
        let field = match fields.get(i) {
            Some((name, v)) if *name == col.name => Some(v),
            _ => fields.iter().find(|(n, _)| *n == col.name).map(|(_, v)| v),
        };
        let Some(field) = field else {
            return Err(invalid(format!("field {:?} is missing", col.name)));
        };
        let cell = to_cell(col, field, dialect)
            .map_err(|r| invalid(format!("field {:?}: {r}", col.name)))?;
        cells.push(cell);
    }
    Ok(cells)
}

pub(super) fn shorten(id: &str) -> String {
    if id.chars().count() <= MAX_RECORD_ID_CHARS {
        id.to_owned()
    } else {
        let mut s: String = id.chars().take(MAX_RECORD_ID_CHARS).collect();
        s.push('…');
        s
    }
}

pub(super) fn unwrap_union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

pub(super) fn to_cell(col: &Column, value: &Value, dialect: Dialect) -> Result<Cell, String> {
    let value = unwrap_union(value);
    if matches!(value, Value::Null) {
        if !col.nullable {
            return Err("is null but the column is NOT NULL".into());
        }
        return Ok(match col.kind {
            ColKind::Text => Cell::Text(None),
            ColKind::BigInt => Cell::Int(None),
            ColKind::Double => Cell::Double(None),
            ColKind::Bool => Cell::Bool(None),
            ColKind::Timestamp(_) => Cell::Timestamp(None),
            ColKind::Date => Cell::Date(None),
            ColKind::Json => Cell::Json(None),
        });
    }
    let mismatch = || {
        format!(
            "expected {} but got {}",
            col.kind.describe(),
            unsilo_schemas::avro::value_kind(value)
        )
    };
    let cell = match (col.kind, value) {
        (ColKind::Text, Value::String(s) | Value::Enum(_, s)) => Cell::Text(Some(s.clone())),
        (ColKind::Text, Value::Uuid(u)) => Cell::Text(Some(u.to_string())),
        (ColKind::Text, Value::Bytes(b) | Value::Fixed(_, b)) => Cell::Text(Some(hex::encode(b))),
        (ColKind::BigInt, Value::Int(i)) => Cell::Int(Some(i64::from(*i))),
        (ColKind::BigInt, Value::Long(l)) => Cell::Int(Some(*l)),
        (ColKind::Double, Value::Float(f)) => Cell::Double(Some(float_to_f64(*f))),
        (ColKind::Double, Value::Double(d)) => Cell::Double(Some(*d)),
        (ColKind::Double, Value::Int(i)) => Cell::Double(Some(f64::from(*i))),
        (ColKind::Double, Value::Long(l)) => Cell::Double(Some(*l as f64)),
        (ColKind::Bool, Value::Boolean(b)) => Cell::Bool(Some(*b)),
        (ColKind::Timestamp(unit), v) => {
            let t = match (unit, v) {
                (_, Value::TimestampMillis(ms)) | (TsUnit::Millis, Value::Long(ms)) => {
                    DateTime::from_timestamp_millis(*ms)
                }
                (_, Value::TimestampMicros(us)) | (TsUnit::Micros, Value::Long(us)) => {
                    DateTime::from_timestamp_micros(*us)
                }
                (_, Value::TimestampNanos(ns)) | (TsUnit::Nanos, Value::Long(ns)) => {
                    Some(DateTime::from_timestamp_nanos(*ns))
                }
                _ => return Err(mismatch()),
            };
            Cell::Timestamp(Some(t.ok_or("timestamp is out of range")?))
        }
        (ColKind::Date, Value::Date(days) | Value::Int(days)) => {
            Cell::Date(Some(date_from_days(*days).ok_or("date is out of range")?))
        }
        (ColKind::Json, v) => Cell::Json(Some(to_json(v).map_err(|e| e.to_string())?)),
        _ => return Err(mismatch()),
    };
    check_cell(&cell, dialect)?;
    Ok(cell)
}

/// Rejects values the server would refuse, with a clearer message than the server's.
pub(super) fn check_cell(cell: &Cell, dialect: Dialect) -> Result<(), String> {
    match (cell, dialect) {
        (Cell::Text(Some(s)), Dialect::Postgres) if s.contains('\0') => {
            Err("text contains a NUL character, which PostgreSQL cannot store".into())
        }
        (Cell::Json(Some(j)), Dialect::Postgres) if json_has_nul(j) => {
            Err("JSON contains a NUL character, which PostgreSQL cannot store".into())
        }
        (Cell::Double(Some(d)), Dialect::MySql) if !d.is_finite() => {
            Err(format!("{d} cannot be stored in a MySQL DOUBLE"))
        }
        (Cell::Timestamp(Some(t)), Dialect::MySql)
            if !(1000..=9999).contains(&chrono::Datelike::year(t)) =>
        {
            Err(format!("{t} is outside the MySQL DATETIME range"))
        }
        (Cell::Date(Some(d)), Dialect::MySql)
            if !(1000..=9999).contains(&chrono::Datelike::year(d)) =>
        {
            Err(format!("{d} is outside the MySQL DATE range"))
        }
        _ => Ok(()),
    }
}

pub(super) fn json_has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(json_has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

pub(super) use unsilo_schemas::avro::{date_from_days, float_to_f64, to_json};
