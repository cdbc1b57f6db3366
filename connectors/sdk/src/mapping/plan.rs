//! The compiled form of a mapping: a tree of operations in Avro field order.
//!
//! [`compile`](super::compile) builds it once from the TOML and the target schema; [`walk`](super::walk) runs it
//! per record. Everything that can be decided at load is decided here: target types, union branch indices, enum
//! indices, defaults and constants already encoded as Avro bytes (and as JSON for `to_json`), code tables, parsed
//! raw paths and date formats. What is left per record is reading the raw JSON and writing bytes.

use serde_json::Value as Json;

use super::datetime::{Format, Zone};
use super::error::Validator;
use super::mask::Mask;
use super::path::{PathSet, RawPath, ScopePlan};

/// The whole mapping.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The raw record's scope: every path read against the record itself.
    pub(crate) root_scope: ScopePlan,
    /// Slots needed by the deepest chain of nested scopes (root included).
    pub(crate) max_slots: usize,
    pub(crate) root: RecordPlan,
    pub(crate) when: Option<Cond>,
    pub(crate) source_record_id: ValuePlan,
    pub(crate) source_version: ValuePlan,
    pub(crate) partition_key: Option<ValuePlan>,
}

/// The fields of one record, in schema order.
#[derive(Debug)]
pub(crate) struct RecordPlan {
    pub(crate) fields: Box<[FieldPlan]>,
}

/// One field of a record.
#[derive(Debug)]
pub(crate) struct FieldPlan {
    pub(crate) name: Box<str>,
    pub(crate) node: NodePlan,
}

/// How one value (a field, an array item, a map value) is produced.
#[derive(Debug)]
pub(crate) enum NodePlan {
    /// Always the same value (an unmapped field's default, or `const`), pre-encoded.
    Const(ConstVal),
    /// Filled by the engine, not by the mapping (`envelope.record_id` and friends).
    Engine(EngineField),
    Scalar(Box<ScalarPlan>),
    Record(Box<RecordNode>),
    Array(Box<ArrayNode>),
    Map(Box<MapNode>),
}

/// Envelope fields the engine fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineField {
    RecordId,
    SourceSystem,
    SourceRecordId,
    SourceVersion,
    IngestTime,
}

/// A value that is the same for every record: its Avro bytes and its plain JSON.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConstVal {
    pub(crate) bytes: Box<[u8]>,
    pub(crate) json: Json,
}

/// What to write when a rule yields nothing.
#[derive(Debug)]
pub(crate) enum Missing {
    /// The rule's or the schema's default, or null.
    Const(ConstVal),
    /// The record is rejected (`missing_required`).
    Required,
}

/// A union branch to write before the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnionPos {
    pub(crate) index: u32,
    /// The branch name for Avro's JSON encoding (`{"long": 5}`), only where the union has several non-null
    /// branches and the plain value would be ambiguous.
    pub(crate) tag: Option<Box<str>>,
}

/// The Avro type of a scalar target (after its union, if any).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ScalarType {
    Null,
    Bool,
    Int,
    Long,
    Float,
    Double,
    String,
    Bytes,
    Enum(Box<[Box<str>]>),
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    LocalTimestampMillis,
    LocalTimestampMicros,
    LocalTimestampNanos,
}

impl ScalarType {
    /// The type's name in messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            ScalarType::Null => "null".into(),
            ScalarType::Bool => "boolean".into(),
            ScalarType::Int => "int".into(),
            ScalarType::Long => "long".into(),
            ScalarType::Float => "float".into(),
            ScalarType::Double => "double".into(),
            ScalarType::String => "string".into(),
            ScalarType::Bytes => "bytes".into(),
            ScalarType::Enum(symbols) => format!("enum ({})", symbols.join(", ")),
            ScalarType::Date => "date".into(),
            ScalarType::TimeMillis => "time-millis".into(),
            ScalarType::TimeMicros => "time-micros".into(),
            ScalarType::TimestampMillis => "timestamp-millis".into(),
            ScalarType::TimestampMicros => "timestamp-micros".into(),
            ScalarType::TimestampNanos => "timestamp-nanos".into(),
            ScalarType::LocalTimestampMillis => "local-timestamp-millis".into(),
            ScalarType::LocalTimestampMicros => "local-timestamp-micros".into(),
            ScalarType::LocalTimestampNanos => "local-timestamp-nanos".into(),
        }
    }
}

