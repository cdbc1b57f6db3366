//! Running a compiled plan over one raw record, into a [`Sink`].
//!
//! The walker follows the plan (target fields in Avro order) and reads the raw JSON only where a rule points,
//! so raw records may carry any amount of other data. It never recurses into raw data on its own: depth is
//! bounded by the target schema. Errors carry the target path with array indices (built only when an error
//! happens, from a linked list of stack frames).

use std::borrow::Cow;
use std::fmt;

use serde_json::Value as Json;

use super::convert::{convert, trim, validate, with_code_key, Fail, Raw, Typed};
use super::error::{RecordError, RecordErrorKind};
use super::path::{resolve, Frame, ScopePlan};
use super::plan::{
    Arm, ArrayNode, Cond, EngineField, Expected, Fast, ItemPlan, MapNode, Missing, NodePlan,
    Presence, RecordNode, RecordPlan, ScalarPlan, Source, TemplatePart, ValuePlan,
};
use super::sink::{write_typed, Sink};

static NULL: Json = Json::Null;

/// Per-record values the engine fills in.
pub(crate) struct Ctx<'a> {
    pub(crate) record_id: &'a str,
    pub(crate) source_system: &'a str,
    pub(crate) source_record_id: &'a str,
    pub(crate) source_version: &'a str,
    pub(crate) ingest_time: i64,
}

/// Where in the target record the walker is, for error messages.
#[derive(Clone, Copy)]
pub(crate) enum At<'p> {
    Root,
    Field(&'p At<'p>, &'p str),
    Index(&'p At<'p>, usize),
    Key(&'p At<'p>, &'p str),
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Field(At::Root, name) => f.write_str(name),
            At::Field(parent, name) => write!(f, "{parent}.{name}"),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
            At::Key(parent, key) => write!(f, "{parent}[{key:?}]"),
        }
    }
}

