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

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use apache_avro::schema::{EnumSchema, RecordSchema, Schema};
use apache_avro::types::Value;
use regex_lite::Regex;

/// The longest filter source accepted, in characters.
pub const MAX_SOURCE_CHARS: usize = 4096;

/// The deepest nesting of sub-expressions accepted (parentheses, operators, calls, selections).
pub const MAX_DEPTH: usize = 64;

/// Compiled size limit for `matches()` patterns, in bytes (regex-lite's own unit).
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

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
// Lexer
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(u64),
    Double(f64),
    Str(String),
    Ident(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Question,
    Colon,
    Not,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    And,
    Or,
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Tok::Int(n) => return write!(f, "`{n}`"),
            Tok::Double(d) => return write!(f, "`{d}`"),
            Tok::Str(_) => "a string",
            Tok::Ident(name) => return write!(f, "`{name}`"),
            Tok::True => "`true`",
            Tok::False => "`false`",
            Tok::Null => "`null`",
            Tok::In => "`in`",
            Tok::LParen => "`(`",
            Tok::RParen => "`)`",
            Tok::LBracket => "`[`",
            Tok::RBracket => "`]`",
            Tok::LBrace => "`{`",
            Tok::RBrace => "`}`",
            Tok::Dot => "`.`",
            Tok::Comma => "`,`",
            Tok::Question => "`?`",
            Tok::Colon => "`:`",
            Tok::Not => "`!`",
            Tok::Minus => "`-`",
            Tok::Plus => "`+`",
            Tok::Star => "`*`",
            Tok::Slash => "`/`",
            Tok::Percent => "`%`",
            Tok::Lt => "`<`",
            Tok::Le => "`<=`",
            Tok::Gt => "`>`",
            Tok::Ge => "`>=`",
            Tok::EqEq => "`==`",
            Tok::Ne => "`!=`",
            Tok::And => "`&&`",
            Tok::Or => "`||`",
            Tok::Eof => "the end of the filter",
        };
        f.write_str(s)
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn lex(src: &str) -> Res<Vec<Token>> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let next = bytes.get(i + 1).copied();
        let simple = |tok: Tok, len: usize| (tok, len);
        let (tok, len) = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => {
                i += 1;
                continue;
            }
            b'/' if next == Some(b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' => simple(Tok::LParen, 1),
            b')' => simple(Tok::RParen, 1),
            b'[' => simple(Tok::LBracket, 1),
            b']' => simple(Tok::RBracket, 1),
            b'{' => simple(Tok::LBrace, 1),
            b'}' => simple(Tok::RBrace, 1),
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                return Err(RawError::new(
                    start,
                    "a number needs a digit before the decimal point (write `0.5`)",
                ))
            }
            b'.' => simple(Tok::Dot, 1),
            b',' => simple(Tok::Comma, 1),
            b'?' => simple(Tok::Question, 1),
            b':' => simple(Tok::Colon, 1),
            b'+' => simple(Tok::Plus, 1),
            b'-' => simple(Tok::Minus, 1),
            b'*' => simple(Tok::Star, 1),
            b'/' => simple(Tok::Slash, 1),
            b'%' => simple(Tok::Percent, 1),
            b'!' if next == Some(b'=') => simple(Tok::Ne, 2),
            b'!' => simple(Tok::Not, 1),
            b'<' if next == Some(b'=') => simple(Tok::Le, 2),
            b'<' => simple(Tok::Lt, 1),
            b'>' if next == Some(b'=') => simple(Tok::Ge, 2),
            b'>' => simple(Tok::Gt, 1),
            b'=' if next == Some(b'=') => simple(Tok::EqEq, 2),
            b'=' => return Err(RawError::new(start, "unexpected `=` (use `==` to compare)")),
            b'&' if next == Some(b'&') => simple(Tok::And, 2),
            b'&' => return Err(RawError::new(start, "unexpected `&` (use `&&`)")),
            b'|' if next == Some(b'|') => simple(Tok::Or, 2),
            b'|' => return Err(RawError::new(start, "unexpected `|` (use `||`)")),
            b'"' | b'\'' => {
                let (s, len) = lex_string(src, start)?;
                (Tok::Str(s), len)
            }
            b'0'..=b'9' => lex_number(src, start)?,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let mut end = start;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                let word = &src[start..end];
                let tok = match word {
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "null" => Tok::Null,
                    "in" => Tok::In,
                    _ => Tok::Ident(word.to_string()),
                };
                (tok, end - start)
            }
            _ => {
                let ch = src
                    .get(start..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?');
                return Err(RawError::new(start, format!("unexpected character `{ch}`")));
            }
        };
        tokens.push(Token { tok, pos: start });
        i = start + len;
    }
    tokens.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(tokens)
}

fn lex_number(src: &str, start: usize) -> Res<(Tok, usize)> {
    let bytes = src.as_bytes();
    let digits_end = |mut i: usize, hex: bool| {
        while i < bytes.len()
            && (bytes[i].is_ascii_digit() || (hex && bytes[i].is_ascii_hexdigit()))
        {
            i += 1;
        }
        i
    };
    let mut end;
    let mut is_double = false;
    if bytes.get(start) == Some(&b'0') && matches!(bytes.get(start + 1), Some(b'x' | b'X')) {
        end = digits_end(start + 2, true);
        let digits = &src[start + 2..end];
        if digits.is_empty() {
            return Err(RawError::new(start, "hex literal `0x` needs digits"));
        }
        let n = u64::from_str_radix(digits, 16)
            .map_err(|_| RawError::new(start, "integer literal is out of range"))?;
        check_number_end(src, end)?;
        return Ok((Tok::Int(n), end - start));
    }
    end = digits_end(start, false);
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(|b| b.is_ascii_digit()) {
        is_double = true;
        end = digits_end(end + 1, false);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(|b| b.is_ascii_digit()) {
            is_double = true;
            end = digits_end(j, false);
        } else {
            return Err(RawError::new(end, "exponent needs digits"));
        }
    }
    check_number_end(src, end)?;
    let text = &src[start..end];
    if is_double {
        let d: f64 = text
            .parse()
            .map_err(|_| RawError::new(start, "invalid double literal"))?;
        if !d.is_finite() {
            return Err(RawError::new(start, "double literal is out of range"));
        }
        Ok((Tok::Double(d), end - start))
    } else {
        let n: u64 = text
            .parse()
            .map_err(|_| RawError::new(start, "integer literal is out of range"))?;
        Ok((Tok::Int(n), end - start))
    }
}

fn check_number_end(src: &str, end: usize) -> Res<()> {
    match src.as_bytes().get(end) {
        Some(b'u' | b'U') => Err(RawError::new(
            end,
            "unsigned integer literals are not supported",
        )),
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => {
            Err(RawError::new(end, "invalid character in number literal"))
        }
        _ => Ok(()),
    }
}

/// Lexes a quoted string starting at `start`; returns the value and the length in bytes.
fn lex_string(src: &str, start: usize) -> Res<(String, usize)> {
    let rest = src.get(start..).unwrap_or("");
    let mut chars = rest.char_indices();
    let quote = match chars.next() {
        Some((_, q)) => q,
        None => return Err(RawError::new(start, "unterminated string")),
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, i + c.len_utf8())),
            '\n' => {
                return Err(RawError::new(
                    start,
                    "unterminated string (strings cannot span lines)",
                ))
            }
            '\\' => {
                let Some((j, e)) = chars.next() else {
                    break;
                };
                match e {
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).map(|(_, h)| h).collect();
                        let code = (hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()))
                            .then(|| u32::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .ok_or_else(|| {
                                RawError::new(start + i, "`\\u` needs exactly 4 hex digits")
                            })?;
                        let ch = char::from_u32(code).ok_or_else(|| {
                            RawError::new(
                                start + i,
                                format!("`\\u{hex}` is not a valid character (surrogate)"),
                            )
                        })?;
                        out.push(ch);
                    }
                    other => {
                        return Err(RawError::new(
                            start + j - 1,
                            format!(
                                "unknown escape `\\{other}` (supported: \\\\ \\\" \\' \\n \\r \\t \\uXXXX)"
                            ),
                        ))
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(RawError::new(start, "unterminated string"))
}

// ---------------------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Or,
    And,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::In => "in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
        }
    }
}

#[derive(Debug)]
enum AstKind {
    /// An integer literal before its sign is known (so `-9223372036854775808` works).
    RawInt(u64),
    Lit(Lit),
    List(Vec<Ast>),
    Ident(String),
    Select(Box<Ast>, String),
    Call {
        target: Option<Box<Ast>>,
        name: String,
        args: Vec<Ast>,
    },
    Not(Box<Ast>),
    Neg(Box<Ast>),
    Binary(BinOp, Box<Ast>, Box<Ast>),
    Cond(Box<Ast>, Box<Ast>, Box<Ast>),
}

/// A parsed sub-expression; `pos` is the byte offset errors about it point at (the operator of a binary
/// expression, the field name of a selection, the function name of a call, else its first character).
#[derive(Debug)]
struct Ast {
    kind: AstKind,
    pos: usize,
    depth: usize,
}

impl Ast {
    fn new(kind: AstKind, pos: usize) -> Res<Ast> {
        let child = match &kind {
            AstKind::RawInt(_) | AstKind::Lit(_) | AstKind::Ident(_) => 0,
            AstKind::List(items) => items.iter().map(|a| a.depth).max().unwrap_or(0),
            AstKind::Select(a, _) | AstKind::Not(a) | AstKind::Neg(a) => a.depth,
            AstKind::Call { target, args, .. } => target
                .iter()
                .map(|t| t.depth)
                .chain(args.iter().map(|a| a.depth))
                .max()
                .unwrap_or(0),
            AstKind::Binary(_, a, b) => a.depth.max(b.depth),
            AstKind::Cond(a, b, c) => a.depth.max(b.depth).max(c.depth),
        };
        let depth = child + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(pos));
        }
        Ok(Ast { kind, pos, depth })
    }

    /// The dotted text of an identifier/selection chain (`a.b.c`), for messages.
    fn path_text(&self) -> Option<String> {
        match &self.kind {
            AstKind::Ident(name) => Some(name.clone()),
            AstKind::Select(base, name) => base.path_text().map(|b| format!("{b}.{name}")),
            _ => None,
        }
    }
}

fn too_deep(pos: usize) -> RawError {
    RawError::new(
        pos,
        format!("filter is nested deeper than {MAX_DEPTH} levels"),
    )
}

struct Parser<'t> {
    toks: &'t [Token],
    i: usize,
    depth: usize,
}

