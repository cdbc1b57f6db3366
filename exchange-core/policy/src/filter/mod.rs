//! Subscription filters: a small, documented subset of CEL (Common Expression Language), compiled and
//! type-checked against the Avro record schema of a shared schema, then evaluated against decoded records.
//!
//! # Why
//!
//! A subscriber narrows a shared stream (e.g. `grid_event`) with an expression such as
//!
//! ```text
//! region_code.startsWith("610921") && event_type_code in ["dispute", "safety"]
//! ```
//!
//! Filters are written by people, stored with the subscription and run on every record of the stream, so they
//! must (1) fail early with a precise message when they cannot work — a misspelt field, an enum symbol that
//! does not exist, a string compared with a number — instead of silently matching nothing, and (2) be cheap
//! per record. Hence the split: [`Filter::compile`] does all name resolution and type checking once, and
//! produces a tree whose field accesses are record field indices; [`Filter::matches`] walks that tree over
//! the decoded `apache_avro::types::Value` without allocating in the common case.
//!
//! # How
//!
//! A hand-written lexer and recursive-descent parser produce an AST (every node keeps its byte position, so
//! every [`FilterError`] has a line, a column and a snippet with a caret). The checker resolves identifiers
//! against the record schema (named-type references included), assigns each sub-expression a type and
//! builds the evaluation tree. The evaluator works on a borrowed value type: strings and lists of the record
//! are borrowed, never copied. Field steps carry the schema position of the field; a decoded record has its
//! fields in schema order, so the evaluator checks the name at that index (one short string comparison) and
//! only falls back to a lookup by name when a record does not have the expected layout. Comparisons of a
//! field with a constant (`==`, `!=`, `<`…, `in [...]`, `startsWith("…")`) get their own nodes that read the
//! Avro value in place, which is what most subscription filters consist of.
//!
//! Runtime errors (a null where a value is needed, integer division by zero, integer overflow, a record that
//! does not fit the schema) make [`Filter::matches`] return `false` — a subscription never receives a record
//! because its filter failed (default deny); [`Filter::evaluate`] returns the [`EvalError`]. `&&` and `||`
//! short-circuit and follow CEL's commutative error rules: `false && <error>` and `<error> && false` are
//! `false`, `true || <error>` and `<error> || true` are `true`. `exists` is true if any element satisfies
//! the predicate even if others fail; `all` is false if any element fails the predicate even if others fail.
//!
//! # The supported subset of CEL
//!
//! - **Literals**: `int` (64-bit, decimal or `0x` hex), `double` (`1.5`, `2e3`, `1.5e-3`), strings in `'…'`
//!   or `"…"` with the escapes `\\ \" \' \n \r \t \uXXXX`, `true`, `false`, `null`, list literals
//!   `[a, b, c]` (elements of one type; ints and doubles may mix). Not supported: unsigned (`1u`), bytes,
//!   raw or triple-quoted strings, maps, message construction.
//! - **Fields**: identifiers and selection `a.b.c`, resolved against the schema: top-level fields, fields of
//!   nested records, arrays (as lists). *Convenience*: an identifier that is not a top-level field but is a
//!   field of the top-level `envelope` record means `envelope.<name>`, so `region_code` is
//!   `envelope.region_code`. Variables bound by `exists`/`all` shadow field names.
//! - **Operators**, by CEL precedence from loosest to tightest: `c ? a : b`; `||`; `&&`; the relations
//!   `< <= > >= == != in` (one level, left-associative, as in CEL); `+ -`; `* / %`; unary `!` and `-`;
//!   selection and calls; parentheses group. `+ - * /` work on ints and doubles (an int mixed with a double
//!   is widened to double — a deliberate convenience beyond CEL), `+` also concatenates strings, `%` is for
//!   ints. Integer arithmetic is checked (overflow and division by zero are runtime errors); double
//!   arithmetic follows IEEE 754. `<`… compare numbers (ints and doubles may mix) or strings (by code
//!   point). `==`/`!=` compare values of the same type, numbers across int/double, and a nullable value
//!   with `null`. `x in list` tests membership in a list literal or a list field.
//! - **Functions**: `s.startsWith(x)`, `s.endsWith(x)`, `s.contains(x)`, `s.matches(re)` and
//!   `matches(s, re)` (the pattern must be a string literal; it is compiled when the filter is compiled,
//!   with `regex-lite` syntax and an unanchored search), `size(x)` / `x.size()` (characters of a string,
//!   elements of a list), `has(a.b)` (true if the field is present and not null — for a non-nullable field
//!   it is always true), and the macros `list.exists(x, pred)` and `list.all(x, pred)` over lists, including
//!   arrays of records (`parties.exists(p, p.role == "VICTIM")`). Nothing else (no `int()`, `string()`,
//!   `timestamp()`, `exists_one`, `map`, `filter`, indexing `a[i]`).
//! - **Types** from Avro: `string` → string; `enum` → string (comparing an enum field with a string literal
//!   that is not one of its symbols is a compile error naming the symbols); `int`, `long` and their logical
//!   types (`date`, `time-*`, `timestamp-*`) → int; `float`, `double` → double; `boolean` → bool; `array` →
//!   list; `record` → message (select its fields); `["null", T]` → nullable T (usable as T — a null is then a
//!   runtime error — and comparable with `null`); `uuid` → string. Other unions, maps, bytes, fixed and
//!   decimals can only be tested with `has()`.
//! - **Checked at compile time**: unknown fields (with the closest existing path suggested), operand types,
//!   unknown functions, arity, enum symbols, and that the whole filter is a bool.
//! - **Limits**: at most [`MAX_SOURCE_CHARS`] characters and [`MAX_DEPTH`] levels of nesting; no input
//!   makes `compile` or `evaluate` panic or overflow the stack.
//!
//! # Layout
//!
//! - this file: [`Filter`] (compile, evaluate), its errors and the limits;
//! - `lex`: filter text to tokens; `parse`: tokens to a syntax tree;
//! - `check`: the syntax tree type-checked against the Avro schema, giving typed nodes;
//! - `eval`: typed nodes run against one decoded record;
//! - [`Guard`]s: the conditions of a filter's top-level conjunction a router can index subscriptions on.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use apache_avro::schema::{EnumSchema, RecordSchema, Schema};
use apache_avro::types::Value;
use regex_lite::Regex;