/// A scalar target position: its type, its union branch and how its values may appear in messages.
#[derive(Debug, Clone)]
pub(crate) struct ScalarTarget {
    pub(crate) ty: ScalarType,
    pub(crate) union: Option<UnionPos>,
    pub(crate) mask: Mask,
}

/// A scalar field or item: the rule and what to do when it yields nothing.
#[derive(Debug)]
pub(crate) struct ScalarPlan {
    pub(crate) value: ValuePlan,
    pub(crate) missing: Missing,
}

/// A shortcut for the most common rule shapes, taken when the raw value is a string; anything else goes
/// through the general evaluation, so both give the same result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fast {
    General,
    /// `field = "path"` into a string: the raw string as is.
    Str(RawPath),
    /// `{ path, codes }`: a non-blank raw string found in the code table.
    Codes(RawPath),
}

/// A rule producing one scalar value of a known target type.
#[derive(Debug)]
pub(crate) struct ValuePlan {
    pub(crate) fast: Fast,
    pub(crate) source: Source,
    pub(crate) trim: bool,
    pub(crate) blank_as_null: bool,
    pub(crate) codes: Option<CodeTable>,
    pub(crate) default: Option<ConstVal>,
    pub(crate) conv: Conv,
    pub(crate) validate: Option<Validator>,
    pub(crate) target: ScalarTarget,
}

/// Where a rule's value comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// The current value itself (the element of `each`, a piece of `split`, a map value).
    Element,
    Path(PathSet),
    Const(ConstVal),
    Template(Template),
    Concat(Concat),
    Cases(Box<Cases>),
}

impl Source {
    /// A short description of the source for `RecordError::source_path`.
    pub(crate) fn describe(&self) -> Option<String> {
        match self {
            Source::Element => Some("@".into()),
            Source::Path(p) => Some(p.to_string()),
            Source::Const(_) => None,
            Source::Template(t) => Some(format!("template {:?}", t.text)),
            Source::Concat(c) => Some(format!(
                "concat [{}]",
                c.parts
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Source::Cases(_) => Some("cases".into()),
        }
    }
}

/// `template = "{district}{street} {house_no}"`.
#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) parts: Box<[TemplatePart]>,
    pub(crate) text: Box<str>,
}

#[derive(Debug)]
pub(crate) enum TemplatePart {
    Lit(Box<str>),
    Path(PathSet),
}

/// `concat = ["a", "b"]` with `separator`: the present, non-blank parts joined.
#[derive(Debug)]
pub(crate) struct Concat {
    pub(crate) parts: Box<[PathSet]>,
    pub(crate) separator: Box<str>,
}

/// `cases = [{ if = …, then = … }]`, `else = …`.
#[derive(Debug)]
pub(crate) struct Cases {
    pub(crate) arms: Box<[(Cond, Arm)]>,
    pub(crate) otherwise: Option<Arm>,
}

/// The value of a `cases` arm.
#[derive(Debug)]
pub(crate) enum Arm {
    Const(ConstVal),
    Plan(Box<ValuePlan>),
}

/// A condition over the raw record (`when`, `cases[].if`).
#[derive(Debug)]
pub(crate) enum Cond {
    Equals(PathSet, Expected),
    In(PathSet, Box<[Expected]>),
    Exists(PathSet, bool),
    All(Box<[Cond]>),
    Any(Box<[Cond]>),
    Not(Box<Cond>),
}

/// A value a condition compares with, prepared for each JSON type it may meet.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub(crate) text: Box<str>,
    pub(crate) int: Option<i64>,
    pub(crate) float: Option<f64>,
    pub(crate) boolean: Option<bool>,
}

/// A code table: source codes (as text) to pre-encoded target values.
#[derive(Debug)]
pub(crate) struct CodeTable {
    pub(crate) entries: Box<[(Box<str>, ConstVal)]>,
    /// Per entry: the code's length and, for codes of up to 16 bytes, the code packed into an integer.
    packed: Box<[(usize, Option<u128>)]>,
    index: Option<std::collections::HashMap<Box<str>, usize>>,
}

impl CodeTable {
    /// Tables up to this size are searched linearly (faster than hashing short codes).
    pub(crate) const LINEAR_MAX: usize = 16;

    pub(crate) fn new(entries: Vec<(Box<str>, ConstVal)>) -> Self {
        let index = (entries.len() > Self::LINEAR_MAX).then(|| {
            entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect()
        });
        let packed = entries
            .iter()
            .map(|(k, _)| (k.len(), super::path::pack16(k.as_bytes())))
            .collect();
        Self {
            entries: entries.into_boxed_slice(),
            packed,
            index,
        }
    }