/// The outcome of a rule.
pub(crate) enum Res<'a, 'p> {
    Missing,
    Const(&'p crate::mapping::plan::ConstVal),
    Val(Typed<'a>),
}

fn record_error(fail: Fail, at: &At<'_>, vp: &ValuePlan) -> RecordError {
    RecordError {
        field: at.to_string(),
        kind: fail.kind,
        validator: fail.validator,
        source_path: vp.source.describe(),
        message: fail.message,
    }
}

fn missing_error(at: &At<'_>, source: Option<String>) -> RecordError {
    let message = match &source {
        Some(s) => format!(
            "required field has no value ({s} is missing or null, and the rule has no default)"
        ),
        None => "required field has no value".into(),
    };
    RecordError {
        field: at.to_string(),
        kind: RecordErrorKind::MissingRequired,
        validator: None,
        source_path: source,
        message,
    }
}

fn bad_shape(at: &At<'_>, source: String, expected: &str, found: &Json) -> RecordError {
    RecordError {
        field: at.to_string(),
        kind: RecordErrorKind::BadType,
        validator: None,
        message: format!(
            "expected {expected} at {source}, found {}",
            json_type(found)
        ),
        source_path: Some(source),
    }
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Evaluates a rule: source, trim, blank, code table, default, conversion, validator.
pub(crate) fn eval<'a, 'p>(
    vp: &'p ValuePlan,
    frame: &Frame<'_, 'a>,
    element: Option<Raw<'a>>,
) -> Result<Res<'a, 'p>, Fail> {
    let raw: Option<Raw<'a>> = match &vp.source {
        // The common case, one raw value, goes straight through without an `Option<Raw>` in between (moving
        // that through the steps below cost store-forwarding stalls).
        Source::Path(ps) => {
            let Some(v) = ps.get(frame).filter(|v| !v.is_null()) else {
                return Ok(absent(vp));
            };
            let raw = match v {
                Json::String(s) if vp.trim => Raw::Text(Cow::Borrowed(trim(s))),
                _ => Raw::Json(v),
            };
            if vp.blank_as_null && raw.is_blank() {
                return Ok(absent(vp));
            }
            return finish(vp, raw);
        }
        Source::Element => Some(element.unwrap_or(Raw::Json(frame.current()))),
        Source::Const(c) => return Ok(Res::Const(c)),
        Source::Template(t) => {
            let mut text = String::with_capacity(t.text.len() + 16);
            let mut any = false;
            for part in t.parts.iter() {
                match part {
                    TemplatePart::Lit(s) => text.push_str(s),
                    TemplatePart::Path(ps) => {
                        if let Some(v) = ps.get(frame) {
                            any |= push_text(&mut text, v, vp.trim, ps)?;
                        }
                    }
                }
            }
            any.then_some(Raw::Text(Cow::Owned(text)))
        }
        Source::Concat(c) => {
            let mut text = String::new();
            let mut any = false;
            for part in c.parts.iter() {
                if let Some(v) = part.get(frame) {
                    // Write the separator first and take it back if the piece turns out blank.
                    let mark = text.len();
                    if any {
                        text.push_str(&c.separator);
                    }
                    if push_text(&mut text, v, true, part)? {
                        any = true;
                    } else {
                        text.truncate(mark);
                    }
                }
            }
            any.then_some(Raw::Text(Cow::Owned(text)))
        }
        Source::Cases(cases) => {
            let arm = cases
                .arms
                .iter()
                .find(|(cond, _)| test(cond, frame))
                .map(|(_, arm)| arm)
                .or(cases.otherwise.as_ref());
            let res = match arm {
                None => Res::Missing,
                Some(Arm::Const(c)) => Res::Const(c),
                Some(Arm::Plan(p)) => eval(p, frame, element)?,
            };
            return Ok(match (res, &vp.default) {
                (Res::Missing, Some(d)) => Res::Const(d),
                (res, _) => res,
            });
        }
    };
    let mut raw = match raw {
        None | Some(Raw::Json(Json::Null)) => None,
        Some(r) => Some(r),
    };
    if vp.trim {
        raw = raw.map(Raw::trimmed);
    }
    if vp.blank_as_null && raw.as_ref().is_some_and(Raw::is_blank) {
        raw = None;
    }
    let Some(raw) = raw else {
        return Ok(absent(vp));
    };
    finish(vp, raw)
}

/// The outcome of a rule whose source has no value: its default, if it has one.
#[inline]
fn absent<'a, 'p>(vp: &'p ValuePlan) -> Res<'a, 'p> {
    match &vp.default {
        Some(d) => Res::Const(d),
        None => Res::Missing,
    }
}

/// The rest of a rule once it has a value: code table, conversion, validator.
#[inline]
fn finish<'a, 'p>(vp: &'p ValuePlan, raw: Raw<'a>) -> Result<Res<'a, 'p>, Fail> {
    if let Some(codes) = &vp.codes {
        let hit = with_code_key(&raw, &vp.target, |key| codes.get(key))?;
        return match (hit, &vp.default) {
            (Some(c), _) => Ok(Res::Const(c)),
            (None, Some(d)) => Ok(Res::Const(d)),
            (None, None) => Err(Fail::new(
                RecordErrorKind::BadCode,
                format!(
                    "{} is not in the rule's code table and the rule has no default",
                    vp.target.mask.show(&raw.describe())
                ),
            )),
        };
    }
    let value = convert(raw, &vp.conv, &vp.target)?;
    match vp.validate {
        Some(v) => validate(value, v, vp.target.mask).map(Res::Val),
        None => Ok(Res::Val(value)),
    }
}

/// Appends a scalar's text; false if it added nothing (blank text). `path` is only formatted for an error.
fn push_text(
    out: &mut String,
    v: &Json,
    trim: bool,
    path: &dyn fmt::Display,
) -> Result<bool, Fail> {
    let before = out.len();
    match v {
        Json::String(s) => out.push_str(if trim { s.trim() } else { s }),
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Null => {}
        other => {
            return Err(Fail::new(
                RecordErrorKind::BadType,
                format!("{path} is {}, not text", json_type(other)),
            ))
        }
    }
    Ok(out.len() > before)
}

/// Evaluates a condition.
pub(crate) fn test(cond: &Cond, frame: &Frame<'_, '_>) -> bool {
    match cond {
        Cond::Equals(p, e) => p.get(frame).is_some_and(|v| e.matches(v)),
        Cond::In(p, es) => p
            .get(frame)
            .is_some_and(|v| es.iter().any(|e| e.matches(v))),
        Cond::Exists(p, want) => p.get(frame).is_some() == *want,
        Cond::All(cs) => cs.iter().all(|c| test(c, frame)),
        Cond::Any(cs) => cs.iter().any(|c| test(c, frame)),
        Cond::Not(c) => !test(c, frame),
    }
}

/// Resolves `scope` against `value` in the front of `free` and calls `f` with those slots and the rest.
fn enter<'a, R>(
    scope: &ScopePlan,
    value: &'a Json,
    free: &mut [Option<&'a Json>],
    f: impl FnOnce(&[Option<&'a Json>], &mut [Option<&'a Json>]) -> R,
) -> R {
    let n = scope.len();
    if free.len() >= n {
        let (mine, rest) = free.split_at_mut(n);
        resolve(scope, value, mine);
        f(mine, rest)
    } else {
        // Only reachable if the plan's slot count were short: still correct, just slower.
        let mut own = vec![None; n + 64];
        let (mine, rest) = own.split_at_mut(n);
        resolve(scope, value, mine);
        f(mine, rest)
    }
}

impl Expected {
    /// Whether a raw value equals this one, compared as text (trimmed), number or boolean.
    pub(crate) fn matches(&self, v: &Json) -> bool {
        match v {
            Json::String(s) => s.trim() == &*self.text,
            Json::Number(n) => match n.as_i64() {
                Some(i) => self.int == Some(i),
                None => n.as_f64().is_some_and(|f| self.float == Some(f)),
            },
            Json::Bool(b) => self.boolean == Some(*b),
            _ => false,
        }
    }
}

/// Writes the fields of a record whose paths read from `frame`; nested scopes take their slots from `free`.
pub(crate) fn write_record<'a, S: Sink>(
    plan: &RecordPlan,
    cx: &Ctx<'_>,
    frame: Frame<'_, 'a>,
    free: &mut [Option<&'a Json>],
    at: &At<'_>,
    sink: &mut S,
) -> Result<(), RecordError> {
    sink.record_begin();
    for f in plan.fields.iter() {
        sink.field(&f.name);
        let at = At::Field(at, &f.name);
        match &f.node {
            NodePlan::Const(c) => sink.constant(c),
            NodePlan::Engine(e) => match e {
                EngineField::RecordId => sink.string(cx.record_id),
                EngineField::SourceSystem => sink.string(cx.source_system),
                EngineField::SourceRecordId => sink.string(cx.source_record_id),
                EngineField::SourceVersion => sink.string(cx.source_version),
                EngineField::IngestTime => sink.long(cx.ingest_time),
            },
            NodePlan::Scalar(sp) => write_scalar(sp, &frame, None, &at, sink)?,
            NodePlan::Record(rn) => write_record_node(rn, cx, frame, free, &at, sink)?,
            NodePlan::Array(an) => write_array(an, cx, frame, free, &at, sink)?,
            NodePlan::Map(mn) => write_map(mn, frame, free, &at, sink)?,
        }
    }
    sink.record_end();
    Ok(())
}

#[inline]
fn write_scalar<'a, S: Sink>(
    sp: &ScalarPlan,
    frame: &Frame<'_, 'a>,
    element: Option<Raw<'a>>,
    at: &At<'_>,
    sink: &mut S,
) -> Result<(), RecordError> {
    match &sp.value.fast {
        Fast::General => {}
        Fast::Str(p) => {
            if let Some(Json::String(s)) = p.get(frame) {
                write_typed(sink, &sp.value.target, &Typed::Str(Cow::Borrowed(s)));
                return Ok(());
            }
        }
        Fast::Codes(p) => {
            if let (Some(Json::String(s)), Some(codes)) = (p.get(frame), &sp.value.codes) {
                let code = trim(s);
                if !code.is_empty() {
                    if let Some(c) = codes.get(code) {
                        sink.constant(c);
                        return Ok(());
                    }
                }
            }
        }
    }
    match eval(&sp.value, frame, element) {
        Ok(Res::Val(v)) => write_typed(sink, &sp.value.target, &v),
        Ok(Res::Const(c)) => sink.constant(c),
        Ok(Res::Missing) => match &sp.missing {
            Missing::Const(c) => sink.constant(c),
            Missing::Required => return Err(missing_error(at, sp.value.source.describe())),
        },
        Err(fail) => return Err(record_error(fail, at, &sp.value)),
    }
    Ok(())
}

fn write_record_node<'a, S: Sink>(
    rn: &RecordNode,
    cx: &Ctx<'_>,
    frame: Frame<'_, 'a>,
    free: &mut [Option<&'a Json>],
    at: &At<'_>,
    sink: &mut S,
) -> Result<(), RecordError> {
    let base: Option<&'a Json> = match &rn.base {
        Some(p) => p.get(&frame),
        None => Some(frame.current()),
    };
    let present = match &rn.presence {
        Presence::Always => true,
        Presence::Base => base.is_some_and(|b| !b.is_null()),
        Presence::When(c) => test(c, &frame),
        Presence::Probe(paths) => paths.iter().any(|p| p.get(&frame).is_some()),
    };
    if !present {
        if let Some(c) = &rn.absent {
            sink.constant(c);
            return Ok(());
        }
    }
    let obj = base.unwrap_or(&NULL);
    if !(obj.is_object() || obj.is_null()) {
        let source = rn
            .base
            .as_ref()
            .map_or_else(|| "@".to_string(), |p| p.to_string());
        return Err(bad_shape(at, source, "an object", obj));
    }
    if let Some(u) = &rn.union {
        sink.union_begin(u);
    }
    match &rn.scope {
        Some(scope) => enter(scope, obj, free, |mine, rest| {
            let inner = Frame {
                root: frame.root,
                cur: mine,
            };
            write_record(&rn.plan, cx, inner, rest, at, sink)
        })?,
        None => write_record(&rn.plan, cx, frame, free, at, sink)?,
    }
    if let Some(u) = &rn.union {
        sink.union_end(u);
    }
    Ok(())
}