mod check;
mod eval;
mod lex;
mod parse;
#[cfg(test)]
mod tests;

use check::*;
use eval::*;
use lex::*;
use parse::*;

/// The longest filter source accepted, in characters.
pub const MAX_SOURCE_CHARS: usize = 4096;

/// The deepest nesting of sub-expressions accepted (parentheses, operators, calls, selections).
pub const MAX_DEPTH: usize = 64;

/// Compiled size limit for `matches()` patterns, in bytes (regex-lite's own unit).
const REGEX_SIZE_LIMIT: usize = 16 * 1024;

/// The text `matches()` may scan for one record, in bytes, all its calls together: regex-lite matches in time
/// proportional to pattern size × text length, so this and [`REGEX_SIZE_LIMIT`] bound what one record can cost
/// (a few milliseconds at worst). Past it the evaluation fails with [`EvalErrorKind::Budget`]: the record does not
/// match, and the router pauses the subscription with the reason.
pub const MATCH_BUDGET_BYTES: usize = 32 * 1024;

/// How many nested records deep "did you mean" suggestions look.
const SUGGEST_DEPTH: usize = 4;

// ---------------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------------

/// A compiled, type-checked subscription filter; cheap to clone and safe to share between threads.
#[derive(Debug, Clone)]
pub struct Filter {
    source: String,
    root: Node,
    fields: Vec<String>,
}

/// Why a filter does not compile: where (line and column, 1-based, in characters) and what.
///
/// Displays as `filter, column 1: unknown field `regoin_code` (did you mean `region_code`?)` (with
/// `line L, ` before the column when the filter has several lines).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter, {}: {message}", location(*.line, *.column, *.multiline))]
pub struct FilterError {
    line: usize,
    column: usize,
    multiline: bool,
    message: String,
    snippet: String,
}

fn location(line: usize, column: usize, multiline: bool) -> String {
    if multiline {
        format!("line {line}, column {column}")
    } else {
        format!("column {column}")
    }
}

impl FilterError {
    /// The 1-based line of the error.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column (in characters) of the error.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The offending line (or a window of it around the error) and a second line with a caret under the
    /// error column.
    pub fn snippet(&self) -> &str {
        &self.snippet
    }
}

/// What went wrong while evaluating a filter on one record (the filter then does not match).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .inner.message)]
pub struct EvalError {
    // Boxed so that results stay small on the evaluator's hot path (`Result<bool, EvalError>` fits in two
    // registers).
    inner: Box<EvalErrorInner>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EvalErrorInner {
    kind: EvalErrorKind,
    message: String,
}

/// The class of an [`EvalError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvalErrorKind {
    /// A null value where a value is needed (e.g. `location.lng > 108` with no longitude).
    Null,
    /// Integer division or remainder by zero.
    DivisionByZero,
    /// Integer arithmetic overflowed 64 bits.
    Overflow,
    /// The record does not have the shape of the schema the filter was compiled against.
    Record,
    /// The filter's `matches()` calls would scan more text than one record may cost ([`MATCH_BUDGET_BYTES`]).
    Budget,
}