impl<'t> Parser<'t> {
    fn new(toks: &'t [Token]) -> Self {
        Self {
            toks,
            i: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.i).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.i)
            .or(self.toks.last())
            .map_or(0, |t| t.pos)
    }

    fn bump(&mut self) -> Token {
        let t = self.toks.get(self.i).cloned().unwrap_or(Token {
            tok: Tok::Eof,
            pos: self.pos(),
        });
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn expect(&mut self, tok: &Tok, context: &str) -> Res<usize> {
        if self.peek() == tok {
            Ok(self.bump().pos)
        } else {
            Err(RawError::new(
                self.pos(),
                format!("expected {tok} {context}, found {}", self.peek()),
            ))
        }
    }

    fn parse(mut self) -> Res<Ast> {
        if *self.peek() == Tok::Eof {
            return Err(RawError::new(self.pos(), "filter is empty"));
        }
        let ast = self.expr()?;
        if *self.peek() != Tok::Eof {
            return Err(RawError::new(
                self.pos(),
                format!("unexpected {} after the end of the expression", self.peek()),
            ));
        }
        Ok(ast)
    }

    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(too_deep(self.pos()));
        }
        Ok(())
    }

    fn expr(&mut self) -> Res<Ast> {
        self.enter()?;
        let cond = self.binary(0)?;
        let result = if *self.peek() == Tok::Question {
            let pos = self.bump().pos;
            let then = self.binary(0)?;
            self.expect(&Tok::Colon, "in `c ? a : b`")?;
            let other = self.expr()?;
            Ast::new(
                AstKind::Cond(Box::new(cond), Box::new(then), Box::new(other)),
                pos,
            )?
        } else {
            cond
        };
        self.depth -= 1;
        Ok(result)
    }

    /// Binary operators by precedence level: 0 `||`, 1 `&&`, 2 relations, 3 `+ -`, 4 `* / %`.
    fn binary(&mut self, level: u8) -> Res<Ast> {
        if level > 4 {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        loop {
            let op = match (level, self.peek()) {
                (0, Tok::Or) => BinOp::Or,
                (1, Tok::And) => BinOp::And,
                (2, Tok::Lt) => BinOp::Lt,
                (2, Tok::Le) => BinOp::Le,
                (2, Tok::Gt) => BinOp::Gt,
                (2, Tok::Ge) => BinOp::Ge,
                (2, Tok::EqEq) => BinOp::Eq,
                (2, Tok::Ne) => BinOp::Ne,
                (2, Tok::In) => BinOp::In,
                (3, Tok::Plus) => BinOp::Add,
                (3, Tok::Minus) => BinOp::Sub,
                (4, Tok::Star) => BinOp::Mul,
                (4, Tok::Slash) => BinOp::Div,
                (4, Tok::Percent) => BinOp::Mod,
                _ => return Ok(left),
            };
            let pos = self.bump().pos;
            let right = self.binary(level + 1)?;
            left = Ast::new(AstKind::Binary(op, Box::new(left), Box::new(right)), pos)?;
        }
    }

    fn unary(&mut self) -> Res<Ast> {
        let mut ops = Vec::new();
        while matches!(self.peek(), Tok::Not | Tok::Minus) {
            let t = self.bump();
            ops.push((t.tok == Tok::Not, t.pos));
            if ops.len() > MAX_DEPTH {
                return Err(too_deep(t.pos));
            }
        }
        let mut ast = self.member()?;
        for (not, pos) in ops.into_iter().rev() {
            ast = if not {
                Ast::new(AstKind::Not(Box::new(ast)), pos)?
            } else {
                match ast.kind {
                    AstKind::RawInt(n) if n <= 1u64 << 63 => {
                        let value = 0i64.wrapping_sub_unsigned(n);
                        Ast::new(AstKind::Lit(Lit::Int(value)), pos)?
                    }
                    AstKind::Lit(Lit::Double(d)) => Ast::new(AstKind::Lit(Lit::Double(-d)), pos)?,
                    kind => {
                        let inner = Ast {
                            kind,
                            pos: ast.pos,
                            depth: ast.depth,
                        };
                        Ast::new(AstKind::Neg(Box::new(inner)), pos)?
                    }
                }
            };
        }
        Ok(ast)
    }

    fn member(&mut self) -> Res<Ast> {
        let mut ast = self.primary()?;
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    let t = self.bump();
                    let Tok::Ident(name) = t.tok else {
                        return Err(RawError::new(
                            t.pos,
                            format!(
                                "expected a field or function name after `.`, found {}",
                                t.tok
                            ),
                        ));
                    };
                    if *self.peek() == Tok::LParen {
                        let args = self.args()?;
                        ast = Ast::new(
                            AstKind::Call {
                                target: Some(Box::new(ast)),
                                name,
                                args,
                            },
                            t.pos,
                        )?;
                    } else {
                        ast = Ast::new(AstKind::Select(Box::new(ast), name), t.pos)?;
                    }
                }
                Tok::LBracket => {
                    return Err(RawError::new(
                        self.pos(),
                        "indexing with `[…]` is not supported (use exists() or all())",
                    ))
                }
                _ => return Ok(ast),
            }
        }
    }

    /// `( [expr {, expr}] )`, the opening parenthesis being the current token.
    fn args(&mut self) -> Res<Vec<Ast>> {
        self.expect(&Tok::LParen, "")?;
        let mut args = Vec::new();
        if *self.peek() == Tok::RParen {
            self.bump();
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    return Ok(args);
                }
                other => {
                    return Err(RawError::new(
                        self.pos(),
                        format!("expected `,` or `)` in the argument list, found {other}"),
                    ))
                }
            }
        }
    }

    fn primary(&mut self) -> Res<Ast> {
        let t = self.bump();
        let pos = t.pos;
        match t.tok {
            Tok::Int(n) => Ast::new(AstKind::RawInt(n), pos),
            Tok::Double(d) => Ast::new(AstKind::Lit(Lit::Double(d)), pos),
            Tok::Str(s) => Ast::new(AstKind::Lit(Lit::Str(s.into_boxed_str())), pos),
            Tok::True => Ast::new(AstKind::Lit(Lit::Bool(true)), pos),
            Tok::False => Ast::new(AstKind::Lit(Lit::Bool(false)), pos),
            Tok::Null => Ast::new(AstKind::Lit(Lit::Null), pos),
            Tok::Ident(name) => {
                if *self.peek() == Tok::LParen {
                    let args = self.args()?;
                    Ast::new(
                        AstKind::Call {
                            target: None,
                            name,
                            args,
                        },
                        pos,
                    )
                } else {
                    Ast::new(AstKind::Ident(name), pos)
                }
            }
            Tok::LParen => {
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "to close `(`")?;
                Ok(inner)
            }
            Tok::LBracket => {
                let mut items = Vec::new();
                loop {
                    if *self.peek() == Tok::RBracket {
                        self.bump();
                        break;
                    }
                    items.push(self.expr()?);
                    match self.peek() {
                        Tok::Comma => {
                            self.bump();
                        }
                        Tok::RBracket => {
                            self.bump();
                            break;
                        }
                        other => {
                            return Err(RawError::new(
                                self.pos(),
                                format!("expected `,` or `]` in the list, found {other}"),
                            ))
                        }
                    }
                }
                Ast::new(AstKind::List(items), pos)
            }
            Tok::LBrace => Err(RawError::new(pos, "map literals are not supported")),
            Tok::Eof => Err(RawError::new(pos, "unexpected end of the filter")),
            other => Err(RawError::new(pos, format!("unexpected {other}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Types and the checker
// ---------------------------------------------------------------------------------------------------------

/// A constant value (literals, and list literals made only of constants).
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Box<str>),
    List(Vec<Lit>),
}

/// The static type of a sub-expression.
#[derive(Debug, Clone)]
enum Ty<'s> {
    Bool,
    Int,
    Double,
    Str,
    /// A string whose values are the enum's symbols.
    Enum(&'s EnumSchema),
    Null,
    /// The element type of `[]`: compatible with everything.
    Any,
    List(Box<Ty<'s>>),
    Message(&'s RecordSchema),
    Nullable(Box<Ty<'s>>),
    /// A union other than `["null", T]`: only `has()` may look at it.
    Union,
    /// An Avro type filters cannot read (map, bytes, …): only `has()` may look at it.
    Unsupported(&'static str),
}

impl<'s> Ty<'s> {
    /// The type without nullability.
    fn strip(&self) -> &Ty<'s> {
        match self {
            Ty::Nullable(inner) => inner.strip(),
            other => other,
        }
    }

    fn is_bool(&self) -> bool {
        matches!(self, Ty::Bool)
    }
    fn is_num(&self) -> bool {
        matches!(self, Ty::Int | Ty::Double)
    }
    fn is_str(&self) -> bool {
        matches!(self, Ty::Str | Ty::Enum(_))
    }
    fn may_be_null(&self) -> bool {
        matches!(self, Ty::Nullable(_) | Ty::Null | Ty::Any)
    }

    fn name(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Double => "double".into(),
            Ty::Str => "string".into(),
            Ty::Enum(e) => format!("enum {}", e.name.name),
            Ty::Null => "null".into(),
            Ty::Any => "dyn".into(),
            Ty::List(t) => format!("list({})", t.name()),
            Ty::Message(r) => format!("record {}", r.name.name),
            Ty::Nullable(t) => format!("nullable {}", t.name()),
            Ty::Union => "union".into(),
            Ty::Unsupported(kind) => (*kind).into(),
        }
    }
}

/// Whether values of the two types can be compared with `==` (and `in`).
fn eq_compatible(a: &Ty<'_>, b: &Ty<'_>) -> bool {
    if matches!(a.strip(), Ty::Message(_)) || matches!(b.strip(), Ty::Message(_)) {
        return false;
    }
    if matches!(a, Ty::Any) || matches!(b, Ty::Any) {
        return true;
    }
    if matches!(a, Ty::Null) {
        return b.may_be_null();
    }
    if matches!(b, Ty::Null) {
        return a.may_be_null();
    }
    match (a.strip(), b.strip()) {
        (Ty::Bool, Ty::Bool) => true,
        (x, y) if x.is_num() && y.is_num() => true,
        (x, y) if x.is_str() && y.is_str() => true,
        (Ty::List(x), Ty::List(y)) => eq_compatible(x, y),
        _ => false,
    }
}

/// The common type of two values that may end up in the same place (list elements, `?:` branches).
fn unify<'s>(a: &Ty<'s>, b: &Ty<'s>) -> Option<Ty<'s>> {
    let nullable = |t: Ty<'s>| match t {
        Ty::Nullable(_) | Ty::Null | Ty::Any => t,
        other => Ty::Nullable(Box::new(other)),
    };
    match (a, b) {
        (Ty::Any, t) | (t, Ty::Any) => Some(t.clone()),
        (Ty::Null, t) | (t, Ty::Null) => Some(nullable(t.clone())),
        (Ty::Nullable(x), y) | (y, Ty::Nullable(x)) => unify(x, y.strip()).map(nullable),
        (Ty::Bool, Ty::Bool) => Some(Ty::Bool),
        (Ty::Int, Ty::Int) => Some(Ty::Int),
        (x, y) if x.is_num() && y.is_num() => Some(Ty::Double),
        (Ty::Enum(x), Ty::Enum(y)) if x.name == y.name => Some(a.clone()),
        (x, y) if x.is_str() && y.is_str() => Some(Ty::Str),
        (Ty::List(x), Ty::List(y)) => unify(x, y).map(|t| Ty::List(Box::new(t))),
        (Ty::Message(x), Ty::Message(y)) if x.name == y.name => Some(a.clone()),
        _ => None,
    }
}

/// Where a field path starts: the record being filtered, or a variable bound by `exists`/`all`
/// (0 = innermost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Root,
    Var(usize),
}

/// One field selection, pre-resolved to the field's position in its record.
#[derive(Debug, Clone)]
struct Step {
    index: usize,
    name: Box<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrFn {
    StartsWith,
    EndsWith,
    Contains,
}

/// The evaluation tree.
#[derive(Debug, Clone)]
enum Node {
    Lit(Lit),
    List(Vec<Node>),
    /// A field path; `display` names it in runtime errors.
    Path {
        base: Base,
        steps: Box<[Step]>,
        display: Box<str>,
    },
    /// Selection on a computed record (e.g. the result of `?:`).
    Select(Box<Node>, Step),
    Has {
        base: Base,
        steps: Box<[Step]>,
    },
    Not(Box<Node>),
    Neg(Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Rel(Rel, Box<Node>, Box<Node>),
    /// A relation with a constant on the right (a constant on the left is flipped to the right).
    RelLit(Rel, Box<Node>, Lit),
    Eq(Box<Node>, Box<Node>),
    Ne(Box<Node>, Box<Node>),
    /// `==` (or `!=` when the flag is set) against a constant: the common case, without building a value.
    EqLit(Box<Node>, Lit, bool),
    In(Box<Node>, Box<Node>),
    /// `in` a list literal of constants.
    InLits(Box<Node>, Box<[Lit]>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Str(StrFn, Box<Node>, Box<Node>),
    /// A string function with a literal argument.
    StrLit(StrFn, Box<Node>, Box<str>),
    Matches(Box<Node>, Regex),
    Size(Box<Node>),
    Exists(Box<Node>, Box<Node>),
    All(Box<Node>, Box<Node>),
}

struct Typed<'s> {
    node: Node,
    ty: Ty<'s>,
    /// The dotted schema path when the expression is a field (or a variable bound to list elements).
    path: Option<String>,
}

struct Scope<'s> {
    name: String,
    ty: Ty<'s>,
    path: Option<String>,
}

struct Checker<'s> {
    root: &'s RecordSchema,
    names: HashMap<String, &'s Schema>,
    scopes: Vec<Scope<'s>>,
    fields: BTreeSet<String>,
}

const FUNCTIONS: [&str; 8] = [
    "has",
    "size",
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "exists",
    "all",
];

impl<'s> Checker<'s> {
    fn new(root: &'s RecordSchema, schema: &'s Schema) -> Self {
        let mut names = HashMap::new();
        unsilo_schemas::avro::collect_names(schema, &mut names);
        Self {
            root,
            names,
            scopes: Vec::new(),
            fields: BTreeSet::new(),
        }
    }

    fn resolve(&self, schema: &'s Schema) -> &'s Schema {
        let mut current = schema;
        // References can only point at named types, so one or two hops suffice; the bound guards cycles.
        for _ in 0..8 {
            match current {
                Schema::Ref { name } => match self.names.get(&name.fullname(None)) {
                    Some(target) => current = target,
                    None => return current,
                },
                other => return other,
            }
        }
        current
    }

    fn ty_of(&self, schema: &'s Schema) -> Ty<'s> {
        match self.resolve(schema) {
            Schema::Null => Ty::Null,
            Schema::Boolean => Ty::Bool,
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Ty::Int,
            Schema::Float | Schema::Double => Ty::Double,
            Schema::String | Schema::Uuid => Ty::Str,
            Schema::Enum(e) => Ty::Enum(e),
            Schema::Array(a) => Ty::List(Box::new(self.ty_of(&a.items))),
            Schema::Record(r) => Ty::Message(r),
            Schema::Union(u) => {
                let variants = u.variants();
                let non_null: Vec<&Schema> = variants
                    .iter()
                    .filter(|v| !matches!(v, Schema::Null))
                    .collect();
                match (variants.len() - non_null.len(), non_null.as_slice()) {
                    (1, [single]) => Ty::Nullable(Box::new(self.ty_of(single))),
                    (0, [single]) => self.ty_of(single),
                    (1, []) => Ty::Null,
                    _ => Ty::Union,
                }
            }
            Schema::Map(_) => Ty::Unsupported("map"),
            Schema::Bytes => Ty::Unsupported("bytes"),
            Schema::Fixed(_) => Ty::Unsupported("fixed"),
            Schema::Decimal(_) | Schema::BigDecimal => Ty::Unsupported("decimal"),
            Schema::Duration => Ty::Unsupported("duration"),
            Schema::Ref { .. } => Ty::Unsupported("unresolved reference"),
        }
    }

    fn check(&mut self, ast: &Ast) -> Res<Typed<'s>> {
        self.check_inner(ast, false)
    }

    /// `opaque_ok`: the expression is the argument of `has()`, so unions and unreadable types are fine.
    fn check_inner(&mut self, ast: &Ast, opaque_ok: bool) -> Res<Typed<'s>> {
        let pos = ast.pos;
        let typed = match &ast.kind {
            AstKind::RawInt(n) => {
                let n = i64::try_from(*n)
                    .map_err(|_| RawError::new(pos, "integer literal is out of range"))?;
                lit(Lit::Int(n), Ty::Int)
            }
            AstKind::Lit(l) => {
                let ty = match l {
                    Lit::Null => Ty::Null,
                    Lit::Bool(_) => Ty::Bool,
                    Lit::Int(_) => Ty::Int,
                    Lit::Double(_) => Ty::Double,
                    Lit::Str(_) => Ty::Str,
                    Lit::List(_) => Ty::List(Box::new(Ty::Any)),
                };
                lit(l.clone(), ty)
            }
            AstKind::List(items) => self.check_list(items)?,
            AstKind::Ident(name) => self.check_ident(name, ast)?,
            AstKind::Select(base, name) => self.check_select(base, name, ast)?,
            AstKind::Call { target, name, args } => {
                self.check_call(target.as_deref(), name, args, pos)?
            }
            AstKind::Not(inner) => {
                let t = self.check(inner)?;
                if !t.ty.strip().is_bool() {
                    return Err(RawError::new(
                        pos,
                        format!("`!` needs a bool, but its operand is {}", t.ty.name()),
                    ));
                }
                typed(Node::Not(Box::new(t.node)), Ty::Bool)
            }
            AstKind::Neg(inner) => {
                let t = self.check(inner)?;
                if !t.ty.strip().is_num() {
                    return Err(RawError::new(
                        pos,
                        format!("`-` needs a number, but its operand is {}", t.ty.name()),
                    ));
                }
                let ty = t.ty.strip().clone();
                typed(Node::Neg(Box::new(t.node)), ty)
            }
            AstKind::Binary(op, l, r) => self.check_binary(*op, l, r, pos)?,
            AstKind::Cond(c, a, b) => {
                let tc = self.check(c)?;
                if !tc.ty.strip().is_bool() {
                    return Err(RawError::new(
                        c.pos,
                        format!(
                            "the condition of `?:` must be a bool, but it is {}",
                            tc.ty.name()
                        ),
                    ));
                }
                let ta = self.check(a)?;
                let tb = self.check(b)?;
                let ty = unify(&ta.ty, &tb.ty).ok_or_else(|| {
                    RawError::new(
                        pos,
                        format!(
                            "the branches of `?:` have different types: {} and {}",
                            ta.ty.name(),
                            tb.ty.name()
                        ),
                    )
                })?;
                typed(
                    Node::Cond(Box::new(tc.node), Box::new(ta.node), Box::new(tb.node)),
                    ty,
                )
            }
        };
        if !opaque_ok {
            if let Ty::Union | Ty::Unsupported(_) = typed.ty.strip() {
                let what = ast.path_text().unwrap_or_else(|| "this value".to_string());
                return Err(RawError::new(
                    pos,
                    format!(
                        "`{what}` is of type {}, which a filter can only test with has()",
                        typed.ty.name()
                    ),
                ));
            }
        }
        Ok(typed)
    }

    fn check_list(&mut self, items: &[Ast]) -> Res<Typed<'s>> {
        let mut elem = Ty::Any;
        let mut nodes = Vec::with_capacity(items.len());
        for item in items {
            let t = self.check(item)?;
            elem = unify(&elem, &t.ty).ok_or_else(|| {
                RawError::new(
                    item.pos,
                    format!(
                        "list elements must have one type, but this is {} after {}",
                        t.ty.name(),
                        elem.name()
                    ),
                )
            })?;
            if let Ty::Message(_) = elem.strip() {
                return Err(RawError::new(
                    item.pos,
                    "lists of records cannot be written",
                ));
            }
            nodes.push(t.node);
        }
        let ty = Ty::List(Box::new(elem));
        let consts: Option<Vec<Lit>> = nodes
            .iter()
            .map(|n| match n {
                Node::Lit(l) => Some(l.clone()),
                _ => None,
            })
            .collect();
        Ok(match consts {
            Some(values) => typed(Node::Lit(Lit::List(values)), ty),
            None => typed(Node::List(nodes), ty),
        })
    }

    fn check_ident(&mut self, name: &str, ast: &Ast) -> Res<Typed<'s>> {
        if let Some(i) = self.scopes.iter().rposition(|s| s.name == name) {
            let depth = self.scopes.len() - 1 - i;
            let scope = &self.scopes[i];
            return Ok(Typed {
                node: Node::Path {
                    base: Base::Var(depth),
                    steps: Box::new([]),
                    display: name.into(),
                },
                ty: scope.ty.clone(),
                path: scope.path.clone(),
            });
        }
        let root = self.root;
        if let Some(&index) = root.lookup.get(name) {
            let field = &root.fields[index];
            self.fields.insert(name.to_string());
            return Ok(Typed {
                node: Node::Path {
                    base: Base::Root,
                    steps: Box::new([Step {
                        index,
                        name: name.into(),
                    }]),
                    display: name.into(),
                },
                ty: self.ty_of(&field.schema),
                path: Some(name.to_string()),
            });
        }
        if let Some((env_index, envelope)) = self.envelope() {
            if let Some(&index) = envelope.lookup.get(name) {
                let path = format!("envelope.{name}");
                self.fields.insert(path.clone());
                return Ok(Typed {
                    node: Node::Path {
                        base: Base::Root,
                        steps: Box::new([
                            Step {
                                index: env_index,
                                name: "envelope".into(),
                            },
                            Step {
                                index,
                                name: name.into(),
                            },
                        ]),
                        display: path.as_str().into(),
                    },
                    ty: self.ty_of(&envelope.fields[index].schema),
                    path: Some(path),
                });
            }
        }
        let mut candidates = Vec::new();
        collect_paths("", root, self, 0, &mut candidates);
        if let Some((_, envelope)) = self.envelope() {
            candidates.extend(envelope.fields.iter().map(|f| f.name.clone()));
        }
        candidates.extend(self.scopes.iter().map(|s| s.name.clone()));
        Err(RawError::new(
            ast.pos,
            format!(
                "unknown field `{name}`{}",
                suggestion(name, &candidates, || format!(
                    " (fields of {}: {})",
                    root.name.name,
                    field_list(root)
                ))
            ),
        ))
    }

    /// The top-level `envelope` field, if it is a record.
    fn envelope(&self) -> Option<(usize, &'s RecordSchema)> {
        let root = self.root;
        let &index = root.lookup.get("envelope")?;
        match self.resolve(&root.fields.get(index)?.schema) {
            Schema::Record(r) => Some((index, r)),
            _ => None,
        }
    }

    fn check_select(&mut self, base: &Ast, name: &str, ast: &Ast) -> Res<Typed<'s>> {
        let t = self.check(base)?;
        let Ty::Message(record) = t.ty.strip() else {
            let what = base.path_text().unwrap_or_else(|| "this value".to_string());
            return Err(RawError::new(
                ast.pos,
                format!(
                    "`{what}` is {}, not a record, so it has no field `{name}`",
                    t.ty.name()
                ),
            ));
        };
        let record: &'s RecordSchema = record;
        let Some(&index) = record.lookup.get(name) else {
            let prefix = base.path_text().map(|p| format!("{p}."));
            let mut candidates = Vec::new();
            collect_paths(
                prefix.as_deref().unwrap_or(""),
                record,
                self,
                0,
                &mut candidates,
            );
            let typed_text = format!("{}{name}", prefix.as_deref().unwrap_or(""));
            return Err(RawError::new(
                ast.pos,
                format!(
                    "unknown field `{typed_text}`{}",
                    suggestion(&typed_text, &candidates, || format!(
                        " (fields of {}: {})",
                        record.name.name,
                        field_list(record)
                    ))
                ),
            ));
        };
        let ty = self.ty_of(&record.fields[index].schema);
        let path = t.path.as_ref().map(|p| format!("{p}.{name}"));
        if let Some(p) = &path {
            self.fields.insert(p.clone());
        }
        let step = Step {
            index,
            name: name.into(),
        };
        let node = match t.node {
            Node::Path {
                base,
                steps,
                display,
            } => {
                let mut steps = steps.into_vec();
                steps.push(step);
                Node::Path {
                    base,
                    steps: steps.into_boxed_slice(),
                    display: format!("{display}.{name}").into(),
                }
            }
            other => Node::Select(Box::new(other), step),
        };
        Ok(Typed { node, ty, path })
    }

    fn check_binary(&mut self, op: BinOp, l: &Ast, r: &Ast, pos: usize) -> Res<Typed<'s>> {
        let tl = self.check(l)?;
        let tr = self.check(r)?;
        let (a, b) = (tl.ty.strip(), tr.ty.strip());
        let mismatch = || {
            RawError::new(
                pos,
                format!(
                    "`{}` cannot be applied to {} and {}",
                    op.symbol(),
                    tl.ty.name(),
                    tr.ty.name()
                ),
            )
        };
        let (ln, rn) = (Box::new(tl.node.clone()), Box::new(tr.node.clone()));
        Ok(match op {
            BinOp::And | BinOp::Or => {
                for (t, ast) in [(&tl, l), (&tr, r)] {
                    if !t.ty.strip().is_bool() {
                        return Err(RawError::new(
                            pos,
                            format!(
                                "`{}` needs bool operands, but `{}` is {}",
                                op.symbol(),
                                ast.path_text().unwrap_or_else(|| "this operand".into()),
                                t.ty.name()
                            ),
                        ));
                    }
                }
                let node = if op == BinOp::And {
                    Node::And(ln, rn)
                } else {
                    Node::Or(ln, rn)
                };
                typed(node, Ty::Bool)
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                let ty = match (op, a, b) {
                    (BinOp::Mod, Ty::Int, Ty::Int) => Ty::Int,
                    (BinOp::Mod, _, _) => return Err(mismatch()),
                    (_, Ty::Int, Ty::Int) => Ty::Int,
                    (_, x, y) if x.is_num() && y.is_num() => Ty::Double,
                    (BinOp::Add, x, y) if x.is_str() && y.is_str() => Ty::Str,
                    _ => return Err(mismatch()),
                };
                let arith = match op {
                    BinOp::Add => Arith::Add,
                    BinOp::Sub => Arith::Sub,
                    BinOp::Mul => Arith::Mul,
                    BinOp::Div => Arith::Div,
                    _ => Arith::Mod,
                };
                typed(Node::Arith(arith, ln, rn), ty)
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                if !((a.is_num() && b.is_num()) || (a.is_str() && b.is_str())) {
                    return Err(mismatch());
                }
                check_symbol(&tl.ty, r)?;
                check_symbol(&tr.ty, l)?;
                let rel = match op {
                    BinOp::Lt => Rel::Lt,
                    BinOp::Le => Rel::Le,
                    BinOp::Gt => Rel::Gt,
                    _ => Rel::Ge,
                };
                let flipped = match rel {
                    Rel::Lt => Rel::Gt,
                    Rel::Le => Rel::Ge,
                    Rel::Gt => Rel::Lt,
                    Rel::Ge => Rel::Le,
                };
                let node = match (*ln, *rn) {
                    (Node::Lit(a), Node::Lit(b)) => {
                        Node::Rel(rel, Box::new(Node::Lit(a)), Box::new(Node::Lit(b)))
                    }
                    (other, Node::Lit(l)) => Node::RelLit(rel, Box::new(other), l),
                    (Node::Lit(l), other) => Node::RelLit(flipped, Box::new(other), l),
                    (l, r) => Node::Rel(rel, Box::new(l), Box::new(r)),
                };
                typed(node, Ty::Bool)
            }
            BinOp::Eq | BinOp::Ne => {
                if !eq_compatible(&tl.ty, &tr.ty) {
                    let hint = if matches!(a, Ty::Null) || matches!(b, Ty::Null) {
                        " (the value is never null)"
                    } else {
                        ""
                    };
                    return Err(RawError::new(
                        pos,
                        format!(
                            "`{}` cannot compare {} with {}{hint}",
                            op.symbol(),
                            tl.ty.name(),
                            tr.ty.name()
                        ),
                    ));
                }
                check_symbol(&tl.ty, r)?;
                check_symbol(&tr.ty, l)?;
                let ne = op == BinOp::Ne;
                let node = match (*ln, *rn) {
                    (other, Node::Lit(l)) | (Node::Lit(l), other) => {
                        Node::EqLit(Box::new(other), l, ne)
                    }
                    (l, r) if ne => Node::Ne(Box::new(l), Box::new(r)),
                    (l, r) => Node::Eq(Box::new(l), Box::new(r)),
                };
                typed(node, Ty::Bool)
            }
            BinOp::In => {
                let Ty::List(elem) = b else {
                    return Err(RawError::new(
                        pos,
                        format!(
                            "the right side of `in` must be a list, but it is {}",
                            tr.ty.name()
                        ),
                    ));
                };
                if !eq_compatible(&tl.ty, elem) {
                    return Err(RawError::new(
                        pos,
                        format!("`in` cannot look for {} in {}", tl.ty.name(), tr.ty.name()),
                    ));
                }
                // Enum field `in` a list literal: every string literal must be a symbol.
                if let AstKind::List(items) = &r.kind {
                    for item in items {
                        check_symbol(&tl.ty, item)?;
                    }
                }
                check_symbol(elem, l)?;
                let node = match *rn {
                    Node::Lit(Lit::List(items)) => Node::InLits(ln, items.into_boxed_slice()),
                    other => Node::In(ln, Box::new(other)),
                };
                typed(node, Ty::Bool)
            }
        })
    }

    fn check_call(
        &mut self,
        target: Option<&Ast>,
        name: &str,
        args: &[Ast],
        pos: usize,
    ) -> Res<Typed<'s>> {
        let arity = |expected: usize, form: &str| -> Res<()> {
            if args.len() == expected {
                Ok(())
            } else {
                Err(RawError::new(
                    pos,
                    format!(
                        "`{name}` takes {expected} argument{} ({form}), got {}",
                        if expected == 1 { "" } else { "s" },
                        args.len()
                    ),
                ))
            }
        };
        let method_only = |form: &str| -> Res<()> {
            if target.is_none() {
                Err(RawError::new(
                    pos,
                    format!("`{name}` is called as a method: {form}"),
                ))
            } else {
                Ok(())
            }
        };
        match name {
            "has" => {
                if target.is_some() {
                    return Err(RawError::new(
                        pos,
                        "`has` is called as a function: has(a.b)",
                    ));
                }
                arity(1, "has(a.b)")?;
                let arg = &args[0];
                let t = self.check_inner(arg, true)?;
                match t.node {
                    Node::Path { base, steps, .. } if !steps.is_empty() => {
                        Ok(typed(Node::Has { base, steps }, Ty::Bool))
                    }
                    _ => Err(RawError::new(arg.pos, "has() needs a field, like has(a.b)")),
                }
            }
            "size" => {
                let subject = match target {
                    Some(t) => {
                        arity(0, "x.size()")?;
                        t
                    }
                    None => {
                        arity(1, "size(x)")?;
                        &args[0]
                    }
                };
                let t = self.check(subject)?;
                if !(t.ty.strip().is_str() || matches!(t.ty.strip(), Ty::List(_))) {
                    return Err(RawError::new(
                        pos,
                        format!(
                            "size() needs a string or a list, but this is {}",
                            t.ty.name()
                        ),
                    ));
                }
                Ok(typed(Node::Size(Box::new(t.node)), Ty::Int))
            }
            "startsWith" | "endsWith" | "contains" => {
                let form = format!("s.{name}(x)");
                method_only(&form)?;
                arity(1, &form)?;
                let subject = target.ok_or_else(|| RawError::new(pos, "missing receiver"))?;
                let ts = self.check(subject)?;
                let ta = self.check(&args[0])?;
                for t in [&ts, &ta] {
                    if !t.ty.strip().is_str() {
                        return Err(RawError::new(
                            pos,
                            format!("{form} needs strings, but got {}", t.ty.name()),
                        ));
                    }
                }
                let f = match name {
                    "startsWith" => StrFn::StartsWith,
                    "endsWith" => StrFn::EndsWith,
                    _ => StrFn::Contains,
                };
                let node = match ta.node {
                    Node::Lit(Lit::Str(x)) => Node::StrLit(f, Box::new(ts.node), x),
                    other => Node::Str(f, Box::new(ts.node), Box::new(other)),
                };
                Ok(typed(node, Ty::Bool))
            }
            "matches" => {
                let (subject, pattern) = match target {
                    Some(t) => {
                        arity(1, "s.matches(re)")?;
                        (t, &args[0])
                    }
                    None => {
                        arity(2, "matches(s, re)")?;
                        (&args[0], &args[1])
                    }
                };
                let ts = self.check(subject)?;
                if !ts.ty.strip().is_str() {
                    return Err(RawError::new(
                        pos,
                        format!("matches() needs a string, but got {}", ts.ty.name()),
                    ));
                }
                let AstKind::Lit(Lit::Str(re)) = &pattern.kind else {
                    return Err(RawError::new(
                        pattern.pos,
                        "the pattern of matches() must be a string literal",
                    ));
                };
                let regex = regex_lite::RegexBuilder::new(re)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        RawError::new(pattern.pos, format!("invalid regular expression: {e}"))
                    })?;
                Ok(typed(Node::Matches(Box::new(ts.node), regex), Ty::Bool))
            }
            "exists" | "all" => {
                let form = format!("list.{name}(x, predicate)");
                method_only(&form)?;
                arity(2, &form)?;
                let subject = target.ok_or_else(|| RawError::new(pos, "missing receiver"))?;
                let tl = self.check(subject)?;
                let Ty::List(elem) = tl.ty.strip() else {
                    return Err(RawError::new(
                        pos,
                        format!("{name}() needs a list, but this is {}", tl.ty.name()),
                    ));
                };
                let AstKind::Ident(var) = &args[0].kind else {
                    return Err(RawError::new(
                        args[0].pos,
                        format!("the first argument of {name}() must be a variable name"),
                    ));
                };
                self.scopes.push(Scope {
                    name: var.clone(),
                    ty: (**elem).clone(),
                    path: tl.path.clone(),
                });
                let pred = self.check(&args[1]);
                self.scopes.pop();
                let pred = pred?;
                if !pred.ty.strip().is_bool() {
                    return Err(RawError::new(
                        args[1].pos,
                        format!(
                            "the predicate of {name}() must be a bool, but it is {}",
                            pred.ty.name()
                        ),
                    ));
                }
                let (l, p) = (Box::new(tl.node), Box::new(pred.node));
                let node = if name == "exists" {
                    Node::Exists(l, p)
                } else {
                    Node::All(l, p)
                };
                Ok(typed(node, Ty::Bool))
            }
            other => {
                let candidates: Vec<String> = FUNCTIONS.iter().map(|f| f.to_string()).collect();
                Err(RawError::new(
                    pos,
                    format!(
                        "unknown function `{other}`{}",
                        suggestion(other, &candidates, || format!(
                            " (supported: {})",
                            FUNCTIONS.join(", ")
                        ))
                    ),
                ))
            }
        }
    }
}