fn write_missing<S: Sink>(
    missing: &Missing,
    at: &At<'_>,
    source: String,
    sink: &mut S,
) -> Result<(), RecordError> {
    match missing {
        Missing::Const(c) => {
            sink.constant(c);
            Ok(())
        }
        Missing::Required => Err(missing_error(at, Some(source))),
    }
}

fn write_array<'a, S: Sink>(
    an: &ArrayNode,
    cx: &Ctx<'_>,
    frame: Frame<'_, 'a>,
    free: &mut [Option<&'a Json>],
    at: &At<'_>,
    sink: &mut S,
) -> Result<(), RecordError> {
    let Some(value) = an.source.get(&frame) else {
        return write_missing(&an.missing, at, an.source.to_string(), sink);
    };
    if let Some(u) = &an.union {
        sink.union_begin(u);
    }
    match (value, &an.split) {
        (Json::String(text), Some(sep)) => {
            let pieces = || split(text, sep).map(str::trim).filter(|p| !p.is_empty());
            sink.array_begin(pieces().count());
            enter(&an.scope, &NULL, free, |mine, rest| {
                let inner = Frame {
                    root: frame.root,
                    cur: mine,
                };
                for (i, piece) in pieces().enumerate() {
                    let at = At::Index(at, i);
                    let element = Some(Raw::Text(Cow::Borrowed(piece)));
                    write_item(&an.item, cx, inner, rest, element, &at, sink)?;
                }
                Ok(())
            })?;
        }
        (value, _) => {
            // A single value where an array is expected is an array of one: XML-to-JSON exports do this.
            let items: &'a [Json] = match value {
                Json::Array(items) => items,
                other => std::slice::from_ref(other),
            };
            sink.array_begin(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = At::Index(at, i);
                enter(&an.scope, item, free, |mine, rest| {
                    let inner = Frame {
                        root: frame.root,
                        cur: mine,
                    };
                    write_item(&an.item, cx, inner, rest, None, &at, sink)
                })?;
            }
        }
    }
    sink.array_end();
    if let Some(u) = &an.union {
        sink.union_end(u);
    }
    Ok(())
}