impl EvalError {
    fn new(kind: EvalErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(EvalErrorInner {
                kind,
                message: message.into(),
            }),
        }
    }

    fn null(what: &str) -> Self {
        Self::new(EvalErrorKind::Null, format!("{what}: value is null"))
    }

    fn record(message: impl Into<String>) -> Self {
        Self::new(EvalErrorKind::Record, message)
    }

    fn over_budget() -> Self {
        Self::new(
            EvalErrorKind::Budget,
            format!(
                "matches() would scan more than {MATCH_BUDGET_BYTES} bytes of text for one record: the filter costs too much"
            ),
        )
    }

    /// The class of error.
    pub fn kind(&self) -> EvalErrorKind {
        self.inner.kind
    }

    /// The message (also the `Display` text).
    pub fn message(&self) -> &str {
        &self.inner.message
    }
}

impl Filter {
    /// Parses and type-checks `source` against `schema` (an Avro record schema, e.g.
    /// `unsilo_schemas::shared_schema("grid_event").unwrap().avro()`).
    pub fn compile(source: &str, schema: &Schema) -> Result<Filter, FilterError> {
        let fail = |e: RawError| make_error(source, e);
        let Schema::Record(root) = schema else {
            return Err(fail(RawError::new(
                0,
                "the schema of a filter must be an Avro record",
            )));
        };
        if let Some((pos, _)) = source.char_indices().nth(MAX_SOURCE_CHARS) {
            return Err(fail(RawError::new(
                pos,
                format!("filter is longer than {MAX_SOURCE_CHARS} characters"),
            )));
        }
        let tokens = lex(source).map_err(fail)?;
        let ast = Parser::new(&tokens).parse().map_err(fail)?;
        let mut checker = Checker::new(root, schema);
        let typed = checker.check(&ast).map_err(fail)?;
        if !typed.ty.strip().is_bool() {
            return Err(fail(RawError::new(
                ast.pos,
                format!(
                    "a filter must be a bool expression, but this is {}",
                    typed.ty.name()
                ),
            )));
        }
        Ok(Filter {
            source: source.to_string(),
            root: typed.node,
            fields: checker.fields.into_iter().collect(),
        })
    }

    /// The filter that matches every record (source `true`), for subscriptions without a filter.
    pub fn match_all(schema: &Schema) -> Filter {
        // Matching everything needs nothing from the schema; the parameter keeps the API uniform.
        let _ = schema;
        Filter {
            source: "true".to_string(),
            root: Node::Lit(Lit::Bool(true)),
            fields: Vec::new(),
        }
    }

    /// The source text the filter was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The dotted schema paths the filter reads, sorted (e.g. `envelope.region_code`; inside
    /// `parties.exists(p, p.role == "VICTIM")`: `parties` and `parties.role`).
    pub fn fields(&self) -> Vec<String> {
        self.fields.clone()
    }

    /// Whether the filter can never match a record whose field at `path` (dotted, e.g.
    /// `envelope.data_grade`) is the string or enum symbol `value` — judged from the filter's structure: a
    /// conjunct comparing that field with another constant (`==`, `in [...]`) or with `!= value`. A `false`
    /// answer means "cannot tell", so callers treat it as "may match" (used to decide whether a subscription
    /// can release CORE-grade records, which needs two operators).
    pub fn rules_out(&self, path: &str, value: &str) -> bool {
        fn is_path(node: &Node, path: &str) -> bool {
            match node {
                Node::Path {
                    base: Base::Root,
                    steps,
                    ..
                } => {
                    let mut names = steps.iter().map(|s| &*s.name);
                    path.split('.').all(|p| names.next() == Some(p)) && names.next().is_none()
                }
                _ => false,
            }
        }
        fn walk(node: &Node, path: &str, value: &str) -> bool {
            match node {
                Node::Lit(Lit::Bool(false)) => true,
                Node::And(a, b) => walk(a, path, value) || walk(b, path, value),
                Node::Or(a, b) => walk(a, path, value) && walk(b, path, value),
                Node::EqLit(field, Lit::Str(s), negated) if is_path(field, path) => {
                    (&**s == value) == *negated
                }
                Node::InLits(field, lits) if is_path(field, path) => !lits
                    .iter()
                    .any(|l| matches!(l, Lit::Str(s) if &**s == value)),
                Node::Not(inner) => match &**inner {
                    Node::EqLit(field, Lit::Str(s), negated) if is_path(field, path) => {
                        (&**s == value) != *negated
                    }
                    _ => false,
                },
                _ => false,
            }
        }
        walk(&self.root, path, value)
    }

    /// Whether `record` passes the filter; a runtime error counts as no match (default deny).
    pub fn matches(&self, record: &Value) -> bool {
        matches!(self.evaluate(record), Ok(true))
    }