fn lit<'s>(l: Lit, ty: Ty<'s>) -> Typed<'s> {
    typed(Node::Lit(l), ty)
}

fn typed(node: Node, ty: Ty<'_>) -> Typed<'_> {
    Typed {
        node,
        ty,
        path: None,
    }
}

/// If `ty` is an enum and `other` a string literal, the literal must be one of the symbols.
fn check_symbol(ty: &Ty<'_>, other: &Ast) -> Res<()> {
    if let (Ty::Enum(e), AstKind::Lit(Lit::Str(s))) = (ty.strip(), &other.kind) {
        if !e.symbols.iter().any(|sym| sym.as_str() == &**s) {
            return Err(RawError::new(
                other.pos,
                format!(
                    "\"{s}\" is not a symbol of enum {} (symbols: {})",
                    e.name.name,
                    e.symbols.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn field_list(record: &RecordSchema) -> String {
    record
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every dotted field path reachable through records (not through arrays) from `record`.
fn collect_paths(
    prefix: &str,
    record: &RecordSchema,
    checker: &Checker<'_>,
    depth: usize,
    out: &mut Vec<String>,
) {
    for field in &record.fields {
        let path = format!("{prefix}{}", field.name);
        if depth < SUGGEST_DEPTH {
            if let Ty::Message(inner) = checker.ty_of(&field.schema).strip() {
                collect_paths(&format!("{path}."), inner, checker, depth + 1, out);
            }
        }
        out.push(path);
    }
}

/// ` (did you mean `x`?)` for the closest candidate, or `fallback()` when nothing is close.
fn suggestion(typed: &str, candidates: &[String], fallback: impl FnOnce() -> String) -> String {
    let last = typed.rsplit('.').next().unwrap_or(typed);
    // Same last segment at another place (`lng` for `location.lng`) is the best hint.
    if let Some(c) = candidates
        .iter()
        .filter(|c| c.as_str() != typed && c.rsplit('.').next() == Some(last))
        .min_by_key(|c| c.len())
    {
        return format!(" (did you mean `{c}`?)");
    }
    let limit = (typed.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (unsilo_schemas::avro::edit_distance(typed, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_else(fallback)
}

// ---------------------------------------------------------------------------------------------------------
// Evaluator
// ---------------------------------------------------------------------------------------------------------

/// A runtime value, borrowing from the record and the filter.
#[derive(Debug, Clone)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(&'a str),
    /// A string computed by the filter (concatenation, uuid).
    Owned(Box<str>),
    AvroList(&'a [Value]),
    LitList(&'a [Lit]),
    List(Box<[Val<'a>]>),
    Record(&'a [(String, Value)]),
}

impl<'a> Val<'a> {
    #[inline]
    fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Owned(s) => Some(s),
            _ => None,
        }
    }
}

/// The variables bound by enclosing `exists`/`all`, innermost first.
struct Env<'e, 'a> {
    val: &'e Val<'a>,
    up: Option<&'e Env<'e, 'a>>,
}

type Fields<'a> = &'a [(String, Value)];
type EvalRes<T> = Result<T, EvalError>;

#[inline]
fn lit_val(l: &Lit) -> Val<'_> {
    match l {
        Lit::Null => Val::Null,
        Lit::Bool(b) => Val::Bool(*b),
        Lit::Int(i) => Val::Int(*i),
        Lit::Double(d) => Val::Double(*d),
        Lit::Str(s) => Val::Str(s),
        Lit::List(items) => Val::LitList(items),
    }
}

#[inline]
fn avro_val(mut v: &Value) -> EvalRes<Val<'_>> {
    loop {
        return Ok(match v {
            Value::Union(_, inner) => {
                v = inner;
                continue;
            }
            Value::Null => Val::Null,
            Value::Boolean(b) => Val::Bool(*b),
            Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Val::Int(i64::from(*i)),
            Value::Long(i)
            | Value::TimeMicros(i)
            | Value::TimestampMillis(i)
            | Value::TimestampMicros(i)
            | Value::TimestampNanos(i)
            | Value::LocalTimestampMillis(i)
            | Value::LocalTimestampMicros(i)
            | Value::LocalTimestampNanos(i) => Val::Int(*i),
            Value::Float(f) => Val::Double(f64::from(*f)),
            Value::Double(d) => Val::Double(*d),
            Value::String(s) | Value::Enum(_, s) => Val::Str(s),
            Value::Uuid(u) => Val::Owned(u.to_string().into_boxed_str()),
            Value::Array(items) => Val::AvroList(items),
            Value::Record(fields) => Val::Record(fields),
            _ => {
                return Err(EvalError::record(
                    "the record holds a value a filter cannot read",
                ))
            }
        });
    }
}

/// The value of one field, by schema position with a by-name fallback.
#[inline]
fn field<'a>(fields: Fields<'a>, step: &Step) -> Option<&'a Value> {
    match fields.get(step.index) {
        Some((name, value)) if name.as_str() == &*step.name => Some(value),
        _ => fields
            .iter()
            .find(|(name, _)| name.as_str() == &*step.name)
            .map(|(_, v)| v),
    }
}

fn var<'e, 'a>(env: Option<&'e Env<'e, 'a>>, depth: usize) -> EvalRes<&'e Val<'a>> {
    let mut current = env;
    for _ in 0..depth {
        current = current.and_then(|e| e.up);
    }
    current
        .map(|e| e.val)
        .ok_or_else(|| EvalError::record("internal: unbound variable"))
}

fn eval_path<'a>(
    base: Base,
    steps: &[Step],
    display: &str,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<Val<'a>> {
    if steps.is_empty() {
        // A bare variable.
        return match base {
            Base::Var(depth) => Ok(var(env, depth)?.clone()),
            Base::Root => Err(EvalError::record("internal: empty field path")),
        };
    }
    avro_val(walk(base, steps, display, root, env)?)
}

/// Follows a non-empty field path to the Avro value at its end.
#[inline]
fn walk<'a>(
    base: Base,
    steps: &[Step],
    display: &str,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<&'a Value> {
    let mut fields = match base {
        Base::Root => root,
        Base::Var(depth) => match var(env, depth)? {
            Val::Record(f) => f,
            Val::Null => return Err(EvalError::null(display)),
            _ => return Err(EvalError::record(format!("`{display}`: not a record"))),
        },
    };
    let Some((last, init)) = steps.split_last() else {
        return Err(EvalError::record("internal: empty field path"));
    };
    for step in init {
        let v = field(fields, step).ok_or_else(|| missing(step))?;
        fields = match unwrap_union(v) {
            Value::Record(f) => f,
            Value::Null => return Err(EvalError::null(display)),
            _ => {
                return Err(EvalError::record(format!(
                    "field `{}` is not a record",
                    step.name
                )))
            }
        };
    }
    field(fields, last).ok_or_else(|| missing(last))
}

fn missing(step: &Step) -> EvalError {
    EvalError::record(format!("the record has no field `{}`", step.name))
}

fn unwrap_union(mut v: &Value) -> &Value {
    while let Value::Union(_, inner) = v {
        v = inner;
    }
    v
}

fn eval_has(
    base: Base,
    steps: &[Step],
    root: Fields<'_>,
    env: Option<&Env<'_, '_>>,
) -> EvalRes<bool> {
    let mut fields = match base {
        Base::Root => root,
        Base::Var(depth) => match var(env, depth)? {
            Val::Record(f) => f,
            _ => return Ok(false),
        },
    };
    for (i, step) in steps.iter().enumerate() {
        let Some(v) = field(fields, step) else {
            return Ok(false);
        };
        match unwrap_union(v) {
            Value::Null => return Ok(false),
            _ if i + 1 == steps.len() => return Ok(true),
            Value::Record(f) => fields = f,
            _ => return Ok(false),
        }
    }
    Ok(false)
}

fn eval_bool<'a>(node: &'a Node, root: Fields<'a>, env: Option<&Env<'_, 'a>>) -> EvalRes<bool> {
    // The dispatcher stays small (cheap prologue for every recursive call); the work lives in helpers.
    match node {
        Node::Lit(Lit::Bool(b)) => Ok(*b),
        Node::And(l, r) => match eval_bool(l, root, env) {
            Ok(false) => Ok(false),
            Ok(true) => eval_bool(r, root, env),
            Err(e) => match eval_bool(r, root, env) {
                Ok(false) => Ok(false),
                _ => Err(e),
            },
        },
        Node::Or(l, r) => match eval_bool(l, root, env) {
            Ok(true) => Ok(true),
            Ok(false) => eval_bool(r, root, env),
            Err(e) => match eval_bool(r, root, env) {
                Ok(true) => Ok(true),
                _ => Err(e),
            },
        },
        Node::Not(inner) => eval_bool(inner, root, env).map(|b| !b),
        Node::EqLit(n, l, ne) => eval_eq_lit(n, l, root, env).map(|eq| eq != *ne),
        Node::InLits(n, lits) => eval_in_lits(n, lits, root, env),
        Node::StrLit(f, n, x) => eval_str_lit(*f, n, x, root, env),
        Node::Rel(rel, l, r) => eval_rel(*rel, l, r, root, env),
        Node::RelLit(rel, n, lit) => eval_rel_lit(*rel, n, lit, root, env),
        Node::Has { base, steps } => eval_has(*base, steps, root, env),
        Node::Exists(list, pred) => eval_quantifier(true, list, pred, root, env),
        Node::All(list, pred) => eval_quantifier(false, list, pred, root, env),
        other => eval_bool_slow(other, root, env),
    }
}

#[inline(never)]
fn eval_bool_slow<'a>(
    node: &'a Node,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    match node {
        Node::Eq(l, r) => val_eq(&eval(l, root, env)?, &eval(r, root, env)?),
        Node::Ne(l, r) => val_eq(&eval(l, root, env)?, &eval(r, root, env)?).map(|b| !b),
        Node::In(l, r) => {
            let needle = eval(l, root, env)?;
            let list = eval(r, root, env)?;
            for item in items(&list, "in")? {
                if val_eq(&needle, &item?)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Node::Str(f, s, x) => {
            let s = eval(s, root, env)?;
            let x = eval(x, root, env)?;
            let (Some(s), Some(x)) = (s.as_str(), x.as_str()) else {
                return Err(operand_error(&s, &x, "a string function"));
            };
            Ok(str_fn(*f, s, x))
        }
        Node::Matches(s, re) => match eval(s, root, env)? {
            Val::Str(s) => Ok(re.is_match(s)),
            Val::Owned(s) => Ok(re.is_match(&s)),
            Val::Null => Err(EvalError::null("matches()")),
            _ => Err(EvalError::record("matches() on a non-string")),
        },
        other => match eval(other, root, env)? {
            Val::Bool(b) => Ok(b),
            Val::Null => Err(EvalError::null("condition")),
            _ => Err(EvalError::record("internal: a condition is not a bool")),
        },
    }
}

/// The Avro value a field path ends at, when the node is a path with at least one field step (the common
/// operand of comparisons); `None` for any other node.
#[inline]
fn path_ref<'a>(
    node: &'a Node,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> Option<EvalRes<&'a Value>> {
    match node {
        Node::Path {
            base,
            steps,
            display,
        } if !steps.is_empty() => Some(walk(*base, steps, display, root, env)),
        _ => None,
    }
}

#[inline(never)]
fn eval_eq_lit<'a>(
    node: &'a Node,
    lit: &Lit,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    if let Some(value) = path_ref(node, root, env) {
        let value = unwrap_union(value?);
        return match (value, lit) {
            (Value::String(s) | Value::Enum(_, s), Lit::Str(l)) => Ok(s.as_str() == &**l),
            _ => lit_eq(&avro_val(value)?, lit),
        };
    }
    lit_eq(&eval(node, root, env)?, lit)
}

#[inline(never)]
fn eval_in_lits<'a>(
    node: &'a Node,
    lits: &[Lit],
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    if let Some(value) = path_ref(node, root, env) {
        if let Value::String(s) | Value::Enum(_, s) = unwrap_union(value?) {
            return Ok(lits.iter().any(|l| matches!(l, Lit::Str(l) if **l == **s)));
        }
    }
    let needle = eval(node, root, env)?;
    for l in lits {
        if lit_eq(&needle, l)? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[inline(never)]
fn eval_str_lit<'a>(
    f: StrFn,
    node: &'a Node,
    x: &str,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    if let Some(value) = path_ref(node, root, env) {
        if let Value::String(s) | Value::Enum(_, s) = unwrap_union(value?) {
            return Ok(str_fn(f, s, x));
        }
    }
    match eval(node, root, env)? {
        Val::Str(s) => Ok(str_fn(f, s, x)),
        Val::Owned(s) => Ok(str_fn(f, &s, x)),
        Val::Null => Err(EvalError::null("a string function")),
        _ => Err(EvalError::record("a string function on a non-string")),
    }
}

#[inline(never)]
fn eval_rel<'a>(
    rel: Rel,
    l: &'a Node,
    r: &'a Node,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    let (a, b) = (eval(l, root, env)?, eval(r, root, env)?);
    Ok(holds(rel, val_cmp(&a, &b, &rel)?))
}

#[inline(never)]
fn eval_rel_lit<'a>(
    rel: Rel,
    node: &'a Node,
    lit: &Lit,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    if let Some(value) = path_ref(node, root, env) {
        let value = unwrap_union(value?);
        let fast = match (value, lit) {
            (
                Value::Long(i)
                | Value::TimestampMillis(i)
                | Value::TimestampMicros(i)
                | Value::TimestampNanos(i)
                | Value::LocalTimestampMillis(i)
                | Value::LocalTimestampMicros(i)
                | Value::LocalTimestampNanos(i)
                | Value::TimeMicros(i),
                Lit::Int(j),
            ) => Some(Some(i.cmp(j))),
            (Value::Int(i) | Value::Date(i) | Value::TimeMillis(i), Lit::Int(j)) => {
                Some(Some(i64::from(*i).cmp(j)))
            }
            (Value::Double(d), Lit::Double(e)) => Some(d.partial_cmp(e)),
            (Value::String(s) | Value::Enum(_, s), Lit::Str(l)) => Some(Some(s.as_str().cmp(l))),
            _ => None,
        };
        if let Some(ord) = fast {
            return Ok(holds(rel, ord));
        }
        return Ok(holds(rel, val_cmp(&avro_val(value)?, &lit_val(lit), &rel)?));
    }
    let v = eval(node, root, env)?;
    Ok(holds(rel, val_cmp(&v, &lit_val(lit), &rel)?))
}

#[inline]
fn holds(rel: Rel, ord: Option<Ordering>) -> bool {
    match (rel, ord) {
        (_, None) => false,
        (Rel::Lt, Some(o)) => o == Ordering::Less,
        (Rel::Le, Some(o)) => o != Ordering::Greater,
        (Rel::Gt, Some(o)) => o == Ordering::Greater,
        (Rel::Ge, Some(o)) => o != Ordering::Less,
    }
}

/// `exists` (`want` = true) and `all` (`want` = false), with CEL's error rules.
#[inline(never)]
fn eval_quantifier<'a>(
    want: bool,
    list: &'a Node,
    pred: &'a Node,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    let list = eval(list, root, env)?;
    let mut error = None;
    for item in items(&list, if want { "exists()" } else { "all()" })? {
        let item = item?;
        let inner = Env {
            val: &item,
            up: env,
        };
        match eval_bool(pred, root, Some(&inner)) {
            Ok(b) if b == want => return Ok(want),
            Ok(_) => {}
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(!want),
    }
}

#[inline]
fn str_fn(f: StrFn, s: &str, x: &str) -> bool {
    match f {
        StrFn::StartsWith => s.starts_with(x),
        StrFn::EndsWith => s.ends_with(x),
        StrFn::Contains => s.contains(x),
    }
}

/// `v == l`, with the frequent same-type cases first.
#[inline]
fn lit_eq(v: &Val<'_>, l: &Lit) -> EvalRes<bool> {
    match (v, l) {
        (Val::Str(a), Lit::Str(b)) => Ok(*a == &**b),
        (Val::Int(a), Lit::Int(b)) => Ok(a == b),
        (Val::Bool(a), Lit::Bool(b)) => Ok(a == b),
        _ => val_eq(v, &lit_val(l)),
    }
}

fn operand_error(a: &Val<'_>, b: &Val<'_>, what: &str) -> EvalError {
    if matches!(a, Val::Null) || matches!(b, Val::Null) {
        EvalError::null(what)
    } else {
        EvalError::record(format!("{what}: operands of unexpected types"))
    }
}

fn eval<'a>(node: &'a Node, root: Fields<'a>, env: Option<&Env<'_, 'a>>) -> EvalRes<Val<'a>> {
    match node {
        Node::Lit(l) => Ok(lit_val(l)),
        Node::List(items) => items
            .iter()
            .map(|n| eval(n, root, env))
            .collect::<EvalRes<Box<[_]>>>()
            .map(Val::List),
        Node::Path {
            base,
            steps,
            display,
        } => eval_path(*base, steps, display, root, env),
        Node::Select(inner, step) => match eval(inner, root, env)? {
            Val::Record(fields) => avro_val(field(fields, step).ok_or_else(|| missing(step))?),
            Val::Null => Err(EvalError::null(&step.name)),
            _ => Err(EvalError::record(format!("`{}`: not a record", step.name))),
        },
        Node::Neg(inner) => match eval(inner, root, env)? {
            Val::Int(i) => i
                .checked_neg()
                .map(Val::Int)
                .ok_or_else(|| EvalError::new(EvalErrorKind::Overflow, "integer overflow in `-`")),
            Val::Double(d) => Ok(Val::Double(-d)),
            Val::Null => Err(EvalError::null("`-`")),
            _ => Err(EvalError::record("`-` on a non-number")),
        },
        Node::Arith(op, l, r) => arith(*op, eval(l, root, env)?, eval(r, root, env)?),
        Node::Cond(c, a, b) => {
            if eval_bool(c, root, env)? {
                eval(a, root, env)
            } else {
                eval(b, root, env)
            }
        }
        Node::Size(inner) => {
            let v = eval(inner, root, env)?;
            let n = match &v {
                Val::Str(s) => s.chars().count(),
                Val::Owned(s) => s.chars().count(),
                Val::AvroList(l) => l.len(),
                Val::LitList(l) => l.len(),
                Val::List(l) => l.len(),
                Val::Null => return Err(EvalError::null("size()")),
                _ => return Err(EvalError::record("size() of a value without size")),
            };
            i64::try_from(n)
                .map(Val::Int)
                .map_err(|_| EvalError::new(EvalErrorKind::Overflow, "size() overflow"))
        }
        _ => eval_bool(node, root, env).map(Val::Bool),
    }
}

fn arith<'a>(op: Arith, a: Val<'a>, b: Val<'a>) -> EvalRes<Val<'a>> {
    let symbol = match op {
        Arith::Add => "+",
        Arith::Sub => "-",
        Arith::Mul => "*",
        Arith::Div => "/",
        Arith::Mod => "%",
    };
    let overflow = || {
        EvalError::new(
            EvalErrorKind::Overflow,
            format!("integer overflow in `{symbol}`"),
        )
    };
    match (&a, &b) {
        (Val::Int(x), Val::Int(y)) => {
            let (x, y) = (*x, *y);
            if matches!(op, Arith::Div | Arith::Mod) && y == 0 {
                return Err(EvalError::new(
                    EvalErrorKind::DivisionByZero,
                    format!("division by zero in `{symbol}`"),
                ));
            }
            let r = match op {
                Arith::Add => x.checked_add(y),
                Arith::Sub => x.checked_sub(y),
                Arith::Mul => x.checked_mul(y),
                Arith::Div => x.checked_div(y),
                Arith::Mod => x.checked_rem(y),
            };
            r.map(Val::Int).ok_or_else(overflow)
        }
        (Val::Str(_) | Val::Owned(_), Val::Str(_) | Val::Owned(_)) if op == Arith::Add => {
            let (x, y) = (a.as_str().unwrap_or(""), b.as_str().unwrap_or(""));
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(Val::Owned(s.into_boxed_str()))
        }
        _ => {
            let (Some(x), Some(y)) = (as_f64(&a), as_f64(&b)) else {
                return Err(operand_error(&a, &b, &format!("`{symbol}`")));
            };
            Ok(Val::Double(match op {
                Arith::Add => x + y,
                Arith::Sub => x - y,
                Arith::Mul => x * y,
                Arith::Div => x / y,
                Arith::Mod => return Err(EvalError::record("`%` on doubles")),
            }))
        }
    }
}

fn as_f64(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Double(d) => Some(*d),
        _ => None,
    }
}

/// Exact comparison of an int with a double (no rounding of large ints).
fn cmp_int_double(i: i64, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    // 2^63 as f64 is exact; every double in [-2^63, 2^63) converts to i64 exactly after truncation.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if d >= LIMIT {
        return Some(Ordering::Less);
    }
    if d < -LIMIT {
        return Some(Ordering::Greater);
    }
    let t = d.trunc();
    let ti = t as i64;
    match i.cmp(&ti) {
        Ordering::Equal => 0.0f64.partial_cmp(&(d - t)),
        other => Some(other),
    }
}

fn val_cmp(a: &Val<'_>, b: &Val<'_>, rel: &Rel) -> EvalRes<Option<Ordering>> {
    Ok(match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Double(x), Val::Double(y)) => x.partial_cmp(y),
        (Val::Int(x), Val::Double(y)) => cmp_int_double(*x, *y),
        (Val::Double(x), Val::Int(y)) => cmp_int_double(*y, *x).map(Ordering::reverse),
        (Val::Str(_) | Val::Owned(_), Val::Str(_) | Val::Owned(_)) => {
            Some(a.as_str().cmp(&b.as_str()))
        }
        _ => {
            let symbol = match rel {
                Rel::Lt => "`<`",
                Rel::Le => "`<=`",
                Rel::Gt => "`>`",
                Rel::Ge => "`>=`",
            };
            return Err(operand_error(a, b, symbol));
        }
    })
}