    #[inline]
    pub(crate) fn get(&self, code: &str) -> Option<&ConstVal> {
        if let Some(index) = &self.index {
            return index.get(code).map(|&i| &self.entries[i].1);
        }
        let i = match super::path::pack16(code.as_bytes()) {
            Some(p) => self
                .packed
                .iter()
                .position(|&(len, kp)| kp == Some(p) && len == code.len()),
            None => self.entries.iter().position(|(k, _)| &**k == code),
        }?;
        Some(&self.entries[i].1)
    }
}

/// How a source value becomes the target type.
#[derive(Debug, Clone)]
pub(crate) enum Conv {
    Null,
    Bool,
    /// `money`: the number of decimal places to shift (yuan → fen: 2).
    Int {
        money: Option<u32>,
    },
    Long {
        money: Option<u32>,
    },
    Float,
    Double,
    Str,
    /// A date or time rendered as RFC 3339 text.
    StrDatetime(DtSpec),
    Bytes,
    Enum,
    /// Date, timestamps, times and a plain `long` filled from a date or time.
    Time(TimeConv),
}

/// Conversion into a date or time type.
#[derive(Debug, Clone)]
pub(crate) struct TimeConv {
    pub(crate) unit: TimeUnit,
    pub(crate) spec: DtSpec,
}

/// The representation a date or time is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeUnit {
    /// Days since 1970-01-01 (`date`).
    Days,
    /// Epoch milliseconds, microseconds or nanoseconds, UTC (`timestamp-*` and a plain `long`).
    Millis,
    Micros,
    Nanos,
    /// Wall-clock epoch milliseconds, microseconds or nanoseconds in the zone (`local-timestamp-*`).
    LocalMillis,
    LocalMicros,
    LocalNanos,
    /// Milliseconds or microseconds into the day; numbers only.
    TimeOfDayMillis,
    TimeOfDayMicros,
}

/// The rule's `datetime` formats (`None`: implicit, numbers are taken as the target's own unit) and `zone`.
#[derive(Debug, Clone)]
pub(crate) struct DtSpec {
    pub(crate) formats: Option<Box<[Format]>>,
    pub(crate) zone: Zone,
}

impl DtSpec {
    /// The formats as written, for messages.
    pub(crate) fn describe(&self) -> String {
        match &self.formats {
            None => "auto".into(),
            Some(formats) => formats
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// A record-typed target.
#[derive(Debug)]
pub(crate) struct RecordNode {
    pub(crate) union: Option<UnionPos>,
    /// `path` of a record rule: sub-field paths are relative to this object, in `scope`.
    pub(crate) base: Option<PathSet>,
    pub(crate) scope: Option<ScopePlan>,
    pub(crate) presence: Presence,
    /// Written when the record is absent (null, with its union index).
    pub(crate) absent: Option<ConstVal>,
    pub(crate) plan: RecordPlan,
}

/// When an optional record is written rather than null.
#[derive(Debug)]
pub(crate) enum Presence {
    Always,
    /// The record rule's `when`.
    When(Cond),
    /// The base object exists and is not null.
    Base,
    /// Any of these raw paths (the sub-field rules' paths) is present and not null.
    Probe(Box<[PathSet]>),
}

/// An array target.
#[derive(Debug)]
pub(crate) struct ArrayNode {
    pub(crate) union: Option<UnionPos>,
    pub(crate) source: PathSet,
    /// The paths read against each element.
    pub(crate) scope: ScopePlan,
    /// `split = ","`: the source is a string of separated items.
    pub(crate) split: Option<Box<str>>,
    pub(crate) item: ItemPlan,
    pub(crate) missing: Missing,
}

/// The items of an array.
// One per array field, never in a collection: boxing the larger variant would only add a pointer chase per item.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum ItemPlan {
    Scalar(ScalarPlan),
    Record(RecordNode),
}

/// A map target (`map<string>` and other scalar values).
#[derive(Debug)]
pub(crate) struct MapNode {
    pub(crate) union: Option<UnionPos>,
    pub(crate) source: PathSet,
    /// The paths read against each value.
    pub(crate) scope: ScopePlan,
    pub(crate) value: ScalarPlan,
    pub(crate) missing: Missing,
}