    /// Evaluates the filter on `record` (a decoded record of the schema the filter was compiled against).
    pub fn evaluate(&self, record: &Value) -> Result<bool, EvalError> {
        eval::reset_match_budget();
        let fields = match record {
            Value::Record(fields) => fields.as_slice(),
            Value::Union(_, inner) => match inner.as_ref() {
                Value::Record(fields) => fields.as_slice(),
                _ => {
                    return Err(EvalError::record(
                        "the value to filter is not an Avro record",
                    ))
                }
            },
            _ => {
                return Err(EvalError::record(
                    "the value to filter is not an Avro record",
                ))
            }
        };
        eval_bool(&self.root, fields, None)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Errors with positions
// ---------------------------------------------------------------------------------------------------------

/// An error at a byte offset of the source, turned into a [`FilterError`] by [`make_error`].
#[derive(Debug)]
struct RawError {
    pos: usize,
    message: String,
}

impl RawError {
    fn new(pos: usize, message: impl Into<String>) -> Self {
        Self {
            pos,
            message: message.into(),
        }
    }
}

type Res<T> = Result<T, RawError>;

fn make_error(source: &str, e: RawError) -> FilterError {
    let pos = e.pos.min(source.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, c) in source.char_indices() {
        if i >= pos {
            break;
        }
        if c == '\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    let before = source.get(line_start..pos).unwrap_or("");
    let column = before.chars().count() + 1;
    let line_text: Vec<char> = source
        .get(line_start..)
        .unwrap_or("")
        .chars()
        .take_while(|&c| c != '\n')
        .collect();
    // A window of at most 60 characters around the caret keeps the snippet short.
    let caret = column - 1;
    let start = caret.saturating_sub(40);
    let end = (start + 60)
        .min(line_text.len())
        .max(caret.min(line_text.len()));
    let mut snippet: String = line_text
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .map(|&c| if c == '\t' || c == '\r' { ' ' } else { c })
        .collect();
    snippet.push('\n');
    snippet.extend(std::iter::repeat_n(' ', caret - start));
    snippet.push('^');
    FilterError {
        line,
        column,
        multiline: source.contains('\n'),
        message: e.message,
        snippet,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Guards: what a router can index a filter on
// ---------------------------------------------------------------------------------------------------------

/// A condition on one string field that every record a filter matches meets — what a router indexes
/// subscriptions on, so that a record is evaluated only against the filters it can match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Guard {
    /// The field (dotted schema path) is one of these values: `f == "x"`, or `f in ["x", "y"]`.
    OneOf {
        /// The field's dotted schema path, e.g. `envelope.event_type_code`.
        path: String,
        /// The values it may have.
        values: Vec<String>,
    },
    /// The field starts with this text: `f.startsWith("610921")`.
    Prefix {
        /// The field's dotted schema path, e.g. `envelope.region_code`.
        path: String,
        /// The prefix.
        prefix: String,
    },
}

impl Filter {
    /// The guards among the filter's top-level conjuncts (`a && b && …`): each is a condition on a string or
    /// enum field that every record the filter matches meets. Empty when there is none to index on (`true`, a
    /// disjunction at the top, a negation, a condition on a number …).
    pub fn guards(&self) -> Vec<Guard> {
        let mut out = Vec::new();
        collect_guards(&self.root, &mut out);
        out
    }
}

/// The dotted schema path of a field read from the record's root.
fn root_path(node: &Node) -> Option<String> {
    match node {
        Node::Path {
            base: Base::Root,
            steps,
            ..
        } if !steps.is_empty() => Some(
            steps
                .iter()
                .map(|s| s.name.as_ref())
                .collect::<Vec<&str>>()
                .join("."),
        ),
        _ => None,
    }
}

fn collect_guards(node: &Node, out: &mut Vec<Guard>) {
    match node {
        Node::And(a, b) => {
            collect_guards(a, out);
            collect_guards(b, out);
        }
        Node::EqLit(field, Lit::Str(value), false) => {
            if let Some(path) = root_path(field) {
                out.push(Guard::OneOf {
                    path,
                    values: vec![value.to_string()],
                });
            }
        }
        Node::InLits(field, values) => {
            let strings: Option<Vec<String>> = values
                .iter()
                .map(|v| match v {
                    Lit::Str(s) => Some(s.to_string()),
                    _ => None,
                })
                .collect();
            if let (Some(path), Some(values)) = (root_path(field), strings) {
                out.push(Guard::OneOf { path, values });
            }
        }
        Node::StrLit(StrFn::StartsWith, field, prefix) => {
            if let Some(path) = root_path(field) {
                out.push(Guard::Prefix {
                    path,
                    prefix: prefix.to_string(),
                });
            }
        }
        _ => {}
    }
}