#[inline]
fn write_item<'a, S: Sink>(
    item: &ItemPlan,
    cx: &Ctx<'_>,
    frame: Frame<'_, 'a>,
    free: &mut [Option<&'a Json>],
    element: Option<Raw<'a>>,
    at: &At<'_>,
    sink: &mut S,
) -> Result<(), RecordError> {
    match item {
        ItemPlan::Scalar(sp) => write_scalar(sp, &frame, element, at, sink),
        ItemPlan::Record(rn) => write_record_node(rn, cx, frame, free, at, sink),
    }
}

fn write_map<'a, S: Sink>(
    mn: &MapNode,
    frame: Frame<'_, 'a>,
    free: &mut [Option<&'a Json>],
    at: &At<'_>,
    sink: &mut S,
) -> Result<(), RecordError> {
    let Some(value) = mn.source.get(&frame) else {
        return write_missing(&mn.missing, at, mn.source.to_string(), sink);
    };
    let Json::Object(map) = value else {
        return Err(bad_shape(at, mn.source.to_string(), "an object", value));
    };
    if let Some(u) = &mn.union {
        sink.union_begin(u);
    }
    // A null column of a non-nullable map is left out rather than rejecting the record: a map is for data
    // without a schema of its own, where an empty column is normal.
    let skip_nulls = matches!(mn.value.missing, Missing::Required);
    let len = if skip_nulls {
        map.values().filter(|v| !v.is_null()).count()
    } else {
        map.len()
    };
    sink.map_begin(len);
    for (key, v) in map {
        if skip_nulls && v.is_null() {
            continue;
        }
        sink.map_key(key);
        let at = At::Key(at, key);
        enter(&mn.scope, v, free, |mine, _| {
            let inner = Frame {
                root: frame.root,
                cur: mine,
            };
            write_scalar(&mn.value, &inner, None, &at, sink)
        })?;
    }
    sink.map_end();
    if let Some(u) = &mn.union {
        sink.union_end(u);
    }
    Ok(())
}

/// `text.split(sep)`, searching for a one-character separator (the usual case) by character.
fn split<'t, 's>(text: &'t str, sep: &'s str) -> impl Iterator<Item = &'t str> + use<'t, 's> {
    let mut chars = sep.chars();
    let single = match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    };
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        let found = match single {
            Some(c) => r.find(c).map(|i| (i, c.len_utf8())),
            None => r.find(sep).map(|i| (i, sep.len())),
        };
        match found {
            Some((i, len)) => {
                rest = Some(&r[i + len..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Evaluates a rule that yields text (the record id parts and the partition key).
pub(crate) fn eval_text<'a>(
    vp: &'a ValuePlan,
    frame: &Frame<'_, 'a>,
    label: &str,
) -> Result<Cow<'a, str>, RecordError> {
    let at = At::Field(&At::Root, label);
    let text = match eval(vp, frame, None) {
        Ok(Res::Val(Typed::Str(s))) => s,
        Ok(Res::Const(c)) => Cow::Borrowed(c.json.as_str().unwrap_or_default()),
        Ok(Res::Val(_)) | Ok(Res::Missing) => return Err(missing_error(&at, vp.source.describe())),
        Err(fail) => return Err(record_error(fail, &at, vp)),
    };
    Ok(text)
}