fn val_eq(a: &Val<'_>, b: &Val<'_>) -> EvalRes<bool> {
    Ok(match (a, b) {
        (Val::Str(_) | Val::Owned(_), Val::Str(_) | Val::Owned(_)) => a.as_str() == b.as_str(),
        (Val::Null, Val::Null) => true,
        (Val::Null, _) | (_, Val::Null) => false,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Double(x), Val::Double(y)) => x == y,
        (Val::Int(x), Val::Double(y)) | (Val::Double(y), Val::Int(x)) => {
            cmp_int_double(*x, *y) == Some(Ordering::Equal)
        }
        (Val::Record(_), _) | (_, Val::Record(_)) => {
            return Err(EvalError::record("records cannot be compared"))
        }
        _ => {
            let (mut xs, mut ys) = (items(a, "==")?, items(b, "==")?);
            if xs.len() != ys.len() {
                return Ok(false);
            }
            loop {
                match (xs.next(), ys.next()) {
                    (Some(x), Some(y)) => {
                        if !val_eq(&x?, &y?)? {
                            return Ok(false);
                        }
                    }
                    _ => return Ok(true),
                }
            }
        }
    })
}

/// The elements of a list value, as values.
enum Items<'v, 'a> {
    Avro(std::slice::Iter<'a, Value>),
    Lit(std::slice::Iter<'a, Lit>),
    Vals(std::slice::Iter<'v, Val<'a>>),
}

impl<'v, 'a> Items<'v, 'a> {
    fn len(&self) -> usize {
        match self {
            Items::Avro(i) => i.len(),
            Items::Lit(i) => i.len(),
            Items::Vals(i) => i.len(),
        }
    }
}

impl<'v, 'a> Iterator for Items<'v, 'a> {
    type Item = EvalRes<Val<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Items::Avro(i) => i.next().map(avro_val),
            Items::Lit(i) => i.next().map(|l| Ok(lit_val(l))),
            Items::Vals(i) => i.next().map(|v| Ok(v.clone())),
        }
    }
}

fn items<'v, 'a>(list: &'v Val<'a>, what: &str) -> EvalRes<Items<'v, 'a>> {
    match list {
        Val::AvroList(l) => Ok(Items::Avro(l.iter())),
        Val::LitList(l) => Ok(Items::Lit(l.iter())),
        Val::List(l) => Ok(Items::Vals(l.iter())),
        Val::Null => Err(EvalError::null(what)),
        _ => Err(EvalError::record(format!("{what}: not a list"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn schema() -> &'static Schema {
        unsilo_schemas::shared_schema("grid_event").unwrap().avro()
    }

    /// The grid_event example, edited, converted and round-tripped through Avro binary (as records arrive).
    fn record_with(edit: impl FnOnce(&mut serde_json::Value)) -> Value {
        let mut json = unsilo_schemas::example_record("grid_event").unwrap();
        edit(&mut json);
        let value = unsilo_schemas::json_to_avro(&json, schema()).unwrap();
        let bytes = apache_avro::to_avro_datum(schema(), value).unwrap();
        apache_avro::from_avro_datum(schema(), &mut bytes.as_slice(), None).unwrap()
    }

    fn example() -> Value {
        record_with(|_| {})
    }

    fn compile(src: &str) -> Filter {
        Filter::compile(src, schema()).unwrap_or_else(|e| panic!("{src}: {e}\n{}", e.snippet()))
    }

    fn compile_err(src: &str) -> FilterError {
        match Filter::compile(src, schema()) {
            Ok(_) => panic!("`{src}` compiled but should not"),
            Err(e) => e,
        }
    }

    fn eval(src: &str, record: &Value) -> Result<bool, EvalError> {
        compile(src).evaluate(record)
    }

    const EXAMPLE_FILTER: &str =
        r#"region_code.startsWith("610921") && event_type_code in ["dispute", "safety"]"#;

    #[test]
    fn the_example_filter() {
        let f = compile(EXAMPLE_FILTER);
        // The example record has event type 0101.
        assert!(!f.matches(&example()));
        let dispute = record_with(|j| j["event_type_code"] = json!("dispute"));
        assert!(f.matches(&dispute));
        let safety = record_with(|j| j["event_type_code"] = json!("safety"));
        assert!(f.matches(&safety));
        let elsewhere = record_with(|j| {
            j["event_type_code"] = json!("dispute");
            j["envelope"]["region_code"] = json!("610922100001");
        });
        assert!(!f.matches(&elsewhere));
        assert_eq!(f.source(), EXAMPLE_FILTER);
        assert_eq!(
            f.fields(),
            vec![
                "envelope.region_code".to_string(),
                "event_type_code".to_string()
            ]
        );
    }

    #[test]
    fn operators_and_functions() {
        let rec = example();
        let cases: &[(&str, bool)] = &[
            ("true", true),
            ("false", false),
            ("1 + 2 * 3 == 7", true),
            ("(1 + 2) * 3 == 9", true),
            ("7 / 2 == 3", true),
            ("-7 / 2 == -3", true),
            ("7 % 3 == 1", true),
            ("10 - 2 - 3 == 5", true),
            ("1.5 * 2.0 == 3.0", true),
            ("1 + 0.5 == 1.5", true),
            ("3 / 2.0 == 1.5", true),
            ("- -2 == 2", true),
            ("-attachment_count == -3", true),
            ("'ab' + \"c\" == \"abc\"", true),
            ("attachment_count == 3", true),
            ("attachment_count != 3", false),
            ("attachment_count > 2 && attachment_count <= 3", true),
            ("attachment_count < 3 || attachment_count >= 4", false),
            ("attachment_count >= 3.0", true),
            ("attachment_count > 2.5", true),
            ("attachment_count == 3.0", true),
            ("9007199254740993 == 9007199254740992.0", false),
            ("location.lng > 108.5 && location.lng < 108.6", true),
            ("location.lat == 32.893562", true),
            ("location.lng > 108", true),
            ("108 < location.lng", true),
            ("5 > attachment_count", true),
            ("5 <= attachment_count", false),
            ("region_code < '7'", true),
            ("'7' > region_code", true),
            ("region_code >= '610921100001'", true),
            ("envelope.event_time <= 1718674335000", true),
            ("envelope.event_time < 1718674335000", false),
            ("attachment_count in [1, 3]", true),
            ("attachment_count in [1.0, 3.5]", false),
            ("location.coord_system in ['WGS84', 'CGCS2000']", true),
            ("!false", true),
            ("!!true", true),
            ("!(1 > 2)", true),
            ("(true ? 1 : 2) == 1", true),
            ("(false ? 1 : 2) == 1", false),
            ("(attachment_count > 5 ? 'many' : 'few') == 'few'", true),
            ("false || true", true),
            ("false || false", false),
            ("true && false", false),
            ("\"a\" < \"b\"", true),
            ("\"b\" >= \"a\"", true),
            ("\"b\" <= \"a\"", false),
            ("\"汉\" > \"a\"", true),
            ("region_code in ['610921100001', 'x']", true),
            ("region_code in ['x']", false),
            ("2 in [1, 2, 3]", true),
            ("2.0 in [1, 2, 3]", true),
            ("4 in [1, 2, 3]", false),
            ("1 in []", false),
            ("'HH6109211000010030017' in household_ids", true),
            ("'nope' in household_ids", false),
            ("event_no in [event_no, 'x']", true),
            ("size(household_ids) == 2", true),
            ("household_ids.size() == 2", true),
            ("parties.size() == 2", true),
            ("size('汉阴') == 2", true),
            ("size([]) == 0", true),
            ("event_type_name.size() == 4", true),
            ("title.contains('排水沟')", true),
            ("title.contains('火灾')", false),
            ("title.startsWith('南街')", true),
            ("title.endsWith('争执')", true),
            ("title.endsWith('南街')", false),
            ("category.startsWith('DIS')", true),
            ("reporter.phone.matches('^1[3-9][0-9]{9}$')", true),
            ("matches(event_no, '^SJ\\\\d+$')", true),
            ("event_no.matches('^X')", false),
            ("'it\\'s' == \"it's\"", true),
            ("\"say \\\"hi\\\"\".size() == 8", true),
            ("'\\u6c49' == '汉'", true),
            ("'a\\tb'.size() == 3", true),
            ("'a\\nb' != 'a\\\\nb'", true),
            ("0x10 == 16", true),
            ("-9223372036854775808 < 0", true),
            ("1e3 == 1000.0", true),
            ("1.5e-1 == 0.15", true),
            ("[1, 2] == [1, 2]", true),
            ("[1, 2.0] == [1, 2]", true),
            ("[1, 2] != [2, 1]", true),
            (
                "household_ids == ['HH6109211000010030017', 'HH6109211000010030018']",
                true,
            ),
            ("[attachment_count, 1] == [3, 1]", true),
            ("null == null", true),
            ("envelope.grid_code != null", true),
            ("grid_code == '610921100001003'", true),
            ("hotline_ticket_no == null", true),
            ("hotline_ticket_no == 'x'", false),
            ("reported_time > 1700000000000", true),
            ("envelope.event_time == reported_time", true),
            ("category == 'DISPUTE'", true),
            ("'DISPUTE' == category", true),
            ("category in ['DISPUTE', 'SAFETY_HAZARD']", true),
            ("urgency != 'URGENT'", true),
            ("location.coord_system == 'CGCS2000'", true),
            (
                "data_grade == 'GENERAL' && share_attribute == 'CONDITIONAL'",
                true,
            ),
            ("// a comment\n true", true),
            ("true // trailing comment", true),
            ("has(occurred_time)", true),
            ("has(hotline_ticket_no)", false),
            ("has(grid_code)", true),
            ("has(location.lng)", true),
            ("has(event_no)", true),
            ("has(reporter.phone)", true),
        ];
        for (src, want) in cases {
            assert_eq!(eval(src, &rec), Ok(*want), "{src}");
        }
    }

    #[test]
    fn precedence_follows_cel() {
        let rec = example();
        // `&&` binds tighter than `||`, `?:` is loosest, `!` applies to the member expression only.
        assert_eq!(eval("true || false && false", &rec), Ok(true));
        assert_eq!(eval("(true || false) && false", &rec), Ok(false));
        assert_eq!(eval("false ? false : true || false", &rec), Ok(true));
        assert_eq!(eval("!true || true", &rec), Ok(true));
        assert_eq!(eval("1 + 2 < 4 == true", &rec), Ok(true));
        assert_eq!(eval("2 * 3 % 4 == 2", &rec), Ok(true));
    }

    #[test]
    fn enum_symbols_are_checked() {
        let e = compile_err("category == \"dispute\"");
        assert_eq!(e.column(), 13);
        assert_eq!(
            e.message(),
            "\"dispute\" is not a symbol of enum GridEventCategory (symbols: DISPUTE, PUBLIC_SECURITY, \
             SAFETY_HAZARD, ENVIRONMENT, INFRASTRUCTURE, LIVELIHOOD, HEALTH, PETITION, OTHER, UNKNOWN)"
        );
        let e = compile_err("category in ['DISPUTE', 'FIRE']");
        assert!(e
            .message()
            .starts_with("\"FIRE\" is not a symbol of enum GridEventCategory"));
        assert_eq!(e.column(), 25);
        assert!(compile_err("'FAST' != urgency")
            .message()
            .contains("NORMAL, URGENT, CRITICAL"));
        assert!(compile_err("urgency < 'X'")
            .message()
            .contains("enum Urgency"));
        let e = compile_err("parties.exists(p, p.role == 'victim')");
        assert!(
            e.message()
                .contains("symbols: APPLICANT, RESPONDENT, VICTIM"),
            "{e}"
        );
        // The workflow stage is a named-type reference (`unsilo.grid.WorkflowStage`): resolved too.
        let e = compile_err("workflow.exists(w, w.stage == 'CLOSD')");
        assert!(e.message().contains("enum WorkflowStage"), "{e}");
        assert!(compile("workflow.exists(w, w.stage == 'CLOSED')").matches(&example()));
        // A string that is not a literal cannot be checked, and is fine.
        assert_eq!(eval("category == event_no", &example()), Ok(false));
    }

    #[test]
    fn nullable_fields() {
        let rec = example();
        let with_ticket = record_with(|j| j["hotline_ticket_no"] = json!("12345-2024-1"));
        let f = compile("hotline_ticket_no.startsWith('12345')");
        assert!(f.matches(&with_ticket));
        assert!(!f.matches(&rec));
        let err = f.evaluate(&rec).unwrap_err();
        assert_eq!(err.kind(), EvalErrorKind::Null);
        assert!(compile("has(hotline_ticket_no)").matches(&with_ticket));

        let no_lng = record_with(|j| j["location"]["lng"] = json!(null));
        assert_eq!(
            eval("location.lng > 100.0", &no_lng).unwrap_err().kind(),
            EvalErrorKind::Null
        );
        // Default deny even under negation: the error propagates through `!`.
        assert!(!compile("!(location.lng > 100.0)").matches(&no_lng));
        assert!(compile("!has(location.lng)").matches(&no_lng));
        assert!(compile("location.lng == null").matches(&no_lng));
        // A nullable value compared for equality with a non-null value is simply unequal.
        assert_eq!(eval("location.lng == 1.0", &no_lng), Ok(false));
        assert_eq!(eval("location.lng != 1.0", &no_lng), Ok(true));
        // Commutative error semantics of && and ||.
        assert_eq!(eval("location.lng > 100.0 || true", &no_lng), Ok(true));
        assert_eq!(eval("true || location.lng > 100.0", &no_lng), Ok(true));
        assert_eq!(eval("location.lng > 100.0 && false", &no_lng), Ok(false));
        assert_eq!(eval("false && location.lng > 100.0", &no_lng), Ok(false));
        assert!(eval("location.lng > 100.0 && true", &no_lng).is_err());
        assert!(eval("location.lng > 100.0 || false", &no_lng).is_err());
        assert!(eval("(location.lng > 100.0 ? 1 : 2) == 1", &no_lng).is_err());

        // Non-nullable fields are never null: comparing them with null is a compile error.
        let e = compile_err("region_code == null");
        assert_eq!(
            e.message(),
            "`==` cannot compare string with null (the value is never null)"
        );
    }

    #[test]
    fn exists_and_all_over_records() {
        let rec = example();
        let victim = compile("parties.exists(p, p.role == 'VICTIM')");
        assert!(!victim.matches(&rec));
        let with_victim = record_with(|j| {
            j["parties"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "李四", "role": "VICTIM"}))
        });
        assert!(victim.matches(&with_victim));
        assert_eq!(
            victim.fields(),
            vec!["parties".to_string(), "parties.role".to_string()]
        );

        assert_eq!(eval("parties.all(p, has(p.cert_no))", &rec), Ok(true));
        assert_eq!(
            eval("parties.all(p, has(p.cert_no))", &with_victim),
            Ok(false)
        );
        assert_eq!(eval("parties.all(p, p.name.size() == 3)", &rec), Ok(true));
        // The second party has no phone: exists() still finds the first, all() cannot decide.
        assert_eq!(
            eval("parties.exists(p, p.phone.startsWith('159'))", &rec),
            Ok(true)
        );
        assert_eq!(
            eval("parties.all(p, p.phone.startsWith('159'))", &rec)
                .unwrap_err()
                .kind(),
            EvalErrorKind::Null
        );
        assert_eq!(
            eval("parties.all(p, p.phone.startsWith('000'))", &rec),
            Ok(false)
        );
        assert!(eval("parties.exists(p, p.phone.startsWith('000'))", &rec).is_err());
        assert_eq!(
            eval(
                "workflow.exists(w, w.stage == 'CLOSED' && w.level == 'VILLAGE')",
                &rec
            ),
            Ok(true)
        );
        assert_eq!(
            eval("workflow.all(w, w.time >= envelope.event_time)", &rec),
            Ok(true)
        );
        // Nested macros see both variables; a variable shadows a field of the same name.
        assert_eq!(
            eval(
                "parties.exists(p, household_ids.exists(h, h.endsWith('0017') && p.role == 'APPLICANT'))",
                &rec
            ),
            Ok(true)
        );
        assert_eq!(
            eval("parties.exists(title, title.name == '张德明')", &rec),
            Ok(true)
        );
        assert_eq!(eval("[1, 2, 3].exists(x, x > 2)", &rec), Ok(true));
        assert_eq!(eval("[1, 2, 3].all(x, x > 1)", &rec), Ok(false));
        assert_eq!(eval("[attachment_count].all(x, x == 3)", &rec), Ok(true));
        let nobody = record_with(|j| j["parties"] = json!([]));
        assert_eq!(eval("parties.exists(p, true)", &nobody), Ok(false));
        assert_eq!(eval("parties.all(p, false)", &nobody), Ok(true));
        // The variable is not visible outside its macro.
        assert!(compile_err("parties.exists(p, true) && p.name == 'x'")
            .message()
            .starts_with("unknown field `p`"));
    }

    #[test]
    fn unknown_fields_are_reported_with_a_suggestion() {
        let e = compile_err("regoin_code.startsWith(\"610921\")");
        assert_eq!(
            e.to_string(),
            "filter, column 1: unknown field `regoin_code` (did you mean `region_code`?)"
        );
        assert_eq!((e.line(), e.column()), (1, 1));
        assert_eq!(e.snippet(), "regoin_code.startsWith(\"610921\")\n^");

        let e = compile_err("location.lgn > 1.0");
        assert_eq!(
            e.message(),
            "unknown field `location.lgn` (did you mean `location.lng`?)"
        );
        assert_eq!(e.column(), 10);
        assert!(compile_err("lng > 1.0")
            .message()
            .contains("did you mean `location.lng`?"));
        assert!(compile_err("envelope.regoin_code == ''")
            .message()
            .contains("did you mean `envelope.region_code`?"));
        assert!(compile_err("parties.exists(p, p.rol == 'VICTIM')")
            .message()
            .contains("did you mean `p.role`?"));
        let e = compile_err("zzzzzz == 1");
        assert!(
            e.message()
                .starts_with("unknown field `zzzzzz` (fields of GridEvent: envelope, event_no"),
            "{e}"
        );

        let e = compile_err("true &&\n  regoin_code == 'x'");
        assert_eq!(
            e.to_string(),
            "filter, line 2, column 3: unknown field `regoin_code` (did you mean `region_code`?)"
        );
        assert_eq!(e.snippet(), "  regoin_code == 'x'\n  ^");
        assert!(compile_err("event_no.value == 'x'")
            .message()
            .contains("`event_no` is string, not a record"));
    }

    #[test]
    fn type_errors_are_reported() {
        let e = compile_err("region_code > 5");
        assert_eq!(
            e.to_string(),
            "filter, column 13: `>` cannot be applied to string and int"
        );
        assert_eq!(e.snippet(), "region_code > 5\n            ^");
        let cases: &[(&str, &str)] = &[
            ("foo(1)", "unknown function `foo` (supported: has, size,"),
            (
                "region_code.startswith('6')",
                "unknown function `startswith` (did you mean `startsWith`?)",
            ),
            (
                "region_code.startsWith('6', '7')",
                "`startsWith` takes 1 argument (s.startsWith(x)), got 2",
            ),
            (
                "startsWith(region_code, '6')",
                "`startsWith` is called as a method",
            ),
            ("size() == 1", "`size` takes 1 argument"),
            ("title.size(1) == 1", "`size` takes 0 arguments"),
            (
                "size(attachment_count) == 1",
                "size() needs a string or a list, but this is int",
            ),
            ("has(1)", "has() needs a field"),
            ("has(a.b, c)", "`has` takes 1 argument"),
            (
                "attachment_count",
                "a filter must be a bool expression, but this is int",
            ),
            (
                "title",
                "a filter must be a bool expression, but this is string",
            ),
            (
                "region_code.matches(title)",
                "the pattern of matches() must be a string literal",
            ),
            ("title.matches('(')", "invalid regular expression"),
            (
                "attachment_count.matches('1')",
                "matches() needs a string, but got int",
            ),
            (
                "parties.exists(1, true)",
                "the first argument of exists() must be a variable name",
            ),
            (
                "parties.exists(p, 1)",
                "the predicate of exists() must be a bool, but it is int",
            ),
            (
                "attachment_count.exists(x, true)",
                "exists() needs a list, but this is int",
            ),
            ("parties.all(p)", "`all` takes 2 arguments"),
            (
                "[1, 'a'] == []",
                "list elements must have one type, but this is string after int",
            ),
            (
                "(true ? 1 : 'a') == 1",
                "the branches of `?:` have different types: int and string",
            ),
            (
                "(1 ? 1 : 2) == 1",
                "the condition of `?:` must be a bool, but it is int",
            ),
            (
                "location == 1",
                "`==` cannot compare record Location with int",
            ),
            (
                "'a' in region_code",
                "the right side of `in` must be a list, but it is string",
            ),
            (
                "1 in household_ids",
                "`in` cannot look for int in list(string)",
            ),
            ("9223372036854775808 > 1", "integer literal is out of range"),
            ("1 % 2.0 == 1", "`%` cannot be applied to int and double"),
            (
                "'a' - 'b' == ''",
                "`-` cannot be applied to string and string",
            ),
            ("!1", "`!` needs a bool, but its operand is int"),
            (
                "-'a' == 'a'",
                "`-` needs a number, but its operand is string",
            ),
            (
                "attachment_count && true",
                "`&&` needs bool operands, but `attachment_count` is int",
            ),
            ("parties == []", "`==` cannot compare list(record Party)"),
            ("region_code ==", "unexpected end of the filter"),
            ("region_code = 'x'", "unexpected `=` (use `==` to compare)"),
            ("a & b", "use `&&`"),
            (
                "(true",
                "expected `)` to close `(`, found the end of the filter",
            ),
            ("true)", "unexpected `)` after the end of the expression"),
            ("'abc", "unterminated string"),
            ("'a\\qb' == ''", "unknown escape `\\q`"),
            ("'\\u12' == ''", "`\\u` needs exactly 4 hex digits"),
            ("'\\ud800' == ''", "surrogate"),
            ("1u == 1", "unsigned integer literals are not supported"),
            ("12abc == 1", "invalid character in number literal"),
            ("1e == 1", "exponent needs digits"),
            (".5 == 1", "a number needs a digit before the decimal point"),
            ("{} == 1", "map literals are not supported"),
            (
                "household_ids[0] == 'x'",
                "indexing with `[…]` is not supported",
            ),
            ("title.'x'", "expected a field or function name after `.`"),
            ("f(1 2)", "expected `,` or `)` in the argument list"),
            ("[1 2]", "expected `,` or `]` in the list"),
            ("#", "unexpected character `#`"),
            ("", "filter is empty"),
            ("  // only a comment", "filter is empty"),
        ];
        for (src, want) in cases {
            let e = compile_err(src);
            assert!(
                e.message().contains(want),
                "`{src}`: got `{}`, want `{want}`",
                e.message()
            );
        }
    }

    #[test]
    fn limits() {
        let long = format!("true{}", " ".repeat(MAX_SOURCE_CHARS - 4));
        assert!(Filter::compile(&long, schema()).is_ok());
        let too_long = format!("{long} ");
        let e = compile_err(&too_long);
        assert_eq!(e.message(), "filter is longer than 4096 characters");
        assert_eq!(e.column(), MAX_SOURCE_CHARS + 1);
        // Multi-byte characters count as one.
        let cjk = format!("'{}' == ''", "汉".repeat(MAX_SOURCE_CHARS - 8));
        assert!(Filter::compile(&cjk, schema()).is_ok());

        let parens = |n: usize| format!("{}true{}", "(".repeat(n), ")".repeat(n));
        assert!(Filter::compile(&parens(60), schema()).is_ok());
        let deep = [
            parens(65),
            parens(2000),
            format!("{}true", "!".repeat(65)),
            format!("{}1 == 1", "-".repeat(3000)),
            format!("true{}", " && true".repeat(64)),
            format!("1{} == 1", " + 1".repeat(500)),
            format!("{}true{}", "[".repeat(1000), "]".repeat(1000)),
            format!("{}true{}", "size(".repeat(500), ")".repeat(500)),
            format!("a{}", ".b".repeat(2000)),
            format!("{} true", "true ? true :".repeat(300)),
        ];
        for src in &deep {
            let e = compile_err(src);
            assert!(
                e.message().contains("nested deeper than 64 levels")
                    || e.message().contains("longer than"),
                "{}: {}",
                &src[..20],
                e.message()
            );
        }
        assert_eq!(
            compile_err(&format!("true{}", " && true".repeat(64))).message(),
            "filter is nested deeper than 64 levels"
        );
        assert!(Filter::compile(&format!("true{}", " && true".repeat(60)), schema()).is_ok());
    }

    #[test]
    fn runtime_errors_deny() {
        let rec = example();
        let cases: &[(&str, EvalErrorKind)] = &[
            ("attachment_count / 0 == 1", EvalErrorKind::DivisionByZero),
            ("attachment_count % 0 == 1", EvalErrorKind::DivisionByZero),
            (
                "9223372036854775807 + attachment_count > 0",
                EvalErrorKind::Overflow,
            ),
            (
                "-9223372036854775807 - attachment_count < 0",
                EvalErrorKind::Overflow,
            ),
            (
                "9223372036854775807 * attachment_count > 0",
                EvalErrorKind::Overflow,
            ),
            (
                "-(attachment_count - 9223372036854775807 - 4) > 0",
                EvalErrorKind::Overflow,
            ),
            (
                "(attachment_count - 9223372036854775807 - 4) / -1 > 0",
                EvalErrorKind::Overflow,
            ),
        ];
        for (src, kind) in cases {
            let f = compile(src);
            assert_eq!(f.evaluate(&rec).map_err(|e| e.kind()), Err(*kind), "{src}");
            assert!(!f.matches(&rec), "{src}");
            // A failing operand under `!` still denies.
            assert!(!compile(&format!("!({src})")).matches(&rec), "{src}");
        }
        // Doubles follow IEEE 754.
        assert_eq!(eval("location.lng / 0.0 > 1.0", &rec), Ok(true));
        // A value that is not a record.
        let f = compile("true && region_code == ''");
        assert_eq!(
            f.evaluate(&Value::Int(1)).unwrap_err().kind(),
            EvalErrorKind::Record
        );
    }

    #[test]
    fn records_with_another_layout_fall_back_to_names() {
        let Value::Record(mut fields) = example() else {
            panic!("not a record")
        };
        fields.reverse();
        if let Some((_, Value::Record(env))) = fields.iter_mut().find(|(n, _)| n == "envelope") {
            env.reverse();
        }
        let reordered = Value::Record(fields.clone());
        assert!(
            compile("region_code.startsWith('610921') && attachment_count == 3")
                .matches(&reordered)
        );
        assert!(compile("has(grid_code) && !has(hotline_ticket_no)").matches(&reordered));
        fields.retain(|(n, _)| n != "attachment_count");
        let missing = Value::Record(fields);
        let e = compile("attachment_count == 3")
            .evaluate(&missing)
            .unwrap_err();
        assert_eq!(e.kind(), EvalErrorKind::Record);
        assert_eq!(e.message(), "the record has no field `attachment_count`");
        assert_eq!(
            compile("has(attachment_count)").evaluate(&missing),
            Ok(false)
        );
    }

    #[test]
    fn other_avro_types() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "T", "fields": [
                {"name": "u", "type": ["int", "string"]},
                {"name": "m", "type": {"type": "map", "values": "string"}},
                {"name": "f", "type": "float"},
                {"name": "d", "type": {"type": "int", "logicalType": "date"}},
                {"name": "b", "type": ["null", "boolean"]},
                {"name": "r", "type": ["null", {"type": "record", "name": "R", "fields": [
                    {"name": "x", "type": "long"}]}]},
                {"name": "tags", "type": {"type": "array", "items":
                    {"type": "enum", "name": "Tag", "symbols": ["A", "B"]}}}
            ]}"#,
        )
        .unwrap();
        let value = |r: Value, b: Value| {
            Value::Record(vec![
                (
                    "u".into(),
                    Value::Union(1, Box::new(Value::String("s".into()))),
                ),
                ("m".into(), Value::Map(Default::default())),
                ("f".into(), Value::Float(1.5)),
                ("d".into(), Value::Date(19000)),
                ("b".into(), b),
                ("r".into(), r),
                (
                    "tags".into(),
                    Value::Array(vec![Value::Enum(1, "B".into())]),
                ),
            ])
        };
        let full = value(
            Value::Union(
                1,
                Box::new(Value::Record(vec![("x".into(), Value::Long(7))])),
            ),
            Value::Union(1, Box::new(Value::Boolean(true))),
        );
        let empty = value(
            Value::Union(0, Box::new(Value::Null)),
            Value::Union(0, Box::new(Value::Null)),
        );
        let c = |src: &str| Filter::compile(src, &schema).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(c("has(u) && has(m)").matches(&full));
        assert!(c("f == 1.5 && d > 18000").matches(&full));
        assert!(c("b").matches(&full));
        assert_eq!(
            c("b").evaluate(&empty).unwrap_err().kind(),
            EvalErrorKind::Null
        );
        assert!(c("r.x == 7 && has(r.x)").matches(&full));
        assert_eq!(c("has(r.x)").evaluate(&empty), Ok(false));
        assert_eq!(c("has(r)").evaluate(&empty), Ok(false));
        assert_eq!(
            c("r.x == 7").evaluate(&empty).unwrap_err().kind(),
            EvalErrorKind::Null
        );
        assert!(c("'B' in tags && tags.all(t, t != 'A')").matches(&full));
        let err = |src: &str| {
            Filter::compile(src, &schema)
                .unwrap_err()
                .message()
                .to_string()
        };
        assert_eq!(
            err("u == 1"),
            "`u` is of type union, which a filter can only test with has()"
        );
        assert_eq!(
            err("size(m) == 0"),
            "`m` is of type map, which a filter can only test with has()"
        );
        assert!(err("'C' in tags").contains("not a symbol of enum Tag (symbols: A, B)"));
        assert!(err("x == 1").starts_with("unknown field `x` (did you mean `r.x`?)"));
        // The schema of a filter must be a record.
        let e = Filter::compile("true", &Schema::String).unwrap_err();
        assert_eq!(e.message(), "the schema of a filter must be an Avro record");
    }

    #[test]
    fn match_all_matches_everything() {
        let f = Filter::match_all(schema());
        assert_eq!(f.source(), "true");
        assert!(f.fields().is_empty());
        assert!(f.matches(&example()));
        assert_eq!(f.evaluate(&example()), Ok(true));
    }

    #[test]
    fn filter_is_clone_debug_send_sync() {
        fn assert_traits<T: Clone + fmt::Debug + Send + Sync + 'static>() {}
        assert_traits::<Filter>();
        assert_traits::<FilterError>();
        assert_traits::<EvalError>();
        let f = compile(EXAMPLE_FILTER);
        let g = f.clone();
        let handle = std::thread::spawn(move || g.matches(&example()));
        assert_eq!(handle.join().unwrap(), f.matches(&example()));
        assert!(format!("{f:?}").contains("Path"));
    }

    #[test]
    fn fields_lists_what_the_filter_reads() {
        let f = compile(
            "has(location.lng) && reporter.name != '' && workflow.exists(w, has(w.due_time)) && grid_code != null",
        );
        assert_eq!(
            f.fields(),
            vec![
                "envelope.grid_code",
                "location",
                "location.lng",
                "reporter",
                "reporter.name",
                "workflow",
                "workflow.due_time",
            ]
        );
    }

    const ALPHABET: &[&str] = &[
        "region_code",
        "parties",
        "p",
        "p.role",
        "exists",
        "all",
        "has",
        "size",
        "matches",
        "startsWith",
        "location",
        ".",
        "lng",
        "(",
        ")",
        "[",
        "]",
        ",",
        "?",
        ":",
        "!",
        "-",
        "+",
        "*",
        "/",
        "%",
        "<",
        "<=",
        ">",
        ">=",
        "==",
        "!=",
        "&&",
        "||",
        "in",
        "'VICTIM'",
        "\"x\"",
        "'",
        "\"",
        "\\",
        "\\u",
        "1",
        "0",
        "9223372036854775808",
        "1.5",
        "1e",
        "0x",
        "true",
        "false",
        "null",
        " ",
        "\n",
        "汉",
        "{",
        "}",
        "=",
        "&",
        "|",
        "#",
        "attachment_count",
        "category",
        "'DISPUTE'",
        "household_ids",
        "w",
        "workflow",
        "w.stage",
        "title",
        "u",
        "\u{0}",
        "\u{200b}",
        "//",
    ];

    /// Tiny deterministic generator so the garbage test needs no extra dependency.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn try_everything(src: &str, rec: &Value) {
        if let Ok(f) = Filter::compile(src, schema()) {
            let _ = f.evaluate(rec);
            let _ = f.fields();
        }
    }

    /// A random, mostly well-typed expression of kind `b`ool, `i`nt, `d`ouble or `s`tring (so that the
    /// checker and the evaluator get exercised, not only the parser).
    fn random_expr(rng: &mut XorShift, kind: char, depth: usize, in_p: bool) -> String {
        let leaves: &[&str] = match (kind, in_p) {
            ('b', false) => &["true", "false", "has(grid_code)", "has(location.lng)"],
            ('b', true) => &["true", "has(p.phone)", "p.role == 'VICTIM'"],
            ('i', _) => &[
                "attachment_count",
                "3",
                "0",
                "-1",
                "reported_time",
                "9223372036854775807",
                "size(title)",
            ],
            ('d', _) => &["location.lng", "2.5", "-0.0", "1e300"],
            (_, false) => &[
                "region_code",
                "category",
                "title",
                "'DISPUTE'",
                "hotline_ticket_no",
                "'汉'",
            ],
            (_, true) => &["p.name", "p.phone", "region_code", "'x'"],
        };
        if depth == 0 || rng.below(3) == 0 {
            return leaves[rng.below(leaves.len())].to_string();
        }
        let d = depth - 1;
        let mut r = |k: char| random_expr(rng, k, d, in_p);
        match kind {
            'b' => match r('i').len() % 10 {
                0 => format!("!({})", r('b')),
                1 => format!("{} && {}", r('b'), r('b')),
                2 => format!("({} || {})", r('b'), r('b')),
                3 => format!("{} < {}", r('i'), r('d')),
                4 => format!("{} == {}", r('i'), r('i')),
                5 => format!("{}.startsWith({})", r('s'), r('s')),
                6 => format!("{} in [{}, 'a']", r('s'), r('s')),
                7 => format!("({} ? {} : {})", r('b'), r('b'), r('b')),
                8 => format!("parties.exists(p, {})", random_expr(rng, 'b', d, true)),
                _ => format!("{} != {}", r('s'), r('s')),
            },
            'i' => match r('b').len() % 6 {
                0 => format!("({} + {})", r('i'), r('i')),
                1 => format!("({} - {})", r('i'), r('i')),
                2 => format!("{} * {}", r('i'), r('i')),
                3 => format!("{} / {}", r('i'), r('i')),
                4 => format!("{} % {}", r('i'), r('i')),
                _ => format!("-{}", r('i')),
            },
            'd' => format!("({} / {})", r('d'), r('i')),
            _ => format!("({} + {})", r('s'), r('s')),
        }
    }

    #[test]
    fn filters_that_rule_a_value_out_are_recognised() {
        let rules_out = |src: &str| {
            Filter::compile(src, schema())
                .unwrap()
                .rules_out("envelope.data_grade", "CORE")
        };
        assert!(rules_out("data_grade == 'GENERAL'"));
        assert!(rules_out(
            "data_grade != 'CORE' && region_code.startsWith('6108')"
        ));
        assert!(rules_out(
            "region_code.startsWith('6108') && data_grade in ['GENERAL', 'IMPORTANT']"
        ));
        assert!(rules_out("!(data_grade == 'CORE')"));
        assert!(rules_out(
            "data_grade == 'GENERAL' || data_grade == 'IMPORTANT'"
        ));
        assert!(!rules_out("true"));
        assert!(!rules_out("data_grade == 'CORE'"));
        assert!(!rules_out("data_grade != 'GENERAL'"));
        assert!(!rules_out(
            "data_grade == 'GENERAL' || region_code.startsWith('6108')"
        ));
        assert!(!rules_out("!(data_grade != 'CORE')"));
    }

    #[test]
    fn garbage_never_panics() {
        let rec = example();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut compiled = 0;
        for round in 0..20_000 {
            let mut src = String::new();
            if round % 2 == 0 {
                let n = rng.below(30);
                for _ in 0..n {
                    if rng.below(8) == 0 {
                        src.push(char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'));
                    } else {
                        src.push_str(ALPHABET[rng.below(ALPHABET.len())]);
                    }
                }
            } else {
                src = random_expr(&mut rng, 'b', 5, false);
                // Sometimes break it: cut it at a random character boundary.
                if rng.below(4) == 0 {
                    let cut = rng.below(src.chars().count() + 1);
                    src = src.chars().take(cut).collect();
                }
            }
            if Filter::compile(&src, schema()).is_ok() {
                compiled += 1;
            }
            try_everything(&src, &rec);
        }
        // The generator must reach the checker and evaluator, not only the lexer.
        assert!(compiled > 4000, "only {compiled} random filters compiled");
        // Hand-picked nasty inputs.
        for src in [
            "\"\\",
            "'\\u",
            "'\\u00'",
            "0x",
            "0xfffffffffffffffffff",
            "1e999",
            "1.0e-999999",
            "18446744073709551616",
            "-",
            "!",
            "?:",
            "a.",
            ".",
            "..",
            "()",
            "[,]",
            "[1,]",
            "has()",
            "has(p)",
            "parties.exists(p)",
            "parties.exists(p, p)",
            "parties.exists(region_code, region_code == 'x')",
            "'\u{10ffff}'",
            "\u{feff}true",
            "true\r\nfalse",
            "\t",
            "\n\n\n)",
            "size(size(size('')))",
            "-9223372036854775808",
            "--9223372036854775808 == 1",
            "title.matches('a{99999}{99999}')",
        ] {
            try_everything(src, &rec);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn compile_never_panics_on_any_string(src in any::<String>()) {
            try_everything(&src, &example());
        }

        #[test]
        fn compile_never_panics_on_token_soup(parts in proptest::collection::vec(0..ALPHABET.len(), 0..40)) {
            let src: String = parts.iter().map(|&i| ALPHABET[i]).collect::<Vec<_>>().join(" ");
            try_everything(&src, &example());
        }

        #[test]
        fn int_comparisons_agree_with_rust(a in any::<i64>(), b in any::<i64>()) {
            let rec = example();
            let src = format!("{a} < {b} && {a} + 0 == {a}");
            prop_assert_eq!(eval(&src, &rec), Ok(a < b));
        }
    }
}
